/* packed.h - making a packed low-bit model, and its file.
 *
 * A packed model is a spq_model whose `packed` member holds every linear as
 * int codes with per-(row, group) scales and zero points in the kernels'
 * layout (model/packed_weights.h, kernels/qgemm.h); its fp32 linear weights
 * are NULL, so the forward pass (forward.h) runs the integer kernels. Norm
 * weights stay fp32; the embedding and classifier are fp32, fp16 or bf16;
 * R3/R4 are the model's online rotations; m->q holds the activation and KV
 * quantizers the kernels apply on the fly; cfg.kv_cache_bits makes the KV
 * cache hold codes.
 *
 * On disk it is one safetensors file, docs/packed-format.md: codes as int4
 * nibbles (two per byte, row-major), F32 scales, U8 zero points, the norms,
 * the embedding/classifier, dense R3/R4 when they are not Hadamard, the
 * settings as JSON metadata with a format version, and the tokenizer files
 * embedded as byte tensors, so that the file alone is a runnable model. The
 * loader checks every tensor's dtype and shape against the config and every
 * code, zero point and scale against the settings before using them, and
 * names the tensor or metadata field that is wrong. */
#ifndef SPQ_PACKED_H
#define SPQ_PACKED_H

#include "common/base/safetensors.h"
#include "common/model/model.h"
#include "common/model/packed_weights.h"
#include "common/quant/wquant.h"
#include "common/tok/tokenizer.h"

#define SPQ_PACKED_FORMAT "spinq-packed"
#define SPQ_PACKED_VERSION 1

typedef struct {
    spq_st_dtype emb_dtype;      /* SPQ_ST_F32 (default 0 means F32), F16 or BF16 */
    const char *info;            /* a JSON object to keep with the model, or NULL */
    const char *tokenizer_from;  /* a model path whose tokenizer files are embedded, or NULL */
} spq_pack_opts;

/* Packs a fake-quantized model: fq's linears hold the dequantized values of
 * wq's parameters (after spq_wquant_rtn or spq_gptq), fq->q its activation
 * and KV quantizers, fq->r3/r4 its online rotations. The result computes
 * what fq computes, with integer kernels. Fails when a weight is not on its
 * parameters' grid, or the settings have no packed form (weights other than
 * 2..4 bits, groups that do not nest with the activation groups). A model
 * quantized streamed (quant/qpack.h) is packed already: its packed layers
 * move into pm, and fq is then only good for spq_model_free. */
int spq_packed_build(spq_model *pm, spq_model *fq, const spq_wquant *wq, const spq_pack_opts *o, spq_err *err);

/* Writes pm to path atomically. */
int spq_packed_save(const spq_model *pm, const char *path, spq_err *err);
/* Loads a packed file (spq_model_load calls this for safetensors files). */
int spq_packed_load(spq_model *pm, const char *path, spq_err *err);
/* 1 when path is a regular file that starts like a safetensors file. */
int spq_packed_is_file(const char *path);
/* The tokenizer embedded in a packed file. */
int spq_packed_tokenizer(spq_tokenizer **t, const char *path, spq_err *err);

#endif
