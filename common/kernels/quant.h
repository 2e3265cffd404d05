/* quant.h - fake quantizers (quantize-dequantize in fp32) for weights and
 * activations, as SpinQuant's reference (GPTQ's find_params, QuaRot's
 * ActQuantizer) does them, with the straight-through gradient.
 *
 * One element, with integer range [qmin, qmax], scale s and zero point z:
 *   code(x) = clamp(round(x / s) + z, qmin, qmax)      (round: half to even)
 *   qdq(x)  = s * (code(x) - z)
 * all in fp32 with a true division x / s, like torch. round is the current
 * rounding mode's nearest (round-half-to-even by default), matching
 * torch.round: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2.
 *   symmetric:   qmin = -2^(b-1), qmax = 2^(b-1) - 1, z = 0, s = absmax / qmax
 *                (4 bits: [-8, 7], s = absmax / 7);
 *   asymmetric:  qmin = 0, qmax = 2^b - 1, s = (max - min) / qmax,
 *                z = round(-min / s), where min <= 0 <= max always (the range
 *                includes 0, so 0 is exact and 0 <= z <= qmax).
 * bits = 16 turns a quantizer off (identity); otherwise bits is 2..8.
 *
 * Weights, per output channel (row of W (out, in)), or per (row, group) with
 * groups of G consecutive input columns; when in % G != 0 the last group is the
 * shorter remainder, with its own parameters. Degenerate rows do not divide by
 * zero: symmetric absmax is floored at 1e-5, asymmetric max - min likewise, and
 * an asymmetric all-zero row uses the range [-1, 1] (all as the reference).
 * With mse, the range is shrunk by p = 1 - i/100, i = 0..79 (1.00 .. 0.21) and
 * the p with the smallest sum over the row of |qdq(w) - w|^2.4 is kept (the first
 * one on ties, so p = 1 unless shrinking strictly helps); that is GPTQ's
 * find_params with mse=True, norm=2.4, grid=100, maxshrink=0.8. The error sum
 * is accumulated in double.
 *
 * Activations, per token (row of x (N, D)), or per (token, group) of G
 * consecutive features (K and V per head, the o_proj input per head; G must
 * divide D). The range is [min(min x, 0), max(max x, 0)] times the clip ratio.
 * The reference's per-group variant does not include 0 in the range; here both
 * do, so that zero points fit the integer range of the packed format.
 * Symmetric activations (optional) use s = max(|min|, max) / qmax, and s = 1
 * for an all-zero row, as the reference.
 *
 * Straight-through estimator (the reference's STE autograd functions): the
 * backward of qdq passes the gradient through unchanged, d qdq(x) / dx = 1 for
 * every element, clamped ones included, and no gradient reaches the scale and
 * zero point (they are computed from x but treated as constants). */
#ifndef SPQ_QUANT_H
#define SPQ_QUANT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/util.h"

#define SPQ_QUANT_OFF 16

typedef struct {
    int bits;       /* 2..8, or 16: off */
    int sym;        /* 1: symmetric (the reference default for weights) */
    int groupsize;  /* 0: one group per row; G > 0: groups of G input columns */
    int mse;        /* 1: clip search */
    int grid;       /* 0; or a GGUF block grid (ggml_quant.h: SPQ_GRID_Q4_0 with bits 4,
                       SPQ_GRID_Q8_0 with bits 8, both symmetric, groupsize 32, no mse):
                       the scale of each group is the block's fp16 scale */
} spq_wq_cfg;

typedef struct {
    int bits;       /* 2..8, or 16: off */
    int sym;        /* 0: asymmetric (the reference default for activations) */
    int groupsize;  /* 0: per token; G > 0: per (token, group of G), G divides D */
    float clip;     /* clip ratio in (0, 1] */
} spq_aq_cfg;

/* integer range of a quantizer */
static inline void spq_quant_range(int bits, int sym, int *qmin, int *qmax) {
    if (sym) { *qmin = -(1 << (bits - 1)); *qmax = (1 << (bits - 1)) - 1; }
    else { *qmin = 0; *qmax = (1 << bits) - 1; }
}

