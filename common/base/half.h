/* half.h - conversions between fp32 and the two 16-bit float formats of
 * model files: IEEE binary16 (fp16: 5-bit exponent, 10-bit mantissa) and
 * bfloat16 (bf16: fp32's 8-bit exponent, 7-bit mantissa).
 *
 * Widening is exact for every value (fp16 subnormals become fp32 normals,
 * inf and NaN stay inf and NaN). Narrowing rounds to nearest, ties to even,
 * like PyTorch's .to(torch.float16 / torch.bfloat16): out-of-range values
 * become inf, tiny ones fp16 subnormals or signed zero, NaN stays a quiet
 * NaN. */
#ifndef SPQ_HALF_H
#define SPQ_HALF_H

#include <stddef.h>
#include <stdint.h>

float spq_f16_to_f32(uint16_t h);
uint16_t spq_f32_to_f16(float f);
float spq_bf16_to_f32(uint16_t h);
uint16_t spq_f32_to_bf16(float f);

/* Arrays: out (n) from in (n). The 16-bit inputs are read with memcpy, so
 * `in` need not be 2-byte aligned (tensors inside a mapped file may not be). */
void spq_f16_to_f32_array(float *out, const void *in, size_t n);
void spq_bf16_to_f32_array(float *out, const void *in, size_t n);
void spq_f32_to_f16_array(uint16_t *out, const float *in, size_t n);
void spq_f32_to_bf16_array(uint16_t *out, const float *in, size_t n);
/* The same for a 16-bit dtype chosen at run time: bf16 != 0 for BF16, else F16. */
void spq_half_to_f32_array(float *out, const void *in, size_t n, int bf16);
void spq_f32_to_half_array(uint16_t *out, const float *in, size_t n, int bf16);

#endif
