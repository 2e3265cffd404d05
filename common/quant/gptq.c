/* gptq.c - see gptq.h.
 *
 * Under MPI (common/base/par.h) the calibration windows are split across the
 * ranks: each embeds and keeps only its share's activations (memory and
 * forward work divide by P), accumulates its part of every site's X^T X and
 * token count, and the parts are summed in rank order before H is
 * normalised. Rank 0 factors each damped H; each rank then quantizes its
 * share of the linear's rows with it (rows are independent in GPTQ) and
 * broadcasts them, so every rank runs the next site and layer with
 * identical weights. */
#include "gptq.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/par.h"
#include "common/base/pool.h"
#include "common/model/forward.h"
#include "qpack.h"

/* LAPACK (Fortran interface; the trailing argument is the hidden length of
 * the character argument, which C implementations ignore) */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t uplo_len);
extern void dtrtri_(const char *uplo, const char *diag, const int *n, double *a, const int *lda, int *info,
                    size_t uplo_len, size_t diag_len);

spq_gptq_cfg spq_gptq_defaults(void) {
    spq_gptq_cfg g = {.nsamples = 128, .seqlen = 2048, .seed = 0, .damp = 0.01, .blocksize = 128, .act_order = 0,
                      .calib_aq = 0, .batch = 8};
    return g;
}

int spq_gptq_check(const spq_gptq_cfg *g, const spq_config *c, spq_err *err) {
    if (g->nsamples < 1) return spq_fail(err, "nsamples: %d must be positive", g->nsamples);
    if (g->seqlen < 2 || g->seqlen > c->seq_len)
        return spq_fail(err, "seqlen: %d is outside [2, %d] (the model's context)", g->seqlen, c->seq_len);
    if (!(g->damp > 0) || !isfinite(g->damp)) return spq_fail(err, "damp: %g must be a positive number", g->damp);
    if (g->blocksize < 1) return spq_fail(err, "blocksize: %d must be positive", g->blocksize);
    if (g->batch < 1) return spq_fail(err, "batch: %d must be positive", g->batch);
    return 0;
}

int spq_calib_windows(long *starts, long n, int nsamples, int seqlen, uint64_t seed, spq_err *err) {
    if (n < seqlen)
        return spq_fail(err, "the calibration text has %ld tokens, fewer than one window of seqlen %d", n, seqlen);
    spq_rng r;
    spq_rng_seed(&r, seed ^ 0x67707471ULL);
    uint64_t range = (uint64_t)(n - seqlen + 1);
    for (int i = 0; i < nsamples; i++) starts[i] = (long)(spq_rng_u64(&r) % range);
    return 0;
}

/* ---- one weight ---- */

/* sum over rows of d H d^T for D (rows, cols) in fp32, H fp64 (full): a
 * dgemm per chunk of rows, so that H is read once per chunk, not once per
 * row (a row at a time, as dsymv, reads 1.6 GB of H per row at cols 14336) */
static double quad_form(const float *D, const double *H, int rows, int cols) {
    enum { CHUNK = 256 };
    size_t chunk = (size_t)(rows < CHUNK ? rows : CHUNK) * cols;
    double *d = spq_malloc(chunk * sizeof(double)), *dH = spq_malloc(chunk * sizeof(double)), s = 0;
    for (int r0 = 0; r0 < rows; r0 += CHUNK) {
        int n = rows - r0 < CHUNK ? rows - r0 : CHUNK;
        size_t m = (size_t)n * cols;
        for (size_t i = 0; i < m; i++) d[i] = D[(size_t)r0 * cols + i];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, cols, cols, 1.0, d, cols, H, cols, 0.0, dH, cols);
        for (size_t i = 0; i < m; i++) s += d[i] * dH[i];
    }
    free(d);
    free(dH);
    return s;
}

static int cmp_desc(const void *a, const void *b, void *ctx) {
    const double *diag = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (diag[i] != diag[j]) return diag[i] > diag[j] ? -1 : 1;
    return i - j; /* stable */
}

