/* test_forward.c - the fp32 forward pass against an independent scalar
 * reference written here from the LLaMA definition (double precision, no
 * BLAS, no KV cache), the real stories260K model's known greedy output, and
 * the consistency of prefill, decode and batching. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/io/load.h"
#include "common/model/forward.h"
#include "common/model/model.h"
#include "common/model/sampler.h"
#include "common/tok/tokenizer.h"

static const char *shared(void) {
    const char *s = getenv("SPINQ_SHARED");
    return s ? s : "../shared";
}

static void load(spq_model *m, const char *rel) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", shared(), rel);
    spq_err err;
    cr_assert(spq_model_load(m, p, &err) == 0, "%s", err.msg);
}

/* ---- scalar reference: logits (T, V) for tokens at positions 0..T-1 ---- */

static void ref_rmsnorm(double *out, const double *x, const float *w, int D, double eps) {
    double ss = 0;
    for (int i = 0; i < D; i++) ss += x[i] * x[i];
    double s = 1.0 / sqrt(ss / D + eps);
    for (int i = 0; i < D; i++) out[i] = x[i] * s * w[i];
}

static void ref_linear(double *out, const double *x, const float *W, int in, int outd) {
    for (int o = 0; o < outd; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += (double)W[(size_t)o * in + i] * x[i];
        out[o] = s;
    }
}

/* rotate-half RoPE with HF's llama3 frequency rule */
static void ref_rope(double *v, int pos, const spq_config *c) {
    int hd = c->head_dim, half = hd / 2;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow(c->rope_theta, 2.0 * i / hd);
        if (c->rope_llama3) {
            double wl = 2 * M_PI / f, lo = c->rope_orig_ctx / c->rope_low_freq_factor,
                   hi = c->rope_orig_ctx / c->rope_high_freq_factor;
            if (wl > lo) f /= c->rope_factor;
            else if (wl >= hi) {
                double sm = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) /
                            (c->rope_high_freq_factor - c->rope_low_freq_factor);
                f = (1 - sm) * f / c->rope_factor + sm * f;
            }
        }
        double a = pos * f, x0 = v[i], x1 = v[i + half];
        v[i] = x0 * cos(a) - x1 * sin(a);
        v[i + half] = x0 * sin(a) + x1 * cos(a);
    }
}

static void ref_forward(double *logits, const spq_model *m, const int *tok, int T) {
    const spq_config *c = &m->cfg;
    int D = c->dim, H = c->hidden_dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    double *x = calloc((size_t)T * D, sizeof(double)), *n = malloc(D * sizeof(double));
    double *q = malloc((size_t)T * qd * sizeof(double)), *k = malloc((size_t)T * kvd * sizeof(double)),
           *v = malloc((size_t)T * kvd * sizeof(double)), *att = malloc(qd * sizeof(double)),
           *tmp = malloc((D > H ? D : H) * sizeof(double)), *g = malloc(H * sizeof(double)),
           *u = malloc(H * sizeof(double)), *sc = malloc(T * sizeof(double));
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++) x[(size_t)t * D + i] = m->tok_emb[(size_t)tok[t] * D + i];
    for (int l = 0; l < c->n_layers; l++) {
        const spq_layer *L = &m->layers[l];
        for (int t = 0; t < T; t++) {
            ref_rmsnorm(n, x + (size_t)t * D, L->attn_norm, D, c->norm_eps);
            ref_linear(q + (size_t)t * qd, n, L->wq, D, qd);
            ref_linear(k + (size_t)t * kvd, n, L->wk, D, kvd);
            ref_linear(v + (size_t)t * kvd, n, L->wv, D, kvd);
            for (int h = 0; h < c->n_heads; h++) ref_rope(q + (size_t)t * qd + h * hd, t, c);
            for (int h = 0; h < c->n_kv_heads; h++) ref_rope(k + (size_t)t * kvd + h * hd, t, c);
        }
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < c->n_heads; h++) {
                int kh = h / (c->n_heads / c->n_kv_heads);
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += q[(size_t)t * qd + h * hd + i] * k[(size_t)s * kvd + kh * hd + i];
                    sc[s] = d / sqrt(hd);
                    mx = fmax(mx, sc[s]);
                }
                for (int s = 0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (int s = 0; s <= t; s++) o += sc[s] / sum * v[(size_t)s * kvd + kh * hd + i];
                    att[h * hd + i] = o;
                }
            }
            ref_linear(tmp, att, L->wo, qd, D);
            for (int i = 0; i < D; i++) x[(size_t)t * D + i] += tmp[i];
            ref_rmsnorm(n, x + (size_t)t * D, L->ffn_norm, D, c->norm_eps);
            ref_linear(g, n, L->w_gate, D, H);
            ref_linear(u, n, L->w_up, D, H);
            for (int i = 0; i < H; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            ref_linear(tmp, g, L->w_down, H, D);
            for (int i = 0; i < D; i++) x[(size_t)t * D + i] += tmp[i];
        }
    }
    for (int t = 0; t < T; t++) {
        ref_rmsnorm(n, x + (size_t)t * D, m->final_norm, D, c->norm_eps);
        ref_linear(logits + (size_t)t * c->vocab_size, n, m->lm_head, D, c->vocab_size);
    }
    free(x); free(n); free(q); free(k); free(v); free(att); free(tmp); free(g); free(u); free(sc);
}

