/* pipeline_eval.c - the evaluate stage, the project's one evaluation: the
 * daemon's runs and `spinq eval` both come here (the command builds a spec
 * and runs the pipeline). Per eval.ppl file: perplexity over non-overlapping
 * windows (design notes, section 4: the text tokenized once with BOS, tail
 * dropped; the same figure as `spinq ppl`), with eval.kld the KL divergence
 * of the model's next-token distributions from a base's on the same windows
 * (kld.h, llama.cpp's figures), and, when the command asks, lm-eval's
 * rolling word/byte perplexity (rolling.h, the text tokenized again without
 * special tokens). Then the zero-shot tasks (mc.h), each item's choices
 * scored after their shared context.
 *
 * The KLD base is the run's own model loaded once more from its file, in
 * full precision (untouched by the rotate and quantize stages), unless the
 * command names another model or a file of saved log-probs (logitfile.h).
 *
 * Windows are independent, so the stage scores `batch` windows per call and
 * sums: the result equals one call over the whole text, and between calls
 * it honours a stop (a logits file is matched against the whole text, so
 * with one the windows go in one call). Progress goes to the reporter as
 * stage "evaluate", per pass (windows, rolling windows, items).
 *
 * What it finds goes three ways: metrics (pl_score: "ppl", "ppl/<data>",
 * "kld", "top1", "kld_p99", "dp_rms", "ppl_ratio" and their "/<data>"
 * forms, "acc/<task>", "acc_norm/<task>", "task_ppl/<task>"), log lines, and
 * p->report, the whole evaluation as one JSON object (also after a failure:
 * what was done so far, and the failing task's "error"):
 *   {"model", "rotation", "quant", "scorer", "seqlen", "bos", "limit",
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
 *    "tasks": [{"name", "format", "data", "items", "skipped", "skipped_log", "too_long",
 *               "acc", "acc_stderr", "acc_norm", "acc_norm_stderr",
 *               "perplexity", "requests", "context_tokens",
 *               "continuation_tokens", "rows_run", "rows_naive", "seconds", "error"}]}
 * Probabilities (same_top, dp, acc) are fractions; figures that do not
 * apply are left out (JSON has no NaN). `spinq eval` prints it as tables and
 * writes it with --json; results.json carries it as "eval". */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/par.h"
#include "common/base/textprep.h"
#include "common/eval/kld.h"
#include "common/eval/logitfile.h"
#include "common/eval/mc.h"
#include "common/eval/ppl.h"
#include "common/eval/rolling.h"
#include "common/eval/scorer.h"
#include "common/eval/tasks.h"
#include "common/io/load.h"
#include "common/quant/qmodel.h"
#include "common/model/mapped.h"
#include "worker/pipeline.h"

typedef struct {
    pl_pipeline *p;
    spq_scorer sc;          /* the model */
    spq_scorer base;        /* the KLD base, when it runs here */
    spq_model base_model;
    int have_base;
    const char *base_name;
    int seqlen;             /* the tasks' window and eval.ppl's default */
} evaluation;

/* one pass (windows, rolling windows, items) as the stage's progress */
typedef struct {
    pl_pipeline *p;
    long offset, total;
} progress_ctx;

/* called with 0 before a pass starts: a first window can take minutes at 8B */
static void on_progress(void *ud, long done, long total) {
    progress_ctx *c = ud;
    c->p->rep->progress(c->p->rep->ud, "evaluate", c->offset + done, c->total > 0 ? c->total : total);
}

/* sets key to x unless x is not a number */
static void set_num(json_t *o, const char *key, double x) {
    if (isfinite(x)) json_object_set_new(o, key, json_real(x));
}

