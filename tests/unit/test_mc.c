/* test_mc.c - zero-shot multiple choice: the metrics by hand, lm-eval's
 * request encoding with a tokenizer whose output is known, batched scoring
 * with shared contexts against one-request-at-a-time references, and a
 * whole task (file -> requests -> scores -> acc/acc_norm) on a bigram model
 * whose log-likelihoods have a closed form. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "common/eval/llencode.h"
#include "common/eval/loglik.h"
#include "common/eval/mc.h"
#include "common/eval/tasks.h"
#include "eval_fixtures.h"

Test(mc, metrics_by_hand) {
    double ll[3] = {-3, -1, -1};
    cr_assert_eq(spq_mc_argmax(ll, 3), 1); /* first of equal maxima */
    long chars[3] = {1, 2, 1};
    /* -3/1, -1/2, -1/1 -> choice 1 */
    cr_assert_eq(spq_mc_argmax_norm(ll, chars, 3), 1);
    long chars2[3] = {10, 1, 1}; /* -0.3 -> choice 0 */
    cr_assert_eq(spq_mc_argmax_norm(ll, chars2, 3), 0);
    double x[4] = {1, 0, 1, 1};
    cr_assert(fabs(spq_mean_stderr(x, 4) - 0.25) < 1e-12); /* sd 0.5 (n-1), / sqrt 4 */
    cr_assert_eq(spq_mean_stderr(x, 1), 0);
}

/* ---- a tokenizer with known output ----
 * bytes are tokens; a space followed by a non-space byte is one token
 * (256 + byte), as SentencePiece's "▁x" pieces; "bc" is one token (600). */
static int toy_encode(void *ud, const char *s, size_t n, int **ids, int *k, spq_err *err) {
    (void)ud;
    (void)err;
    int *o = malloc((n + 1) * sizeof(int)), m = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == ' ' && i + 1 < n && s[i + 1] != ' ') o[m++] = 256 + (unsigned char)s[i + 1], i += 2;
        else if (s[i] == 'b' && i + 1 < n && s[i + 1] == 'c') o[m++] = 600, i += 2;
        else o[m++] = (unsigned char)s[i++];
    }
    *ids = o;
    *k = m;
    return 0;
}

static void check_enc(const char *ctx, const char *cont, const int *wc, int nwc, const int *wk, int nwk) {
    int *c, nc, *k, nk;
    spq_err err;
    cr_assert_eq(spq_ll_encode(&c, &nc, &k, &nk, toy_encode, NULL, ctx, cont, 1, -1, &err), 0, "%s", err.msg);
    cr_assert_eq(nc, nwc, "'%s' + '%s': %d context tokens", ctx, cont, nc);
    cr_assert_eq(nk, nwk, "'%s' + '%s': %d continuation tokens", ctx, cont, nk);
    for (int i = 0; i < nc; i++) cr_assert_eq(c[i], wc[i]);
    for (int i = 0; i < nk; i++) cr_assert_eq(k[i], wk[i]);
    free(c);
    free(k);
}

Test(mc, encode_like_lm_eval) {
    /* plain: "A:" + " yes" -> [A :] [▁y e s] */
    check_enc("A:", " yes", (int[]){'A', ':'}, 2, (int[]){256 + 'y', 'e', 's'}, 3);
    /* a trailing space moves to the continuation: "A: " + "yes" is the
     * same request (without the move it would be [A : ' '] + [y e s]) */
    check_enc("A: ", "yes", (int[]){'A', ':'}, 2, (int[]){256 + 'y', 'e', 's'}, 3);
    /* several kinds of trailing whitespace move, in order */
    check_enc("A:\n ", "yes", (int[]){'A', ':'}, 2, (int[]){'\n', 256 + 'y', 'e', 's'}, 4);
    /* the split is by count: a token merged across the boundary goes to
     * the continuation, and the context keeps its own encoding */
    check_enc("xb", "cd", (int[]){'x', 'b'}, 2, (int[]){'d'}, 1);
    check_enc("x", "bc", (int[]){'x'}, 1, (int[]){600}, 1);
    /* empty context: [prefix] + enc(continuation) */
    check_enc("", " yes", (int[]){1}, 1, (int[]){256 + 'y', 'e', 's'}, 3);
    /* bos: put before the context */
    int *c, nc, *k, nk;
    spq_err err;
    cr_assert_eq(spq_ll_encode(&c, &nc, &k, &nk, toy_encode, NULL, "A:", " y", 1, 1, &err), 0);
    cr_assert(nc == 3 && c[0] == 1 && c[1] == 'A' && nk == 1 && k[0] == 256 + 'y');
    free(c);
    free(k);
    /* a continuation swallowed by the context's encoding is an error */
    cr_assert_eq(spq_ll_encode(&c, &nc, &k, &nk, toy_encode, NULL, "xbc", "", 1, -1, &err), -1);
    cr_assert(strstr(err.msg, "no tokens"), "%s", err.msg);
}

