/* model.c - allocation, copies and random initialization of spq_model; the
 * loaders live in io/ (load.c picks one by path). */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mapped.h"
#include "packed_weights.h"

int spq_config_check(const spq_config *c, const char *src, spq_err *err) {
#define POS(field, name) \
    if (c->field <= 0) return spq_fail(err, "%s: %s must be positive (got %d)", src, name, (int)c->field)
    POS(dim, "hidden_size");
    POS(hidden_dim, "intermediate_size");
    POS(n_layers, "num_hidden_layers");
    POS(n_heads, "num_attention_heads");
    POS(n_kv_heads, "num_key_value_heads");
    POS(head_dim, "head_dim");
    POS(vocab_size, "vocab_size");
    POS(seq_len, "max_position_embeddings");
#undef POS
    if (c->n_heads % c->n_kv_heads)
        return spq_fail(err, "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
                        src, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2) return spq_fail(err, "%s: head_dim must be even for RoPE (got %d)", src, c->head_dim);
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return spq_fail(err, "%s: rms_norm_eps must be a positive number", src);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return spq_fail(err, "%s: rope_theta must be a positive number", src);
    if (c->rope_llama3) {
        if (!(c->rope_factor > 0) || !(c->rope_low_freq_factor > 0) ||
            !(c->rope_high_freq_factor > c->rope_low_freq_factor) || c->rope_orig_ctx <= 0)
            return spq_fail(err, "%s: rope_scaling: llama3 needs factor > 0, high_freq_factor > low_freq_factor > 0 and original_max_position_embeddings > 0", src);
    }
    /* the product of the largest matrices must fit a size_t comfortably and
     * BLAS's int dimensions */
    if ((long long)c->vocab_size * c->dim > (1LL << 34) || (long long)c->hidden_dim * c->dim > (1LL << 34) ||
        (long long)c->n_heads * c->head_dim * c->dim > (1LL << 34))
        return spq_fail(err, "%s: model is too large (vocab_size x hidden_size)", src);
    if (c->bos_id >= c->vocab_size || c->eos_id >= c->vocab_size)
        return spq_fail(err, "%s: bos/eos token id out of range of vocab_size %d", src, c->vocab_size);
    if (c->n_eos < 0 || c->n_eos > SPQ_MAX_EOS)
        return spq_fail(err, "%s: %d eos token ids (at most %d)", src, c->n_eos, SPQ_MAX_EOS);
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] < 0 || c->eos_ids[i] >= c->vocab_size)
            return spq_fail(err, "%s: eos token id %d out of range of vocab_size %d", src, c->eos_ids[i],
                            c->vocab_size);
    return 0;
}

int spq_config_is_eos(const spq_config *c, int id) {
    if (id < 0) return 0;
    if (id == c->eos_id) return 1;
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_ids[i] == id) return 1;
    return 0;
}

spq_qcfg spq_qcfg_off(void) {
    spq_qcfg q = {.w = {.bits = SPQ_QUANT_OFF, .sym = 1},
                  .a = {.bits = SPQ_QUANT_OFF, .clip = 1.0f},
                  .kv = {.bits = SPQ_QUANT_OFF, .clip = 1.0f}};
    return q;
}

spq_aq_cfg spq_qcfg_kv(const spq_qcfg *q, int head_dim) {
    spq_aq_cfg c = q->kv;
    c.groupsize = head_dim;
    return c;
}

spq_aq_cfg spq_qcfg_o(const spq_qcfg *q, int head_dim) {
    spq_aq_cfg c = q->a;
    c.groupsize = head_dim;
    return c;
}

void spq_model_alloc_norms(spq_model *m, const spq_config *c) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->q = spq_qcfg_off();
    m->layers = spq_calloc(c->n_layers, sizeof(spq_layer));
    for (int l = 0; l < c->n_layers; l++) {
        m->layers[l].attn_norm = spq_calloc(c->dim, sizeof(float));
        m->layers[l].ffn_norm = spq_calloc(c->dim, sizeof(float));
    }
    m->final_norm = spq_calloc(c->dim, sizeof(float));
}

