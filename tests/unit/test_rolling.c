/* test_rolling.c - lm-eval's rolling windows: the window list against a
 * literal port of get_rolling_token_windows + make_disjoint_window +
 * _loglikelihood_tokens' input construction, hand-worked cases, the score
 * against a per-window reference, and the word/byte measures. */
#include <criterion/criterion.h>

#include "common/base/pytext.h"
#include "common/eval/rolling.h"
#include "eval_fixtures.h"

/* ---- a literal port of lm-eval's list manipulations ----
 * Token lists are int arrays; the prefix token is -1 and token i is i, so
 * an input list can be compared with a window's stream positions. */
typedef struct {
    int a[4096], na; /* context */
    int b[4096], nb; /* continuation */
} pair_t;

static int slice(int *out, const int *x, int n, int lo, int hi) { /* python x[lo:hi], lo/hi >= 0 */
    if (hi > n) hi = n;
    int k = 0;
    for (int i = lo; i < hi; i++) out[k++] = x[i];
    return k;
}

static int lm_eval_windows(pair_t *out, int n, int max_seq_len) {
    int tl[4096];
    for (int i = 0; i < n; i++) tl[i] = i;
    const int context_len = 1, prefix = -1;
    int pred_len = max_seq_len - context_len + 1, predicted = 0, k = 0;
    if (n == 0) return 0;
    int first = max_seq_len < n ? max_seq_len : n;
    out[k].a[0] = prefix;
    out[k].na = 1 + slice(out[k].a + 1, tl, n, 0, first - 1);
    out[k].nb = slice(out[k].b, tl, n, 0, first);
    k++;
    predicted += first;
    while (predicted < n) {
        int wpl = n - predicted < pred_len ? n - predicted : pred_len;
        int end = predicted + wpl;
        cr_assert(end - max_seq_len - 1 >= 0); /* python's slice would wrap otherwise */
        out[k].na = slice(out[k].a, tl, n, end - max_seq_len - 1, end - 1);
        out[k].nb = slice(out[k].b, tl, n, end - wpl, end);
        k++;
        predicted += wpl;
    }
    /* make_disjoint_window: a[:len(a) - (len(b) - 1)] */
    for (int i = 0; i < k; i++) out[i].na -= out[i].nb - 1;
    return k;
}

/* (context + continuation)[-(max_len+1):][:-1] and the scored count */
static int lm_eval_input(int *inp, const pair_t *p, int max_len) {
    int all[8192], n = 0;
    for (int i = 0; i < p->na; i++) all[n++] = p->a[i];
    for (int i = 0; i < p->nb; i++) all[n++] = p->b[i];
    int lo = n - (max_len + 1) > 0 ? n - (max_len + 1) : 0, k = 0;
    for (int i = lo; i < n - 1; i++) inp[k++] = all[i];
    return k;
}

static pair_t pairs[600];

Test(rolling, windows_by_hand) {
    spq_rolling_window *w;
    /* 10 tokens, max_len 4: [P t0 t1 t2] -> t0..t3; [t3 t4 t5 t6] -> t4..t7;
     * [t5 t6 t7 t8] -> t8 t9 (its first two outputs are not scored) */
    long n = spq_rolling_windows(&w, 10, 4);
    cr_assert_eq(n, 3);
    spq_rolling_window want[3] = {{0, 4, 4}, {4, 4, 4}, {6, 4, 2}};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(w[i].in_start, want[i].in_start, "window %d", i);
        cr_assert_eq(w[i].in_len, want[i].in_len);
        cr_assert_eq(w[i].n_pred, want[i].n_pred);
    }
    free(w);
    /* shorter than a window: one window [P t0 t1] -> t0 t1 t2 */
    n = spq_rolling_windows(&w, 3, 4);
    cr_assert_eq(n, 1);
    cr_assert(w[0].in_start == 0 && w[0].in_len == 3 && w[0].n_pred == 3);
    free(w);
    cr_assert_eq(spq_rolling_windows(&w, 0, 4), 0);
}

