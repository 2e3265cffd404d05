/* qgemm.c - packing, activation quantization, the scalar reference kernels,
 * the dispatch of products to an instruction set and over the thread pool,
 * the blocked W4A16 prefill (dequantized blocks and sgemm), and the 16-bit
 * classifier. See qgemm.h for the arithmetic; qgemm_avx2.c and
 * qgemm_avx512.c hold the SIMD tiles. */
#include "qgemm.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qgemm_isa.h"
#include "common/base/cpu.h"
#include "common/base/half.h"
#include "common/base/pool.h"

/* ---- layout ---- */

int spq_qseg(int *seg, int C, int act_group, int w_group, spq_err *err) {
    int a = act_group > 0 && act_group < C ? act_group : C;
    int w = w_group > 0 && w_group < C ? w_group : C;
    int s = a < w ? a : w;
    if ((a != C && a % s) || (w != C && w % s))
        return spq_fail(err, "activation groups of %d and weight groups of %d over %d columns do not nest "
                             "(one must be a multiple of the other)", a, w, C);
    if (s < C && s % 8)
        return spq_fail(err, "segments of %d columns (activation groups %d, weight groups %d) must be a multiple "
                             "of 8", s, a, w);
    *seg = s;
    return 0;
}

static void *alloc64(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64)) return spq_malloc(n); /* spq_malloc aborts with a message */
    memset(p, 0, n);
    return p;
}

int spq_qlinear_build(spq_qlinear *w, const uint8_t *codes, const float *scale, const int32_t *zero, int rows,
                      int cols, int bits, int groupsize, int seg, spq_err *err) {
    memset(w, 0, sizeof *w);
    if (rows < 1 || cols < 1) return spq_fail(err, "weight shape [%d, %d] must be positive", rows, cols);
    if (cols > SPQ_QMAX_COLS)
        return spq_fail(err, "%d input columns: the integer kernels take at most %d", cols, SPQ_QMAX_COLS);
    if (bits < 2 || bits > 4) return spq_fail(err, "w_bits %d: packed weights are 2..4 bits", bits);
    if (groupsize < 0 || (groupsize > 0 && groupsize < cols && groupsize % 8))
        return spq_fail(err, "w_groupsize %d: packed weight groups must be a multiple of 8", groupsize);
    int G = groupsize > 0 && groupsize < cols ? groupsize : cols;
    int ng = (cols + G - 1) / G;
    if (seg < 1 || seg > cols || (seg < cols && (seg % 8 || G % seg)))
        return spq_fail(err, "segment length %d does not fit %d columns in groups of %d", seg, cols, G);
    int qmax = (1 << bits) - 1;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        if (codes[i] > qmax)
            return spq_fail(err, "code %d at row %zu column %zu exceeds %d bits", codes[i], i / cols, i % cols, bits);
    for (size_t i = 0; i < (size_t)rows * ng; i++) {
        if (zero[i] < 0 || zero[i] > qmax)
            return spq_fail(err, "zero point %d of row %zu group %zu is outside [0, %d]", zero[i], i / ng, i % ng,
                            qmax);
        if (!(scale[i] > 0) || !isfinite(scale[i]))
            return spq_fail(err, "scale %g of row %zu group %zu is not a positive finite number", (double)scale[i],
                            i / ng, i % ng);
    }
    w->rows = rows;
    w->cols = cols;
    w->bits = bits;
    w->groupsize = G < cols ? G : 0;
    w->ngroups = ng;
    w->seg = seg;
    w->nseg = (cols + seg - 1) / seg;
    w->nocts = (cols + 7) / 8;
    w->npanels = (rows + SPQ_QPANEL - 1) / SPQ_QPANEL;
    w->codes = alloc64((size_t)w->npanels * w->nocts * 64);
    w->scale = alloc64((size_t)w->npanels * ng * SPQ_QPANEL * sizeof(float));
    w->zero = alloc64((size_t)w->npanels * ng * SPQ_QPANEL * sizeof(int32_t));
    w->usum = alloc64((size_t)w->npanels * w->nseg * SPQ_QPANEL * sizeof(int32_t));
    for (int r = 0; r < rows; r++) {
        int p = r / SPQ_QPANEL, rr = r % SPQ_QPANEL;
        for (int k = 0; k < cols; k++) {
            uint8_t u = codes[(size_t)r * cols + k];
            uint8_t *b = w->codes + ((size_t)p * w->nocts + k / 8) * 64 + 4 * rr + (k & 3);
            *b |= (k & 4) ? (uint8_t)(u << 4) : u;
            w->usum[((size_t)p * w->nseg + k / seg) * SPQ_QPANEL + rr] += u;
        }
        for (int g = 0; g < ng; g++) {
            size_t o = ((size_t)p * ng + g) * SPQ_QPANEL + rr;
            w->scale[o] = scale[(size_t)r * ng + g];
            w->zero[o] = zero[(size_t)r * ng + g];
        }
    }
    /* padding rows: scale 1, zero 0 (their outputs are never stored) */
    for (int r = rows; r < w->npanels * SPQ_QPANEL; r++)
        for (int g = 0; g < ng; g++) w->scale[((size_t)(r / SPQ_QPANEL) * ng + g) * SPQ_QPANEL + r % SPQ_QPANEL] = 1;
    return 0;
}