static double max_abs_diff_f(const float *a, const double *b, size_t n, double *maxabs) {
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs(a[i] - b[i]));
        m = fmax(m, fabs(b[i]));
    }
    if (maxabs) *maxabs = m;
    return d;
}

static void check_against_reference(const spq_model *m, int T, uint64_t seed) {
    int V = m->cfg.vocab_size;
    int *tok = malloc(T * sizeof(int));
    spq_rng r;
    spq_rng_seed(&r, seed);
    for (int t = 0; t < T; t++) tok[t] = (int)(spq_rng_u64(&r) % V);
    double *ref = malloc((size_t)T * V * sizeof(double));
    float *got = malloc((size_t)T * V * sizeof(float));
    ref_forward(ref, m, tok, T);
    spq_state s;
    spq_state_build(&s, &m->cfg, 1, T, T);
    int pos = 0;
    spq_forward(got, &s, tok, &pos, m, 1, T, SPQ_LOGITS_ALL);
    double mx, d = max_abs_diff_f(got, ref, (size_t)T * V, &mx);
    /* fp32 with sgemm against double: errors of ~1e-6 relative per product,
     * a few layers deep; 1e-4 of the largest logit is far below any bug */
    cr_expect(d < 1e-4 * mx, "max |logit - reference| = %g (largest logit %g)", d, mx);
    spq_state_free(&s);
    free(tok); free(ref); free(got);
}

Test(forward, stories260K_matches_scalar_reference) {
    spq_model m;
    load(&m, "models/stories260K/stories260K.bin");
    check_against_reference(&m, 40, 7);
    spq_model_free(&m);
}

Test(forward, random_gqa_llama3_rope_untied_matches_scalar_reference) {
    spq_config c = spq_config_llama32_1b(2);
    c.dim = 64; c.hidden_dim = 96; c.n_heads = 8; c.n_kv_heads = 2; c.head_dim = 16; c.vocab_size = 100;
    c.seq_len = 64; c.tied = 0; c.bos_id = 1; c.eos_id = 2;
    c.rope_orig_ctx = 16;  /* so that positions below 40 meet every band of the llama3 rule */
    spq_model m;
    spq_model_init_random(&m, &c, 3);
    check_against_reference(&m, 33, 8);
    spq_model_free(&m);
}

/* greedy decoding from BOS, token by token with the KV cache */
static char *greedy_text(const char *rel, int n) {
    spq_model m;
    load(&m, rel);
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", shared(), rel);
    spq_tokenizer *tok;
    spq_err err;
    cr_assert(spq_tok_load_for_model(&tok, p, &err) == 0, "%s", err.msg);
    spq_state s;
    spq_state_build(&s, &m.cfg, 1, n + 1, 1);
    float *logits = malloc(m.cfg.vocab_size * sizeof(float));
    int *ids = malloc((n + 1) * sizeof(int));
    ids[0] = m.cfg.bos_id;
    for (int i = 0; i < n; i++) {
        spq_forward(logits, &s, &ids[i], &i, &m, 1, 1, SPQ_LOGITS_LAST);
        ids[i + 1] = spq_argmax(logits, m.cfg.vocab_size);
    }
    char *text = spq_tok_decode(tok, ids, n + 1, 1);
    free(ids); free(logits);
    spq_state_free(&s);
    spq_tok_free(tok);
    spq_model_free(&m);
    return text;
}

