/* train.h - the loss of the rotated, fake-quantized model and its gradient
 * with respect to R1 and every R2 (SpinQuant's objective). All weights are
 * frozen; only the rotations move.
 *
 * Forward, for B windows of T tokens (N = B*T rows):
 *   x  = E[tokens] R1
 *   per layer l, with W' the layer's weights rotated by the current R1/R2
 *   (rotation.h) and fake-quantized (quant.h):
 *     n  = Qa(rmsnorm(x))
 *     q  = R3 rope(n Wq'^T),  k = Qk(R3 rope(n Wk'^T)),  v = Qv(n Wv'^T)
 *     x += Qo(attn(q, k, v)) Wo'^T
 *     n  = Qa(rmsnorm(x))
 *     x += Qa(R4 (silu(n Wg'^T) * n Wu'^T)) Wd'^T
 *   logits = (rmsnorm(x) R1^T) Wlm^T;  loss = mean CE of the next token
 * which is spq_forward of the model that spq_rotation_apply builds, computed
 * with the rotations as variables (the classifier and embedding stay full
 * precision, so R1 is applied to their activations instead of their weights).
 *
 * Backward keeps only each layer's input and recomputes the layer (its
 * rotated weights too) before differentiating it, so memory grows with
 * layers x tokens x hidden, not with attention maps. Quantizers pass the
 * gradient straight through.
 *
 * The frozen weights are read one layer at a time (load_layer), each time
 * the layer is rotated: from the model's fp32 arrays, or, for a mapped
 * model (model/mapped.h), converted from its files into one layer's buffer.
 * Learning on a mapped model therefore holds one layer of weights in fp32
 * (plus the fp32 embedding and classifier) and computes what it computes
 * on the same model converted to fp32, bit for bit.
 *
 * A rotated weight W' = W R gives dR += W^T dW', W' = R^T W gives
 * dR += W dW'^T. */
#ifndef SPQ_TRAIN_H
#define SPQ_TRAIN_H

#include "common/model/model.h"
#include "common/rot/rotation.h"

typedef struct {
    const spq_model *m;   /* fused, unrotated, frozen */
    spq_qcfg q;
    int B, T, N;
    const spq_rot_online *r3, *r4;  /* NULL in no-had mode */
    /* the frozen weights of the layer loaded last (load_layer) */
    int src_l;            /* its index, -1 before the first */
    spq_layer src;        /* its linears: the model's arrays, or src_buf's */
    float *src_buf;       /* (spq_mapped_layer_floats) a mapped model's layer in fp32, or NULL */
    float *wd_fold;       /* (dim, hidden) its W_down M4^T, or NULL in no-had mode */
    double *fold_row;     /* (hidden) fp64 scratch of the fold */
    float *rope_cos, *rope_sin;
    int *pos;             /* (N) */
    /* current rotation as fp32 */
    float *R1, *R2;       /* (dim, dim), (n_layers, hd, hd) */
    /* gradients */
    float *dR1, *dR2;     /* same shapes */
    /* rotated (and quantized) weights of the layer being worked on */
    float *wq, *wk, *wv, *wo, *wg, *wu, *wd;
    float *mv, *ao;       /* Wv R1 (kvd, dim) and Wo blockdiag(R2) (dim, qd), for the gradients */
    float *dw;            /* (largest weight) a weight gradient */
    float *tmp_dd;        /* (dim, max(dim, qd)) */
    /* activations */
    float *xs;            /* (n_layers + 1, N, dim) every layer's input, and the final residual */
    float *n1, *rstd1, *q_, *k_, *v_, *att, *xm, *n2, *rstd2, *gate, *up, *h;
    /* backward scratch */
    float *dx, *dn, *dtmp, *dq, *dk, *dv, *datt, *dh, *dgate, *dup, *attn_scratch;
    float *logits;        /* (chunk, vocab) */
    float *ones;          /* (dim) the fused norms' weights */
    int *targets;         /* (N) */
    /* Frozen quantization noise, for checking the straight-through gradient:
     * in SPQ_NOISE_RECORD mode every quantizer's output minus input is kept
     * per (layer, site); in SPQ_NOISE_REPLAY mode quantizers add the kept
     * noise instead of quantizing, which makes the loss a smooth function
     * whose exact gradient at the recorded point is the STE gradient. */
    int noise_mode;
    float **noise;        /* (n_layers * SPQ_NOISE_SITES) */
    /* optional: called after each layer's forward and (with want_grad) each
     * layer's backward, done of total passes (a step at 8B takes long) */
    void (*on_pass)(void *ud, int done, int total);
    void *on_pass_ud;
} spq_trainer;

enum { SPQ_NOISE_OFF = 0, SPQ_NOISE_RECORD = 1, SPQ_NOISE_REPLAY = 2 };
#define SPQ_NOISE_SITES 13

/* fused: a model after spq_fuse_norms (not rotated). rot gives the shapes,
 * mode and R3/R4 (kept by reference: it must outlive the trainer). */
int spq_trainer_build(spq_trainer *t, const spq_model *fused, const spq_rotation *rot, const spq_qcfg *q, int B,
                      int T, spq_err *err);
void spq_trainer_free(spq_trainer *t);

/* Mean next-token cross-entropy over tokens (B, T) (T-1 predictions per
 * window) with the rotations in rot; with want_grad, t->dR1 and t->dR2 get
 * its gradient. */
double spq_trainer_step(spq_trainer *t, const spq_rotation *rot, const int *tokens, int want_grad);

/* Floating-point operations of one spq_trainer_step with want_grad, counted
 * from the shapes (matrix products only, as executed: full T x T attention
 * scores, weights rotated twice — forward and recompute). For benchmarks. */
double spq_trainer_flops(const spq_trainer *t);

#endif