/* the KLD figures of the report, in its order; the "_pct" ones are tables of percentiles */
static const struct {
    const char *key;
    size_t off;
} kld_keys[] = {
    {"kld", offsetof(spq_kld_stats, kld)},           {"kld_unc", offsetof(spq_kld_stats, kld_unc)},
    {"kld_pct", offsetof(spq_kld_stats, kld_pct)},   {"same_top", offsetof(spq_kld_stats, same_top)},
    {"same_top_unc", offsetof(spq_kld_stats, same_top_unc)}, {"dp", offsetof(spq_kld_stats, dp)},
    {"dp_unc", offsetof(spq_kld_stats, dp_unc)},     {"dp_rms", offsetof(spq_kld_stats, dp_rms)},
    {"dp_rms_unc", offsetof(spq_kld_stats, dp_rms_unc)}, {"dp_pct", offsetof(spq_kld_stats, dp_pct)},
    {"ppl", offsetof(spq_kld_stats, ppl_q)},         {"ppl_unc", offsetof(spq_kld_stats, ppl_q_unc)},
    {"ppl_base", offsetof(spq_kld_stats, ppl_b)},    {"ppl_base_unc", offsetof(spq_kld_stats, ppl_b_unc)},
    {"ppl_ratio", offsetof(spq_kld_stats, ratio)},   {"ppl_ratio_unc", offsetof(spq_kld_stats, ratio_unc)},
    {"ln_ppl_ratio", offsetof(spq_kld_stats, ln_ratio)}, {"ln_ppl_ratio_unc", offsetof(spq_kld_stats, ln_ratio_unc)},
    {"ppl_diff", offsetof(spq_kld_stats, diff)},     {"ppl_diff_unc", offsetof(spq_kld_stats, diff_unc)},
    {"nll_cor", offsetof(spq_kld_stats, cor)},
};

static json_t *kld_json(const spq_kld_stats *s) {
    json_t *o = json_object();
    json_object_set_new(o, "positions", json_integer(s->n));
    for (size_t i = 0; i < sizeof kld_keys / sizeof *kld_keys; i++) {
        const double *v = (const double *)((const char *)s + kld_keys[i].off);
        if (!strstr(kld_keys[i].key, "_pct")) {
            set_num(o, kld_keys[i].key, *v);
            continue;
        }
        json_t *pct = json_object();
        for (int k = 0; k < SPQ_KLD_NPCT; k++) set_num(pct, spq_kld_pct_names[k], v[k]);
        json_object_set_new(o, kld_keys[i].key, pct);
    }
    return o;
}

/* a score as "name/data" and, for the first dataset, as "name" (the
 * headline that listings sort by) */
static void score(pl_pipeline *p, int idx, const char *name, const char *data, double v) {
    char key[300];
    snprintf(key, sizeof key, "%s/%s", name, data);
    pl_score(p, key, v);
    if (idx == 0) pl_score(p, name, v);
}

/* windows per call: 4, fewer when their logits would pass 512 MB */
static int ppl_batch(const pl_pipeline *p, int seqlen, int V) {
    if (p->local.batch > 0) return p->local.batch;
    long b = (512L << 20) / ((long)seqlen * V * (long)sizeof(float));
    return (int)(b < 1 ? 1 : b > 4 ? 4 : b);
}

static void kld_report(evaluation *ev, int idx, json_t *out, spq_kld_acc *acc, const spq_logit_file *base_file) {
    pl_pipeline *p = ev->p;
    const char *data = p->spec.eval.ppl[idx].data;
    spq_kld_stats st;
    spq_kld_stats_compute(&st, acc);
    json_t *k = kld_json(&st);
    json_object_set_new(k, "base", json_string(base_file ? p->local.kld_logits : ev->base_name));
    json_object_set_new(k, "source", json_string(base_file ? "file" : "model"));
    if (base_file) json_object_set_new(k, "topk", json_integer(base_file->k));
    json_object_set_new(out, "kld", k);
    const char *names[] = {"kld", "top1", "kld_p99", "dp_rms", "ppl_ratio"};
    double vals[] = {st.kld, st.same_top, st.kld_pct[2], st.dp_rms, st.ratio};
    for (int i = 0; i < 5; i++) score(p, idx, names[i], data, vals[i]);
    pl_log(p, "info", "kld %s = %.5f +- %.5f, same top token %.2f%%, ppl ratio %.4f", data, st.kld, st.kld_unc,
           100 * st.same_top, st.ratio);
}

