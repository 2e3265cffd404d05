/* quant.c - parameter search and quantize-dequantize loops; see quant.h for
 * the definitions. Scales and zero points are computed in fp32 with the same
 * operations as the reference (fp32 torch tensors), the clip-search error in
 * double. */
#include "quant.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "ggml_quant.h"

static int bits_ok(int bits) { return bits == SPQ_QUANT_OFF || (bits >= 2 && bits <= 8); }

const char *spq_wq_grid_name(int grid) {
    return grid == SPQ_GRID_Q4_0 ? "q4_0" : grid == SPQ_GRID_Q8_0 ? "q8_0" : "none";
}

int spq_wq_grid_of(const char *name) {
    return !strcmp(name, "none") ? SPQ_GRID_NONE
           : !strcmp(name, "q4_0") ? SPQ_GRID_Q4_0
           : !strcmp(name, "q8_0") ? SPQ_GRID_Q8_0
                                   : -1;
}

spq_wq_cfg spq_wq_grid_cfg(int grid) {
    return (spq_wq_cfg){.bits = grid == SPQ_GRID_Q4_0 ? 4 : 8, .sym = 1, .groupsize = SPQ_QK, .grid = grid};
}

int spq_wq_validate(const spq_wq_cfg *c, int in, spq_err *err) {
    if (!bits_ok(c->bits)) return spq_fail(err, "w_bits: %d is not 2..8 or 16 (off)", c->bits);
    if (c->groupsize < 0) return spq_fail(err, "w_groupsize: %d must be 0 (per channel) or positive", c->groupsize);
    if (c->grid && (c->grid > SPQ_GRID_Q8_0 || c->bits != (c->grid == SPQ_GRID_Q4_0 ? 4 : 8) || !c->sym ||
                    c->groupsize != SPQ_QK || c->mse))
        return spq_fail(err, "w_grid: a GGUF block grid is Q4_0 at 4 bits or Q8_0 at 8, symmetric, groupsize %d, "
                             "no clip search", SPQ_QK);
    if (in < 1) return spq_fail(err, "weight quantizer: row length %d must be positive", in);
    return 0;
}

int spq_aq_validate(const spq_aq_cfg *c, int D, spq_err *err) {
    if (!bits_ok(c->bits)) return spq_fail(err, "a_bits: %d is not 2..8 or 16 (off)", c->bits);
    if (!(c->clip > 0 && c->clip <= 1)) return spq_fail(err, "a_clip: %g is not in (0, 1]", (double)c->clip);
    if (c->groupsize < 0) return spq_fail(err, "a_groupsize: %d must be 0 (per token) or positive", c->groupsize);
    if (D < 1) return spq_fail(err, "activation quantizer: row length %d must be positive", D);
    if (c->groupsize > 0 && D % c->groupsize != 0)
        return spq_fail(err, "a_groupsize: %d does not divide the row length %d", c->groupsize, D);
    return 0;
}

static void minmax0(float *mn, float *mx, const float *x, int len) {
    float a = 0, b = 0; /* the range always includes 0 */
    for (int i = 0; i < len; i++) {
        if (x[i] < a) a = x[i];
        if (x[i] > b) b = x[i];
    }
    *mn = a;
    *mx = b;
}

/* ---- weights ---- */

int spq_wq_ngroups(const spq_wq_cfg *c, int in) {
    return c->groupsize > 0 ? (in + c->groupsize - 1) / c->groupsize : 1;
}

/* scale, zero for the range [mn, mx] (mn <= 0 <= mx) */
static void wq_scale(float *s, float *z, float mn, float mx, int sym, int qmax) {
    if (sym) {
        *s = mx / (float)qmax;
        *z = 0;
    } else {
        *s = (mx - mn) / (float)qmax;
        *z = spq_quant_round(-mn / *s);
    }
}

/* sum |qdq(x) - x|^2.4, stopping once it reaches `bound` (the terms are
 * non-negative and only a strictly smaller sum can win) */
static double wq_err(const float *x, int len, float s, float z, int qmin, int qmax, double bound) {
    double e = 0;
    for (int i = 0; i < len; i++) {
        float d = fabsf(spq_quant_qdq(x[i], s, z, qmin, qmax) - x[i]);
        if (d > 0) e += powf(d, 2.4f); /* fp32 like the reference; summed in double */
        if ((i & 15) == 15 && e >= bound) return e;
    }
    return e;
}

void spq_wq_find(float *scale, float *zero, float *p_best, const float *x, int len, const spq_wq_cfg *c) {
    int qmin, qmax;
    if (p_best) *p_best = 1;
    if (c->bits >= SPQ_QUANT_OFF) {
        *scale = 1;
        *zero = 0;
        return;
    }
    if (c->grid) {
        *scale = spq_ggml_grid_scale(c->grid, x, len);
        *zero = 0;
        return;
    }
    spq_quant_range(c->bits, c->sym, &qmin, &qmax);
    float mn, mx;
    minmax0(&mn, &mx, x, len);
    if (c->sym) {
        mx = fmaxf(fmaxf(-mn, mx), 1e-5f);
        mn = -mx;
        wq_scale(scale, zero, mn, mx, 1, qmax);
    } else {
        if (mn == 0 && mx == 0) { mn = -1; mx = 1; }
        *scale = fmaxf(mx - mn, 1e-5f) / (float)qmax;
        *zero = spq_quant_round(-mn / *scale);
    }
    if (!c->mse) return;
    double best = INFINITY;
    for (int i = 0; i < 80; i++) {
        float p = (float)(1.0 - i / 100.0), s, z;
        wq_scale(&s, &z, p * mn, p * mx, c->sym, qmax);
        if (!(s > 0)) continue; /* an underflowed range: not a candidate */
        double e = wq_err(x, len, s, z, qmin, qmax, best);
        if (e < best) {
            best = e;
            *scale = s;
            *zero = z;
            if (p_best) *p_best = p;
        }
    }
}

