/* test_gptq.c - GPTQ on synthetic layers (correlated inputs, dead columns,
 * act-order, groups) and on stories260K: the quantized weights lie on the
 * grid of the returned parameters, the reported error equals
 * ||X (W - W_q)^T||^2 / ||X W^T||^2 computed here from X in double, and it is
 * below round-to-nearest's on every linear; calibration windows and their
 * errors; bad settings named. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/io/load.h"
#include "common/model/forward.h"
#include "common/quant/gptq.h"
#include "common/quant/qmodel.h"
#include "common/rot/rotation.h"
#include "common/tok/tokenizer.h"

/* X (N, C) with correlated columns (a random mixing of fewer factors plus
 * noise, some columns much larger than others) */
static float *make_x(int N, int C, uint64_t seed) {
    spq_rng r;
    spq_rng_seed(&r, seed);
    int F = C / 3 + 1;
    float *mix = malloc((size_t)F * C * sizeof(float)), *x = malloc((size_t)N * C * sizeof(float));
    for (int i = 0; i < F * C; i++) mix[i] = (float)spq_rng_normal(&r);
    for (int n = 0; n < N; n++) {
        double f[64];
        for (int j = 0; j < F; j++) f[j] = spq_rng_normal(&r);
        for (int k = 0; k < C; k++) {
            double v = 0.1 * spq_rng_normal(&r);
            for (int j = 0; j < F; j++) v += f[j] * mix[j * C + k];
            x[(size_t)n * C + k] = (float)(v * (1 + 4 * (k % 5 == 0)));
        }
    }
    free(mix);
    return x;
}

static double *hessian(const float *x, int N, int C) {
    double *H = calloc((size_t)C * C, sizeof(double));
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++) H[(size_t)i * C + j] += 2.0 * x[(size_t)n * C + i] * x[(size_t)n * C + j] / N;
    return H;
}

/* ||X (W - Q)^T||^2 / ||X W^T||^2 in double */
static double out_err(const float *x, const float *W, const float *Q, int N, int C, int rows) {
    double e = 0, b = 0;
    for (int n = 0; n < N; n++)
        for (int r = 0; r < rows; r++) {
            double y = 0, yq = 0;
            for (int k = 0; k < C; k++) {
                y += (double)x[(size_t)n * C + k] * W[(size_t)r * C + k];
                yq += (double)x[(size_t)n * C + k] * Q[(size_t)r * C + k];
            }
            e += (y - yq) * (y - yq);
            b += y * y;
        }
    return e / b;
}

static void run_case(int rows, int C, spq_wq_cfg w, int act_order, int dead) {
    int N = 200;
    float *x = make_x(N, C, 7 + C);
    if (dead)
        for (int n = 0; n < N; n++) x[(size_t)n * C + 3] = 0;  /* a feature that is always 0 */
    double *H = hessian(x, N, C);
    spq_rng r;
    spq_rng_seed(&r, 99);
    float *W = malloc((size_t)rows * C * sizeof(float)), *Q = malloc((size_t)rows * C * sizeof(float));
    for (int i = 0; i < rows * C; i++) W[i] = (float)(0.05 * spq_rng_normal(&r));
    memcpy(Q, W, (size_t)rows * C * sizeof(float));
    int ng = spq_wq_ngroups(&w, C);
    float *s = malloc((size_t)rows * ng * sizeof(float)), *z = malloc((size_t)rows * ng * sizeof(float));
    spq_gptq_cfg g = spq_gptq_defaults();
    g.act_order = act_order;
    g.blocksize = 16;  /* several blocks even at these sizes */
    spq_gptq_stat st;
    spq_err err;
    cr_assert(spq_gptq_linear(Q, s, z, H, rows, C, &w, &g, &st, &err) == 0, "%s", err.msg);
    /* on the grid of its parameters */
    int qmin, qmax, G = w.groupsize > 0 ? w.groupsize : C;
    spq_quant_range(w.bits, w.sym, &qmin, &qmax);
    for (int i = 0; i < rows; i++)
        for (int k = 0; k < C; k++) {
            size_t o = (size_t)i * ng + k / G, e = (size_t)i * C + k;
            cr_assert_eq(spq_quant_qdq(Q[e], s[o], z[o], qmin, qmax), Q[e], "row %d col %d off the grid", i, k);
            if (dead && k == 3) cr_assert_eq(Q[e], 0.0f);
        }
    /* the reported error is the output error, and beats round to nearest */
    double e = out_err(x, W, Q, N, C, rows);
    cr_assert(fabs(e - st.err_gptq) <= 1e-4 * e + 1e-9, "reported %g, direct %g", st.err_gptq, e);
    float *R = malloc((size_t)rows * C * sizeof(float));
    spq_wq_forward(R, W, rows, C, &w);
    double er = out_err(x, W, R, N, C, rows);
    cr_assert(fabs(er - st.err_rtn) <= 1e-4 * er + 1e-9, "reported rtn %g, direct %g", st.err_rtn, er);
    cr_assert(e < 0.8 * er, "gptq %g vs rtn %g (C %d act_order %d G %d)", e, er, C, act_order, w.groupsize);
    free(x); free(H); free(W); free(Q); free(s); free(z); free(R);
}

