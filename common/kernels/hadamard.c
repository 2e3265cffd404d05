/* hadamard.c - Sylvester and Paley Hadamard factors, the split n = M * K and
 * the fast transform X <- H_M X H_K^T on (M, K) views of each row.
 *
 * Paley I (q = 3 mod 4): with the Jacobsthal matrix Q[a][b] = chi(a - b) over
 * GF(q) (skew-symmetric because chi(-1) = -1), S = [0 1^T; -1 Q] is
 * skew-symmetric with S S^T = q I, and H = I + S has H H^T = (q+1) I.
 * Paley II (q = 1 mod 4): Q is symmetric, S = [0 1^T; 1 Q] has S^2 = q I, and
 * replacing each 0 of S by [1 -1; -1 -1] and each +-1 by +-[1 1; 1 -1] gives a
 * Hadamard matrix of order 2(q+1). The unit tests check H H^T = K I exactly. */
#include "hadamard.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gf.h"

/* ---- fast Walsh-Hadamard over the outer index: x (M, K), rows j paired ---- */

#define BUTTERFLY_BODY                                                      \
    for (int h = 1; h < M; h <<= 1)                                         \
        for (int i = 0; i < M; i += 2 * h)                                  \
            for (int j = i; j < i + h; j++) {                               \
                size_t a = (size_t)j * K, b = (size_t)(j + h) * K;          \
                for (int t = 0; t < K; t++) {                               \
                    u = x[a + t];                                           \
                    v = x[b + t];                                           \
                    x[a + t] = u + v;                                       \
                    x[b + t] = u - v;                                       \
                }                                                           \
            }

static void butterfly_f32(float *x, int M, int K) {
    float u, v;
    BUTTERFLY_BODY
}

static void butterfly_f64(double *x, int M, int K) {
    double u, v;
    BUTTERFLY_BODY
}

void spq_fwht(float *x, int n, int normalize) {
    butterfly_f32(x, n, 1);
    if (normalize) {
        float s = (float)(1.0 / sqrt((double)n));
        for (int i = 0; i < n; i++) x[i] *= s;
    }
}

void spq_fwht_f64(double *x, int n, int normalize) {
    butterfly_f64(x, n, 1);
    if (normalize) {
        double s = 1.0 / sqrt((double)n);
        for (int i = 0; i < n; i++) x[i] *= s;
    }
}

/* ---- K factors ---- */

int spq_had_factor_kind(int K, int *q) {
    int p, k;
    if (q) *q = 0;
    if (K == 1 || K == 2 || K == 4) return SPQ_HAD_SYLVESTER;
    if (K < 1 || K > SPQ_HAD_MAX_K) return SPQ_HAD_NONE;
    if (spq_gf_prime_power(K - 1, &p, &k) && (K - 1) % 4 == 3) {
        if (q) *q = K - 1;
        return SPQ_HAD_PALEY1;
    }
    if (K % 2 == 0 && spq_gf_prime_power(K / 2 - 1, &p, &k) && (K / 2 - 1) % 4 == 1) {
        if (q) *q = K / 2 - 1;
        return SPQ_HAD_PALEY2;
    }
    return SPQ_HAD_NONE;
}

/* S (q+1, q+1): the bordered Jacobsthal matrix, first column -1 (skew, Paley I)
 * or +1 (symmetric, Paley II) */
static void bordered_jacobsthal(int8_t *S, const spq_gf *f, int first_col) {
    int q = f->q, K = q + 1;
    S[0] = 0;
    for (int j = 1; j < K; j++) S[j] = 1;
    for (int i = 1; i < K; i++) {
        int8_t *row = S + (size_t)i * K;
        row[0] = (int8_t)first_col;
        for (int j = 1; j < K; j++) row[j] = (int8_t)spq_gf_chi(f, spq_gf_sub(f, i - 1, j - 1));
    }
}

int spq_had_factor(int8_t *H, int K, spq_err *err) {
    int q;
    int kind = spq_had_factor_kind(K, &q);
    if (kind == SPQ_HAD_NONE) return spq_fail(err, "hadamard: no construction for a %d x %d factor", K, K);
    if (kind == SPQ_HAD_SYLVESTER) {
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) H[i * K + j] = (__builtin_popcount(i & j) & 1) ? -1 : 1;
        return 0;
    }
    spq_gf f;
    if (spq_gf_build(&f, q, err)) return -1;
    if (kind == SPQ_HAD_PALEY1) {
        bordered_jacobsthal(H, &f, -1);
        for (int i = 0; i < K; i++) H[(size_t)i * K + i] += 1; /* H = I + S */
    } else {
        int Kq = q + 1;
        int8_t *S = spq_malloc((size_t)Kq * Kq);
        bordered_jacobsthal(S, &f, +1);
        static const int8_t zero_blk[2][2] = {{1, -1}, {-1, -1}}, one_blk[2][2] = {{1, 1}, {1, -1}};
        for (int i = 0; i < Kq; i++)
            for (int j = 0; j < Kq; j++) {
                int s = S[(size_t)i * Kq + j];
                for (int r = 0; r < 2; r++)
                    for (int c = 0; c < 2; c++)
                        H[(size_t)(2 * i + r) * K + 2 * j + c] = (int8_t)(s == 0 ? zero_blk[r][c] : s * one_blk[r][c]);
            }
        free(S);
    }
    spq_gf_free(&f);
    return 0;
}