/* round half to even (= nearbyintf in the default rounding mode), inline: for
 * |v| < 2^23, |v| + 2^23 lands where floats are integers, so the addition
 * rounds (no -ffast-math here to fold it away); larger floats are integers */
static inline float spq_quant_round(float v) {
    float a = fabsf(v);
    return a < 0x1p23f ? copysignf((a + 0x1p23f) - 0x1p23f, v) : v;
}

static inline float spq_quant_code(float x, float s, float z, int qmin, int qmax) {
    float q = spq_quant_round(x / s) + z;
    return q < (float)qmin ? (float)qmin : q > (float)qmax ? (float)qmax : q;
}

static inline float spq_quant_qdq(float x, float s, float z, int qmin, int qmax) {
    return s * (spq_quant_code(x, s, z, qmin, qmax) - z);
}

/* Checks a configuration (bits, group size, clip) against a row length; the
 * message names the field. */
int spq_wq_validate(const spq_wq_cfg *c, int in, spq_err *err);
int spq_aq_validate(const spq_aq_cfg *c, int D, spq_err *err);

/* ---- weights ---- */

/* 1 when rows of `in` weights are quantized under c: always, but a block
 * grid needs whole blocks (RTN and GPTQ leave other linears in full
 * precision, as llama.cpp's converter falls back to F16 for them) */
static inline int spq_wq_fits(const spq_wq_cfg *c, int in) {
    return !c->grid || (c->groupsize > 0 && in % c->groupsize == 0);
}

/* "none", "q4_0", "q8_0" for grid 0, SPQ_GRID_Q4_0, SPQ_GRID_Q8_0; and back
 * (-1 for another name). */
const char *spq_wq_grid_name(int grid);
int spq_wq_grid_of(const char *name);
/* The weight quantizer of a grid: its bits, symmetric, groups of 32, no clip
 * search (what spq_wq_validate requires of a grid). */
spq_wq_cfg spq_wq_grid_cfg(int grid);

/* groups per row: ceil(in / G), or 1 */
int spq_wq_ngroups(const spq_wq_cfg *c, int in);

/* scale, zero of one contiguous segment x (len) (a row or a group of a row;
 * GPTQ calls this on its updated weights group by group). *p_best (may be
 * NULL) gets the chosen shrink factor (1 without mse). */
void spq_wq_find(float *scale, float *zero, float *p_best, const float *x, int len, const spq_wq_cfg *c);

/* scale, zero (rows, ngroups) of W (rows, in) */
void spq_wq_params(float *scale, float *zero, const float *W, int rows, int in, const spq_wq_cfg *c);

/* Wq (rows, in) = qdq(W) with the given parameters; Wq may alias W */
void spq_wq_apply(float *Wq, const float *W, const float *scale, const float *zero, int rows, int in,
                  const spq_wq_cfg *c);

/* codes (rows, in) = code(W) in [qmin, qmax] (for packing; dequant is s (q - z)) */
void spq_wq_codes(int8_t *codes, const float *W, const float *scale, const float *zero, int rows, int in,
                  const spq_wq_cfg *c);

/* Wq (rows, in) = qdq(W), parameters found and discarded; Wq may alias W.
 * Identity copy when off or when a grid does not fit the rows (spq_wq_fits). */
void spq_wq_forward(float *Wq, const float *W, int rows, int in, const spq_wq_cfg *c);

/* ---- activations ---- */

/* scale, zero of one segment x (len) (a token, or one group of a token) */
void spq_aq_find(float *scale, float *zero, const float *x, int len, const spq_aq_cfg *c);

/* scale, zero (N, D / G) (or (N) per token) of x (N, D) */
void spq_aq_params(float *scale, float *zero, const float *x, int N, int D, const spq_aq_cfg *c);

/* out (N, D) = qdq(in) per token / (token, group); out may alias in. Identity
 * copy when off. */
void spq_aq_forward(float *out, const float *in, int N, int D, const spq_aq_cfg *c);

/* ---- straight-through backward ---- */

/* din (n) += dout (n): the STE backward of any fake quantizer above (llm.c
 * convention: backward accumulates into the input gradient). */
void spq_fq_backward(float *din, const float *dout, size_t n);

#endif
