/* wquant.h - the weight quantization of a model's linears with its
 * parameters kept: after RTN or GPTQ (gptq.h) each linear's fp32 weight holds
 * the dequantized values s (code - z) and this holds s and z per (row, group),
 * which is what packing (io/packed.h) needs to recover the integer codes.
 * Embedding and lm_head are never quantized. */
#ifndef SPQ_WQUANT_H
#define SPQ_WQUANT_H

#include "common/model/linear.h"
#include "common/model/mapped.h"

typedef struct {
    float *scale;  /* (rows, ngroups) */
    float *zero;   /* (rows, ngroups) integers as in quant.h (0 when symmetric) */
} spq_wparams;

typedef struct {
    spq_wq_cfg cfg;
    int n_layers;
    spq_wparams *p;  /* (n_layers, SPQ_N_LIN) */
} spq_wquant;

/* Parameter arrays for every linear of a model of config c under w. */
void spq_wquant_alloc(spq_wquant *q, const spq_config *c, const spq_wq_cfg *w);
void spq_wquant_free(spq_wquant *q);
static inline spq_wparams *spq_wquant_at(const spq_wquant *q, int l, int which) {
    return &q->p[(size_t)l * SPQ_N_LIN + which];
}

/* spq_wq_params (quant.h) with rows split over the thread pool (the MSE
 * clip search is the costly part of RTN and of GPTQ's per-row parameters);
 * the same results. */
void spq_wq_params_parallel(float *scale, float *zero, const float *W, int rows, int cols, const spq_wq_cfg *w);

/* Round to nearest: finds the parameters of every linear of m (with w's
 * settings; fails on bits outside 2..8) and replaces the weights by their
 * dequantized values; a mapped model's a layer at a time (qpack.h). */
int spq_wquant_rtn(spq_wquant *q, spq_model *m, const spq_wq_cfg *w, spq_err *err);
/* The same, calling fn(ud, layers done, layers) after each layer (a layer
 * of a mapped 8B model is converted, rotated and rounded in seconds). */
int spq_wquant_rtn_progress(spq_wquant *q, spq_model *m, const spq_wq_cfg *w, spq_convert_progress_fn fn, void *ud,
                            spq_err *err);

#endif
