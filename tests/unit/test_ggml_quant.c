/* test_ggml_quant.c - llama.cpp's Q4_0 / Q8_0 blocks against a scalar
 * definition written here from the format (ggml's block layout and its
 * reference quantizers), and the block grid inside spinq's weight quantizer:
 * RTN and GPTQ land exactly on values a block can hold. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/kernels/ggml_quant.h"
#include "common/quant/gptq.h"
#include "common/base/half.h"
#include "common/kernels/quant.h"
#include "common/quant/wquant.h"

/* ---- the scalar definition ---- */

/* value j of a Q4_0 block's 18 bytes: d (fp16 LE), byte j%16 of the 16,
 * low nibble for j < 16, high nibble for j >= 16, x = d (q - 8) */
static float def_q4_0(const uint8_t *blk, int j) {
    uint16_t h = (uint16_t)(blk[0] | blk[1] << 8);
    uint8_t b = blk[2 + j % 16];
    int q = j < 16 ? (b & 15) : (b >> 4);
    return spq_f16_to_f32(h) * (float)(q - 8);
}

/* value j of a Q8_0 block's 34 bytes: d (fp16 LE), int8 q[j], x = d q */
static float def_q8_0(const uint8_t *blk, int j) {
    uint16_t h = (uint16_t)(blk[0] | blk[1] << 8);
    return spq_f16_to_f32(h) * (float)(int8_t)blk[2 + j];
}

/* llama.cpp's reference quantizers (quantize_row_q4_0_ref, _q8_0_ref) as
 * the codes they choose: the fp32 scale for rounding, fp16 for storage */
static void ref_q4_0(int *codes, float *d_out, const float *x) {
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
    float d = max / -8, id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) {
        int q = (int)(int8_t)(x[j] * id + 8.5f);
        codes[j] = (q > 15 ? 15 : q) - 8;
    }
    *d_out = d;
}

static void ref_q8_0(int *codes, float *d_out, const float *x) {
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; j++) codes[j] = (int)roundf(x[j] * id);
    *d_out = d;
}

static float fp16_round(float x) { return spq_f16_to_f32(spq_f32_to_f16(x)); }

static void fill(float *x, int n, unsigned seed, float scale) {
    srand(seed);
    for (int i = 0; i < n; i++) {
        float u = (float)rand() / (float)RAND_MAX - 0.5f;
        x[i] = scale * u * (i % 7 == 0 ? 5.0f : 1.0f); /* some outliers */
    }
}

/* ---- blocks ---- */

Test(ggml_quant, pack_decode_matches_the_definition) {
    enum { N = 32 * 64 };
    int8_t c4[N], c8[N];
    float s[N / 32], out[N];
    srand(7);
    for (int i = 0; i < N; i++) c4[i] = (int8_t)(rand() % 16 - 8), c8[i] = (int8_t)(rand() % 256 - 128);
    for (int b = 0; b < N / 32; b++) s[b] = fp16_round((b % 2 ? -1.0f : 1.0f) * 0.001f * (float)(b + 1));
    spq_block_q4_0 q4[N / 32];
    spq_block_q8_0 q8[N / 32];
    spq_q4_0_pack(q4, c4, s, N);
    spq_q8_0_pack(q8, c8, s, N);
    const uint8_t *raw4 = (const uint8_t *)q4, *raw8 = (const uint8_t *)q8;
    spq_q4_0_decode(out, q4, N);
    for (int i = 0; i < N; i++) {
        float want = def_q4_0(raw4 + (size_t)(i / 32) * 18, i % 32);
        cr_assert_eq(out[i], want, "q4_0 value %d: %g, definition %g", i, out[i], want);
        cr_assert_eq(want, s[i / 32] * (float)c4[i], "q4_0 value %d is not d * code", i);
    }
    spq_q8_0_decode(out, q8, N);
    for (int i = 0; i < N; i++) {
        float want = def_q8_0(raw8 + (size_t)(i / 32) * 34, i % 32);
        cr_assert_eq(out[i], want, "q8_0 value %d", i);
        cr_assert_eq(want, s[i / 32] * (float)c8[i], "q8_0 value %d is not d * code", i);
    }
}

