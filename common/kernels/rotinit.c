/* rotinit.c - identity, random Hadamard and Haar random rotations; the
 * row orthonormalization goes through LAPACK's Householder QR (Fortran symbols
 * from OpenBLAS/liblapack, no LAPACKE needed). */
#include "rotinit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hadamard.h"

void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work, const int *lwork,
             int *info);
void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau, double *work,
             const int *lwork, int *info);

void spq_rotinit_identity(double *R, int n) {
    memset(R, 0, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++) R[(size_t)i * n + i] = 1.0;
}

int spq_orthonormalize_rows(double *A, int n, spq_err *err) {
    if (n < 1) return spq_fail(err, "orthonormalize: size %d must be positive", n);
    /* column-major, A's memory is B = A^T; B = Q_B R_B, A = R_B^T Q_B^T, and
     * Q_B read back row-major is Q_B^T: the rows we want */
    double *tau = spq_malloc((size_t)n * sizeof(double)), *diag = spq_malloc((size_t)n * sizeof(double));
    double wq;
    int lwork = -1, info = 0;
    dgeqrf_(&n, &n, A, &n, tau, &wq, &lwork, &info);
    if (info == 0) {
        int l2 = -1;
        double wq2;
        dorgqr_(&n, &n, &n, A, &n, tau, &wq2, &l2, &info);
        lwork = (int)(wq > wq2 ? wq : wq2);
        if (lwork < n) lwork = n;
    }
    double *work = NULL;
    if (info == 0) {
        work = spq_malloc((size_t)lwork * sizeof(double));
        dgeqrf_(&n, &n, A, &n, tau, work, &lwork, &info);
    }
    if (info == 0) {
        for (int i = 0; i < n; i++) diag[i] = A[(size_t)i * n + i];
        dorgqr_(&n, &n, &n, A, &n, tau, work, &lwork, &info);
    }
    if (info == 0)
        for (int i = 0; i < n; i++)
            if (diag[i] < 0)
                for (int j = 0; j < n; j++) A[(size_t)i * n + j] = -A[(size_t)i * n + j];
    free(work);
    free(tau);
    free(diag);
    if (info != 0) return spq_fail(err, "orthonormalize: LAPACK QR failed (info %d) for size %d", info, n);
    return 0;
}

int spq_rotinit_random(double *R, int n, uint64_t seed, spq_err *err) {
    if (n < 1) return spq_fail(err, "random rotation: size %d must be positive", n);
    spq_rng rng;
    spq_rng_seed(&rng, seed);
    size_t nn = (size_t)n * n;
    for (size_t i = 0; i < nn; i++) R[i] = spq_rng_normal(&rng);
    return spq_orthonormalize_rows(R, n, err);
}

int spq_rotinit_hadamard(double *R, int n, uint64_t seed, int *is_hadamard, spq_err *err) {
    if (n < 1) return spq_fail(err, "hadamard rotation: size %d must be positive", n);
    if (is_hadamard) *is_hadamard = 0;
    if (!spq_had_possible(n)) return spq_rotinit_random(R, n, seed, err);
    spq_had_plan p;
    if (spq_had_build(&p, n, err)) return -1;
    spq_rng rng;
    spq_rng_seed(&rng, seed);
    memset(R, 0, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++) R[(size_t)i * n + i] = (spq_rng_u64(&rng) >> 63) ? -1.0 : 1.0;
    spq_had_apply_f64(&p, R, n, 0, 1);
    spq_had_free(&p);
    if (is_hadamard) *is_hadamard = 1;
    return 0;
}
