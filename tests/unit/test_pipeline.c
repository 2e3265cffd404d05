/* test_pipeline.c - the worker's pipeline with a recording reporter on
 * stories260K: stages in order, the chunked evaluation equals one
 * spq_ppl_windows call over the same tokens, rotations leave the fp32
 * perplexity unchanged, GPTQ writes the packed model the run evaluated, and
 * a stop request stops the run. (A spec the pipeline cannot run, such as
 * 4-bit weights without a method, is refused by the parser: test_jobspec.c.) */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/eval/ppl.h"
#include "common/io/load.h"
#include "worker/pipeline.h"

typedef struct {
    char stages[16][32];
    int n_stages;
    int n_progress;
    double ppl;
    int n_artifacts;
    char artifacts[4][64];
    int stop_after_progress; /* 0: never */
} recorder;

static void r_stage(void *ud, const char *s) {
    recorder *r = ud;
    snprintf(r->stages[r->n_stages++], 32, "%s", s);
}
static void r_metric(void *ud, const char *key, int64_t step, double v) {
    recorder *r = ud;
    if (!strcmp(key, "ppl")) r->ppl = v;
}
static void r_progress(void *ud, const char *stage, int64_t done, int64_t total) { ((recorder *)ud)->n_progress++; }
static void r_log(void *ud, const char *level, const char *text) {}
static void r_ckpt(void *ud, int64_t step, const void *d, size_t n) {}
static char kept[64]; /* a copy of the model.spq artifact (the pipeline removes its files) */
static int r_artifact(void *ud, const char *name, const char *path, spq_err *err) {
    recorder *r = ud;
    cr_assert(access(path, R_OK) == 0, "artifact %s is not a readable file", path);
    snprintf(r->artifacts[r->n_artifacts++], 64, "%s", name);
    if (!strcmp(name, "model.spq")) {
        char *d;
        size_t n;
        cr_assert(spq_read_file(&d, &n, path, err) == 0);
        snprintf(kept, sizeof kept, "/tmp/spq_pipe_model_%d.spq", (int)getpid());
        FILE *f = fopen(kept, "wb");
        cr_assert(f && fwrite(d, 1, n, f) == n && fclose(f) == 0);
        free(d);
    }
    return 0;
}
static int r_stop(void *ud) {
    recorder *r = ud;
    return r->stop_after_progress && r->n_progress >= r->stop_after_progress ? PL_STOP_CANCEL : PL_STOP_NONE;
}

static char models[512], data[512];
static char work[] = "/tmp/spq_pipe_XXXXXX";

static int run(recorder *rec, const char *json, pl_pipeline *p) {
    const char *shared = getenv("SPINQ_SHARED") ? getenv("SPINQ_SHARED") : "../shared";
    snprintf(models, sizeof models, "%s/models", shared);
    snprintf(data, sizeof data, "%s/data", shared);
    static pl_reporter rep;
    rep = (pl_reporter){rec, r_stage, r_metric, r_progress, r_log, r_ckpt, r_artifact, r_stop};
    memset(p, 0, sizeof *p);
    char field[SPQ_FIELD_MAX];
    cr_assert_eq(spq_jobspec_parse(&p->spec, json, strlen(json), field, &p->err), 0, "%s", p->err.msg);
    cr_assert(mkdtemp(work) || access(work, W_OK) == 0);
    p->models_dir = models;
    p->datasets_dir = data;
    p->work_dir = work;
    p->resume_step = -1;
    p->rep = &rep;
    int rc = pl_pipeline_run(p);
    pl_pipeline_free(p);
    return rc;
}

#define FP "\"quant\":{\"w_bits\":16,\"a_bits\":16,\"kv_bits\":16},\"weights\":{\"method\":\"none\"}"