void spq_qlinear_free(spq_qlinear *w) {
    free(w->codes);
    free(w->scale);
    free(w->zero);
    free(w->usum);
    memset(w, 0, sizeof *w);
}

void spq_qlinear_unpack(uint8_t *codes, float *scale, int32_t *zero, const spq_qlinear *w) {
    int ng = w->ngroups;
    for (int r = 0; r < w->rows; r++) {
        if (codes)
            for (int k = 0; k < w->cols; k++) codes[(size_t)r * w->cols + k] = (uint8_t)spq_qlinear_code(w, r, k);
        for (int g = 0; g < ng; g++) {
            size_t o = spq_qlinear_param(w, r, g);
            if (scale) scale[(size_t)r * ng + g] = w->scale[o];
            if (zero) zero[(size_t)r * ng + g] = w->zero[o];
        }
    }
}

size_t spq_qlinear_bytes(const spq_qlinear *w) {
    return (size_t)w->npanels * (w->nocts * 64 + (size_t)SPQ_QPANEL * (w->ngroups * 8 + w->nseg * 4));
}

/* ---- activations ---- */

void spq_qact_free(spq_qact *qa) {
    free(qa->a);
    free(qa->scale);
    free(qa->zero);
    free(qa->asum);
    memset(qa, 0, sizeof *qa);
}

void spq_qact_quantize(spq_qact *qa, const float *x, int N, int C, const spq_aq_cfg *aq, int seg) {
    int ld = (C + 7) / 8 * 8, nseg = (C + seg - 1) / seg;
    size_t na = (size_t)N * ld, ns = (size_t)N * nseg;
    if (na > qa->cap_a) {
        free(qa->a);
        qa->a = alloc64(na);
        qa->cap_a = na;
    }
    if (ns > qa->cap_s) {
        free(qa->scale); free(qa->zero); free(qa->asum);
        qa->scale = spq_malloc(ns * sizeof(float));
        qa->zero = spq_malloc(ns * sizeof(int32_t));
        qa->asum = spq_malloc(ns * sizeof(int32_t));
        qa->cap_s = ns;
    }
    qa->N = N;
    qa->C = C;
    qa->ld = ld;
    qa->seg = seg;
    qa->nseg = nseg;
    int qmin, qmax, G = aq->groupsize > 0 ? aq->groupsize : C;
    spq_quant_range(aq->bits, aq->sym, &qmin, &qmax);
    int off = -qmin; /* symmetric codes are stored offset into [0, 2^bits) */
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * C;
        int8_t *ar = qa->a + (size_t)n * ld;
        float s = 1, z = 0;
        for (int j = 0; j < nseg; j++) {
            int k0 = j * seg, k1 = k0 + seg < C ? k0 + seg : C;
            if (k0 % G == 0) spq_aq_find(&s, &z, xr + k0, G, aq);
            int32_t sum = 0;
            for (int k = k0; k < k1; k++) {
                int a = (int)spq_quant_code(xr[k], s, z, qmin, qmax) + off;
                ar[k] = (int8_t)(a - 128);
                sum += a;
            }
            qa->scale[(size_t)n * nseg + j] = s;
            qa->zero[(size_t)n * nseg + j] = (int32_t)z + off;
            qa->asum[(size_t)n * nseg + j] = sum;
        }
        memset(ar + C, 0, (size_t)(ld - C));
    }
}

/* ---- scalar reference kernels ---- */