void spq_model_alloc(spq_model *m, const spq_config *c) {
    spq_model_alloc_norms(m, c);
    size_t d = c->dim, hd = c->head_dim, h = c->hidden_dim;
    size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd;
    m->tok_emb = spq_calloc((size_t)c->vocab_size * d, sizeof(float));
    for (int l = 0; l < c->n_layers; l++) {
        spq_layer *L = &m->layers[l];
        L->wq = spq_calloc(qd * d, sizeof(float));
        L->wk = spq_calloc(kvd * d, sizeof(float));
        L->wv = spq_calloc(kvd * d, sizeof(float));
        L->wo = spq_calloc(d * qd, sizeof(float));
        L->w_gate = spq_calloc(h * d, sizeof(float));
        L->w_up = spq_calloc(h * d, sizeof(float));
        L->w_down = spq_calloc(d * h, sizeof(float));
    }
    m->lm_head = c->tied ? m->tok_emb : spq_calloc((size_t)c->vocab_size * d, sizeof(float));
}

void spq_model_free(spq_model *m) {
    if (!m) return;
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            spq_layer *L = &m->layers[l];
            free(L->attn_norm); free(L->wq); free(L->wk); free(L->wv); free(L->wo);
            free(L->ffn_norm); free(L->w_gate); free(L->w_up); free(L->w_down);
        }
    }
    if (m->lm_head != m->tok_emb) free(m->lm_head);
    free(m->tok_emb);
    free(m->layers);
    free(m->final_norm);
    free(m->path);
    free(m->format);
    if (m->packed) spq_packed_free(m->packed);
    free(m->packed);
    if (m->mapped) spq_mapped_free(m->mapped);
    free(m->mapped);
    if (m->r3) spq_rot_online_free(m->r3);
    if (m->r4) spq_rot_online_free(m->r4);
    free(m->r3);
    free(m->r4);
    memset(m, 0, sizeof *m);
}

void spq_model_untie(spq_model *m) {
    if (m->mapped) spq_mapped_ends_f32(m); /* the layers can stay mapped */
    if (m->lm_head != m->tok_emb) return;
    size_t n = (size_t)m->cfg.vocab_size * m->cfg.dim;
    m->lm_head = spq_malloc(n * sizeof(float));
    memcpy(m->lm_head, m->tok_emb, n * sizeof(float));
    m->cfg.tied = 0;
}

static float *dup_floats(const float *src, size_t n) {
    if (!src) return NULL; /* a packed model has no fp32 linears */
    float *d = spq_malloc(n * sizeof(float));
    memcpy(d, src, n * sizeof(float));
    return d;
}

void spq_model_copy(spq_model *dst, const spq_model *src) {
    const spq_config *c = &src->cfg;
    size_t d = c->dim, hd = c->head_dim, h = c->hidden_dim;
    size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd;
    memset(dst, 0, sizeof *dst);
    dst->cfg = *c;
    dst->q = src->q;
    dst->r3 = src->r3 ? spq_rot_online_clone(src->r3) : NULL;
    dst->r4 = src->r4 ? spq_rot_online_clone(src->r4) : NULL;
    dst->packed = src->packed ? spq_packed_clone(src->packed, c) : NULL;
    dst->tok_emb = dup_floats(src->tok_emb, (size_t)c->vocab_size * d);
    dst->layers = spq_calloc(c->n_layers, sizeof(spq_layer));
    for (int l = 0; l < c->n_layers; l++) {
        const spq_layer *S = &src->layers[l];
        spq_layer *L = &dst->layers[l];
        L->attn_norm = dup_floats(S->attn_norm, d);
        L->wq = dup_floats(S->wq, qd * d);
        L->wk = dup_floats(S->wk, kvd * d);
        L->wv = dup_floats(S->wv, kvd * d);
        L->wo = dup_floats(S->wo, d * qd);
        L->ffn_norm = dup_floats(S->ffn_norm, d);
        L->w_gate = dup_floats(S->w_gate, h * d);
        L->w_up = dup_floats(S->w_up, h * d);
        L->w_down = dup_floats(S->w_down, d * h);
    }
    dst->final_norm = dup_floats(src->final_norm, d);
    dst->lm_head = src->lm_head == src->tok_emb ? dst->tok_emb
                                                : dup_floats(src->lm_head, (size_t)c->vocab_size * d);
    if (src->mapped) spq_mapped_to_f32(dst, src->mapped);
    dst->path = src->path ? spq_strdup(src->path) : NULL;
    dst->format = src->format ? spq_strdup(src->format) : NULL;
}

/* Uniform on [-a, a] with a = std*sqrt(3) has the given standard deviation;
 * it is several times cheaper than normal draws, which matters for the
 * billion-parameter benchmark models. */
static void fill_normal(float *x, size_t n, float std, spq_rng *r) {
    double a = std * sqrt(3.0) * 2.0 / 18446744073709551616.0;
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)spq_rng_u64(r) * a - std * sqrt(3.0));
}

static void fill_norm_weight(float *x, size_t n, spq_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(1.0 + 0.1 * spq_rng_normal(r));
}

