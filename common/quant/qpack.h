/* qpack.h - fake-quantized linears as packed integer linears, and
 * streamed quantization of a mapped model.
 *
 * After round-to-nearest or GPTQ a linear's fp32 weight holds s (c - z) for
 * its parameters (wquant.h); packing recovers the codes c and checks that
 * every weight is on its grid, so the packed linear (kernels/qgemm.h)
 * computes what the fake-quantized one does. The packed model (io/packed.h)
 * is built this way, and so is a layer of a streamed quantization:
 *
 * A mapped model (model/mapped.h) is quantized a layer at a time: the layer
 * gets fp32 arrays of its own (converted, fused and rotated: spq_qpack_take),
 * is quantized there, then packed and its arrays freed (spq_qpack_settle).
 * Only one layer is ever in fp32, and the quantized model converts each
 * layer back to exactly the weights quantization gave, so evaluation and
 * the packed file are what they are for the model quantized in fp32. It
 * needs settings with a packed form (spq_qpack_streams says whether a
 * model can be quantized this way). */
#ifndef SPQ_QPACK_H
#define SPQ_QPACK_H

#include "wquant.h"
#include "common/kernels/qgemm.h"

/* 0 when q's weights and activation groups have a packed form for a model
 * of config c (weights 2..4 bits, KV 2..8 or 16 bits, weight and
 * activation groups that nest); else -1 naming the setting. */
int spq_qpack_check(const spq_qcfg *q, const spq_config *c, spq_err *err);

/* The integer-dot segment length (kernels/qgemm.h's spq_qseg) of linear
 * `which` under q's weight and activation groups; fails naming the linear. */
int spq_qpack_seg(int *seg, const spq_qcfg *q, const spq_config *c, int which, spq_err *err);

/* ql <- linear `which` (rows, cols of c) W, fake-quantized with wp under q,
 * packed. Fails naming the weight that is not on its grid. */
int spq_qpack_linear(spq_qlinear *ql, const float *W, const spq_wparams *wp, const spq_qcfg *q, const spq_config *c,
                     int which, spq_err *err);

/* 1 when m is mapped and the settings q pack every linear: quantization
 * can then stream. */
int spq_qpack_streams(const spq_model *m, const spq_qcfg *q);

/* Layer l of a streamed model: its fp32 arrays for quantizing, then its
 * quantized weights packed with their parameters wq and the arrays freed.
 * Both do nothing when m is not mapped. */
void spq_qpack_take(spq_model *m, int l);
int spq_qpack_settle(spq_model *m, int l, const spq_wquant *wq, spq_err *err);

#endif