/* lm-eval's rolling windows over the text, tokenized without special tokens */
static int rolling(evaluation *ev, json_t *out, const char *text, size_t len, int seqlen, int batch) {
    pl_pipeline *p = ev->p;
    int *ids = NULL, n = 0;
    if (spq_tok_encode(p->tok, text, len, 0, &ids, &n, &p->err)) return -1;
    int prefix = ev->sc.bos_id >= 0 ? ev->sc.bos_id : ev->sc.eos_id;
    spq_rolling_window *w;
    long nw = spq_rolling_windows(&w, n, seqlen);
    free(w);
    progress_ctx pc = {p, 0, nw};
    on_progress(&pc, 0, pc.total); /* the bar's clock starts with the pass */
    spq_rolling_result rr;
    int bad = spq_rolling_score(&rr, &ev->sc, ids, n, seqlen, prefix, batch, on_progress, &pc, &p->err);
    free(ids);
    if (bad) return spq_fail_prefix(&p->err, "rolling windows");
    spq_rolling_finish(&rr, text, len);
    json_t *o = json_object();
    json_object_set_new(o, "max_len", json_integer(seqlen));
    json_object_set_new(o, "tokens", json_integer(rr.n_tokens));
    json_object_set_new(o, "windows", json_integer(rr.n_windows));
    json_object_set_new(o, "words", json_integer(rr.n_words));
    json_object_set_new(o, "bytes", json_integer(rr.n_bytes));
    set_num(o, "ll", rr.ll);
    set_num(o, "token_perplexity", rr.token_perplexity);
    set_num(o, "word_perplexity", rr.word_perplexity);
    set_num(o, "byte_perplexity", rr.byte_perplexity);
    set_num(o, "bits_per_byte", rr.bits_per_byte);
    json_object_set_new(out, "rolling", o);
    return 0;
}

/* Each forward call's sums, in call order. A rank fills its share of the
 * calls and leaves zeros elsewhere; the sum over ranks is then exact (one
 * non-zero term per element), and the reduction in call order gives the same
 * bits as one rank, whatever the number of ranks. */
typedef struct {
    int n;
    double *nll;       /* (n) */
    long long *counts; /* (n, 2): positions scored, windows */
} call_sums;

static call_sums call_sums_new(int n) {
    return (call_sums){n, spq_calloc(n, sizeof(double)), spq_calloc(2 * (size_t)n, sizeof(long long))};
}

static void call_sums_free(call_sums *c) {
    free(c->nll);
    free(c->counts);
}

static spq_ppl_result call_sums_reduce(call_sums *c) {
    spq_par_sum_f64(c->nll, c->n);
    spq_par_sum_i64(c->counts, 2 * (size_t)c->n);
    spq_ppl_result sum = {0};
    for (int i = 0; i < c->n; i++) {
        sum.nll_sum += c->nll[i];
        sum.n_scored += c->counts[2 * i];
        sum.n_windows += (int)c->counts[2 * i + 1];
    }
    return sum;
}

