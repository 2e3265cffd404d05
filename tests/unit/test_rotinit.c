/* test_rotinit.c - identity, Haar random orthogonal (against Gram-Schmidt,
 * reproducibility, the distribution), random Hadamard (structure, signs). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include <cblas.h>

#include "common/kernels/hadamard.h"
#include "common/kernels/rotinit.h"

static double orth_err(const double *R, int n) {
    double *G = malloc((size_t)n * n * sizeof(double)), e = 0;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, R, n, R, n, 0.0, G, n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) e = fmax(e, fabs(G[i * n + j] - (i == j)));
    free(G);
    return e;
}

Test(rotinit, identity) {
    double R[9];
    spq_rotinit_identity(R, 3);
    for (int i = 0; i < 9; i++) cr_assert_eq(R[i], i % 4 == 0 ? 1.0 : 0.0);
}

/* modified Gram-Schmidt on rows: the independent definition */
Test(rotinit, orthonormalize_rows_is_gram_schmidt) {
    int n = 20;
    spq_rng r;
    spq_rng_seed(&r, 5);
    double A[400], B[400];
    for (int i = 0; i < n * n; i++) A[i] = B[i] = spq_rng_normal(&r);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) {
            double d = 0;
            for (int k = 0; k < n; k++) d += B[i * n + k] * B[j * n + k];
            for (int k = 0; k < n; k++) B[i * n + k] -= d * B[j * n + k];
        }
        double s = 0;
        for (int k = 0; k < n; k++) s += B[i * n + k] * B[i * n + k];
        for (int k = 0; k < n; k++) B[i * n + k] /= sqrt(s);
    }
    cr_assert_eq(spq_orthonormalize_rows(A, n, NULL), 0);
    for (int i = 0; i < n * n; i++) cr_assert(fabs(A[i] - B[i]) < 1e-10, "entry %d: %g vs %g", i, A[i], B[i]);
}

Test(rotinit, random_is_orthogonal_reproducible_and_lq_of_the_gaussian) {
    int n = 96;
    size_t nn = (size_t)n * n;
    double *R = malloc(nn * sizeof(double)), *R2 = malloc(nn * sizeof(double)), *A = malloc(nn * sizeof(double));
    double *L = malloc(nn * sizeof(double));
    cr_assert_eq(spq_rotinit_random(R, n, 42, NULL), 0);
    cr_assert_lt(orth_err(R, n), 1e-13);
    cr_assert_eq(spq_rotinit_random(R2, n, 42, NULL), 0);
    cr_assert_eq(memcmp(R, R2, nn * sizeof(double)), 0, "same seed, different matrix");
    cr_assert_eq(spq_rotinit_random(R2, n, 43, NULL), 0);
    cr_assert_neq(memcmp(R, R2, nn * sizeof(double)), 0);
    /* the documented draw order: A row-major normals; A = L R with L lower
     * triangular, positive diagonal */
    spq_rng r;
    spq_rng_seed(&r, 42);
    for (size_t i = 0; i < nn; i++) A[i] = spq_rng_normal(&r);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, A, n, R, n, 0.0, L, n);
    for (int i = 0; i < n; i++) {
        cr_assert_gt(L[i * n + i], 0, "diag %d", i);
        for (int j = i + 1; j < n; j++) cr_assert(fabs(L[i * n + j]) < 1e-11, "L[%d][%d] = %g", i, j, L[i * n + j]);
    }
    free(R); free(R2); free(A); free(L);
}

/* Haar on O(3): every entry is uniform on [-1, 1] (a coordinate of a uniform
 * point on the 2-sphere), E[trace] = 0, E[trace^2] = 1, det = +-1 equally
 * often. Without the sign fix the Householder signs bias these. */