/* see gptq.h. With J the order reversal and J H J = L L^T,
 * H^-1 = J L^-T L^-1 J = U^T U for U = J L^-1 J, upper triangular with a
 * positive diagonal, hence the factor (it is unique).
 *
 * LAPACK is column-major: the row-major buffer of a symmetric matrix reads
 * the same, and a column-major lower factor reads as its transpose. U is
 * made in A's own memory (at 8B's down_proj, n = 14336, a second buffer
 * would be 0.8 GB more at the stage's peak): the reflection of the lower
 * triangle about the anti-diagonal puts U's upper triangle in row-major
 * place, then the doubles are narrowed to floats front to back, a float
 * never landing on a double still to be read. */
int spq_gptq_inv_chol(double *A, int n, spq_err *err) {
    size_t nn = (size_t)n * n;
    for (size_t i = 0; i < nn / 2; i++) {  /* A <- J A J: reverse rows and columns */
        double t = A[i];
        A[i] = A[nn - 1 - i];
        A[nn - 1 - i] = t;
    }
    int info = 0;
    dpotrf_("L", &n, A, &n, &info, 1);
    if (info > 0)
        return spq_fail(err, "the damped Hessian is not positive definite (Cholesky failed at column %d); "
                             "try a larger damp", n - info);
    dtrtri_("L", "N", &n, A, &n, &info, 1, 1);
    if (info > 0) return spq_fail(err, "the Hessian's Cholesky factor is singular at column %d", n - info);
    /* column-major M = L^-1 sits at A[r + c n] for r >= c, and
     * U[i][j] = M[n-1-i][n-1-j] belongs at A[i n + j], which is (r, c) =
     * (j, i) of the same triangle: swap each pair (r, c), (n-1-c, n-1-r) */
    for (int c = 0; c < n; c++)
        for (int r = c; r < n; r++) {
            size_t a = (size_t)r + (size_t)c * n, b = (size_t)(n - 1 - c) + (size_t)(n - 1 - r) * n;
            if (a < b) {
                double t = A[a];
                A[a] = A[b];
                A[b] = t;
            }
        }
    /* fp64 -> fp32 in place, a chunk at a time through memcpy (the chunk's
     * floats overwrite doubles of this or earlier chunks only) */
    enum { CHUNK = 1024 };
    float f[CHUNK];
    for (size_t k0 = 0; k0 < nn; k0 += CHUNK) {
        size_t m = nn - k0 < CHUNK ? nn - k0 : CHUNK;
        for (size_t k = 0; k < m; k++) f[k] = (float)A[k0 + k];
        memcpy((char *)A + k0 * sizeof(float), f, m * sizeof(float));
    }
    return 0;
}

/* rows per task for work of `work` multiply-adds over `rows` rows: a few
 * tasks per thread, one when small */
static int row_chunk(int rows, double work) {
    int threads = spq_pool_threads(), want = work < 1e6 || threads == 1 ? 1 : threads * 4;
    int per = (rows + want - 1) / want;
    return per < 1 ? 1 : per;
}

/* one block of GPTQ's column sweep for a range of rows (rows are
 * independent once U is known, so tasks split them) */
typedef struct {
    float *W, *Wp, *E, *scale, *zero;
    const float *U;
    const int *perm;
    const spq_wq_cfg *w;
    int rows, cols, B, G, ng, qmin, qmax, dynamic, per_task, i1, i2;
} sweep_ctx;

static void sweep_task(void *ctx, int t) {
    const sweep_ctx *c = ctx;
    int r0 = t * c->per_task, r1 = r0 + c->per_task < c->rows ? r0 + c->per_task : c->rows, cols = c->cols;
    for (int i = c->i1; i < c->i2; i++) {
        int col = c->perm[i];
        if (c->dynamic && i % c->G == 0) {
            /* the group's parameters from its current (updated) weights */
            int len = i + c->G < cols ? c->G : cols - i;
            for (int r = r0; r < r1; r++) {
                size_t o = (size_t)r * c->ng + i / c->G;
                spq_wq_find(&c->scale[o], &c->zero[o], NULL, c->Wp + (size_t)r * cols + i, len, c->w);
            }
        }
        float d = c->U[(size_t)i * cols + i];
        const float *urow = c->U + (size_t)i * cols;
        for (int r = r0; r < r1; r++) {
            float *wr = c->Wp + (size_t)r * cols;
            size_t o = (size_t)r * c->ng + col / c->G;
            float wv = wr[i], q = spq_quant_qdq(wv, c->scale[o], c->zero[o], c->qmin, c->qmax);
            float e = (wv - q) / d;
            c->W[(size_t)r * cols + col] = q;
            c->E[(size_t)r * c->B + (i - c->i1)] = e;
            for (int j = i + 1; j < c->i2; j++) wr[j] -= e * urow[j];
        }
    }
}

