/* test_gf.c - GF(p^k): prime-power detection, that the arithmetic is a field
 * (no zero divisors, which for a finite commutative ring is equivalent), the
 * ring laws on samples, and the quadratic character. */
#include <criterion/criterion.h>

#include "common/kernels/gf.h"

Test(gf, prime_power_detection) {
    int p, k;
    cr_assert(spq_gf_prime_power(343, &p, &k) && p == 7 && k == 3);
    cr_assert(spq_gf_prime_power(729, &p, &k) && p == 3 && k == 6);
    cr_assert(spq_gf_prime_power(3, &p, &k) && p == 3 && k == 1);
    cr_assert(spq_gf_prime_power(1019, &p, &k) && p == 1019 && k == 1);
    cr_assert(spq_gf_prime_power(961, &p, &k) && p == 31 && k == 2);
    cr_assert(!spq_gf_prime_power(1, &p, &k));
    cr_assert(!spq_gf_prime_power(2, &p, &k));  /* even fields are not used */
    cr_assert(!spq_gf_prime_power(64, &p, &k));
    cr_assert(!spq_gf_prime_power(15, &p, &k));
    cr_assert(!spq_gf_prime_power(171, &p, &k)); /* 9 * 19: why 172 has no Paley I */
    cr_assert(!spq_gf_prime_power(85, &p, &k));  /* 5 * 17: why 172 has no Paley II */
}

Test(gf, rejects_non_prime_powers) {
    spq_gf f;
    spq_err err = {{0}};
    cr_assert_eq(spq_gf_build(&f, 15, &err), -1);
    cr_assert(strstr(err.msg, "GF(15)") != NULL, "message: %s", err.msg);
}

/* every odd prime power with k >= 2 below 1024, plus some primes: the
 * composite-degree ones are where the irreducible polynomial matters */
static const int fields[] = {3, 7, 11, 9, 25, 27, 49, 81, 121, 125, 169, 243, 289, 343, 361,
                             529, 625, 729, 841, 961, 1019};

Test(gf, no_zero_divisors_and_unique_inverses) {
    for (size_t t = 0; t < sizeof fields / sizeof fields[0]; t++) {
        int q = fields[t];
        spq_gf f;
        cr_assert_eq(spq_gf_build(&f, q, NULL), 0);
        for (int a = 1; a < q; a++) {
            int inverses = 0;
            for (int b = 1; b < q; b++) {
                int c = spq_gf_mul(&f, a, b);
                cr_assert(c > 0 && c < q, "GF(%d): %d * %d = %d", q, a, b, c);
                inverses += c == 1;
            }
            cr_assert_eq(inverses, 1, "GF(%d): %d has %d inverses", q, a, inverses);
        }
        spq_gf_free(&f);
    }
}

Test(gf, ring_laws_on_samples) {
    for (size_t t = 0; t < sizeof fields / sizeof fields[0]; t++) {
        int q = fields[t];
        spq_gf f;
        cr_assert_eq(spq_gf_build(&f, q, NULL), 0);
        spq_rng r;
        spq_rng_seed(&r, (uint64_t)q);
        for (int s = 0; s < 2000; s++) {
            int a = (int)(spq_rng_u64(&r) % (uint64_t)q), b = (int)(spq_rng_u64(&r) % (uint64_t)q),
                c = (int)(spq_rng_u64(&r) % (uint64_t)q);
            cr_assert_eq(spq_gf_add(&f, a, b), spq_gf_add(&f, b, a));
            cr_assert_eq(spq_gf_mul(&f, a, b), spq_gf_mul(&f, b, a));
            cr_assert_eq(spq_gf_sub(&f, spq_gf_add(&f, a, b), b), a);
            cr_assert_eq(spq_gf_add(&f, a, spq_gf_neg(&f, a)), 0);
            cr_assert_eq(spq_gf_mul(&f, a, spq_gf_add(&f, b, c)),
                         spq_gf_add(&f, spq_gf_mul(&f, a, b), spq_gf_mul(&f, a, c)), "GF(%d) distributivity", q);
            cr_assert_eq(spq_gf_mul(&f, spq_gf_mul(&f, a, b), c), spq_gf_mul(&f, a, spq_gf_mul(&f, b, c)),
                         "GF(%d) associativity", q);
            cr_assert_eq(spq_gf_mul(&f, a, 1), a);
        }
        spq_gf_free(&f);
    }
}

Test(gf, quadratic_character) {
    for (size_t t = 0; t < sizeof fields / sizeof fields[0]; t++) {
        int q = fields[t];
        spq_gf f;
        cr_assert_eq(spq_gf_build(&f, q, NULL), 0);
        int squares = 0;
        for (int a = 1; a < q; a++) squares += spq_gf_chi(&f, a) == 1;
        cr_assert_eq(squares, (q - 1) / 2, "GF(%d): %d nonzero squares", q, squares);
        cr_assert_eq(spq_gf_chi(&f, 0), 0);
        /* -1 is a square iff q = 1 (mod 4): what makes Jacobsthal skew or symmetric */
        cr_assert_eq(spq_gf_chi(&f, spq_gf_neg(&f, 1)), q % 4 == 1 ? 1 : -1, "GF(%d)", q);
        for (int a = 1; a < q; a += 7)
            for (int b = 1; b < q; b += 11)
                cr_assert_eq(spq_gf_chi(&f, spq_gf_mul(&f, a, b)), spq_gf_chi(&f, a) * spq_gf_chi(&f, b));
        spq_gf_free(&f);
    }
}
