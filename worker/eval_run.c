/* eval_run.c - see eval_run.h.
 *
 * Per perplexity file: the text is read once (its lines joined as dataset
 * rows for the WikiText-2 protocol when asked) and tokenized twice, with BOS
 * for the non-overlapping windows (exactly as `spinq ppl`, so the figure is
 * the same) and without special tokens for lm-eval's rolling windows (which
 * start from their own prefix token). One pass of the windows computes the
 * perplexity and, when a base is given, the KL divergence; the rolling pass
 * is separate because its windows differ. Tasks are loaded, tokenized the
 * lm-eval way and scored (common/eval/mc.h). */
#include "worker/eval_run.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/textprep.h"
#include "common/eval/kld.h"
#include "common/eval/logitfile.h"
#include "common/eval/mc.h"
#include "common/eval/ppl.h"
#include "common/eval/rolling.h"
#include "common/eval/tasks.h"

static int tok_encode_plain(void *ud, const char *text, size_t len, int **ids, int *n, spq_err *err) {
    return spq_tok_encode((const spq_tokenizer *)ud, text, len, 0, ids, n, err);
}

typedef struct {
    spq_progress bar;
    int on;
} progress_ctx;

static void progress_cb(void *ud, long done, long total) {
    progress_ctx *p = ud;
    (void)total;
    if (p->on) spq_progress_update(&p->bar, done, NULL);
}

static void progress_begin(progress_ctx *p, int on, const char *label, long total) {
    p->on = on;
    if (on) spq_progress_start(&p->bar, label, total);
}

static void progress_end(progress_ctx *p) {
    if (p->on) spq_progress_finish(&p->bar, NULL);
}

/* sets key to x unless x is not a number */
static void set_num(json_t *o, const char *key, double x) {
    if (isfinite(x)) json_object_set_new(o, key, json_real(x));
}

static json_t *pct_object(const double *v) {
    json_t *o = json_object();
    for (int i = 0; i < SPQ_KLD_NPCT; i++) set_num(o, spq_kld_pct_names[i], v[i]);
    return o;
}

static json_t *kld_json(const spq_kld_stats *s) {
    json_t *o = json_object();
    json_object_set_new(o, "positions", json_integer(s->n));
    set_num(o, "kld", s->kld);
    set_num(o, "kld_unc", s->kld_unc);
    json_object_set_new(o, "kld_pct", pct_object(s->kld_pct));
    set_num(o, "same_top", s->same_top);
    set_num(o, "same_top_unc", s->same_top_unc);
    set_num(o, "dp", s->dp);
    set_num(o, "dp_unc", s->dp_unc);
    set_num(o, "dp_rms", s->dp_rms);
    set_num(o, "dp_rms_unc", s->dp_rms_unc);
    json_object_set_new(o, "dp_pct", pct_object(s->dp_pct));
    set_num(o, "ppl", s->ppl_q);
    set_num(o, "ppl_unc", s->ppl_q_unc);
    set_num(o, "ppl_base", s->ppl_b);
    set_num(o, "ppl_base_unc", s->ppl_b_unc);
    set_num(o, "ppl_ratio", s->ratio);
    set_num(o, "ppl_ratio_unc", s->ratio_unc);
    set_num(o, "ln_ppl_ratio", s->ln_ratio);
    set_num(o, "ln_ppl_ratio_unc", s->ln_ratio_unc);
    set_num(o, "ppl_diff", s->diff);
    set_num(o, "ppl_diff_unc", s->diff_unc);
    set_num(o, "nll_cor", s->cor);
    return o;
}

/* windows per call: 4 (as spinq ppl), fewer when their logits would pass 512 MB */
static int ppl_batch(const pl_eval_plan *p, int V) {
    if (p->batch > 0) return p->batch;
    long b = (512L << 20) / ((long)p->seqlen * V * (long)sizeof(float));
    return (int)(b < 1 ? 1 : b > 4 ? 4 : b);
}

