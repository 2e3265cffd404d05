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
 */
#ifndef SPQ_FORWARD_H
#define SPQ_FORWARD_H

#include "model.h"

typedef struct {
    int B;           /* sequence slots */
    int ctx;         /* positions per slot */
    int max_tokens;  /* token rows per call (B*T) */
    float *k_cache;  /* (n_layers, B, ctx, kv_dim) */
    float *v_cache;  /* (n_layers, B, ctx, kv_dim) */
    float *rope_cos, *rope_sin;  /* (ctx, head_dim/2) */
    /* scratch, (max_tokens, ...) */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2;
    float *scores;   /* (max_tokens, ctx) */
    int *pos;        /* (max_tokens) */
} spq_state;

void spq_state_build(spq_state *s, const spq_config *c, int B, int ctx, int max_tokens);
void spq_state_free(spq_state *s);

enum { SPQ_LOGITS_LAST = 0, SPQ_LOGITS_ALL = 1 };

/* logits: (B, V) for SPQ_LOGITS_LAST, (B, T, V) for SPQ_LOGITS_ALL.
 * tokens (B, T); pos (B) start positions, pos[b] + T <= ctx; B <= s->B;
 * B*T <= s->max_tokens. */
void spq_forward(float *logits, const spq_model *m, spq_state *s, const int *tokens, const int *pos, int B, int T,
                 int logits_mode);

#endif
