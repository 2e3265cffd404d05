/* gptq.h - GPTQ weight quantization (Frantar et al. 2022) as SpinQuant's
 * and QuaRot's reference runs it after the rotations.
 *
 * Calibration: nsamples windows of seqlen tokens at seeded random offsets of
 * the calibration text. Their embeddings go through the model one layer at a
 * time; within a layer the linears are quantized in order - q/k/v (one
 * Hessian: they read the same input), o_proj, gate/up, down_proj - and the
 * layer is re-run before each step so that every linear sees the outputs of
 * the already-quantized ones; the layer's outputs with all its weights
 * quantized are the next layer's inputs.
 *
 * Which input: the linear's input in the rotated model, the down_proj input
 * after the online R4 (spq_layer_forward's observer). The reference collects
 * these before it switches on the activation and KV quantizers (QuaRot's and
 * SpinQuant's ptq: GPTQ runs between rotate_model/add_actquant with
 * online_full_had set, and the input quantizers are configured after it), so
 * by default the fake activation and KV quantizers are off while collecting;
 * calib_aq = 1 keeps them on instead.
 *
 * Per weight W (rows, cols) with H = 2 X^T X / n (n tokens):
 *  - parameters: per row (or per group, see below) from spq_wq_find on W
 *    before any update (GPTQ's find_params, with the MSE clip search when
 *    the settings ask for it);
 *  - dead columns (H_ii = 0): H_ii = 1 and W[:, i] = 0;
 *  - act-order: columns in order of decreasing H_ii (stable);
 *  - H += damp * mean(diag H) I; U = chol(H^-1) upper: Cholesky and its
 *    inverse in fp64 with LAPACK (dpotrf, dpotri, dpotrf). fp64 because the
 *    damped Hessian of a 4k-8k wide layer can have a condition number near
 *    1/fp32 epsilon, where an fp32 factorization fails or loses the update;
 *    its cost, O(cols^3) once per layer, is small next to collecting H;
 *  - columns in blocks of 128: q = qdq(w), err = (w - q) / U_ii, the rest of
 *    the block updated at once per column and the columns after the block
 *    with one sgemm per block (fp32, like the reference);
 *  - groups: without act-order, a group's parameters are found when the
 *    sweep reaches its first column, on the current (updated) weights of the
 *    group (the reference reads the block's not-yet-written-back columns
 *    there; we read the updated ones, which is what it means). With
 *    act-order, groups are static (GPTQ's static_groups): found on the
 *    original weights up front, per group of consecutive original columns,
 *    so that the packed format's contiguous groups still describe them. */
#ifndef SPQ_GPTQ_H
#define SPQ_GPTQ_H

#include "wquant.h"
#include "common/model/linear.h"

typedef struct {
    int nsamples;      /* calibration windows (128) */
    int seqlen;        /* tokens per window (2048; at most the model's context) */
    uint64_t seed;
    double damp;       /* fraction of mean(diag H) added to the diagonal (0.01) */
    int blocksize;     /* 128 */
    int act_order;     /* 0 */
    int calib_aq;      /* 0: activation and KV quantizers off while collecting inputs */
    int batch;         /* windows per forward call (8; fewer when that passes 4096 tokens) */
} spq_gptq_cfg;

spq_gptq_cfg spq_gptq_defaults(void);

/* Checks the settings against a model's context; messages name the field. */
int spq_gptq_check(const spq_gptq_cfg *g, const spq_config *c, spq_err *err);

typedef struct {
    /* ||X (W - W_q)^T||_F^2 / ||X W^T||_F^2 on the calibration inputs X, for
     * GPTQ's W_q and for round-to-nearest with the same settings */
    double err_gptq, err_rtn;
    /* the sums behind them: ||X W^T||^2, ||X (W - W_q)^T||^2 for GPTQ and
     * for RTN (so that rows quantized apart, by several ranks, combine) */
    double sq_base, sq_gptq, sq_rtn;
} spq_gptq_stat;

/* W (rows, cols) <- its GPTQ quantization (dequantized values); scale, zero
 * (rows, ngroups) get the parameters. H (cols, cols) = 2 X^T X / n in fp64
 * (not modified). stat (may be NULL) gets the errors, which costs two
 * products with H. Fails when the damped H is not positive definite. */
int spq_gptq_linear(float *W, float *scale, float *zero, const double *H, int rows, int cols, const spq_wq_cfg *w,
                    const spq_gptq_cfg *g, spq_gptq_stat *stat, spq_err *err);

/* The upper Cholesky factor U of H^-1 (H^-1 = U^T U) from A (n, n) = H
 * symmetric positive definite, in fp64: one Cholesky of H with its order
 * reversed and one triangular inverse, 2/3 n^3 flops instead of the 4/3 n^3
 * of the reference's chol(cholesky_inverse(chol(H))), with the same result.
 * U replaces A: on return the first n^2 floats of A's memory are U in fp32
 * (row-major, upper triangle; read them as (float *)A). */
int spq_gptq_inv_chol(double *A, int n, spq_err *err);

/* Start offsets (nsamples) of the calibration windows in a text of n tokens:
 * uniform in [0, n - seqlen], from the seed. Fails when n < seqlen. */
int spq_calib_windows(long *starts, long n, int nsamples, int seqlen, uint64_t seed, spq_err *err);

/* called after each layer with its stats (SPQ_N_LIN; zero when not
 * computed) and seconds; a non-zero return stops GPTQ there */
typedef int (*spq_gptq_progress_fn)(void *ud, int layer, int n_layers, const spq_gptq_stat *stats, double seconds);

/* Quantizes every linear of m (rotated and fused as it will run) with GPTQ
 * on the calibration tokens (n): m's weights become their dequantized values,
 * *wq (allocated here) their parameters. stats (n_layers, SPQ_N_LIN) may be
 * NULL (then no errors are computed). m->q is unchanged. A mapped model
 * is quantized streamed (qpack.h): each layer is packed once quantized,
 * with m->q's settings. Returns 0, -1 on
 * an error, or 1 when progress asked to stop (m is then half quantized and
 * wq freed). */
int spq_gptq_model(spq_wquant *wq, spq_gptq_stat *stats, spq_model *m, const spq_wq_cfg *w, const int *tokens, long n,
                   const spq_gptq_cfg *g, spq_gptq_progress_fn progress, void *ud, spq_err *err);

#endif