static const char *expected_story =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
    "big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want to "
    "play with your ball, but I can't find it.\"";

Test(forward, stories260K_greedy_from_bos_prints_the_known_story_from_both_formats) {
    char *a = greedy_text("models/stories260K/stories260K.bin", 200);
    char *b = greedy_text("models/stories260K-hf", 200);
    cr_expect(strncmp(a, expected_story, strlen(expected_story)) == 0, "llama2.c format printed:\n%s", a);
    cr_expect_str_eq(a, b, "the two formats differ:\n%s\n---\n%s", a, b);
    free(a);
    free(b);
}

Test(forward, prefill_equals_decode_and_batch_equals_single) {
    spq_model m;
    load(&m, "models/stories260K/stories260K.bin");
    int T = 24, V = m.cfg.vocab_size;
    int tok[3 * 24];
    for (int i = 0; i < 3 * T; i++) tok[i] = 3 + (i * 37) % 500;
    float *all = malloc((size_t)3 * T * V * sizeof(float)), *one = malloc((size_t)T * V * sizeof(float)),
          *dec = malloc(2 * V * sizeof(float));
    /* three sequences in one call, each at its own start position: sequence b
     * is placed at positions b*5 after a prefix of its own first tokens */
    spq_state sb, s1;
    spq_state_build(&sb, &m.cfg, 3, 64, 3 * T);
    spq_state_build(&s1, &m.cfg, 1, 64, T);
    int pos0[3] = {0, 0, 0};
    spq_forward(all, &sb, tok, pos0, &m, 3, T, SPQ_LOGITS_ALL);
    for (int b = 0; b < 3; b++) {
        int p = 0;
        spq_forward(one, &s1, tok + b * T, &p, &m, 1, T, SPQ_LOGITS_ALL);
        double d = 0;
        for (int i = 0; i < T * V; i++) d = fmax(d, fabs(one[i] - all[(size_t)b * T * V + i]));
        cr_expect(d < 1e-4, "sequence %d alone vs in a batch: max diff %g", b, d);
        /* decode the same sequence token by token */
        spq_state sd;
        spq_state_build(&sd, &m.cfg, 1, 64, 1);
        double dd = 0;
        for (int t = 0; t < T; t++) {
            spq_forward(dec, &sd, tok + b * T + t, &t, &m, 1, 1, SPQ_LOGITS_LAST);
            for (int v = 0; v < V; v++) dd = fmax(dd, fabs(dec[v] - one[(size_t)t * V + v]));
        }
        cr_expect(dd < 1e-4, "prefill vs decode: max diff %g", dd);
        spq_state_free(&sd);
    }
    /* continuing a batch at different positions per sequence */
    int pos1[2] = {T, 10};
    int nxt[2] = {7, 9};
    spq_state s2;
    spq_state_build(&s2, &m.cfg, 2, 64, 2 * T);
    spq_forward(all, &s2, tok, pos0, &m, 2, T, SPQ_LOGITS_ALL);  /* fill both caches */
    spq_forward(dec, &s2, nxt, pos1, &m, 2, 1, SPQ_LOGITS_LAST);  /* seq 1 overwrites from position 10 */
    int p = 0;
    spq_forward(one, &s1, tok + T, &p, &m, 1, 10, SPQ_LOGITS_ALL);
    float *ref = malloc(V * sizeof(float));
    int p10 = 10;
    spq_forward(ref, &s1, &nxt[1], &p10, &m, 1, 1, SPQ_LOGITS_LAST);
    double d = 0;
    for (int v = 0; v < V; v++) d = fmax(d, fabs(ref[v] - dec[V + v]));
    cr_expect(d < 1e-4, "per-sequence positions: max diff %g", d);
    spq_state_free(&s2);
    spq_state_free(&sb);
    spq_state_free(&s1);
    free(all); free(one); free(dec); free(ref);
    spq_model_free(&m);
}

