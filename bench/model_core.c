/* model_core.c - benchmark of the fp32 model core: sgemm peak, prefill and
 * decode throughput on stories260K and on a LLaMA-3.2-1B-shaped model with
 * seeded random weights. Prints one JSON object; never fails on time.
 *
 * Figures are medians of repeated runs (the machines are shared and noisy).
 * Prefill GFLOP/s counts the useful work: 2*N*params of the linears plus the
 * causal half of attention (2*N*N*q_dim for QK^T and PV together), and the
 * classifier for the last position only. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/base/cpu.h"
#include "common/io/load.h"
#include "common/model/forward.h"
#include "common/model/model.h"




static double layer_flops(const spq_config *c, double N) {
    double d = c->dim, qd = (double)c->n_heads * c->head_dim, kvd = (double)c->n_kv_heads * c->head_dim;
    double params = d * qd * 2 + 2 * d * kvd + 3 * d * c->hidden_dim;
    return 2 * N * params + 2 * N * N * qd;
}

/* Prints "name": {...} with prefill and decode figures for model m. */
static void bench_model(const char *name, const spq_model *m, int n_prefill, int n_decode, int reps, double peak,
                        int last) {
    const spq_config *c = &m->cfg;
    spq_state s;
    spq_state_build(&s, c, 1, n_prefill + n_decode, n_prefill);
    int *tok = malloc(n_prefill * sizeof(int));
    for (int i = 0; i < n_prefill; i++) tok[i] = (i * 7919) % c->vocab_size;
    float *logits = malloc((size_t)c->vocab_size * sizeof(float));
    double tp[16], td[16];
    int pos0 = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = spq_now();
        spq_forward(logits, &s, tok, &pos0, m, 1, n_prefill, SPQ_LOGITS_LAST);
        tp[r] = spq_now() - t0;
        t0 = spq_now();
        for (int i = 0; i < n_decode; i++) {
            int p = n_prefill + i, t = tok[i % n_prefill];
            spq_forward(logits, &s, &t, &p, m, 1, 1, SPQ_LOGITS_LAST);
        }
        td[r] = (spq_now() - t0) / n_decode;
    }
    double prefill_s = spq_bench_median(tp, reps), decode_s = spq_bench_median(td, reps);
    double flops = c->n_layers * layer_flops(c, n_prefill) + 2.0 * c->dim * c->vocab_size;
    double gf = flops / prefill_s / 1e9;
    printf("  \"%s\": {\"layers\": %d, \"prefill_tokens\": %d, \"prefill_tokens_per_s\": %.1f, "
           "\"prefill_gflops\": %.1f, \"prefill_fraction_of_sgemm_peak\": %.3f, "
           "\"prefill_seconds_per_layer\": %.4f, \"decode_context\": %d, \"decode_tokens_per_s\": %.2f, "
           "\"decode_ms_per_layer\": %.3f}%s\n",
           name, c->n_layers, n_prefill, n_prefill / prefill_s, gf, gf / peak, prefill_s / c->n_layers,
           n_prefill + n_decode, 1.0 / decode_s, 1e3 * decode_s / c->n_layers, last ? "" : ",");
    fflush(stdout);
    free(tok);
    free(logits);
    spq_state_free(&s);
}

int main(int argc, char **argv) {
    spq_cpu_ensure_coretype(argv);
    const char *shared = getenv("SPINQ_SHARED");
    if (!shared) shared = "../shared";
    int layers_1b = argc > 1 ? atoi(argv[1]) : 4;
    double peak = spq_bench_sgemm_gflops(2048, 5);
    printf("{\n  \"bench\": \"model_core\",\n  %s,\n  \"sgemm_2048_gflops\": %.1f,\n", spq_bench_platform(), peak);
    fflush(stdout);

    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K/stories260K.bin", shared);
    spq_model m;
    spq_err err;
    if (spq_model_load(&m, path, &err) == 0) {
        bench_model("stories260K", &m, 256, 256, 7, peak, 0);
        spq_model_free(&m);
    } else {
        fprintf(stderr, "model_core: %s\n", err.msg);
    }
    spq_config c = spq_config_llama32_1b(layers_1b);
    double t0 = spq_now();
    spq_model_init_random(&m, &c, 1234);
    fprintf(stderr, "model_core: random 1B-shaped model with %d layers built in %.1fs\n", layers_1b, spq_now() - t0);
    bench_model("llama32_1b_shape", &m, 512, 32, 3, peak, 1);
    spq_model_free(&m);
    printf("}\n");
    return 0;
}
