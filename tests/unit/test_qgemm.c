/* test_qgemm.c - the packed kernels: activation codes are the fake
 * quantizer's codes; the scalar integer product equals the exact product of
 * the dequantized operands within its rounding bound, and the fake model's
 * sgemm within (2K + nseg + 6) u sum |x w|; AVX2 and AVX-512 VNNI tiles equal
 * the scalar reference bit for bit on awkward sizes (rows not a multiple of
 * 16, columns not a multiple of 8 or of the group size, token counts that
 * leave partial tiles); the thread split does not change results; packing
 * round-trips and rejects bad codes, zero points, scales and group shapes. */
#include <criterion/criterion.h>
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "common/base/half.h"
#include "common/base/pool.h"
#include "common/kernels/qgemm.h"

typedef struct {
    int rows, cols, bits, G, seg;
    uint8_t *codes;
    float *scale;
    int32_t *zero;
    spq_qlinear w;
    float *Wdq;  /* (rows, cols) dequantized as the fake quantizer does */
} wfix;

static void make_weights(wfix *f, int rows, int cols, int bits, int G, int seg, int sym, uint64_t seed) {
    spq_rng r;
    spq_rng_seed(&r, seed);
    f->rows = rows; f->cols = cols; f->bits = bits; f->G = G; f->seg = seg;
    int ng = G > 0 && G < cols ? (cols + G - 1) / G : 1, qmax = (1 << bits) - 1;
    f->codes = malloc((size_t)rows * cols);
    f->scale = malloc((size_t)rows * ng * sizeof(float));
    f->zero = malloc((size_t)rows * ng * sizeof(int32_t));
    for (size_t i = 0; i < (size_t)rows * cols; i++) f->codes[i] = (uint8_t)(spq_rng_u64(&r) % (qmax + 1));
    for (size_t i = 0; i < (size_t)rows * ng; i++) {
        f->scale[i] = (float)(0.001 + 0.05 * spq_rng_uniform(&r));
        f->zero[i] = sym ? 1 << (bits - 1) : (int32_t)(spq_rng_u64(&r) % (qmax + 1));
    }
    spq_err err;
    cr_assert(spq_qlinear_build(&f->w, f->codes, f->scale, f->zero, rows, cols, bits, G, seg, &err) == 0, "%s",
              err.msg);
    f->Wdq = malloc((size_t)rows * cols * sizeof(float));
    int Ge = G > 0 && G < cols ? G : cols;
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < cols; k++) {
            size_t o = (size_t)i * ng + k / Ge;
            f->Wdq[(size_t)i * cols + k] = f->scale[o] * (float)(f->codes[(size_t)i * cols + k] - f->zero[o]);
        }
}

static void free_weights(wfix *f) {
    spq_qlinear_free(&f->w);
    free(f->codes); free(f->scale); free(f->zero); free(f->Wdq);
}

static float *random_x(int N, int C, uint64_t seed) {
    spq_rng r;
    spq_rng_seed(&r, seed);
    float *x = malloc((size_t)N * C * sizeof(float));
    for (size_t i = 0; i < (size_t)N * C; i++) x[i] = (float)(spq_rng_normal(&r) * (1 + (i % 7 == 0) * 4));
    return x;
}

/* y (N, rows) = x W^T with sgemm: what the fake-quantized model computes */
static void sgemm_ref(float *y, const float *x, const float *W, int N, int C, int rows) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, rows, C, 1.0f, x, C, W, C, 0.0f, y, rows);
}

/* checks |y - y_ref| <= (2K + nseg + 6) u sum |x w| for every output, and
 * against the exact product in double */
static void check_bound(const float *y, const float *xdq, const float *W, int N, int C, int rows, int nseg) {
    float *ys = malloc((size_t)N * rows * sizeof(float));
    sgemm_ref(ys, xdq, W, N, C, rows);
    double u = 0x1p-24;
    for (int n = 0; n < N; n++)
        for (int r = 0; r < rows; r++) {
            double exact = 0, mag = 0;
            for (int k = 0; k < C; k++) {
                double p = (double)xdq[(size_t)n * C + k] * W[(size_t)r * C + k];
                exact += p;
                mag += fabs(p);
            }
            double got = y[(size_t)n * rows + r], bound = (2.0 * C + nseg + 6) * u * mag;
            cr_assert(fabs(got - exact) <= (C + nseg + 6) * u * mag, "token %d row %d: %.9g vs exact %.9g", n, r,
                      got, exact);
            cr_assert(fabs(got - ys[(size_t)n * rows + r]) <= bound, "token %d row %d: %.9g vs sgemm %.9g (bound %g)",
                      n, r, got, ys[(size_t)n * rows + r], bound);
        }
    free(ys);
}

