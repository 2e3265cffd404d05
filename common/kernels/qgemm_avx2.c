/* qgemm_avx2.c - AVX2 tiles for qgemm.h (machines without AVX-512 VNNI).
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

TGT static INL void int_tile(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int p,
                             const int NT) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    const int C = w->cols, seg = w->seg, nseg = w->nseg, nocts = w->nocts, ng = w->ngroups;
    float yt[4 * 16] __attribute__((aligned(32)));  /* (NT, 16) */
    for (int j = 0; j < nseg; j++) {
        int k0 = j * seg, k1 = k0 + seg < C ? k0 + seg : C, o0 = k0 / 8, o1 = (k1 + 7) / 8;
        __m256i acc[4][2];
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = _mm256_setzero_si256();
        for (int o = o0; o < o1; o++) {
            const uint8_t *blk = w->codes + ((size_t)p * nocts + o) * 64;
            __m256i lo[2], hi[2];
            for (int h = 0; h < 2; h++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(blk + 32 * h));
                lo[h] = _mm256_and_si256(v, m4);
                hi[h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            }
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                const int8_t *ap = qa->a + (size_t)(n0 + t) * qa->ld + (size_t)o * 8;
                __m256i b0 = _mm256_set1_epi32(load_i32(ap)), b1 = _mm256_set1_epi32(load_i32(ap + 4));
                for (int h = 0; h < 2; h++) {
                    __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], b0), _mm256_maddubs_epi16(hi[h], b1));
                    acc[t][h] = _mm256_add_epi32(acc[t][h], _mm256_madd_epi16(s, ones));
                }
            }
        }
        int g = w->groupsize ? k0 / w->groupsize : 0, L = k1 - k0;
        for (int h = 0; h < 2; h++) {
            __m256i U = _mm256_load_si256((const __m256i *)(w->usum + ((size_t)p * nseg + j) * 16 + 8 * h));
            __m256i Z = _mm256_load_si256((const __m256i *)(w->zero + ((size_t)p * ng + g) * 16 + 8 * h));
            __m256 S = _mm256_load_ps(w->scale + ((size_t)p * ng + g) * 16 + 8 * h);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                size_t sj = (size_t)(n0 + t) * qa->nseg + j;
                int32_t za = qa->zero[sj], A = qa->asum[sj];
                __m256i I = _mm256_add_epi32(acc[t][h], _mm256_mullo_epi32(U, _mm256_set1_epi32(128 - za)));
                I = _mm256_sub_epi32(I, _mm256_mullo_epi32(Z, _mm256_set1_epi32(A - L * za)));
                __m256 P = _mm256_mul_ps(S, _mm256_set1_ps(qa->scale[sj]));
                float *yp = yt + t * 16 + 8 * h;
                __m256 prev = j ? _mm256_load_ps(yp) : _mm256_setzero_ps();
                _mm256_store_ps(yp, _mm256_fmadd_ps(_mm256_cvtepi32_ps(I), P, prev));
            }
        }
    }
    int r0 = p * 16, nr = w->rows - r0 < 16 ? w->rows - r0 : 16;
    for (int t = 0; t < NT; t++) memcpy(y + (size_t)(n0 + t) * ldy + r0, yt + t * 16, (size_t)nr * sizeof(float));
}

TGT void spq_qk_int_avx2(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int n1, int p0,
                         int p1) {
    for (int n = n0; n < n1; n += 4) {
        int nt = n1 - n < 4 ? n1 - n : 4;
        for (int p = p0; p < p1; p++) {
            switch (nt) {
            case 1: int_tile(y, ldy, qa, w, n, p, 1); break;
            case 2: int_tile(y, ldy, qa, w, n, p, 2); break;
            case 3: int_tile(y, ldy, qa, w, n, p, 3); break;
            default: int_tile(y, ldy, qa, w, n, p, 4); break;
            }
        }
    }
}

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
