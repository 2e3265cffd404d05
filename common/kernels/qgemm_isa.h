/* qgemm_isa.h - the per-instruction-set tile kernels behind qgemm.h (private
 * to qgemm*.c). Each computes the outputs of tokens [n0, n1) and row panels
 * [p0, p1) into y (ldy floats per token), writing only the real rows. The
 * AVX2 and AVX-512 versions are compiled with target attributes, so the
 * build stays baseline x86-64 and qgemm.c picks one at run time. */
#ifndef SPQ_QGEMM_ISA_H
#define SPQ_QGEMM_ISA_H

#include "qgemm.h"

void spq_qk_int_scalar(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int n1, int p0, int p1);
void spq_qk_int_avx2(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int n1, int p0, int p1);
void spq_qk_int_avxvnni(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int n1, int p0, int p1);
void spq_qk_int_avx512(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int n1, int p0, int p1);

void spq_qk_f32_scalar(float *y, int ldy, const float *x, int ldx, const spq_qlinear *w, int n0, int n1, int p0,
                       int p1);
void spq_qk_f32_avx2(float *y, int ldy, const float *x, int ldx, const spq_qlinear *w, int n0, int n1, int p0,
                     int p1);
void spq_qk_f32_avx512(float *y, int ldy, const float *x, int ldx, const spq_qlinear *w, int n0, int n1, int p0,
                       int p1);

/* one panel dequantized and transposed: out[k * ldo + r], r < 16 */
void spq_dq_panel_avx512(float *out, int ldo, const spq_qlinear *w, int p);

/* rows [r0, r1) of y (N, rows) = x W^T for 16-bit W (hgemm, decode sizes) */
void spq_hk_scalar(float *y, const float *x, int N, const uint16_t *W, int cols, int rows_total, int r0, int r1,
                   int bf16);
void spq_hk_avx512(float *y, const float *x, int N, const uint16_t *W, int cols, int rows_total, int r0, int r1,
                   int bf16);

#endif
