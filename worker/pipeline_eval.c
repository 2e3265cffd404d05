/* pipeline_eval.c - the evaluate stage: perplexity of the model on each
 * eval.ppl dataset (design notes, section 4: the text tokenized once,
 * non-overlapping windows, tail dropped), with progress per window; with
 * eval.kld, the KL divergence of its next-token distributions from the
 * full-precision model's on the same windows (kld.h, llama.cpp's figures);
 * then the zero-shot tasks (mc.h), each item's choices scored after their
 * shared context.
 *
 * Windows are independent, so the stage scores a few windows at a time and
 * sums: the result equals one call over the whole text, and between calls it
 * reports progress and honours a stop. The full-precision base for KLD is
 * the model file loaded once more, untouched by the rotate and quantize
 * stages. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/eval/kld.h"
#include "common/eval/mc.h"
#include "common/eval/ppl.h"
#include "common/eval/scorer.h"
#include "common/eval/tasks.h"
#include "common/io/load.h"
#include "worker/pipeline.h"

enum { WINDOWS_PER_CALL = 4 };

static void emit(pl_pipeline *p, const char *key, double v) {
    if (!isfinite(v)) return;
    p->rep->metric(p->rep->ud, key, 0, v);
    json_object_set_new(p->results, key, json_real(v));
}

static int eval_ppl(pl_pipeline *p, int idx, spq_scorer *base) {
    const spq_spec_ppl *e = &p->spec.eval.ppl[idx];
    char field[64], key[300];
    snprintf(field, sizeof field, "eval.ppl[%d]", idx);
    int seqlen = e->seqlen ? e->seqlen : (p->model.cfg.seq_len < 2048 ? p->model.cfg.seq_len : 2048);
    if (seqlen > p->model.cfg.seq_len) {
        spq_fail(&p->err, "%s.seqlen: %d is longer than the model's context %d", field, seqlen, p->model.cfg.seq_len);
        return PL_STAGE_FAILED;
    }
    char *path = NULL, *text = NULL;
    int *ids = NULL, n_ids = 0, rc = PL_STAGE_FAILED;
    size_t len;
    if (spq_resolve_under(&path, p->datasets_dir, e->data, &p->err)) {
        spq_fail_prefix(&p->err, "%s.data", field);
        goto done;
    }
    if (spq_read_file(&text, &len, path, &p->err)) goto done;
    if (spq_tok_encode(p->tok, text, len, 1, &ids, &n_ids, &p->err)) {
        spq_fail_prefix(&p->err, "%s", e->data);
        goto done;
    }
    long nw = n_ids / seqlen;
    if (p->spec.eval.limit > 0 && nw > p->spec.eval.limit) nw = p->spec.eval.limit;
    if (nw < 1) {
        spq_fail(&p->err, "%s: %s has %d tokens, fewer than one window of %d", field, e->data, n_ids, seqlen);
        goto done;
    }
    char line[400];
    snprintf(line, sizeof line, "ppl %s: %d tokens, %ld windows of %d", e->data, n_ids, nw, seqlen);
    p->rep->log(p->rep->ud, "info", line);
    double nll = 0;
    long scored = 0;
    spq_scorer sc;
    spq_scorer_model(&sc, &p->model);
    spq_kld_acc acc;
    spq_kld_acc_init(&acc);
    spq_kld_src src = {.base = base};
    for (long w = 0; w < nw; w += WINDOWS_PER_CALL) {
        if (pl_pipeline_should_stop(p)) {
            rc = PL_STAGE_STOPPED;
            goto done;
        }
        long k = nw - w < WINDOWS_PER_CALL ? nw - w : WINDOWS_PER_CALL;
        spq_ppl_result r;
        int bad = base ? spq_kld_windows(&r, &acc, &sc, &src, ids + w * seqlen, k * seqlen, seqlen, (int)k, NULL,
                                         NULL, &p->err)
                       : spq_ppl_windows_sc(&r, &sc, ids + w * seqlen, k * seqlen, seqlen, (int)k, NULL, NULL,
                                            &p->err);
        if (bad) {
            spq_fail_prefix(&p->err, "%s", field);
            goto done;
        }
        nll += r.nll_sum;
        scored += r.n_scored;
        p->rep->progress(p->rep->ud, "evaluate", w + k, nw);
    }
    double ppl = exp(nll / (double)scored);
    snprintf(key, sizeof key, "ppl/%s", e->data);
    p->rep->metric(p->rep->ud, key, 0, ppl);
    json_object_set_new(p->results, key, json_real(ppl));
    if (idx == 0) { /* the headline score: what listings sort by */
        p->rep->metric(p->rep->ud, "ppl", 0, ppl);
        json_object_set_new(p->results, "ppl", json_real(ppl));
    }
    snprintf(line, sizeof line, "ppl %s = %.4f over %ld scored tokens", e->data, ppl, scored);
    p->rep->log(p->rep->ud, "info", line);
    if (base) {
        spq_kld_stats st;
        spq_kld_stats_compute(&st, &acc);
        const char *names[] = {"kld", "top1", "kld_p99", "dp_rms", "ppl_ratio"};
        double vals[] = {st.kld, st.same_top, st.kld_pct[2], st.dp_rms, st.ratio};
        for (int i = 0; i < 5; i++) {
            snprintf(key, sizeof key, "%s/%s", names[i], e->data);
            emit(p, key, vals[i]);
            if (idx == 0) emit(p, names[i], vals[i]);
        }
        snprintf(line, sizeof line, "kld %s = %.5f +- %.5f, same top token %.2f%%, ppl ratio %.4f", e->data, st.kld,
                 st.kld_unc, 100 * st.same_top, st.ratio);
        p->rep->log(p->rep->ud, "info", line);
    }
    rc = PL_STAGE_OK;