static int eval_ppl(evaluation *ev, int idx, json_t *out) {
    pl_pipeline *p = ev->p;
    const pl_local *L = &p->local;
    const spq_spec_ppl *e = &p->spec.eval.ppl[idx];
    int seqlen = e->seqlen ? e->seqlen : ev->seqlen, V = ev->sc.vocab_size;
    char field[64], data_field[80];
    snprintf(field, sizeof field, "eval.ppl[%d]", idx);
    snprintf(data_field, sizeof data_field, "%s.data", field);
    json_object_set_new(out, "data", json_string(e->data));
    json_object_set_new(out, "join", json_string(L->rows[idx] ? "rows" : "file"));
    if (seqlen > p->model.cfg.seq_len) {
        spq_fail(&p->err, "%s.seqlen: %d is longer than the model's context %d", field, seqlen, p->model.cfg.seq_len);
        return PL_STAGE_FAILED;
    }
    char *path = NULL, *text = NULL;
    size_t len;
    int *ids = NULL, n = 0, rc = PL_STAGE_FAILED;
    spq_logit_file base_file = {0}, save = {0};
    spq_kld_acc acc, part;
    spq_kld_acc_init(&acc);
    spq_kld_acc_init(&part);
    call_sums calls = {0};
    if (pl_dataset_path(p, &path, e->data, data_field) || spq_read_file(&text, &len, path, &p->err)) goto setup_failed;
    if (L->rows[idx]) {
        size_t n_len;
        char *joined = spq_text_join_rows(text, len, &n_len);
        free(text);
        text = joined;
        len = n_len;
    }
    if (spq_tok_encode(p->tok, text, len, 1, &ids, &n, &p->err)) {
        spq_fail_prefix(&p->err, "%s", e->data);
        goto setup_failed;
    }
    json_object_set_new(out, "tokens", json_integer(n));
    /* whether logit files take part is known before any rank opens one: the
     * ranks must agree on the calls (with files, one call over the whole text,
     * which rank 0 makes) */
    int files = (p->spec.eval.kld && L->kld_logits) || L->save_logits;
    int want_kld = ev->have_base || (p->spec.eval.kld && L->kld_logits);
    long nw = n / seqlen;
    if (p->spec.eval.limit > 0 && !L->limit_tasks && !files && nw > p->spec.eval.limit) nw = p->spec.eval.limit;
    if (nw < 1) {
        spq_fail(&p->err, "%s: %s has %d tokens, fewer than one window of %d", field, e->data, n, seqlen);
        goto setup_failed;
    }
    int batch = ppl_batch(p, seqlen, V);
    long per_call = files ? nw : batch;
    int n_calls = (int)((nw + per_call - 1) / per_call), c_lo, c_hi;
    spq_par_share(n_calls, &c_lo, &c_hi);
    spq_kld_src src = {.base = ev->have_base ? &ev->base : NULL};
    if (c_lo < c_hi && p->spec.eval.kld && L->kld_logits) {
        if (spq_logit_file_open(&base_file, L->kld_logits, &p->err)) goto setup_failed;
        src.base_file = &base_file;
    }
    if (c_lo < c_hi && L->save_logits) {
        int k = L->save_topk > 0 ? L->save_topk : 64;
        if (k > V) k = V;
        if (spq_logit_file_create(&save, L->save_logits, V, k, seqlen, ids, n, &p->err)) goto setup_failed;
        src.save = &save;
    }
    /* the ranks agree that every one of them is ready before the first sum
     * (a file missing on one node must not leave the others waiting) */
    if (spq_par_any(0)) {
        spq_fail(&p->err, "%s: another rank failed", field);
        goto done;
    }
    pl_log(p, "info", "ppl %s: %d tokens, %ld windows of %d%s", e->data, n, nw, seqlen, want_kld ? ", with KLD" : "");
    /* one rank accumulates the KLD as it goes; several keep their positions
     * for spq_kld_acc_merge */
    int ranks = spq_par_size();
    if (ranks > 1) spq_kld_acc_keep(&part);
    spq_kld_acc *mine = ranks > 1 ? &part : &acc;
    calls = call_sums_new(n_calls);
    long w_lo = (long)c_lo * per_call, w_hi = (long)c_hi * per_call < nw ? (long)c_hi * per_call : nw;
    progress_ctx pc = {p, 0, w_hi - w_lo};
    on_progress(&pc, 0, pc.total); /* the bar's clock starts with the pass */
    double t0 = spq_now();
    int steps = (n_calls + ranks - 1) / ranks; /* the largest share: every rank takes part in each step's checks */
    for (int i = 0; i < steps; i++) {
        if (spq_par_any(pl_pipeline_should_stop(p))) {
            rc = PL_STAGE_STOPPED;
            goto done;
        }
        int c = c_lo + i, bad = 0;
        if (c < c_hi) {
            long w = (long)c * per_call, k = nw - w < per_call ? nw - w : per_call;
            spq_ppl_result r;
            pc.offset = w - w_lo;
            bad = spq_kld_windows(&r, want_kld ? mine : NULL, &ev->sc, &src, files ? ids : ids + w * seqlen,
                                  files ? n : k * seqlen, seqlen, batch, on_progress, &pc, &p->err) != 0;
            calls.nll[c] = r.nll_sum;
            calls.counts[2 * c] = r.n_scored;
            calls.counts[2 * c + 1] = r.n_windows;
        }
        if (spq_par_any(bad)) {
            if (!bad) spq_fail(&p->err, "another rank failed");
            spq_fail_prefix(&p->err, "%s", field);
            goto done;
        }
    }
    spq_ppl_result sum = call_sums_reduce(&calls);
    if (want_kld && ranks > 1) spq_kld_acc_merge(&acc, &part, w_lo * (seqlen - 1), nw * (seqlen - 1));
    double ppl = exp(sum.nll_sum / (double)sum.n_scored);
    json_object_set_new(out, "windows", json_integer(sum.n_windows));
    json_object_set_new(out, "scored", json_integer(sum.n_scored));
    set_num(out, "nll", sum.nll_sum / (double)sum.n_scored);
    set_num(out, "ppl", ppl);
    set_num(out, "seconds", spq_now() - t0);
    score(p, idx, "ppl", e->data, ppl);
    pl_log(p, "info", "ppl %s = %.4f over %ld scored tokens", e->data, ppl, (long)sum.n_scored);
    if (want_kld) kld_report(ev, idx, out, &acc, src.base_file);
    /* before the saved file is closed: the rolling windows sum across ranks, the file is rank 0's */
    if (L->rolling && rolling(ev, out, text, len, seqlen, batch)) {
        spq_fail_prefix(&p->err, "%s %s", field, e->data);
        goto done;
    }
    if (src.save) {
        long recs = (long)save.done;
        int k = (int)save.k;
        if (spq_logit_file_close(&save, &p->err)) goto done;
        json_object_set_new(out, "saved_logits",
                            json_pack("{s:s, s:i, s:I}", "path", L->save_logits, "topk", k, "positions", (json_int_t)recs));
    }
    rc = PL_STAGE_OK;
    goto done;
setup_failed:
    spq_par_any(1); /* the other ranks' agreement above */
done:
    if (save.f) {
        /* a file that did not get all its records must not look complete */
        fclose(save.f);
        remove(save.path);
        free(save.path);
    }
    if (base_file.f) spq_logit_file_close(&base_file, NULL);
    call_sums_free(&calls);
    spq_kld_acc_free(&part);
    spq_kld_acc_free(&acc);
    free(ids);
    free(text);
    free(path);
    return rc;
}