Test(pipeline, stages_run_in_order_and_the_chunked_ppl_equals_one_call, .timeout = 120) {
    recorder rec = {0};
    pl_pipeline p;
    const char *spec = "{\"model\":\"stories260K\",\"rotation\":{\"mode\":\"none\"}," FP ","
                       "\"eval\":{\"ppl\":[{\"data\":\"tinystories/test.txt\",\"seqlen\":64}],\"kld\":false,"
                       "\"tasks\":[],\"limit\":10}}";
    cr_assert_eq(run(&rec, spec, &p), PL_STAGE_OK, "%s", p.err.msg);
    cr_assert_eq(rec.n_stages, 3);
    cr_assert_str_eq(rec.stages[0], "load");
    cr_assert_str_eq(rec.stages[1], "evaluate");
    cr_assert_str_eq(rec.stages[2], "write");
    cr_assert_eq(rec.n_artifacts, 1);
    cr_assert_str_eq(rec.artifacts[0], "results.json");
    cr_assert_geq(rec.n_progress, 1);

    /* the same windows in one call of the library */
    spq_model m;
    spq_tokenizer *tok;
    spq_err err;
    char path[600], *text;
    size_t len;
    int *ids, n;
    snprintf(path, sizeof path, "%s/stories260K/stories260K.bin", models);
    cr_assert_eq(spq_model_load(&m, path, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_tok_load_for_model(&tok, path, &err), 0, "%s", err.msg);
    snprintf(path, sizeof path, "%s/tinystories/test.txt", data);
    cr_assert_eq(spq_read_file(&text, &len, path, &err), 0);
    cr_assert_eq(spq_tok_encode(tok, text, len, 1, &ids, &n, &err), 0);
    spq_ppl_result r;
    cr_assert_eq(spq_ppl_windows(&r, &m, ids, 10 * 64, 64, 10, NULL, NULL, &err), 0, "%s", err.msg);
    /* The pipeline scores the windows a few per call, the library all ten in
     * one: sgemm sees other shapes, and a kernel may then order its sums
     * differently (OpenBLAS's Haswell kernels do), so each window's NLL moves
     * by fp32 rounding, measured 2e-8 relative at most over the Haswell,
     * SkylakeX, Cooperlake and Prescott kernels. 1e-6 keeps a margin of 50;
     * a window scored twice or left out moves the result by more than 1e-3. */
    cr_assert_float_eq(rec.ppl, r.ppl, 1e-6 * r.ppl, "pipeline %.12f vs library %.12f", rec.ppl, r.ppl);
    free(ids);
    free(text);
    spq_tok_free(tok);
    spq_model_free(&m);
}

Test(pipeline, fixed_rotations_leave_the_fp32_perplexity_unchanged, .timeout = 120) {
    double ppl[3];
    const char *modes[] = {"none", "hadamard", "random"};
    for (int i = 0; i < 3; i++) {
        recorder rec = {0};
        pl_pipeline p;
        char spec[512];
        snprintf(spec, sizeof spec,
                 "{\"model\":\"stories260K\",\"seed\":3,\"rotation\":{\"mode\":\"%s\"}," FP ","
                 "\"eval\":{\"ppl\":[{\"data\":\"tinystories/test.txt\",\"seqlen\":64}],\"kld\":false,"
                 "\"tasks\":[],\"limit\":4}}",
                 modes[i]);
        cr_assert_eq(run(&rec, spec, &p), PL_STAGE_OK, "%s: %s", modes[i], p.err.msg);
        ppl[i] = rec.ppl;
        if (i) {
            cr_assert_str_eq(rec.stages[1], "fuse");
            cr_assert_str_eq(rec.stages[2], "rotate");
            cr_assert_eq(rec.n_artifacts, 2, "results.json and rotation.safetensors");
        }
    }
    for (int i = 1; i < 3; i++)
        cr_assert(fabs(ppl[i] - ppl[0]) < 1e-4 * ppl[0], "%s: %.8f vs %.8f", modes[i], ppl[i], ppl[0]);
}

Test(pipeline, gptq_writes_the_packed_model_it_evaluated, .timeout = 120) {
    recorder rec = {0};
    pl_pipeline p;
    const char *spec = "{\"model\":\"stories260K\",\"rotation\":{\"mode\":\"hadamard\"},"
                       "\"quant\":{\"w_bits\":4,\"a_bits\":8,\"kv_bits\":8},"
                       "\"weights\":{\"method\":\"gptq\",\"calib\":\"tinystories/calib.txt\",\"nsamples\":4,"
                       "\"seqlen\":64},"
                       "\"eval\":{\"ppl\":[{\"data\":\"tinystories/test.txt\",\"seqlen\":64}],\"kld\":false,"
                       "\"tasks\":[],\"limit\":10}}";
    cr_assert_eq(run(&rec, spec, &p), PL_STAGE_OK, "%s", p.err.msg);
    cr_assert_str_eq(rec.stages[3], "quantize");
    cr_assert_eq(rec.n_artifacts, 3);
    cr_assert_str_eq(rec.artifacts[2], "model.spq");
    /* the artifact runs alone and scores what the run scored, up to the
     * activation codes that fp32 rounding flips (test_packed.c shows the
     * fake model differs from itself that much): 1% on 640 tokens */
    spq_model m;
    spq_tokenizer *tok;
    spq_err err;
    cr_assert_eq(spq_model_load(&m, kept, &err), 0, "%s", err.msg);
    cr_assert(m.packed && m.q.a.bits == 8 && m.cfg.kv_cache_bits == 8);
    cr_assert_eq(spq_tok_load_for_model(&tok, kept, &err), 0, "%s", err.msg);
    char path[600], *text;
    size_t len;
    int *ids, n;
    snprintf(path, sizeof path, "%s/tinystories/test.txt", data);
    cr_assert_eq(spq_read_file(&text, &len, path, &err), 0);
    cr_assert_eq(spq_tok_encode(tok, text, len, 1, &ids, &n, &err), 0);
    spq_ppl_result r;
    cr_assert_eq(spq_ppl_windows(&r, &m, ids, 10 * 64, 64, 10, NULL, NULL, &err), 0, "%s", err.msg);
    cr_assert(fabs(rec.ppl - r.ppl) < 1e-2 * r.ppl, "pipeline %.8f vs packed artifact %.8f", rec.ppl, r.ppl);
    free(ids);
    free(text);
    spq_tok_free(tok);
    spq_model_free(&m);
    unlink(kept);
}

Test(pipeline, a_stop_request_stops_the_evaluation, .timeout = 120) {
    recorder rec = {.stop_after_progress = 1};
    pl_pipeline p;
    const char *spec = "{\"model\":\"stories260K\",\"rotation\":{\"mode\":\"none\"}," FP ","
                       "\"eval\":{\"ppl\":[{\"data\":\"tinystories/test.txt\",\"seqlen\":64}],\"kld\":false,"
                       "\"tasks\":[],\"limit\":40}}";
    cr_assert_eq(run(&rec, spec, &p), PL_STAGE_STOPPED);
    cr_assert_eq(p.stop, PL_STOP_CANCEL);
    cr_assert_eq(rec.ppl, 0, "no score for a stopped run");
    cr_assert_eq(rec.n_artifacts, 0);
}
