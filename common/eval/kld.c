/* kld.c - see kld.h. Everything per token is accumulated in double; the
 * per-token KLD and Δp are also kept (as float) for the percentiles. */
#include "kld.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/par.h"

const double spq_kld_pct_levels[SPQ_KLD_NPCT] = {1.0, 0.999, 0.99, 0.95, 0.90, 0.5, 0.10, 0.05, 0.01, 0.001, 0.0};
const char *const spq_kld_pct_names[SPQ_KLD_NPCT] = {"max", "p99.9", "p99", "p95", "p90", "median",
                                                     "p10", "p5",    "p1",  "p0.1", "min"};

void spq_kld_acc_init(spq_kld_acc *a) {
    memset(a, 0, sizeof *a);
}

void spq_kld_acc_free(spq_kld_acc *a) {
    free(a->kld);
    free(a->dp);
    free(a->mark);
    free(a->rec);
    memset(a, 0, sizeof *a);
}

void spq_kld_acc_keep(spq_kld_acc *a) { a->keep = 1; }

#define KLD_REC 5

/* log(sum(exp(x))) in double (spq_nll uses a vectorized float exp, so the
 * NLLs here agree with the perplexity's to ~1e-7, not bitwise; the
 * perplexity figure itself comes from spq_nll) */
static double row_lse(const float *x, int V) {
    float mx = x[0];
    for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)x[i] - mx);
    return log(sum) + mx;
}

static int row_argmax(const float *x, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void push(spq_kld_acc *a, double kld, double nq, double nb, double dp, int same) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 4096;
        a->kld = spq_realloc(a->kld, a->cap * sizeof *a->kld);
        a->dp = spq_realloc(a->dp, a->cap * sizeof *a->dp);
        if (a->keep) a->rec = spq_realloc(a->rec, a->cap * KLD_REC * sizeof *a->rec);
    }
    if (a->keep) {
        double *r = a->rec + a->n * KLD_REC;
        r[0] = kld, r[1] = nq, r[2] = nb, r[3] = dp, r[4] = same;
    }
    a->kld[a->n] = (float)kld;
    a->dp[a->n] = (float)dp;
    a->n++;
    a->sum_kld += kld;
    a->sum_kld2 += kld * kld;
    a->sum_nq += nq;
    a->sum_nq2 += nq * nq;
    a->sum_nb += nb;
    a->sum_nb2 += nb * nb;
    a->sum_nqb += nq * nb;
    a->sum_dp += dp;
    a->sum_dp2 += dp * dp;
    a->sum_dp4 += dp * dp * dp * dp;
    a->same_top += same;
}

/* every position of every rank in one array, zeros but this rank's (so the
 * sum over ranks is exact), then pushed in order as one rank would */
void spq_kld_acc_merge(spq_kld_acc *a, const spq_kld_acc *part, long first, long total) {
    double *all = spq_calloc((size_t)(total > 0 ? total : 1) * KLD_REC, sizeof *all);
    if (part->n > 0) memcpy(all + (size_t)first * KLD_REC, part->rec, (size_t)part->n * KLD_REC * sizeof *all);
    spq_par_sum_f64(all, (size_t)total * KLD_REC);
    for (long i = 0; i < total; i++) {
        const double *r = all + (size_t)i * KLD_REC;
        push(a, r[0], r[1], r[2], r[3], (int)r[4]);
    }
    free(all);
}

void spq_kld_add_logits(spq_kld_acc *a, const float *lq, const float *lb, int V, int target) {
    double zq = row_lse(lq, V), zb = row_lse(lb, V);
    double kld = 0;
    for (int i = 0; i < V; i++) {
        double pb = (double)lb[i] - zb;
        kld += exp(pb) * (pb - ((double)lq[i] - zq));
    }
    double nq = zq - lq[target], nb = zb - lb[target];
    push(a, kld, nq, nb, exp(-nq) - exp(-nb), row_argmax(lq, V) == row_argmax(lb, V));
}

