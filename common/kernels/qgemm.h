/* qgemm.h - the packed model's kernels: int4 weights times int8/int4
 * activations with int32 accumulation (W4A8, W4A4), int4 weights times fp32
 * activations dequantized on the fly (W4A16), and fp16/bf16 weights times
 * fp32 activations (the classifier when stored in 16 bits).
 *
 * Weights. Codes are unsigned, u in [0, 2^bits) (symmetric codes c in
 * [-8, 7] are stored as u = c + 8 with zero point 8), and a weight is
 *   w = s_g (u - z_g),   s_g, z_g per (row, group of G input columns).
 * In memory (spq_qlinear) rows are grouped in panels of 16 and columns in
 * octets of 8; panel p, octet o is one 64-byte block whose byte 4r + t holds
 * row 16p + r's columns 8o + t (low nibble) and 8o + 4 + t (high nibble),
 * t = 0..3. One 512-bit load thus gives, after masking and shifting, two
 * vectors whose 32-bit lane r holds four consecutive codes of row r: what
 * vpdpbusd (and vpmaddubsw + vpmaddwd on AVX2) multiply against four
 * broadcast activation bytes. Padding (rows to 16, columns to 8) is code 0.
 *
 * Activations (W4A8/W4A4) are quantized per token on the fly with the fake
 * quantizer's own parameters (quant.h: asymmetric with zero point, per token,
 * or per (token, head) for the o_proj input):
 *   x = s_a (a - z_a),   a in [0, 2^abits)  (symmetric codes offset like weights)
 * and kept as a - 128 in int8 (so that the SIMD kernels can use the signed
 * operand of vpdpbusd for them), with the sums of a per segment.
 *
 * Integer dot product. Columns are cut into segments on which both the
 * activation's and the weight's parameters are constant (spq_qseg). For one
 * token, one row and one segment of length L,
 *   sum (a_i - z_a)(u_i - z_w) = D - z_w A - z_a U + L z_a z_w  =: I
 * with D = sum a_i u_i (int32 accumulation), A = sum a_i (per token, at
 * quantization time) and U = sum u_i (per row, at packing time); the SIMD
 * kernels accumulate sum (a_i - 128) u_i and add 128 U. I is exact in int32
 * for columns <= 65536. Then, in fp32,
 *   y = 0;  for each segment: y = fma((float) I, s_w * s_a, y)
 * in segment order. Every path (scalar, AVX2, AVX-512 VNNI) computes the same
 * integers and performs the same fp32 operations in the same order, so their
 * outputs are bitwise equal; the scalar path is the reference.
 *
 * W4A16: y = 0; for each column k in order: y = fma(x_k, s_g * (float)(u_k -
 * z_g), y) - the dequantized weight is rounded exactly as the fake quantizer
 * rounds it, and the order of operations is the same on every path. With
 * SPQ_QGEMM_F32_SGEMM_MIN tokens or more (prefill) the same dequantized
 * values are formed for a block of rows at a time (a transient fp32 block of
 * about 8 MB, never the whole matrix) and multiplied with sgemm: as fast as
 * the fp32 model, the same on every path, in sgemm's accumulation order.
 *
 * Compared with the fake-quantized fp32 model (which multiplies the same
 * dequantized values with sgemm), the only differences are rounding: per
 * output, to first order in the unit roundoff u = 2^-24,
 *   |y_packed - y_fake| <= (2K + nseg + 6) u sum_i |x_i w_i|
 * for K columns: at most K u from the sgemm's accumulation, 2u from the fake
 * model's roundings of x and w, and here (integer path) the conversion of I,
 * the product s_w s_a and one fma per segment, or (W4A16) K u from the
 * sequential fma accumulation (sgemm's K terms for the blocked path).
 *
 * Work is split over output panels on the thread pool (pool.h); the split
 * does not change any result. */
#ifndef SPQ_QGEMM_H
#define SPQ_QGEMM_H

#include <stddef.h>
#include <stdint.h>

#include "quant.h"
#include "common/base/util.h"

#define SPQ_QPANEL 16
#define SPQ_QMAX_COLS 65536
#define SPQ_QGEMM_F32_SGEMM_MIN 16

typedef struct {
    int rows, cols;     /* the weight's (out, in) */
    int bits;           /* 2..4 */
    int groupsize;      /* 0: one group per row; G (a multiple of 8) */
    int ngroups;
    int seg, nseg;      /* integer-dot segments (spq_qseg) */
    int nocts;          /* ceil(cols / 8) */
    int npanels;        /* ceil(rows / 16) */
    uint8_t *codes;     /* (npanels, nocts, 64), 64-byte aligned */
    float *scale;       /* (npanels, ngroups, 16) */
    int32_t *zero;      /* (npanels, ngroups, 16) */
    int32_t *usum;      /* (npanels, nseg, 16) */
} spq_qlinear;

