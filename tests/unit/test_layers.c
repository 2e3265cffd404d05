/* test_layers.c - each layer's backward against central finite differences
 * of its forward, on small random inputs.
 *
 * For a layer y = f(x) and a fixed random cotangent g, the backward gives
 * dL/dx for L = <g, f(x)>. Along a random direction u, (L(x+eu) - L(x-eu))/2e
 * must equal <dL/dx, u>. Forward passes are fp32, so e = 1e-2 and a relative
 * tolerance of 2e-3 (central differences are O(e^2) accurate; fp32 rounding
 * of L ~ 1e-7 relative contributes ~1e-5 after dividing by 2e). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/util.h"
#include "common/model/layers.h"

static spq_rng rng;

static float *randn(size_t n, float std) {
    float *x = spq_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(std * spq_rng_normal(&rng));
    return x;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void axpy(float *out, const float *x, float a, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = x[i] + a * u[i];
}

static void check_close(double analytic, double numeric, const char *what) {
    double tol = 2e-3 * fmax(fabs(analytic), fabs(numeric)) + 1e-5;
    cr_expect(fabs(analytic - numeric) <= tol, "%s: analytic %.8g vs finite difference %.8g", what, analytic,
              numeric);
}

TestSuite(layers, .init = NULL);

Test(layers, rmsnorm_backward_matches_finite_differences) {
    spq_rng_seed(&rng, 1);
    int N = 3, D = 16;
    float *x = randn(N * D, 1), *w = randn(D, 1), *g = randn(N * D, 1), *u = randn(N * D, 1);
    float *y = spq_malloc(N * D * sizeof(float)), *xp = spq_malloc(N * D * sizeof(float)),
          *dx = spq_malloc(N * D * sizeof(float)), rstd[3];
    spq_rmsnorm_forward(y, rstd, x, w, N, D, 1e-5f);
    spq_rmsnorm_backward(dx, g, x, w, rstd, N, D);
    float e = 1e-2f;
    axpy(xp, x, e, u, N * D);
    spq_rmsnorm_forward(y, NULL, xp, w, N, D, 1e-5f);
    double lp = dot(g, y, N * D);
    axpy(xp, x, -e, u, N * D);
    spq_rmsnorm_forward(y, NULL, xp, w, N, D, 1e-5f);
    double lm = dot(g, y, N * D);
    check_close(dot(dx, u, N * D), (lp - lm) / (2 * e), "rmsnorm dx");
    free(x); free(w); free(g); free(u); free(y); free(xp); free(dx);
}

Test(layers, matmul_backward_matches_definition) {
    spq_rng_seed(&rng, 2);
    int N = 5, C = 7, OC = 3;
    float *x = randn(N * C, 1), *W = randn(OC * C, 1), *g = randn(N * OC, 1);
    float *dx = spq_malloc(N * C * sizeof(float)), *dW = spq_malloc(OC * C * sizeof(float));
    spq_matmul_backward(dx, dW, g, x, W, N, C, OC, 0);
    /* y = x W^T is bilinear: dx = g W and dW = g^T x exactly (scalar loops) */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)g[n * OC + o] * W[o * C + c];
            cr_expect_float_eq(dx[n * C + c], s, 1e-5);
        }
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)g[n * OC + o] * x[n * C + c];
            cr_expect_float_eq(dW[o * C + c], s, 1e-5);
        }
    /* accumulate adds to what is there */
    float *dx2 = spq_malloc(N * C * sizeof(float));
    memcpy(dx2, dx, N * C * sizeof(float));
    spq_matmul_backward(dx2, NULL, g, x, W, N, C, OC, 1);
    for (int i = 0; i < N * C; i++) cr_expect_float_eq(dx2[i], 2 * dx[i], 1e-5);
    free(x); free(W); free(g); free(dx); free(dW); free(dx2);
}

Test(layers, rope_backward_is_inverse_rotation) {
    spq_rng_seed(&rng, 3);
    spq_config c = {.head_dim = 8, .rope_theta = 10000.0f};
    int N = 4, H = 2, hd = 8, P = 16;
    float cs[16 * 4], sn[16 * 4];
    spq_rope_tables(cs, sn, &c, P);
    int pos[4] = {0, 3, 7, 15};
    float *x = randn(N * H * hd, 1), *g = randn(N * H * hd, 1);
    float y[64], dx[64];
    memcpy(y, x, sizeof y);
    spq_rope_forward(y, pos, cs, sn, N, H, hd);
    memcpy(dx, g, sizeof dx);
    spq_rope_backward(dx, pos, cs, sn, N, H, hd);
    /* RoPE is linear and orthogonal: <g, R x> = <R^T g, x>, and it keeps norms */
    cr_expect(fabs(dot(g, y, 64) - dot(dx, x, 64)) < 1e-4);
    cr_expect(fabs(dot(y, y, 64) - dot(x, x, 64)) < 1e-3);
    free(x); free(g);
}