Test(rolling, windows_match_lm_eval_port) {
    for (int L = 1; L <= 9; L++)
        for (int n = 1; n <= 60; n++) {
            int k = lm_eval_windows(pairs, n, L);
            spq_rolling_window *w;
            long nw = spq_rolling_windows(&w, n, L);
            cr_assert_eq(nw, k, "n=%d L=%d", n, L);
            long covered = 0;
            for (int i = 0; i < k; i++) {
                int inp[8192];
                int ni = lm_eval_input(inp, &pairs[i], L);
                cr_assert_eq(w[i].in_len, ni, "n=%d L=%d window %d", n, L, i);
                cr_assert_eq(w[i].n_pred, pairs[i].nb);
                /* stream index s holds token s-1 (the prefix is -1) */
                for (int t = 0; t < ni; t++) cr_assert_eq(inp[t], (int)(w[i].in_start + t) - 1);
                covered += w[i].n_pred;
            }
            cr_assert_eq(covered, n); /* every token predicted once */
            free(w);
        }
}

/* the rolling score equals per-window references run one window at a time */
Test(rolling, score_matches_reference) {
    spq_model m;
    fx_tiny_random(&m, 7, 64, 64);
    int V = 64, L = 16, n = 75;
    int tokens[75];
    spq_rng r;
    spq_rng_seed(&r, 3);
    for (int i = 0; i < n; i++) tokens[i] = 3 + (int)(spq_rng_u64(&r) % (V - 3));
    int k = lm_eval_windows(pairs, n, L);
    double ref = 0;
    float *logits = malloc((size_t)L * V * sizeof(float));
    for (int i = 0; i < k; i++) {
        int inp[8192], in_tok[64];
        int ni = lm_eval_input(inp, &pairs[i], L);
        for (int t = 0; t < ni; t++) in_tok[t] = inp[t] < 0 ? m.cfg.bos_id : tokens[inp[t]];
        fx_logits(logits, &m, in_tok, ni);
        for (int j = 0; j < pairs[i].nb; j++)
            ref += fx_logsoftmax(logits + (size_t)(ni - pairs[i].nb + j) * V, V, tokens[pairs[i].b[j]]);
    }
    free(logits);
    for (int batch = 1; batch <= 3; batch++) {
        spq_scorer sc;
        spq_scorer_model(&sc, &m);
        spq_rolling_result res;
        spq_err err;
        cr_assert_eq(spq_rolling_score(&res, &sc, tokens, n, L, m.cfg.bos_id, batch, NULL, NULL, &err), 0, "%s",
                     err.msg);
        cr_assert_eq(res.n_tokens, n);
        cr_assert_eq(res.n_windows, k);
        cr_assert(fabs(res.ll - ref) < 1e-4 * fabs(ref), "batch %d: %.8f vs %.8f", batch, res.ll, ref);
        spq_scorer_free(&sc);
    }
    /* a text shorter than the window, batched with nothing: the plain
     * log-likelihood of [BOS] + tokens */
    {
        spq_scorer sc;
        spq_scorer_model(&sc, &m);
        spq_rolling_result res;
        spq_err err;
        cr_assert_eq(spq_rolling_score(&res, &sc, tokens, 5, L, m.cfg.bos_id, 4, NULL, NULL, &err), 0);
        int in[5] = {m.cfg.bos_id, tokens[0], tokens[1], tokens[2], tokens[3]};
        float lg[5 * 64];
        fx_logits(lg, &m, in, 5);
        double want = 0;
        for (int t = 0; t < 5; t++) want += fx_logsoftmax(lg + t * V, V, tokens[t]);
        cr_assert(fabs(res.ll - want) < 1e-5 * fabs(want));
        spq_scorer_free(&sc);
    }
    spq_model_free(&m);
}

Test(rolling, errors) {
    spq_model m;
    fx_tiny_random(&m, 1, 64, 64);
    spq_scorer sc;
    spq_scorer_model(&sc, &m);
    spq_rolling_result res;
    spq_err err;
    int t[2] = {5, 6};
    cr_assert_eq(spq_rolling_score(&res, &sc, t, 0, 8, 1, 1, NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "no tokens"));
    cr_assert_eq(spq_rolling_score(&res, &sc, t, 2, 8, -1, 1, NULL, NULL, &err), -1);
    cr_assert(strstr(err.msg, "prefix"));
    spq_scorer_free(&sc);
    spq_model_free(&m);
}

