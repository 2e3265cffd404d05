/* par_scaling.c - data parallelism across MPI ranks (common/base/par.h) on
 * the LLaMA-3.2-1B shape with 2 layers: one rotation-learning step (a global
 * batch split across the ranks, the gradients summed) and GPTQ of one layer
 * (calibration windows split, Hessians summed, each linear quantized on rank
 * 0 and broadcast), timed with
 *   1 rank x 2 threads, 2 ranks x 1 thread, 1 rank x 1 thread
 * (threads: SPINQ_THREADS and OPENBLAS_NUM_THREADS). The goal is 2 ranks >=
 * 1.8x one rank of the same thread count. Also the time of one allreduce
 * (spq_par_sum_f32) of a learning step's gradient at the LLaMA-3-8B shape
 * with 2 ranks on this machine's loopback, for docs/parallel.md.
 *
 * Without arguments (as `make bench` runs it) it is the driver: it makes the
 * model once (build/models/llama3.2-1b-2l, `spinq make-model`), runs itself
 * per configuration (`run`, under mpirun for 2 ranks) and prints one JSON
 * object with every configuration's medians and the speedups, and the
 * allreduce times at 8B sizes (shared memory and TCP on loopback).
 * Environment: PAR_BATCH (global windows per step, 2), PAR_SEQLEN (1024),
 * PAR_STEPS (2: the first is a warm-up), PAR_NSAMPLES (GPTQ windows, 8),
 * PAR_REPS (GPTQ runs, 1), PAR_ONLY (learn or gptq: time only that). One 1-thread step is over a minute on this shape,
 * so the defaults keep the whole benchmark near ten minutes. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/bench.h"
#include "common/base/cpu.h"
#include "common/base/par.h"
#include "common/io/load.h"
#include "common/model/mapped.h"
#include "common/quant/gptq.h"
#include "common/quant/qmodel.h"
#include "common/rot/fuse.h"
#include "common/rot/rotation.h"
#include "common/train/learn.h"

#define MODEL_DIR "build/models/llama3.2-1b-2l"
#define MAX_STEPS 16

static int env_or(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

/* ---- one configuration (every rank runs this) ---- */

typedef struct {
    double step_s[MAX_STEPS];
    int n;
    int batch, seqlen;
} step_times;

static void on_step(void *ud, int step, int steps, double loss, double lr, double gnorm, double tps) {
    step_times *t = ud;
    if (t->n < MAX_STEPS) t->step_s[t->n++] = (double)t->batch * t->seqlen / tps;
}

static int stop_after_first_layer(void *ud, int layer, int n_layers, const spq_gptq_stat *st, double seconds) {
    *(double *)ud = seconds;
    return 1;
}

static int *synthetic_tokens(long n, int vocab) {
    int *tok = spq_malloc((size_t)n * sizeof(int));
    for (long i = 0; i < n; i++) tok[i] = (int)((i * 7919 + i / 13) % vocab);
    return tok;
}

static int load_fused(spq_model *m, spq_err *err) {
    if (spq_model_load(m, MODEL_DIR, err)) return -1;
    spq_model_materialize(m);
    spq_fuse_norms(m);
    return 0;
}

/* median seconds of the learning steps after the first */
static double learn_step(const spq_model *m, const int *tok, long n, spq_err *err) {
    spq_learn_cfg lc = spq_learn_defaults();
    lc.steps = env_or("PAR_STEPS", 2);
    lc.batch = env_or("PAR_BATCH", 2);
    lc.seqlen = env_or("PAR_SEQLEN", 1024);
    lc.checkpoint_every = 0;
    spq_qcfg q = spq_qcfg_off();
    q.a.bits = 4;
    q.kv.bits = 4; /* W16A4KV4: SpinQuant learns with 16-bit weights before GPTQ */
    spq_rotation rot;
    if (spq_rotation_build(&rot, &m->cfg, 1, SPQ_INIT_HADAMARD, 0, err)) return -1;
    spq_rotation_meta meta = {0};
    step_times t = {.batch = lc.batch, .seqlen = lc.seqlen};
    spq_learn_hooks hooks = {.on_step = on_step, .ud = &t};
    int bad = spq_learn(&rot, &meta, m, &q, tok, n, &lc, &hooks, err);
    spq_rotation_free(&rot);
    if (bad || t.n < 2) return -1;
    return spq_bench_median(t.step_s + 1, t.n - 1);
}

