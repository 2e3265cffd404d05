/* eval_run.h - runs an evaluation plan (perplexity files, KL divergence,
 * tasks) on one scorer and reports every figure as one JSON object; `spinq
 * eval` prints it as a table, the job pipeline stores it as metrics.
 *
 * Report layout:
 *   {"model", "rotation", "quant", "scorer", "seqlen", "bos",
 *    "ppl": [{"data", "join" ("file" or "rows"), "tokens", "windows", "scored", "nll", "ppl", "seconds",
 *             "rolling": {"max_len", "tokens", "windows", "words", "bytes", "ll",
 *                         "token_perplexity", "word_perplexity",
 *                         "byte_perplexity", "bits_per_byte"},
 *             "kld": {"base", "source", "topk", "positions", "kld", "kld_unc",
 *                     "kld_pct": {"max", "p99.9", ..., "min"}, "same_top",
 *                     "same_top_unc", "dp", "dp_unc", "dp_rms", "dp_rms_unc",
 *                     "dp_pct": {...}, "ppl", "ppl_unc", "ppl_base",
 *                     "ppl_base_unc", "ppl_ratio", "ppl_ratio_unc",
 *                     "ln_ppl_ratio", "ln_ppl_ratio_unc", "ppl_diff",
 *                     "ppl_diff_unc", "nll_cor"},
 *             "saved_logits": {"path", "topk", "positions"}}],
 *    "tasks": [{"name", "format", "data", "items", "skipped", "skipped_log",
 *               "acc", "acc_stderr", "acc_norm", "acc_norm_stderr",
 *               "perplexity", "requests", "context_tokens",
 *               "continuation_tokens", "rows_run", "rows_naive", "seconds"}]}
 * Probabilities (same_top, dp, acc) are fractions; figures that do not
 * apply are left out (JSON has no NaN). */
#ifndef PL_EVAL_RUN_H
#define PL_EVAL_RUN_H

#include <jansson.h>

#include "common/eval/scorer.h"
#include "common/tok/tokenizer.h"

typedef struct {
    const char *name;   /* as reported */
    const char *format; /* reader (tasks.h) */
    const char *path;
} pl_eval_task_spec;

typedef struct {
    const char *path;
    int rows; /* 1: the lines are dataset rows joined with "\n\n" (textprep.h) */
} pl_eval_text_spec;

typedef struct {
    const char *model;         /* for the report */
    const char *rotation;      /* for the report, or NULL */
    const char *quant;         /* for the report (spq_qcfg_describe), or NULL */
    const pl_eval_text_spec *ppl; /* (n_ppl) text files */
    int n_ppl;
    int seqlen;                /* windows for ppl/KLD, max_len for rolling and tasks */
    int batch;                 /* windows per forward call; 0 = 4, fewer for large vocabularies */
    int rolling;               /* also lm-eval's rolling word/byte perplexity */
    spq_scorer *kld_base;      /* KLD against this model (every ppl file), or NULL */
    const char *kld_base_name;
    const char *kld_logits;    /* KLD against saved rows (one ppl file), or NULL */
    const char *save_logits;   /* save this model's rows (one ppl file), or NULL */
    int save_topk;
    const pl_eval_task_spec *tasks;
    int n_tasks;
    long limit;                /* first N items of each task; 0 = all */
    int skip_bad;              /* skip bad task items instead of failing */
    int add_bos;               /* BOS before task contexts */
    int max_groups;            /* questions per batch; 0 = default */
    int progress;              /* progress bars on stderr */
} pl_eval_plan;

/* Runs the plan; *report is a new JSON object (also on failure: what was
 * done so far). */
int pl_eval_run(json_t **report, const pl_eval_plan *p, spq_scorer *sc, const spq_tokenizer *tok, spq_err *err);

/* The report as aligned tables. */
void pl_eval_print(FILE *f, const json_t *report);

#endif
