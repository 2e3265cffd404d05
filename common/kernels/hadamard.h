/* hadamard.h - Hadamard matrices of size n = K * 2^m and their fast transform.
 *
 * SpinQuant's online rotations (R3 on Q/K, R4 on the down_proj input) are
 * normalized Hadamard matrices applied as fast transforms. A size n is split
 * as n = M * K with M = 2^m (Sylvester, applied by butterflies) and K a size
 * for which a K x K Hadamard matrix is constructed directly:
 *   K = 1, 2, 4               Sylvester;
 *   K = q + 1                 Paley I, q an odd prime power, q = 3 (mod 4);
 *   K = 2(q + 1)              Paley II, q an odd prime power, q = 1 (mod 4);
 * with K <= SPQ_HAD_MAX_K (a larger K costs as much as a dense matrix: callers
 * use a dense orthogonal matrix then, see rotonline.h). Among the splits the
 * builder takes the largest power of two (the smallest K). Examples:
 * 11008 = 32 * 344 (Paley I, q = 343 = 7^3), 13824 = 128 * 108 (Paley I,
 * q = 107), 14336 = 512 * 28 (Paley I, q = 27 = 3^3), 5120 = 256 * 20,
 * 172 = 4 * 43: none (43, 86, 172 fit no construction).
 *
 * Ordering: the matrix is H = H_M (x) H_K (Kronecker product, M outer), i.e.
 * index i = j*K + k with j in [0, M), k in [0, K), and
 *   H[i][l] = H_M[i/K][l/K] * H_K[i%K][l%K],  H_M[a][b] = (-1)^popcount(a & b).
 * A vector of length n is viewed as an (M, K) row-major matrix X and the
 * transform is X <- H_M X H_K^T: butterflies over rows of length K (contiguous,
 * vectorizable) and one gemm for the K part over all rows at once. The SpinQuant
 * reference uses H_K (x) H_M; the two are the same matrix up to a permutation
 * of indices, and any fixed Hadamard matrix is equally valid as long as the
 * online transform and the weights folded with it agree (they use this one).
 *
 * Cost per row: n*log2(M) adds for the butterflies plus n*K multiply-adds. */
#ifndef SPQ_HADAMARD_H
#define SPQ_HADAMARD_H

#include <stdint.h>

#include "common/base/util.h"

#define SPQ_HAD_MAX_K 1024

enum { SPQ_HAD_NONE = 0, SPQ_HAD_SYLVESTER = 1, SPQ_HAD_PALEY1 = 2, SPQ_HAD_PALEY2 = 3 };

/* In-place fast Walsh-Hadamard transform of one vector x (n), n a power of two:
 * x <- H_n x, or H_n x / sqrt(n) when normalize. Sylvester (natural) order. */
void spq_fwht(float *x, int n, int normalize);
void spq_fwht_f64(double *x, int n, int normalize);

/* Which construction gives a K x K Hadamard matrix (SPQ_HAD_NONE if none
 * here); *q (may be NULL) gets the field size for Paley. */
int spq_had_factor_kind(int K, int *q);

/* H (K, K) <- the K x K Hadamard matrix (entries +-1, H H^T = K I). */
int spq_had_factor(int8_t *H, int K, spq_err *err);

/* 1 when spq_had_build succeeds for n. */
int spq_had_possible(int n);

typedef struct {
    int n;          /* = M * K */
    int M;          /* 2^m, Sylvester part (outer index) */
    int K;          /* directly constructed factor (inner index); 1 when n is a power of two */
    int kind;       /* SPQ_HAD_* of the K factor */
    int q;          /* Paley field size, 0 otherwise */
    int8_t *HK;     /* (K, K) +-1 entries; NULL when K == 1 */
    float *HKf;     /* (K, K) the same as float */
    double *HKd;    /* (K, K) the same as double */
} spq_had_plan;

/* Chooses the split of n (largest power of two with a constructible K) and
 * builds the K factor. Fails with a message when n has no construction. */
int spq_had_build(spq_had_plan *p, int n, spq_err *err);
void spq_had_free(spq_had_plan *p);

/* Entry H[i][l] in {-1, +1} of the unnormalized matrix. */
int spq_had_entry(const spq_had_plan *p, int i, int l);
/* H (n, n) <- the unnormalized matrix, entries +-1. */
void spq_had_dense(int8_t *H, const spq_had_plan *p);

/* In place on each row of x (rows, n): x <- H x (transpose: x <- H^T x),
 * divided by sqrt(n) when normalize. In row form X <- X H^T (or X H), so
 * folding the transform into a weight W (out, n) as W H^T is
 * spq_had_apply(p, W, out, 0, 1). */
void spq_had_apply(const spq_had_plan *p, float *x, int rows, int transpose, int normalize);
void spq_had_apply_f64(const spq_had_plan *p, double *x, int rows, int transpose, int normalize);

#endif