/* median seconds of GPTQ's first layer over PAR_REPS runs */
static double gptq_layer(spq_model *m, const int *tok, long n, spq_err *err) {
    spq_gptq_cfg g = spq_gptq_defaults();
    g.nsamples = env_or("PAR_NSAMPLES", 8);
    g.seqlen = env_or("PAR_SEQLEN", 1024);
    spq_wq_cfg w = spq_qcfg_off().w;
    w.bits = 4;
    w.sym = 1;
    w.mse = 1;
    int reps = env_or("PAR_REPS", 1);
    double t[8];
    if (reps > 8) reps = 8;
    for (int r = 0; r < reps; r++) {
        spq_wquant wq;
        int rc = spq_gptq_model(&wq, NULL, m, &w, tok, n, &g, stop_after_first_layer, &t[r], err);
        if (rc < 0) return -1;
        if (rc == 0) spq_wquant_free(&wq); /* a one-layer model: not stopped */
    }
    return spq_bench_median(t, reps);
}

static int run_config(void) {
    spq_err err;
    spq_model m;
    if (load_fused(&m, &err)) {
        fprintf(stderr, "par_scaling: %s\n", err.msg);
        return 1;
    }
    long n = 1 << 18;
    int *tok = synthetic_tokens(n, m.cfg.vocab_size);
    const char *only = getenv("PAR_ONLY"); /* "learn" or "gptq": the other is skipped (0 s) */
    double learn = only && !strcmp(only, "gptq") ? 0 : learn_step(&m, tok, n, &err);
    double gptq = learn < 0 || (only && !strcmp(only, "learn")) ? 0 : gptq_layer(&m, tok, n, &err);
    if (learn < 0 || gptq < 0) {
        fprintf(stderr, "par_scaling: %s\n", err.msg);
        spq_par_abort(1);
    }
    if (spq_par_rank() == 0)
        printf("{\"ranks\": %d, \"mpi\": \"%s\", \"threads\": %s, \"learn_step_seconds\": %.3f, "
               "\"gptq_layer_seconds\": %.3f, \"peak_rss_gib\": %.2f}\n",
               spq_par_size(), spq_par_runtime(), getenv("SPINQ_THREADS") ? getenv("SPINQ_THREADS") : "null", learn,
               gptq, spq_peak_rss() / 1073741824.0);
    free(tok);
    spq_model_free(&m);
    return 0;
}

/* seconds of one spq_par_sum_f32 (f64: spq_par_sum_f64) of n numbers,
 * median of reps after a warm-up */
static int run_allreduce(size_t n, int f64, int reps) {
    size_t size = f64 ? sizeof(double) : sizeof(float);
    void *buf = spq_calloc(n, size);
    double t[16];
    if (reps > 16) reps = 16;
    for (int r = -1; r < reps; r++) {
        spq_par_barrier();
        double t0 = spq_now();
        if (f64) spq_par_sum_f64(buf, n);
        else spq_par_sum_f32(buf, n);
        if (r >= 0) t[r] = spq_now() - t0;
    }
    if (spq_par_rank() == 0)
        printf("{\"ranks\": %d, \"type\": \"%s\", \"count\": %zu, \"bytes\": %zu, \"seconds\": %.4f}\n",
               spq_par_size(), f64 ? "f64" : "f32", n, n * size, spq_bench_median(t, reps));
    free(buf);
    return 0;
}

/* ---- the driver ---- */

/* runs cmd and copies its one line of JSON into out */
static int capture(char *out, size_t cap, const char *cmd) {
    fprintf(stderr, "par_scaling: %s\n", cmd);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    out[0] = 0;
    char line[1024];
    while (fgets(line, sizeof line, f))
        if (line[0] == '{') snprintf(out, cap, "%.*s", (int)strcspn(line, "\n"), line);
    return pclose(f) == 0 && out[0] ? 0 : -1;
}

static double field(const char *json, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(json, pat);
    return p ? atof(p + strlen(pat)) : -1;
}

/* a / b as JSON, null when a configuration skipped it (PAR_ONLY) */
static const char *ratio(char *buf, double a, double b) {
    if (a > 0 && b > 0) snprintf(buf, 32, "%.2f", a / b);
    else snprintf(buf, 32, "null");
    return buf;
}