Test(ggml_quant, grid_scale_is_llama_cpps_in_fp16) {
    float x[32];
    for (int t = 0; t < 200; t++) {
        fill(x, 32, 100 + t, t % 3 ? 0.05f : 3.0f);
        int c[32];
        float d;
        ref_q4_0(c, &d, x);
        cr_assert_eq(spq_ggml_grid_scale(SPQ_GRID_Q4_0, x, 32), fp16_round(d));
        ref_q8_0(c, &d, x);
        cr_assert_eq(spq_ggml_grid_scale(SPQ_GRID_Q8_0, x, 32), fp16_round(d));
    }
    memset(x, 0, sizeof x); /* an all-zero block: a tiny positive scale, codes 0 */
    cr_assert_eq(spq_ggml_grid_scale(SPQ_GRID_Q4_0, x, 32), 0x1p-24f);
    x[3] = 1e9f;
    cr_assert_eq(spq_ggml_grid_scale(SPQ_GRID_Q8_0, x, 32), 65504.0f);
}

/* RTN on the grid: the values are the nearest of the decoded grid, and the
 * codes are llama.cpp's wherever x / d is not within fp16 rounding of a
 * midpoint */
static void rtn_vs_reference(int grid) {
    enum { ROWS = 16, COLS = 256 };
    float *W = malloc(sizeof(float) * ROWS * COLS), *Q = malloc(sizeof(float) * ROWS * COLS);
    fill(W, ROWS * COLS, 42 + grid, 0.1f);
    spq_wq_cfg c = {.bits = grid == SPQ_GRID_Q4_0 ? 4 : 8, .sym = 1, .groupsize = 32, .grid = grid};
    spq_err err;
    cr_assert_eq(spq_wq_validate(&c, COLS, &err), 0, "%s", err.msg);
    float s[ROWS * COLS / 32], z[ROWS * COLS / 32];
    spq_wq_params(s, z, W, ROWS, COLS, &c);
    spq_wq_apply(Q, W, s, z, ROWS, COLS, &c);
    int8_t *codes = malloc(ROWS * COLS);
    spq_wq_codes(codes, W, s, z, ROWS, COLS, &c);
    int differ = 0, lo = grid == SPQ_GRID_Q4_0 ? -8 : -127, hi = grid == SPQ_GRID_Q4_0 ? 7 : 127;
    for (int b = 0; b < ROWS * COLS / 32; b++) {
        int ref[32];
        float d;
        (grid == SPQ_GRID_Q4_0 ? ref_q4_0 : ref_q8_0)(ref, &d, W + b * 32);
        cr_assert_eq(s[b], fp16_round(d));
        for (int j = 0; j < 32; j++) {
            int i = b * 32 + j;
            cr_assert_eq(Q[i], s[b] * (float)codes[i]);
            /* nearest grid value (within fp32 rounding of the comparison) */
            for (int k = lo; k <= hi; k++)
                cr_assert_leq(fabsf(Q[i] - W[i]), fabsf(s[b] * (float)k - W[i]) * (1 + 1e-6f) + 1e-12f);
            if (codes[i] != ref[j]) {
                differ++;
                float t = W[i] / s[b];
                cr_assert_leq(fabsf(fabsf(t - floorf(t)) - 0.5f), 0.01f * fabsf(t) + 1e-3f,
                              "block %d value %d: code %d, llama.cpp %d, x/d %g is not near a midpoint", b, j,
                              codes[i], ref[j], t);
            }
        }
    }
    cr_assert_leq(differ, ROWS * COLS / 100, "%d codes differ from llama.cpp's reference quantizer", differ);
    free(W);
    free(Q);
    free(codes);
}

Test(ggml_quant, rtn_on_q4_0_grid) { rtn_vs_reference(SPQ_GRID_Q4_0); }
Test(ggml_quant, rtn_on_q8_0_grid) { rtn_vs_reference(SPQ_GRID_Q8_0); }