Test(forward, sampler_is_greedy_at_zero_temperature_and_reproducible_with_a_seed) {
    float logits[5] = {0.1f, 2.0f, 1.9f, -1.0f, 0.0f};
    spq_sampler s;
    spq_sampler_build(&s, 5, 0.0f, 1.0f, 1);
    cr_expect_eq(spq_sample(&s, logits), 1);
    spq_sampler_free(&s);
    /* top-p 0.5 keeps only the smallest set reaching half the mass: {1} here */
    spq_sampler_build(&s, 5, 1.0f, 0.5f, 1);
    for (int i = 0; i < 50; i++) {
        int t = spq_sample(&s, logits);
        cr_expect(t == 1 || t == 2, "top-p sampled %d", t);
    }
    spq_sampler_free(&s);
    int a[20], b[20];
    for (int rep = 0; rep < 2; rep++) {
        spq_sampler_build(&s, 5, 1.0f, 1.0f, 42);
        for (int i = 0; i < 20; i++) (rep ? b : a)[i] = spq_sample(&s, logits);
        spq_sampler_free(&s);
    }
    cr_expect_arr_eq(a, b, sizeof a);
    /* frequencies follow softmax: token 3 (p ~ 0.02) is rare, 1 and 2 common */
    int count[5] = {0};
    spq_sampler_build(&s, 5, 1.0f, 1.0f, 7);
    for (int i = 0; i < 20000; i++) count[spq_sample(&s, logits)]++;
    spq_sampler_free(&s);
    double z = 0;
    for (int i = 0; i < 5; i++) z += exp(logits[i]);
    for (int i = 0; i < 5; i++) {
        double p = exp(logits[i]) / z, sd = sqrt(20000 * p * (1 - p));
        cr_expect(fabs(count[i] - 20000 * p) < 5 * sd, "token %d: %d draws, expected %.0f", i, count[i], 20000 * p);
    }
}

/* The slot map (serving's continuous batching): sequences prefilled one at a
 * time into chosen KV slots, then decoded together in one call with the map,
 * give what each gives alone in its own state. */
Test(forward, slot_map_decodes_any_set_of_slots_as_alone) {
    spq_model m;
    load(&m, "models/stories260K/stories260K.bin");
    int V = m.cfg.vocab_size, T = 12;
    int tok[2][12];
    for (int i = 0; i < T; i++) {
        tok[0][i] = 5 + (i * 41) % 400;
        tok[1][i] = 9 + (i * 23) % 300;
    }
    spq_state s;
    spq_state_build(&s, &m.cfg, 4, 64, T);
    float *lg = malloc((size_t)2 * V * sizeof(float)), *ref = malloc((size_t)V * sizeof(float));
    int slots[2] = {2, 0}, zero = 0;
    for (int b = 0; b < 2; b++) { /* prefill T-1 tokens of sequence b into its slot */
        s.slot_of = &slots[b];
        spq_forward(lg, &s, tok[b], &zero, &m, 1, T - 1, SPQ_LOGITS_LAST);
    }
    int last[2] = {tok[0][T - 1], tok[1][T - 1]}, pos[2] = {T - 1, T - 1};
    s.slot_of = slots;
    spq_forward(lg, &s, last, pos, &m, 2, 1, SPQ_LOGITS_LAST);
    s.slot_of = NULL;
    for (int b = 0; b < 2; b++) {
        spq_state s1;
        spq_state_build(&s1, &m.cfg, 1, 64, T);
        spq_forward(ref, &s1, tok[b], &zero, &m, 1, T, SPQ_LOGITS_LAST);
        double d = 0;
        for (int v = 0; v < V; v++) d = fmax(d, fabs(ref[v] - lg[(size_t)b * V + v]));
        cr_expect(d < 1e-4, "sequence %d in slot %d: max diff %g", b, slots[b], d);
        spq_state_free(&s1);
    }
    spq_state_free(&s);
    free(lg);
    free(ref);
    spq_model_free(&m);
}