static int eval_ppl_file(json_t *out, const pl_eval_plan *p, spq_scorer *sc, const spq_tokenizer *tok,
                         const pl_eval_text_spec *ts, spq_err *err) {
    const char *path = ts->path;
    char *text = NULL;
    size_t len;
    int *ids = NULL, n = 0, rc = -1;
    spq_logit_file base_file = {0}, save = {0};
    spq_kld_acc acc;
    spq_kld_acc_init(&acc);
    json_object_set_new(out, "data", json_string(path));
    json_object_set_new(out, "join", json_string(ts->rows ? "rows" : "file"));
    if (spq_read_file(&text, &len, path, err)) goto done;
    if (ts->rows) {
        size_t n_len;
        char *joined = spq_text_join_rows(text, len, &n_len);
        free(text);
        text = joined;
        len = n_len;
    }
    if (spq_tok_encode(tok, text, len, 1, &ids, &n, err)) {
        spq_fail_prefix(err, "%s", path);
        goto done;
    }
    json_object_set_new(out, "tokens", json_integer(n));
    spq_kld_src src = {.base = p->kld_base};
    if (p->kld_logits) {
        if (spq_logit_file_open(&base_file, p->kld_logits, err)) goto done;
        src.base_file = &base_file;
    }
    if (p->save_logits) {
        int k = p->save_topk > 0 ? p->save_topk : 64;
        if (k > sc->vocab_size) k = sc->vocab_size;
        if (spq_logit_file_create(&save, p->save_logits, sc->vocab_size, k, p->seqlen, ids, n, err)) goto done;
        src.save = &save;
    }
    int want_kld = src.base || src.base_file;
    progress_ctx pc;
    progress_begin(&pc, p->progress, want_kld ? "ppl+kld" : "ppl", n / p->seqlen);
    double t0 = spq_now();
    spq_ppl_result pr;
    int batch = ppl_batch(p, sc->vocab_size);
    int r = spq_kld_windows(&pr, want_kld ? &acc : NULL, sc, &src, ids, n, p->seqlen, batch, progress_cb, &pc, err);
    progress_end(&pc);
    if (r) {
        spq_fail_prefix(err, "%s", path);
        goto done;
    }
    json_object_set_new(out, "windows", json_integer(pr.n_windows));
    json_object_set_new(out, "scored", json_integer(pr.n_scored));
    set_num(out, "nll", pr.nll_sum / (double)pr.n_scored);
    set_num(out, "ppl", pr.ppl);
    set_num(out, "seconds", spq_now() - t0);
    if (want_kld) {
        spq_kld_stats ks;
        spq_kld_stats_compute(&ks, &acc);
        json_t *k = kld_json(&ks);
        json_object_set_new(k, "base", json_string(p->kld_logits ? p->kld_logits : p->kld_base_name));
        json_object_set_new(k, "source", json_string(p->kld_logits ? "file" : "model"));
        if (p->kld_logits) json_object_set_new(k, "topk", json_integer(base_file.k));
        json_object_set_new(out, "kld", k);
    }
    if (p->save_logits) {
        long recs = (long)save.done;
        int k = (int)save.k;
        if (spq_logit_file_close(&save, err)) goto done;
        json_object_set_new(out, "saved_logits",
                            json_pack("{s:s, s:i, s:I}", "path", p->save_logits, "topk", k, "positions", (json_int_t)recs));
    }
    if (p->rolling) {
        free(ids);
        ids = NULL;
        if (spq_tok_encode(tok, text, len, 0, &ids, &n, err)) {
            spq_fail_prefix(err, "%s", path);
            goto done;
        }
        int prefix = sc->bos_id >= 0 ? sc->bos_id : sc->eos_id;
        spq_rolling_window *w;
        long nw = spq_rolling_windows(&w, n, p->seqlen);
        free(w);
        progress_begin(&pc, p->progress, "rolling", nw);
        spq_rolling_result rr;
        r = spq_rolling_score(&rr, sc, ids, n, p->seqlen, prefix, batch, progress_cb, &pc, err);
        progress_end(&pc);
        if (r) {
            spq_fail_prefix(err, "%s: rolling windows", path);
            goto done;
        }
        spq_rolling_finish(&rr, text, len);
        json_t *o = json_object();
        json_object_set_new(o, "max_len", json_integer(p->seqlen));
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
    }
    rc = 0;
done:
    if (save.f) {
        /* a file that did not get all its records must not look complete */
        fclose(save.f);
        remove(save.path);
        free(save.path);
    }
    if (base_file.f) spq_logit_file_close(&base_file, NULL);
    spq_kld_acc_free(&acc);
    free(ids);
    free(text);
    return rc;
}