Test(rolling, word_count_is_python_split) {
    /* len(re.split(r"\s+", s)) */
    struct {
        const char *s;
        long n;
    } cases[] = {
        {"", 1},
        {"a", 1},
        {"a b", 2},
        {"  a b\n\nc ", 5},                      /* ['', 'a', 'b', 'c', ''] */
        {"a\tb\r\nc\x0b" "d\x0c" "e", 5},
        {"a\xc2\xa0" "b", 2},                    /* U+00A0 is \s */
        {"a\xe2\x80\x83" "b\xe3\x80\x80" "c", 3}, /* U+2003, U+3000 */
        {"a\xe2\x80\x8b" "b", 1},                /* U+200B is not */
        {"a\x1c" "b\x1f" "c", 3},                /* information separators are */
        {"caf\xc3\xa9 au lait", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_assert_eq(spq_py_count_words(cases[i].s, strlen(cases[i].s)), cases[i].n, "case %zu", i);
    cr_assert_eq(spq_py_len("caf\xc3\xa9", 5), 4);
    cr_assert_eq(spq_py_rstrip_len("ab \xc2\xa0\n", 6), 2);
    cr_assert_eq(spq_py_rstrip_len("ab\xc3\xa9", 4), 4);
}

Test(rolling, perplexities_from_ll) {
    spq_rolling_result r = {0};
    r.ll = -10;
    r.n_tokens = 8;
    const char *text = "one two\nthree  four five\n"; /* 5 whitespace runs after words -> 6 pieces */
    spq_rolling_finish(&r, text, strlen(text));
    cr_assert_eq(r.n_words, 6);
    cr_assert_eq(r.n_bytes, 25);
    cr_assert(fabs(r.word_perplexity - exp(10.0 / 6)) < 1e-12);
    cr_assert(fabs(r.byte_perplexity - exp(10.0 / 25)) < 1e-12);
    cr_assert(fabs(r.bits_per_byte - 10.0 / 25 / log(2.0)) < 1e-12);
    cr_assert(fabs(r.token_perplexity - exp(10.0 / 8)) < 1e-12);
}

/* ---- perplexity texts ---- */

#include "common/base/textprep.h"

Test(textprep, hf_rows_joined) {
    /* rows: "", " a \n", "", "b\n", "c" */
    const char *raw = " \n a \n\t\nb\nc";
    size_t n;
    char *j = spq_text_join_rows(raw, strlen(raw), &n);
    cr_assert_str_eq(j, "\n\n a \n\n\n\n\nb\n\n\nc");
    cr_assert_eq(n, strlen(j));
    free(j);
    cr_assert_eq(spq_text_count_rows(raw, strlen(raw)), 5);
    cr_assert_eq(spq_text_count_rows("a\n", 2), 1);
    cr_assert_eq(spq_text_count_rows("", 0), 0);
    j = spq_text_join_rows("", 0, &n);
    cr_assert_eq(n, 0);
    free(j);
}

/* the WikiText-2 files have the HF split's row counts */
Test(textprep, wikitext_rows) {
    const char *files[2] = {"data/eval/wikitext-2-raw/wiki.test.raw", "data/eval/wikitext-2-raw/wiki.valid.raw"};
    long want[2] = {4358, 3760};
    for (int i = 0; i < 2; i++) {
        char *p = fx_shared(files[i]), *text;
        size_t len, n;
        spq_err err;
        cr_assert_eq(spq_read_file(&text, &len, p, &err), 0, "%s", err.msg);
        cr_assert(spq_utf8_valid(text, len));
        cr_assert_eq(spq_text_count_rows(text, len), want[i]);
        char *j = spq_text_join_rows(text, len, &n);
        /* starts with rows "", " = Robert Boulter = \n", "" (test) */
        const char *head = "\n\n = Robert Boulter = \n\n\n\n\n Robert Boulter is";
        if (i == 0) cr_assert(!strncmp(j, head, strlen(head)), "%.60s", j);
        cr_assert(spq_py_count_words(j, n) > 200000);
        free(j);
        free(text);
        free(p);
    }
}
