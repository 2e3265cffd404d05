/* rolling.c - see rolling.h. Windows are batched B at a time; a batch's
 * windows are padded at the end to the longest (only the first window can
 * be shorter than max_len): causal attention keeps padding from reaching the
 * real positions.
 *
 * Under MPI (par.h) the batches are split across the ranks; every token's
 * NLL goes to its place in an array over the text (zeros elsewhere), which
 * is summed over the ranks and added up in the one-rank order: the same bits
 * as one rank. */
#include "rolling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/par.h"
#include "common/base/pytext.h"

long spq_rolling_windows(spq_rolling_window **w, long n, int max_len) {
    *w = NULL;
    if (n <= 0 || max_len < 1) return 0;
    long cap = 1 + (n + max_len - 1) / max_len, k = 0;
    spq_rolling_window *v = spq_malloc(cap * sizeof *v);
    long first = n < max_len ? n : max_len;
    v[k++] = (spq_rolling_window){0, (int)first, (int)first};
    for (long done = first; done < n;) {
        long p = n - done < max_len ? n - done : max_len;
        /* stream index = token index + 1: the window's input ends at
         * stream index done + p (exclusive), i.e. just before the last
         * predicted token, and is max_len long */
        v[k++] = (spq_rolling_window){done + p - max_len, max_len, (int)p};
        done += p;
    }
    *w = v;
    return k;
}

int spq_rolling_score(spq_rolling_result *res, spq_scorer *sc, const int *tokens, long n, int max_len, int prefix,
                      int batch, spq_progress_fn progress, void *ud, spq_err *err) {
    memset(res, 0, sizeof *res);
    if (max_len < 1) return spq_fail(err, "max_len must be at least 1 (got %d)", max_len);
    if (prefix < 0 || prefix >= sc->vocab_size) return spq_fail(err, "no prefix token (BOS/EOS) for rolling windows");
    spq_rolling_window *w;
    long nw = spq_rolling_windows(&w, n, max_len);
    if (nw == 0) return spq_fail(err, "the text has no tokens");
    if (batch < 1) batch = 1;
    if (batch > nw) batch = (int)nw;
    int V = sc->vocab_size;
    sc->reserve(sc, batch, max_len, batch * max_len);
    float *logits = spq_malloc((size_t)batch * max_len * V * sizeof(float));
    int *in = spq_malloc((size_t)batch * max_len * sizeof(int));
    int *pos = spq_calloc(batch, sizeof(int));
    int ranks = spq_par_size(), c_lo, c_hi;
    spq_par_share((int)((nw + batch - 1) / batch), &c_lo, &c_hi);
    long w_lo = (long)c_lo * batch, w_hi = (long)c_hi * batch < nw ? (long)c_hi * batch : nw;
    double *nll = ranks > 1 ? spq_calloc(n > 0 ? n : 1, sizeof *nll) : NULL; /* (n) by target token */
    for (long w0 = w_lo; w0 < w_hi; w0 += batch) {
        int B = (int)(nw - w0 < batch ? nw - w0 : batch), T = 0;
        for (int b = 0; b < B; b++) T = w[w0 + b].in_len > T ? w[w0 + b].in_len : T;
        for (int b = 0; b < B; b++) {
            const spq_rolling_window *x = &w[w0 + b];
            for (int t = 0; t < T; t++) {
                long si = x->in_start + (t < x->in_len ? t : x->in_len - 1); /* pad: repeat the last token */
                in[b * T + t] = si == 0 ? prefix : tokens[si - 1];
            }
        }
        sc->forward(sc, logits, in, pos, B, T, SPQ_LOGITS_ALL);
        for (int b = 0; b < B; b++) {
            const spq_rolling_window *x = &w[w0 + b];
            for (int t = x->in_len - x->n_pred; t < x->in_len; t++) {
                long target = x->in_start + t; /* stream index t+1 -> token index t */
                double x = spq_nll(logits + ((size_t)b * T + t) * V, V, tokens[target]);
                if (nll) nll[target] = x;
                else res->ll -= x;
                res->n_tokens++;
            }
        }
        res->n_windows += B;
        if (progress) progress(ud, w0 + B - w_lo, w_hi - w_lo);
    }
    if (nll) { /* windows predict the tokens in text order */
        spq_par_sum_f64(nll, (size_t)n);
        for (long i = 0; i < n; i++) res->ll -= nll[i];
        long long counts[2] = {res->n_tokens, res->n_windows};
        spq_par_sum_i64(counts, 2);
        res->n_tokens = (long)counts[0];
        res->n_windows = (long)counts[1];
        free(nll);
    }
    free(pos);
    free(in);
    free(logits);
    free(w);
    return 0;
}

void spq_rolling_finish(spq_rolling_result *res, const char *text, size_t len) {
    res->n_words = spq_py_count_words(text, len);
    res->n_bytes = (long)len;
    res->token_perplexity = res->n_tokens ? exp(-res->ll / res->n_tokens) : NAN;
    res->word_perplexity = res->n_words ? exp(-res->ll / res->n_words) : NAN;
    res->byte_perplexity = len ? exp(-res->ll / (double)len) : NAN;
    res->bits_per_byte = len ? -res->ll / (double)len / log(2.0) : NAN;
}
