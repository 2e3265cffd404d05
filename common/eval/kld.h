/* kld.h - how far a model's next-token distributions drift from a base
 * model's, with the statistics llama.cpp's `perplexity --kl-divergence`
 * reports: mean KLD(base || model) with its uncertainty and percentiles,
 * top-1 agreement ("same top p"), Δp = p_model(correct) - p_base(correct)
 * (mean, RMS, percentiles), both perplexities, their ratio and its log.
 *
 * The positions are those of the perplexity protocol (ppl.h): windows of
 * seqlen tokens, every position but the first, so PPL(model) here equals
 * spq_ppl_windows's figure. (llama.cpp scores only the second half of each
 * window; we keep one protocol for both numbers.)
 *
 * Uncertainties as llama.cpp computes them: a mean's standard error
 * sqrt((E[x²] - E[x]²) / (n-1)); PPL ± PPL·stderr(mean NLL); ln ratio from
 * the per-token differences; RMS Δp ± stderr(Δp²) / (2·RMS); top-1
 * agreement ± sqrt(p(1-p)/(n-1)). Percentiles interpolate linearly between
 * order statistics (numpy's default). */
#ifndef SPQ_KLD_H
#define SPQ_KLD_H

#include "logitfile.h"
#include "ppl.h"
#include "scorer.h"

typedef struct {
    long n;
    double sum_kld, sum_kld2;
    double sum_nq, sum_nq2, sum_nb, sum_nb2, sum_nqb; /* per-token NLL of model (q) and base (b) */
    double sum_dp, sum_dp2, sum_dp4;
    long same_top;
    float *kld, *dp; /* (n) per-token values for the percentiles */
    long cap;
    unsigned char *mark; /* (V) scratch for compact rows */
    int mark_v;
    /* a rank's share (spq_kld_acc_keep): every position's raw figures, 5
     * per position (kld, nll model, nll base, dp, same top), so that the
     * ranks' shares can be replayed in order (spq_kld_acc_merge) */
    int keep;
    double *rec;
} spq_kld_acc;

void spq_kld_acc_init(spq_kld_acc *a);
void spq_kld_acc_free(spq_kld_acc *a);
/* Keeps every position's figures too (for spq_kld_acc_merge). */
void spq_kld_acc_keep(spq_kld_acc *a);
/* Across ranks (par.h): a gets every rank's positions in their order, the
 * same sums, bit for bit, as one accumulator that saw them all. part holds
 * this rank's positions [first, first + part->n) of total, kept with
 * spq_kld_acc_keep; every rank calls this. */
void spq_kld_acc_merge(spq_kld_acc *a, const spq_kld_acc *part, long first, long total);

/* One position from full rows of V logits: the model's lq, the base's lb. */
void spq_kld_add_logits(spq_kld_acc *a, const float *lq, const float *lb, int V, int target);
/* One position against a saved base row (see logitfile.h for what is exact). */
void spq_kld_add_row(spq_kld_acc *a, const float *lq, int V, const spq_logit_row *b, int target);

#define SPQ_KLD_NPCT 11
/* The percentile levels reported, highest first: max, 99.9, 99, 95, 90,
 * median, 10, 5, 1, 0.1, min. */
extern const double spq_kld_pct_levels[SPQ_KLD_NPCT];
extern const char *const spq_kld_pct_names[SPQ_KLD_NPCT];

typedef struct {
    long n;
    double ppl_q, ppl_q_unc, ppl_b, ppl_b_unc;
    double ln_ratio, ln_ratio_unc; /* mean(NLL_q - NLL_b) = ln(PPL_q / PPL_b) */
    double ratio, ratio_unc;       /* PPL_q / PPL_b */
    double diff, diff_unc;         /* PPL_q - PPL_b */
    double cor;                    /* correlation of the per-token NLLs */
    double kld, kld_unc;
    double kld_pct[SPQ_KLD_NPCT];
    double dp, dp_unc, dp_rms, dp_rms_unc; /* fractions, not % */
    double dp_pct[SPQ_KLD_NPCT];
    double same_top, same_top_unc; /* fraction */
} spq_kld_stats;

/* Summarizes (sorts the per-token arrays in place). n >= 2. */
void spq_kld_stats_compute(spq_kld_stats *s, spq_kld_acc *a);

/* Linear-interpolation percentile of sorted v (n), fraction in [0, 1]. */
double spq_percentile(const float *v, long n, double fraction);

/* Where the base distributions come from; all may be NULL. */
typedef struct {
    spq_scorer *base;          /* run here, in the same process */
    spq_logit_file *base_file; /* saved earlier (checked against the tokens) */
    spq_logit_file *save;      /* save the evaluated model's rows here */
    int save_k;                /* top-k for save */
} spq_kld_src;

/* One pass of the perplexity windows (ppl.h) over tokens: fills ppl with
 * the model's perplexity (same figure as spq_ppl_windows_sc) and, when a
 * base is given, acc with the comparison. */
int spq_kld_windows(spq_ppl_result *ppl, spq_kld_acc *acc, spq_scorer *model, const spq_kld_src *src,
                    const int *tokens, long n, int seqlen, int batch, spq_progress_fn progress, void *ud,
                    spq_err *err);

#endif
