/* forward.h - the inference forward pass with a KV cache.
 *
 * A state holds the KV cache of B sequence slots and scratch for up to
 * max_tokens token rows per call. spq_forward runs T new tokens for each of
 * B sequences (prefill when T > 1, decode when T == 1); sequence b's tokens
 * sit at positions pos[b] .. pos[b]+T-1 and see its cached keys before them.
 *
 *   x = embed(tokens)
 *   for each layer:  x += Wo · attn(rope(Wq·n), rope(Wk·n), Wv·n),  n = rmsnorm(x)
 *                    x += Wdown · (silu(Wgate·n) * Wup·n),           n = rmsnorm(x)
 *   logits = lm_head · rmsnorm(x)
 *
 * One implementation serves three uses: inference of an fp32 model (with its
 * fake quantizers and online rotations), calibration (spq_layer_forward runs
 * one layer over stored inputs and shows each linear's input to an
 * observer, as GPTQ needs), and packed models (model.h's `packed`: the
 * linears run as integer kernels, qgemm.h, and the KV cache may hold integer
 * codes). A mapped model (mapped.h) runs each layer on its weights converted
 * to fp32 in the state's buffer when the layer starts: once per call, so
 * B sequences (a batch of windows) share one conversion. */
#ifndef SPQ_FORWARD_H
#define SPQ_FORWARD_H

#include "model.h"
#include "common/kernels/qgemm.h"

typedef struct {
    int B;           /* sequence slots */
    int ctx;         /* positions per slot */
    int max_tokens;  /* token rows per call (B*T) */
    int kv_one;      /* the cache holds one layer, whichever runs (spq_state_build_one_layer) */
    float *k_cache;  /* (n_layers, B, ctx, kv_dim), NULL with an integer cache */
    float *v_cache;  /* (n_layers, B, ctx, kv_dim) */
    /* integer KV cache (config kv_cache_bits 2..8): codes (n_layers, B, ctx,
     * kv_row bytes), two per byte at <= 4 bits, with a scale and zero point
     * per (token, head) (n_layers, B, ctx, n_kv_heads) */
    int kv_bits, kv_row;
    uint8_t *kq, *vq;
    float *ks, *kz, *vs, *vz;
    float *kdq, *vdq;  /* (ctx, kv_dim): one sequence's keys and values, dequantized for attention */
    float *rope_cos, *rope_sin;  /* (ctx, head_dim/2) */
    /* scratch, (max_tokens, ...) */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2;
    float *scores;   /* (max_tokens, ctx) */
    int *pos;        /* (max_tokens) */
    spq_qact qa;     /* a packed linear's quantized input */
    /* a mapped model's (mapped.h) current layer: its linears in fp32 in
     * wbuf (allocated on first use), converted for layer w_layer of w_model */
    float *wbuf;
    const spq_model *w_model;
    int w_layer;
    unsigned w_gen;
    spq_layer wl;
    const int *slot_of; /* (B) the KV cache slot of each sequence of a call; NULL: sequence b uses slot b */
} spq_state;

void spq_state_build(spq_state *s, const spq_config *c, int B, int ctx, int max_tokens);
/* A state for spq_layer_forward over windows whose keys and values are not
 * kept after their layer (GPTQ's calibration): its KV cache holds one layer,
 * not n_layers (4.3 GB less for 8 windows of 2048 at 8B). */
void spq_state_build_one_layer(spq_state *s, const spq_config *c, int B, int ctx, int max_tokens);
void spq_state_free(spq_state *s);

enum { SPQ_LOGITS_LAST = 0, SPQ_LOGITS_ALL = 1 };

/* Arguments in layers.h's order: outputs (logits, and the state whose KV
 * cache and scratch the call writes), inputs, the model's weights, sizes.
 *
 * logits: (B, V) for SPQ_LOGITS_LAST, (B, T, V) for SPQ_LOGITS_ALL.
 * tokens (B, T); pos (B) start positions, pos[b] + T <= ctx; B <= s->B;
 * B*T <= s->max_tokens. */
void spq_forward(float *logits, spq_state *s, const int *tokens, const int *pos, const spq_model *m, int B, int T,
                 int logits_mode);

/* Sees the input x (N, C) of the linears at `site` (linear.h) of layer l:
 * what they multiply (after the fake activation quantizer and, for down_proj,
 * after R4; for a packed model, before its on-the-fly quantization). A
 * non-zero return stops the layer there (s->x then holds the residual
 * stream as far as the layer got), which calibration uses to skip the rest
 * of a layer it does not need. */
typedef int (*spq_observer_fn)(void *ud, int layer, int site, const float *x, int N, int C);

/* s->x (B*T, dim) <- embed(tokens (B, T)) */
void spq_embed_forward(spq_state *s, const int *tokens, const spq_model *m, int N);

/* Runs layer l on the residual rows s->x (B*T, dim) in place, with the KV
 * cache slots and positions as in spq_forward; obs (may be NULL) sees every
 * linear's input. */
void spq_layer_forward(spq_state *s, const int *pos, const spq_model *m, int l, int B, int T, spq_observer_fn obs,
                       void *ud);

#endif
