/* test_par.c - common/base/par.h as a plain start sees it (no launcher: rank
 * 0 of 1): shares cover [0, n) with nothing left over, sums and broadcasts
 * leave buffers as they are, spq_par_any is the flag itself. The ranks'
 * arithmetic (shares of P ranks, sums in rank order) is checked under mpirun
 * by tests/integration/mpi.test.js. */
#include <criterion/criterion.h>
#include <string.h>

#include "common/base/par.h"

Test(par, one_rank_without_a_launcher) {
    int argc = 1;
    char *args[] = {"test_par", NULL}, **argv = args;
    cr_assert_eq(spq_par_init(&argc, &argv), 0);
    cr_assert_eq(spq_par_rank(), 0);
    cr_assert_eq(spq_par_size(), 1);
    cr_assert_str_eq(spq_par_runtime(), "none");
}

Test(par, one_rank_shares_everything) {
    int ns[] = {0, 1, 7, 1000};
    for (int i = 0; i < 4; i++) {
        int lo = -1, hi = -1;
        spq_par_share(ns[i], &lo, &hi);
        cr_assert_eq(lo, 0);
        cr_assert_eq(hi, ns[i]);
    }
}

Test(par, one_rank_sums_and_broadcasts_leave_buffers_unchanged) {
    double d[3] = {1.5, -2.25, 1e300};
    float f[2] = {0.1f, -3.0f};
    long long k[2] = {1LL << 40, -7};
    char b[4] = "abc";
    spq_par_sum_f64(d, 3);
    spq_par_sum_f32(f, 2);
    spq_par_sum_i64(k, 2);
    spq_par_bcast(b, sizeof b, 0);
    cr_assert(d[0] == 1.5 && d[1] == -2.25 && d[2] == 1e300);
    cr_assert(f[0] == 0.1f && f[1] == -3.0f);
    cr_assert(k[0] == 1LL << 40 && k[1] == -7);
    cr_assert_str_eq(b, "abc");
    spq_par_sum_f64(NULL, 0); /* nothing to sum is fine */
}

Test(par, any_is_the_flag_and_barrier_returns) {
    cr_assert_eq(spq_par_any(0), 0);
    cr_assert_eq(spq_par_any(1), 1);
    cr_assert_eq(spq_par_any(-5), 1);
    spq_par_barrier();
}
