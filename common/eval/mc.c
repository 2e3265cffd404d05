/* mc.c - see mc.h. */
#include "mc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/par.h"

int spq_eval_default_rows(int vocab_size) {
    /* 128 MB of logits: 2048 rows at vocabulary 16K, 261 at LLaMA-3's 128K */
    long rows = (128L << 20) / ((long)vocab_size * (long)sizeof(float));
    return (int)(rows < 64 ? 64 : rows > 2048 ? 2048 : rows);
}

int spq_mc_argmax(const double *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

int spq_mc_argmax_norm(const double *ll, const long *chars, int n) {
    int b = 0;
    double best = ll[0] / (double)chars[0];
    for (int i = 1; i < n; i++) {
        double v = ll[i] / (double)chars[i];
        if (v > best) best = v, b = i;
    }
    return b;
}

double spq_mean_stderr(const double *x, long n) {
    if (n < 2) return 0;
    double m = 0, ss = 0;
    for (long i = 0; i < n; i++) m += x[i];
    m /= n;
    for (long i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    return sqrt(ss / (n - 1)) / sqrt((double)n);
}

void spq_task_metrics(spq_task_result *res, const spq_task *t, const long *items, long n_items,
                      const spq_ll_out *out) {
    double *hit = spq_malloc((n_items ? n_items : 1) * sizeof *hit);
    double *hit_norm = spq_malloc((n_items ? n_items : 1) * sizeof *hit_norm);
    double ll_sum = 0;
    long r = 0;
    for (long i = 0; i < n_items; i++) {
        const spq_task_item *it = &t->items[items[i]];
        double *ll = spq_malloc((size_t)it->n * sizeof *ll);
        for (int j = 0; j < it->n; j++) ll[j] = out[r + j].ll;
        if (t->kind == SPQ_TASK_CLOZE) {
            hit[i] = out[r].greedy ? 1 : 0;
            ll_sum += out[r].ll;
        } else {
            hit[i] = spq_mc_argmax(ll, it->n) == it->gold;
            hit_norm[i] = spq_mc_argmax_norm(ll, it->chars, it->n) == it->gold;
        }
        free(ll);
        r += it->n;
    }
    res->n = n_items;
    res->n_requests = r;
    double s = 0, sn = 0;
    for (long i = 0; i < n_items; i++) s += hit[i], sn += t->kind == SPQ_TASK_CLOZE ? 0 : hit_norm[i];
    res->acc = n_items ? s / n_items : NAN;
    res->acc_stderr = spq_mean_stderr(hit, n_items);
    res->acc_norm = res->acc_norm_stderr = res->ppl = NAN;
    if (t->kind == SPQ_TASK_CLOZE) res->ppl = n_items ? exp(-ll_sum / n_items) : NAN;
    else if (t->has_acc_norm) {
        res->acc_norm = n_items ? sn / n_items : NAN;
        res->acc_norm_stderr = spq_mean_stderr(hit_norm, n_items);
    }
    free(hit);
    free(hit_norm);
}

/* spq_ll_score of this rank's share of the items (par.h), then every
 * request's score and the counts summed over the ranks: out and stats as one
 * rank's call gives (each request is scored by one rank, the others add
 * zeros). Every rank returns the same: a failure on one fails all. */
static int score_share(spq_ll_out *out, spq_ll_stats *stats, spq_scorer *sc, const spq_ll_req *req,
                       const long *group, long n_items, const spq_ll_opts *o, spq_progress_fn progress, void *ud,
                       spq_err *err) {
    if (spq_par_size() < 2) return spq_ll_score(out, stats, sc, req, group, n_items, o, progress, ud, err);
    int lo, hi;
    spq_par_share((int)n_items, &lo, &hi);
    memset(stats, 0, sizeof *stats);
    int bad = lo < hi && spq_ll_score(out, stats, sc, req, group + lo, hi - lo, o, progress, ud, err) != 0;
    if (spq_par_any(bad)) return bad ? -1 : spq_fail(err, "another rank failed");
    long n_req = group[n_items];
    double *ll = spq_calloc((size_t)(n_req > 0 ? n_req : 1) * 2, sizeof *ll); /* (n_req, 2): ll, greedy */
    for (long r = group[lo]; r < group[hi]; r++) ll[2 * r] = out[r].ll, ll[2 * r + 1] = out[r].greedy;
    spq_par_sum_f64(ll, 2 * (size_t)n_req);
    for (long r = 0; r < n_req; r++) out[r] = (spq_ll_out){ll[2 * r], (int)ll[2 * r + 1]};
    free(ll);
    long long n[3] = {stats->rows_run, stats->rows_naive, stats->forward_calls};
    spq_par_sum_i64(n, 3);
    *stats = (spq_ll_stats){n[0], n[1], n[2]};
    return 0;
}

int spq_task_eval(spq_task_result *res, const spq_task *t, spq_scorer *sc, spq_encode_fn enc, void *enc_ud,
                  const spq_eval_opts *o, spq_progress_fn progress, void *ud, spq_err *err) {
    memset(res, 0, sizeof *res);
    double t0 = spq_now();
    int max_len = o->max_len > 0 ? o->max_len : sc->seq_len;
    long n_items = o->limit > 0 && o->limit < t->n_items ? o->limit : t->n_items;
    long n_req = 0;
    for (long i = 0; i < n_items; i++) n_req += t->items[i].n;
    spq_ll_req *req = spq_calloc(n_req ? n_req : 1, sizeof *req);
    long *group = spq_malloc((n_items + 1) * sizeof *group), *kept = spq_malloc((n_items ? n_items : 1) * sizeof *kept);
    int prefix = sc->bos_id >= 0 ? sc->bos_id : sc->eos_id;
    int bos = o->add_bos ? sc->bos_id : -1;
    if (o->add_bos && bos < 0) {
        free(req);
        free(group);
        free(kept);
        return spq_fail(err, "--bos: the model has no BOS token");
    }
    int rc = 0;
    long r = 0, n_kept = 0;
    for (long i = 0; i < n_items && !rc; i++) {
        const spq_task_item *it = &t->items[i];
        long r0 = r;
        int too_long = 0;
        for (int j = 0; j < it->n && !rc; j++, r++) {
            int *c, nc, *k, nk;
            rc = spq_ll_encode(&c, &nc, &k, &nk, enc, enc_ud, it->ctx[j], it->cont[j], prefix, bos, err);
            if (rc) {
                spq_fail_prefix(err, "%s:%ld: choice %d", t->path, it->line, j + 1);
                break;
            }
            req[r] = (spq_ll_req){c, nc, k, nk};
            too_long |= nk > max_len;
        }
        if (rc) break;
        if (too_long) {
            if (!res->n_too_long) res->first_too_long_line = it->line;
            res->n_too_long++;
            for (long q = r0; q < r; q++) {
                free((void *)req[q].ctx);
                free((void *)req[q].cont);
            }
            r = r0;
            continue;
        }
        group[n_kept] = r0;
        kept[n_kept++] = i;
        for (long q = r0; q < r; q++) res->ctx_tokens += req[q].n_ctx, res->cont_tokens += req[q].n_cont;
    }
    group[n_kept] = r;
    spq_ll_out *out = spq_calloc(r ? r : 1, sizeof *out);
    if (spq_par_any(rc != 0) && !rc) rc = spq_fail(err, "another rank failed"); /* before the ranks' sums */
    if (!rc) {
        spq_ll_opts lo = {
            .max_len = max_len,
            .max_rows = o->max_rows > 0 ? o->max_rows : spq_eval_default_rows(sc->vocab_size),
            .max_groups = o->max_groups > 0 ? o->max_groups : 16,
        };
        rc = score_share(out, &res->ll, sc, req, group, n_kept, &lo, progress, ud, err);
        if (rc) spq_fail_prefix(err, "%s", t->path);
    }
    if (!rc) spq_task_metrics(res, t, kept, n_kept, out);
    for (long i = 0; i < r; i++) {
        free((void *)req[i].ctx);
        free((void *)req[i].cont);
    }
    free(out);
    free(req);
    free(group);
    free(kept);
    res->seconds = spq_now() - t0;
    return rc;
}
