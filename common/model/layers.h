/* layers.h - the transformer's layers as plain functions, in the style of
 * llm.c: outputs first, then inputs, then weights, then sizes; no hidden
 * state. N is a number of token rows. Forward and backward sit side by side
 * in layers.c; the inference forward (forward.c) and the training pass
 * (train.c) are built from the same functions. */
#ifndef SPQ_LAYERS_H
#define SPQ_LAYERS_H

#include "model.h"

/* out (N, D) = in (N, D) / rms(in) * weight (D); rstd (N) may be NULL */
void spq_rmsnorm_forward(float *out, float *rstd, const float *in, const float *weight, int N, int D, float eps);

void spq_rmsnorm_backward(float *din, const float *dout, const float *in, const float *weight, const float *rstd,
                          int N, int D);

/* out (N, OC) = in (N, C) W^T, W (OC, C); sgemm */
void spq_matmul_forward(float *out, const float *in, const float *W, int N, int C, int OC);
/* din (N, C) = dout (N, OC) W (overwritten, or accumulated when accumulate
 * is 1); dW (OC, C) = dout^T in (overwritten) unless dW is NULL */
void spq_matmul_backward(float *din, float *dW, const float *dout, const float *in, const float *W, int N, int C,
                         int OC, int accumulate);

/* RoPE tables for positions [0, n_pos): cos, sin (n_pos, head_dim/2), with
 * llama3 frequency scaling when the config asks for it. */
void spq_rope_tables(float *cos_t, float *sin_t, const spq_config *c, int n_pos);

/* In place on x (N, n_heads*head_dim), rotate-half pairs (i, i+hd/2); row r
 * is at position pos[r]. */
void spq_rope_forward(float *x, const int *pos, const float *cos_t, const float *sin_t, int N, int n_heads,
                      int head_dim);

/* Gradient of RoPE: the inverse rotation applied to dx in place. */
void spq_rope_backward(float *dx, const int *pos, const float *cos_t, const float *sin_t, int N, int n_heads,
                       int head_dim);

/* out (N, H) = silu(gate) * up, gate and up (N, H) */
void spq_swiglu_forward(float *out, const float *gate, const float *up, size_t NH);
void spq_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t NH);

/* In place softmax of each row of x (N, V) */
void spq_softmax_rows(float *x, int N, int V);

/* Causal attention of one sequence's new queries over its keys.
 * out (T, n_heads*hd); q (T, n_heads*hd); k, v (P, n_kv*hd) hold positions
 * 0..P-1 where the T queries are positions P-T..P-1; scratch (T, P). */
void spq_attention_forward(float *out, const float *q, const float *k, const float *v, float *scratch, int T,
                           int P, int n_heads, int n_kv_heads, int head_dim);

/* Backward of spq_attention_forward for a whole sequence (T == P, keys at
 * the query positions). dq (T, n_heads*hd) overwritten; dk, dv (T, n_kv*hd)
 * overwritten; scratch (2, T, T). */
void spq_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, float *scratch, int T, int n_heads, int n_kv_heads, int head_dim);

/* Mean next-token cross-entropy of logits (N, V) against targets (N; a
 * negative target is not scored). Returns the sum of losses and writes
 * dlogits = (softmax - onehot) * scale for the scored rows (0 elsewhere);
 * dlogits may alias logits. *n_scored gets the count. */
double spq_crossentropy_forward_backward(float *dlogits, const float *logits, const int *targets, int N, int V,
                                         float scale, int *n_scored);

#endif