static void run_int_case(int rows, int cols, int wbits, int G, int N, int abits, int asym, int agroup, int wsym,
                         uint64_t seed) {
    spq_aq_cfg aq = {.bits = abits, .sym = !asym, .groupsize = agroup, .clip = asym ? 0.9f : 1.0f};
    int seg;
    spq_err err;
    cr_assert(spq_qseg(&seg, cols, agroup, G, &err) == 0, "%s", err.msg);
    wfix f;
    make_weights(&f, rows, cols, wbits, G, seg, wsym, seed);
    float *x = random_x(N, cols, seed + 1);
    spq_qact qa = {0};
    spq_qact_quantize(&qa, x, N, cols, &aq, seg);
    /* the codes are the fake quantizer's: dequantized they equal spq_aq_forward */
    float *xdq = malloc((size_t)N * cols * sizeof(float));
    spq_aq_forward(xdq, x, N, cols, &aq);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < cols; k++) {
            size_t sj = (size_t)n * qa.nseg + k / seg;
            float v = qa.scale[sj] * (float)(qa.a[(size_t)n * qa.ld + k] + 128 - qa.zero[sj]);
            cr_assert_eq(v, xdq[(size_t)n * cols + k], "activation %d,%d: %g vs fake %g", n, k, v,
                         xdq[(size_t)n * cols + k]);
        }
    float *y0 = malloc((size_t)N * rows * sizeof(float)), *y1 = malloc((size_t)N * rows * sizeof(float));
    spq_qgemm_on(y0, &qa, &f.w, SPQ_ISA_SCALAR);
    check_bound(y0, xdq, f.Wdq, N, cols, rows, f.w.nseg);
    for (int isa = SPQ_ISA_AVX2; isa < SPQ_ISA_COUNT; isa++) {
        if (!spq_qgemm_isa_supported(isa)) continue;
        memset(y1, 0xff, (size_t)N * rows * sizeof(float));
        spq_qgemm_on(y1, &qa, &f.w, isa);
        cr_assert(memcmp(y0, y1, (size_t)N * rows * sizeof(float)) == 0,
                  "%s differs from scalar (rows %d cols %d G %d N %d a%d)", spq_isa_name(isa), rows, cols, G, N,
                  abits);
    }
    free(y0); free(y1); free(x); free(xdq);
    spq_qact_free(&qa);
    free_weights(&f);
}

Test(qgemm, int_paths_equal_scalar_per_channel) {
    run_int_case(37, 100, 4, 0, 1, 8, 1, 0, 1, 1);   /* decode, W4A8 */
    run_int_case(37, 100, 4, 0, 11, 8, 1, 0, 1, 2);  /* prefill with a partial token tile */
    run_int_case(70, 61, 4, 0, 9, 4, 1, 0, 0, 3);    /* W4A4, asymmetric weights, odd columns */
    run_int_case(16, 8, 4, 0, 3, 8, 0, 0, 1, 4);     /* symmetric activations, one octet */
    run_int_case(5, 3, 2, 0, 2, 4, 1, 0, 1, 5);      /* fewer columns than an octet, 2-bit weights */
}

Test(qgemm, int_paths_equal_scalar_groups_and_heads) {
    run_int_case(33, 300, 4, 128, 5, 8, 1, 0, 1, 6);   /* 300 = 2 x 128 + 44 */
    run_int_case(48, 200, 4, 32, 1, 4, 1, 0, 0, 7);    /* 200 = 6 x 32 + 8, decode */
    run_int_case(19, 96, 4, 0, 10, 4, 1, 16, 1, 8);    /* o_proj-like: per (token, head of 16) */
    run_int_case(21, 128, 3, 64, 17, 8, 1, 32, 1, 9);  /* heads of 32 inside weight groups of 64 */
    run_int_case(21, 128, 4, 16, 4, 8, 1, 64, 1, 10);  /* weight groups of 16 inside heads of 64 */
}

static void run_f32_case(int rows, int cols, int G, int N, uint64_t seed) {
    wfix f;
    make_weights(&f, rows, cols, 4, G, cols, 1, seed);
    float *x = random_x(N, cols, seed + 1);
    float *y0 = malloc((size_t)N * rows * sizeof(float)), *y1 = malloc((size_t)N * rows * sizeof(float));
    spq_qgemm_f32_on(y0, x, N, &f.w, SPQ_ISA_SCALAR);
    check_bound(y0, x, f.Wdq, N, cols, rows, 0);
    for (int isa = SPQ_ISA_AVX2; isa < SPQ_ISA_COUNT; isa++) {
        if (!spq_qgemm_isa_supported(isa)) continue;
        spq_qgemm_f32_on(y1, x, N, &f.w, isa);
        cr_assert(memcmp(y0, y1, (size_t)N * rows * sizeof(float)) == 0, "%s W4A16 differs from scalar",
                  spq_isa_name(isa));
    }
    free(y0); free(y1); free(x);
    free_weights(&f);
}