static int encode_plain(void *ud, const char *text, size_t len, int **ids, int *n, spq_err *err) {
    return spq_tok_encode((const spq_tokenizer *)ud, text, len, 0, ids, n, err);
}

static void task_report(json_t *out, const spq_task_result *r) {
    json_object_set_new(out, "items", json_integer(r->n));
    if (r->n_too_long) json_object_set_new(out, "too_long", json_integer(r->n_too_long));
    set_num(out, "acc", r->acc);
    set_num(out, "acc_stderr", r->acc_stderr);
    set_num(out, "acc_norm", r->acc_norm);
    set_num(out, "acc_norm_stderr", r->acc_norm_stderr);
    set_num(out, "perplexity", r->ppl);
    json_object_set_new(out, "requests", json_integer(r->n_requests));
    json_object_set_new(out, "context_tokens", json_integer(r->ctx_tokens));
    json_object_set_new(out, "continuation_tokens", json_integer(r->cont_tokens));
    json_object_set_new(out, "rows_run", json_integer(r->ll.rows_run));
    json_object_set_new(out, "rows_naive", json_integer(r->ll.rows_naive));
    set_num(out, "seconds", r->seconds);
}

static int eval_task(evaluation *ev, int idx, json_t *out) {
    pl_pipeline *p = ev->p;
    const pl_local *L = &p->local;
    const spq_spec_task *e = &p->spec.eval.tasks[idx];
    const char *label = L->task_label[idx] ? L->task_label[idx] : e->name;
    long limit = p->spec.eval.limit;
    char field[64], data_field[80], key[200];
    snprintf(field, sizeof field, "eval.tasks[%d]", idx);
    snprintf(data_field, sizeof data_field, "%s.data", field);
    json_object_set_new(out, "name", json_string(label));
    json_object_set_new(out, "format", json_string(e->name));
    json_object_set_new(out, "data", json_string(e->data));
    char *path = NULL;
    if (pl_dataset_path(p, &path, e->data, data_field)) return PL_STAGE_FAILED;
    spq_task t;
    int bad = spq_task_load(&t, label, e->name, path, NULL, !L->strict, &p->err);
    free(path);
    if (spq_par_any(bad) && !bad) { /* the file is missing or bad on another rank's node */
        spq_task_free(&t);
        bad = spq_fail(&p->err, "another rank failed");
    }
    if (!bad) {
        json_object_set_new(out, "skipped", json_integer(t.n_skipped));
        if (t.skipped) json_object_set_new(out, "skipped_log", json_string(t.skipped));
        if (t.n_skipped) pl_log(p, "warn", "%s: skipped %ld bad items", label, (long)t.n_skipped);
        spq_eval_opts o = {.max_len = ev->seqlen, .add_bos = L->add_bos, .limit = limit, .max_groups = L->max_groups};
        progress_ctx pc = {p, 0, limit > 0 && limit < t.n_items ? limit : t.n_items};
        on_progress(&pc, 0, pc.total); /* the bar's clock starts with the pass */
        spq_task_result r;
        bad = spq_task_eval(&r, &t, &ev->sc, encode_plain, p->tok, &o, on_progress, &pc, &p->err);
        spq_task_free(&t);
        if (!bad) {
            task_report(out, &r);
            if (r.n_too_long)
                pl_log(p, "warn", "%s: left out %ld items whose continuation is longer than the window of %d tokens "
                       "(the first at %s:%ld)", label, r.n_too_long, ev->seqlen, e->data, r.first_too_long_line);
            snprintf(key, sizeof key, "acc/%s", label);
            pl_score(p, key, r.acc);
            snprintf(key, sizeof key, "acc_norm/%s", label);
            pl_score(p, key, r.acc_norm);
            snprintf(key, sizeof key, "task_ppl/%s", label);
            pl_score(p, key, r.ppl);
            pl_log(p, "info", "%s: acc %.4f +- %.4f over %ld items", label, r.acc, r.acc_stderr, r.n);
            return PL_STAGE_OK;
        }
    }
    json_object_set_new(out, "error", json_string(p->err.msg)); /* the report says which task stopped it */
    spq_fail_prefix(&p->err, "%s (%s)", field, label);
    return PL_STAGE_FAILED;
}

