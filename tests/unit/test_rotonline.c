/* test_rotonline.c - online rotations: Hadamard or dense fallback, apply and
 * its transpose against the matrix form, folding into a weight keeps x W^T,
 * bad dense matrices are rejected. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "common/kernels/rotinit.h"
#include "common/kernels/rotonline.h"

/* y (rows, n) = x M^T or x M, fp64 reference */
static void ref_apply(double *y, const double *x, const double *M, int rows, int n, int transpose) {
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < n; i++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += (transpose ? M[j * n + i] : M[i * n + j]) * x[r * n + j];
            y[r * n + i] = s;
        }
}

static void check_apply(const spq_rot_online *ro, int n) {
    int rows = 5;
    spq_rng r;
    spq_rng_seed(&r, 2);
    double *M = malloc((size_t)n * n * sizeof(double)), *x = malloc((size_t)rows * n * sizeof(double));
    double *y = malloc((size_t)rows * n * sizeof(double)), *xd = malloc((size_t)rows * n * sizeof(double));
    float *xf = malloc((size_t)rows * n * sizeof(float));
    spq_rot_online_matrix(M, ro);
    for (int i = 0; i < rows * n; i++) x[i] = (float)spq_rng_normal(&r);
    for (int t = 0; t < 2; t++) {
        ref_apply(y, x, M, rows, n, t);
        for (int i = 0; i < rows * n; i++) xd[i] = xf[i] = (float)x[i];
        if (t) {
            spq_rot_online_apply_t(ro, xf, rows);
            spq_rot_online_apply_t_f64(ro, xd, rows);
        } else {
            spq_rot_online_apply(ro, xf, rows);
            spq_rot_online_apply_f64(ro, xd, rows);
        }
        for (int i = 0; i < rows * n; i++) {
            cr_assert(fabs(xd[i] - y[i]) < 1e-12, "n %d t %d i %d: %g vs %g", n, t, i, xd[i], y[i]);
            cr_assert(fabs(xf[i] - y[i]) < 1e-5, "n %d t %d i %d: %g vs %g", n, t, i, xf[i], y[i]);
        }
    }
    free(M); free(x); free(y); free(xd); free(xf);
}

Test(rotonline, hadamard_sizes) {
    int sizes[] = {8, 64, 28, 172 * 2 /* 344 */};
    for (int t = 0; t < 4; t++) {
        spq_rot_online ro;
        cr_assert_eq(spq_rot_online_build(&ro, sizes[t], 1, NULL), 0);
        cr_assert_eq(ro.is_hadamard, 1);
        check_apply(&ro, sizes[t]);
        spq_rot_online_free(&ro);
    }
}

Test(rotonline, dense_fallback_for_172) {
    int n = 172;
    spq_rot_online ro, ro2;
    cr_assert_eq(spq_rot_online_build(&ro, n, 77, NULL), 0);
    cr_assert_eq(ro.is_hadamard, 0);
    check_apply(&ro, n);
    /* seeded: the same matrix as spq_rotinit_random, and rebuilding from it (a checkpoint) */
    double *Q = malloc((size_t)n * n * sizeof(double));
    cr_assert_eq(spq_rotinit_random(Q, n, 77, NULL), 0);
    cr_assert_eq(memcmp(Q, ro.Q, (size_t)n * n * sizeof(double)), 0);
    cr_assert_eq(spq_rot_online_build_dense(&ro2, Q, n, NULL), 0);
    check_apply(&ro2, n);
    spq_rot_online_free(&ro);
    spq_rot_online_free(&ro2);
    free(Q);
}

/* (x M^T)(W M^T)^T = x W^T: the online transform plus the fold is a no-op */
Test(rotonline, fold_into_weight_keeps_the_product) {
    int ns[] = {172, 44};
    for (int t = 0; t < 2; t++) {
        int n = ns[t], N = 4, out = 6;
        spq_rot_online ro;
        cr_assert_eq(spq_rot_online_build(&ro, n, 5, NULL), 0);
        spq_rng r;
        spq_rng_seed(&r, 8);
        float *x = malloc((size_t)N * n * sizeof(float));
        double *W = malloc((size_t)out * n * sizeof(double)), *W0 = malloc((size_t)out * n * sizeof(double));
        double *x0 = malloc((size_t)N * n * sizeof(double));
        for (int i = 0; i < N * n; i++) x0[i] = x[i] = (float)spq_rng_normal(&r);
        for (int i = 0; i < out * n; i++) W0[i] = W[i] = spq_rng_normal(&r);
        spq_rot_online_apply(&ro, x, N);
        spq_rot_online_apply_f64(&ro, W, out);
        for (int a = 0; a < N; a++)
            for (int o = 0; o < out; o++) {
                double y = 0, y0 = 0;
                for (int i = 0; i < n; i++) {
                    y += x[a * n + i] * W[o * n + i];
                    y0 += x0[a * n + i] * W0[o * n + i];
                }
                cr_assert(fabs(y - y0) < 1e-4 * (1 + fabs(y0)), "n %d: %g vs %g", n, y, y0);
            }
        free(x); free(W); free(W0); free(x0);
        spq_rot_online_free(&ro);
    }
}

Test(rotonline, rejects_non_orthogonal_dense) {
    double Q[4] = {1, 0, 0, 1.0001};
    spq_rot_online ro;
    spq_err err = {{0}};
    cr_assert_eq(spq_rot_online_build_dense(&ro, Q, 2, &err), -1);
    cr_assert(strstr(err.msg, "not orthogonal") != NULL && strstr(err.msg, "[1][1]") != NULL, "%s", err.msg);
    double Qn[4] = {NAN, 0, 0, 1};
    cr_assert_eq(spq_rot_online_build_dense(&ro, Qn, 2, &err), -1);
    cr_assert_eq(spq_rot_online_build(&ro, 0, 1, &err), -1);
}
