/* forward.c - see forward.h.
 *
 * Moving parts: the embedding and classifier (fp32 or, in a packed model,
 * fp16/bf16 rows), one layer function used by spq_forward and by calibration,
 * the linear step (sgemm on fp32 weights after the fake activation quantizer,
 * or the packed integer/W4A16 kernels after quantizing the input once per
 * site), and the KV cache (fp32 rows of the fake-quantized values, or integer
 * codes whose dequantized values are bitwise the same: s * (code - z)). */
#include "forward.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "linear.h"
#include "mapped.h"
#include "packed_weights.h"

void spq_state_build(spq_state *s, const spq_config *c, int B, int ctx, int max_tokens) {
    memset(s, 0, sizeof *s);
    s->B = B;
    s->ctx = ctx;
    s->max_tokens = max_tokens;
    size_t kvd = (size_t)c->n_kv_heads * c->head_dim, qd = (size_t)c->n_heads * c->head_dim;
    size_t slots = (size_t)c->n_layers * B * ctx;
    if (c->kv_cache_bits > 0 && c->kv_cache_bits < SPQ_QUANT_OFF) {
        s->kv_bits = c->kv_cache_bits;
        s->kv_row = (int)(c->kv_cache_bits <= 4 ? (kvd + 1) / 2 : kvd);
        s->kq = spq_calloc(slots * s->kv_row, 1);
        s->vq = spq_calloc(slots * s->kv_row, 1);
        s->ks = spq_calloc(slots * c->n_kv_heads, sizeof(float));
        s->kz = spq_calloc(slots * c->n_kv_heads, sizeof(float));
        s->vs = spq_calloc(slots * c->n_kv_heads, sizeof(float));
        s->vz = spq_calloc(slots * c->n_kv_heads, sizeof(float));
        s->kdq = spq_malloc((size_t)ctx * kvd * sizeof(float));
        s->vdq = spq_malloc((size_t)ctx * kvd * sizeof(float));
    } else {
        s->k_cache = spq_calloc(slots * kvd, sizeof(float));
        s->v_cache = spq_calloc(slots * kvd, sizeof(float));
    }
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

void spq_state_build_one_layer(spq_state *s, const spq_config *c, int B, int ctx, int max_tokens) {
    spq_config one = *c;
    one.n_layers = 1;
    spq_state_build(s, &one, B, ctx, max_tokens);
    s->kv_one = 1;
}

void spq_state_free(spq_state *s) {
    free(s->k_cache); free(s->v_cache);
    free(s->kq); free(s->vq); free(s->ks); free(s->kz); free(s->vs); free(s->vz); free(s->kdq); free(s->vdq);
    free(s->rope_cos); free(s->rope_sin);
    free(s->x); free(s->xb); free(s->q); free(s->k); free(s->v); free(s->att);
    free(s->hb); free(s->hb2); free(s->scores); free(s->pos);
    free(s->wbuf);
    spq_qact_free(&s->qa);
    memset(s, 0, sizeof *s);
}

static void residual_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

/* ---- linears ---- */

/* Prepares x (N, C), the input of the linears at `site`: the fake quantizer
 * in place for an fp32 model, integer codes in s->qa for a packed one whose
 * activations are quantized. Returns the observer's answer (non-zero: stop). */
static int linear_input(const spq_model *m, spq_state *s, float *x, int N, int C, int l, int site, int first,
                         spq_observer_fn obs, void *ud) {
    spq_aq_cfg aq = spq_site_aq(&m->q, site, m->cfg.head_dim);
    if (!m->packed) spq_aq_forward(x, x, N, C, &aq);
    else if (aq.bits < SPQ_QUANT_OFF) spq_qact_quantize(&s->qa, x, N, C, &aq, spq_packed_lin(m->packed, l, first)->seg);
    return obs ? obs(ud, l, site, x, N, C) : 0;
}

/* out (N, rows) = the linear applied to its prepared input x (N, cols); L:
 * layer l's fp32 weights (layer_weights) */
static void linear(float *out, const spq_model *m, const spq_layer *L, spq_state *s, const float *x, int N, int l,
                   int which) {
    if (m->packed) {
        const spq_qlinear *w = spq_packed_lin(m->packed, l, which);
        if (spq_site_aq(&m->q, spq_lin_site(which), m->cfg.head_dim).bits < SPQ_QUANT_OFF) spq_qgemm(out, &s->qa, w);
        else spq_qgemm_f32(out, x, N, w);
        return;
    }
    int rows, cols;
    spq_lin_shape(&m->cfg, which, &rows, &cols);
    spq_matmul_forward(out, x, *spq_lin_weight((spq_layer *)L, which), N, cols, rows);
}

/* Layer l's weights: the model's own (a mapped model's layer that has
 * arrays of its own while it is quantized, mapped.h), or a mapped model's
 * converted into s->wbuf, which keeps them while the same layer runs again
 * and the mapped model has not changed since (its gen). */
static const spq_layer *layer_weights(spq_state *s, const spq_model *m, int l) {
    if (!m->mapped || m->layers[l].wq) return &m->layers[l];
    if (s->w_model != m || s->w_layer != l || s->w_gen != m->mapped->gen || !s->wbuf) {
        if (!s->wbuf) s->wbuf = spq_malloc(spq_mapped_layer_floats(&m->cfg) * sizeof(float));
        spq_mapped_layer(&s->wl, s->wbuf, m, l);
        s->w_model = m;
        s->w_layer = l;
        s->w_gen = m->mapped->gen;
    }
    return &s->wl;
}

/* ---- KV cache ---- */

/* Stores T rows of k, v (T, kvd) at positions p0.. of slot b in layer l. The
 * fp32 cache takes them as they are (already fake-quantized when the model
 * quantizes K/V); the integer cache quantizes each (token, head) with kvq. */
static void kv_store(spq_state *s, const spq_config *c, const spq_aq_cfg *kvq, int l, int b, int p0, int T,
                     const float *k, const float *v) {
    int hd = c->head_dim, nkv = c->n_kv_heads, kvd = nkv * hd;
    size_t slot0 = ((size_t)(s->kv_one ? 0 : l) * s->B + (s->slot_of ? s->slot_of[b] : b)) * s->ctx + p0;
    if (!s->kv_bits) {
        memcpy(s->k_cache + slot0 * kvd, k, (size_t)T * kvd * sizeof(float));
        memcpy(s->v_cache + slot0 * kvd, v, (size_t)T * kvd * sizeof(float));
        return;
    }
    if (kvq->bits != s->kv_bits) {
        fprintf(stderr, "spinq: the KV cache holds %d-bit codes but the model quantizes K/V to %d bits\n", s->kv_bits,
                kvq->bits);
        abort();
    }
    int qmin, qmax;
    spq_quant_range(kvq->bits, kvq->sym, &qmin, &qmax);
    for (int kind = 0; kind < 2; kind++) {
        const float *src = kind ? v : k;
        uint8_t *codes = kind ? s->vq : s->kq;
        float *sc = kind ? s->vs : s->ks, *zp = kind ? s->vz : s->kz;
        for (int t = 0; t < T; t++) {
            size_t slot = slot0 + t;
            uint8_t *row = codes + slot * s->kv_row;
            if (s->kv_bits <= 4) memset(row, 0, s->kv_row);
            for (int h = 0; h < nkv; h++) {
                const float *x = src + (size_t)t * kvd + (size_t)h * hd;
                float sv, zv;
                spq_aq_find(&sv, &zv, x, hd, kvq);
                sc[slot * nkv + h] = sv;
                zp[slot * nkv + h] = zv - (float)qmin; /* codes are stored offset into [0, 2^bits) */
                for (int i = 0; i < hd; i++) {
                    int u = (int)spq_quant_code(x[i], sv, zv, qmin, qmax) - qmin, e = h * hd + i;
                    if (s->kv_bits <= 4) row[e / 2] |= (uint8_t)(e & 1 ? u << 4 : u);
                    else row[e] = (uint8_t)u;
                }
            }
        }
    }
}

/* The keys and values (P, kvd) of slot b in layer l: the fp32 cache rows, or
 * the integer codes dequantized into s->kdq, s->vdq. */
static void kv_rows(const float **k, const float **v, spq_state *s, const spq_config *c, int l, int b, int P) {
    int hd = c->head_dim, nkv = c->n_kv_heads, kvd = nkv * hd;
    size_t slot0 = ((size_t)(s->kv_one ? 0 : l) * s->B + (s->slot_of ? s->slot_of[b] : b)) * s->ctx;
    if (!s->kv_bits) {
        *k = s->k_cache + slot0 * kvd;
        *v = s->v_cache + slot0 * kvd;
        return;
    }
    for (int kind = 0; kind < 2; kind++) {
        const uint8_t *codes = kind ? s->vq : s->kq;
        const float *sc = kind ? s->vs : s->ks, *zp = kind ? s->vz : s->kz;
        float *out = kind ? s->vdq : s->kdq;
        for (int p = 0; p < P; p++) {
            const uint8_t *row = codes + (slot0 + p) * s->kv_row;
            float *o = out + (size_t)p * kvd;
            for (int h = 0; h < nkv; h++) {
                float sv = sc[(slot0 + p) * nkv + h], zv = zp[(slot0 + p) * nkv + h];
                float *oh = o + (size_t)h * hd;
                if (s->kv_bits <= 4) {  /* head_dim is even: a head starts on a byte */
                    const uint8_t *b = row + (size_t)h * hd / 2;
                    for (int i = 0; i < hd / 2; i++) {
                        oh[2 * i] = sv * ((float)(b[i] & 15) - zv);
                        oh[2 * i + 1] = sv * ((float)(b[i] >> 4) - zv);
                    }
                } else {
                    const uint8_t *b = row + (size_t)h * hd;
                    for (int i = 0; i < hd; i++) oh[i] = sv * ((float)b[i] - zv);
                }
            }
        }
    }
    *k = s->kdq;
    *v = s->vdq;
}

/* ---- layers ---- */

void spq_embed_forward(spq_state *s, const int *tokens, const spq_model *m, int N) {
    int D = m->cfg.dim;
    for (int n = 0; n < N; n++) {
        float *x = s->x + (size_t)n * D;
        if (m->tok_emb) memcpy(x, m->tok_emb + (size_t)tokens[n] * D, D * sizeof(float));
        else if (m->packed) spq_packed_emb_row(x, m->packed, tokens[n], D);
        else spq_mapped_emb_row(x, m->mapped, tokens[n], D);
    }
}

void spq_layer_forward(spq_state *s, const int *pos, const spq_model *m, int l, int B, int T, spq_observer_fn obs,
                       void *ud) {
    const spq_config *c = &m->cfg;
    const spq_layer *L = layer_weights(s, m, l);
    int D = c->dim, H = c->hidden_dim, hd = c->head_dim;
    int qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    int N = B * T;
    spq_aq_cfg kv_cfg = spq_qcfg_kv(&m->q, hd);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) s->pos[b * T + t] = pos[b] + t;

    /* attention block */
    spq_rmsnorm_forward(s->xb, NULL, s->x, L->attn_norm, N, D, c->norm_eps);
    if (linear_input(m, s, s->xb, N, D, l, SPQ_SITE_QKV, SPQ_LIN_Q, obs, ud)) return;
    linear(s->q, m, L, s, s->xb, N, l, SPQ_LIN_Q);
    linear(s->k, m, L, s, s->xb, N, l, SPQ_LIN_K);
    linear(s->v, m, L, s, s->xb, N, l, SPQ_LIN_V);
    spq_rope_forward(s->q, s->pos, s->rope_cos, s->rope_sin, N, c->n_heads, hd);
    spq_rope_forward(s->k, s->pos, s->rope_cos, s->rope_sin, N, c->n_kv_heads, hd);
    if (m->r3) {
        spq_rot_online_apply(m->r3, s->q, N * c->n_heads);
        spq_rot_online_apply(m->r3, s->k, N * c->n_kv_heads);
    }
    if (!s->kv_bits) {
        spq_aq_forward(s->k, s->k, N, kvd, &kv_cfg);
        spq_aq_forward(s->v, s->v, N, kvd, &kv_cfg);
    }
    for (int b = 0; b < B; b++) {
        const float *kb, *vb;
        kv_store(s, c, &kv_cfg, l, b, pos[b], T, s->k + (size_t)b * T * kvd, s->v + (size_t)b * T * kvd);
        kv_rows(&kb, &vb, s, c, l, b, pos[b] + T);
        spq_attention_forward(s->att + (size_t)b * T * qd, s->q + (size_t)b * T * qd, kb, vb, s->scores, T,
                              pos[b] + T, c->n_heads, c->n_kv_heads, hd);
    }
    if (linear_input(m, s, s->att, N, qd, l, SPQ_SITE_O, SPQ_LIN_O, obs, ud)) return;
    linear(s->xb, m, L, s, s->att, N, l, SPQ_LIN_O);
    residual_add(s->x, s->xb, (size_t)N * D);

    /* feed-forward block */
    spq_rmsnorm_forward(s->xb, NULL, s->x, L->ffn_norm, N, D, c->norm_eps);
    if (linear_input(m, s, s->xb, N, D, l, SPQ_SITE_GATEUP, SPQ_LIN_GATE, obs, ud)) return;
    linear(s->hb, m, L, s, s->xb, N, l, SPQ_LIN_GATE);
    linear(s->hb2, m, L, s, s->xb, N, l, SPQ_LIN_UP);
    spq_swiglu_forward(s->hb, s->hb, s->hb2, (size_t)N * H);
    if (m->r4) spq_rot_online_apply(m->r4, s->hb, N);
    if (linear_input(m, s, s->hb, N, H, l, SPQ_SITE_DOWN, SPQ_LIN_DOWN, obs, ud)) return;
    linear(s->xb, m, L, s, s->hb, N, l, SPQ_LIN_DOWN);
    residual_add(s->x, s->xb, (size_t)N * D);
}

