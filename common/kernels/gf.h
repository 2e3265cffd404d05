/* gf.h - small finite fields GF(q), q = p^k an odd prime power, for the Paley
 * constructions of Hadamard matrices (hadamard.c).
 *
 * An element is an int in [0, q): its base-p digits are the coefficients of a
 * polynomial of degree < k over GF(p) (digit i = coefficient of x^i).
 * Addition is digit-wise mod p; multiplication is polynomial multiplication
 * modulo a monic irreducible polynomial of degree k found by search (the
 * lexicographically smallest one, so a field is the same on every build).
 * For k = 1 this is plain arithmetic mod p.
 *
 * Sizes are small (q <= SPQ_GF_MAX_Q); everything is plain loops, no tables
 * beyond the quadratic character (q bytes). */
#ifndef SPQ_GF_H
#define SPQ_GF_H

#include <stdint.h>

#include "common/base/util.h"

#define SPQ_GF_MAX_Q 65536
#define SPQ_GF_MAX_K 16

typedef struct {
    int q;                        /* field size p^k */
    int p;                        /* characteristic (odd prime) */
    int k;                        /* degree over GF(p) */
    int poly[SPQ_GF_MAX_K + 1];   /* monic irreducible modulus, poly[k] = 1 */
    int8_t *chi;                  /* (q) quadratic character: 0 at 0, +1 on nonzero squares, -1 otherwise */
} spq_gf;

/* If q = p^k with p an odd prime, sets *p and *k and returns 1; else 0. */
int spq_gf_prime_power(int q, int *p, int *k);

/* Builds GF(q) (search for the modulus, table of squares). q must be an odd
 * prime power <= SPQ_GF_MAX_Q. */
int spq_gf_build(spq_gf *f, int q, spq_err *err);
void spq_gf_free(spq_gf *f);

int spq_gf_add(const spq_gf *f, int a, int b);
int spq_gf_sub(const spq_gf *f, int a, int b);
int spq_gf_neg(const spq_gf *f, int a);
int spq_gf_mul(const spq_gf *f, int a, int b);
/* quadratic character chi(a) in {-1, 0, +1} */
static inline int spq_gf_chi(const spq_gf *f, int a) { return f->chi[a]; }

#endif
