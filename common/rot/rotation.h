/* rotation.h - SpinQuant's rotations of one model and how they are absorbed.
 *
 *   R1 (dim, dim), one per model: the residual stream x becomes x R1. Every
 *      linear reading it gets W R1 (embedding, q, k, v, gate, up, lm_head),
 *      every linear writing it gets R1^T W (o_proj, down_proj).
 *   R2 (head_dim, head_dim), one per layer, shared by its heads: each value
 *      head becomes v_h R2, so v rows per head get R2^T W_v,h and o_proj's
 *      columns per head W_o,h R2.
 *   R3 (head_dim): an online rotation of q and k per head after RoPE
 *      (q k^T is unchanged), so that the key cache quantizes well.
 *   R4 (hidden_dim): an online rotation of the down_proj input, its transpose
 *      folded into down_proj (W_down M^T, rotonline.h's convention).
 * Mode "had" uses all four; "no-had" only R1 and R2, fully merged into the
 * weights (the result is a plain LLaMA model). R3/R4 are the normalized
 * Hadamard transform when one exists for the size, else a dense random
 * orthogonal matrix that is saved with the rotation. Norms must be fused
 * (fuse.h) before R1 is applied.
 *
 * A rotation file is safetensors: R1 (F64), R2 (F64, stacked), R3/R4 when
 * dense, and metadata: format "spinq-rotation", version, the model shape,
 * mode, and the learning state (step, steps, lr, seed, ...) so that a run
 * can resume from it. */
#ifndef SPQ_ROTATION_H
#define SPQ_ROTATION_H

#include <stdint.h>

#include "common/kernels/rotonline.h"
#include "common/model/model.h"

enum { SPQ_INIT_IDENTITY = 0, SPQ_INIT_HADAMARD = 1, SPQ_INIT_RANDOM = 2 };

typedef struct {
    int dim, head_dim, n_layers, hidden_dim;
    int online;         /* 1: "had" mode (R3, R4 online); 0: "no-had" */
    double *R1;         /* (dim, dim) */
    double *R2;         /* (n_layers, head_dim, head_dim) */
    spq_rot_online r3;  /* (head_dim), when online */
    spq_rot_online r4;  /* (hidden_dim), when online */
} spq_rotation;

/* Rotations for a model of config c: R1 and every R2 initialized by `init`
 * (seeded; R2 of layer l from seed + 1 + l), R3/R4 built when online. */
int spq_rotation_build(spq_rotation *r, const spq_config *c, int online, int init, uint64_t seed, spq_err *err);
void spq_rotation_free(spq_rotation *r);

/* 0 if r fits the model's shape, else -1 with a message naming the field. */
int spq_rotation_check(const spq_rotation *r, const spq_config *c, spq_err *err);

/* Absorbs r into a fused model (fp64 products, rounded once) and attaches
 * the online R3/R4 to it (copies). Fails if m is not fused or shapes differ. */
int spq_rotation_apply(spq_model *m, const spq_rotation *r, spq_err *err);
/* For exports as a plain LLaMA (Hugging Face, GGUF): 0 for a no-had
 * rotation; for a "had" one -1 with the reason (the online R3/R4 have no
 * place in a plain LLaMA, so the export would not be equivalent), naming
 * the rotation as `what`. */
int spq_rotation_plain_only(const spq_rotation *r, const char *what, spq_err *err);

/* Metadata saved with a rotation: what produced it and where a run stands. */
typedef struct {
    int step, steps, batch, seqlen, init;
    double lr;
    uint64_t seed;
    double loss;        /* last step's loss, NAN if none */
    char mode[16];      /* "had" or "no-had" */
    char extra[512];    /* free text (e.g. quantization settings as JSON) */
} spq_rotation_meta;

int spq_rotation_save(const char *path, const spq_rotation *r, const spq_rotation_meta *meta, spq_err *err);
/* Loads a rotation file; meta may be NULL. */
int spq_rotation_load(spq_rotation *r, spq_rotation_meta *meta, const char *path, spq_err *err);

#endif
