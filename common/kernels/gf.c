/* gf.c - GF(p^k) arithmetic on base-p digit vectors; see gf.h. */
#include "gf.h"

#include <stdlib.h>
#include <string.h>

int spq_gf_prime_power(int q, int *p, int *k) {
    if (q < 3 || q % 2 == 0) return 0;
    int r = 0;
    for (int d = 3; d * d <= q; d += 2)
        if (q % d == 0) { r = d; break; }
    if (r == 0) r = q; /* q is prime */
    int e = 0, m = q;
    while (m % r == 0) { m /= r; e++; }
    if (m != 1) return 0;
    *p = r;
    *k = e;
    return 1;
}

static void to_digits(int *d, int a, int p, int k) {
    for (int i = 0; i < k; i++) { d[i] = a % p; a /= p; }
}

static int from_digits(const int *d, int p, int k) {
    int a = 0;
    for (int i = k - 1; i >= 0; i--) a = a * p + d[i];
    return a;
}

/* r (deg < dg) = a (deg < na) mod g, g monic of degree dg given by g[0..dg] */
static void poly_mod(int *r, const int *a, int na, const int *g, int dg, int p) {
    int t[2 * SPQ_GF_MAX_K + 1];
    memcpy(t, a, (size_t)na * sizeof(int));
    for (int i = na - 1; i >= dg; i--) {
        int c = t[i] % p;
        if (c == 0) continue;
        for (int j = 0; j <= dg; j++) t[i - dg + j] = ((t[i - dg + j] - c * g[j]) % p + p) % p;
    }
    for (int i = 0; i < dg; i++) r[i] = i < na ? t[i] % p : 0;
}

/* a monic f of degree k is irreducible iff no monic g of degree 1..k/2 divides it */
static int irreducible(const int *f, int k, int p) {
    int g[SPQ_GF_MAX_K + 1], r[SPQ_GF_MAX_K];
    for (int d = 1; d <= k / 2; d++) {
        int count = 1;
        for (int i = 0; i < d; i++) count *= p;
        for (int t = 0; t < count; t++) {
            to_digits(g, t, p, d);
            g[d] = 1;
            poly_mod(r, f, k + 1, g, d, p);
            int zero = 1;
            for (int i = 0; i < d; i++)
                if (r[i] != 0) zero = 0;
            if (zero) return 0;
        }
    }
    return 1;
}

int spq_gf_add(const spq_gf *f, int a, int b) {
    if (f->k == 1) return (a + b) % f->p;
    int r = 0, m = 1;
    for (int i = 0; i < f->k; i++) {
        r += ((a % f->p + b % f->p) % f->p) * m;
        a /= f->p; b /= f->p; m *= f->p;
    }
    return r;
}

int spq_gf_neg(const spq_gf *f, int a) {
    if (f->k == 1) return (f->p - a) % f->p;
    int r = 0, m = 1;
    for (int i = 0; i < f->k; i++) {
        r += ((f->p - a % f->p) % f->p) * m;
        a /= f->p; m *= f->p;
    }
    return r;
}

int spq_gf_sub(const spq_gf *f, int a, int b) { return spq_gf_add(f, a, spq_gf_neg(f, b)); }

int spq_gf_mul(const spq_gf *f, int a, int b) {
    int p = f->p, k = f->k;
    if (k == 1) return (int)((long)a * b % p);
    int da[SPQ_GF_MAX_K], db[SPQ_GF_MAX_K], prod[2 * SPQ_GF_MAX_K] = {0}, r[SPQ_GF_MAX_K];
    to_digits(da, a, p, k);
    to_digits(db, b, p, k);
    for (int i = 0; i < k; i++)
        for (int j = 0; j < k; j++) prod[i + j] = (prod[i + j] + da[i] * db[j]) % p;
    poly_mod(r, prod, 2 * k - 1, f->poly, k, p);
    return from_digits(r, p, k);
}

int spq_gf_build(spq_gf *f, int q, spq_err *err) {
    memset(f, 0, sizeof *f);
    int p, k;
    if (q > SPQ_GF_MAX_Q || !spq_gf_prime_power(q, &p, &k) || k > SPQ_GF_MAX_K)
        return spq_fail(err, "GF(%d): field size must be an odd prime power <= %d", q, SPQ_GF_MAX_Q);
    f->q = q;
    f->p = p;
    f->k = k;
    /* smallest monic irreducible x^k + c(x), c read as base-p digits */
    int found = 0;
    for (int c = 0; c < q && !found; c++) {
        to_digits(f->poly, c, p, k);
        f->poly[k] = 1;
        if (k == 1 ? 1 : (f->poly[0] != 0 && irreducible(f->poly, k, p))) found = 1;
    }
    if (!found) return spq_fail(err, "GF(%d): no irreducible polynomial of degree %d found", q, k);
    f->chi = spq_malloc((size_t)q);
    f->chi[0] = 0;
    for (int a = 1; a < q; a++) f->chi[a] = -1;
    for (int a = 1; a < q; a++) f->chi[spq_gf_mul(f, a, a)] = 1;
    return 0;
}

void spq_gf_free(spq_gf *f) {
    free(f->chi);
    f->chi = NULL;
}
