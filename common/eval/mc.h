/* mc.h - zero-shot task scoring as lm-evaluation-harness does it: every
 * item's requests are tokenized (llencode.h), scored in batches that run
 * each question's shared context once (loglik.h), and reduced to
 *   acc      = mean [argmax_i ll_i == gold]
 *   acc_norm = mean [argmax_i ll_i / len(choice_i) == gold]  (characters)
 *   stderr   = sample standard deviation / sqrt(n)  (lm-eval's mean_stderr)
 * and, for cloze tasks, acc = mean [greedy decoding reproduces the target]
 * and perplexity = exp(-mean ll of the target). argmax takes the first
 * maximum, as numpy does.
 *
 * An item with a continuation longer than the model's window cannot be
 * scored (lm-eval fails on it too; it happens only with small windows, e.g.
 * a PIQA solution in stories260K's 512 tokens): it is left out and counted
 * in n_too_long. */
#ifndef SPQ_MC_H
#define SPQ_MC_H

#include "llencode.h"
#include "loglik.h"
#include "scorer.h"
#include "tasks.h"

typedef struct {
    int max_len;    /* model window; 0 = the model's context */
    int add_bos;    /* put BOS before every context (lm-eval's add_bos_token; default off) */
    long limit;     /* the first `limit` items; 0 = all */
    int max_rows;   /* token rows per forward call; 0 = spq_eval_default_rows */
    int max_groups; /* questions per batch; 0 = a default */
} spq_eval_opts;

typedef struct {
    long n;          /* items scored */
    long n_too_long; /* items left out: a continuation longer than the window */
    long first_too_long_line; /* line of the first of them (0 if none) */
    double acc, acc_stderr;
    double acc_norm, acc_norm_stderr; /* NAN when the task has none */
    double ppl;      /* cloze tasks; NAN otherwise */
    long n_requests;
    long ctx_tokens, cont_tokens;
    spq_ll_stats ll;
    double seconds;
} spq_task_result;

/* Rows per forward call that keep the logits buffer near 128 MB. */
int spq_eval_default_rows(int vocab_size);

int spq_mc_argmax(const double *x, int n);
/* argmax of ll[i] / chars[i] */
int spq_mc_argmax_norm(const double *ll, const long *chars, int n);
/* sample standard deviation (n-1) / sqrt(n); 0 when n < 2 */
double spq_mean_stderr(const double *x, long n);

/* Reduces per-request scores to the metrics: items (n_items) are indices
 * into t->items, out holds their requests in that order. */
void spq_task_metrics(spq_task_result *res, const spq_task *t, const long *items, long n_items,
                      const spq_ll_out *out);

int spq_task_eval(spq_task_result *res, const spq_task *t, spq_scorer *sc, spq_encode_fn enc, void *enc_ud,
                  const spq_eval_opts *o, spq_progress_fn progress, void *ud, spq_err *err);

#endif
