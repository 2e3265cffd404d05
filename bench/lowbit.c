/* lowbit.c - benchmark of the packed low-bit model on the LLaMA-3.2-1B shape
 * with seeded random weights (spq_config_llama32_1b with a few layers):
 *  - file size of the packed model against fp32 and bf16 checkpoints;
 *  - prefill (512 tokens, batch 1) and decode (batch 1, context 512) tokens/s
 *    for fp32, W4A16, W4A8KV8 and W4A4KV4;
 *  - GPTQ seconds per layer.
 * Prints one JSON object; never fails on time.
 * Usage: lowbit [LAYERS [GPTQ_WINDOWS]]  (2 layers, 16 windows; 0 windows skips GPTQ)
 *
 * Per-layer figures are measured by timing spq_layer_forward on its own;
 * the rest of a forward (embedding, final norm, classifier) is the whole
 * spq_forward minus LAYERS layers. Figures "for 16 layers" are extrapolated:
 * fixed part + 16 x per-layer part (clearly labelled so). Times are medians
 * of repeats (the machine is shared).
 *
 * The packed models keep the embedding and the (tied) classifier in bf16, as
 * SpinQuant keeps them in 16 bits; the fp32 model keeps them in fp32. The
 * quantized models apply the online R3 (head_dim 64) and R4 (8192 = 2^13,
 * fast Walsh-Hadamard) rotations, which are part of their cost. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "common/base/cpu.h"
#include "common/base/pool.h"
#include "common/io/packed.h"
#include "common/kernels/qgemm.h"
#include "common/model/forward.h"
#include "common/quant/gptq.h"

typedef struct {
    double prefill_layer, prefill_fixed, decode_layer, decode_fixed;
} timing;

#define PREFILL 512
#define DECODE 16
#define REPS 3

/* prefill of PREFILL tokens from an empty cache, then DECODE tokens at
 * positions PREFILL.. (context 512) */
static timing measure(const spq_model *m) {
    const spq_config *c = &m->cfg;
    int L = c->n_layers, V = c->vocab_size;
    spq_state s;
    spq_state_build(&s, c, 1, PREFILL + DECODE, PREFILL);
    int *tok = malloc(PREFILL * sizeof(int));
    for (int i = 0; i < PREFILL; i++) tok[i] = (i * 7919 + 13) % V;
    float *logits = malloc((size_t)V * sizeof(float));
    double tp[REPS], tpl[REPS], td[REPS], tdl[REPS];
    int pos0 = 0;
    for (int r = 0; r < REPS; r++) {
        double t0 = spq_now();
        spq_forward(logits, &s, tok, &pos0, m, 1, PREFILL, SPQ_LOGITS_LAST);
        tp[r] = spq_now() - t0;
        /* the layers alone, on the embeddings of the same tokens */
        spq_embed_forward(&s, tok, m, PREFILL);
        t0 = spq_now();
        for (int l = 0; l < L; l++) spq_layer_forward(&s, &pos0, m, l, 1, PREFILL, NULL, NULL);
        tpl[r] = (spq_now() - t0) / L;
        /* decode: whole steps, then layers alone */
        t0 = spq_now();
        for (int i = 0; i < DECODE; i++) {
            int p = PREFILL + i, t = tok[i];
            spq_forward(logits, &s, &t, &p, m, 1, 1, SPQ_LOGITS_LAST);
        }
        td[r] = (spq_now() - t0) / DECODE;
        t0 = spq_now();
        for (int i = 0; i < DECODE; i++) {
            int p = PREFILL + i, t = tok[i];
            spq_embed_forward(&s, &t, m, 1);
            for (int l = 0; l < L; l++) spq_layer_forward(&s, &p, m, l, 1, 1, NULL, NULL);
        }
        tdl[r] = (spq_now() - t0) / DECODE / L;
    }
    timing t;
    t.prefill_layer = spq_bench_median(tpl, REPS);
    t.prefill_fixed = spq_bench_median(tp, REPS) - L * t.prefill_layer;
    t.decode_layer = spq_bench_median(tdl, REPS);
    t.decode_fixed = spq_bench_median(td, REPS) - L * t.decode_layer;
    if (t.prefill_fixed < 0) t.prefill_fixed = 0;
    if (t.decode_fixed < 0) t.decode_fixed = 0;
    free(tok);
    free(logits);
    spq_state_free(&s);
    return t;
}

