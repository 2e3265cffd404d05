/* fuse.c - see fuse.h. */
#include "fuse.h"

/* W (rows, cols) <- W diag(w) */
static void scale_columns(float *W, const float *w, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) W[r * cols + c] = (float)((double)W[r * cols + c] * (double)w[c]);
}

static void set_ones(float *w, size_t n) {
    for (size_t i = 0; i < n; i++) w[i] = 1.0f;
}

void spq_fuse_norms(spq_model *m) {
    const spq_config *c = &m->cfg;
    size_t d = c->dim, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    spq_model_untie(m);
    for (int l = 0; l < c->n_layers; l++) {
        spq_layer *L = &m->layers[l];
        scale_columns(L->wq, L->attn_norm, qd, d);
        scale_columns(L->wk, L->attn_norm, kvd, d);
        scale_columns(L->wv, L->attn_norm, kvd, d);
        set_ones(L->attn_norm, d);
        scale_columns(L->w_gate, L->ffn_norm, c->hidden_dim, d);
        scale_columns(L->w_up, L->ffn_norm, c->hidden_dim, d);
        set_ones(L->ffn_norm, d);
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