Test(gptq, beats_rtn_on_correlated_inputs) {
    run_case(24, 40, (spq_wq_cfg){.bits = 4, .sym = 1}, 0, 0);
    run_case(24, 40, (spq_wq_cfg){.bits = 4, .sym = 1, .mse = 1}, 0, 0);
    run_case(17, 53, (spq_wq_cfg){.bits = 3, .sym = 0}, 0, 1);
    run_case(300, 32, (spq_wq_cfg){.bits = 4, .sym = 1}, 0, 0);  /* the error's products in two chunks of rows */
}

Test(gptq, act_order_and_groups) {
    run_case(20, 48, (spq_wq_cfg){.bits = 4, .sym = 1}, 1, 0);
    run_case(20, 48, (spq_wq_cfg){.bits = 4, .sym = 1, .groupsize = 16}, 0, 0);  /* groups inside blocks */
    run_case(20, 56, (spq_wq_cfg){.bits = 4, .sym = 0, .groupsize = 16}, 1, 1);  /* static groups, dead column */
    run_case(20, 50, (spq_wq_cfg){.bits = 4, .sym = 1, .groupsize = 32}, 0, 0);  /* groups across blocks */
}

extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info, size_t len);

Test(gptq, inverse_cholesky_factor_is_the_references) {
    /* the reference: chol(inv(H)) upper, by dpotrf, dpotri, dpotrf; and U^T U = H^-1 checked against H */
    for (int n = 1; n <= 41; n += 8) {
        float *x = make_x(3 * n, n, 50 + n);
        double *H = hessian(x, 3 * n, n), *A = malloc((size_t)n * n * sizeof(double)),
               *R = malloc((size_t)n * n * sizeof(double));
        for (int i = 0; i < n; i++) H[(size_t)i * n + i] += 0.01;
        memcpy(A, H, (size_t)n * n * sizeof(double));
        memcpy(R, H, (size_t)n * n * sizeof(double));
        spq_err err;
        cr_assert(spq_gptq_inv_chol(A, n, &err) == 0, "%s", err.msg);
        float *U = malloc((size_t)n * n * sizeof(float));
        memcpy(U, A, (size_t)n * n * sizeof(float)); /* the factor replaced A */
        int info;
        dpotrf_("L", &n, R, &n, &info, 1);
        dpotri_("L", &n, R, &n, &info, 1);
        dpotrf_("L", &n, R, &n, &info, 1);
        for (int i = 0; i < n; i++)
            for (int j = i; j < n; j++) {
                double want = R[(size_t)i * n + j];  /* row-major upper = LAPACK's column-major lower */
                cr_assert(fabs(U[(size_t)i * n + j] - want) <= 1e-5 * fabs(R[(size_t)i * n + i]) + 1e-30,
                          "n %d U[%d][%d] = %g, reference %g", n, i, j, U[(size_t)i * n + j], want);
            }
        /* (U^T U) H = I */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double p = 0;
                for (int k = 0; k < n; k++) {
                    double uk = 0;  /* (U^T U)[i][k] */
                    for (int m = 0; m <= (i < k ? i : k); m++) uk += (double)U[(size_t)m * n + i] * U[(size_t)m * n + k];
                    p += uk * H[(size_t)k * n + j];
                }
                cr_assert(fabs(p - (i == j)) < 1e-3, "n %d: (U^T U H)[%d][%d] = %g", n, i, j, p);
            }
        free(x); free(H); free(A); free(R); free(U);
    }
    /* not positive definite */
    double A[4] = {1, 2, 2, 1};
    spq_err err;
    cr_assert(spq_gptq_inv_chol(A, 2, &err) == -1);
    cr_assert(strstr(err.msg, "not positive definite"), "%s", err.msg);
}

