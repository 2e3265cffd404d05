/* test_quant.c - fake quantizers: hand-computed ranges, scales, zero points and
 * round-half-to-even ties; groups; the MSE clip search against a brute force
 * written here; degenerate rows; 16 bits off; the straight-through backward. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "common/kernels/quant.h"

#define EQ(a, b) cr_assert_eq((a), (b), "%s = %.9g, want %.9g", #a, (double)(a), (double)(b))

static void wq_one_row(float *out, float *s, float *z, const float *w, int in, spq_wq_cfg c) {
    spq_wq_params(s, z, w, 1, in, &c);
    spq_wq_apply(out, w, s, z, 1, in, &c);
}

Test(quant, weight_sym_4bit_scale_range_and_ties) {
    /* absmax 7 -> scale 1; ties go to even: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, 0.5 -> 0 */
    float w[8] = {7, 2.5f, 3.5f, -2.5f, 0.5f, -0.5f, -7, 1.49f}, out[8], s, z;
    float want[8] = {7, 2, 4, -2, 0, 0, -7, 1};
    wq_one_row(out, &s, &z, w, 8, (spq_wq_cfg){.bits = 4, .sym = 1});
    EQ(s, 1.0f);
    EQ(z, 0.0f);
    for (int i = 0; i < 8; i++) EQ(out[i], want[i]);
    int8_t codes[8];
    spq_wq_codes(codes, w, &s, &z, 1, 8, &(spq_wq_cfg){.bits = 4, .sym = 1});
    for (int i = 0; i < 8; i++) EQ(codes[i], (int)want[i]);
    /* negative absmax: -14 -> scale 2; 3 / 2 = 1.5 -> 2 -> 4; 1 / 2 = 0.5 -> 0 */
    float w2[3] = {-14, 1, 3}, o2[3];
    wq_one_row(o2, &s, &z, w2, 3, (spq_wq_cfg){.bits = 4, .sym = 1});
    EQ(s, 2.0f);
    EQ(o2[0], -14.0f);
    EQ(o2[1], 0.0f);
    EQ(o2[2], 4.0f);
    int qmin, qmax;
    spq_quant_range(4, 1, &qmin, &qmax);
    EQ(qmin, -8);
    EQ(qmax, 7);
    spq_quant_range(4, 0, &qmin, &qmax);
    EQ(qmin, 0);
    EQ(qmax, 15);
    spq_quant_range(8, 1, &qmin, &qmax);
    EQ(qmin, -128);
    EQ(qmax, 127);
    /* the code clamps at -8: a value below -absmax can only come from a clipped scale */
    EQ(spq_quant_code(-9.0f, 1.0f, 0.0f, -8, 7), -8.0f);
    EQ(spq_quant_code(7.6f, 1.0f, 0.0f, -8, 7), 7.0f);
}

Test(quant, weight_asym_zero_point_and_clamp) {
    float s, z;
    /* [-3, 12]: scale 1, zero 3 */
    float w[3] = {-3, 12, 0.5f}, out[3];
    wq_one_row(out, &s, &z, w, 3, (spq_wq_cfg){.bits = 4, .sym = 0});
    EQ(s, 1.0f);
    EQ(z, 3.0f);
    EQ(out[0], -3.0f);
    EQ(out[1], 12.0f);
    EQ(out[2], 0.0f); /* 0.5 -> 0 (tie to even) */
    /* the zero point itself rounds half to even: -min/s = 0.5 -> 0, 1.5 -> 2 */
    float a[2] = {-0.5f, 14.5f}, oa[2];
    wq_one_row(oa, &s, &z, a, 2, (spq_wq_cfg){.bits = 4, .sym = 0});
    EQ(s, 1.0f);
    EQ(z, 0.0f);
    EQ(oa[0], 0.0f);
    EQ(oa[1], 14.0f);
    float b[2] = {-1.5f, 13.5f}, ob[2];
    wq_one_row(ob, &s, &z, b, 2, (spq_wq_cfg){.bits = 4, .sym = 0});
    EQ(z, 2.0f);
    EQ(ob[0], -2.0f); /* code round(-1.5) + 2 = 0 */
    EQ(ob[1], 13.0f); /* code 14 + 2 = 16, clamped to 15 */
}