void spq_kld_add_row(spq_kld_acc *a, const float *lq, int V, const spq_logit_row *b, int target) {
    if (a->mark_v != V) {
        free(a->mark);
        a->mark = spq_calloc(V, 1);
        a->mark_v = V;
    }
    double zq = row_lse(lq, V);
    double kld = 0;
    for (int j = 0; j < b->k; j++) {
        a->mark[b->id[j]] = 1;
        double pb = b->logp[j];
        kld += exp(pb) * (pb - ((double)lq[b->id[j]] - zq));
    }
    if (isfinite(b->tail_logp)) {
        /* the model's mass on the same tail, as a log-sum-exp over it */
        float mx = -INFINITY;
        for (int i = 0; i < V; i++)
            if (!a->mark[i] && lq[i] > mx) mx = lq[i];
        double s = 0;
        for (int i = 0; i < V; i++)
            if (!a->mark[i]) s += exp((double)lq[i] - mx);
        double tq = isfinite(mx) ? mx + log(s) - zq : -INFINITY;
        kld += exp((double)b->tail_logp) * ((double)b->tail_logp - tq);
    }
    for (int j = 0; j < b->k; j++) a->mark[b->id[j]] = 0;
    double nq = zq - lq[target], nb = -(double)b->target_logp;
    push(a, kld, nq, nb, exp(-nq) - exp(-nb), b->k > 0 && row_argmax(lq, V) == (int)b->id[0]);
}

static int cmp_float(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return a < b ? -1 : a > b;
}

double spq_percentile(const float *v, long n, double fraction) {
    if (n <= 0) return NAN;
    if (fraction <= 0) return v[0];
    if (fraction >= 1) return v[n - 1];
    double p = fraction * (double)(n - 1);
    long i = (long)p;
    p -= (double)i;
    long j = i + 1 < n ? i + 1 : n - 1;
    return (1 - p) * v[i] + p * v[j];
}

/* standard error of a mean from sums */
static double sem(double sum, double sum2, long n) {
    double m = sum / n, var = sum2 / n - m * m;
    return var > 0 && n > 1 ? sqrt(var / (n - 1)) : 0;
}

void spq_kld_stats_compute(spq_kld_stats *s, spq_kld_acc *a) {
    memset(s, 0, sizeof *s);
    long n = a->n;
    s->n = n;
    if (n < 1) return;
    double mq = a->sum_nq / n, mb = a->sum_nb / n;
    double uq = sem(a->sum_nq, a->sum_nq2, n), ub = sem(a->sum_nb, a->sum_nb2, n);
    double cov = n > 1 ? (a->sum_nqb / n - mq * mb) / (n - 1) : 0; /* covariance of the two means */
    s->ppl_q = exp(mq);
    s->ppl_q_unc = s->ppl_q * uq;
    s->ppl_b = exp(mb);
    s->ppl_b_unc = s->ppl_b * ub;
    double var_d = uq * uq + ub * ub - 2 * cov;
    s->ln_ratio = mq - mb;
    s->ln_ratio_unc = var_d > 0 ? sqrt(var_d) : 0;
    s->ratio = exp(s->ln_ratio);
    s->ratio_unc = s->ratio * s->ln_ratio_unc;
    s->diff = s->ppl_q - s->ppl_b;
    double var_diff = s->ppl_q_unc * s->ppl_q_unc + s->ppl_b_unc * s->ppl_b_unc - 2 * s->ppl_q * s->ppl_b * cov;
    s->diff_unc = var_diff > 0 ? sqrt(var_diff) : 0;
    s->cor = uq > 0 && ub > 0 ? cov / (uq * ub) : 1;

    s->kld = a->sum_kld / n;
    s->kld_unc = sem(a->sum_kld, a->sum_kld2, n);
    s->dp = a->sum_dp / n;
    s->dp_unc = sem(a->sum_dp, a->sum_dp2, n);
    double dp2 = a->sum_dp2 / n;
    s->dp_rms = sqrt(dp2);
    s->dp_rms_unc = s->dp_rms > 0 ? 0.5 / s->dp_rms * sem(a->sum_dp2, a->sum_dp4, n) : 0;
    s->same_top = (double)a->same_top / n;
    s->same_top_unc = n > 1 ? sqrt(s->same_top * (1 - s->same_top) / (n - 1)) : 0;

    qsort(a->kld, n, sizeof *a->kld, cmp_float);
    qsort(a->dp, n, sizeof *a->dp, cmp_float);
    for (int i = 0; i < SPQ_KLD_NPCT; i++) {
        s->kld_pct[i] = spq_percentile(a->kld, n, spq_kld_pct_levels[i]);
        s->dp_pct[i] = spq_percentile(a->dp, n, spq_kld_pct_levels[i]);
    }
}

