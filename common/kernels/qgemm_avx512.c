/* qgemm_avx512.c - AVX-512 VNNI tiles for qgemm.h.
 *
 * Integer tile: NP panels (16 rows each, one zmm of int32 per panel) times NT
 * tokens. Per octet of columns: one 64-byte load per panel, unpacked into the
 * low and high nibble vectors (lane r = four codes of row r), and per token
 * two broadcasts of four activation bytes; vpdpbusd multiplies the unsigned
 * codes by the signed (code - 128) activations. At the end of each segment
 * the int32 sums get the zero-point terms (qgemm.h) and are scaled into the
 * fp32 outputs of the tile (kept in a small buffer in L1), with the same
 * fp32 operations as the scalar reference. Decode (one token) uses NP = 4 to
 * keep four independent accumulation chains; prefill uses 2 x 8.
 *
 * Float tile (W4A16): lane r accumulates x_k * w_rk for k in order, one fma
 * per column, as the scalar reference does. */
#include <immintrin.h>
#include <string.h>

#include "qgemm_isa.h"

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,f16c,fma")))
#define INL __attribute__((always_inline)) inline

static INL int32_t load_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* yt is written for every (panel, token) by the first segment's epilogue
 * (there is always one segment); gcc cannot see that */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
TGT static INL void int_tile(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int p, const int NP,
                             const int NT) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const int C = w->cols, seg = w->seg, nseg = w->nseg, nocts = w->nocts, ng = w->ngroups;
    float yt[2 * 8 * 16] __attribute__((aligned(64)));  /* (NP, NT, 16) */
    for (int j = 0; j < nseg; j++) {
        int k0 = j * seg, k1 = k0 + seg < C ? k0 + seg : C, o0 = k0 / 8, o1 = (k1 + 7) / 8;
        __m512i acc[4][8];
#pragma GCC unroll 4
        for (int pp = 0; pp < NP; pp++)
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) acc[pp][t] = _mm512_setzero_si512();
        for (int o = o0; o < o1; o++) {
            __m512i lo[4], hi[4];
#pragma GCC unroll 4
            for (int pp = 0; pp < NP; pp++) {
                __m512i v = _mm512_loadu_si512(w->codes + ((size_t)(p + pp) * nocts + o) * 64);
                lo[pp] = _mm512_and_si512(v, m4);
                hi[pp] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                const int8_t *ap = qa->a + (size_t)(n0 + t) * qa->ld + (size_t)o * 8;
                __m512i b0 = _mm512_set1_epi32(load_i32(ap)), b1 = _mm512_set1_epi32(load_i32(ap + 4));
#pragma GCC unroll 4
                for (int pp = 0; pp < NP; pp++) {
                    acc[pp][t] = _mm512_dpbusd_epi32(acc[pp][t], lo[pp], b0);
                    acc[pp][t] = _mm512_dpbusd_epi32(acc[pp][t], hi[pp], b1);
                }
            }
        }
        int g = w->groupsize ? k0 / w->groupsize : 0, L = k1 - k0;
#pragma GCC unroll 4
        for (int pp = 0; pp < NP; pp++) {
            __m512i U = _mm512_load_si512(w->usum + ((size_t)(p + pp) * nseg + j) * 16);
            __m512i Z = _mm512_load_si512(w->zero + ((size_t)(p + pp) * ng + g) * 16);
            __m512 S = _mm512_load_ps(w->scale + ((size_t)(p + pp) * ng + g) * 16);
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                size_t sj = (size_t)(n0 + t) * qa->nseg + j;
                int32_t za = qa->zero[sj], A = qa->asum[sj];
                __m512i I = _mm512_add_epi32(acc[pp][t], _mm512_mullo_epi32(U, _mm512_set1_epi32(128 - za)));
                I = _mm512_sub_epi32(I, _mm512_mullo_epi32(Z, _mm512_set1_epi32(A - L * za)));
                __m512 P = _mm512_mul_ps(S, _mm512_set1_ps(qa->scale[sj]));
                float *yp = yt + (pp * NT + t) * 16;
                __m512 prev = j ? _mm512_load_ps(yp) : _mm512_setzero_ps();
                _mm512_store_ps(yp, _mm512_fmadd_ps(_mm512_cvtepi32_ps(I), P, prev));
            }
        }
    }
    for (int pp = 0; pp < NP; pp++) {
        int r0 = (p + pp) * 16, nr = w->rows - r0 < 16 ? w->rows - r0 : 16;
        __mmask16 m = (__mmask16)((1u << nr) - 1);
        for (int t = 0; t < NT; t++)
            _mm512_mask_storeu_ps(y + (size_t)(n0 + t) * ldy + r0, m, _mm512_load_ps(yt + (pp * NT + t) * 16));
    }
}