Test(quant, asym_range_includes_zero_for_positive_rows) {
    float w[3] = {5, 6, 7}, out[3], s, z;
    wq_one_row(out, &s, &z, w, 3, (spq_wq_cfg){.bits = 4, .sym = 0});
    EQ(s, 7.0f / 15.0f);
    EQ(z, 0.0f);
    float as, az;
    spq_aq_find(&as, &az, w, 3, &(spq_aq_cfg){.bits = 4, .clip = 1});
    EQ(as, 7.0f / 15.0f);
    EQ(az, 0.0f);
    /* all negative: max is 0, zero point at the top */
    float n[2] = {-15, -3}, o[2];
    wq_one_row(o, &s, &z, n, 2, (spq_wq_cfg){.bits = 4, .sym = 0});
    EQ(s, 1.0f);
    EQ(z, 15.0f);
    EQ(o[1], -3.0f);
}

Test(quant, zero_rows_do_not_divide_by_zero) {
    float w[4] = {0, 0, 0, 0}, out[4], s, z;
    spq_wq_cfg cfgs[] = {{4, 1, 0, 0, 0}, {4, 1, 0, 1, 0}, {4, 0, 0, 0, 0}, {4, 0, 0, 1, 0}, {3, 0, 2, 1, 0}};
    for (int t = 0; t < 5; t++) {
        float ss[2], zz[2];
        spq_wq_params(ss, zz, w, 1, 4, &cfgs[t]);
        spq_wq_apply(out, w, ss, zz, 1, 4, &cfgs[t]);
        for (int i = 0; i < 4; i++) cr_assert(out[i] == 0, "cfg %d: %g", t, out[i]);
        cr_assert(isfinite(ss[0]) && ss[0] > 0);
    }
    wq_one_row(out, &s, &z, w, 4, (spq_wq_cfg){.bits = 4, .sym = 1});
    EQ(s, 1e-5f / 7);
    wq_one_row(out, &s, &z, w, 4, (spq_wq_cfg){.bits = 4, .sym = 0});
    EQ(s, 2.0f / 15); /* range [-1, 1] */
    EQ(z, 7.0f);      /* 1 / s: 2/15 rounds up in fp32, so 1/s = 7.4999996 -> 7 */
    spq_aq_cfg ac[] = {{4, 0, 0, 1}, {4, 1, 0, 1}, {8, 0, 2, 0.9f}};
    for (int t = 0; t < 3; t++) {
        spq_aq_forward(out, w, 1, 4, &ac[t]);
        for (int i = 0; i < 4; i++) cr_assert(out[i] == 0, "act cfg %d: %g", t, out[i]);
    }
    spq_aq_find(&s, &z, w, 4, &ac[1]);
    EQ(s, 1.0f);
    /* a denormal range: no zero scale */
    float d[2] = {-1e-44f, 0};
    spq_aq_find(&s, &z, d, 2, &ac[0]);
    cr_assert(s > 0 && isfinite(z));
    spq_aq_forward(out, d, 1, 2, &ac[0]);
    cr_assert(isfinite(out[0]) && isfinite(out[1]));
}

Test(quant, weight_groups_with_a_short_last_group) {
    /* in = 10, G = 4: groups [0,4), [4,8), [8,10) */
    float w[20] = {1, -7, 2, 3,   14, 0, 1, 2,   0.7f, -0.35f,
                   0, 0, 0, 7,    0, 0, 0, -70,  1, 1};
    float s[6], z[6], out[20];
    spq_wq_cfg c = {.bits = 4, .sym = 1, .groupsize = 4};
    EQ(spq_wq_ngroups(&c, 10), 3);
    spq_wq_params(s, z, w, 2, 10, &c);
    float want[6] = {1, 2, 0.1f, 1, 10, 1.0f / 7};
    for (int i = 0; i < 6; i++) EQ(s[i], want[i]);
    spq_wq_apply(out, w, s, z, 2, 10, &c);
    EQ(out[4], 14.0f);
    EQ(out[6], 0.0f);  /* 1 / 2 = 0.5 -> 0 */
    EQ(out[7], 2.0f);
    cr_assert_float_eq(out[9], -0.4f, 1e-7); /* -3.5 -> -4 */
    EQ(out[17], -70.0f);
    EQ(out[13], 7.0f);
    /* a group size >= in is one group */
    c.groupsize = 16;
    EQ(spq_wq_ngroups(&c, 10), 1);
}