void spq_random_weights(float *x, size_t n, int norm, spq_rng *r) {
    if (norm) fill_norm_weight(x, n, r);
    else fill_normal(x, n, 0.02f, r);
}

void spq_model_init_random(spq_model *m, const spq_config *c, uint64_t seed) {
    spq_model_alloc(m, c);
    spq_rng r;
    spq_rng_seed(&r, seed);
    size_t d = c->dim, hd = c->head_dim, h = c->hidden_dim;
    size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd;
    spq_random_weights(m->tok_emb, (size_t)c->vocab_size * d, 0, &r);
    for (int l = 0; l < c->n_layers; l++) {
        spq_layer *L = &m->layers[l];
        spq_random_weights(L->attn_norm, d, 1, &r);
        spq_random_weights(L->wq, qd * d, 0, &r);
        spq_random_weights(L->wk, kvd * d, 0, &r);
        spq_random_weights(L->wv, kvd * d, 0, &r);
        spq_random_weights(L->wo, d * qd, 0, &r);
        spq_random_weights(L->ffn_norm, d, 1, &r);
        spq_random_weights(L->w_gate, h * d, 0, &r);
        spq_random_weights(L->w_up, h * d, 0, &r);
        spq_random_weights(L->w_down, d * h, 0, &r);
    }
    spq_random_weights(m->final_norm, d, 1, &r);
    if (!c->tied) spq_random_weights(m->lm_head, (size_t)c->vocab_size * d, 0, &r);
    m->path = spq_strdup("random");
    m->format = spq_strdup("random");
}

spq_config spq_config_llama32_1b(int n_layers) {
    spq_config c = {0};
    c.dim = 2048;
    c.hidden_dim = 8192;
    c.n_layers = n_layers;
    c.n_heads = 32;
    c.n_kv_heads = 8;
    c.head_dim = 64;
    c.vocab_size = 128256;
    c.seq_len = 131072;
    c.norm_eps = 1e-5f;
    c.rope_theta = 500000.0f;
    c.rope_llama3 = 1;
    c.rope_factor = 32.0f;
    c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f;
    c.rope_orig_ctx = 8192;
    c.tied = 1;
    c.bos_id = 128000;
    c.eos_id = 128001;
    return c;
}

/* meta-llama/Llama-2-7b-hf's config.json */
static spq_config llama2_7b(int n_layers) {
    spq_config c = {0};
    c.dim = 4096;
    c.hidden_dim = 11008;
    c.n_layers = n_layers;
    c.n_heads = 32;
    c.n_kv_heads = 32;
    c.head_dim = 128;
    c.vocab_size = 32000;
    c.seq_len = 4096;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.bos_id = 1;
    c.eos_id = 2;
    return c;
}

/* meta-llama/Meta-Llama-3-8B's config.json: no rope scaling (3.1 added it) */
static spq_config llama3_8b(int n_layers) {
    spq_config c = {0};
    c.dim = 4096;
    c.hidden_dim = 14336;
    c.n_layers = n_layers;
    c.n_heads = 32;
    c.n_kv_heads = 8;
    c.head_dim = 128;
    c.vocab_size = 128256;
    c.seq_len = 8192;
    c.norm_eps = 1e-5f;
    c.rope_theta = 500000.0f;
    c.bos_id = 128000;
    c.eos_id = 128001;
    return c;
}

static const struct {
    const char *name;
    spq_config (*make)(int n_layers);
    int n_layers;
} shapes[] = {
    {"llama3.2-1b", spq_config_llama32_1b, 16},
    {"llama2-7b", llama2_7b, 32},
    {"llama3-8b", llama3_8b, 32},
};

const char *spq_config_shape_names(void) { return "llama3.2-1b, llama2-7b, llama3-8b"; }

int spq_config_shape(spq_config *c, const char *name, int n_layers) {
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) {
            *c = shapes[i].make(n_layers > 0 ? n_layers : shapes[i].n_layers);
            return 0;
        }
    return -1;
}

size_t spq_model_nparams(const spq_model *m) {
    const spq_config *c = &m->cfg;
    size_t d = c->dim, hd = c->head_dim, h = c->hidden_dim;
    size_t qd = (size_t)c->n_heads * hd, kvd = (size_t)c->n_kv_heads * hd;
    size_t per = 2 * d + qd * d + 2 * kvd * d + d * qd + 3 * h * d;
    size_t n = (size_t)c->vocab_size * d + per * c->n_layers + d;
    if (m->lm_head != m->tok_emb) n += (size_t)c->vocab_size * d;
    return n;
}