Test(qgemm, f32_paths_equal_scalar) {
    run_f32_case(37, 100, 0, 1, 11);
    run_f32_case(37, 100, 32, 13, 12);
    run_f32_case(18, 77, 0, 9, 13);
    run_f32_case(64, 300, 128, 3, 14);
    run_f32_case(300, 77, 32, 40, 15);  /* prefill: dequantized blocks and sgemm */
}

Test(qgemm, thread_split_does_not_change_results) {
    /* large enough to be split into tasks */
    int rows = 700, cols = 520, N = 3;
    int seg;
    spq_err err;
    cr_assert(spq_qseg(&seg, cols, 0, 0, &err) == 0);
    wfix f;
    make_weights(&f, rows, cols, 4, 0, seg, 1, 21);
    float *x = random_x(N, cols, 22);
    spq_aq_cfg aq = {.bits = 8, .clip = 1};
    spq_qact qa = {0};
    spq_qact_quantize(&qa, x, N, cols, &aq, seg);
    float *y1 = malloc((size_t)N * rows * sizeof(float)), *y2 = malloc((size_t)N * rows * sizeof(float));
    int threads = spq_pool_threads();
    spq_pool_limit(1);
    spq_qgemm(y1, &qa, &f.w);
    spq_pool_limit(threads > 1 ? threads : 2);
    spq_qgemm(y2, &qa, &f.w);
    cr_assert(memcmp(y1, y2, (size_t)N * rows * sizeof(float)) == 0);
    spq_qgemm_f32(y1, x, N, &f.w);
    spq_pool_limit(1);
    spq_qgemm_f32(y2, x, N, &f.w);
    cr_assert(memcmp(y1, y2, (size_t)N * rows * sizeof(float)) == 0);
    spq_pool_limit(threads);
    free(y1); free(y2); free(x);
    spq_qact_free(&qa);
    free_weights(&f);
}

Test(qgemm, pack_round_trip) {
    wfix f;
    make_weights(&f, 23, 45, 4, 16, 16, 0, 31);
    int ng = f.w.ngroups;
    cr_assert_eq(ng, 3);
    uint8_t *c = malloc(23 * 45);
    float *s = malloc(23 * ng * sizeof(float));
    int32_t *z = malloc(23 * ng * sizeof(int32_t));
    spq_qlinear_unpack(c, s, z, &f.w);
    cr_assert(memcmp(c, f.codes, 23 * 45) == 0);
    cr_assert(memcmp(s, f.scale, 23 * ng * sizeof(float)) == 0);
    cr_assert(memcmp(z, f.zero, 23 * ng * sizeof(int32_t)) == 0);
    for (int r = 0; r < 23; r++) {  /* the code sums per segment */
        for (int j = 0; j < f.w.nseg; j++) {
            int32_t u = 0;
            for (int k = j * 16; k < 45 && k < (j + 1) * 16; k++) u += f.codes[r * 45 + k];
            cr_assert_eq(f.w.usum[((r / 16) * f.w.nseg + j) * 16 + r % 16], u);
        }
    }
    /* its reported size is what its four buffers hold (glibc's usable size:
     * what was asked, plus under 64 bytes of slack each) */
    size_t held = malloc_usable_size(f.w.codes) + malloc_usable_size(f.w.scale) + malloc_usable_size(f.w.zero) +
                  malloc_usable_size(f.w.usum);
    size_t bytes = spq_qlinear_bytes(&f.w);
    cr_assert(bytes <= held && held < bytes + 4 * 64, "reported %zu bytes, buffers hold %zu", bytes, held);
    free(c); free(s); free(z);
    free_weights(&f);
}