/* the brute force: every shrink, the error of each, the first minimum */
static float brute_p(const float *x, int n, int sym) {
    float mn = 0, mx = 0;
    for (int i = 0; i < n; i++) { mn = fminf(mn, x[i]); mx = fmaxf(mx, x[i]); }
    if (sym) { mx = fmaxf(fmaxf(-mn, mx), 1e-5f); }
    double best = INFINITY;
    float bp = 1;
    for (int i = 0; i < 80; i++) {
        float p = (float)(1.0 - i / 100.0), s, z;
        int lo = sym ? -8 : 0, hi = sym ? 7 : 15;
        if (sym) { s = p * mx / 7; z = 0; }
        else { s = (p * mx - p * mn) / 15; z = nearbyintf(-(p * mn) / s); }
        double e = 0;
        for (int k = 0; k < n; k++) {
            float q = nearbyintf(x[k] / s) + z;
            q = q < lo ? lo : q > hi ? hi : q;
            e += pow(fabs(s * (q - z) - x[k]), 2.4);
        }
        if (e < best) { best = e; bp = p; }
    }
    return bp;
}

static double err24(const float *x, int n, float s, float z, int sym) {
    int lo = sym ? -8 : 0, hi = sym ? 7 : 15;
    double e = 0;
    for (int k = 0; k < n; k++) {
        float q = nearbyintf(x[k] / s) + z;
        q = q < lo ? lo : q > hi ? hi : q;
        e += pow(fabs(s * (q - z) - x[k]), 2.4);
    }
    return e;
}

Test(quant, mse_clip_search_shrinks_for_an_outlier) {
    enum { n = 64 };
    spq_rng r;
    spq_rng_seed(&r, 4);
    float x[n];
    for (int i = 0; i < n; i++) x[i] = (float)(2 * spq_rng_uniform(&r) - 1);
    x[17] = 12; /* one outlier */
    for (int sym = 0; sym <= 1; sym++) {
        spq_wq_cfg c = {.bits = 4, .sym = sym, .mse = 1}, c0 = {.bits = 4, .sym = sym};
        float s, z, p, s0, z0;
        spq_wq_find(&s, &z, &p, x, n, &c);
        spq_wq_find(&s0, &z0, NULL, x, n, &c0);
        cr_assert_lt(p, 1.0f, "sym %d: shrink %g", sym, p);
        cr_assert_geq(p, 0.21f - 1e-6f);
        cr_assert_float_eq(p, brute_p(x, n, sym), 1e-7, "sym %d: p %g vs brute force %g", sym, p, brute_p(x, n, sym));
        double e = err24(x, n, s, z, sym), e0 = err24(x, n, s0, z0, sym);
        cr_assert_leq(e, e0, "sym %d: clipped error %g > unclipped %g", sym, e, e0);
        if (sym) cr_assert_float_eq(s, p * 12 / 7, 1e-6);
    }
    /* values already on the grid: no shrink can beat zero error */
    float g[15];
    for (int i = 0; i < 15; i++) g[i] = (float)(i - 7);
    float s, z, p;
    spq_wq_find(&s, &z, &p, g, 15, &(spq_wq_cfg){.bits = 4, .sym = 1, .mse = 1});
    EQ(p, 1.0f);
    EQ(s, 1.0f);
}

Test(quant, mse_search_matches_brute_force_on_random_rows) {
    spq_rng r;
    spq_rng_seed(&r, 12);
    for (int t = 0; t < 40; t++) {
        float x[48];
        double scale = exp(3 * spq_rng_normal(&r));
        for (int i = 0; i < 48; i++) x[i] = (float)(scale * spq_rng_normal(&r) * (i % 7 == 0 ? 4 : 1));
        int sym = t % 2;
        float s, z, p;
        spq_wq_find(&s, &z, &p, x, 48, &(spq_wq_cfg){.bits = 4, .sym = sym, .mse = 1});
        cr_assert_float_eq(p, brute_p(x, 48, sym), 1e-7, "row %d", t);
    }
}

