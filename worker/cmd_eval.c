/* cmd_eval.c - `spinq eval MODEL ...`: perplexity (the reference windows
 * and lm-eval's rolling word/byte perplexity), KL divergence from a base
 * model or from its saved logits, and zero-shot tasks; a table on the
 * terminal and the same figures as JSON.
 *
 * The command is a job spec and the pipeline: the flags become a spec
 * (rotation and quantization flags as for `spinq ppl`, worker/qflags.h; each
 * --ppl an eval.ppl entry, each --task an eval.tasks entry, --kld-fp
 * eval.kld) plus the local options a spec does not hold (pl_local: paths
 * instead of names, rolling windows, logits files, task labels, ...), and
 * worker/cli_session.c runs it. The evaluation is the pipeline's evaluate
 * stage (worker/pipeline_eval.c), the same code a daemon's run goes
 * through; its report (p->report) is what the table and --json show.
 * Options are parsed into an eval_args struct by one loop; a new option is
 * one more `else if` and a field. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/par.h"
#include "common/eval/kld.h"
#include "common/eval/tasks.h"
#include "common/io/packed.h"
#include "worker/args.h"
#include "worker/cli_session.h"
#include "worker/commands.h"
#include "worker/qflags.h"

#define MAX_LIST SPQ_SPEC_MAX_EVALS

typedef struct {
    const char *model;
    const char *ppl[MAX_LIST];
    int ppl_rows[MAX_LIST];
    int n_ppl;
    const char *task_label[MAX_LIST], *task_format[MAX_LIST], *task_path[MAX_LIST];
    char *task_bufs[MAX_LIST];
    int n_tasks;
    int seqlen, batch, rolling, save_topk, skip_bad, bos, max_groups, limit, kld_fp;
    const char *kld_base, *kld_logits, *save_logits, *json;
    spq_qcfg q;        /* fake quantizers (worker/qflags.h) */
    cli_rotflags rot;  /* rotations */
} eval_args;

static void usage(FILE *f) {
    fprintf(f,
            "usage: spinq eval MODEL [--rotation R --mode M --seed S] [--w-bits B ... --a-bits B ... --kv-bits B ...]\n"
            "                  [--ppl FILE | --ppl-rows FILE ...] [--seqlen N] [--batch B] [--no-rolling]\n"
            "                  [--kld-fp | --kld-base MODEL | --kld-logits FILE] [--save-logits FILE [--save-topk K]]\n"
            "                  [--task NAME[:FORMAT]=PATH ...] [--limit N] [--skip-bad] [--bos]\n"
            "                  [--json OUT|-]\n"
            "\n"
            "  --ppl FILE         perplexity over non-overlapping windows of --seqlen tokens (as spinq ppl)\n"
            "                     and lm-eval's rolling word/byte perplexity (unless --no-rolling)\n"
            "  --ppl-rows FILE    the same with the file's lines joined as dataset rows by blank lines,\n"
            "                     the reference WikiText-2 protocol (wikitext-2-raw/wiki.test.raw)\n"
            "  rotation and quantization flags as for spinq ppl: the model is evaluated fake-quantized\n"
            "  --kld-fp           KL divergence, top-1 agreement and Δp against MODEL in full precision\n"
            "  --kld-base MODEL   ... against another model, run here\n"
            "  --kld-logits FILE  ... against a base's log-probs saved earlier with --save-logits\n"
            "  --save-logits FILE save this model's top-K log-probs (default K 64) for later --kld-logits\n"
            "  --task NAME=PATH   zero-shot task; NAME is a format, or NAME:FORMAT to report another name\n"
            "                     formats:");
    for (const char *const *p = spq_task_formats; *p; p++) fprintf(f, " %s", *p);
    fprintf(f,
            "\n  --limit N          only the first N items of each task\n"
            "  --skip-bad         skip (and report) bad task items instead of failing\n"
            "  --bos              put BOS before task contexts (lm-eval's add_bos_token; off by default)\n"
            "  --groups G         questions scored together (KV slots; default 16)\n"
            "  --json OUT         the figures as JSON to OUT ('-': stdout, the table then goes to stderr)\n"
            "  at most %d --ppl and %d --task\n", MAX_LIST, MAX_LIST);
}