static void print_timing(const char *name, const timing *t, const timing *base, int last) {
    double p16 = t->prefill_fixed + 16 * t->prefill_layer, d16 = t->decode_fixed + 16 * t->decode_layer;
    printf("    \"%s\": {\"prefill_seconds_per_layer\": %.4f, \"prefill_seconds_fixed\": %.4f, "
           "\"decode_ms_per_layer\": %.3f, \"decode_ms_fixed\": %.3f, "
           "\"extrapolated_16_layers\": {\"prefill_tokens_per_s\": %.1f, \"decode_tokens_per_s\": %.2f",
           name, t->prefill_layer, t->prefill_fixed, 1e3 * t->decode_layer, 1e3 * t->decode_fixed, PREFILL / p16,
           1.0 / d16);
    if (base) {
        double bp = base->prefill_fixed + 16 * base->prefill_layer, bd = base->decode_fixed + 16 * base->decode_layer;
        /* the same layers with the fp32 model's embedding and classifier */
        double d16f = base->decode_fixed + 16 * t->decode_layer;
        printf(", \"prefill_speedup_vs_fp32\": %.2f, \"decode_speedup_vs_fp32\": %.2f, "
               "\"decode_tokens_per_s_with_fp32_classifier\": %.2f, \"decode_speedup_with_fp32_classifier\": %.2f",
               bp / p16, bd / d16, 1.0 / d16f, bd / d16f);
    }
    printf("}, \"per_layer_speedup_vs_fp32\": ");
    if (base)
        printf("{\"prefill\": %.2f, \"decode\": %.2f}", base->prefill_layer / t->prefill_layer,
               base->decode_layer / t->decode_layer);
    else
        printf("null");
    printf("}%s\n", last ? "" : ",");
    fflush(stdout);
}

static long long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) ? -1 : (long long)st.st_size;
}

