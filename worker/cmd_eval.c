/* cmd_eval.c - `spinq eval MODEL ...`: perplexity (the reference windows
 * and lm-eval's rolling word/byte perplexity), KL divergence from a base
 * model or from its saved logits, and zero-shot tasks; a table on the
 * terminal and the same figures as JSON (worker/eval_run.h).
 *
 * Options are parsed into an eval_args struct by one loop; a new option is
 * one more `else if` and a field. The model is loaded as `spinq ppl` loads
 * it (rotation and quantization flags, worker/qflags.h), so every variant
 * is evaluated the same way; --kld-fp compares it with its own
 * full-precision weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/eval/scorer.h"
#include "common/eval/tasks.h"
#include "common/io/load.h"
#include "common/model/model.h"
#include "common/tok/tokenizer.h"
#include "worker/args.h"
#include "worker/commands.h"
#include "worker/eval_run.h"
#include "common/quant/qmodel.h"
#include "worker/qflags.h"

#define MAX_LIST 64

typedef struct {
    const char *model;
    pl_eval_text_spec ppl[MAX_LIST];
    int n_ppl;
    pl_eval_task_spec tasks[MAX_LIST];
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
            "  --json OUT         the figures as JSON to OUT ('-': stdout, the table then goes to stderr)\n");
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
    a->tasks[a->n_tasks++] = (pl_eval_task_spec){s, format, eq + 1};
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
                else a->ppl[a->n_ppl++] = (pl_eval_text_spec){v, !strcmp(f, "--ppl-rows")};
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
    if (a->kld_fp) a->kld_base = a->model;
    if ((a->kld_logits || a->save_logits) && a->n_ppl != 1) {
        fprintf(stderr, "spinq eval: --kld-logits and --save-logits need exactly one --ppl file\n");
        return -1;
    }
    if (a->kld_base && a->n_ppl == 0) {
        fprintf(stderr, "spinq eval: --kld-base needs a --ppl file\n");
        return -1;
    }
    return 0;
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

int cli_cmd_eval(int argc, char **argv) {
    eval_args a;
    int rc = 2;
    if (parse_args(&a, argc, argv)) goto out;
    rc = 1;
    spq_err err;
    spq_model m = {0}, base = {0};
    spq_tokenizer *tok = NULL;
    spq_scorer sc = {0}, sb = {0};
    json_t *rep = NULL;
    if (cli_load_quantized(&m, a.model, &a.rot, &a.q, &err)) {
        fprintf(stderr, "spinq eval: %s\n", err.msg);
        goto out;
    }
    if (a.kld_fp && m.packed) {
        fprintf(stderr, "spinq eval: --kld-fp: %s is a packed model and holds no full-precision weights; "
                        "compare with --kld-base FULL_PRECISION_MODEL\n", a.model);
        rc = 2;
        goto done;
    }
    char quant[256];
    spq_qcfg_describe(quant, sizeof quant, m.packed ? &m.q : &a.q);
    int quantized = m.packed || a.q.w.bits < 16 || a.q.a.bits < 16 || a.q.kv.bits < 16;
    int seqlen = a.seqlen ? a.seqlen : (m.cfg.seq_len < 2048 ? m.cfg.seq_len : 2048);
    if (seqlen > m.cfg.seq_len) {
        fprintf(stderr, "spinq eval: --seqlen %d is longer than the model's context %d\n", seqlen, m.cfg.seq_len);
        rc = 2;
        goto done;
    }
    if (spq_tok_load_for_model(&tok, a.model, &err)) {
        fprintf(stderr, "spinq eval: %s\n", err.msg);
        goto done;
    }
    spq_scorer_model(&sc, &m);
    if (a.kld_base) {
        if (spq_model_load(&base, a.kld_base, &err)) {
            fprintf(stderr, "spinq eval: --kld-base: %s\n", err.msg);
            goto done;
        }
        if (base.cfg.vocab_size != m.cfg.vocab_size) {
            fprintf(stderr, "spinq eval: --kld-base %s has vocabulary %d, the model %d\n", a.kld_base,
                    base.cfg.vocab_size, m.cfg.vocab_size);
            goto done;
        }
        spq_scorer_model(&sb, &base);
    }
    pl_eval_plan plan = {
        .model = a.model,
        .rotation = a.rot.rotation ? a.rot.rotation : "none",
        .quant = quantized ? quant : NULL,
        .ppl = a.ppl,
        .n_ppl = a.n_ppl,
        .seqlen = seqlen,
        .batch = a.batch,
        .rolling = a.rolling,
        .kld_base = a.kld_base ? &sb : NULL,
        .kld_base_name = a.kld_base,
        .kld_logits = a.kld_logits,
        .save_logits = a.save_logits,
        .save_topk = a.save_topk,
        .tasks = a.tasks,
        .n_tasks = a.n_tasks,
        .limit = a.limit,
        .skip_bad = a.skip_bad,
        .add_bos = a.bos,
        .max_groups = a.max_groups,
        .progress = 1,
    };
    int r = pl_eval_run(&rep, &plan, &sc, tok, &err);
    FILE *table = a.json && !strcmp(a.json, "-") ? stderr : stdout;
    pl_eval_print(table, rep);
    if (r) fprintf(stderr, "spinq eval: %s\n", err.msg);
    /* skipped items are reported whatever else happened */
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(rep, "tasks"), i, t) {
        const char *log = json_string_value(json_object_get(t, "skipped_log"));
        if (log)
            fprintf(stderr, "spinq eval: %s: skipped %lld bad items:\n%s", json_string_value(json_object_get(t, "name")),
                    (long long)json_integer_value(json_object_get(t, "skipped")), log);
    }
    if (a.json && write_json(a.json, rep)) r = -1;
    rc = r ? 1 : 0;
done:
    json_decref(rep);
    spq_scorer_free(&sb);
    spq_scorer_free(&sc);
    if (tok) spq_tok_free(tok);
    spq_model_free(&base);
    spq_model_free(&m);
out:
    for (int k = 0; k < a.n_tasks; k++) free(a.task_bufs[k]);
    return rc;
}