/* U (n, n, fp32 at the start of A) from the damped, permuted H in A:
 * computed here, or (shared) computed once by rank 0 and broadcast (then A
 * is n^2 floats on the other ranks) */
typedef int (*factor_fn)(double *A, int n, spq_err *err);

static int gptq_linear(float *W, float *scale, float *zero, const double *H, int rows, int cols,
                       const spq_wq_cfg *w, const spq_gptq_cfg *g, spq_gptq_stat *stat, factor_fn factor,
                       spq_err *err);
static int factor_on_rank0(double *A, int n, spq_err *err);

int spq_gptq_linear(float *W, float *scale, float *zero, const double *H, int rows, int cols, const spq_wq_cfg *w,
                    const spq_gptq_cfg *g, spq_gptq_stat *stat, spq_err *err) {
    return gptq_linear(W, scale, zero, H, rows, cols, w, g, stat, spq_gptq_inv_chol, err);
}

static int gptq_linear(float *W, float *scale, float *zero, const double *H, int rows, int cols,
                       const spq_wq_cfg *w, const spq_gptq_cfg *g, spq_gptq_stat *stat, factor_fn factor,
                       spq_err *err) {
    if (w->bits >= SPQ_QUANT_OFF) return spq_fail(err, "w_bits: 16 means no weight quantization");
    int qmin, qmax;
    spq_quant_range(w->bits, w->sym, &qmin, &qmax);
    int G = w->groupsize > 0 && w->groupsize < cols ? w->groupsize : cols, ng = (cols + G - 1) / G;
    int grouped = G < cols, static_groups = grouped && g->act_order;
    size_t nw = (size_t)rows * cols, nh = (size_t)cols * cols;
    float *W0 = stat ? spq_malloc(nw * sizeof(float)) : NULL;
    if (W0) memcpy(W0, W, nw * sizeof(float));

    /* parameters from the weights before any update (per row, or static groups) */
    if (!grouped || static_groups) spq_wq_params_parallel(scale, zero, W, rows, cols, w);

    /* dead columns, act-order permutation, damping */
    int *perm = spq_malloc((size_t)cols * sizeof(int));
    double *diag = spq_malloc((size_t)cols * sizeof(double)), mean = 0;
    for (int i = 0; i < cols; i++) {
        perm[i] = i;
        diag[i] = H[(size_t)i * cols + i];
        if (diag[i] == 0) {
            diag[i] = 1;
            for (int r = 0; r < rows; r++) W[(size_t)r * cols + i] = 0;
        }
        mean += diag[i];
    }
    mean /= cols;
    if (g->act_order) qsort_r(perm, cols, sizeof(int), cmp_desc, diag);
    /* the matrix to factor, unless another rank factors it; U replaces it */
    int here = !(factor == factor_on_rank0 && spq_par_rank() > 0);
    double *A = spq_malloc(nh * (here ? sizeof(double) : sizeof(float)));
    for (int i = 0; here && i < cols; i++)
        for (int j = 0; j < cols; j++)
            A[(size_t)i * cols + j] = i == j ? diag[perm[i]] + g->damp * mean : H[(size_t)perm[i] * cols + perm[j]];
    if (factor(A, cols, err)) {
        free(A); free(perm); free(diag); free(W0);
        return -1;
    }
    float *U = spq_realloc(A, nh * sizeof(float));

    /* the sweep over permuted columns: Wp (rows, cols) is W with columns perm */
    float *Wp = spq_malloc(nw * sizeof(float));
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < cols; i++) Wp[(size_t)r * cols + i] = W[(size_t)r * cols + perm[i]];
    int B = g->blocksize;
    float *E = spq_malloc((size_t)rows * B * sizeof(float));  /* (rows, B) scaled errors of the block */
    sweep_ctx sc = {.W = W, .Wp = Wp, .U = U, .E = E, .scale = scale, .zero = zero, .perm = perm, .w = w,
                    .rows = rows, .cols = cols, .B = B, .G = G, .ng = ng, .qmin = qmin, .qmax = qmax,
                    .dynamic = grouped && !static_groups};
    sc.per_task = row_chunk(rows, (double)rows * cols * B);
    for (int i1 = 0; i1 < cols; i1 += B) {
        int i2 = i1 + B < cols ? i1 + B : cols, nb = i2 - i1;
        sc.i1 = i1;
        sc.i2 = i2;
        spq_parallel_for((rows + sc.per_task - 1) / sc.per_task, sweep_task, &sc);
        /* the columns after the block: Wp[:, i2:] -= E U[i1:i2, i2:] */
        if (i2 < cols)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols - i2, nb, -1.0f, E, B,
                        U + (size_t)i1 * cols + i2, cols, 1.0f, Wp + i2, cols);
    }
    free(E); free(Wp); free(U); free(perm); free(diag);

    if (stat) {
        /* errors against round-to-nearest with the same settings */
        float *D = spq_malloc(nw * sizeof(float));
        stat->sq_base = quad_form(W0, H, rows, cols);
        for (size_t i = 0; i < nw; i++) D[i] = W0[i] - W[i];
        stat->sq_gptq = quad_form(D, H, rows, cols);
        spq_wq_forward(D, W0, rows, cols, w);
        for (size_t i = 0; i < nw; i++) D[i] = W0[i] - D[i];
        stat->sq_rtn = quad_form(D, H, rows, cols);
        stat->err_gptq = stat->sq_gptq / stat->sq_base;
        stat->err_rtn = stat->sq_rtn / stat->sq_base;
        free(D);
        free(W0);
    }
    return 0;
}

