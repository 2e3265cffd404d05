/* ppl.c - see ppl.h. */
#include "ppl.h"

#include <math.h>
#include <stdlib.h>

#include "common/base/vexp.h"
#include "common/model/forward.h"

/* log-sum-exp in 8 float lanes with the vectorizable exp; the lanes' sums
 * are combined in double */
__attribute__((target_clones("arch=x86-64-v3", "default"))) double spq_nll(const float *logits, int V, int target) {
    float mx = spq_vmax(logits, V);
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= V; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += spq_vexpf(logits[i + j] - mx);
    double sum = 0;
    for (; i < V; i++) sum += spq_vexpf(logits[i] - mx);
    for (int j = 0; j < 8; j++) sum += acc[j];
    return log(sum) + mx - logits[target];
}

int spq_ppl_windows(spq_ppl_result *res, const spq_model *m, const int *tokens, long n, int seqlen, int batch,
                    spq_progress_fn progress, void *ud, spq_err *err) {
    spq_scorer sc;
    spq_scorer_model(&sc, m);
    int rc = spq_ppl_windows_sc(res, &sc, tokens, n, seqlen, batch, progress, ud, err);
    spq_scorer_free(&sc);
    return rc;
}

int spq_ppl_windows_sc(spq_ppl_result *res, spq_scorer *sc, const int *tokens, long n, int seqlen, int batch,
                       spq_progress_fn progress, void *ud, spq_err *err) {
    res->nll_sum = 0;
    res->n_scored = 0;
    res->n_windows = 0;
    res->ppl = NAN;
    if (seqlen < 2) return spq_fail(err, "seqlen must be at least 2 (got %d)", seqlen);
    long nw = n / seqlen;
    if (nw < 1) return spq_fail(err, "the text has %ld tokens, fewer than one window of %d", n, seqlen);
    if (batch < 1) batch = 1;
    if (batch > nw) batch = (int)nw;
    int V = sc->vocab_size;
    sc->reserve(sc, batch, seqlen, batch * seqlen);
    float *logits = spq_malloc((size_t)batch * seqlen * V * sizeof(float));
    int *pos = spq_calloc(batch, sizeof(int));
    for (long w0 = 0; w0 < nw; w0 += batch) {
        int B = (int)(nw - w0 < batch ? nw - w0 : batch);
        const int *tok = tokens + w0 * seqlen;
        sc->forward(sc, logits, tok, pos, B, seqlen, SPQ_LOGITS_ALL);
        for (int b = 0; b < B; b++)
            for (int t = 0; t + 1 < seqlen; t++) {
                res->nll_sum += spq_nll(logits + ((size_t)b * seqlen + t) * V, V, tok[b * seqlen + t + 1]);
                res->n_scored++;
            }
        res->n_windows += B;
        if (progress) progress(ud, w0 + B, nw);
    }
    res->ppl = exp(res->nll_sum / (double)res->n_scored);
    free(pos);
    free(logits);
    return 0;
}