Test(gptq, calibration_windows) {
    long st[16];
    spq_err err;
    cr_assert(spq_calib_windows(st, 1000, 16, 100, 5, &err) == 0);
    for (int i = 0; i < 16; i++) cr_assert(st[i] >= 0 && st[i] <= 900);
    long st2[16];
    spq_calib_windows(st2, 1000, 16, 100, 5, &err);
    cr_assert(memcmp(st, st2, sizeof st) == 0, "seeded");
    cr_assert(spq_calib_windows(st, 1000, 1, 1000, 5, &err) == 0 && st[0] == 0);
    cr_assert(spq_calib_windows(st, 99, 4, 100, 5, &err) == -1);
    cr_assert(strstr(err.msg, "99 tokens, fewer than one window of seqlen 100"), "%s", err.msg);
}

/* ---- stories260K ---- */

static const char *shared(void) {
    const char *s = getenv("SPINQ_SHARED");
    return s ? s : "../shared";
}

static void rotated_stories(spq_model *m) {
    char p[4096];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.bin", shared());
    spq_err err;
    cr_assert(spq_model_load(m, p, &err) == 0, "%s", err.msg);
    spq_rotation rot;
    cr_assert(spq_rotation_build(&rot, &m->cfg, 1, SPQ_INIT_HADAMARD, 0, &err) == 0);
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = 4;
    q.w.mse = 1;
    cr_assert(spq_qmodel_prepare(m, &rot, &q, 0, &err) == 0, "%s", err.msg);
    spq_rotation_free(&rot);
}

static int *calib_tokens(long *n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/data/tinystories/calib.txt", shared());
    spq_err err;
    char *text;
    size_t len;
    cr_assert(spq_read_file(&text, &len, p, &err) == 0, "%s", err.msg);
    if (len > 12000) len = 12000;
    while (len && (text[len - 1] & 0xC0) == 0x80) len--;
    if (len) len--;
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.bin", shared());
    spq_tokenizer *tok;
    cr_assert(spq_tok_load_for_model(&tok, p, &err) == 0);
    int *ids, ni;
    cr_assert(spq_tok_encode(tok, text, len, 1, &ids, &ni, &err) == 0);
    spq_tok_free(tok);
    free(text);
    *n = ni;
    return ids;
}

typedef struct {
    int layer, site;
    float *x;
    int N, C;
} grab;

static int grab_input(void *ud, int layer, int site, const float *x, int N, int C) {
    grab *g = ud;
    if (layer != g->layer || site != g->site || g->x) return 0;
    g->x = malloc((size_t)N * C * sizeof(float));
    memcpy(g->x, x, (size_t)N * C * sizeof(float));
    g->N = N;
    g->C = C;
    return 1;
}