void spq_wq_params(float *scale, float *zero, const float *W, int rows, int in, const spq_wq_cfg *c) {
    int G = c->groupsize > 0 ? c->groupsize : in, ng = spq_wq_ngroups(c, in);
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < ng; g++) {
            int len = g == ng - 1 ? in - g * G : G;
            size_t o = (size_t)r * ng + g;
            spq_wq_find(scale + o, zero + o, NULL, W + (size_t)r * in + (size_t)g * G, len, c);
        }
}

void spq_wq_apply(float *Wq, const float *W, const float *scale, const float *zero, int rows, int in,
                  const spq_wq_cfg *c) {
    if (c->bits >= SPQ_QUANT_OFF) {
        if (Wq != W) memmove(Wq, W, (size_t)rows * in * sizeof(float));
        return;
    }
    int qmin, qmax, G = c->groupsize > 0 ? c->groupsize : in, ng = spq_wq_ngroups(c, in);
    spq_quant_range(c->bits, c->sym, &qmin, &qmax);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < in; i++) {
            size_t o = (size_t)r * ng + i / G, e = (size_t)r * in + i;
            Wq[e] = spq_quant_qdq(W[e], scale[o], zero[o], qmin, qmax);
        }
}

void spq_wq_codes(int8_t *codes, const float *W, const float *scale, const float *zero, int rows, int in,
                  const spq_wq_cfg *c) {
    int qmin, qmax, G = c->groupsize > 0 ? c->groupsize : in, ng = spq_wq_ngroups(c, in);
    spq_quant_range(c->bits, c->sym, &qmin, &qmax);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < in; i++) {
            size_t o = (size_t)r * ng + i / G, e = (size_t)r * in + i;
            codes[e] = (int8_t)spq_quant_code(W[e], scale[o], zero[o], qmin, qmax);
        }
}

void spq_wq_forward(float *Wq, const float *W, int rows, int in, const spq_wq_cfg *c) {
    if (c->bits >= SPQ_QUANT_OFF || !spq_wq_fits(c, in)) {
        if (Wq != W) memmove(Wq, W, (size_t)rows * in * sizeof(float));
        return;
    }
    size_t np = (size_t)rows * spq_wq_ngroups(c, in);
    float *s = spq_malloc(np * sizeof(float)), *z = spq_malloc(np * sizeof(float));
    spq_wq_params(s, z, W, rows, in, c);
    spq_wq_apply(Wq, W, s, z, rows, in, c);
    free(s);
    free(z);
}

/* ---- activations ---- */

void spq_aq_find(float *scale, float *zero, const float *x, int len, const spq_aq_cfg *c) {
    if (c->bits >= SPQ_QUANT_OFF) {
        *scale = 1;
        *zero = 0;
        return;
    }
    int qmin, qmax;
    spq_quant_range(c->bits, c->sym, &qmin, &qmax);
    float mn, mx;
    minmax0(&mn, &mx, x, len);
    mn *= c->clip;
    mx *= c->clip;
    if (c->sym) {
        mx = fmaxf(-mn, mx);
        *scale = mx == 0 ? 1.0f : mx / (float)qmax;
    } else {
        if (mn == 0 && mx == 0) { mn = -1; mx = 1; }
        *scale = (mx - mn) / (float)qmax;
    }
    /* a denormal range must not give s = 0 (the reference would divide by it) */
    if (!(*scale >= FLT_MIN)) *scale = FLT_MIN;
    *zero = c->sym ? 0.0f : spq_quant_round(-mn / *scale);
}

void spq_aq_params(float *scale, float *zero, const float *x, int N, int D, const spq_aq_cfg *c) {
    int G = c->groupsize > 0 ? c->groupsize : D, ng = D / G;
    for (int r = 0; r < N; r++)
        for (int g = 0; g < ng; g++)
            spq_aq_find(scale + (size_t)r * ng + g, zero + (size_t)r * ng + g, x + (size_t)r * D + (size_t)g * G, G,
                        c);
}

void spq_aq_forward(float *out, const float *in, int N, int D, const spq_aq_cfg *c) {
    if (c->bits >= SPQ_QUANT_OFF) {
        if (out != in) memmove(out, in, (size_t)N * D * sizeof(float));
        return;
    }
    int qmin, qmax, G = c->groupsize > 0 ? c->groupsize : D, ng = D / G;
    spq_quant_range(c->bits, c->sym, &qmin, &qmax);
    for (int r = 0; r < N; r++)
        for (int g = 0; g < ng; g++) {
            size_t o = (size_t)r * D + (size_t)g * G;
            float s, z;
            spq_aq_find(&s, &z, in + o, G, c);
            for (int i = 0; i < G; i++) out[o + i] = spq_quant_qdq(in[o + i], s, z, qmin, qmax);
        }
}

/* ---- straight-through backward ---- */

void spq_fq_backward(float *din, const float *dout, size_t n) {
    for (size_t i = 0; i < n; i++) din[i] += dout[i];
}
