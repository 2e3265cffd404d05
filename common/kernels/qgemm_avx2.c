/* qgemm_avx2.c - AVX2 and AVX-VNNI tiles for qgemm.h (machines without
 * AVX-512 VNNI).
 *
 * A panel's 64-byte block is two ymm halves: rows 0-7 and rows 8-15. Per
 * octet and half: the low and high nibble vectors times two broadcasts of
 * four activation bytes with vpmaddubsw (unsigned codes times signed
 * activations, pairs summed in int16: at most 2 * 15 * 128, no saturation),
 * the two results added in int16 (at most 7680) and widened to int32 sums of
 * the row with vpmaddwd. The epilogue and the W4A16 tile follow the scalar
 * reference's fp32 operations exactly (qgemm.h). */
#include <immintrin.h>
#include <string.h>

#include "qgemm_isa.h"

#define TGT __attribute__((target("avx2,fma")))
#define INL __attribute__((always_inline)) inline

static INL int32_t load_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* AVX2: unsigned codes times signed activations, pairs summed in int16 by
 * vpmaddubsw, the two products added in int16 and widened by vpmaddwd */
TGT static INL __m256i dot_avx2(__m256i acc, __m256i lo, __m256i hi, __m256i b0, __m256i b1) {
    __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, b0), _mm256_maddubs_epi16(hi, b1));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(s, _mm256_set1_epi16(1)));
}
#define QK_TGT TGT
#define QK_TILE int_tile_avx2
#define QK_NAME spq_qk_int_avx2
#define QK_DOT dot_avx2
#include "qgemm_avx2_int.h"

/* AVX-VNNI: vpdpbusd sums the four products of each lane into int32 */
#define TGT_VNNI __attribute__((target("avx2,fma,avxvnni")))
TGT_VNNI static INL __m256i dot_avxvnni(__m256i acc, __m256i lo, __m256i hi, __m256i b0, __m256i b1) {
    return _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(acc, lo, b0), hi, b1);
}
#define QK_TGT TGT_VNNI
#define QK_TILE int_tile_avxvnni
#define QK_NAME spq_qk_int_avxvnni
#define QK_DOT dot_avxvnni
#include "qgemm_avx2_int.h"

/* ---- W4A16 ---- */

TGT static INL void f32_tile(float *y, int ldy, const float *x, int ldx, const spq_qlinear *w, int n0, int p,
                             const int NT) {
    const __m256i m4 = _mm256_set1_epi32(0x0F);
    const int C = w->cols, ng = w->ngroups, nocts = w->nocts;
    const int G = w->groupsize ? w->groupsize : C;
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    __m256 S[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    __m256i Z[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (int o = 0; o < nocts; o++) {
        int k = o * 8;
        if (k % G == 0 || o == 0) {
            int g = k / G;
            for (int h = 0; h < 2; h++) {
                S[h] = _mm256_load_ps(w->scale + ((size_t)p * ng + g) * 16 + 8 * h);
                Z[h] = _mm256_load_si256((const __m256i *)(w->zero + ((size_t)p * ng + g) * 16 + 8 * h));
            }
        }
        const uint8_t *blk = w->codes + ((size_t)p * nocts + o) * 64;
        __m256i v[2] = {_mm256_loadu_si256((const __m256i *)blk), _mm256_loadu_si256((const __m256i *)(blk + 32))};
        int nk = C - k < 8 ? C - k : 8;
        for (int t = 0; t < nk; t++) {
            int sh = 8 * (t & 3) + 4 * (t >> 2);
            for (int h = 0; h < 2; h++) {
                __m256i u = _mm256_and_si256(_mm256_srli_epi32(v[h], sh), m4);
                __m256 wv = _mm256_mul_ps(S[h], _mm256_cvtepi32_ps(_mm256_sub_epi32(u, Z[h])));
#pragma GCC unroll 4
                for (int i = 0; i < NT; i++)
                    acc[i][h] = _mm256_fmadd_ps(_mm256_set1_ps(x[(size_t)(n0 + i) * ldx + k + t]), wv, acc[i][h]);
            }
        }
    }
    int r0 = p * 16, nr = w->rows - r0 < 16 ? w->rows - r0 : 16;
    float yt[16] __attribute__((aligned(32)));
    for (int i = 0; i < NT; i++) {
        _mm256_store_ps(yt, acc[i][0]);
        _mm256_store_ps(yt + 8, acc[i][1]);
        memcpy(y + (size_t)(n0 + i) * ldy + r0, yt, (size_t)nr * sizeof(float));
    }
}

TGT void spq_qk_f32_avx2(float *y, int ldy, const float *x, int ldx, const spq_qlinear *w, int n0, int n1, int p0,
                         int p1) {
    for (int n = n0; n < n1; n += 4) {
        int nt = n1 - n < 4 ? n1 - n : 4;
        for (int p = p0; p < p1; p++) {
            switch (nt) {
            case 1: f32_tile(y, ldy, x, ldx, w, n, p, 1); break;
            case 2: f32_tile(y, ldy, x, ldx, w, n, p, 2); break;
            case 3: f32_tile(y, ldy, x, ldx, w, n, p, 3); break;
            default: f32_tile(y, ldy, x, ldx, w, n, p, 4); break;
            }
        }
    }
}
