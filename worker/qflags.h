/* qflags.h - the quantization flags shared by spinq's commands:
 *   --w-bits B  --w-asym  --w-groupsize G  --w-clip | --no-w-clip
 *   --w-grid q4_0|q8_0  (llama.cpp's block grid: 4/8 bits, groups of 32, fp16 block scale)
 *   --a-bits B  --a-clip R  --kv-bits B  --kv-clip R
 * and the rotation flags of commands that evaluate rotated models:
 *   --rotation FILE|hadamard|random|none  --mode had|no-had  --seed S */
#ifndef SPQ_QFLAGS_H
#define SPQ_QFLAGS_H

#include <stdint.h>

#include "common/model.h"

/* If argv[*i] is a quantization flag, parses it into q (advancing *i) and
 * returns 1; returns 0 if it is not one, -1 on a bad value (reported). */
int spq_qflag(spq_qcfg *q, int argc, char **argv, int *i, const char *cmd);

/* A one-line description like "W4A4KV4 (w: sym, per channel, clip)". */
void spq_qcfg_describe(char *buf, size_t cap, const spq_qcfg *q);

typedef struct {
    const char *rotation;  /* NULL/"none", "hadamard", "random" or a file */
    int online;            /* --mode: 1 had (default), 0 no-had */
    uint64_t seed;
} spq_rotflags;

/* Like spq_qflag, for --rotation, --mode, --seed. */
int spq_rotflag(spq_rotflags *r, int argc, char **argv, int *i, const char *cmd);

/* Loads model_path and turns it into the fake-quantized model of r and q
 * (qmodel.h): rotations built ("hadamard", "random": seeded, r->online) or
 * loaded from a file (its own mode), RTN weights. */
int spq_load_quantized(spq_model *m, const char *model_path, const spq_rotflags *r, const spq_qcfg *q,
                       spq_err *err);
/* The same with rtn 0: the weights are left in full precision for GPTQ.
 * A packed model (packed.h) is loaded as it is: it carries its own rotations
 * and quantizers, so asking for others (r->rotation other than none, or any
 * bits other than 16 in q) is an error. */
int spq_load_prepared(spq_model *m, const char *model_path, const spq_rotflags *r, const spq_qcfg *q, int rtn,
                      spq_err *err);

/* Loads model_path for an export as a plain LLaMA (export-hf, export-gguf):
 * the full-precision model with r's rotation (built in r->online's mode, or
 * loaded from a file) fused and merged into the weights; without a rotation
 * (NULL or "none") the model as it loads. Refused with the reason: a packed
 * model, and a "had" rotation, whose online Hadamards (R3 on Q/K, R4 on the
 * down_proj input with its transpose folded into down_proj) a plain LLaMA
 * cannot run, so the export would not be equivalent. */
int spq_load_plain_rotated(spq_model *m, const char *model_path, const spq_rotflags *r, spq_err *err);
#endif
