/* test_cayley.c - the SGDG step: orthogonality over many steps, the exact
 * Cayley transform (LAPACK solve) as the fixed point, the first-order direction
 * -a X W, descent to the known optimum of two objectives on SO(n), the step
 * size rule, a zero gradient; the cosine schedule and gradient clipping. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include <cblas.h>

#include "common/kernels/rotinit.h"
#include "common/train/cayley.h"

void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b, const int *ldb, int *info);

static void random_grad(float *G, int n, double scale, spq_rng *r) {
    for (int i = 0; i < n * n; i++) G[i] = (float)(scale * spq_rng_normal(r));
}

/* the reference's setting: cosine lr from 1.5, gradients clipped to norm 1;
 * and raw large gradients, where every step takes a = 1/||W||_1 */
static void orthogonal_after(int n, int steps, int clipped) {
    double *X = malloc((size_t)n * n * sizeof(double));
    float *G = malloc((size_t)n * n * sizeof(float));
    cr_assert_eq(spq_rotinit_random(X, n, 1, NULL), 0);
    spq_rng r;
    spq_rng_seed(&r, (uint64_t)n);
    for (int t = 0; t < steps; t++) {
        random_grad(G, n, clipped ? 1 : 100, &r);
        if (clipped) {
            size_t sz = (size_t)n * n;
            spq_clip_grad_norm(&G, &sz, 1, 1.0);
        }
        spq_cayley_info info;
        double lr = spq_lr_cosine(1.5, t, steps);
        cr_assert_eq(spq_cayley_step(X, G, n, lr, &info, NULL), 0);
        cr_assert_lt(info.orth, 1e-9, "n %d step %d: orth %g", n, t, info.orth);
        cr_assert_eq(info.alpha, fmin(lr, 1 / (info.w_norm1 + 1e-8)));
        if (!clipped && t < steps / 2) cr_assert_lt(info.alpha, lr, "large gradients: a = 1/||W||_1");
    }
    double e = spq_cayley_orth_error(X, n);
    cr_assert_lt(e, 1e-5, "n %d: max |X^T X - I| = %g after %d steps", n, e, steps);
    /* the fp32 copy the model uses is orthogonal too */
    double ef = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += (double)(float)X[k * n + i] * (float)X[k * n + j];
            ef = fmax(ef, fabs(s - (i == j)));
        }
    cr_assert_lt(ef, 1e-5, "n %d: fp32 copy off by %g", n, ef);
    free(X); free(G);
}

Test(cayley, orthogonal_after_1000_steps_n8) { orthogonal_after(8, 1000, 1); orthogonal_after(8, 1000, 0); }
Test(cayley, orthogonal_after_1000_steps_n64) { orthogonal_after(64, 1000, 1); orthogonal_after(64, 1000, 0); }
Test(cayley, orthogonal_after_1000_steps_n128, .timeout = 120) { orthogonal_after(128, 1000, 1); }
/* 256: dgemm-bound, ~10 ms a step; fewer steps */
Test(cayley, orthogonal_after_150_steps_n256, .timeout = 120) { orthogonal_after(256, 150, 0); }

/* (I - aW/2) Y* = (I + aW/2) X^T with W, a recomputed here from the
 * definitions; the five iterations get within (a ||W|| / 2)^5 of it */
Test(cayley, step_is_the_cayley_transform) {
    int n = 16;
    double X[256], X0[256], W[256], A[256], B[256];
    float G[256];
    int ipiv[16], info_l;
    spq_rng r;
    spq_rng_seed(&r, 3);
    cr_assert_eq(spq_rotinit_random(X, n, 5, NULL), 0);
    memcpy(X0, X, sizeof X);
    random_grad(G, n, 0.05, &r);
    double lr = 0.1;
    spq_cayley_info info;
    cr_assert_eq(spq_cayley_step(X, G, n, lr, &info, NULL), 0);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += X0[k * n + i] * G[k * n + j] - G[k * n + i] * X0[k * n + j];
            W[i * n + j] = 0.5 * s; /* (X^T G - G^T X) / 2 */
        }
    double norm1 = 0;
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += fabs(W[i * n + j]);
        norm1 = fmax(norm1, s);
    }
    double a = fmin(lr, 1 / (norm1 + 1e-8));
    cr_assert_float_eq(info.alpha, a, 1e-15);
    cr_assert_float_eq(info.w_norm1, norm1, 1e-12);
    cr_assert_eq(info.alpha, lr, "this case is meant to use a = lr");
    /* column-major solve: A = (I - aW/2)^T read row-major..., so build in column-major directly */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            A[j * n + i] = (i == j) - 0.5 * a * W[i * n + j]; /* A(i,j) */
            double s = X0[j * n + i];                           /* (X^T)(i,j) */
            for (int k = 0; k < n; k++) s += 0.5 * a * W[i * n + k] * X0[j * n + k];
            B[j * n + i] = s; /* ((I + aW/2) X^T)(i,j) */
        }
    dgesv_(&n, &n, A, &n, ipiv, B, &n, &info_l);
    cr_assert_eq(info_l, 0);
    /* B(i,j) = Y*(i,j); X_new = Y*^T: X_new[i][j] = Y*(j,i) = B[i * n + j] */
    double c = 0.5 * a * norm1, tol = 10 * pow(c, 5) * (1 + a * 16) + 1e-12;
    for (int i = 0; i < n * n; i++) cr_assert(fabs(X[i] - B[i]) < tol, "entry %d: %g vs %g (tol %g)", i, X[i], B[i], tol);
}