Test(layers, rope_llama3_scaling_matches_reference_frequencies) {
    /* hand-computed: with factor 8, low 1, high 4, original context 8192 and
     * theta 500000, head_dim 64: frequency 0 (wavelength 2pi) is unscaled,
     * the lowest frequencies (wavelength > 8192) are divided by 8 */
    spq_config c = {.head_dim = 64, .rope_theta = 500000.0f, .rope_llama3 = 1, .rope_factor = 8.0f,
                    .rope_low_freq_factor = 1.0f, .rope_high_freq_factor = 4.0f, .rope_orig_ctx = 8192};
    float cs[2 * 32], sn[2 * 32];
    spq_rope_tables(cs, sn, &c, 2);
    /* position 1: angle = inverse frequency */
    cr_expect_float_eq(atan2f(sn[32 + 0], cs[32 + 0]), 1.0f, 1e-6);
    float f31 = 1.0f / powf(500000.0f, 62.0f / 64.0f) / 8.0f;
    cr_expect_float_eq(atan2f(sn[32 + 31], cs[32 + 31]), f31, 1e-9);
    /* a medium frequency is interpolated: between f/8 and f */
    int i = 16;
    float f = 1.0f / powf(500000.0f, (float)(2 * i) / 64.0f);
    double wl = 2 * M_PI / f;
    cr_assert(wl > 8192.0 / 4 && wl < 8192.0, "frequency %d should be in the smoothed band (wavelength %g)", i, wl);
    double smooth = (8192.0 / wl - 1.0) / 3.0, want = (1 - smooth) * f / 8 + smooth * f;
    cr_expect(fabs(atan2f(sn[32 + i], cs[32 + i]) - want) < 1e-6 * want + 1e-9);
}

Test(layers, swiglu_backward_matches_finite_differences) {
    spq_rng_seed(&rng, 4);
    size_t n = 32;
    float *gt = randn(n, 2), *up = randn(n, 1), *g = randn(n, 1), *u = randn(n, 1), *u2 = randn(n, 1);
    float y[32], dg[32], du[32], a[32], b[32];
    spq_swiglu_backward(dg, du, g, gt, up, n);
    float e = 1e-2f;
    axpy(a, gt, e, u, n); axpy(b, up, e, u2, n);
    spq_swiglu_forward(y, a, b, n);
    double lp = dot(g, y, n);
    axpy(a, gt, -e, u, n); axpy(b, up, -e, u2, n);
    spq_swiglu_forward(y, a, b, n);
    double lm = dot(g, y, n);
    check_close(dot(dg, u, n) + dot(du, u2, n), (lp - lm) / (2 * e), "swiglu");
    free(gt); free(up); free(g); free(u); free(u2);
}

Test(layers, attention_backward_matches_finite_differences_with_gqa) {
    spq_rng_seed(&rng, 5);
    int T = 6, H = 4, KV = 2, hd = 4, qd = H * hd, kvd = KV * hd;
    float *q = randn(T * qd, 1), *k = randn(T * kvd, 1), *v = randn(T * kvd, 1), *g = randn(T * qd, 1);
    float *uq = randn(T * qd, 1), *uk = randn(T * kvd, 1), *uv = randn(T * kvd, 1);
    float *out = spq_malloc(T * qd * sizeof(float)), *sc = spq_malloc(2 * T * T * sizeof(float));
    float *dq = spq_malloc(T * qd * sizeof(float)), *dk = spq_malloc(T * kvd * sizeof(float)),
          *dv = spq_malloc(T * kvd * sizeof(float));
    float *qp = spq_malloc(T * qd * sizeof(float)), *kp = spq_malloc(T * kvd * sizeof(float)),
          *vp = spq_malloc(T * kvd * sizeof(float));
    spq_attention_backward(dq, dk, dv, g, q, k, v, sc, T, H, KV, hd);
    float e = 1e-2f;
    double l[2];
    for (int s = 0; s < 2; s++) {
        float ee = s ? -e : e;
        axpy(qp, q, ee, uq, T * qd); axpy(kp, k, ee, uk, T * kvd); axpy(vp, v, ee, uv, T * kvd);
        spq_attention_forward(out, qp, kp, vp, sc, T, T, H, KV, hd);
        l[s] = dot(g, out, T * qd);
    }
    check_close(dot(dq, uq, T * qd) + dot(dk, uk, T * kvd) + dot(dv, uv, T * kvd), (l[0] - l[1]) / (2 * e),
                "attention");
    /* causality: the first query sees only the first key, so its output is v_0 */
    spq_attention_forward(out, q, k, v, sc, T, T, H, KV, hd);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < hd; i++) cr_expect_float_eq(out[h * hd + i], v[(h / 2) * hd + i], 1e-6);
    free(q); free(k); free(v); free(g); free(uq); free(uk); free(uv); free(out); free(sc);
    free(dq); free(dk); free(dv); free(qp); free(kp); free(vp);
}

Test(layers, crossentropy_gradient_is_softmax_minus_onehot) {
    float logits[2 * 3] = {1, 2, 3, 0, 0, 0};
    int targets[2] = {2, -1};
    float d[6];
    int n;
    double loss = spq_crossentropy_forward_backward(d, logits, targets, 2, 3, 1.0f, &n);
    double lse = log(exp(1) + exp(2) + exp(3));
    cr_expect_eq(n, 1);
    cr_expect(fabs(loss - (lse - 3)) < 1e-9);
    cr_expect_float_eq(d[0], exp(1 - lse), 1e-6);
    cr_expect_float_eq(d[2], exp(3 - lse) - 1, 1e-6);
    cr_expect_float_eq(d[3], 0, 0);
}
