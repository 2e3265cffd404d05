/* half.c - see half.h. Bit manipulation only, no floating-point tricks, so
 * the results do not depend on the FPU's rounding mode or flush-to-zero. */
#include "half.h"

#include <string.h>

static float bits_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

float spq_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13));  /* inf, NaN (payload kept) */
    if (exp != 0) return bits_f32(sign | ((exp + 127 - 15) << 23) | (man << 13));
    if (man == 0) return bits_f32(sign);
    /* subnormal: man * 2^-24 = 1.f * 2^(p-24) with p the top set bit of man */
    int p = 31 - __builtin_clz(man);
    return bits_f32(sign | ((uint32_t)(p - 24 + 127) << 23) | ((man << (23 - p)) & 0x7fffffu));
}

uint16_t spq_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((ax >> 13) & 0x1ff);  /* quiet NaN */
    /* 65520 = halfway between 65504 (the largest fp16) and 65536: ties to even go up */
    if (ax >= 0x477ff000u) return sign | 0x7c00;
    if (ax >= 0x38800000u) {  /* >= 2^-14: an fp16 normal */
        uint32_t h = ((ax >> 23) - 127 + 15) << 10 | ((ax & 0x7fffffu) >> 13);
        uint32_t rem = ax & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;  /* a carry moves into the exponent */
        return sign | (uint16_t)h;
    }
    if (ax <= 0x33000000u) return sign;  /* <= 2^-25, half the smallest subnormal: ties to zero */
    /* an fp16 subnormal: count units of 2^-24. value = m * 2^(e-150) */
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int)(ax >> 23);  /* 14..24 */
    uint32_t h = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return sign | (uint16_t)h;
}

float spq_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

uint16_t spq_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40);  /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);  /* round to nearest even; overflow carries to inf */
    return (uint16_t)(x >> 16);
}

void spq_f16_to_f32_array(float *out, const void *in, size_t n) {
    const uint8_t *p = in;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = spq_f16_to_f32(h);
    }
}

void spq_bf16_to_f32_array(float *out, const void *in, size_t n) {
    const uint8_t *p = in;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        out[i] = spq_bf16_to_f32(h);
    }
}

void spq_f32_to_f16_array(uint16_t *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = spq_f32_to_f16(in[i]);
}

void spq_f32_to_bf16_array(uint16_t *out, const float *in, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = spq_f32_to_bf16(in[i]);
}

void spq_half_to_f32_array(float *out, const void *in, size_t n, int bf16) {
    if (bf16) spq_bf16_to_f32_array(out, in, n);
    else spq_f16_to_f32_array(out, in, n);
}

void spq_f32_to_half_array(uint16_t *out, const float *in, size_t n, int bf16) {
    if (bf16) spq_f32_to_bf16_array(out, in, n);
    else spq_f32_to_f16_array(out, in, n);
}