/* the base that eval.kld compares with, when it runs here */
static int load_base(evaluation *ev) {
    pl_pipeline *p = ev->p;
    const char *other = p->local.kld_base;
    if (!other && p->model.packed)
        return spq_fail(&p->err, "eval.kld: %s is a packed model and holds no full-precision weights to compare with",
                        p->spec.model);
    if (spq_model_load_mapped(&ev->base_model, other ? other : p->model_path, &p->err))
        return spq_fail_prefix(&p->err, "eval.kld: the base %s", other ? other : "in full precision");
    ev->have_base = 1;
    if (ev->base_model.cfg.vocab_size != p->model.cfg.vocab_size)
        return spq_fail(&p->err, "eval.kld: the base %s has vocabulary %d, the model %d", other ? other : p->spec.model,
                        ev->base_model.cfg.vocab_size, p->model.cfg.vocab_size);
    spq_scorer_model(&ev->base, &ev->base_model);
    ev->base_name = other ? other : p->spec.model;
    return 0;
}

static void report_header(evaluation *ev, json_t *rep) {
    pl_pipeline *p = ev->p;
    const spq_jobspec *s = &p->spec;
    const spq_qcfg *q = &p->model.q;
    json_object_set_new(rep, "model", json_string(s->model));
    json_object_set_new(rep, "rotation", json_string(s->rotation.mode == SPQ_ROT_FILE ? s->rotation.file
                                                                                   : spq_rot_mode_name(s->rotation.mode)));
    if (p->model.packed || q->w.bits < 16 || q->a.bits < 16 || q->kv.bits < 16) {
        char d[256];
        spq_qcfg_describe(d, sizeof d, q);
        json_object_set_new(rep, "quant", json_string(d));
    }
    json_object_set_new(rep, "scorer", json_string(ev->sc.kind));
    json_object_set_new(rep, "seqlen", json_integer(ev->seqlen));
    json_object_set_new(rep, "bos", json_boolean(p->local.add_bos));
    if (s->eval.limit > 0) json_object_set_new(rep, "limit", json_integer(s->eval.limit));
    if (spq_par_size() > 1) json_object_set_new(rep, "ranks", json_integer(spq_par_size()));
}