done:
    spq_kld_acc_free(&acc);
    spq_scorer_free(&sc);
    free(ids);
    free(text);
    free(path);
    return rc;
}

static int encode_plain(void *ud, const char *text, size_t len, int **ids, int *n, spq_err *err) {
    return spq_tok_encode((const spq_tokenizer *)ud, text, len, 0, ids, n, err);
}

typedef struct {
    pl_pipeline *p;
    const char *name;
} task_progress;

static void on_task_progress(void *ud, long done, long total) {
    task_progress *tp = ud;
    tp->p->rep->progress(tp->p->rep->ud, "evaluate", done, total);
}

static int eval_task(pl_pipeline *p, int idx) {
    const spq_spec_task *e = &p->spec.eval.tasks[idx];
    char field[64], key[160], line[400];
    snprintf(field, sizeof field, "eval.tasks[%d]", idx);
    char *path = NULL;
    if (spq_resolve_under(&path, p->datasets_dir, e->data, &p->err)) {
        spq_fail_prefix(&p->err, "%s.data", field);
        return PL_STAGE_FAILED;
    }
    spq_task t;
    if (spq_task_load(&t, e->name, e->name, path, NULL, 1, &p->err)) {
        spq_fail_prefix(&p->err, "%s", field);
        free(path);
        return PL_STAGE_FAILED;
    }
    if (t.n_skipped) {
        snprintf(line, sizeof line, "%s: skipped %ld bad items", e->name, (long)t.n_skipped);
        p->rep->log(p->rep->ud, "warn", line);
    }
    int ctx = p->model.cfg.seq_len < 2048 ? p->model.cfg.seq_len : 2048;
    spq_eval_opts o = {.max_len = ctx, .limit = p->spec.eval.limit};
    spq_scorer sc;
    spq_scorer_model(&sc, &p->model);
    spq_task_result r;
    task_progress tp = {p, e->name};
    int rc = spq_task_eval(&r, &t, &sc, encode_plain, p->tok, &o, on_task_progress, &tp, &p->err);
    spq_scorer_free(&sc);
    spq_task_free(&t);
    free(path);
    if (rc) {
        spq_fail_prefix(&p->err, "%s (%s)", field, e->name);
        return PL_STAGE_FAILED;
    }
    snprintf(key, sizeof key, "acc/%s", e->name);
    emit(p, key, r.acc);
    snprintf(key, sizeof key, "acc_norm/%s", e->name);
    emit(p, key, r.acc_norm);
    snprintf(key, sizeof key, "task_ppl/%s", e->name);
    emit(p, key, r.ppl);
    snprintf(line, sizeof line, "%s: acc %.4f +- %.4f over %ld items", e->name, r.acc, r.acc_stderr, r.n);
    p->rep->log(p->rep->ud, "info", line);
    return PL_STAGE_OK;
}

int pl_stage_evaluate(pl_pipeline *p) {
    spq_model base;
    spq_scorer base_sc;
    int have_base = 0, rc = PL_STAGE_OK;
    if (p->spec.eval.kld && p->spec.eval.n_ppl > 0) {
        if (spq_model_load(&base, p->model_path, &p->err)) {
            spq_fail_prefix(&p->err, "eval.kld: the full-precision base");
            return PL_STAGE_FAILED;
        }
        spq_scorer_model(&base_sc, &base);
        have_base = 1;
    }
    for (int i = 0; i < p->spec.eval.n_ppl && rc == PL_STAGE_OK; i++) rc = eval_ppl(p, i, have_base ? &base_sc : NULL);
    if (have_base) {
        spq_scorer_free(&base_sc);
        spq_model_free(&base);
    }
    for (int i = 0; i < p->spec.eval.n_tasks && rc == PL_STAGE_OK; i++) {
        if (pl_pipeline_should_stop(p)) return PL_STAGE_STOPPED;
        rc = eval_task(p, i);
    }
    return rc;
}