static void attach_online(spq_model *m) {
    spq_err err;
    m->r3 = spq_calloc(1, sizeof(spq_rot_online));
    m->r4 = spq_calloc(1, sizeof(spq_rot_online));
    if (spq_rot_online_build(m->r3, m->cfg.head_dim, 0, &err) || spq_rot_online_build(m->r4, m->cfg.hidden_dim, 0, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        exit(1);
    }
}

static int pack(spq_model *pm, const spq_model *fq, const spq_wquant *wq, int abits, int kvbits) {
    spq_model tmp = *fq;  /* shallow: the same weights with other activation settings */
    tmp.q.a.bits = abits;
    tmp.q.kv.bits = kvbits;
    spq_pack_opts o = {.emb_dtype = SPQ_ST_BF16, .info = "{\"bench\":\"lowbit\"}"};
    spq_err err;
    if (spq_packed_build(pm, &tmp, wq, &o, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* GPTQ progress: seconds of each layer */
static int on_layer(void *ud, int layer, int nl, const spq_gptq_stat *st, double s) {
    (void)nl;
    (void)st;
    ((double *)ud)[layer] = s;
    return 0;
}

int main(int argc, char **argv) {
    spq_cpu_ensure_coretype(argv);
    int L = argc > 1 ? atoi(argv[1]) : 2;
    int gptq_windows = argc > 2 ? atoi(argv[2]) : 16;
    if (L < 1) L = 1;
    spq_config c = spq_config_llama32_1b(L);
    printf("{\n  \"bench\": \"lowbit\",\n  \"shape\": \"llama3.2-1b (random weights)\",\n  \"layers_measured\": %d,\n"
           "  \"isa\": \"%s\",\n  \"threads\": %d,\n  %s,\n",
           L, spq_isa_name(spq_qgemm_isa()), spq_pool_threads(), spq_bench_platform());
    fflush(stdout);

    spq_model m;
    double t0 = spq_now();
    spq_model_init_random(&m, &c, 1234);
    fprintf(stderr, "lowbit: random model with %d layers in %.1fs\n", L, spq_now() - t0);

    /* ---- speed ---- */
    printf("  \"speed\": {\n    \"note\": \"prefill %d tokens batch 1; decode batch 1 at context %d; "
           "extrapolated_16_layers = fixed + 16 x per-layer\",\n", PREFILL, PREFILL);
    fflush(stdout);
    timing fp32 = measure(&m);
    print_timing("fp32", &fp32, NULL, 0);

    spq_qcfg q = spq_qcfg_off();
    q.w.bits = 4;
    q.w.mse = 0;
    spq_wquant wq;
    spq_err err;
    if (spq_wquant_rtn(&wq, &m, &q.w, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        return 1;
    }
    m.q = q;
    attach_online(&m);
    const int cfgs[3][2] = {{16, 16}, {8, 8}, {4, 4}};
    const char *names[3] = {"w4a16", "w4a8kv8", "w4a4kv4"};
    long long packed_bytes = -1;
    for (int i = 0; i < 3; i++) {
        spq_model pm;
        if (pack(&pm, &m, &wq, cfgs[i][0], cfgs[i][1])) return 1;
        if (i == 2) {
            char path[256];
            snprintf(path, sizeof path, "/tmp/spinq-bench-lowbit-%d.spq", (int)getpid());
            if (spq_packed_save(&pm, path, &err)) fprintf(stderr, "lowbit: %s\n", err.msg);
            packed_bytes = file_size(path);
            unlink(path);
        }
        timing t = measure(&pm);
        print_timing(names[i], &t, &fp32, i == 2);
        spq_model_free(&pm);
    }
    printf("  },\n");
    spq_wquant_free(&wq);
    spq_model_free(&m);

    /* ---- sizes: fixed (embedding, final norm) + per layer ---- */
    double d = c.dim, h = c.hidden_dim, qd = (double)c.n_heads * c.head_dim, kvd = (double)c.n_kv_heads * c.head_dim;
    double layer_params = 2 * d + 2 * d * qd + 2 * d * kvd + 3 * d * h, fixed_params = (double)c.vocab_size * d + d;
    /* the packed file's fixed part: the bf16 embedding (tied classifier), the
     * final norm and the metadata; the rest is per layer */
    double packed_fixed = (double)c.vocab_size * d * 2 + d * 4 + 4096;
    double packed_layer = (packed_bytes - packed_fixed) / L;
    printf("  \"file_bytes\": {\"note\": \"packed: int4 codes, fp32 per-channel scales, u8 zero points, bf16 tied "
           "embedding/classifier; fp32/bf16: plain checkpoints\", \"measured_layers\": %d, \"packed_measured\": %lld, "
           "\"per_layer\": {\"fp32\": %.0f, \"bf16\": %.0f, \"packed\": %.0f}, "
           "\"extrapolated_16_layers\": {\"fp32\": %.0f, \"bf16\": %.0f, \"packed\": %.0f, "
           "\"packed_vs_fp32\": %.3f, \"packed_vs_bf16\": %.3f}},\n",
           L, packed_bytes, layer_params * 4, layer_params * 2, packed_layer, (fixed_params + 16 * layer_params) * 4,
           (fixed_params + 16 * layer_params) * 2, packed_fixed + 16 * packed_layer,
           (packed_fixed + 16 * packed_layer) / ((fixed_params + 16 * layer_params) * 4),
           (packed_fixed + 16 * packed_layer) / ((fixed_params + 16 * layer_params) * 2));
    fflush(stdout);

    /* ---- GPTQ ---- */
    if (gptq_windows < 1) {
        printf("  \"gptq\": null\n}\n");
        return 0;
    }
    spq_model g;
    spq_model_init_random(&g, &c, 4321);
    spq_gptq_cfg gc = spq_gptq_defaults();
    gc.nsamples = gptq_windows;
    gc.seqlen = 512;
    gc.batch = 4;
    long n = 16384;
    int *tok = malloc(n * sizeof(int));
    for (long i = 0; i < n; i++) tok[i] = (int)((i * 2654435761u) % c.vocab_size);
    spq_wq_cfg w = {.bits = 4, .sym = 1, .mse = 1};
    double *secs = calloc(L, sizeof(double));
    t0 = spq_now();
    spq_wquant gq;
    if (spq_gptq_model(&gq, NULL, &g, &w, tok, n, &gc, on_layer, secs, &err)) {
        fprintf(stderr, "lowbit: gptq: %s\n", err.msg);
        return 1;
    }
    double total = spq_now() - t0;
    printf("  \"gptq\": {\"nsamples\": %d, \"seqlen\": %d, \"w\": \"4-bit sym per channel, clip search\", "
           "\"seconds_per_layer\": [",
           gc.nsamples, gc.seqlen);
    for (int l = 0; l < L; l++) printf("%s%.2f", l ? ", " : "", secs[l]);
    printf("], \"seconds_total\": %.2f, \"extrapolated_16_layers_seconds\": %.1f}\n}\n", total,
           total / L * 16);
    spq_wquant_free(&gq);
    spq_model_free(&g);
    free(secs);
    free(tok);
    return 0;
}

