/* test_hadamard.c - the Hadamard factors, the split n = M * K, and the fast
 * transform against the dense matrix.
 *
 * Why the checks below prove H H^T = n I for every size the builder claims:
 * H = H_M (x) H_K, so H H^T = (H_M H_M^T) (x) (H_K H_K^T). The Sylvester part is
 * checked against its definition; every K factor the builder can produce
 * (K <= SPQ_HAD_MAX_K) is checked exactly (integer entries, dgemm is exact
 * for them). The dense matrix spq_had_dense is built from entries, not from the
 * transform, and is checked to give H H^T = n I exactly for all claimed n <=
 * 512. That the fast transform implements this matrix is checked against the
 * dense product for every claimed n <= 1024, and on sampled entries for 11008,
 * 13824, 14336. At every claimed n <= 16384 the fast transform itself is
 * checked with Freivalds' test: for integer v with entries uniform in
 * [-2^20, 2^20], H (H^T v) = n v exactly (fp64 is exact: |values| < 2^53). If
 * H H^T - n I had a nonzero row r, r . v = 0 would happen with probability at
 * most 1/(2^21+1) per vector (Schwartz-Zippel); two vectors per size. That
 * apply(transpose) is the transpose of apply is checked the same way with
 * u . (H v) = (H^T u) . v. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include <cblas.h>

#include "common/kernels/hadamard.h"

static int sylvester(int a, int b) { return (__builtin_popcount(a & b) & 1) ? -1 : 1; }

Test(hadamard, fwht_matches_definition) {
    spq_rng r;
    spq_rng_seed(&r, 1);
    for (int n = 1; n <= 1024; n *= 2) {
        float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
        double *xd = malloc(n * sizeof(double));
        for (int i = 0; i < n; i++) xd[i] = x[i] = (float)spq_rng_normal(&r);
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += sylvester(i, j) * (double)x[j];
            y[i] = (float)(s / sqrt(n));
        }
        spq_fwht(x, n, 1);
        spq_fwht_f64(xd, n, 1);
        for (int i = 0; i < n; i++) {
            cr_assert_float_eq(x[i], y[i], 1e-5 * (1 + fabsf(y[i])), "n %d i %d", n, i);
            cr_assert_float_eq(xd[i], y[i], 1e-5 * (1 + fabsf(y[i])), "n %d i %d", n, i);
        }
        free(x); free(y); free(xd);
    }
}

Test(hadamard, fwht_unnormalized_integer_exact) {
    int v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    float x[8];
    for (int i = 0; i < 8; i++) x[i] = (float)v[i];
    spq_fwht(x, 8, 0);
    /* row i of H_8 dotted with 1..8 */
    float want[8] = {36, -4, -8, 0, -16, 0, 0, 0};
    for (int i = 0; i < 8; i++) cr_assert_eq(x[i], want[i], "i %d: %g", i, x[i]);
}

