/* qgemm_avx2_int.h - the int4 x int8 tile of qgemm_avx2.c, included once
 * per instruction set that runs it on 256-bit vectors: AVX2 (vpmaddubsw +
 * vpmaddwd) and AVX-VNNI (vpdpbusd, VEX-encoded: Alder Lake and later, Zen 5).
 * Both give the same int32 sums (qgemm_avx2.c: no int16 saturation), so the
 * paths are equal bit for bit. Before including, define
 *   QK_TGT   the target attribute of the functions,
 *   QK_TILE  the name of the tile function,
 *   QK_NAME  the name of the spq_qk_int_* entry point,
 *   QK_DOT(acc, lo, hi, b0, b1)  acc + the 4-byte dot products of the low
 *            nibbles with b0 and the high nibbles with b1, per int32 lane. */

QK_TGT static INL void QK_TILE(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int p,
                             const int NT) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
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
                for (int h = 0; h < 2; h++) acc[t][h] = QK_DOT(acc[t][h], lo[h], hi[h], b0, b1);
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

QK_TGT void QK_NAME(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int n1, int p0,
                         int p1) {
    for (int n = n0; n < n1; n += 4) {
        int nt = n1 - n < 4 ? n1 - n : 4;
        for (int p = p0; p < p1; p++) {
            switch (nt) {
            case 1: QK_TILE(y, ldy, qa, w, n, p, 1); break;
            case 2: QK_TILE(y, ldy, qa, w, n, p, 2); break;
            case 3: QK_TILE(y, ldy, qa, w, n, p, 3); break;
            default: QK_TILE(y, ldy, qa, w, n, p, 4); break;
            }
        }
    }
}

#undef QK_TGT
#undef QK_TILE
#undef QK_NAME
#undef QK_DOT