#pragma GCC diagnostic pop

TGT static void int_tile_any(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int p, int NP,
                             int NT) {
#define CASE(a, b) \
    if (NP == a && NT == b) return int_tile(y, ldy, qa, w, n0, p, a, b);
    CASE(4, 1) CASE(2, 8) CASE(1, 8)
    CASE(2, 1) CASE(2, 2) CASE(2, 3) CASE(2, 4) CASE(2, 5) CASE(2, 6) CASE(2, 7)
    CASE(1, 1) CASE(1, 2) CASE(1, 3) CASE(1, 4) CASE(1, 5) CASE(1, 6) CASE(1, 7)
#undef CASE
}

TGT void spq_qk_int_avx512(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int n1, int p0,
                           int p1) {
    if (n1 - n0 == 1) {
        int p = p0;
        for (; p + 4 <= p1; p += 4) int_tile_any(y, ldy, qa, w, n0, p, 4, 1);
        for (; p + 2 <= p1; p += 2) int_tile_any(y, ldy, qa, w, n0, p, 2, 1);
        for (; p < p1; p++) int_tile_any(y, ldy, qa, w, n0, p, 1, 1);
        return;
    }
    /* token tiles outermost: a tile's activations stay in L1 across the panels */
    for (int n = n0; n < n1; n += 8) {
        int nt = n1 - n < 8 ? n1 - n : 8;
        int p = p0;
        for (; p + 2 <= p1; p += 2) int_tile_any(y, ldy, qa, w, n, p, 2, nt);
        for (; p < p1; p++) int_tile_any(y, ldy, qa, w, n, p, 1, nt);
    }
}

/* ---- W4A16 ---- */

TGT static INL void f32_tile(float *y, int ldy, const float *x, int ldx, const spq_qlinear *w, int n0, int p,
                             const int NT) {
    const __m512i m4 = _mm512_set1_epi32(0x0F);
    const int C = w->cols, ng = w->ngroups, nocts = w->nocts;
    const int G = w->groupsize ? w->groupsize : C;
    __m512 acc[8];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
    __m512 S = _mm512_setzero_ps();
    __m512i Z = _mm512_setzero_si512();
    for (int o = 0; o < nocts; o++) {
        int k = o * 8;
        if (k % G == 0 || o == 0) {
            int g = k / G;
            S = _mm512_load_ps(w->scale + ((size_t)p * ng + g) * 16);
            Z = _mm512_load_si512(w->zero + ((size_t)p * ng + g) * 16);
        }
        __m512i v = _mm512_loadu_si512(w->codes + ((size_t)p * nocts + o) * 64);
        int nk = C - k < 8 ? C - k : 8;
        for (int t = 0; t < nk; t++) {
            int sh = 8 * (t & 3) + 4 * (t >> 2);
            __m512i u = _mm512_and_si512(_mm512_srli_epi32(v, sh), m4);
            __m512 wv = _mm512_mul_ps(S, _mm512_cvtepi32_ps(_mm512_sub_epi32(u, Z)));
#pragma GCC unroll 8
            for (int i = 0; i < NT; i++)
                acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(x[(size_t)(n0 + i) * ldx + k + t]), wv, acc[i]);
        }
    }
    int r0 = p * 16, nr = w->rows - r0 < 16 ? w->rows - r0 : 16;
    __mmask16 m = (__mmask16)((1u << nr) - 1);
    for (int i = 0; i < NT; i++) _mm512_mask_storeu_ps(y + (size_t)(n0 + i) * ldy + r0, m, acc[i]);
}