Test(hadamard, known_factors_and_splits) {
    int q;
    cr_assert_eq(spq_had_factor_kind(12, &q), SPQ_HAD_PALEY1); cr_assert_eq(q, 11);
    cr_assert_eq(spq_had_factor_kind(28, &q), SPQ_HAD_PALEY1); cr_assert_eq(q, 27);
    cr_assert_eq(spq_had_factor_kind(36, &q), SPQ_HAD_PALEY2); cr_assert_eq(q, 17);
    cr_assert_eq(spq_had_factor_kind(52, &q), SPQ_HAD_PALEY2); cr_assert_eq(q, 25);
    cr_assert_eq(spq_had_factor_kind(108, &q), SPQ_HAD_PALEY1); cr_assert_eq(q, 107);
    cr_assert_eq(spq_had_factor_kind(140, &q), SPQ_HAD_PALEY1); cr_assert_eq(q, 139);
    cr_assert_eq(spq_had_factor_kind(244, &q), SPQ_HAD_PALEY1); cr_assert_eq(q, 243);
    cr_assert_eq(spq_had_factor_kind(344, &q), SPQ_HAD_PALEY1); cr_assert_eq(q, 343);
    cr_assert_eq(spq_had_factor_kind(100, &q), SPQ_HAD_PALEY2); cr_assert_eq(q, 49);
    cr_assert_eq(spq_had_factor_kind(340, &q), SPQ_HAD_PALEY2); cr_assert_eq(q, 169);
    cr_assert_eq(spq_had_factor_kind(252, &q), SPQ_HAD_PALEY1); cr_assert_eq(q, 251); /* not 2(125+1) */
    cr_assert_eq(spq_had_factor_kind(4, NULL), SPQ_HAD_SYLVESTER);
    cr_assert_eq(spq_had_factor_kind(43, NULL), SPQ_HAD_NONE);
    cr_assert_eq(spq_had_factor_kind(86, NULL), SPQ_HAD_NONE);
    cr_assert_eq(spq_had_factor_kind(172, NULL), SPQ_HAD_NONE);
    cr_assert_eq(spq_had_factor_kind(6, NULL), SPQ_HAD_NONE);

    struct { int n, M, K; } want[] = {
        {11008, 32, 344}, {13824, 128, 108}, {14336, 512, 28}, {8192, 8192, 1}, {16384, 16384, 1},
        {5120, 256, 20},  {1, 1, 1},         {12, 1, 12},      {24, 2, 12},     {3072, 256, 12},
        {8960, 64, 140},  {4864, 64, 76},    {6656, 128, 52},  {22016, 64, 344},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        spq_had_plan p;
        cr_assert_eq(spq_had_build(&p, want[i].n, NULL), 0, "n %d", want[i].n);
        cr_assert_eq(p.M, want[i].M, "n %d: M %d", want[i].n, p.M);
        cr_assert_eq(p.K, want[i].K, "n %d: K %d", want[i].n, p.K);
        spq_had_free(&p);
    }
    /* stories260K: hidden 172 has no construction (dense fallback), head_dim 8 is 2^3 */
    int none[] = {172, 43, 86, 3, 6, 10, 14, 18, 0, -4};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        cr_assert(!spq_had_possible(none[i]), "n %d", none[i]);
        spq_had_plan p;
        spq_err err = {{0}};
        cr_assert_eq(spq_had_build(&p, none[i], &err), -1);
        cr_assert(strstr(err.msg, "size") != NULL, "%s", err.msg);
    }
    cr_assert(spq_had_possible(8) && spq_had_possible(64));
}

/* every constructible factor: H_K H_K^T = K I exactly, entries +-1 */
Test(hadamard, every_factor_is_hadamard, .timeout = 120) {
    int count = 0;
    for (int K = 1; K <= SPQ_HAD_MAX_K; K++) {
        if (spq_had_factor_kind(K, NULL) == SPQ_HAD_NONE) continue;
        count++;
        int8_t *H = malloc((size_t)K * K);
        double *Hd = malloc((size_t)K * K * sizeof(double)), *G = malloc((size_t)K * K * sizeof(double));
        cr_assert_eq(spq_had_factor(H, K, NULL), 0, "K %d", K);
        for (int i = 0; i < K * K; i++) {
            cr_assert(H[i] == 1 || H[i] == -1, "K %d entry %d = %d", K, i, H[i]);
            Hd[i] = H[i];
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, K, K, 1.0, Hd, K, Hd, K, 0.0, G, K);
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
                cr_assert_eq(G[i * K + j], i == j ? K : 0, "K %d: (H H^T)[%d][%d] = %g", K, i, j, G[i * K + j]);
        free(H); free(Hd); free(G);
    }
    cr_assert_gt(count, 100);
}

/* spq_had_possible agrees with a brute-force search over splits */
Test(hadamard, possible_matches_split_search) {
    for (int n = 1; n <= 16384; n++) {
        int any = 0;
        for (int M = 1; M <= n && !any; M *= 2)
            if (n % M == 0 && spq_had_factor_kind(n / M, NULL) != SPQ_HAD_NONE) any = 1;
        cr_assert_eq(spq_had_possible(n), any, "n %d", n);
    }
}