Test(ggml_quant, grid_settings_are_checked) {
    spq_err err;
    spq_wq_cfg bad[] = {{.bits = 8, .sym = 1, .groupsize = 32, .grid = SPQ_GRID_Q4_0},
                        {.bits = 4, .sym = 1, .groupsize = 64, .grid = SPQ_GRID_Q4_0},
                        {.bits = 4, .sym = 0, .groupsize = 32, .grid = SPQ_GRID_Q4_0},
                        {.bits = 4, .sym = 1, .groupsize = 32, .mse = 1, .grid = SPQ_GRID_Q4_0},
                        {.bits = 4, .sym = 1, .groupsize = 32, .grid = SPQ_GRID_Q8_0}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(spq_wq_validate(&bad[i], 64, &err), -1, "setting %zu accepted", i);
        cr_assert(strstr(err.msg, "w_grid"), "%s", err.msg);
    }
    spq_wq_cfg ok = {.bits = 4, .sym = 1, .groupsize = 32, .grid = SPQ_GRID_Q4_0};
    cr_assert(spq_wq_fits(&ok, 64));
    cr_assert(!spq_wq_fits(&ok, 172));
    ok.grid = 0;
    cr_assert(spq_wq_fits(&ok, 172));
}

/* GPTQ with the grid: every weight is d * code with d the fp16 block scale
 * and the code in range, and the layer error is below RTN's on the grid */
static void gptq_on_grid(int grid) {
    enum { ROWS = 24, COLS = 128, NTOK = 512 };
    float *W = malloc(sizeof(float) * ROWS * COLS), *X = malloc(sizeof(float) * NTOK * COLS);
    fill(W, ROWS * COLS, 5, 0.2f);
    fill(X, NTOK * COLS, 6, 1.0f);
    for (int t = 0; t < NTOK; t++) /* correlated inputs, as real activations are */
        for (int k = 1; k < COLS; k++) X[t * COLS + k] += 0.7f * X[t * COLS + k - 1];
    double *H = calloc((size_t)COLS * COLS, sizeof(double));
    for (int t = 0; t < NTOK; t++)
        for (int i = 0; i < COLS; i++)
            for (int j = 0; j < COLS; j++) H[i * COLS + j] += 2.0 * X[t * COLS + i] * X[t * COLS + j] / NTOK;
    spq_wq_cfg c = {.bits = grid == SPQ_GRID_Q4_0 ? 4 : 8, .sym = 1, .groupsize = 32, .grid = grid};
    spq_gptq_cfg g = spq_gptq_defaults();
    float s[ROWS * COLS / 32], z[ROWS * COLS / 32];
    spq_gptq_stat st;
    spq_err err;
    cr_assert_eq(spq_gptq_linear(W, s, z, H, ROWS, COLS, &c, &g, &st, &err), 0, "%s", err.msg);
    int lo = grid == SPQ_GRID_Q4_0 ? -8 : -128, hi = grid == SPQ_GRID_Q4_0 ? 7 : 127;
    for (int i = 0; i < ROWS * COLS; i++) {
        float d = s[i / 32], k = W[i] / d;
        cr_assert_eq(d, fp16_round(d), "scale %d is not an fp16 value", i / 32);
        cr_assert_eq(k, roundf(k), "weight %d = %g is not a multiple of its block's scale %g", i, W[i], d);
        cr_assert(k >= lo && k <= hi, "weight %d: code %g out of range", i, k);
        cr_assert_eq(z[i / 32], 0);
    }
    cr_assert_lt(st.err_gptq, st.err_rtn, "gptq %g, rtn %g", st.err_gptq, st.err_rtn);
    free(W);
    free(X);
    free(H);
}

Test(ggml_quant, gptq_on_q4_0_grid) { gptq_on_grid(SPQ_GRID_Q4_0); }
Test(ggml_quant, gptq_on_q8_0_grid) { gptq_on_grid(SPQ_GRID_Q8_0); }
