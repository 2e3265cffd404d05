/* forward.c - see forward.h. */
#include "forward.h"

#include <stdlib.h>
#include <string.h>

#include "layers.h"

void spq_state_build(spq_state *s, const spq_config *c, int B, int ctx, int max_tokens) {
    memset(s, 0, sizeof *s);
    s->B = B;
    s->ctx = ctx;
    s->max_tokens = max_tokens;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, qd = (size_t)c->n_heads * c->head_dim;
    size_t cache = (size_t)c->n_layers * B * ctx * kvd;
    s->k_cache = spq_calloc(cache, sizeof(float));
    s->v_cache = spq_calloc(cache, sizeof(float));
    s->rope_cos = spq_malloc((size_t)ctx * (c->head_dim / 2) * sizeof(float));
    s->rope_sin = spq_malloc((size_t)ctx * (c->head_dim / 2) * sizeof(float));
    spq_rope_tables(s->rope_cos, s->rope_sin, c, ctx);
    size_t N = max_tokens;
    s->x = spq_malloc(N * c->dim * sizeof(float));
    s->xb = spq_malloc(N * c->dim * sizeof(float));
    s->q = spq_malloc(N * qd * sizeof(float));
    s->k = spq_malloc(N * kvd * sizeof(float));
    s->v = spq_malloc(N * kvd * sizeof(float));
    s->att = spq_malloc(N * qd * sizeof(float));
    s->hb = spq_malloc(N * c->hidden_dim * sizeof(float));
    s->hb2 = spq_malloc(N * c->hidden_dim * sizeof(float));
    s->scores = spq_malloc(N * (size_t)ctx * sizeof(float));
    s->pos = spq_malloc(N * sizeof(int));
}

void spq_state_free(spq_state *s) {
    free(s->k_cache); free(s->v_cache); free(s->rope_cos); free(s->rope_sin);
    free(s->x); free(s->xb); free(s->q); free(s->k); free(s->v); free(s->att);
    free(s->hb); free(s->hb2); free(s->scores); free(s->pos);
    memset(s, 0, sizeof *s);
}

static void residual_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

void spq_forward(float *logits, const spq_model *m, spq_state *s, const int *tokens, const int *pos, int B, int T,
                 int logits_mode) {
    const spq_config *c = &m->cfg;
    int D = c->dim, H = c->hidden_dim, hd = c->head_dim;
    int qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    int N = B * T;
    spq_aq_cfg kv_cfg = spq_qcfg_kv(&m->q, hd), o_cfg = spq_qcfg_o(&m->q, hd);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) s->pos[b * T + t] = pos[b] + t;

    for (int n = 0; n < N; n++)
        memcpy(s->x + (size_t)n * D, m->tok_emb + (size_t)tokens[n] * D, D * sizeof(float));

    for (int l = 0; l < c->n_layers; l++) {
        const spq_layer *L = &m->layers[l];
        float *kc = s->k_cache + (size_t)l * s->B * s->ctx * kvd;
        float *vc = s->v_cache + (size_t)l * s->B * s->ctx * kvd;

        /* attention block */
        spq_rmsnorm_forward(s->xb, NULL, s->x, L->attn_norm, N, D, c->norm_eps);
        spq_aq_forward(s->xb, s->xb, N, D, &m->q.a);
        spq_matmul_forward(s->q, s->xb, L->wq, N, D, qd);
        spq_matmul_forward(s->k, s->xb, L->wk, N, D, kvd);
        spq_matmul_forward(s->v, s->xb, L->wv, N, D, kvd);
        spq_rope_forward(s->q, s->pos, s->rope_cos, s->rope_sin, N, c->n_heads, hd);
        spq_rope_forward(s->k, s->pos, s->rope_cos, s->rope_sin, N, c->n_kv_heads, hd);
        if (m->r3) {
            spq_rot_online_apply(m->r3, s->q, N * c->n_heads);
            spq_rot_online_apply(m->r3, s->k, N * c->n_kv_heads);
        }
        spq_aq_forward(s->k, s->k, N, kvd, &kv_cfg);
        spq_aq_forward(s->v, s->v, N, kvd, &kv_cfg);
        for (int b = 0; b < B; b++) {
            float *kb = kc + (size_t)b * s->ctx * kvd, *vb = vc + (size_t)b * s->ctx * kvd;
            memcpy(kb + (size_t)pos[b] * kvd, s->k + (size_t)b * T * kvd, (size_t)T * kvd * sizeof(float));
            memcpy(vb + (size_t)pos[b] * kvd, s->v + (size_t)b * T * kvd, (size_t)T * kvd * sizeof(float));
            spq_attention_forward(s->att + (size_t)b * T * qd, s->q + (size_t)b * T * qd, kb, vb, s->scores, T,
                                  pos[b] + T, c->n_heads, c->n_kv_heads, hd);
        }
        spq_aq_forward(s->att, s->att, N, qd, &o_cfg);
        spq_matmul_forward(s->xb, s->att, L->wo, N, qd, D);
        residual_add(s->x, s->xb, (size_t)N * D);

        /* feed-forward block */
        spq_rmsnorm_forward(s->xb, NULL, s->x, L->ffn_norm, N, D, c->norm_eps);
        spq_aq_forward(s->xb, s->xb, N, D, &m->q.a);
        spq_matmul_forward(s->hb, s->xb, L->w_gate, N, D, H);
        spq_matmul_forward(s->hb2, s->xb, L->w_up, N, D, H);
        spq_swiglu_forward(s->hb, s->hb, s->hb2, (size_t)N * H);
        if (m->r4) spq_rot_online_apply(m->r4, s->hb, N);
        spq_aq_forward(s->hb, s->hb, N, H, &m->q.a);
        spq_matmul_forward(s->xb, s->hb, L->w_down, N, H, D);
        residual_add(s->x, s->xb, (size_t)N * D);
    }

    if (logits_mode == SPQ_LOGITS_ALL) {
        spq_rmsnorm_forward(s->xb, NULL, s->x, m->final_norm, N, D, c->norm_eps);
        spq_matmul_forward(logits, s->xb, m->lm_head, N, D, c->vocab_size);
    } else {
        for (int b = 0; b < B; b++)
            memcpy(s->xb + (size_t)b * D, s->x + ((size_t)b * T + T - 1) * D, D * sizeof(float));
        spq_rmsnorm_forward(s->xb, NULL, s->xb, m->final_norm, B, D, c->norm_eps);
        spq_matmul_forward(logits, s->xb, m->lm_head, B, D, c->vocab_size);
    }
}
