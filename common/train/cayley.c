/* cayley.c - the SGDG step in fp64 with BLAS, its orthogonality safeguard, the
 * cosine schedule and gradient clipping; see cayley.h. */
#include "cayley.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/kernels/rotinit.h"

/* E (n, n) <- X^T X - I; returns max |E|, *fro the Frobenius norm */
static double gram_error(double *E, const double *X, int n, double *fro) {
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0, X, n, X, n, 0.0, E, n);
    double mx = 0, f = 0;
    for (int i = 0; i < n; i++) {
        E[(size_t)i * n + i] -= 1.0;
        for (int j = 0; j < n; j++) {
            double e = fabs(E[(size_t)i * n + j]);
            if (!(e <= mx)) mx = e; /* NaN wins */
            f += e * e;
        }
    }
    if (fro) *fro = sqrt(f);
    return mx;
}

double spq_cayley_orth_error(const double *X, int n) {
    double *E = spq_malloc((size_t)n * n * sizeof(double));
    double e = gram_error(E, X, n, NULL);
    free(E);
    return e;
}

static void transpose(double *T, const double *A, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) T[(size_t)j * n + i] = A[(size_t)i * n + j];
}

/* Newton-Schulz towards the polar factor, X <- X (3I - X^T X) / 2, i.e.
 * X <- 1.5 X - 0.5 X E' with E' = X^T X. Converges when the singular values
 * are in (0, sqrt 3); the caller ensures ||X^T X - I||_F < 0.5. */
static double polar_polish(double *X, double *E, double *T, int n) {
    double fro, e = gram_error(E, X, n, &fro);
    for (int it = 0; it < 30 && e > 1e-14; it++) {
        /* E = X^T X - I: X (I - E/2) = X - X E / 2 */
        memcpy(T, X, (size_t)n * n * sizeof(double));
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, -0.5, T, n, E, n, 1.0, X, n);
        double prev = e;
        e = gram_error(E, X, n, &fro);
        if (!(e < prev)) break; /* at rounding level */
    }
    return e;
}

int spq_cayley_step(double *X, const float *G, int n, double lr, spq_cayley_info *info, spq_err *err) {
    size_t nn = (size_t)n * n;
    if (n < 1) return spq_fail(err, "cayley: size %d must be positive", n);
    for (size_t i = 0; i < nn; i++)
        if (!isfinite(G[i])) return spq_fail(err, "cayley: gradient entry %zu of the %dx%d rotation is %g", i, n, n,
                                             (double)G[i]);
    double *Gd = spq_malloc(nn * sizeof(double)), *W = spq_malloc(nn * sizeof(double));
    double *Xt = spq_malloc(nn * sizeof(double)), *Y = spq_malloc(nn * sizeof(double));
    double *T = spq_malloc(nn * sizeof(double));
    for (size_t i = 0; i < nn; i++) Gd[i] = G[i];

    /* W = (X^T G - G^T X) / 2 = (A - A^T) / 2 with A = X^T G */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0, X, n, Gd, n, 0.0, T, n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) W[(size_t)i * n + j] = 0.5 * (T[(size_t)i * n + j] - T[(size_t)j * n + i]);
    double norm1 = 0;
    for (int j = 0; j < n; j++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += fabs(W[(size_t)i * n + j]);
        if (s > norm1) norm1 = s;
    }
    double alpha = fmin(lr, 1.0 / (norm1 + 1e-8));

    /* Y0 = X^T - a G^T; Y <- X^T + (a/2) W (X^T + Y), five times */
    transpose(Xt, X, n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) Y[(size_t)i * n + j] = Xt[(size_t)i * n + j] - alpha * Gd[(size_t)j * n + i];
    for (int it = 0; it < 5; it++) {
        for (size_t i = 0; i < nn; i++) T[i] = Xt[i] + Y[i];
        memcpy(Y, Xt, nn * sizeof(double));
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 0.5 * alpha, W, n, T, n, 1.0, Y, n);
    }
    transpose(T, Y, n); /* T = the new X */

    double fro, raw = gram_error(W, T, n, &fro); /* W is free now: scratch */
    int retraction = 0, rc = 0;
    double e = raw;
    if (raw > 1e-10) {
        retraction = 1;
        if (!(fro < 0.5)) {
            retraction = 2;
            rc = spq_orthonormalize_rows(T, n, err);
        }
        if (rc == 0) e = polar_polish(T, W, Y, n);
    }
    if (rc == 0) memcpy(X, T, nn * sizeof(double));
    if (info) {
        info->alpha = alpha;
        info->w_norm1 = norm1;
        info->orth_raw = raw;
        info->orth = e;
        info->retraction = retraction;
    }
    free(Gd); free(W); free(Xt); free(Y); free(T);
    return rc ? spq_fail_prefix(err, "cayley retraction: ") : 0;
}

double spq_lr_cosine(double lr, int t, int T) {
    if (T < 1) T = 1;
    if (t < 0) t = 0;
    if (t > T) t = T;
    return lr * 0.5 * (1.0 + cos(M_PI * (double)t / (double)T));
}

double spq_clip_grad_norm(float *const *grads, const size_t *sizes, int count, double max_norm) {
    double ss = 0;
    for (int k = 0; k < count; k++)
        for (size_t i = 0; i < sizes[k]; i++) ss += (double)grads[k][i] * grads[k][i];
    double total = sqrt(ss);
    if (!isfinite(total)) return total;
    double coef = max_norm / (total + 1e-6);
    if (coef < 1.0)
        for (int k = 0; k < count; k++)
            for (size_t i = 0; i < sizes[k]; i++) grads[k][i] = (float)(grads[k][i] * coef);
    return total;
}