Test(hadamard, dense_is_hadamard_up_to_512) {
    for (int n = 1; n <= 512; n++) {
        if (!spq_had_possible(n)) continue;
        spq_had_plan p;
        cr_assert_eq(spq_had_build(&p, n, NULL), 0);
        int8_t *H = malloc((size_t)n * n);
        double *Hd = malloc((size_t)n * n * sizeof(double)), *G = malloc((size_t)n * n * sizeof(double));
        spq_had_dense(H, &p);
        for (int i = 0; i < n * n; i++) Hd[i] = H[i];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, Hd, n, Hd, n, 0.0, G, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) cr_assert_eq(G[i * n + j], i == j ? n : 0, "n %d [%d][%d]", n, i, j);
        free(H); free(Hd); free(G);
        spq_had_free(&p);
    }
}

/* the fast transform (both precisions, both directions) equals the dense product */
Test(hadamard, fast_equals_dense_up_to_1024, .timeout = 120) {
    spq_rng r;
    spq_rng_seed(&r, 7);
    for (int n = 1; n <= 1024; n++) {
        if (!spq_had_possible(n)) continue;
        spq_had_plan p;
        cr_assert_eq(spq_had_build(&p, n, NULL), 0);
        int8_t *H = malloc((size_t)n * n);
        spq_had_dense(H, &p);
        int rows = 3;
        double *x = malloc((size_t)rows * n * sizeof(double)), *xt = malloc((size_t)rows * n * sizeof(double));
        float *xf = malloc((size_t)rows * n * sizeof(float)), *xft = malloc((size_t)rows * n * sizeof(float));
        for (int i = 0; i < rows * n; i++) xt[i] = x[i] = xft[i] = xf[i] = (float)spq_rng_normal(&r);
        double *y = malloc((size_t)rows * n * sizeof(double)), *yt = malloc((size_t)rows * n * sizeof(double));
        double s = 1 / sqrt(n);
        for (int k = 0; k < rows; k++)
            for (int i = 0; i < n; i++) {
                double a = 0, b = 0;
                for (int j = 0; j < n; j++) {
                    a += H[(size_t)i * n + j] * x[k * n + j];
                    b += H[(size_t)j * n + i] * x[k * n + j];
                }
                y[k * n + i] = a * s;
                yt[k * n + i] = b * s;
            }
        spq_had_apply_f64(&p, x, rows, 0, 1);
        spq_had_apply_f64(&p, xt, rows, 1, 1);
        spq_had_apply(&p, xf, rows, 0, 1);
        spq_had_apply(&p, xft, rows, 1, 1);
        for (int i = 0; i < rows * n; i++) {
            cr_assert(fabs(x[i] - y[i]) < 1e-12, "n %d i %d: %g vs %g", n, i, x[i], y[i]);
            cr_assert(fabs(xt[i] - yt[i]) < 1e-12, "n %d i %d (transpose)", n, i);
            cr_assert(fabs(xf[i] - y[i]) < 2e-5 * (1 + fabs(y[i])), "n %d i %d: f32 %g vs %g", n, i, xf[i], y[i]);
            cr_assert(fabs(xft[i] - yt[i]) < 2e-5 * (1 + fabs(yt[i])), "n %d i %d (f32 transpose)", n, i);
        }
        free(H); free(x); free(xt); free(xf); free(xft); free(y); free(yt);
        spq_had_free(&p);
    }
}

static double rand_int(spq_rng *r, int bits) {
    int64_t m = (int64_t)1 << bits;
    return (double)((int64_t)(spq_rng_u64(r) % (uint64_t)(2 * m + 1)) - m);
}