/* NAME=PATH or NAME:FORMAT=PATH */
static int parse_task(eval_args *a, const char *spec) {
    if (a->n_tasks == MAX_LIST) {
        fprintf(stderr, "spinq eval: at most %d --task\n", MAX_LIST);
        return -1;
    }
    char *s = spq_strdup(spec), *eq = strchr(s, '=');
    if (!eq || eq == s || !eq[1]) {
        fprintf(stderr, "spinq eval: --task %s: expected NAME=PATH or NAME:FORMAT=PATH\n", spec);
        free(s);
        return -1;
    }
    *eq = 0;
    char *colon = strchr(s, ':');
    if (colon) *colon = 0;
    const char *format = colon ? colon + 1 : s;
    if (!spq_task_known(format)) {
        fprintf(stderr, "spinq eval: --task %s: unknown format '%s' (known:", spec, format);
        for (const char *const *p = spq_task_formats; *p; p++) fprintf(stderr, " %s", *p);
        fprintf(stderr, ")\n");
        free(s);
        return -1;
    }
    a->task_bufs[a->n_tasks] = s;
    a->task_label[a->n_tasks] = s;
    a->task_format[a->n_tasks] = format;
    a->task_path[a->n_tasks++] = eq + 1;
    return 0;
}

static int parse_args(eval_args *a, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->rolling = 1;
    a->q = spq_qcfg_off();
    a->rot.online = 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        int bad = 0, qf;
        if ((qf = cli_qflag(&a->q, argc, argv, &i, "eval")) || (qf = cli_rotflag(&a->rot, argc, argv, &i, "eval"))) {
            if (qf < 0) return -1;
            continue;
        }
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            usage(stdout);
            exit(0);
        } else if (!strcmp(f, "--ppl") || !strcmp(f, "--ppl-rows")) {
            if (!(bad = cli_arg_str(&v, argc, argv, &i, "eval"))) {
                if (a->n_ppl == MAX_LIST) bad = -1, fprintf(stderr, "spinq eval: at most %d --ppl\n", MAX_LIST);
                else a->ppl_rows[a->n_ppl] = !strcmp(f, "--ppl-rows"), a->ppl[a->n_ppl++] = v;
            }
        } else if (!strcmp(f, "--task")) {
            if (!(bad = cli_arg_str(&v, argc, argv, &i, "eval"))) bad = parse_task(a, v);
        } else if (!strcmp(f, "--seqlen")) bad = cli_arg_int(&a->seqlen, argc, argv, &i, "eval", 2, 1 << 20);
        else if (!strcmp(f, "--batch")) bad = cli_arg_int(&a->batch, argc, argv, &i, "eval", 1, 1024);
        else if (!strcmp(f, "--groups")) bad = cli_arg_int(&a->max_groups, argc, argv, &i, "eval", 1, 1024);
        else if (!strcmp(f, "--limit")) bad = cli_arg_int(&a->limit, argc, argv, &i, "eval", 0, 1 << 30);
        else if (!strcmp(f, "--save-topk")) bad = cli_arg_int(&a->save_topk, argc, argv, &i, "eval", 1, 1 << 24);
        else if (!strcmp(f, "--kld-base")) bad = cli_arg_str(&a->kld_base, argc, argv, &i, "eval");
        else if (!strcmp(f, "--kld-logits")) bad = cli_arg_str(&a->kld_logits, argc, argv, &i, "eval");
        else if (!strcmp(f, "--save-logits")) bad = cli_arg_str(&a->save_logits, argc, argv, &i, "eval");
        else if (!strcmp(f, "--json")) bad = cli_arg_str(&a->json, argc, argv, &i, "eval");
        else if (!strcmp(f, "--no-rolling")) a->rolling = 0;
        else if (!strcmp(f, "--kld-fp")) a->kld_fp = 1;
        else if (!strcmp(f, "--skip-bad")) a->skip_bad = 1;
        else if (!strcmp(f, "--bos")) a->bos = 1;
        else if (f[0] == '-' && f[1]) {
            fprintf(stderr, "spinq eval: unknown flag %s\n", f);
            bad = -1;
        } else if (!a->model) a->model = f;
        else {
            fprintf(stderr, "spinq eval: one MODEL only (got '%s' and '%s')\n", a->model, f);
            bad = -1;
        }
        if (bad) return -1;
    }
    if (!a->model) {
        usage(stderr);
        return -1;
    }
    if (a->n_ppl == 0 && a->n_tasks == 0) {
        fprintf(stderr, "spinq eval: nothing to do: give --ppl FILE and/or --task NAME=PATH\n");
        return -1;
    }
    if (!!a->kld_base + !!a->kld_logits + a->kld_fp > 1) {
        fprintf(stderr, "spinq eval: --kld-fp, --kld-base and --kld-logits exclude each other\n");
        return -1;
    }
    if ((a->kld_logits || a->save_logits) && a->n_ppl != 1) {
        fprintf(stderr, "spinq eval: --kld-logits and --save-logits need exactly one --ppl file\n");
        return -1;
    }
    if ((a->kld_base || a->kld_fp) && a->n_ppl == 0) {
        fprintf(stderr, "spinq eval: --kld-%s needs a --ppl file\n", a->kld_fp ? "fp" : "base");
        return -1;
    }
    if (a->kld_fp && spq_packed_is_file(a->model)) {
        fprintf(stderr, "spinq eval: --kld-fp: %s is a packed model and holds no full-precision weights; "
                        "compare with --kld-base FULL_PRECISION_MODEL\n", a->model);
        return -1;
    }
    return 0;
}