/* ---- the whole model ---- */

typedef struct {
    int site;
    double *H;      /* (C, C) accumulated X^T X, upper triangle */
    float *tmp;     /* (C, C) one call's X^T X */
    long tokens;
} hess_acc;

/* accumulates the site's inputs, then stops the layer: nothing after the
 * site is needed */
static int observe(void *ud, int layer, int site, const float *x, int N, int C) {
    (void)layer;
    hess_acc *a = ud;
    if (site != a->site) return 0;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, C, N, 1.0f, x, C, 0.0f, a->tmp, C);
    for (int i = 0; i < C; i++)
        for (int j = i; j < C; j++) a->H[(size_t)i * C + j] += a->tmp[(size_t)i * C + j];
    a->tokens += N;
    return 1;
}

static int site_width(const spq_config *c, int site) {
    return site == SPQ_SITE_O ? c->n_heads * c->head_dim : site == SPQ_SITE_DOWN ? c->hidden_dim : c->dim;
}

/* runs layer l over every window of inps (nsamples, T, D), in place when
 * write_back, with an observer. The forward state (a KV cache of one layer)
 * lives for the call only: at 8B and 2 windows of 2048 it is 0.8 GB, which
 * the factorization that follows has better use for. */
static void run_layer(const spq_model *m, float *inps, int nsamples, int T, int batch, int l, int write_back,
                      spq_observer_fn obs, void *ud) {
    int D = m->cfg.dim;
    spq_state s;
    spq_state_build_one_layer(&s, &m->cfg, batch, T, batch * T);
    int *pos = spq_calloc(batch, sizeof(int));
    for (int j0 = 0; j0 < nsamples; j0 += batch) {
        int Bn = nsamples - j0 < batch ? nsamples - j0 : batch;
        size_t n = (size_t)Bn * T * D;
        memcpy(s.x, inps + (size_t)j0 * T * D, n * sizeof(float));
        spq_layer_forward(&s, pos, m, l, Bn, T, obs, ud);
        if (write_back) memcpy(inps + (size_t)j0 * T * D, s.x, n * sizeof(float));
    }
    free(pos);
    spq_state_free(&s);
}

/* windows per forward call: the setting's, fewer so that a call has at most
 * 4096 tokens (a product of 4096 rows already runs at the GEMM's speed, and
 * the state grows with the tokens: 1.6 GB per 4096 at 8B) */
static int calib_batch(const spq_gptq_cfg *g) {
    int b = 4096 / g->seqlen;
    if (b > g->batch) b = g->batch;
    if (b > g->nsamples) b = g->nsamples;
    return b < 1 ? 1 : b;
}