/* a tiny step: (X_new - X) / a -> -X W, W = (X^T G - G^T X) / 2 */
Test(cayley, first_order_direction) {
    int n = 12;
    double X[144], X0[144];
    float G[144];
    spq_rng r;
    spq_rng_seed(&r, 9);
    cr_assert_eq(spq_rotinit_random(X, n, 2, NULL), 0);
    memcpy(X0, X, sizeof X);
    random_grad(G, n, 1, &r);
    double a = 1e-6;
    spq_cayley_info info;
    cr_assert_eq(spq_cayley_step(X, G, n, a, &info, NULL), 0);
    cr_assert_eq(info.alpha, a);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            /* (X W)[i][j] = sum_k X[i][k] W[k][j] */
            double xw = 0;
            for (int k = 0; k < n; k++) {
                double w = 0;
                for (int m = 0; m < n; m++) w += X0[m * n + k] * G[m * n + j] - G[m * n + k] * X0[m * n + j];
                xw += X0[i * n + k] * 0.5 * w;
            }
            double d = (X[i * n + j] - X0[i * n + j]) / a;
            cr_assert(fabs(d + xw) < 1e-4 * (1 + fabs(xw)), "[%d][%d]: %g vs %g", i, j, d, -xw);
        }
}

Test(cayley, zero_gradient_leaves_x_unchanged) {
    int n = 10;
    double X[100], X0[100];
    float G[100] = {0};
    cr_assert_eq(spq_rotinit_random(X, n, 4, NULL), 0);
    memcpy(X0, X, sizeof X);
    spq_cayley_info info;
    cr_assert_eq(spq_cayley_step(X, G, n, 1.5, &info, NULL), 0);
    cr_assert_eq(memcmp(X, X0, sizeof X), 0);
    cr_assert_eq(info.alpha, 1.5);
    cr_assert_eq(info.retraction, 0);
}

/* a rotation in SO(n): a product of Givens rotations with angles in (-0.9, 0.9) */
static void givens_target(double *A, int n, spq_rng *r) {
    spq_rotinit_identity(A, n);
    for (int t = 0; t < 3 * n; t++) {
        int p = (int)(spq_rng_u64(r) % (uint64_t)n), q = (int)(spq_rng_u64(r) % (uint64_t)n);
        if (p == q) continue;
        double th = 0.9 * (2 * spq_rng_uniform(r) - 1), c = cos(th), s = sin(th);
        for (int j = 0; j < n; j++) {
            double a = A[p * n + j], b = A[q * n + j];
            A[p * n + j] = c * a - s * b;
            A[q * n + j] = s * a + c * b;
        }
    }
}

/* f(X) = ||X - A||_F^2, optimum 0 at X = A; from X = I (same component) */
Test(cayley, descends_to_a_target_rotation) {
    int n = 24;
    double *X = malloc(n * n * sizeof(double)), *A = malloc(n * n * sizeof(double));
    float *G = malloc(n * n * sizeof(float));
    spq_rng r;
    spq_rng_seed(&r, 21);
    givens_target(A, n, &r);
    spq_rotinit_identity(X, n);
    double prev = INFINITY;
    for (int t = 0; t < 150; t++) {
        double f = 0;
        for (int i = 0; i < n * n; i++) {
            double d = X[i] - A[i];
            f += d * d;
            G[i] = (float)(2 * d);
        }
        cr_assert_leq(f, prev * (1 + 1e-9) + 1e-12, "step %d: loss %g after %g", t, f, prev);
        prev = f;
        cr_assert_eq(spq_cayley_step(X, G, n, 0.1, NULL, NULL), 0);
    }
    double f = 0;
    for (int i = 0; i < n * n; i++) f += (X[i] - A[i]) * (X[i] - A[i]);
    cr_assert_lt(f, 1e-9, "final loss %g", f); /* fp32 gradients: ~1e-7 error per entry at the end */
    free(X); free(A); free(G);
}

