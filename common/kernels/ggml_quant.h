/* ggml_quant.h - llama.cpp's Q4_0 and Q8_0 weight blocks, and the grid
 * they put weights on.
 *
 * A block holds 32 consecutive weights of a row with one fp16 scale d:
 *   Q4_0: 18 bytes, d then 16 bytes of nibbles q in [0, 15]; byte j holds
 *         weight j in its low nibble and weight j + 16 in its high one;
 *         x = d * (q - 8).
 *   Q8_0: 34 bytes, d then 32 int8 q; x = d * q.
 * The scale of a block is llama.cpp's (its reference quantizers
 * quantize_row_q4_0_ref / _q8_0_ref):
 *   Q4_0: d = m / -8 with m the weight of largest magnitude, sign kept (the
 *         first one on ties), so that m itself is code -8 exactly;
 *   Q8_0: d = max |x| / 127;
 * rounded to fp16 because the block stores it so. spinq's weight quantizer
 * takes this as a "grid" (quant.h, spq_wq_cfg.grid): the scale of each
 * group of 32 is spq_ggml_grid_scale's, the code round-to-nearest-even of
 * x / d with the fp16 d, clamped to [-8, 7] or [-128, 127]. So RTN picks the
 * nearest value of the decoded grid, and GPTQ's error compensation works on
 * exactly the values the block decodes to. (llama.cpp's own quantizer rounds
 * x / d with the fp32 d half away from zero; the two differ only where x / d
 * falls within fp16's rounding of d of a midpoint.)
 *
 * A scale that rounds to fp16 zero (an all-zero or tiny block) becomes the
 * smallest fp16 subnormal 2^-24, one that overflows fp16 becomes +-65504, so
 * that codes stay finite. */
#ifndef SPQ_GGML_QUANT_H
#define SPQ_GGML_QUANT_H

#include <stddef.h>
#include <stdint.h>

#define SPQ_QK 32 /* weights per block */

typedef struct {
    uint16_t d;       /* fp16 */
    uint8_t qs[16];
} spq_block_q4_0;

typedef struct {
    uint16_t d;       /* fp16 */
    int8_t qs[32];
} spq_block_q8_0;

_Static_assert(sizeof(spq_block_q4_0) == 18, "Q4_0 block is 18 bytes");
_Static_assert(sizeof(spq_block_q8_0) == 34, "Q8_0 block is 34 bytes");

/* grids (also the values of spq_wq_cfg.grid) */
enum { SPQ_GRID_NONE = 0, SPQ_GRID_Q4_0 = 1, SPQ_GRID_Q8_0 = 2 };

/* The scale of a block x (len, 32 in a block), as a float holding an fp16
 * value (negative possible for Q4_0). */
float spq_ggml_grid_scale(int grid, const float *x, int len);

/* Blocks from integer codes (n a multiple of 32, codes[i] in [-8, 7] for
 * Q4_0, [-128, 127] for Q8_0) and one scale per block (fp16 values). */
void spq_q4_0_pack(spq_block_q4_0 *b, const int8_t *codes, const float *scales, size_t n);
void spq_q8_0_pack(spq_block_q8_0 *b, const int8_t *codes, const float *scales, size_t n);

/* out (n) = the values of n / 32 blocks. */
void spq_q4_0_decode(float *out, const spq_block_q4_0 *b, size_t n);
void spq_q8_0_decode(float *out, const spq_block_q8_0 *b, size_t n);

#endif
