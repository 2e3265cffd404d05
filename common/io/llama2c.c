/* llama2c.c - loads a llama2.c checkpoint (legacy format).
 *
 * Layout: a header of 7 int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; a negative vocab_size means an untied
 * classifier), then fp32 tensors: token embedding, all layers' attention
 * norms, wq, wk, wv, wo, ffn norms, w1 (gate), w2 (down), w3 (up), the final
 * norm, two RoPE tables we do not need, and the classifier when untied.
 * llama2.c applies RoPE to interleaved pairs (2i, 2i+1); we keep Hugging
 * Face's rotate-half pairs (i, i+hd/2), so q and k rows are permuted per
 * head on load. */
#include "llama2c.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* (rows, cols) for each head: rows 0,2,4,.. then 1,3,5,.. */
static void permute_interleaved_to_half(float *w, int n_heads, int head_dim, int cols) {
    size_t rowb = (size_t)cols * sizeof(float);
    float *tmp = spq_malloc((size_t)head_dim * rowb);
    for (int h = 0; h < n_heads; h++) {
        float *hw = w + (size_t)h * head_dim * cols;
        for (int j = 0; j < head_dim / 2; j++) {
            memcpy(tmp + (size_t)j * cols, hw + (size_t)(2 * j) * cols, rowb);
            memcpy(tmp + (size_t)(j + head_dim / 2) * cols, hw + (size_t)(2 * j + 1) * cols, rowb);
        }
        memcpy(hw, tmp, (size_t)head_dim * rowb);
    }
    free(tmp);
}

int spq_model_load_llama2c(spq_model *m, const char *path, spq_err *err) {
    memset(m, 0, sizeof *m);
    spq_mmap f;
    if (spq_mmap_open(&f, path, err)) return -1;
    if (f.size < 7 * sizeof(int32_t)) {
        spq_mmap_close(&f);
        return spq_fail(err, "%s: truncated llama2.c header (%zu bytes, need 28)", path, f.size);
    }
    int32_t h[7];
    memcpy(h, f.data, sizeof h);
    spq_config c = {0};
    c.dim = h[0];
    c.hidden_dim = h[1];
    c.n_layers = h[2];
    c.n_heads = h[3];
    c.n_kv_heads = h[4];
    c.tied = h[5] > 0;
    c.vocab_size = h[5] > 0 ? h[5] : (h[5] == INT32_MIN ? 0 : -h[5]);
    c.seq_len = h[6];
    c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.bos_id = 1;
    c.eos_id = 2;
    if (spq_config_check(&c, path, err) || (c.dim % c.n_heads &&
        spq_fail(err, "%s: dim %d is not a multiple of n_heads %d", path, c.dim, c.n_heads))) {
        spq_mmap_close(&f);
        return -1;
    }
    size_t d = c.dim, hd = c.head_dim, hid = c.hidden_dim, L = c.n_layers, V = c.vocab_size;
    size_t qd = (size_t)c.n_heads * hd, kvd = (size_t)c.n_kv_heads * hd;
    /* in long double first: a crafted header must not wrap the size check */
    long double needl = (long double)V * d * (c.tied ? 1 : 2) +
                        (long double)L * (2.0L * d + (long double)qd * d + 2.0L * kvd * d + (long double)d * qd +
                                          3.0L * hid * d) +
                        d + (long double)c.seq_len * hd;  /* the two RoPE tables, hd/2 each */
    if (needl * 4 > (long double)f.size) {
        spq_mmap_close(&f);
        return spq_fail(err, "%s: truncated: the header promises %.0Lf bytes of weights, the file has %zu", path,
                        needl * 4, f.size - 28);
    }
    size_t need = (size_t)needl;
    if (f.size < 28 + need * sizeof(float)) {
        spq_mmap_close(&f);
        return spq_fail(err, "%s: truncated: the header promises %zu bytes of weights, the file has %zu",
                        path, need * sizeof(float), f.size - 28);
    }
    spq_model_alloc(m, &c);
    const uint8_t *p = f.data + 28;
#define TAKE(dst, n)                             \
    do {                                         \
        memcpy((dst), p, (n) * sizeof(float));   \
        p += (n) * sizeof(float);                \
    } while (0)
    TAKE(m->tok_emb, V * d);
    for (size_t l = 0; l < L; l++) TAKE(m->layers[l].attn_norm, d);
    for (size_t l = 0; l < L; l++) TAKE(m->layers[l].wq, qd * d);
    for (size_t l = 0; l < L; l++) TAKE(m->layers[l].wk, kvd * d);
    for (size_t l = 0; l < L; l++) TAKE(m->layers[l].wv, kvd * d);
    for (size_t l = 0; l < L; l++) TAKE(m->layers[l].wo, d * qd);
    for (size_t l = 0; l < L; l++) TAKE(m->layers[l].ffn_norm, d);
    for (size_t l = 0; l < L; l++) TAKE(m->layers[l].w_gate, hid * d);
    for (size_t l = 0; l < L; l++) TAKE(m->layers[l].w_down, d * hid);
    for (size_t l = 0; l < L; l++) TAKE(m->layers[l].w_up, hid * d);
    TAKE(m->final_norm, d);
    p += (size_t)c.seq_len * hd * sizeof(float);  /* freq_cis_real, freq_cis_imag */
    if (!c.tied) TAKE(m->lm_head, V * d);
#undef TAKE
    for (size_t l = 0; l < L; l++) {
        permute_interleaved_to_half(m->layers[l].wq, c.n_heads, c.head_dim, c.dim);
        permute_interleaved_to_half(m->layers[l].wk, c.n_kv_heads, c.head_dim, c.dim);
    }
    spq_mmap_close(&f);
    m->path = spq_strdup(path);
    m->format = spq_strdup("llama2c");
    return 0;
}