/* logits (N, V) = lm_head rmsnorm(x (N, D)) */
static void classifier(float *logits, const spq_model *m, float *xb, const float *x, int N) {
    const spq_config *c = &m->cfg;
    spq_rmsnorm_forward(xb, NULL, x, m->final_norm, N, c->dim, c->norm_eps);
    if (m->lm_head) spq_matmul_forward(logits, xb, m->lm_head, N, c->dim, c->vocab_size);
    else if (m->mapped) spq_mapped_classifier(logits, xb, N, m->mapped, c);
    else spq_hgemm(logits, xb, N, m->packed->head16, c->vocab_size, c->dim, m->packed->emb_dtype == SPQ_EMB_BF16);
}

void spq_forward(float *logits, spq_state *s, const int *tokens, const int *pos, const spq_model *m, int B, int T,
                 int logits_mode) {
    const spq_config *c = &m->cfg;
    int D = c->dim, N = B * T;
    spq_embed_forward(s, tokens, m, N);
    for (int l = 0; l < c->n_layers; l++) spq_layer_forward(s, pos, m, l, B, T, NULL, NULL);
    if (logits_mode == SPQ_LOGITS_ALL) {
        classifier(logits, m, s->xb, s->x, N);
    } else {
        for (int b = 0; b < B; b++)
            memcpy(s->xb + (size_t)b * D, s->x + ((size_t)b * T + T - 1) * D, D * sizeof(float));
        classifier(logits, m, s->xb, s->xb, B);
    }
}