/* ---- batched scoring against references ---- */

typedef struct {
    int ctx[64], n_ctx, cont[16], n_cont;
} raw_req;

static void reference(double *ll, int *greedy, const spq_model *m, const raw_req *r, int max_len) {
    int all[80], n = 0, V = m->cfg.vocab_size;
    for (int i = 0; i < r->n_ctx; i++) all[n++] = r->ctx[i];
    for (int i = 0; i < r->n_cont; i++) all[n++] = r->cont[i];
    int lo = n - (max_len + 1) > 0 ? n - (max_len + 1) : 0, ni = n - 1 - lo;
    float *lg = malloc((size_t)ni * V * sizeof(float));
    fx_logits(lg, m, all + lo, ni);
    *ll = 0;
    *greedy = 1;
    for (int j = 0; j < r->n_cont; j++) {
        const float *row = lg + (size_t)(ni - r->n_cont + j) * V;
        *ll += fx_logsoftmax(row, V, r->cont[j]);
        int am = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[am]) am = v;
        if (am != r->cont[j]) *greedy = 0;
    }
    free(lg);
}

Test(mc, batched_shared_context_equals_reference) {
    spq_model m;
    fx_tiny_random(&m, 21, 64, 64);
    spq_rng r;
    spq_rng_seed(&r, 5);
    enum { G = 40 };
    static raw_req raw[G * 5];
    long group[G + 1];
    int n = 0;
    for (int g = 0; g < G; g++) {
        group[g] = n;
        int nreq = 1 + (int)(spq_rng_u64(&r) % 5), nctx = 1 + (int)(spq_rng_u64(&r) % 40);
        int ctx[64];
        for (int i = 0; i < nctx; i++) ctx[i] = 3 + (int)(spq_rng_u64(&r) % 61);
        for (int q = 0; q < nreq; q++, n++) {
            raw[n].n_ctx = nctx;
            memcpy(raw[n].ctx, ctx, sizeof ctx);
            raw[n].n_cont = 1 + (int)(spq_rng_u64(&r) % 8);
            for (int i = 0; i < raw[n].n_cont; i++) raw[n].cont[i] = 3 + (int)(spq_rng_u64(&r) % 61);
            /* some choices share their first continuation tokens */
            if (q > 0 && g % 3 == 0) raw[n].cont[0] = raw[n - 1].cont[0];
            /* WinoGrande-like: contexts differ in their last tokens (an
             * option of varying length), the continuation is shared */
            if (g % 4 == 1) {
                int opt = 1 + (int)(spq_rng_u64(&r) % 3);
                for (int i = 0; i < opt && raw[n].n_ctx < 60; i++)
                    raw[n].ctx[raw[n].n_ctx++] = 3 + (int)(spq_rng_u64(&r) % 61);
                if (q > 0) {
                    raw[n].n_cont = raw[n - 1].n_cont;
                    memcpy(raw[n].cont, raw[n - 1].cont, sizeof raw[n].cont);
                }
            }
            /* one context is another request's context + continuation */
            if (g % 4 == 2 && q > 0) {
                raw[n] = raw[n - 1];
                for (int i = 0; i < raw[n - 1].n_cont; i++) raw[n].ctx[raw[n].n_ctx++] = raw[n - 1].cont[i];
                raw[n].cont[0] = 3 + (int)(spq_rng_u64(&r) % 61);
                raw[n].n_cont = 1;
            }
        }
        /* longest context first in some groups, so the prefix cap matters */
        if (g % 4 == 2 && n - group[g] > 1) {
            raw_req t = raw[group[g]];
            raw[group[g]] = raw[n - 1];
            raw[n - 1] = t;
        }
    }
    group[G] = n;
    /* a greedy continuation, so that `greedy` is 1 somewhere: extend group 0's
     * first request with the model's own argmax tokens */
    {
        raw_req *q = &raw[0];
        int all[80], k = 0;
        for (int i = 0; i < q->n_ctx; i++) all[k++] = q->ctx[i];
        q->n_cont = 0;
        float *lg = malloc((size_t)80 * 64 * sizeof(float));
        for (int step = 0; step < 3; step++) {
            fx_logits(lg, &m, all, k);
            const float *row = lg + (size_t)(k - 1) * 64;
            int am = 0;
            for (int v = 1; v < 64; v++)
                if (row[v] > row[am]) am = v;
            all[k++] = am;
            q->cont[q->n_cont++] = am;
        }
        free(lg);
    }
    const int max_len = 32; /* some requests are longer and get cut */
    double ref_ll[G * 5];
    int ref_g[G * 5], n_greedy = 0;
    long naive = 0;
    for (int i = 0; i < n; i++) {
        reference(&ref_ll[i], &ref_g[i], &m, &raw[i], max_len);
        n_greedy += ref_g[i];
        int in = raw[i].n_ctx + raw[i].n_cont - 1;
        naive += in < max_len ? in : max_len;
    }
    cr_assert(n_greedy >= 1);
    spq_ll_req req[G * 5];
    for (int i = 0; i < n; i++) req[i] = (spq_ll_req){raw[i].ctx, raw[i].n_ctx, raw[i].cont, raw[i].n_cont};
    spq_ll_opts opts[] = {{max_len, 4096, 16}, {max_len, 1, 1}, {max_len, 70, 3}, {max_len, 200, 64}};
    for (size_t o = 0; o < sizeof opts / sizeof *opts; o++) {
        spq_scorer sc;
        spq_scorer_model(&sc, &m);
        spq_ll_out out[G * 5];
        spq_ll_stats st;
        spq_err err;
        cr_assert_eq(spq_ll_score(out, &st, &sc, req, group, G, &opts[o], NULL, NULL, &err), 0, "%s", err.msg);
        for (int i = 0; i < n; i++) {
            cr_assert(fabs(out[i].ll - ref_ll[i]) < 1e-4 * (1 + fabs(ref_ll[i])), "opts %zu req %d: %.6f vs %.6f", o,
                      i, out[i].ll, ref_ll[i]);
            cr_assert_eq(out[i].greedy, ref_g[i], "opts %zu req %d", o, i);
        }
        cr_assert_eq(st.rows_naive, naive);
        spq_scorer_free(&sc);
    }
    spq_model_free(&m);
}