/* f(X) = ||X B - C||_F^2 with C = A B: orthogonal Procrustes, unique optimum X = A */
Test(cayley, descends_on_procrustes) {
    int n = 16, m = 64;
    double *X = malloc(n * n * sizeof(double)), *A = malloc(n * n * sizeof(double));
    double *B = malloc(n * m * sizeof(double)), *C = malloc(n * m * sizeof(double)), *Rz = malloc(n * m * sizeof(double));
    double *Gd = malloc(n * n * sizeof(double));
    float *G = malloc(n * n * sizeof(float));
    spq_rng r;
    spq_rng_seed(&r, 33);
    givens_target(A, n, &r);
    for (int i = 0; i < n * m; i++) B[i] = spq_rng_normal(&r) / sqrt(m);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, n, 1.0, A, n, B, m, 0.0, C, m);
    spq_rotinit_identity(X, n);
    double prev = INFINITY, f0 = 0;
    for (int t = 0; t < 300; t++) {
        memcpy(Rz, C, n * m * sizeof(double));
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, n, 1.0, X, n, B, m, -1.0, Rz, m); /* XB - C */
        double f = 0;
        for (int i = 0; i < n * m; i++) f += Rz[i] * Rz[i];
        if (t == 0) f0 = f;
        cr_assert_leq(f, prev * (1 + 1e-9) + 1e-12, "step %d: %g after %g", t, f, prev);
        prev = f;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, m, 2.0, Rz, m, B, m, 0.0, Gd, n); /* 2 (XB - C) B^T */
        for (int i = 0; i < n * n; i++) G[i] = (float)Gd[i];
        cr_assert_eq(spq_cayley_step(X, G, n, 0.3, NULL, NULL), 0);
    }
    cr_assert_lt(prev, 1e-8 * f0, "loss %g from %g", prev, f0);
    double dx = 0;
    for (int i = 0; i < n * n; i++) dx = fmax(dx, fabs(X[i] - A[i]));
    cr_assert_lt(dx, 1e-4, "max |X - A| = %g", dx);
    free(X); free(A); free(B); free(C); free(Rz); free(Gd); free(G);
}

Test(cayley, non_finite_gradient_is_an_error) {
    int n = 3;
    double X[9], X0[9];
    float G[9] = {0, 0, 0, 0, NAN, 0, 0, 0, 0};
    spq_rotinit_identity(X, n);
    memcpy(X0, X, sizeof X);
    spq_err err = {{0}};
    cr_assert_eq(spq_cayley_step(X, G, n, 1, NULL, &err), -1);
    cr_assert(strstr(err.msg, "gradient entry 4") != NULL, "%s", err.msg);
    cr_assert_eq(memcmp(X, X0, sizeof X), 0);
}

Test(cayley, cosine_schedule_values) {
    cr_assert_float_eq(spq_lr_cosine(1.5, 0, 100), 1.5, 1e-15);
    cr_assert_float_eq(spq_lr_cosine(1.5, 50, 100), 0.75, 1e-15);
    cr_assert_float_eq(spq_lr_cosine(1.5, 25, 100), 1.5 * (1 + sqrt(0.5)) / 2, 1e-15); /* 1.280330... */
    cr_assert_float_eq(spq_lr_cosine(1.5, 75, 100), 1.5 * (1 - sqrt(0.5)) / 2, 1e-15);
    cr_assert_float_eq(spq_lr_cosine(1.5, 99, 100), 3.7007e-4, 1e-8);
    cr_assert_float_eq(spq_lr_cosine(1.5, 100, 100), 0, 1e-15);
    cr_assert_float_eq(spq_lr_cosine(1.5, 200, 100), 0, 1e-15); /* clamped */
    cr_assert_float_eq(spq_lr_cosine(2, 0, 0), 2, 1e-15);
}

Test(cayley, gradient_norm_clipping_across_tensors) {
    float a[2] = {3, 0}, b[1] = {4};
    float *g[2] = {a, b};
    size_t sz[2] = {2, 1};
    double total = spq_clip_grad_norm(g, sz, 2, 1.0);
    cr_assert_float_eq(total, 5.0, 1e-12);
    double c = 1.0 / (5 + 1e-6);
    cr_assert_float_eq(a[0], 3 * c, 1e-7);
    cr_assert_float_eq(b[0], 4 * c, 1e-7);
    /* under the limit: untouched */
    float s[2] = {0.3f, 0.4f};
    float *gs[1] = {s};
    size_t ss[1] = {2};
    cr_assert_float_eq(spq_clip_grad_norm(gs, ss, 1, 1.0), 0.5, 1e-7);
    cr_assert_eq(s[0], 0.3f);
    cr_assert_eq(s[1], 0.4f);
    /* non-finite: reported, untouched */
    float nf[2] = {INFINITY, 1};
    float *gn[1] = {nf};
    cr_assert(!isfinite(spq_clip_grad_norm(gn, ss, 1, 1.0)));
    cr_assert_eq(nf[1], 1.0f);
}