Test(rotinit, random_is_haar_in_distribution) {
    int n = 3, S = 6000;
    int bins[9][4] = {{0}};
    double tr = 0, tr2 = 0, det = 0;
    for (int s = 0; s < S; s++) {
        double R[9];
        cr_assert_eq(spq_rotinit_random(R, n, (uint64_t)s, NULL), 0);
        for (int e = 0; e < 9; e++) {
            int b = (int)((R[e] + 1) * 2);
            bins[e][b > 3 ? 3 : b]++;
        }
        double t = R[0] + R[4] + R[8];
        tr += t;
        tr2 += t * t;
        det += R[0] * (R[4] * R[8] - R[5] * R[7]) - R[1] * (R[3] * R[8] - R[5] * R[6]) +
               R[2] * (R[3] * R[7] - R[4] * R[6]);
    }
    /* bin counts ~ Binomial(S, 1/4): sd = 33.5; allow 5 sd */
    for (int e = 0; e < 9; e++)
        for (int b = 0; b < 4; b++)
            cr_assert(abs(bins[e][b] - S / 4) < 170, "entry %d bin %d: %d of %d", e, b, bins[e][b], S);
    cr_assert(fabs(tr / S) < 5 / sqrt(S), "mean trace %g", tr / S);
    cr_assert(fabs(tr2 / S - 1) < 0.1, "mean trace^2 %g", tr2 / S);
    cr_assert(fabs(det / S) < 5 / sqrt(S), "mean det %g", det / S);
}

Test(rotinit, hadamard_structure) {
    int sizes[] = {64, 12, 20, 28, 256};
    for (int t = 0; t < 5; t++) {
        int n = sizes[t];
        size_t nn = (size_t)n * n;
        double *R = malloc(nn * sizeof(double)), *R2 = malloc(nn * sizeof(double)), *M = malloc(nn * sizeof(double));
        double *D = malloc(nn * sizeof(double));
        int8_t *H = malloc(nn);
        int is_had = -1;
        cr_assert_eq(spq_rotinit_hadamard(R, n, 9, &is_had, NULL), 0);
        cr_assert_eq(is_had, 1);
        cr_assert_lt(orth_err(R, n), 1e-13);
        for (size_t i = 0; i < nn; i++) cr_assert(fabs(fabs(R[i]) * sqrt(n) - 1) < 1e-13, "n %d entry %zu", n, i);
        cr_assert_eq(spq_rotinit_hadamard(R2, n, 9, NULL, NULL), 0);
        cr_assert_eq(memcmp(R, R2, nn * sizeof(double)), 0);
        /* R = D H^T / sqrt(n): R (H / sqrt(n)) = D, diagonal, signs from the rng's top bits */
        spq_had_plan p;
        cr_assert_eq(spq_had_build(&p, n, NULL), 0);
        spq_had_dense(H, &p);
        for (size_t i = 0; i < nn; i++) M[i] = H[i] / sqrt(n);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, R, n, M, n, 0.0, D, n);
        spq_rng r;
        spq_rng_seed(&r, 9);
        int neg = 0;
        for (int i = 0; i < n; i++) {
            double d = (spq_rng_u64(&r) >> 63) ? -1.0 : 1.0;
            neg += d < 0;
            for (int j = 0; j < n; j++)
                cr_assert(fabs(D[i * n + j] - (i == j ? d : 0)) < 1e-12, "n %d D[%d][%d] = %g", n, i, j, D[i * n + j]);
        }
        if (n >= 64) cr_assert(neg > n / 4 && neg < 3 * n / 4, "n %d: %d negative signs", n, neg);
        spq_had_free(&p);
        free(R); free(R2); free(M); free(D); free(H);
    }
}

Test(rotinit, hadamard_falls_back_to_random_for_172) {
    int n = 172;
    size_t nn = (size_t)n * n;
    double *R = malloc(nn * sizeof(double)), *R2 = malloc(nn * sizeof(double));
    int is_had = -1;
    cr_assert_eq(spq_rotinit_hadamard(R, n, 3, &is_had, NULL), 0);
    cr_assert_eq(is_had, 0);
    cr_assert_eq(spq_rotinit_random(R2, n, 3, NULL), 0);
    cr_assert_eq(memcmp(R, R2, nn * sizeof(double)), 0);
    cr_assert_lt(orth_err(R, n), 1e-13);
    free(R); free(R2);
}

Test(rotinit, bad_size_is_an_error) {
    spq_err err = {{0}};
    double R[1];
    cr_assert_eq(spq_rotinit_random(R, 0, 1, &err), -1);
    cr_assert(strstr(err.msg, "size 0") != NULL, "%s", err.msg);
    cr_assert_eq(spq_rotinit_hadamard(R, -3, 1, NULL, &err), -1);
}