Test(mc, scoring_errors) {
    spq_model m;
    fx_tiny_random(&m, 2, 64, 64);
    spq_scorer sc;
    spq_scorer_model(&sc, &m);
    int ctx[2] = {5, 6}, cont[40] = {0}, bad[1] = {64};
    long group[2] = {0, 1};
    spq_ll_out out[1];
    spq_err err;
    spq_ll_opts o = {32, 256, 4};
    spq_ll_req r1 = {ctx, 2, cont, 40};
    cr_assert_eq(spq_ll_score(out, NULL, &sc, &r1, group, 1, &o, NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "does not fit"), "%s", err.msg);
    spq_ll_req r2 = {ctx, 2, bad, 1};
    cr_assert_eq(spq_ll_score(out, NULL, &sc, &r2, group, 1, &o, NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "out of range"), "%s", err.msg);
    spq_ll_req r3 = {ctx, 0, cont, 1};
    cr_assert_eq(spq_ll_score(out, NULL, &sc, &r3, group, 1, &o, NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "empty context"), "%s", err.msg);
    spq_scorer_free(&sc);
    spq_model_free(&m);
}

/* ---- a whole task on a bigram model ---- */

static int byte_encode(void *ud, const char *s, size_t n, int **ids, int *k, spq_err *err) {
    (void)ud;
    (void)err;
    int *o = malloc((n + 1) * sizeof(int));
    for (size_t i = 0; i < n; i++) o[i] = (unsigned char)s[i];
    *ids = o;
    *k = (int)n;
    return 0;
}

enum { BV = 128 };
static float S[BV * BV];

static double ll_text(const char *ctx, const char *cont) { /* closed form, byte tokens */
    double ll = 0;
    int prev = (unsigned char)ctx[strlen(ctx) - 1];
    for (const char *p = cont; *p; p++) {
        ll += fx_bigram_logp(S, BV, 1e-5, prev, (unsigned char)*p);
        prev = (unsigned char)*p;
    }
    return ll;
}

