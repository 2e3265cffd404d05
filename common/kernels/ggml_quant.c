/* ggml_quant.c - see ggml_quant.h. */
#include "ggml_quant.h"

#include <math.h>
#include <string.h>

#include "common/base/half.h"

float spq_ggml_grid_scale(int grid, const float *x, int len) {
    float amax = 0, m = 0;
    for (int i = 0; i < len; i++)
        if (amax < fabsf(x[i])) {
            amax = fabsf(x[i]);
            m = x[i];
        }
    float d = grid == SPQ_GRID_Q4_0 ? m / -8.0f : amax / 127.0f;
    float h = spq_f16_to_f32(spq_f32_to_f16(d));
    if (h == 0) return 0x1p-24f;
    if (isinf(h)) return copysignf(65504.0f, h);
    return h;
}

void spq_q4_0_pack(spq_block_q4_0 *b, const int8_t *codes, const float *scales, size_t n) {
    for (size_t k = 0; k < n / SPQ_QK; k++) {
        const int8_t *c = codes + k * SPQ_QK;
        b[k].d = spq_f32_to_f16(scales[k]);
        for (int j = 0; j < 16; j++) b[k].qs[j] = (uint8_t)((c[j] + 8) | ((c[j + 16] + 8) << 4));
    }
}

void spq_q8_0_pack(spq_block_q8_0 *b, const int8_t *codes, const float *scales, size_t n) {
    for (size_t k = 0; k < n / SPQ_QK; k++) {
        b[k].d = spq_f32_to_f16(scales[k]);
        memcpy(b[k].qs, codes + k * SPQ_QK, SPQ_QK);
    }
}

void spq_q4_0_decode(float *out, const spq_block_q4_0 *b, size_t n) {
    for (size_t k = 0; k < n / SPQ_QK; k++) {
        spq_block_q4_0 blk;
        memcpy(&blk, b + k, sizeof blk); /* blocks in a file are 2-byte aligned at best */
        float d = spq_f16_to_f32(blk.d);
        float *o = out + k * SPQ_QK;
        for (int j = 0; j < 16; j++) {
            o[j] = d * (float)((blk.qs[j] & 0x0F) - 8);
            o[j + 16] = d * (float)((blk.qs[j] >> 4) - 8);
        }
    }
}

void spq_q8_0_decode(float *out, const spq_block_q8_0 *b, size_t n) {
    for (size_t k = 0; k < n / SPQ_QK; k++) {
        spq_block_q8_0 blk;
        memcpy(&blk, b + k, sizeof blk);
        float d = spq_f16_to_f32(blk.d);
        for (int j = 0; j < SPQ_QK; j++) out[k * SPQ_QK + j] = d * (float)blk.qs[j];
    }
}
