/* vexp.h - an exp that the compiler can vectorize, for softmax and
 * log-sum-exp (libm's expf is a call per element and dominated attention on
 * small heads). Range reduction x = k ln2 + r with ln2 split in two parts,
 * |r| <= ln2/2, a degree-6 Taylor polynomial for e^r (truncation error
 * r^7/7! < 2e-8 relative; a few ulp overall, checked in test_layers), and
 * 2^k built in the exponent bits. Inputs below -87.3 give 0, above 88.7 inf. */
#ifndef SPQ_VEXP_H
#define SPQ_VEXP_H

#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) float spq_vexpf(float x) {
    const float lo = -87.33654f, hi = 88.72283f;
    float xc = x < lo ? lo : (x > hi ? hi : x);
    /* round to nearest by the 1.5*2^23 trick (vectorizes without SSE4.1) */
    float kf = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - kf * 0.693145751953125f;   /* ln2 high part (exact in float) */
    r = r - kf * 1.428606765330187045e-06f;   /* ln2 low part */
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t k = (int32_t)kf;
    /* 2^k as two factors so that k = -126..128 stays representable */
    int32_t k1 = k / 2, k2 = k - k1;
    uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    float y = p * s1 * s2;
    return x < lo ? 0.0f : (x > hi ? __builtin_inff() : y);
}

/* x[i] <- exp(x[i] - shift) for i < n; returns the sum, accumulated in 8
 * lanes (so the loop vectorizes without reassociation flags). */
static inline __attribute__((always_inline)) float spq_vexp_shift_sum(float *x, int n, float shift) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float e = spq_vexpf(x[i + j] - shift);
            x[i + j] = e;
            acc[j] += e;
        }
    float sum = 0.0f;
    for (; i < n; i++) {
        float e = spq_vexpf(x[i] - shift);
        x[i] = e;
        sum += e;
    }
    for (int j = 0; j < 8; j++) sum += acc[j];
    return sum;
}

/* max of x[0..n), n >= 1 */
static inline __attribute__((always_inline)) float spq_vmax(const float *x, int n) {
    float acc[8];
    int i = 0;
    for (int j = 0; j < 8; j++) acc[j] = x[0];
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
    float mx = acc[0];
    for (int j = 1; j < 8; j++) mx = acc[j] > mx ? acc[j] : mx;
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

#endif