void spq_qk_int_scalar(float *y, int ldy, const spq_qact *qa, const spq_qlinear *w, int n0, int n1, int p0, int p1) {
    int C = w->cols, seg = w->seg, ng = w->ngroups;
    int r1 = p1 * SPQ_QPANEL < w->rows ? p1 * SPQ_QPANEL : w->rows;
    for (int n = n0; n < n1; n++) {
        const int8_t *a = qa->a + (size_t)n * qa->ld;
        for (int r = p0 * SPQ_QPANEL; r < r1; r++) {
            size_t pr = (size_t)(r / SPQ_QPANEL), rr = r % SPQ_QPANEL;
            float acc = 0;
            for (int j = 0; j < w->nseg; j++) {
                int k0 = j * seg, k1 = k0 + seg < C ? k0 + seg : C, g = w->groupsize ? k0 / w->groupsize : 0;
                int32_t D = 0;
                for (int k = k0; k < k1; k++) D += (a[k] + 128) * spq_qlinear_code(w, r, k);
                int32_t zw = w->zero[(pr * ng + g) * SPQ_QPANEL + rr];
                int32_t U = w->usum[(pr * w->nseg + j) * SPQ_QPANEL + rr];
                size_t sj = (size_t)n * qa->nseg + j;
                int32_t za = qa->zero[sj], A = qa->asum[sj], L = k1 - k0;
                int32_t dot = D - zw * A - za * U + L * za * zw;
                float p = w->scale[(pr * ng + g) * SPQ_QPANEL + rr] * qa->scale[sj];
                acc = fmaf((float)dot, p, acc);
            }
            y[(size_t)n * ldy + r] = acc;
        }
    }
}

void spq_qk_f32_scalar(float *y, int ldy, const float *x, int ldx, const spq_qlinear *w, int n0, int n1, int p0,
                       int p1) {
    int C = w->cols, ng = w->ngroups;
    int r1 = p1 * SPQ_QPANEL < w->rows ? p1 * SPQ_QPANEL : w->rows;
    for (int n = n0; n < n1; n++) {
        const float *xr = x + (size_t)n * ldx;
        for (int r = p0 * SPQ_QPANEL; r < r1; r++) {
            size_t pr = (size_t)(r / SPQ_QPANEL), rr = r % SPQ_QPANEL;
            float acc = 0;
            for (int k = 0; k < C; k++) {
                int g = w->groupsize ? k / w->groupsize : 0;
                size_t o = (pr * ng + g) * SPQ_QPANEL + rr;
                float wv = w->scale[o] * (float)(spq_qlinear_code(w, r, k) - w->zero[o]);
                acc = fmaf(xr[k], wv, acc);
            }
            y[(size_t)n * ldy + r] = acc;
        }
    }
}

void spq_hk_scalar(float *y, const float *x, int N, const uint16_t *W, int cols, int rows_total, int r0, int r1,
                   int bf16) {
    for (int r = r0; r < r1; r++) {
        const uint16_t *wr = W + (size_t)r * cols;
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * cols;
            float acc = 0;
            for (int k = 0; k < cols; k++) acc += xr[k] * (bf16 ? spq_bf16_to_f32(wr[k]) : spq_f16_to_f32(wr[k]));
            y[(size_t)n * rows_total + r] = acc;
        }
    }
}

/* ---- dispatch ---- */

int spq_qgemm_isa_supported(int isa) {
    switch (isa) {
    case SPQ_ISA_SCALAR: return 1;
    case SPQ_ISA_AVX2: return spq_cpu_has_avx2();
    case SPQ_ISA_AVXVNNI: return spq_cpu_has_avx2() && spq_cpu_has_avxvnni();
    case SPQ_ISA_AVX512: return spq_cpu_has_avx512vnni();
    default: return 0;
    }
}

static int isa_at_most(int isa);

int spq_qgemm_isa_best(void) {
    static int best = -1;
    if (best < 0) {
        best = isa_at_most(SPQ_ISA_AVX512);
    }
    return best;
}

/* the best path this CPU runs at or below isa */
static int isa_at_most(int isa) {
    if (isa >= SPQ_ISA_COUNT) isa = SPQ_ISA_COUNT - 1;
    if (isa < SPQ_ISA_SCALAR) isa = SPQ_ISA_SCALAR;
    while (!spq_qgemm_isa_supported(isa)) isa--;
    return isa;
}

static int chosen_isa = -1;

int spq_qgemm_set_isa(int isa) { return chosen_isa = isa_at_most(isa); }

static const char *const isa_names[SPQ_ISA_COUNT] = {"scalar", "avx2", "avxvnni", "avx512-vnni"};

int spq_qgemm_isa(void) {
    if (chosen_isa < 0) {
        const char *e = getenv("SPINQ_ISA");
        int want = SPQ_ISA_AVX512;
        for (int i = 0; e && i < SPQ_ISA_COUNT; i++)
            if (!strcmp(e, isa_names[i])) want = i;  /* "avx512" and anything else: the best */
        spq_qgemm_set_isa(want);
    }
    return chosen_isa;
}