/* The segment length for a row of C columns whose activation quantizer has
 * groups of act_group (0: the whole row) and whose weights have groups of
 * w_group (0: the whole row). Fails, naming the sizes, when the two do not
 * nest (neither a multiple of the other) or when segments are not a multiple
 * of 8 columns while there are several. */
int spq_qseg(int *seg, int C, int act_group, int w_group, spq_err *err);

/* Packs codes (rows, cols) in [0, 2^bits) with scale, zero (rows, ngroups)
 * (zero an integer in [0, 2^bits)). Checks the sizes and values and names the
 * one that is wrong. */
int spq_qlinear_build(spq_qlinear *w, const uint8_t *codes, const float *scale, const int32_t *zero, int rows,
                      int cols, int bits, int groupsize, int seg, spq_err *err);
void spq_qlinear_free(spq_qlinear *w);
/* codes (rows, cols), scale and zero (rows, ngroups) back out of the layout */
void spq_qlinear_unpack(uint8_t *codes, float *scale, int32_t *zero, const spq_qlinear *w);
/* one code, from the packed layout */
static inline int spq_qlinear_code(const spq_qlinear *w, int r, int k) {
    const uint8_t *b = w->codes + ((size_t)(r / SPQ_QPANEL) * w->nocts + k / 8) * 64 + 4 * (r % SPQ_QPANEL) + (k & 3);
    return (k & 4) ? *b >> 4 : *b & 15;
}
/* index in scale/zero of row r's group g, in the panel layout */
static inline size_t spq_qlinear_param(const spq_qlinear *w, int r, int g) {
    return ((size_t)(r / SPQ_QPANEL) * w->ngroups + g) * SPQ_QPANEL + r % SPQ_QPANEL;
}
/* bytes of weight data (codes and parameters) */
size_t spq_qlinear_bytes(const spq_qlinear *w);

/* ---- activations ---- */

typedef struct {
    int N, C, ld;       /* rows, columns, row stride of a (C rounded up to 8) */
    int seg, nseg;
    int8_t *a;          /* (N, ld): code - 128 */
    float *scale;       /* (N, nseg) */
    int32_t *zero;      /* (N, nseg) zero point of the unsigned codes */
    int32_t *asum;      /* (N, nseg) sum of the unsigned codes */
    size_t cap_a, cap_s;
} spq_qact;

void spq_qact_free(spq_qact *qa);
/* Quantizes x (N, C) with aq (2..8 bits; groups of aq->groupsize, which must
 * be a multiple of seg or the whole row) into qa, growing its buffers. The
 * codes are the fake quantizer's codes (quant.h), element for element. */
void spq_qact_quantize(spq_qact *qa, const float *x, int N, int C, const spq_aq_cfg *aq, int seg);

/* ---- products ---- */

enum { SPQ_ISA_SCALAR = 0, SPQ_ISA_AVX2 = 1, SPQ_ISA_AVXVNNI = 2, SPQ_ISA_AVX512 = 3, SPQ_ISA_COUNT = 4 };
/* the path spq_qgemm and spq_qgemm_f32 take: the best this CPU runs
 * (AVX-512 VNNI, AVX-VNNI, AVX2+FMA, or scalar; Intel since Ice Lake and AMD
 * since Zen 4 take AVX-512 VNNI), or a lower one chosen with
 * spq_qgemm_set_isa or the environment variable SPINQ_ISA (scalar, avx2,
 * avxvnni, avx512) for tests and benchmarks. AVX-VNNI changes only the
 * integer products; W4A16 runs the AVX2 tiles there. Every path gives the
 * scalar reference's results bit for bit. */
int spq_qgemm_isa(void);
/* the best path this CPU runs */
int spq_qgemm_isa_best(void);
/* whether this CPU runs that path (the paths are not nested: Cascade Lake
 * has AVX-512 VNNI but no AVX-VNNI) */
int spq_qgemm_isa_supported(int isa);
/* chooses the path (the best supported one at or below it); returns the one
 * in effect */
int spq_qgemm_set_isa(int isa);
const char *spq_isa_name(int isa);

/* y (N, rows) = the integer product of qa (N, cols) and w (seg must match) */
void spq_qgemm(float *y, const spq_qact *qa, const spq_qlinear *w);
/* y (N, rows) = x (N, cols) times w dequantized on the fly (W4A16) */
void spq_qgemm_f32(float *y, const float *x, int N, const spq_qlinear *w);
/* the same on a chosen path (capped at the best), for tests */
void spq_qgemm_on(float *y, const spq_qact *qa, const spq_qlinear *w, int isa);
void spq_qgemm_f32_on(float *y, const float *x, int N, const spq_qlinear *w, int isa);

/* y (N, rows) = x (N, cols) W^T with W (rows, cols) in fp16 (bf16 = 0) or
 * bf16 (bf16 = 1), widened exactly and accumulated in fp32. */
void spq_hgemm(float *y, const float *x, int N, const uint16_t *W, int rows, int cols, int bf16);

#endif