static int eval_task(json_t *out, const pl_eval_plan *p, spq_scorer *sc, const spq_tokenizer *tok,
                     const pl_eval_task_spec *ts, spq_err *err) {
    json_object_set_new(out, "name", json_string(ts->name));
    json_object_set_new(out, "format", json_string(ts->format));
    json_object_set_new(out, "data", json_string(ts->path));
    spq_task t;
    if (spq_task_load(&t, ts->name, ts->format, ts->path, NULL, p->skip_bad, err)) return -1;
    json_object_set_new(out, "skipped", json_integer(t.n_skipped));
    if (t.skipped) json_object_set_new(out, "skipped_log", json_string(t.skipped));
    spq_eval_opts o = {.max_len = p->seqlen, .add_bos = p->add_bos, .limit = p->limit, .max_groups = p->max_groups};
    long n = p->limit > 0 && p->limit < t.n_items ? p->limit : t.n_items;
    progress_ctx pc;
    char label[80];
    snprintf(label, sizeof label, "%s", ts->name);
    progress_begin(&pc, p->progress, label, n);
    spq_task_result r;
    int rc = spq_task_eval(&r, &t, sc, tok_encode_plain, (void *)tok, &o, progress_cb, &pc, err);
    progress_end(&pc);
    if (!rc) {
        json_object_set_new(out, "items", json_integer(r.n));
        if (r.n_too_long) {
            json_object_set_new(out, "too_long", json_integer(r.n_too_long));
            if (p->progress)
                fprintf(stderr, "spinq eval: %s: left out %ld items whose continuation is longer than the window of %d "
                        "tokens (the first at %s:%ld)\n", ts->name, r.n_too_long, p->seqlen, ts->path,
                        r.first_too_long_line);
        }
        set_num(out, "acc", r.acc);
        set_num(out, "acc_stderr", r.acc_stderr);
        set_num(out, "acc_norm", r.acc_norm);
        set_num(out, "acc_norm_stderr", r.acc_norm_stderr);
        set_num(out, "perplexity", r.ppl);
        json_object_set_new(out, "requests", json_integer(r.n_requests));
        json_object_set_new(out, "context_tokens", json_integer(r.ctx_tokens));
        json_object_set_new(out, "continuation_tokens", json_integer(r.cont_tokens));
        json_object_set_new(out, "rows_run", json_integer(r.ll.rows_run));
        json_object_set_new(out, "rows_naive", json_integer(r.ll.rows_naive));
        set_num(out, "seconds", r.seconds);
    }
    spq_task_free(&t);
    return rc;
}

