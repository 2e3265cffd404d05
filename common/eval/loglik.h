/* loglik.h - lm-evaluation-harness's loglikelihood requests, batched: the
 * log-probability of a continuation's tokens after a context's, and whether
 * greedy decoding would have produced exactly the continuation.
 *
 * A request's model input is (ctx + cont) without its last token, cut from
 * the left to max_len tokens as lm-eval does; its last n_cont outputs score
 * the continuation. Requests come in groups (the choices of one question);
 * a group's common input prefix (for multiple choice: the context up to its
 * last token) is run once into a KV slot, then each request's remaining
 * tokens are run after it at pos = prefix length, one request per slot at a
 * time, overwriting what the previous request left beyond the prefix (see
 * scorer.h). Several groups share a forward call, padded at the end to the
 * longest, which causal attention keeps from the real positions. */
#ifndef SPQ_LOGLIK_H
#define SPQ_LOGLIK_H

#include "ppl.h"
#include "scorer.h"

typedef struct {
    const int *ctx;  /* (n_ctx) context tokens, n_ctx >= 1 */
    int n_ctx;
    const int *cont; /* (n_cont) continuation tokens, n_cont >= 1 */
    int n_cont;
} spq_ll_req;

typedef struct {
    double ll;  /* sum of log p over the continuation's tokens */
    int greedy; /* 1 when every continuation token is the argmax */
} spq_ll_out;

typedef struct {
    int max_len;    /* the model window; longer inputs lose their start */
    int max_rows;   /* token rows per forward call (the logits buffer is
                     * max_rows x V floats); raised to the longest single
                     * group when that needs more */
    int max_groups; /* groups (KV slots) per batch */
} spq_ll_opts;

typedef struct {
    long rows_run;      /* token rows through the model, padding included */
    long rows_naive;    /* rows lm-eval would run: every request's full input */
    long forward_calls;
} spq_ll_stats;

/* out (n_req); group (n_groups+1): group g is requests [group[g], group[g+1]).
 * stats may be NULL. Fails on an empty context/continuation or a
 * continuation longer than max_len. */
int spq_ll_score(spq_ll_out *out, spq_ll_stats *stats, spq_scorer *sc, const spq_ll_req *req, const long *group,
                 long n_groups, const spq_ll_opts *o, spq_progress_fn progress, void *ud, spq_err *err);

#endif