/* the flags as a spec and the local options of pl_local */
static void build(pl_pipeline *p, const eval_args *a) {
    cli_spec_start(p, a->model);
    spq_jobspec *s = &p->spec;
    pl_local *L = &p->local;
    cli_spec_quant(s, &a->rot, &a->q);
    for (int i = 0; i < a->n_ppl; i++) {
        s->eval.ppl[i] = (spq_spec_ppl){spq_strdup(a->ppl[i]), a->seqlen};
        L->rows[i] = (unsigned char)a->ppl_rows[i];
    }
    s->eval.n_ppl = a->n_ppl;
    for (int i = 0; i < a->n_tasks; i++) {
        s->eval.tasks[i] = (spq_spec_task){spq_strdup(a->task_format[i]), spq_strdup(a->task_path[i])};
        L->task_label[i] = a->task_label[i];
    }
    s->eval.n_tasks = a->n_tasks;
    s->eval.kld = a->kld_fp || a->kld_base || a->kld_logits;
    s->eval.limit = a->limit;
    L->limit_tasks = 1;
    L->seqlen = a->seqlen;
    L->batch = a->batch;
    L->rolling = a->rolling;
    L->strict = !a->skip_bad;
    L->add_bos = a->bos;
    L->max_groups = a->max_groups;
    L->kld_base = a->kld_base;
    L->kld_logits = a->kld_logits;
    L->save_logits = a->save_logits;
    L->save_topk = a->save_topk;
}

static int write_json(const char *path, json_t *rep) {
    FILE *f = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!f) {
        perror(path);
        return -1;
    }
    int rc = json_dumpf(rep, f, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    fputc('\n', f);
    if (f != stdout && fclose(f)) rc = -1;
    if (rc) fprintf(stderr, "spinq eval: %s: write failed\n", path);
    return rc;
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

static void print_table(FILE *f, const json_t *rep) {
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

int cli_cmd_eval(int argc, char **argv) {
    eval_args a;
    int rc = 2;
    if (parse_args(&a, argc, argv)) goto out;
    pl_pipeline p;
    build(&p, &a);
    cli_session ses = {.cmd = "eval"};
    if (cli_spec_check(&ses, &p.spec)) goto done;
    int r = cli_session_run(&ses, &p);
    json_t *rep = spq_par_rank() == 0 ? p.report : NULL; /* every rank has the report; one prints and writes it */
    if (rep) {
        print_table(a.json && !strcmp(a.json, "-") ? stderr : stdout, rep);
        /* skipped items are reported whatever else happened */
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(rep, "tasks"), i, t) {
            const char *log = json_string_value(json_object_get(t, "skipped_log"));
            if (log)
                fprintf(stderr, "spinq eval: %s: skipped %lld bad items:\n%s", json_string_value(json_object_get(t, "name")),
                        (long long)json_integer_value(json_object_get(t, "skipped")), log);
        }
    }
    rc = cli_session_status(&ses, &p, r);
    if (rep && a.json && write_json(a.json, rep)) rc = 1;
done:
    pl_pipeline_free(&p);
out:
    for (int k = 0; k < a.n_tasks; k++) free(a.task_bufs[k]);
    return rc;
}