Test(qgemm, build_rejects_bad_input) {
    uint8_t codes[16 * 16];
    float scale[16 * 2];
    int32_t zero[16 * 2];
    for (int i = 0; i < 256; i++) codes[i] = (uint8_t)(i % 16);
    for (int i = 0; i < 32; i++) { scale[i] = 0.1f; zero[i] = 8; }
    spq_qlinear w;
    spq_err err;
    cr_assert(spq_qlinear_build(&w, codes, scale, zero, 16, 16, 4, 8, 8, &err) == 0, "%s", err.msg);
    spq_qlinear_free(&w);
    codes[17] = 16;
    cr_assert(spq_qlinear_build(&w, codes, scale, zero, 16, 16, 4, 8, 8, &err) == -1);
    cr_assert(strstr(err.msg, "row 1 column 1"), "%s", err.msg);
    codes[17] = 1;
    zero[3] = 16;
    cr_assert(spq_qlinear_build(&w, codes, scale, zero, 16, 16, 4, 8, 8, &err) == -1);
    cr_assert(strstr(err.msg, "zero point 16 of row 1 group 1"), "%s", err.msg);
    zero[3] = 8;
    scale[5] = -1;
    cr_assert(spq_qlinear_build(&w, codes, scale, zero, 16, 16, 4, 8, 8, &err) == -1);
    cr_assert(strstr(err.msg, "scale"), "%s", err.msg);
    scale[5] = NAN;
    cr_assert(spq_qlinear_build(&w, codes, scale, zero, 16, 16, 4, 8, 8, &err) == -1);
    scale[5] = 0.1f;
    cr_assert(spq_qlinear_build(&w, codes, scale, zero, 16, 16, 4, 6, 6, &err) == -1);
    cr_assert(strstr(err.msg, "multiple of 8"), "%s", err.msg);
    cr_assert(spq_qlinear_build(&w, codes, scale, zero, 16, 16, 8, 8, 8, &err) == -1);
    cr_assert(strstr(err.msg, "w_bits 8"), "%s", err.msg);
    int seg;
    cr_assert(spq_qseg(&seg, 96, 16, 24, &err) == -1);
    cr_assert(strstr(err.msg, "nest"), "%s", err.msg);
    cr_assert(spq_qseg(&seg, 60, 12, 0, &err) == -1);
    cr_assert(strstr(err.msg, "multiple of 8"), "%s", err.msg);
    cr_assert(spq_qseg(&seg, 172, 0, 128, &err) == 0 && seg == 128);
    cr_assert(spq_qseg(&seg, 172, 0, 0, &err) == 0 && seg == 172);
    cr_assert(spq_qseg(&seg, 64, 8, 0, &err) == 0 && seg == 8);
}

Test(qgemm, half_weights) {
    int rows = 37, cols = 83;
    spq_rng r;
    spq_rng_seed(&r, 41);
    uint16_t *W16 = malloc((size_t)rows * cols * 2);
    float *W = malloc((size_t)rows * cols * sizeof(float));
    for (int bf = 0; bf < 2; bf++) {
        for (size_t i = 0; i < (size_t)rows * cols; i++) {
            float v = (float)spq_rng_normal(&r);
            W16[i] = bf ? spq_f32_to_bf16(v) : spq_f32_to_f16(v);
            W[i] = bf ? spq_bf16_to_f32(W16[i]) : spq_f16_to_f32(W16[i]);
        }
        static const int Ns[] = {1, 12, 17, 40}; /* one block, 8-row blocks (decode batches), widened (prefill) */
        for (int t = 0; t < 4; t++) {
            int N = Ns[t];
            float *x = random_x(N, cols, 42 + N), *y = malloc((size_t)N * rows * sizeof(float));
            spq_hgemm(y, x, N, W16, rows, cols, bf);
            for (int n = 0; n < N; n++)
                for (int i = 0; i < rows; i++) {
                    double e = 0, mag = 0;
                    for (int k = 0; k < cols; k++) {
                        e += (double)x[n * cols + k] * W[(size_t)i * cols + k];
                        mag += fabs((double)x[n * cols + k] * W[(size_t)i * cols + k]);
                    }
                    cr_assert(fabs(y[n * rows + i] - e) <= cols * 0x1p-24 * mag, "bf16=%d N=%d row %d", bf, N, i);
                }
            free(x); free(y);
        }
    }
    free(W16); free(W);
}

/* The path qgemm takes against /proc/cpuinfo's flags (the kernel's reading
 * of cpuid, independent of __builtin_cpu_supports): AVX-512 VNNI wherever it
 * exists (Intel since Ice Lake/Cascade Lake, AMD since Zen 4), then
 * AVX-VNNI, then AVX2. */
Test(qgemm, the_best_path_follows_the_cpu_flags) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    cr_assert(f, "/proc/cpuinfo");
    char line[8192], flags[8192] = " ";
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            snprintf(flags, sizeof flags, " %s ", strchr(line, ':') + 1);
            break;
        }
    fclose(f);
    for (char *c = flags; *c; c++)
        if (*c == '\n' || *c == '\t') *c = ' ';
#define HAS(x) (strstr(flags, " " x " ") != NULL)
    int avx2 = HAS("avx2") && HAS("fma");
    int want = HAS("avx512_vnni") && HAS("avx512f") && HAS("avx512bw") && HAS("avx512vl") ? SPQ_ISA_AVX512
               : avx2 && HAS("avx_vnni")                                                ? SPQ_ISA_AVXVNNI
               : avx2                                                                   ? SPQ_ISA_AVX2
                                                                                        : SPQ_ISA_SCALAR;
    cr_assert_eq(spq_qgemm_isa_best(), want, "best path %s, flags say %s", spq_isa_name(spq_qgemm_isa_best()),
                 spq_isa_name(want));
    cr_assert_eq(spq_qgemm_isa_supported(SPQ_ISA_AVXVNNI), avx2 && HAS("avx_vnni"));
#undef HAS
}
