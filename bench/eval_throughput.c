/* eval_throughput.c - benchmark of evaluation: tokens scored per second for
 * perplexity windows and for a multiple-choice task, on stories260K and on a
 * LLaMA-3.2-1B-shaped model with seeded random weights (few layers, given as
 * argv[1], default 2; 0 skips it). Prints one JSON object; never fails on
 * time.
 *
 * Token ids are seeded random: throughput does not depend on what the
 * tokens say, and the benchmark needs no tokenizer. The multiple-choice
 * task is shaped like HellaSwag: a context of 40-120 tokens and 4 endings of
 * 8-30 tokens per question. It is scored twice: with each question's context
 * run once (shared) and with every choice run in full as lm-eval does
 * (naive: each request its own group). "tokens_per_s" counts the tokens
 * lm-eval would run (every choice's full input) in both cases, so the ratio
 * is the speed-up of sharing; "rows_run" is what went through the model.
 * Figures are medians of repeated runs. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/base/cpu.h"
#include "common/eval/kld.h"
#include "common/eval/loglik.h"
#include "common/eval/ppl.h"
#include "common/eval/scorer.h"
#include "common/io/load.h"
#include "common/model/model.h"



static int *random_tokens(long n, int V, uint64_t seed) {
    spq_rng r;
    spq_rng_seed(&r, seed);
    int *t = malloc(n * sizeof(int));
    for (long i = 0; i < n; i++) t[i] = 3 + (int)(spq_rng_u64(&r) % (uint64_t)(V - 3));
    return t;
}

static json_t *bench_ppl(const spq_model *m, int seqlen, int windows, int batch, int reps, int with_kld) {
    int *tok = random_tokens((long)windows * seqlen, m->cfg.vocab_size, 1);
    spq_scorer sc, base;
    spq_scorer_model(&sc, m);
    spq_scorer_model(&base, m);
    double t[16];
    spq_err err;
    for (int r = 0; r < reps; r++) {
        spq_ppl_result res;
        spq_kld_acc acc;
        spq_kld_acc_init(&acc);
        spq_kld_src src = {.base = &base};
        double t0 = spq_now();
        int rc = with_kld ? spq_kld_windows(&res, &acc, &sc, &src, tok, (long)windows * seqlen, seqlen, batch, NULL,
                                            NULL, &err)
                          : spq_ppl_windows_sc(&res, &sc, tok, (long)windows * seqlen, seqlen, batch, NULL, NULL, &err);
        t[r] = spq_now() - t0;
        spq_kld_acc_free(&acc);
        if (rc) {
            fprintf(stderr, "eval_throughput: %s\n", err.msg);
            exit(1);
        }
    }
    double s = spq_bench_median(t, reps);
    long scored = (long)windows * (seqlen - 1);
    spq_scorer_free(&sc);
    spq_scorer_free(&base);
    free(tok);
    return json_pack("{s:i, s:i, s:i, s:I, s:f, s:f}", "seqlen", seqlen, "windows", windows, "batch", batch,
                     "tokens_scored", (json_int_t)scored, "seconds", s, "tokens_per_s", scored / s);
}

typedef struct {
    int *ctx, n_ctx;
    int *cont[4], n_cont[4];
} question;

static json_t *bench_mc(const spq_model *m, int n_q, int reps, int groups) {
    int V = m->cfg.vocab_size;
    spq_rng r;
    spq_rng_seed(&r, 2);
    question *q = calloc(n_q, sizeof *q);
    spq_ll_req *req = malloc((size_t)n_q * 4 * sizeof *req);
    long *shared = malloc((n_q + 1) * sizeof(long)), *naive = malloc((4 * n_q + 1) * sizeof(long));
    for (int i = 0; i < n_q; i++) {
        q[i].n_ctx = 40 + (int)(spq_rng_u64(&r) % 81);
        q[i].ctx = random_tokens(q[i].n_ctx, V, 100 + i);
        shared[i] = 4 * i;
        for (int j = 0; j < 4; j++) {
            q[i].n_cont[j] = 8 + (int)(spq_rng_u64(&r) % 23);
            q[i].cont[j] = random_tokens(q[i].n_cont[j], V, 1000 + 4 * i + j);
            req[4 * i + j] = (spq_ll_req){q[i].ctx, q[i].n_ctx, q[i].cont[j], q[i].n_cont[j]};
        }
    }
    shared[n_q] = 4 * n_q;
    for (int i = 0; i <= 4 * n_q; i++) naive[i] = i;
    spq_ll_out *out = malloc((size_t)n_q * 4 * sizeof *out);
    json_t *res = json_object();
    json_object_set_new(res, "questions", json_integer(n_q));
    json_object_set_new(res, "choices", json_integer(4));
    for (int mode = 0; mode < 2; mode++) {
        spq_ll_opts o = {.max_len = 512, .max_rows = 2048, .max_groups = mode ? 4 * groups : groups};
        double t[16];
        spq_ll_stats st = {0};
        for (int rep = 0; rep < reps; rep++) {
            spq_scorer sc;
            spq_scorer_model(&sc, m);
            spq_err err;
            double t0 = spq_now();
            if (spq_ll_score(out, &st, &sc, req, mode ? naive : shared, mode ? 4 * n_q : n_q, &o, NULL, NULL, &err)) {
                fprintf(stderr, "eval_throughput: %s\n", err.msg);
                exit(1);
            }
            t[rep] = spq_now() - t0;
            spq_scorer_free(&sc);
        }
        double s = spq_bench_median(t, reps);
        json_object_set_new(res, mode ? "naive" : "shared",
                            json_pack("{s:I, s:I, s:I, s:f, s:f, s:f}", "rows_run", (json_int_t)st.rows_run,
                                      "tokens_lm_eval", (json_int_t)st.rows_naive, "forward_calls",
                                      (json_int_t)st.forward_calls, "seconds", s, "tokens_per_s",
                                      st.rows_naive / s, "questions_per_s", n_q / s));
    }
    double a = json_real_value(json_object_get(json_object_get(res, "shared"), "seconds"));
    double b = json_real_value(json_object_get(json_object_get(res, "naive"), "seconds"));
    json_object_set_new(res, "speedup_of_sharing", json_real(b / a));
    for (int i = 0; i < n_q; i++) {
        free(q[i].ctx);
        for (int j = 0; j < 4; j++) free(q[i].cont[j]);
    }
    free(q);
    free(req);
    free(shared);
    free(naive);
    free(out);
    return res;
}

int main(int argc, char **argv) {
    spq_cpu_ensure_coretype(argv);
    const char *shared = getenv("SPINQ_SHARED");
    if (!shared) shared = "../shared";
    int layers_1b = argc > 1 ? atoi(argv[1]) : 2; /* 0: stories260K only */
    if (layers_1b < 0) layers_1b = 0;
    json_t *rep = json_object();
    json_object_set_new(rep, "bench", json_string("eval_throughput"));
    char platform[600];
    snprintf(platform, sizeof platform, "{%s}", spq_bench_platform());
    json_t *pl = json_loads(platform, 0, NULL);
    if (pl) json_object_update(rep, pl);
    json_decref(pl);

    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", shared);
    spq_model m;
    spq_err err;
    if (spq_model_load(&m, path, &err) == 0) {
        json_t *o = json_object();
        json_object_set_new(o, "ppl", bench_ppl(&m, 512, 16, 4, 5, 0));
        json_object_set_new(o, "ppl_with_kld_vs_itself", bench_ppl(&m, 512, 16, 4, 3, 1));
        json_object_set_new(o, "multiple_choice", bench_mc(&m, 128, 5, 16));
        json_object_set_new(rep, "stories260K", o);
        spq_model_free(&m);
    } else {
        fprintf(stderr, "eval_throughput: %s\n", err.msg);
    }
    fprintf(stderr, "eval_throughput: stories260K done\n");

    if (layers_1b > 0) {
        spq_config c = spq_config_llama32_1b(layers_1b);
        spq_model_init_random(&m, &c, 1234);
        json_t *o = json_object();
        json_object_set_new(o, "layers", json_integer(layers_1b));
        json_object_set_new(o, "ppl", bench_ppl(&m, 512, 2, 1, 3, 0));
        json_object_set_new(o, "multiple_choice", bench_mc(&m, 16, 3, 8));
        json_object_set_new(rep, "llama32_1b_shape", o);
        spq_model_free(&m);
    }

    json_dumpf(rep, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    printf("\n");
    json_decref(rep);
    return 0;
}