Test(mc, known_answers_on_a_bigram_model) {
    /* after 'x' a space; after a space 'y' or (more likely) 'n'; "yes"
     * and "no" then continue with certainty-ish */
    memset(S, 0, sizeof S);
    S['x' * BV + ' '] = 0.6f;
    S[' ' * BV + 'y'] = 0.3f;
    S[' ' * BV + 'n'] = 0.35f;
    S['y' * BV + 'e'] = 0.5f;
    S['e' * BV + 's'] = 0.5f;
    S['n' * BV + 'o'] = 0.2f;
    spq_model m;
    fx_bigram_model(&m, BV, S, 64);
    char dir[] = "/tmp/spq_mc_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/t.jsonl", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"context\": \"Q: x\", \"choices\": [\"yes\", \"zq\"], \"gold\": 0}\n" /* known: yes */
               "{\"context\": \"Q: x\", \"choices\": [\"no\", \"yes\"], \"gold\": 1}\n"
               "{\"context\": \"Q: x\", \"choices\": [\"y\", \"yes\"], \"gold\": 1}\n"
               "{\"context\": \"Q: x\", \"choices\": [\"n\", \"yes\"], \"gold\": 1, \"delimiter\": \"\"}\n");
    fclose(f);
    spq_task t;
    spq_err err;
    cr_assert_eq(spq_task_load(&t, "toy", "jsonl", path, NULL, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(t.n_items, 4);
    /* expected from the closed form */
    const char *delim[4] = {" ", " ", " ", ""};
    double acc = 0, acc_norm = 0, hits[4], hits_n[4];
    for (int i = 0; i < 4; i++) {
        const spq_task_item *it = &t.items[i];
        double ll[2];
        long chars[2];
        for (int j = 0; j < 2; j++) {
            char cont[16];
            snprintf(cont, sizeof cont, "%s%s", delim[i], it->cont[j] + strlen(delim[i]));
            ll[j] = ll_text("Q: x", cont);
            chars[j] = (long)strlen(it->cont[j] + strlen(delim[i]));
        }
        hits[i] = (ll[1] > ll[0] ? 1 : 0) == it->gold;
        hits_n[i] = (ll[1] / chars[1] > ll[0] / chars[0] ? 1 : 0) == it->gold;
        acc += hits[i] / 4;
        acc_norm += hits_n[i] / 4;
    }
    cr_assert_eq(hits[0], 1); /* the known answer */
    cr_assert(acc != acc_norm, "the fixture should tell acc from acc_norm");
    spq_scorer sc;
    spq_scorer_model(&sc, &m);
    spq_eval_opts o = {0};
    spq_task_result res;
    cr_assert_eq(spq_task_eval(&res, &t, &sc, byte_encode, NULL, &o, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(res.n, 4);
    cr_assert(fabs(res.acc - acc) < 1e-12, "acc %g vs %g", res.acc, acc);
    cr_assert(fabs(res.acc_norm - acc_norm) < 1e-12, "acc_norm %g vs %g", res.acc_norm, acc_norm);
    cr_assert(fabs(res.acc_stderr - spq_mean_stderr(hits, 4)) < 1e-12);
    cr_assert(fabs(res.acc_norm_stderr - spq_mean_stderr(hits_n, 4)) < 1e-12);
    /* the shared context is run once per question: 3 context tokens ("Q: "
     * minus the last, whose output is the first scored) per question */
    cr_assert(res.ll.rows_run < res.ll.rows_naive);
    /* --limit */
    o.limit = 1;
    cr_assert_eq(spq_task_eval(&res, &t, &sc, byte_encode, NULL, &o, NULL, NULL, &err), 0);
    cr_assert_eq(res.n, 1);
    cr_assert_eq(res.acc, 1.0);
    spq_task_free(&t);

    /* cloze: LAMBADA format, greedy match and perplexity */
    snprintf(path, sizeof path, "%s/l.jsonl", dir);
    f = fopen(path, "w");
    fprintf(f, "{\"text\": \"Q: x yes\"}\n{\"text\": \"Q: x no\"}\n");
    fclose(f);
    cr_assert_eq(spq_task_load(&t, "l", "lambada", path, NULL, 0, &err), 0, "%s", err.msg);
    o.limit = 0;
    cr_assert_eq(spq_task_eval(&res, &t, &sc, byte_encode, NULL, &o, NULL, NULL, &err), 0, "%s", err.msg);
    /* greedy after "x": ' ' (0.6), then 'n' (0.35 > 0.3), then 'o' */
    cr_assert_eq(res.acc, 0.5);
    double want_ppl = exp(-(ll_text("Q: x", " yes") + ll_text("Q: x", " no")) / 2);
    cr_assert(fabs(res.ppl - want_ppl) < 1e-4 * want_ppl, "%g vs %g", res.ppl, want_ppl);
    cr_assert(isnan(res.acc_norm));
    spq_task_free(&t);
    spq_scorer_free(&sc);
    spq_model_free(&m);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* the bigram fixture really has the closed form */
Test(mc, bigram_fixture_closed_form) {
    memset(S, 0, sizeof S);
    spq_rng r;
    spq_rng_seed(&r, 4);
    for (int i = 0; i < BV * BV; i++) S[i] = (float)spq_rng_normal(&r) * 0.1f;
    spq_model m;
    fx_bigram_model(&m, BV, S, 16);
    int in[6] = {5, 9, 70, 70, 3, 127};
    float lg[6 * BV];
    fx_logits(lg, &m, in, 6);
    for (int t = 0; t < 6; t++)
        for (int u = 0; u < BV; u += 7)
            cr_assert(fabs(fx_logsoftmax(lg + t * BV, BV, u) - fx_bigram_logp(S, BV, 1e-5, in[t], u)) < 1e-4);
    spq_model_free(&m);
}

/* ---- with the real stories260K tokenizer ---- */

#include "common/tok/tokenizer.h"

static int real_encode(void *ud, const char *s, size_t n, int **ids, int *k, spq_err *err) {
    return spq_tok_encode(ud, s, n, 0, ids, k, err);
}

Test(mc, encode_with_sentencepiece) {
    char *p = fx_shared("models/stories260K/tok512.bin");
    spq_tokenizer *t;
    spq_err err;
    cr_assert_eq(spq_tok_load(&t, p, &err), 0, "%s", err.msg);
    free(p);
    const char *ctx = "Once upon a time, there was a little girl named", *cont = " Lily";
    int *c, nc, *k, nk, *w, nw;
    cr_assert_eq(spq_ll_encode(&c, &nc, &k, &nk, real_encode, t, ctx, cont, 1, -1, &err), 0, "%s", err.msg);
    char whole[128];
    snprintf(whole, sizeof whole, "%s%s", ctx, cont);
    cr_assert_eq(spq_tok_encode(t, whole, strlen(whole), 0, &w, &nw, &err), 0);
    /* ctx + cont is the encoding of the whole text, split after ctx's tokens */
    cr_assert_eq(nc + nk, nw);
    for (int i = 0; i < nk; i++) cr_assert_eq(k[i], w[nc + i]);
    /* the continuation is the last word's token(s): the context's tokens
     * decode to the context alone */
    char *dec = spq_tok_decode(t, c, nc, 1);
    cr_assert_str_eq(dec, ctx);
    free(dec);
    /* the trailing space of a context moves to the continuation: same request */
    int *c2, nc2, *k2, nk2;
    cr_assert_eq(spq_ll_encode(&c2, &nc2, &k2, &nk2, real_encode, t, "Once upon a time, there was a little girl named ",
                               "Lily", 1, -1, &err),
                 0);
    cr_assert_eq(nc2, nc);
    cr_assert_eq(nk2, nk);
    for (int i = 0; i < nk; i++) cr_assert_eq(k2[i], k[i]);
    for (int i = 0; i < nc; i++) cr_assert_eq(c2[i], c[i]);
    free(c); free(k); free(w); free(c2); free(k2);
    spq_tok_free(t);
}

/* an item whose continuation is longer than the window is left out and
 * counted, the others are scored */
Test(mc, too_long_items_left_out) {
    memset(S, 0, sizeof S);
    spq_model m;
    fx_bigram_model(&m, BV, S, 64);
    char dir[] = "/tmp/spq_mc_XXXXXX", path[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.jsonl", dir);
    FILE *f = fopen(path, "w");
    char longc[80];
    memset(longc, 'a', 70);
    longc[70] = 0;
    fprintf(f, "{\"context\": \"x\", \"choices\": [\"b\", \"c\"], \"gold\": 0}\n"
               "{\"context\": \"x\", \"choices\": [\"b\", \"%s\"], \"gold\": 0}\n"
               "{\"context\": \"x\", \"choices\": [\"b\", \"c\"], \"gold\": 1}\n", longc);
    fclose(f);
    spq_task t;
    spq_err err;
    cr_assert_eq(spq_task_load(&t, NULL, "jsonl", path, NULL, 0, &err), 0, "%s", err.msg);
    spq_scorer sc;
    spq_scorer_model(&sc, &m);
    spq_eval_opts o = {0};
    spq_task_result res;
    cr_assert_eq(spq_task_eval(&res, &t, &sc, byte_encode, NULL, &o, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(res.n, 2);
    cr_assert_eq(res.n_too_long, 1);
    cr_assert_eq(res.first_too_long_line, 2);
    /* uniform model: equal ll, argmax picks choice 0 -> right, then wrong */
    cr_assert_eq(res.acc, 0.5);
    spq_task_free(&t);
    spq_scorer_free(&sc);
    spq_model_free(&m);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