int pl_eval_run(json_t **report, const pl_eval_plan *p, spq_scorer *sc, const spq_tokenizer *tok, spq_err *err) {
    json_t *rep = json_object();
    *report = rep;
    json_object_set_new(rep, "model", json_string(p->model ? p->model : ""));
    if (p->rotation) json_object_set_new(rep, "rotation", json_string(p->rotation));
    if (p->quant) json_object_set_new(rep, "quant", json_string(p->quant));
    json_object_set_new(rep, "scorer", json_string(sc->kind));
    json_object_set_new(rep, "seqlen", json_integer(p->seqlen));
    json_object_set_new(rep, "bos", json_boolean(p->add_bos));
    if (p->limit > 0) json_object_set_new(rep, "limit", json_integer(p->limit));
    if ((p->kld_logits || p->save_logits) && p->n_ppl != 1)
        return spq_fail(err, "--kld-logits and --save-logits need exactly one --ppl file (got %d)", p->n_ppl);
    if (p->kld_logits && p->kld_base) return spq_fail(err, "--kld-base and --kld-logits exclude each other");
    if ((p->kld_logits || p->kld_base) && p->n_ppl == 0) return spq_fail(err, "KL divergence needs a --ppl file");
    json_t *ppl = json_array(), *tasks = json_array();
    json_object_set_new(rep, "ppl", ppl);
    json_object_set_new(rep, "tasks", tasks);
    for (int i = 0; i < p->n_ppl; i++) {
        json_t *o = json_object();
        json_array_append_new(ppl, o);
        if (eval_ppl_file(o, p, sc, tok, &p->ppl[i], err)) return -1;
    }
    for (int i = 0; i < p->n_tasks; i++) {
        json_t *o = json_object();
        json_array_append_new(tasks, o);
        if (eval_task(o, p, sc, tok, &p->tasks[i], err)) {
            json_object_set_new(o, "error", json_string(err->msg)); /* the report says which task stopped it */
            return -1;
        }
    }
    return 0;
}

/* ---- the table ---- */

