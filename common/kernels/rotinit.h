/* rotinit.h - initial rotations for R1/R2 and the dense fallback of the online
 * rotations: identity, random Hadamard, random orthogonal (Haar). All in fp64,
 * (n, n) row-major, reproducible from a seed (spq_rng). A rotation R is used as
 * W R on the input side of a linear, so its rows are what gets mixed. */
#ifndef SPQ_ROTINIT_H
#define SPQ_ROTINIT_H

#include <stdint.h>

#include "common/base/util.h"

/* R (n, n) <- I */
void spq_rotinit_identity(double *R, int n);

/* R (n, n) <- a Haar-distributed orthogonal matrix: A (n, n) is filled with
 * spq_rng_normal draws in row-major order from spq_rng_seed(seed), and R is A
 * with its rows orthonormalized in order (spq_orthonormalize_rows). */
int spq_rotinit_random(double *R, int n, uint64_t seed, spq_err *err);

/* R (n, n) <- the random Hadamard rotation of QuaRot/SpinQuant: d (n) is +-1
 * from spq_rng_seed(seed) (top bit of each spq_rng_u64 draw: 1 -> -1), and row
 * i of R is the normalized transform of d_i e_i, i.e. R = D H^T / sqrt(n) with
 * H the matrix of hadamard.h. When n has no Hadamard construction R is
 * spq_rotinit_random(seed) instead and *is_hadamard (may be NULL) is 0. */
int spq_rotinit_hadamard(double *R, int n, uint64_t seed, int *is_hadamard, spq_err *err);

/* A (n, n) in place <- the orthonormal factor Q of A = L Q with L lower
 * triangular with a non-negative diagonal: Gram-Schmidt on the rows of A in
 * order, computed with Householder QR (LAPACK dgeqrf/dorgqr on A^T, which is A's
 * memory read column-major) and the signs of diag(L) folded into Q. For a
 * Gaussian A this makes Q Haar-distributed; for an almost orthogonal A it is the
 * QR retraction SGDG uses. */
int spq_orthonormalize_rows(double *A, int n, spq_err *err);

#endif
