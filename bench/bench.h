/* bench.h - what every benchmark program needs: medians of repeated
 * timings (the machines are shared and noisy) and the measured sgemm peak
 * that throughput figures are compared with. Header-only: each bench program is
 * its own program. */
#ifndef SPQ_BENCH_H
#define SPQ_BENCH_H

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/base/cpu.h"
#include "common/base/util.h"
#include "common/kernels/qgemm.h"

/* What ran the benchmark, as JSON members to open every report with: the CPU
 * model, OpenBLAS's kernel set and the OPENBLAS_CORETYPE it was given, and
 * the path of our integer kernels. Figures mean little without these. */
static inline const char *spq_bench_platform(void) {
    static char s[512];
    const char *env = getenv("OPENBLAS_CORETYPE");
    snprintf(s, sizeof s,
             "\"cpu_model\": \"%s\", \"openblas_corename\": \"%s\", \"openblas_coretype_env\": \"%s\", "
             "\"qgemm_path\": \"%s\"",
             spq_cpu_model(), spq_cpu_blas_corename(), env ? env : "", spq_isa_name(spq_qgemm_isa()));
    return s;
}

static int spq_bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* median of x (n), sorting x */
static inline double spq_bench_median(double *x, int n) {
    qsort(x, n, sizeof *x, spq_bench_cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* GFLOP/s of an n x n x n sgemm, median of reps runs after a warm-up */
static inline double spq_bench_sgemm_gflops(int n, int reps) {
    float *a = spq_malloc((size_t)n * n * sizeof(float)), *b = spq_malloc((size_t)n * n * sizeof(float)),
          *c = spq_malloc((size_t)n * n * sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = (float)((int)(i % 7) - 3) * 0.01f;
    double *t = spq_malloc((size_t)reps * sizeof(double));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    for (int r = 0; r < reps; r++) {
        double t0 = spq_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        t[r] = spq_now() - t0;
    }
    double g = 2.0 * n * n * (double)n / spq_bench_median(t, reps) / 1e9;
    free(a); free(b); free(c); free(t);
    return g;
}

#endif