int pl_stage_evaluate(pl_pipeline *p) {
    const spq_jobspec *s = &p->spec;
    /* a mapped model rotated but not quantized would be rotated again for
     * every batch: converted once instead */
    if (p->model.mapped && p->model.mapped->n_xforms && !spq_mapped_all_packed(p->model.mapped, &p->model.cfg))
        pl_materialize(p);
    int ctx = p->model.cfg.seq_len;
    evaluation ev = {.p = p, .seqlen = p->local.seqlen ? p->local.seqlen : ctx < 2048 ? ctx : 2048};
    spq_scorer_model(&ev.sc, &p->model);
    json_t *rep = p->report = json_object(), *ppl = json_array(), *tasks = json_array();
    report_header(&ev, rep);
    json_object_set_new(rep, "ppl", ppl);
    json_object_set_new(rep, "tasks", tasks);
    int rc = PL_STAGE_OK;
    if (ev.seqlen > ctx) { /* only a command's --seqlen (local.seqlen) can be */
        spq_fail(&p->err, "--seqlen %d is longer than the model's context %d", ev.seqlen, ctx);
        rc = PL_STAGE_FAILED;
    } else if (s->eval.kld && s->eval.n_ppl > 0 && !p->local.kld_logits && load_base(&ev)) {
        rc = PL_STAGE_FAILED;
    }
    if (spq_par_any(rc != PL_STAGE_OK) && rc == PL_STAGE_OK) { /* before any rank starts summing */
        spq_fail(&p->err, "another rank failed");
        rc = PL_STAGE_FAILED;
    }
    for (int i = 0; i < s->eval.n_ppl && rc == PL_STAGE_OK; i++) {
        json_t *o = json_object();
        json_array_append_new(ppl, o);
        rc = eval_ppl(&ev, i, o);
    }
    for (int i = 0; i < s->eval.n_tasks && rc == PL_STAGE_OK; i++) {
        if (spq_par_any(pl_pipeline_should_stop(p))) {
            rc = PL_STAGE_STOPPED;
            break;
        }
        json_t *o = json_object();
        json_array_append_new(tasks, o);
        rc = eval_task(&ev, i, o);
    }
    if (ev.have_base) {
        spq_scorer_free(&ev.base);
        spq_model_free(&ev.base_model);
    }
    spq_scorer_free(&ev.sc);
    return rc;
}