static double num(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static void cell(FILE *f, double x, const char *fmt, int width) {
    if (isfinite(x)) fprintf(f, fmt, width, x);
    else fprintf(f, "%*s", width, "-");
}

static void cell_pm(FILE *f, double x, double u, double scale, int width) {
    char b[64];
    if (isfinite(x)) snprintf(b, sizeof b, "%.4f ± %.4f", x * scale, (isfinite(u) ? u : 0) * scale);
    else snprintf(b, sizeof b, "-");
    fprintf(f, "%*s", width + 1, b); /* ± is two bytes */
}

static void print_kld(FILE *f, const json_t *k) {
    fprintf(f, "\nKL divergence from %s (%s, %lld positions)\n", json_string_value(json_object_get(k, "base")),
            json_string_value(json_object_get(k, "source")),
            (long long)json_integer_value(json_object_get(k, "positions")));
    fprintf(f, "  PPL(model)           %12.4f ± %.4f\n", num(k, "ppl"), num(k, "ppl_unc"));
    fprintf(f, "  PPL(base)            %12.4f ± %.4f\n", num(k, "ppl_base"), num(k, "ppl_base_unc"));
    fprintf(f, "  PPL ratio            %12.6f ± %.6f\n", num(k, "ppl_ratio"), num(k, "ppl_ratio_unc"));
    fprintf(f, "  ln(PPL ratio)        %12.6f ± %.6f\n", num(k, "ln_ppl_ratio"), num(k, "ln_ppl_ratio_unc"));
    fprintf(f, "  PPL diff             %12.6f ± %.6f\n", num(k, "ppl_diff"), num(k, "ppl_diff_unc"));
    fprintf(f, "  Cor(NLL model, base) %11.4f %%\n", 100 * num(k, "nll_cor"));
    fprintf(f, "  mean KLD             %12.6f ± %.6f\n", num(k, "kld"), num(k, "kld_unc"));
    const json_t *kp = json_object_get(k, "kld_pct"), *dp = json_object_get(k, "dp_pct");
    for (int i = 0; i < SPQ_KLD_NPCT; i++)
        fprintf(f, "  %-6s KLD %12.6f      %-6s Δp %9.4f %%\n", spq_kld_pct_names[i], num(kp, spq_kld_pct_names[i]),
                spq_kld_pct_names[i], 100 * num(dp, spq_kld_pct_names[i]));
    fprintf(f, "  mean Δp              %11.4f %% ± %.4f %%\n", 100 * num(k, "dp"), 100 * num(k, "dp_unc"));
    fprintf(f, "  RMS Δp               %11.4f %% ± %.4f %%\n", 100 * num(k, "dp_rms"), 100 * num(k, "dp_rms_unc"));
    fprintf(f, "  same top p           %11.4f %% ± %.4f %%\n", 100 * num(k, "same_top"), 100 * num(k, "same_top_unc"));
}

void pl_eval_print(FILE *f, const json_t *rep) {
    const json_t *ppl = json_object_get(rep, "ppl"), *tasks = json_object_get(rep, "tasks");
    const char *rot = json_string_value(json_object_get(rep, "rotation")), *q = json_string_value(json_object_get(rep, "quant"));
    fprintf(f, "model %s (%s%s%s%s%s), seqlen %lld%s\n", json_string_value(json_object_get(rep, "model")),
            json_string_value(json_object_get(rep, "scorer")), q ? ", " : "", q ? q : "",
            rot && strcmp(rot, "none") ? ", rotation " : "", rot && strcmp(rot, "none") ? rot : "",
            (long long)json_integer_value(json_object_get(rep, "seqlen")),
            json_is_true(json_object_get(rep, "bos")) ? ", BOS before task contexts" : "");
    if (json_array_size(ppl)) {
        fprintf(f, "\n%-36s %9s %10s %12s %12s %10s\n", "perplexity", "tokens", "ppl", "word ppl", "byte ppl",
                "bits/byte");
        size_t i;
        json_t *o;
        json_array_foreach(ppl, i, o) {
            const char *d = json_string_value(json_object_get(o, "data"));
            size_t L = strlen(d);
            if (L > 36) fprintf(f, "...%-33s", d + L - 33);
            else fprintf(f, "%-36s", d);
            json_t *nt = json_object_get(o, "tokens");
            cell(f, nt ? (double)json_integer_value(nt) : NAN, " %*.0f", 9);
            cell(f, num(o, "ppl"), " %*.4f", 10);
            const json_t *r = json_object_get(o, "rolling");
            cell(f, num(r, "word_perplexity"), " %*.4f", 12);
            cell(f, num(r, "byte_perplexity"), " %*.4f", 12);
            cell(f, num(r, "bits_per_byte"), " %*.4f", 10);
            fputc('\n', f);
        }
        json_array_foreach(ppl, i, o) {
            const json_t *k = json_object_get(o, "kld");
            if (k) print_kld(f, k);
            const json_t *s = json_object_get(o, "saved_logits");
            if (s)
                fprintf(f, "\nsaved top-%lld log-probs of %lld positions to %s\n",
                        (long long)json_integer_value(json_object_get(s, "topk")),
                        (long long)json_integer_value(json_object_get(s, "positions")),
                        json_string_value(json_object_get(s, "path")));
        }
    }
    if (json_array_size(tasks)) {
        fprintf(f, "\n%-20s %7s %7s %20s %20s %10s\n", "task", "items", "skipped", "acc", "acc_norm", "ppl");
        size_t i;
        json_t *o;
        json_array_foreach(tasks, i, o) {
            if (json_object_get(o, "error")) {
                fprintf(f, "%-20s failed: %s\n", json_string_value(json_object_get(o, "name")),
                        json_string_value(json_object_get(o, "error")));
                continue;
            }
            fprintf(f, "%-20s %7lld %7lld", json_string_value(json_object_get(o, "name")),
                    (long long)json_integer_value(json_object_get(o, "items")),
                    (long long)json_integer_value(json_object_get(o, "skipped")));
            cell_pm(f, num(o, "acc"), num(o, "acc_stderr"), 1, 21);
            cell_pm(f, num(o, "acc_norm"), num(o, "acc_norm_stderr"), 1, 21);
            cell(f, num(o, "perplexity"), " %*.4f", 10);
            fputc('\n', f);
        }
    }
}