/* Freivalds at every claimed size up to 16384; see the comment at the top */
Test(hadamard, orthogonal_at_every_claimed_size, .timeout = 120) {
    spq_rng r;
    spq_rng_seed(&r, 3);
    double *v = malloc(16384 * sizeof(double)), *w = malloc(16384 * sizeof(double));
    double *u = malloc(16384 * sizeof(double)), *hu = malloc(16384 * sizeof(double));
    int sizes = 0;
    for (int n = 1; n <= 16384; n++) {
        if (!spq_had_possible(n)) continue;
        sizes++;
        spq_had_plan p;
        cr_assert_eq(spq_had_build(&p, n, NULL), 0, "n %d", n);
        cr_assert_eq(p.M * p.K, n);
        for (int t = 0; t < 2; t++) {
            for (int i = 0; i < n; i++) w[i] = v[i] = rand_int(&r, 20);
            spq_had_apply_f64(&p, w, 1, 1, 0);
            spq_had_apply_f64(&p, w, 1, 0, 0);
            for (int i = 0; i < n; i++) cr_assert_eq(w[i], n * v[i], "n %d: (H H^T v)[%d] != n v", n, i);
        }
        /* u . (H v) == (H^T u) . v, entries small enough for exact sums */
        for (int i = 0; i < n; i++) {
            w[i] = v[i] = rand_int(&r, 10);
            hu[i] = u[i] = rand_int(&r, 10);
        }
        spq_had_apply_f64(&p, w, 1, 0, 0);
        spq_had_apply_f64(&p, hu, 1, 1, 0);
        double a = 0, b = 0;
        for (int i = 0; i < n; i++) {
            a += u[i] * w[i];
            b += hu[i] * v[i];
        }
        cr_assert_eq(a, b, "n %d: apply(transpose) is not the transpose", n);
        spq_had_free(&p);
    }
    cr_assert_eq(sizes, 572); /* claimed sizes <= 16384 at SPQ_HAD_MAX_K 1024 */
    free(v); free(w); free(u); free(hu);
}

/* the LLaMA sizes: split, entries of the fast transform against spq_had_entry,
 * norm preservation and inverse in fp32, many rows at once (crosses the gemm chunking) */
Test(hadamard, llama_sizes, .timeout = 120) {
    int sizes[] = {11008, 13824, 14336};
    spq_rng r;
    spq_rng_seed(&r, 11);
    for (int s = 0; s < 3; s++) {
        int n = sizes[s];
        spq_had_plan p;
        cr_assert_eq(spq_had_build(&p, n, NULL), 0);
        /* columns of H: transform of e_l, sampled l */
        double *e = malloc((size_t)n * sizeof(double));
        for (int t = 0; t < 6; t++) {
            int l = (int)(spq_rng_u64(&r) % (uint64_t)n);
            memset(e, 0, (size_t)n * sizeof(double));
            e[l] = 1;
            spq_had_apply_f64(&p, e, 1, 0, 0);
            for (int i = 0; i < n; i++) cr_assert_eq(e[i], spq_had_entry(&p, i, l), "n %d H[%d][%d]", n, i, l);
        }
        free(e);
        /* rows of fp32 data: norms kept, apply_t undoes apply */
        int rows = 200;
        float *x = malloc((size_t)rows * n * sizeof(float)), *x0 = malloc((size_t)rows * n * sizeof(float));
        for (size_t i = 0; i < (size_t)rows * n; i++) x0[i] = x[i] = (float)spq_rng_normal(&r);
        spq_had_apply(&p, x, rows, 0, 1);
        for (int k = 0; k < rows; k++) {
            double a = 0, b = 0;
            for (int i = 0; i < n; i++) {
                a += (double)x0[(size_t)k * n + i] * x0[(size_t)k * n + i];
                b += (double)x[(size_t)k * n + i] * x[(size_t)k * n + i];
            }
            cr_assert(fabs(sqrt(a) - sqrt(b)) < 1e-5 * sqrt(a), "n %d row %d: |x| %g -> %g", n, k, sqrt(a), sqrt(b));
        }
        /* one row against the dense definition from entries, on sampled outputs */
        for (int t = 0; t < 8; t++) {
            int i = (int)(spq_rng_u64(&r) % (uint64_t)n), k = t * 20;
            double y = 0;
            for (int l = 0; l < n; l++) y += spq_had_entry(&p, i, l) * (double)x0[(size_t)k * n + l];
            y /= sqrt(n);
            cr_assert(fabs(x[(size_t)k * n + i] - y) < 1e-4, "n %d row %d i %d: %g vs %g", n, k, i,
                      x[(size_t)k * n + i], y);
        }
        spq_had_apply(&p, x, rows, 1, 1);
        for (size_t i = 0; i < (size_t)rows * n; i++)
            cr_assert(fabsf(x[i] - x0[i]) < 1e-5f * (1 + fabsf(x0[i])), "n %d: H^T H x != x at %zu", n, i);
        free(x); free(x0);
        spq_had_free(&p);
    }
}