const char *spq_isa_name(int isa) { return isa >= 0 && isa < SPQ_ISA_COUNT ? isa_names[isa] : "unknown"; }

typedef struct {
    float *y;
    const spq_qact *qa;
    const float *x;
    const spq_qlinear *w;
    int N, isa, per_task;
} qjob;

static void int_task(void *ctx, int t) {
    const qjob *j = ctx;
    int p0 = t * j->per_task, p1 = p0 + j->per_task < j->w->npanels ? p0 + j->per_task : j->w->npanels;
    if (j->isa == SPQ_ISA_AVX512) spq_qk_int_avx512(j->y, j->w->rows, j->qa, j->w, 0, j->N, p0, p1);
    else if (j->isa == SPQ_ISA_AVXVNNI) spq_qk_int_avxvnni(j->y, j->w->rows, j->qa, j->w, 0, j->N, p0, p1);
    else if (j->isa == SPQ_ISA_AVX2) spq_qk_int_avx2(j->y, j->w->rows, j->qa, j->w, 0, j->N, p0, p1);
    else spq_qk_int_scalar(j->y, j->w->rows, j->qa, j->w, 0, j->N, p0, p1);
}

static void f32_task(void *ctx, int t) {
    const qjob *j = ctx;
    int p0 = t * j->per_task, p1 = p0 + j->per_task < j->w->npanels ? p0 + j->per_task : j->w->npanels;
    int C = j->w->cols;
    if (j->isa == SPQ_ISA_AVX512) spq_qk_f32_avx512(j->y, j->w->rows, j->x, C, j->w, 0, j->N, p0, p1);
    else if (j->isa >= SPQ_ISA_AVX2) spq_qk_f32_avx2(j->y, j->w->rows, j->x, C, j->w, 0, j->N, p0, p1);
    else spq_qk_f32_scalar(j->y, j->w->rows, j->x, C, j->w, 0, j->N, p0, p1);
}

/* panels per task: a few tasks per thread for balance, none when the
 * product is too small to be worth waking the pool */
static int split(const spq_qlinear *w, int N, int *n_tasks) {
    double work = (double)w->rows * w->cols * N;
    int threads = spq_pool_threads();
    int want = work < (1 << 17) || threads == 1 ? 1 : threads * 4;
    int per = (w->npanels + want - 1) / want;
    if (per < 1) per = 1;
    *n_tasks = (w->npanels + per - 1) / per;
    return per;
}

void spq_qgemm_on(float *y, const spq_qact *qa, const spq_qlinear *w, int isa) {
    if (qa->C != w->cols || qa->seg != w->seg) {
        fprintf(stderr, "spinq: spq_qgemm: activations (%d columns, segments of %d) do not fit weights (%d, %d)\n",
                qa->C, qa->seg, w->cols, w->seg);
        abort();
    }
    isa = isa_at_most(isa);
    int n_tasks;
    qjob j = {.y = y, .qa = qa, .w = w, .N = qa->N, .isa = isa};
    j.per_task = split(w, qa->N, &n_tasks);
    spq_parallel_for(n_tasks, int_task, &j);
}

void spq_qgemm(float *y, const spq_qact *qa, const spq_qlinear *w) { spq_qgemm_on(y, qa, w, spq_qgemm_isa()); }

/* W4A16 with many tokens: blocks of rows dequantized (transiently, exactly
 * as the fake quantizer rounds them) and multiplied with sgemm. The block is
 * stored transposed, (cols, rows of the block): a panel's 64-byte block then
 * gives, per column, 16 consecutive floats (one per row), which vectorizes. */
static void dequant_panel(float *out, int ldo, const spq_qlinear *w, int p) {
    int C = w->cols, G = w->groupsize ? w->groupsize : C, ng = w->ngroups;
    for (int o = 0; o < w->nocts; o++) {
        const uint8_t *blk = w->codes + ((size_t)p * w->nocts + o) * 64;
        size_t gi = ((size_t)p * ng + (size_t)(o * 8) / G) * SPQ_QPANEL;
        const float *sc = w->scale + gi;
        const int32_t *z = w->zero + gi;
        for (int t = 0; t < 8 && o * 8 + t < C; t++) {
            float *col = out + (size_t)(o * 8 + t) * ldo;
            int sh = 4 * (t >> 2);
            for (int r = 0; r < SPQ_QPANEL; r++) col[r] = sc[r] * (float)(((blk[4 * r + (t & 3)] >> sh) & 15) - z[r]);
        }
    }
}