TGT void spq_qk_f32_avx512(float *y, int ldy, const float *x, int ldx, const spq_qlinear *w, int n0, int n1, int p0,
                           int p1) {
    for (int n = n0; n < n1; n += 8) {
        int nt = n1 - n < 8 ? n1 - n : 8;
        for (int p = p0; p < p1; p++) {
            switch (nt) {
            case 1: f32_tile(y, ldy, x, ldx, w, n, p, 1); break;
            case 2: f32_tile(y, ldy, x, ldx, w, n, p, 2); break;
            case 3: f32_tile(y, ldy, x, ldx, w, n, p, 3); break;
            case 4: f32_tile(y, ldy, x, ldx, w, n, p, 4); break;
            case 5: f32_tile(y, ldy, x, ldx, w, n, p, 5); break;
            case 6: f32_tile(y, ldy, x, ldx, w, n, p, 6); break;
            case 7: f32_tile(y, ldy, x, ldx, w, n, p, 7); break;
            default: f32_tile(y, ldy, x, ldx, w, n, p, 8); break;
            }
        }
    }
}

/* one panel dequantized, transposed: out[k * ldo + r] = s (u - z) for the
 * panel's 16 rows r and every column k (qgemm.c's blocked W4A16 path) */
TGT void spq_dq_panel_avx512(float *out, int ldo, const spq_qlinear *w, int p) {
    const __m512i m4 = _mm512_set1_epi32(0x0F);
    const int C = w->cols, ng = w->ngroups, G = w->groupsize ? w->groupsize : C;
    __m512 S = _mm512_setzero_ps();
    __m512i Z = _mm512_setzero_si512();
    for (int o = 0; o < w->nocts; o++) {
        int k = o * 8;
        if (k % G == 0 || o == 0) {
            S = _mm512_load_ps(w->scale + ((size_t)p * ng + k / G) * 16);
            Z = _mm512_load_si512(w->zero + ((size_t)p * ng + k / G) * 16);
        }
        __m512i v = _mm512_loadu_si512(w->codes + ((size_t)p * w->nocts + o) * 64);
        int nk = C - k < 8 ? C - k : 8;
        for (int t = 0; t < nk; t++) {
            __m512i u = _mm512_and_si512(_mm512_srli_epi32(v, 8 * (t & 3) + 4 * (t >> 2)), m4);
            _mm512_storeu_ps(out + (size_t)(k + t) * ldo, _mm512_mul_ps(S, _mm512_cvtepi32_ps(_mm512_sub_epi32(u, Z))));
        }
    }
}

/* ---- 16-bit classifier rows ---- */

TGT static INL __m512 widen16(const uint16_t *p, int bf16) {
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

TGT static INL __m512 widen16_mask(const uint16_t *p, int n, int bf16) {
    __m256i h = _mm256_maskz_loadu_epi16((__mmask16)((1u << n) - 1), p);
    if (bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

TGT void spq_hk_avx512(float *y, const float *x, int N, const uint16_t *W, int cols, int rows_total, int r0, int r1,
                       int bf16) {
    for (int r = r0; r < r1; r++) {
        const uint16_t *wr = W + (size_t)r * cols;
        __m512 acc[8];
        for (int n = 0; n < N; n++) acc[n] = _mm512_setzero_ps();
        int k = 0;
        for (; k + 16 <= cols; k += 16) {
            __m512 wv = widen16(wr + k, bf16);
            for (int n = 0; n < N; n++) acc[n] = _mm512_fmadd_ps(_mm512_loadu_ps(x + (size_t)n * cols + k), wv, acc[n]);
        }
        if (k < cols) {
            int rem = cols - k;
            __mmask16 m = (__mmask16)((1u << rem) - 1);
            __m512 wv = widen16_mask(wr + k, rem, bf16);
            for (int n = 0; n < N; n++)
                acc[n] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + (size_t)n * cols + k), wv, acc[n]);
        }
        for (int n = 0; n < N; n++) y[(size_t)n * rows_total + r] = _mm512_reduce_add_ps(acc[n]);
    }
}
