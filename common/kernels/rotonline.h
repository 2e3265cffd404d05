/* rotonline.h - an online rotation (R3, R4): a fixed orthogonal M (n, n)
 * applied to every row of an activation, x <- M x, and folded into the weight
 * that reads the rotated activation (W <- W M^T, so that (M x) . (W M^T) rows
 * give back x W^T). M is the normalized Hadamard matrix of hadamard.h when n has
 * a construction (applied as a fast transform), otherwise a dense orthogonal
 * matrix: a seeded Haar random one, or one given (e.g. read from a checkpoint).
 * fp32 apply for activations, fp64 apply for folding into weights. */
#ifndef SPQ_ROTONLINE_H
#define SPQ_ROTONLINE_H

#include <stdint.h>

#include "hadamard.h"
#include "common/base/util.h"

typedef struct {
    int n;
    int is_hadamard;     /* 1: M = H / sqrt(n), fast transform; 0: dense */
    spq_had_plan had;    /* when is_hadamard */
    double *Q;           /* (n, n) dense M, when !is_hadamard */
    float *Qf;           /* (n, n) the same as float */
} spq_rot_online;

/* Hadamard when spq_had_possible(n), else a Haar random orthogonal matrix from
 * spq_rotinit_random(seed). */
int spq_rot_online_build(spq_rot_online *r, int n, uint64_t seed, spq_err *err);
/* Dense M = Q (n, n), copied; fails when max |Q Q^T - I| > 1e-5 (the
 * project's orthogonality requirement), naming the worst entry. */
int spq_rot_online_build_dense(spq_rot_online *r, const double *Q, int n, spq_err *err);
void spq_rot_online_free(spq_rot_online *r);
/* A malloc'd deep copy (free with spq_rot_online_free, then free). */
spq_rot_online *spq_rot_online_clone(const spq_rot_online *r);

/* each row of x (rows, n): x <- M x  (X <- X M^T) */
void spq_rot_online_apply(const spq_rot_online *r, float *x, int rows);
/* each row of x (rows, n): x <- M^T x  (X <- X M); the backward of apply */
void spq_rot_online_apply_t(const spq_rot_online *r, float *x, int rows);
void spq_rot_online_apply_f64(const spq_rot_online *r, double *x, int rows);
void spq_rot_online_apply_t_f64(const spq_rot_online *r, double *x, int rows);

/* M (n, n) <- the matrix, fp64 */
void spq_rot_online_matrix(double *M, const spq_rot_online *r);

#endif