static int drive(const char *self) {
    char spinq[4096], cmd[8192];
    snprintf(spinq, sizeof spinq, "%s/../spinq", dirname(strdup(self)));
    struct stat st;
    if (stat(MODEL_DIR "/config.json", &st)) {
        snprintf(cmd, sizeof cmd,
                 "mkdir -p build/models && %s make-model llama3.2-1b --layers 2 --dtype bf16 --out %s >&2", spinq,
                 MODEL_DIR);
        if (system(cmd)) {
            fprintf(stderr, "par_scaling: could not make the model\n");
            return 1;
        }
    }
    static const struct {
        const char *name;
        int ranks, threads;
    } cfgs[] = {{"1x2", 1, 2}, {"2x1", 2, 1}, {"1x1", 1, 1}};
    char res[3][1024];
    const char *mpirun = "mpirun --allow-run-as-root --oversubscribe --bind-to none";
    for (int i = 0; i < 3; i++) {
        int k = cfgs[i].threads;
        snprintf(cmd, sizeof cmd, "SPINQ_THREADS=%d OPENBLAS_NUM_THREADS=%d %s%s %s run", k, k,
                 cfgs[i].ranks > 1 ? mpirun : "", cfgs[i].ranks > 1 ? " -np 2" : "", self);
        if (capture(res[i], sizeof res[i], cmd)) {
            fprintf(stderr, "par_scaling: %s failed\n", cfgs[i].name);
            return 1;
        }
    }
    /* LLaMA-3-8B: a learning step's gradient, R1 (4096^2) and 32 R2 (128^2), in
     * fp32; one layer's GPTQ Hessians, upper triangles in fp64, of the inputs
     * of q/k/v, o, gate/up (4096 wide) and down (14336) */
    size_t grad8b = (size_t)4096 * 4096 + (size_t)32 * 128 * 128;
    size_t hess8b = 3 * ((size_t)4096 * 4097 / 2) + (size_t)14336 * 14337 / 2;
    static const struct {
        const char *what, *mca, *type;
        int hess;
    } ars[] = {{"gradient_shared_memory", "", "f32", 0},
               {"gradient_tcp_loopback", "--mca btl self,tcp --mca btl_tcp_if_include lo", "f32", 0},
               {"hessians_per_layer_tcp_loopback", "--mca btl self,tcp --mca btl_tcp_if_include lo", "f64", 1}};
    char ar[3][1024];
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof cmd, "SPINQ_THREADS=1 OPENBLAS_NUM_THREADS=1 %s %s -np 2 %s allreduce %zu %s", mpirun,
                 ars[i].mca, self, ars[i].hess ? hess8b : grad8b, ars[i].type);
        if (capture(ar[i], sizeof ar[i], cmd)) snprintf(ar[i], sizeof ar[i], "null");
    }
    double l12 = field(res[0], "learn_step_seconds"), l21 = field(res[1], "learn_step_seconds"),
           l11 = field(res[2], "learn_step_seconds");
    char r[4][32];
    double g12 = field(res[0], "gptq_layer_seconds"), g21 = field(res[1], "gptq_layer_seconds"),
           g11 = field(res[2], "gptq_layer_seconds");
    printf("{\"bench\": \"par_scaling\", %s, \"shape\": \"llama32_1b\", \"layers\": 2, "
           "\"learn\": {\"batch\": %d, \"seqlen\": %d, \"quant\": \"W16A4KV4\"}, "
           "\"gptq\": {\"nsamples\": %d, \"seqlen\": %d, \"w\": \"4-bit sym, clip search\"}, "
           "\"1rank_2threads\": %s, \"2ranks_1thread\": %s, \"1rank_1thread\": %s, "
           "\"speedup_learn_2x1_vs_1x2\": %s, \"speedup_learn_2x1_vs_1x1\": %s, "
           "\"speedup_gptq_2x1_vs_1x2\": %s, \"speedup_gptq_2x1_vs_1x1\": %s, "
           "\"llama3_8b_sums_2ranks\": {\"%s\": %s, \"%s\": %s, \"%s\": %s}}\n",
           spq_bench_platform(), env_or("PAR_BATCH", 2), env_or("PAR_SEQLEN", 1024),
           env_or("PAR_NSAMPLES", 8), env_or("PAR_SEQLEN", 1024), res[0], res[1], res[2], ratio(r[0], l12, l21),
           ratio(r[1], l11, l21), ratio(r[2], g12, g21), ratio(r[3], g11, g21), ars[0].what, ar[0], ars[1].what, ar[1],
           ars[2].what, ar[2]);
    return 0;
}

int main(int argc, char **argv) {
    spq_cpu_ensure_coretype(argv);
    if (spq_par_init(&argc, &argv)) return 1;
    if (argc > 1 && !strcmp(argv[1], "run")) return run_config();
    if (argc > 3 && !strcmp(argv[1], "allreduce"))
        return run_allreduce((size_t)atoll(argv[2]), !strcmp(argv[3], "f64"), 5);
    return drive(argv[0]);
}
