/* ppl.h - perplexity over non-overlapping windows, the protocol of GPTQ,
 * QuaRot and SpinQuant: the text is tokenized once as one string, cut into
 * windows of seqlen tokens (the tail that does not fill a window is dropped),
 * each window is run from an empty cache, every position but the first is
 * predicted, and ppl = exp(mean NLL). */
#ifndef SPQ_PPL_H
#define SPQ_PPL_H

#include "scorer.h"
#include "common/model/model.h"

typedef struct {
    double nll_sum;  /* sum of -log p(token) over scored positions */
    long n_scored;   /* positions scored */
    int n_windows;
    double ppl;      /* exp(nll_sum / n_scored) */
} spq_ppl_result;

typedef void (*spq_progress_fn)(void *ud, long done, long total);

/* tokens (n); windows of seqlen, `batch` windows per forward call.
 * Fails when n < seqlen (not one full window). */
int spq_ppl_windows(spq_ppl_result *res, const spq_model *m, const int *tokens, long n, int seqlen, int batch,
                    spq_progress_fn progress, void *ud, spq_err *err);
/* The same through a scorer (any model implementation). */
int spq_ppl_windows_sc(spq_ppl_result *res, spq_scorer *sc, const int *tokens, long n, int seqlen, int batch,
                       spq_progress_fn progress, void *ud, spq_err *err);

/* -log softmax(logits)[target] for one row of V logits, in double. */
double spq_nll(const float *logits, int V, int target);

#endif