Test(quant, off_at_16_bits) {
    float x[6] = {1.234567f, -1e-30f, 3e30f, 0, -2, 7.77f}, out[6];
    spq_wq_forward(out, x, 2, 3, &(spq_wq_cfg){.bits = 16, .sym = 1, .mse = 1, .groupsize = 2});
    cr_assert_eq(memcmp(out, x, sizeof x), 0);
    spq_aq_forward(out, x, 2, 3, &(spq_aq_cfg){.bits = 16, .clip = 0.5f});
    cr_assert_eq(memcmp(out, x, sizeof x), 0);
    float s, z;
    spq_aq_find(&s, &z, x, 6, &(spq_aq_cfg){.bits = 16, .clip = 1});
    EQ(s, 1.0f);
    EQ(z, 0.0f);
}

Test(quant, activation_per_token_clip) {
    /* clip 0.5: range [-2, 4], scale 0.4, zero 5; 8 clamps to 15 -> 4, -4 clamps to 0 -> -2 */
    float x[4] = {-4, 8, 1, 0}, out[4], s, z;
    spq_aq_cfg c = {.bits = 4, .clip = 0.5f};
    spq_aq_find(&s, &z, x, 4, &c);
    EQ(s, 6.0f / 15);
    EQ(z, 5.0f);
    spq_aq_forward(out, x, 1, 4, &c);
    cr_assert_float_eq(out[0], -2.0f, 1e-6);
    cr_assert_float_eq(out[1], 4.0f, 1e-6);
    cr_assert_float_eq(out[2], 0.8f, 1e-6); /* 1 / 0.4 = 2.5 -> 2 (even); (2+5-5) * 0.4 */
    EQ(out[3], 0.0f);
    /* two tokens are independent */
    float y[8] = {0, 15, 2.5f, 3.5f, 0, 30, 5, 7}, oy[8];
    spq_aq_forward(oy, y, 2, 4, &(spq_aq_cfg){.bits = 4, .clip = 1});
    float want[8] = {0, 15, 2, 4, 0, 30, 4, 8};
    for (int i = 0; i < 8; i++) cr_assert_float_eq(oy[i], want[i], 1e-5, "i %d: %g", i, oy[i]);
    /* in place equals out of place */
    spq_aq_forward(y, y, 2, 4, &(spq_aq_cfg){.bits = 4, .clip = 1});
    cr_assert_eq(memcmp(y, oy, sizeof y), 0);
}

Test(quant, activation_per_head_groups) {
    /* D = 8, head_dim 4: each head has its own range */
    float x[8] = {1, 2, 3, 4, -10, 0, 5, 5}, s[2], z[2], out[8];
    spq_aq_cfg c = {.bits = 4, .groupsize = 4, .clip = 1};
    spq_aq_params(s, z, x, 1, 8, &c);
    EQ(s[0], 4.0f / 15);
    EQ(z[0], 0.0f); /* range includes 0 here (the reference's per-group one would not) */
    EQ(s[1], 1.0f);
    EQ(z[1], 10.0f);
    spq_aq_forward(out, x, 1, 8, &c);
    for (int i = 4; i < 8; i++) EQ(out[i], x[i]);
    cr_assert_float_eq(out[3], 4.0f, 1e-6);
    /* symmetric activations: s = absmax / 7 */
    spq_aq_params(s, z, x, 1, 8, &(spq_aq_cfg){.bits = 4, .sym = 1, .groupsize = 4, .clip = 1});
    EQ(s[0], 4.0f / 7);
    EQ(s[1], 10.0f / 7);
    EQ(z[1], 0.0f);
}