/* acc's X^T X (upper triangle) and token count summed over the ranks, in
 * rank order; the triangle is packed so that the sum moves C(C+1)/2
 * numbers, not C^2 */
static void sum_hessian(hess_acc *a, int C) {
    if (spq_par_size() < 2) return;
    size_t n = (size_t)C * (C + 1) / 2, k = 0;
    double *tri = spq_malloc(n * sizeof(double));
    for (int i = 0; i < C; i++)
        for (int j = i; j < C; j++) tri[k++] = a->H[(size_t)i * C + j];
    spq_par_sum_f64(tri, n);
    k = 0;
    for (int i = 0; i < C; i++)
        for (int j = i; j < C; j++) a->H[(size_t)i * C + j] = tri[k++];
    free(tri);
    long long t = a->tokens;
    spq_par_sum_i64(&t, 1);
    a->tokens = (long)t;
}

/* [*lo, *hi): rank r's share of n rows (spq_par_share's rule) */
static void rows_of(int n, int r, int *lo, int *hi) {
    int P = spq_par_size(), base = n / P, extra = n % P;
    *lo = r * base + (r < extra ? r : extra);
    *hi = *lo + base + (r < extra);
}

/* factor_fn for shared rows: rank 0 factors, every rank gets U. (Every rank
 * factoring the same H would cost no time on separate nodes, but ranks that
 * share a node would compete for its memory bandwidth: measured slower.) */
static int factor_on_rank0(double *A, int n, spq_err *err) {
    int bad = spq_par_rank() == 0 && spq_gptq_inv_chol(A, n, err) != 0;
    if (spq_par_any(bad)) return bad ? -1 : spq_fail(err, "rank 0 could not factor H");
    spq_par_bcast(A, (size_t)n * n * sizeof(float), 0);
    return 0;
}

/* spq_gptq_linear across the ranks: GPTQ treats rows independently (the
 * columns' order and U come from H alone), so each rank finds the
 * parameters of its share of the rows and sweeps them with rank 0's U, and
 * broadcasts them; the stats' sums are added. Every rank returns the same. */
static int gptq_rows_shared(float *W, spq_wparams *p, spq_gptq_stat *st, const double *H, int rows, int cols,
                            const spq_wq_cfg *w, const spq_gptq_cfg *g, spq_err *err) {
    if (spq_par_size() < 2) return spq_gptq_linear(W, p->scale, p->zero, H, rows, cols, w, g, st, err);
    int ng = spq_wq_ngroups(w, cols), lo, hi;
    rows_of(rows, spq_par_rank(), &lo, &hi);
    spq_gptq_stat mine = {0};
    int bad;
    if (hi > lo) {
        bad = gptq_linear(W + (size_t)lo * cols, p->scale + (size_t)lo * ng, p->zero + (size_t)lo * ng, H, hi - lo,
                          cols, w, g, st ? &mine : NULL, factor_on_rank0, err) != 0;
    } else { /* no rows here (rows < ranks), but rank 0's U is broadcast to all */
        double *U = spq_malloc((size_t)cols * cols * sizeof(float));
        bad = factor_on_rank0(U, cols, err) != 0;
        free(U);
    }
    if (spq_par_any(bad)) return bad ? -1 : spq_fail(err, "another rank failed");
    for (int r = 0; r < spq_par_size(); r++) {
        rows_of(rows, r, &lo, &hi);
        spq_par_bcast(W + (size_t)lo * cols, (size_t)(hi - lo) * cols * sizeof(float), r);
        spq_par_bcast(p->scale + (size_t)lo * ng, (size_t)(hi - lo) * ng * sizeof(float), r);
        spq_par_bcast(p->zero + (size_t)lo * ng, (size_t)(hi - lo) * ng * sizeof(float), r);
    }
    if (st) {
        double sq[3] = {mine.sq_base, mine.sq_gptq, mine.sq_rtn};
        spq_par_sum_f64(sq, 3);
        *st = (spq_gptq_stat){sq[1] / sq[0], sq[2] / sq[0], sq[0], sq[1], sq[2]};
    }
    return 0;
}