Test(gptq, stories260k_every_linear_below_rtn) {
    spq_model m, orig;
    rotated_stories(&m);
    spq_model_copy(&orig, &m);
    long n;
    int *tok = calib_tokens(&n);
    spq_gptq_cfg g = spq_gptq_defaults();
    g.nsamples = 8;
    g.seqlen = 128;
    g.batch = 4;
    spq_wquant wq;
    spq_gptq_stat *st = calloc(m.cfg.n_layers * SPQ_N_LIN, sizeof *st);
    spq_err err;
    cr_assert(spq_gptq_model(&wq, st, &m, &m.q.w, tok, n, &g, NULL, NULL, &err) == 0, "%s", err.msg);
    for (int l = 0; l < m.cfg.n_layers; l++)
        for (int w = 0; w < SPQ_N_LIN; w++) {
            const spq_gptq_stat *s = &st[l * SPQ_N_LIN + w];
            cr_assert(s->err_gptq < s->err_rtn && s->err_gptq > 0, "layer %d %s: gptq %g rtn %g", l,
                      spq_lin_name(w), s->err_gptq, s->err_rtn);
        }
    /* layer 0's q/k/v read the embeddings' norm, which no quantized layer
     * precedes: recompute their inputs and check the errors directly */
    long starts[8];
    cr_assert(spq_calib_windows(starts, n, g.nsamples, g.seqlen, g.seed, &err) == 0);
    spq_state s;
    spq_state_build(&s, &m.cfg, 1, g.seqlen, g.seqlen);
    int zero = 0;
    float *X = malloc((size_t)g.nsamples * g.seqlen * m.cfg.dim * sizeof(float));
    for (int j = 0; j < g.nsamples; j++) {
        grab gr = {.layer = 0, .site = SPQ_SITE_QKV};
        spq_embed_forward(&s, tok + starts[j], &orig, g.seqlen);
        spq_layer_forward(&s, &zero, &orig, 0, 1, g.seqlen, grab_input, &gr);
        memcpy(X + (size_t)j * g.seqlen * m.cfg.dim, gr.x, (size_t)g.seqlen * m.cfg.dim * sizeof(float));
        free(gr.x);
    }
    int N = g.nsamples * g.seqlen;
    for (int w = SPQ_LIN_Q; w <= SPQ_LIN_V; w++) {
        int rows, cols;
        spq_lin_shape(&m.cfg, w, &rows, &cols);
        const float *W0 = *spq_lin_weight(&orig.layers[0], w), *Wq = *spq_lin_weight(&m.layers[0], w);
        float *R = malloc((size_t)rows * cols * sizeof(float));
        spq_wq_forward(R, W0, rows, cols, &m.q.w);
        double eg = out_err(X, W0, Wq, N, cols, rows), er = out_err(X, W0, R, N, cols, rows);
        cr_assert(eg < er, "%s: gptq %g rtn %g", spq_lin_name(w), eg, er);
        cr_assert(fabs(eg - st[w].err_gptq) <= 1e-3 * eg, "%s: direct %g reported %g", spq_lin_name(w), eg,
                  st[w].err_gptq);
        cr_assert(fabs(er - st[w].err_rtn) <= 1e-3 * er, "%s: direct rtn %g reported %g", spq_lin_name(w), er,
                  st[w].err_rtn);
        free(R);
    }
    free(X);
    spq_state_free(&s);
    free(st);
    free(tok);
    spq_wquant_free(&wq);
    spq_model_free(&m);
    spq_model_free(&orig);
}

Test(gptq, bad_settings_and_short_calibration) {
    spq_model m;
    rotated_stories(&m);
    long n;
    int *tok = calib_tokens(&n);
    spq_wquant wq;
    spq_err err;
    spq_gptq_cfg g = spq_gptq_defaults();
    g.seqlen = 128;
    g.nsamples = 2;
    cr_assert(spq_gptq_model(&wq, NULL, &m, &m.q.w, tok, 100, &g, NULL, NULL, &err) == -1);
    cr_assert(strstr(err.msg, "100 tokens, fewer than one window of seqlen 128"), "%s", err.msg);
    g.seqlen = 4096;
    cr_assert(spq_gptq_model(&wq, NULL, &m, &m.q.w, tok, n, &g, NULL, NULL, &err) == -1);
    cr_assert(strstr(err.msg, "seqlen: 4096"), "%s", err.msg);
    g.seqlen = 128;
    g.damp = 0;
    cr_assert(spq_gptq_model(&wq, NULL, &m, &m.q.w, tok, n, &g, NULL, NULL, &err) == -1);
    cr_assert(strstr(err.msg, "damp"), "%s", err.msg);
    g.damp = 0.01;
    spq_wq_cfg w16 = {.bits = 16};
    cr_assert(spq_gptq_model(&wq, NULL, &m, &w16, tok, n, &g, NULL, NULL, &err) == -1);
    cr_assert(strstr(err.msg, "w_bits"), "%s", err.msg);
    free(tok);
    spq_model_free(&m);
}
