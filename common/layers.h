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

/* out (N, OC) = in (N, C) W^T, W (OC, C); sgemm */
void spq_matmul_forward(float *out, const float *in, const float *W, int N, int C, int OC);

/* RoPE tables for positions [0, n_pos): cos, sin (n_pos, head_dim/2), with
 * llama3 frequency scaling when the config asks for it. */
void spq_rope_tables(float *cos_t, float *sin_t, const spq_config *c, int n_pos);

/* In place on x (N, n_heads*head_dim), rotate-half pairs (i, i+hd/2); row r
 * is at position pos[r]. */
void spq_rope_forward(float *x, const int *pos, const float *cos_t, const float *sin_t, int N, int n_heads,
                      int head_dim);

/* out (N, H) = silu(gate) * up, gate and up (N, H) */
void spq_swiglu_forward(float *out, const float *gate, const float *up, size_t NH);

/* In place softmax of each row of x (N, V) */
void spq_softmax_rows(float *x, int N, int V);

/* Causal attention of one sequence's new queries over its keys.
 * out (T, n_heads*hd); q (T, n_heads*hd); k, v (P, n_kv*hd) hold positions
 * 0..P-1 where the T queries are positions P-T..P-1; scratch (T, P). */
void spq_attention_forward(float *out, const float *q, const float *k, const float *v, float *scratch, int T,
                           int P, int n_heads, int n_kv_heads, int head_dim);

#endif
