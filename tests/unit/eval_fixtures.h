/* eval_fixtures.h - small models and reference computations shared by the
 * evaluation tests (test_rolling, test_kld, test_mc). Header-only: each test
 * binary includes it once. */
#ifndef SPQ_EVAL_FIXTURES_H
#define SPQ_EVAL_FIXTURES_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/model/forward.h"
#include "common/model/model.h"

static inline char *fx_shared(const char *rel) {
    const char *root = getenv("SPINQ_SHARED");
    if (!root) root = "../shared";
    char *p = malloc(strlen(root) + strlen(rel) + 2);
    sprintf(p, "%s/%s", root, rel);
    return p;
}

/* A tiny LLaMA with seeded random weights: 2 layers, GQA, vocab 64. */
static inline void fx_tiny_random(spq_model *m, uint64_t seed, int vocab, int seq_len) {
    spq_config c = {0};
    c.dim = 32;
    c.hidden_dim = 48;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.vocab_size = vocab;
    c.seq_len = seq_len;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.tied = 0;
    c.bos_id = 1;
    c.eos_id = 2;
    spq_model_init_random(m, &c, seed);
    /* larger logits than N(0, 0.02) gives, so distributions are not flat */
    for (size_t i = 0; i < (size_t)vocab * c.dim; i++) m->lm_head[i] *= 60.0f;
}

/* A bigram model: every layer's weights are zero, so attention and the
 * feed-forward add nothing and the final hidden state is the token's
 * embedding; the embedding is the identity (dim = V) and norms are 1, so
 * after token v the logits are S[v][u] / sqrt(1/V + eps) (rmsnorm of a
 * one-hot vector). S is (V, V), row v = scores of the next token. */
static inline void fx_bigram_model(spq_model *m, int V, const float *S, int seq_len) {
    spq_config c = {0};
    c.dim = V;
    c.hidden_dim = 4;
    c.n_layers = 1;
    c.n_heads = 1;
    c.n_kv_heads = 1;
    c.head_dim = V;
    c.vocab_size = V;
    c.seq_len = seq_len;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.tied = 0;
    c.bos_id = 1;
    c.eos_id = 2;
    spq_model_alloc(m, &c);
    for (int v = 0; v < V; v++) m->tok_emb[(size_t)v * V + v] = 1.0f;
    for (int i = 0; i < V; i++) {
        m->layers[0].attn_norm[i] = 1.0f;
        m->layers[0].ffn_norm[i] = 1.0f;
        m->final_norm[i] = 1.0f;
    }
    /* lm_head (V_out, dim): row u, column v = S[v][u] */
    for (int v = 0; v < V; v++)
        for (int u = 0; u < V; u++) m->lm_head[(size_t)u * V + v] = S[(size_t)v * V + u];
    m->path = strdup("bigram");
    m->format = strdup("test");
}

/* log p(next | prev) of the bigram model, in closed form */
static inline double fx_bigram_logp(const float *S, int V, double eps, int prev, int next) {
    double scale = 1.0 / sqrt(1.0 / V + eps), mx = -INFINITY, z = 0;
    for (int u = 0; u < V; u++) mx = fmax(mx, S[(size_t)prev * V + u] * scale);
    for (int u = 0; u < V; u++) z += exp(S[(size_t)prev * V + u] * scale - mx);
    return S[(size_t)prev * V + next] * scale - mx - log(z);
}

/* Reference: logits (n, V) of one sequence run from an empty cache. */
static inline void fx_logits(float *logits, const spq_model *m, const int *in, int n) {
    spq_state s;
    spq_state_build(&s, &m->cfg, 1, n, n);
    int pos = 0;
    spq_forward(logits, &s, in, &pos, m, 1, n, SPQ_LOGITS_ALL);
    spq_state_free(&s);
}

/* log softmax(row)[t] in double, written out plainly */
static inline double fx_logsoftmax(const float *row, int V, int t) {
    double mx = row[0], z = 0;
    for (int i = 1; i < V; i++) mx = fmax(mx, row[i]);
    for (int i = 0; i < V; i++) z += exp(row[i] - mx);
    return row[t] - mx - log(z);
}

#endif
