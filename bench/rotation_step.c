/* rotation_step.c - benchmark of one rotation-learning step (forward and
 * backward with respect to R1 and every R2) on the LLaMA-3.2-1B shape with
 * seeded random weights: seconds per step, GFLOP/s against the measured
 * sgemm peak, and the peak resident memory of the whole process. One JSON
 * object; medians over the steps after a warm-up. Arguments: layers (16),
 * tokens (2048), steps (3). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench/bench.h"
#include "common/base/cpu.h"
#include "common/model/model.h"
#include "common/rot/fuse.h"
#include "common/rot/rotation.h"
#include "common/train/train.h"



int main(int argc, char **argv) {
    spq_cpu_ensure_coretype(argv);
    int layers = argc > 1 ? atoi(argv[1]) : 16, T = argc > 2 ? atoi(argv[2]) : 2048,
        steps = argc > 3 ? atoi(argv[3]) : 3;
    double peak = spq_bench_sgemm_gflops(2048, 5);
    spq_config c = spq_config_llama32_1b(layers);
    c.seq_len = T;
    spq_model m;
    double t0 = spq_now();
    spq_model_init_random(&m, &c, 1);
    spq_fuse_norms(&m);
    double t_build = spq_now() - t0;
    spq_rotation rot;
    spq_err err;
    if (spq_rotation_build(&rot, &c, 1, SPQ_INIT_HADAMARD, 0, &err)) {
        fprintf(stderr, "rotation_step: %s\n", err.msg);
        return 1;
    }
    spq_qcfg q = spq_qcfg_off();
    q.a.bits = 4;
    q.kv.bits = 4;  /* W16A4KV4: SpinQuant learns with 16-bit weights before GPTQ */
    spq_trainer tr;
    if (spq_trainer_build(&tr, &m, &rot, &q, 1, T, &err)) {
        fprintf(stderr, "rotation_step: %s\n", err.msg);
        return 1;
    }
    int *tok = malloc(T * sizeof(int));
    for (int i = 0; i < T; i++) tok[i] = (i * 7919) % c.vocab_size;
    double times[16];
    if (steps > 15) steps = 15;
    spq_trainer_step(&tr, &rot, tok, 1);  /* warm-up */
    for (int s = 0; s < steps; s++) {
        double ts = spq_now();
        spq_trainer_step(&tr, &rot, tok, 1);
        times[s] = spq_now() - ts;
    }
    double sec = spq_bench_median(times, steps), gf = spq_trainer_flops(&tr) / sec / 1e9;
    printf("{\"bench\": \"rotation_step\", %s, \"sgemm_2048_gflops\": %.1f, "
           "\"shape\": \"llama32_1b\", \"layers\": %d, \"tokens\": %d, \"quant\": \"W16A4KV4\", \"steps_timed\": %d, "
           "\"seconds_per_step\": %.2f, \"gflops\": %.1f, \"fraction_of_sgemm_peak\": %.3f, "
           "\"peak_rss_gib\": %.2f, \"model_build_seconds\": %.1f}\n",
           spq_bench_platform(), peak, layers, T, steps, sec, gf, gf / peak, spq_peak_rss() / 1073741824.0,
           t_build);
    free(tok);
    spq_trainer_free(&tr);
    spq_rotation_free(&rot);
    spq_model_free(&m);
    return 0;
}