int spq_gptq_model(spq_wquant *wq, spq_gptq_stat *stats, spq_model *m, const spq_wq_cfg *w, const int *tokens, long n,
                   const spq_gptq_cfg *g, spq_gptq_progress_fn progress, void *ud, spq_err *err) {
    const spq_config *c = &m->cfg;
    memset(wq, 0, sizeof *wq);
    if (m->packed) return spq_fail(err, "GPTQ needs an fp32 model, not a packed one");
    if (w->bits >= SPQ_QUANT_OFF) return spq_fail(err, "w_bits: 16 means no weight quantization");
    if (spq_wq_validate(w, 1, err) || spq_gptq_check(g, c, err)) return -1;
    long *starts = spq_malloc((size_t)g->nsamples * sizeof(long));
    if (spq_calib_windows(starts, n, g->nsamples, g->seqlen, g->seed, err)) {
        free(starts);
        return -1;
    }
    /* the model as calibration runs it: same weights, quantizers off unless asked */
    spq_model mc = *m;
    if (!g->calib_aq) {
        mc.q.a = spq_qcfg_off().a;
        mc.q.kv = spq_qcfg_off().kv;
    }
    /* this rank's windows [lo, hi) of nsamples (all of them with one rank) */
    int lo, hi;
    spq_par_share(g->nsamples, &lo, &hi);
    int ns = hi - lo;
    int T = g->seqlen, D = c->dim, batch = calib_batch(g);
    float *inps = spq_malloc((size_t)(ns > 0 ? ns : 1) * T * D * sizeof(float));
    {
        spq_state s;
        spq_state_build_one_layer(&s, c, 1, T, T);
        for (int j = 0; j < ns; j++) {
            spq_embed_forward(&s, tokens + starts[lo + j], m, T);
            memcpy(inps + (size_t)j * T * D, s.x, (size_t)T * D * sizeof(float));
        }
        spq_state_free(&s);
    }
    free(starts);
    spq_wquant_alloc(wq, c, w);
    int rc = 0;
    for (int l = 0; l < c->n_layers && !rc; l++) {
        double t0 = spq_now();
        spq_qpack_take(m, l);
        spq_gptq_stat ls[SPQ_N_LIN];
        memset(ls, 0, sizeof ls);
        for (int site = 0; site < SPQ_N_SITES && !rc; site++) {
            /* the site's H, and one call's X^T X only while collecting */
            int C = site_width(c, site);
            hess_acc acc = {.site = site, .H = spq_calloc((size_t)C * C, sizeof(double)),
                            .tmp = spq_malloc((size_t)C * C * sizeof(float))};
            run_layer(&mc, inps, ns, T, batch, l, 0, observe, &acc);
            free(acc.tmp);
            sum_hessian(&acc, C);
            /* H = 2 X^T X / n, mirrored into the lower triangle */
            double f = 2.0 / (double)acc.tokens;
            for (int i = 0; i < C; i++)
                for (int j = i; j < C; j++) {
                    double v = acc.H[(size_t)i * C + j] * f;
                    acc.H[(size_t)i * C + j] = acc.H[(size_t)j * C + i] = v;
                }
            for (int which = 0; which < SPQ_N_LIN && !rc; which++) {
                if (spq_lin_site(which) != site) continue;
                int rows, cols;
                spq_lin_shape(c, which, &rows, &cols);
                if (!spq_wq_fits(w, cols)) continue;
                spq_wparams *p = spq_wquant_at(wq, l, which);
                float *W = *spq_lin_weight(&m->layers[l], which);
                if (gptq_rows_shared(W, p, stats ? &ls[which] : NULL, acc.H, rows, cols, w, g, err))
                    rc = spq_fail_prefix(err, "layer %d %s", l, spq_lin_name(which));
            }
            free(acc.H);
        }
        if (rc) break;
        run_layer(&mc, inps, ns, T, batch, l, 1, NULL, NULL);
        if (spq_qpack_settle(m, l, wq, err)) {
            rc = -1;
            break;
        }
        if (stats) memcpy(stats + (size_t)l * SPQ_N_LIN, ls, sizeof ls);
        if (spq_par_any(progress && progress(ud, l, c->n_layers, ls, spq_now() - t0)) && l + 1 < c->n_layers) {
            rc = 1;
            break;
        }
    }
    free(inps);
    if (rc) spq_wquant_free(wq);
    return rc;
}
