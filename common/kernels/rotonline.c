/* rotonline.c - an online rotation is a Hadamard plan or a dense matrix;
 * the dense case is one gemm per call, X <- X Q^T (or X Q for the transpose). */
#include "rotonline.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rotinit.h"

static void set_dense(spq_rot_online *r, int n) {
    size_t nn = (size_t)n * n;
    r->Qf = spq_malloc(nn * sizeof(float));
    for (size_t i = 0; i < nn; i++) r->Qf[i] = (float)r->Q[i];
}

int spq_rot_online_build(spq_rot_online *r, int n, uint64_t seed, spq_err *err) {
    memset(r, 0, sizeof *r);
    if (n < 1) return spq_fail(err, "online rotation: size %d must be positive", n);
    r->n = n;
    if (spq_had_possible(n)) {
        if (spq_had_build(&r->had, n, err)) return -1;
        r->is_hadamard = 1;
        return 0;
    }
    r->Q = spq_malloc((size_t)n * n * sizeof(double));
    if (spq_rotinit_random(r->Q, n, seed, err)) {
        spq_rot_online_free(r);
        return -1;
    }
    set_dense(r, n);
    return 0;
}

int spq_rot_online_build_dense(spq_rot_online *r, const double *Q, int n, spq_err *err) {
    memset(r, 0, sizeof *r);
    if (n < 1) return spq_fail(err, "online rotation: size %d must be positive", n);
    size_t nn = (size_t)n * n;
    double *G = spq_malloc(nn * sizeof(double));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, Q, n, Q, n, 0.0, G, n);
    double worst = 0;
    int wi = 0, wj = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double e = fabs(G[(size_t)i * n + j] - (i == j));
            if (isnan(e)) e = INFINITY;
            if (e > worst) { worst = e; wi = i; wj = j; }
        }
    free(G);
    if (!(worst <= 1e-5))
        return spq_fail(err, "online rotation: the %dx%d matrix is not orthogonal: (Q Q^T)[%d][%d] is off by %g", n, n,
                        wi, wj, worst);
    r->n = n;
    r->Q = spq_malloc(nn * sizeof(double));
    memcpy(r->Q, Q, nn * sizeof(double));
    set_dense(r, n);
    return 0;
}

void spq_rot_online_free(spq_rot_online *r) {
    if (r->is_hadamard) spq_had_free(&r->had);
    free(r->Q);
    free(r->Qf);
    memset(r, 0, sizeof *r);
}

spq_rot_online *spq_rot_online_clone(const spq_rot_online *r) {
    spq_rot_online *c = spq_calloc(1, sizeof *c);
    spq_err err;
    int rc = r->is_hadamard ? spq_rot_online_build(c, r->n, 0, &err) : spq_rot_online_build_dense(c, r->Q, r->n, &err);
    if (rc) {  /* cannot happen: r was built from the same inputs */
        fprintf(stderr, "spinq: cloning an online rotation: %s\n", err.msg);
        abort();
    }
    return c;
}

static void dense_f32(const spq_rot_online *r, float *x, int rows, int transpose) {
    int n = r->n;
    float *tmp = spq_malloc((size_t)rows * n * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose ? CblasNoTrans : CblasTrans, rows, n, n, 1.0f, x, n, r->Qf, n,
                0.0f, tmp, n);
    memcpy(x, tmp, (size_t)rows * n * sizeof(float));
    free(tmp);
}

static void dense_f64(const spq_rot_online *r, double *x, int rows, int transpose) {
    int n = r->n;
    double *tmp = spq_malloc((size_t)rows * n * sizeof(double));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, transpose ? CblasNoTrans : CblasTrans, rows, n, n, 1.0, x, n, r->Q, n,
                0.0, tmp, n);
    memcpy(x, tmp, (size_t)rows * n * sizeof(double));
    free(tmp);
}

void spq_rot_online_apply(const spq_rot_online *r, float *x, int rows) {
    if (rows <= 0) return;
    if (r->is_hadamard) spq_had_apply(&r->had, x, rows, 0, 1);
    else dense_f32(r, x, rows, 0);
}

void spq_rot_online_apply_t(const spq_rot_online *r, float *x, int rows) {
    if (rows <= 0) return;
    if (r->is_hadamard) spq_had_apply(&r->had, x, rows, 1, 1);
    else dense_f32(r, x, rows, 1);
}

void spq_rot_online_apply_f64(const spq_rot_online *r, double *x, int rows) {
    if (rows <= 0) return;
    if (r->is_hadamard) spq_had_apply_f64(&r->had, x, rows, 0, 1);
    else dense_f64(r, x, rows, 0);
}

void spq_rot_online_apply_t_f64(const spq_rot_online *r, double *x, int rows) {
    if (rows <= 0) return;
    if (r->is_hadamard) spq_had_apply_f64(&r->had, x, rows, 1, 1);
    else dense_f64(r, x, rows, 1);
}

void spq_rot_online_matrix(double *M, const spq_rot_online *r) {
    int n = r->n;
    if (!r->is_hadamard) {
        memcpy(M, r->Q, (size_t)n * n * sizeof(double));
        return;
    }
    double s = 1.0 / sqrt((double)n);
    for (int i = 0; i < n; i++)
        for (int l = 0; l < n; l++) M[(size_t)i * n + l] = s * spq_had_entry(&r->had, i, l);
}