static void f32_blocked(float *y, const float *x, int N, const spq_qlinear *w, int isa) {
    /* panels per block: about 8 MB of fp32, at least 256 rows (enough for
     * sgemm to run at speed) and at most 1024 */
    int C = w->cols, bp = (int)((2u << 20) / ((unsigned)C * SPQ_QPANEL));
    bp = bp < 16 ? 16 : bp > 64 ? 64 : bp;
    float *blk = spq_malloc((size_t)bp * SPQ_QPANEL * C * sizeof(float));
    for (int p0 = 0; p0 < w->npanels; p0 += bp) {
        int np = w->npanels - p0 < bp ? w->npanels - p0 : bp, ld = np * SPQ_QPANEL;
        int r0 = p0 * SPQ_QPANEL, nr = w->rows - r0 < ld ? w->rows - r0 : ld;
        /* in this thread: a pool job between two sgemm calls would make our
         * helpers and OpenBLAS's (still spinning) threads fight for the cores */
        for (int t = 0; t < np; t++) {
            if (isa == SPQ_ISA_AVX512) spq_dq_panel_avx512(blk + (size_t)t * SPQ_QPANEL, ld, w, p0 + t);
            else dequant_panel(blk + (size_t)t * SPQ_QPANEL, ld, w, p0 + t);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, nr, C, 1.0f, x, C, blk, ld, 0.0f, y + r0, w->rows);
    }
    free(blk);
}

void spq_qgemm_f32_on(float *y, const float *x, int N, const spq_qlinear *w, int isa) {
    isa = isa_at_most(isa);
    if (N >= SPQ_QGEMM_F32_SGEMM_MIN) {
        f32_blocked(y, x, N, w, isa);
        return;
    }
    int n_tasks;
    qjob j = {.y = y, .x = x, .w = w, .N = N, .isa = isa};
    j.per_task = split(w, N, &n_tasks);
    spq_parallel_for(n_tasks, f32_task, &j);
}

void spq_qgemm_f32(float *y, const float *x, int N, const spq_qlinear *w) {
    spq_qgemm_f32_on(y, x, N, w, spq_qgemm_isa());
}

/* ---- 16-bit weights ---- */

typedef struct {
    float *y;
    const float *x;
    const uint16_t *W;
    int N, rows, cols, bf16, per_task, isa;
} hjob;

static void h_task(void *ctx, int t) {
    const hjob *j = ctx;
    int r0 = t * j->per_task, r1 = r0 + j->per_task < j->rows ? r0 + j->per_task : j->rows;
    if (j->isa == SPQ_ISA_AVX512) spq_hk_avx512(j->y, j->x, j->N, j->W, j->cols, j->rows, r0, r1, j->bf16);
    else spq_hk_scalar(j->y, j->x, j->N, j->W, j->cols, j->rows, r0, r1, j->bf16);
}

void spq_hgemm(float *y, const float *x, int N, const uint16_t *W, int rows, int cols, int bf16) {
    if (N > 8 && N <= 32) {
        /* a decode batch (serving): reading the half table once per 8 rows
         * beats widening all of it to fp32 each step (a 128k-token
         * classifier is 1 GB in fp32) */
        for (int n0 = 0; n0 < N; n0 += 8)
            spq_hgemm(y + (size_t)n0 * rows, x + (size_t)n0 * cols, N - n0 < 8 ? N - n0 : 8, W, rows, cols, bf16);
        return;
    }
    if (N > 8) {
        /* prefill sizes: widen blocks of rows once and let sgemm reuse them */
        int blk = 1024;
        float *Wf = spq_malloc((size_t)blk * cols * sizeof(float));
        for (int r0 = 0; r0 < rows; r0 += blk) {
            int nr = rows - r0 < blk ? rows - r0 : blk;
            if (bf16) spq_bf16_to_f32_array(Wf, W + (size_t)r0 * cols, (size_t)nr * cols);
            else spq_f16_to_f32_array(Wf, W + (size_t)r0 * cols, (size_t)nr * cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, nr, cols, 1.0f, x, cols, Wf, cols, 0.0f, y + r0,
                        rows);
        }
        free(Wf);
        return;
    }
    hjob j = {.y = y, .x = x, .W = W, .N = N, .rows = rows, .cols = cols, .bf16 = bf16,
              .isa = spq_qgemm_isa() == SPQ_ISA_AVX512 ? SPQ_ISA_AVX512 : SPQ_ISA_SCALAR};
    int threads = spq_pool_threads(), want = (double)rows * cols < (1 << 17) ? 1 : threads * 8;
    j.per_task = (rows + want - 1) / want;
    spq_parallel_for((rows + j.per_task - 1) / j.per_task, h_task, &j);
}