int spq_kld_windows(spq_ppl_result *ppl, spq_kld_acc *acc, spq_scorer *model, const spq_kld_src *src,
                    const int *tokens, long n, int seqlen, int batch, spq_progress_fn progress, void *ud,
                    spq_err *err) {
    memset(ppl, 0, sizeof *ppl);
    ppl->ppl = NAN;
    if (seqlen < 2) return spq_fail(err, "seqlen must be at least 2 (got %d)", seqlen);
    long nw = n / seqlen;
    if (nw < 1) return spq_fail(err, "the text has %ld tokens, fewer than one window of %d", n, seqlen);
    int V = model->vocab_size;
    spq_scorer *base = src ? src->base : NULL;
    spq_logit_file *bf = src ? src->base_file : NULL, *save = src ? src->save : NULL;
    if ((base || bf) && !acc) return spq_fail(err, "a KLD base needs an accumulator");
    if (base && base->vocab_size != V)
        return spq_fail(err, "the base model's vocabulary (%d) differs from the model's (%d)", base->vocab_size, V);
    if (bf && spq_logit_file_match(bf, V, seqlen, tokens, n, err)) return -1;
    if (batch < 1) batch = 1;
    if (batch > nw) batch = (int)nw;
    model->reserve(model, batch, seqlen, batch * seqlen);
    if (base) base->reserve(base, batch, seqlen, batch * seqlen);
    size_t rows = (size_t)batch * seqlen;
    float *lq = spq_malloc(rows * V * sizeof(float));
    float *lb = base ? spq_malloc(rows * V * sizeof(float)) : NULL;
    int *pos = spq_calloc(batch, sizeof(int));
    spq_logit_row in_row = {0}, out_row = {0};
    if (bf) spq_logit_row_build(&in_row, (int)bf->k);
    if (save) spq_logit_row_build(&out_row, (int)save->k);
    int rc = 0;
    for (long w0 = 0; w0 < nw && !rc; w0 += batch) {
        int B = (int)(nw - w0 < batch ? nw - w0 : batch);
        const int *tok = tokens + w0 * seqlen;
        model->forward(model, lq, tok, pos, B, seqlen, SPQ_LOGITS_ALL);
        if (base) base->forward(base, lb, tok, pos, B, seqlen, SPQ_LOGITS_ALL);
        for (int b = 0; b < B && !rc; b++)
            for (int t = 0; t + 1 < seqlen; t++) {
                size_t r = (size_t)b * seqlen + t;
                int target = tok[b * seqlen + t + 1];
                const float *q = lq + r * V;
                ppl->nll_sum += spq_nll(q, V, target);
                ppl->n_scored++;
                if (save) {
                    spq_logit_row_from_logits(&out_row, q, V, target);
                    if ((rc = spq_logit_file_write(save, &out_row, err))) break;
                }
                if (base) spq_kld_add_logits(acc, q, lb + r * V, V, target);
                else if (bf) {
                    if ((rc = spq_logit_file_read(bf, &in_row, err))) break;
                    spq_kld_add_row(acc, q, V, &in_row, target);
                }
            }
        ppl->n_windows += B;
        if (progress) progress(ud, w0 + B, nw);
    }
    if (!rc) ppl->ppl = exp(ppl->nll_sum / (double)ppl->n_scored);
    if (bf) spq_logit_row_free(&in_row);
    if (save) spq_logit_row_free(&out_row);
    free(pos);
    free(lb);
    free(lq);
    return rc;
}