/* ---- plans ---- */

/* the split with the largest power of two; returns K or 0 */
static int choose_K(int n) {
    if (n < 1) return 0;
    int M = n & -n; /* largest power of two dividing n */
    for (; M >= 1; M >>= 1)
        if (spq_had_factor_kind(n / M, NULL) != SPQ_HAD_NONE) return n / M;
    return 0;
}

int spq_had_possible(int n) { return choose_K(n) != 0; }

int spq_had_build(spq_had_plan *p, int n, spq_err *err) {
    memset(p, 0, sizeof *p);
    int K = choose_K(n);
    if (K == 0)
        return spq_fail(err, "hadamard: no Hadamard construction for size %d (n = K * 2^m needs K = 1, 2, 4, "
                             "q+1 with q = 3 mod 4 or 2(q+1) with q = 1 mod 4, q a prime power, K <= %d)",
                        n, SPQ_HAD_MAX_K);
    p->n = n;
    p->K = K;
    p->M = n / K;
    p->kind = spq_had_factor_kind(K, &p->q);
    if (K > 1) {
        size_t kk = (size_t)K * K;
        p->HK = spq_malloc(kk);
        if (spq_had_factor(p->HK, K, err)) {
            spq_had_free(p);
            return -1;
        }
        p->HKf = spq_malloc(kk * sizeof(float));
        p->HKd = spq_malloc(kk * sizeof(double));
        for (size_t i = 0; i < kk; i++) {
            p->HKf[i] = p->HK[i];
            p->HKd[i] = p->HK[i];
        }
    }
    return 0;
}

void spq_had_free(spq_had_plan *p) {
    free(p->HK);
    free(p->HKf);
    free(p->HKd);
    memset(p, 0, sizeof *p);
}

int spq_had_entry(const spq_had_plan *p, int i, int l) {
    int K = p->K;
    int s = (__builtin_popcount((i / K) & (l / K)) & 1) ? -1 : 1;
    return K == 1 ? s : s * p->HK[(size_t)(i % K) * K + l % K];
}

void spq_had_dense(int8_t *H, const spq_had_plan *p) {
    int n = p->n;
    for (int i = 0; i < n; i++)
        for (int l = 0; l < n; l++) H[(size_t)i * n + l] = (int8_t)spq_had_entry(p, i, l);
}

/* rows per gemm call: bounds the scratch to about 1M elements */
static int chunk_rows(int n) {
    int c = (1 << 20) / n;
    return c < 1 ? 1 : c;
}

void spq_had_apply(const spq_had_plan *p, float *x, int rows, int transpose, int normalize) {
    int n = p->n, M = p->M, K = p->K;
    if (rows <= 0) return;
    for (int r = 0; r < rows; r++) butterfly_f32(x + (size_t)r * n, M, K);
    if (K > 1) {
        /* (rows*M, K) <- (rows*M, K) H_K^T, or H_K for the transpose */
        int cr = chunk_rows(n);
        float *tmp = spq_malloc((size_t)(cr < rows ? cr : rows) * n * sizeof(float));
        for (int r0 = 0; r0 < rows; r0 += cr) {
            int nr = rows - r0 < cr ? rows - r0 : cr;
            float *xs = x + (size_t)r0 * n;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, transpose ? CblasNoTrans : CblasTrans, nr * M, K, K, 1.0f, xs,
                        K, p->HKf, K, 0.0f, tmp, K);
            memcpy(xs, tmp, (size_t)nr * n * sizeof(float));
        }
        free(tmp);
    }
    if (normalize) {
        float s = (float)(1.0 / sqrt((double)n));
        size_t total = (size_t)rows * n;
        for (size_t i = 0; i < total; i++) x[i] *= s;
    }
}

void spq_had_apply_f64(const spq_had_plan *p, double *x, int rows, int transpose, int normalize) {
    int n = p->n, M = p->M, K = p->K;
    if (rows <= 0) return;
    for (int r = 0; r < rows; r++) butterfly_f64(x + (size_t)r * n, M, K);
    if (K > 1) {
        int cr = chunk_rows(n);
        double *tmp = spq_malloc((size_t)(cr < rows ? cr : rows) * n * sizeof(double));
        for (int r0 = 0; r0 < rows; r0 += cr) {
            int nr = rows - r0 < cr ? rows - r0 : cr;
            double *xs = x + (size_t)r0 * n;
            cblas_dgemm(CblasRowMajor, CblasNoTrans, transpose ? CblasNoTrans : CblasTrans, nr * M, K, K, 1.0, xs, K,
                        p->HKd, K, 0.0, tmp, K);
            memcpy(xs, tmp, (size_t)nr * n * sizeof(double));
        }
        free(tmp);
    }
    if (normalize) {
        double s = 1.0 / sqrt((double)n);
        size_t total = (size_t)rows * n;
        for (size_t i = 0; i < total; i++) x[i] *= s;
    }
}