Test(quant, codes_dequantize_to_qdq) {
    spq_rng r;
    spq_rng_seed(&r, 8);
    float W[5 * 37], Wq[5 * 37], s[5 * 3], z[5 * 3];
    int8_t q[5 * 37];
    for (int i = 0; i < 5 * 37; i++) W[i] = (float)spq_rng_normal(&r);
    for (int sym = 0; sym <= 1; sym++) {
        spq_wq_cfg c = {.bits = 4, .sym = sym, .groupsize = 16, .mse = 1};
        spq_wq_params(s, z, W, 5, 37, &c);
        spq_wq_apply(Wq, W, s, z, 5, 37, &c);
        spq_wq_codes(q, W, s, z, 5, 37, &c);
        for (int i = 0; i < 5 * 37; i++) {
            int o = (i / 37) * 3 + (i % 37) / 16;
            cr_assert(q[i] >= (sym ? -8 : 0) && q[i] <= (sym ? 7 : 15));
            cr_assert_eq(Wq[i], s[o] * ((float)q[i] - z[o]));
            cr_assert(z[o] >= 0 && z[o] <= 15);
        }
        /* spq_wq_forward = params + apply, in place too */
        float W2[5 * 37];
        memcpy(W2, W, sizeof W);
        spq_wq_forward(W2, W2, 5, 37, &c);
        cr_assert_eq(memcmp(W2, Wq, sizeof W2), 0);
    }
}

Test(quant, straight_through_backward_is_identity) {
    float din[4] = {1, 1, 1, 1}, dout[4] = {0.5f, -2, 3, 1e-20f};
    spq_fq_backward(din, dout, 4);
    EQ(din[0], 1.5f);
    EQ(din[1], -1.0f);
    EQ(din[2], 4.0f);
    EQ(din[3], 1.0f);
}

Test(quant, validation_names_the_field) {
    spq_err err = {{0}};
    cr_assert_eq(spq_wq_validate(&(spq_wq_cfg){.bits = 4, .sym = 1}, 64, &err), 0);
    cr_assert_eq(spq_wq_validate(&(spq_wq_cfg){.bits = 16}, 64, &err), 0);
    cr_assert_eq(spq_wq_validate(&(spq_wq_cfg){.bits = 1}, 64, &err), -1);
    cr_assert(strstr(err.msg, "w_bits") != NULL, "%s", err.msg);
    cr_assert_eq(spq_wq_validate(&(spq_wq_cfg){.bits = 12}, 64, &err), -1);
    cr_assert_eq(spq_wq_validate(&(spq_wq_cfg){.bits = 4, .groupsize = -1}, 64, &err), -1);
    cr_assert(strstr(err.msg, "w_groupsize") != NULL, "%s", err.msg);
    cr_assert_eq(spq_aq_validate(&(spq_aq_cfg){.bits = 4, .clip = 1}, 64, &err), 0);
    cr_assert_eq(spq_aq_validate(&(spq_aq_cfg){.bits = 4, .clip = 0}, 64, &err), -1);
    cr_assert(strstr(err.msg, "a_clip") != NULL, "%s", err.msg);
    cr_assert_eq(spq_aq_validate(&(spq_aq_cfg){.bits = 4, .clip = NAN}, 64, &err), -1);
    cr_assert_eq(spq_aq_validate(&(spq_aq_cfg){.bits = 4, .clip = 1.5f}, 64, &err), -1);
    cr_assert_eq(spq_aq_validate(&(spq_aq_cfg){.bits = 4, .clip = 1, .groupsize = 5}, 64, &err), -1);
    cr_assert(strstr(err.msg, "does not divide") != NULL, "%s", err.msg);
    cr_assert_eq(spq_aq_validate(&(spq_aq_cfg){.bits = 9, .clip = 1}, 64, &err), -1);
}

/* the inline rounding is nearbyintf (half to even) everywhere, including the
 * binade [2^22, 2^23) where floats have halves and beyond, where they do not */
Test(quant, round_is_half_to_even_everywhere) {
    float ties[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 4194304.5f, 4194305.5f, -8388607.5f, 1e30f, -0.0f, 0.49999997f};
    float want[] = {0, 2, 2, -0.0f, -2, -2, 4194304, 4194306, -8388608, 1e30f, -0.0f, 0};
    for (size_t i = 0; i < sizeof ties / sizeof ties[0]; i++)
        cr_assert_eq(spq_quant_round(ties[i]), want[i], "round(%.9g) = %.9g", ties[i], spq_quant_round(ties[i]));
    spq_rng r;
    spq_rng_seed(&r, 6);
    for (int i = 0; i < 200000; i++) {
        float v = (float)(spq_rng_normal(&r) * exp(12 * spq_rng_uniform(&r)));
        if (i % 3 == 0) v = nearbyintf(v * 2) / 2; /* exact halves */
        cr_assert_eq(spq_quant_round(v), nearbyintf(v), "%.9g", v);
    }
}
