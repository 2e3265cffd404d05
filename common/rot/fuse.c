/* fuse.c - see fuse.h. */
#include "fuse.h"

#include <stdlib.h>
#include <string.h>

#include "common/model/mapped.h"

/* W (rows, cols) <- W diag(w) */
static void scale_columns(float *W, const float *w, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) W[r * cols + c] = (float)((double)W[r * cols + c] * (double)w[c]);
}

static void set_ones(float *w, size_t n) {
    for (size_t i = 0; i < n; i++) w[i] = 1.0f;
}

/* a layer's input norm into q, k, v and its post-attention norm into gate, up */
static void fuse_layer(spq_layer *L, const float *attn_norm, const float *ffn_norm, const spq_config *c) {
    size_t d = c->dim, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    scale_columns(L->wq, attn_norm, qd, d);
    scale_columns(L->wk, attn_norm, kvd, d);
    scale_columns(L->wv, attn_norm, kvd, d);
    scale_columns(L->w_gate, ffn_norm, c->hidden_dim, d);
    scale_columns(L->w_up, ffn_norm, c->hidden_dim, d);
}

/* A mapped model's layers are fused when converted: the transform keeps the
 * norm weights, (n_layers, 2, dim): attn_norm, ffn_norm. */
static void fuse_xform(spq_layer *L, int l, const spq_config *c, const void *ctx) {
    const float *norms = (const float *)ctx + (size_t)l * 2 * c->dim;
    fuse_layer(L, norms, norms + c->dim, c);
}

static void fuse_mapped(spq_model *m) {
    const spq_config *c = &m->cfg;
    size_t d = c->dim;
    float *norms = spq_malloc((size_t)c->n_layers * 2 * d * sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        spq_layer *L = &m->layers[l];
        memcpy(norms + (size_t)l * 2 * d, L->attn_norm, d * sizeof(float));
        memcpy(norms + (size_t)l * 2 * d + d, L->ffn_norm, d * sizeof(float));
        set_ones(L->attn_norm, d);
        set_ones(L->ffn_norm, d);
    }
    spq_mapped_add_xform(m, (spq_mapped_xform){fuse_xform, free, norms});
}

void spq_fuse_norms(spq_model *m) {
    const spq_config *c = &m->cfg;
    size_t d = c->dim;
    spq_model_untie(m);
    if (m->mapped) {
        fuse_mapped(m);
    } else {
        for (int l = 0; l < c->n_layers; l++) {
            spq_layer *L = &m->layers[l];
            fuse_layer(L, L->attn_norm, L->ffn_norm, c);
            set_ones(L->attn_norm, d);
            set_ones(L->ffn_norm, d);
        }
    }
    scale_columns(m->lm_head, m->final_norm, c->vocab_size, d);
    set_ones(m->final_norm, d);
}

int spq_model_is_fused(const spq_model *m) {
    size_t d = m->cfg.dim;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (size_t i = 0; i < d; i++)
            if (m->layers[l].attn_norm[i] != 1.0f || m->layers[l].ffn_norm[i] != 1.0f) return 0;
    for (size_t i = 0; i < d; i++)
        if (m->final_norm[i] != 1.0f) return 0;
    return m->lm_head != m->tok_emb;
}
