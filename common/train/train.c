/* train.c - see train.h. Shapes: d = dim, qd = n_heads*hd, kvd =
 * n_kv_heads*hd, H = hidden_dim, N = B*T rows. */
#include "train.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "common/model/layers.h"
#include "common/model/mapped.h"
#include "common/rot/fuse.h"

#define ALLOC(n) spq_malloc((size_t)(n) * sizeof(float))

int spq_trainer_build(spq_trainer *t, const spq_model *m, const spq_rotation *rot, const spq_qcfg *q, int B, int T,
                      spq_err *err) {
    memset(t, 0, sizeof *t);
    const spq_config *c = &m->cfg;
    if (!spq_model_is_fused(m)) return spq_fail(err, "learning: the model's norms must be fused first");
    if (m->r3 || m->r4) return spq_fail(err, "learning: the model must not be rotated already");
    if (spq_rotation_check(rot, c, err)) return -1;
    if (B < 1 || T < 2) return spq_fail(err, "learning: need at least 1 window of 2 tokens (got %d x %d)", B, T);
    if (spq_wq_validate(&q->w, c->dim, err) || spq_aq_validate(&q->a, c->dim, err)) return -1;
    spq_aq_cfg kv = spq_qcfg_kv(q, c->head_dim);
    if (spq_aq_validate(&kv, c->n_kv_heads * c->head_dim, err)) return -1;
    size_t d = c->dim, hd = c->head_dim, H = c->hidden_dim, V = c->vocab_size, L = c->n_layers;
    size_t qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, N = (size_t)B * T;
    t->m = m;
    t->q = *q;
    t->B = B;
    t->T = T;
    t->N = (int)N;
    if (rot->online) {
        t->r3 = &rot->r3;
        t->r4 = &rot->r4;
        t->wd_fold = ALLOC(d * H);
        t->fold_row = spq_malloc(H * sizeof(double));
    }
    t->src_l = -1;
    if (m->mapped) t->src_buf = ALLOC(spq_mapped_layer_floats(c));
    t->rope_cos = ALLOC((size_t)T * hd / 2);
    t->rope_sin = ALLOC((size_t)T * hd / 2);
    spq_rope_tables(t->rope_cos, t->rope_sin, c, T);
    t->pos = spq_malloc(N * sizeof(int));
    for (size_t i = 0; i < N; i++) t->pos[i] = (int)(i % T);
    t->R1 = ALLOC(d * d);
    t->R2 = ALLOC(L * hd * hd);
    t->dR1 = ALLOC(d * d);
    t->dR2 = ALLOC(L * hd * hd);
    t->wq = ALLOC(qd * d); t->wk = ALLOC(kvd * d); t->wv = ALLOC(kvd * d); t->wo = ALLOC(d * qd);
    t->wg = ALLOC(H * d); t->wu = ALLOC(H * d); t->wd = ALLOC(d * H);
    t->mv = ALLOC(kvd * d); t->ao = ALLOC(d * qd);
    size_t wmax = H * d > qd * d ? H * d : qd * d;
    t->dw = ALLOC(wmax);
    t->tmp_dd = ALLOC(d * (d > qd ? d : qd));
    t->xs = ALLOC((L + 1) * N * d);
    t->n1 = ALLOC(N * d); t->rstd1 = ALLOC(N); t->q_ = ALLOC(N * qd); t->k_ = ALLOC(N * kvd); t->v_ = ALLOC(N * kvd);
    t->att = ALLOC(N * qd); t->xm = ALLOC(N * d); t->n2 = ALLOC(N * d); t->rstd2 = ALLOC(N);
    t->gate = ALLOC(N * H); t->up = ALLOC(N * H); t->h = ALLOC(N * H);
    t->dx = ALLOC(N * d); t->dn = ALLOC(N * d); t->dtmp = ALLOC(N * d); t->dq = ALLOC(N * qd); t->dk = ALLOC(N * kvd); t->dv = ALLOC(N * kvd);
    t->datt = ALLOC(N * qd); t->dh = ALLOC(N * H); t->dgate = ALLOC(N * H); t->dup = ALLOC(N * H);
    t->attn_scratch = ALLOC(2 * (size_t)T * T);
    size_t chunk = (1u << 24) / V;
    if (chunk < 1) chunk = 1;
    if (chunk > N) chunk = N;
    t->logits = ALLOC(chunk * V);
    t->ones = ALLOC(d);
    for (size_t i = 0; i < d; i++) t->ones[i] = 1.0f;
    t->targets = spq_malloc(N * sizeof(int));
    return 0;
}

void spq_trainer_free(spq_trainer *t) {
    float *bufs[] = {t->src_buf, t->wd_fold, t->rope_cos, t->rope_sin, t->R1, t->R2, t->dR1, t->dR2, t->wq, t->wk, t->wv,
                     t->wo, t->wg, t->wu, t->wd, t->mv, t->ao, t->dw, t->tmp_dd, t->xs, t->n1, t->rstd1, t->q_,
                     t->k_, t->v_, t->att, t->xm, t->n2, t->rstd2, t->gate, t->up, t->h, t->dx, t->dn, t->dq,
                     t->dk, t->dv, t->datt, t->dtmp, t->dh, t->dgate, t->dup, t->attn_scratch, t->logits, t->ones};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    free(t->fold_row);
    free(t->pos);
    free(t->targets);
    if (t->noise)
        for (int i = 0; i < t->m->cfg.n_layers * SPQ_NOISE_SITES; i++) free(t->noise[i]);
    free(t->noise);
    memset(t, 0, sizeof *t);
}

/* ---- quantizers, with the frozen-noise modes of the gradient check ---- */

enum { SITE_WQ, SITE_WK, SITE_WV, SITE_WO, SITE_WG, SITE_WU, SITE_WD,
       SITE_N1, SITE_K, SITE_V, SITE_ATT, SITE_N2, SITE_H };

static float *noise_buf(spq_trainer *t, int l, int site, size_t n) {
    if (!t->noise) t->noise = spq_calloc((size_t)t->m->cfg.n_layers * SPQ_NOISE_SITES, sizeof(float *));
    float **p = &t->noise[l * SPQ_NOISE_SITES + site];
    if (!*p) *p = spq_calloc(n, sizeof(float));
    return *p;
}

/* replay: x += noise; otherwise quantize x in place with `quantize` and, when
 * recording, keep q(x) - x */
static void with_noise(spq_trainer *t, int l, int site, float *x, size_t n, void (*quantize)(float *, const void *, int, int),
                       const void *cfg, int rows, int cols) {
    if (t->noise_mode == SPQ_NOISE_REPLAY) {
        const float *e = noise_buf(t, l, site, n);
        for (size_t i = 0; i < n; i++) x[i] += e[i];
        return;
    }
    if (t->noise_mode == SPQ_NOISE_RECORD) {
        float *e = noise_buf(t, l, site, n);
        memcpy(e, x, n * sizeof(float));
        quantize(x, cfg, rows, cols);
        for (size_t i = 0; i < n; i++) e[i] = x[i] - e[i];
        return;
    }
    quantize(x, cfg, rows, cols);
}

static void wq_inplace(float *x, const void *cfg, int rows, int cols) { spq_wq_forward(x, x, rows, cols, cfg); }
static void aq_inplace(float *x, const void *cfg, int rows, int cols) { spq_aq_forward(x, x, rows, cols, cfg); }

static void fq_weight(spq_trainer *t, int l, int site, float *W, int rows, int cols) {
    if (t->q.w.bits >= SPQ_QUANT_OFF) return;
    with_noise(t, l, site, W, (size_t)rows * cols, wq_inplace, &t->q.w, rows, cols);
}

static void fq_act(spq_trainer *t, int l, int site, float *x, int rows, int cols, const spq_aq_cfg *c) {
    if (c->bits >= SPQ_QUANT_OFF) return;
    with_noise(t, l, site, x, (size_t)rows * cols, aq_inplace, c, rows, cols);
}

/* ---- rotated weights of layer l ---- */

/* out (rows, d) = W (rows, d) R1 */
static void right_r1(float *out, const float *W, const float *R1, int rows, int d) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, d, 1.0f, W, d, R1, d, 0.0f, out, d);
}

/* t->src <- layer l's frozen weights, and t->wd_fold its W_down M4^T:
 * folded in fp64 a row at a time, as spq_rotation_apply folds it */
static void load_layer(spq_trainer *t, int l) {
    const spq_model *m = t->m;
    const spq_config *c = &m->cfg;
    if (t->src_l == l) return;
    if (m->mapped) spq_mapped_layer(&t->src, t->src_buf, m, l);
    else t->src = m->layers[l];
    t->src_l = l;
    if (!t->wd_fold) return;
    size_t d = c->dim, H = c->hidden_dim;
    for (size_t r = 0; r < d; r++) {
        const float *w = t->src.w_down + r * H;
        float *out = t->wd_fold + r * H;
        for (size_t i = 0; i < H; i++) t->fold_row[i] = w[i];
        spq_rot_online_apply_f64(t->r4, t->fold_row, 1);
        for (size_t i = 0; i < H; i++) out[i] = (float)t->fold_row[i];
    }
}

/* the down projection as the rotation meets it: folded with M4 or not */
static const float *down_weight(const spq_trainer *t) { return t->wd_fold ? t->wd_fold : t->src.w_down; }

static void rotate_layer(spq_trainer *t, int l) {
    load_layer(t, l);
    const spq_config *c = &t->m->cfg;
    const spq_layer *L = &t->src;
    int d = c->dim, hd = c->head_dim, H = c->hidden_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    const float *R1 = t->R1, *R2 = t->R2 + (size_t)l * hd * hd;
    right_r1(t->wq, L->wq, R1, qd, d);
    right_r1(t->wk, L->wk, R1, kvd, d);
    right_r1(t->mv, L->wv, R1, kvd, d);
    for (int h = 0; h < c->n_kv_heads; h++)  /* R2^T on each head's rows */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hd, d, hd, 1.0f, R2, hd, t->mv + (size_t)h * hd * d, d,
                    0.0f, t->wv + (size_t)h * hd * d, d);
    for (int h = 0; h < c->n_heads; h++)  /* R2 on each head's columns of o_proj */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, hd, hd, 1.0f, L->wo + (size_t)h * hd, qd, R2, hd,
                    0.0f, t->ao + (size_t)h * hd, qd);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, qd, d, 1.0f, R1, d, t->ao, qd, 0.0f, t->wo, qd);
    right_r1(t->wg, L->w_gate, R1, H, d);
    right_r1(t->wu, L->w_up, R1, H, d);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, H, d, 1.0f, R1, d, down_weight(t), H, 0.0f, t->wd, H);
    fq_weight(t, l, SITE_WQ, t->wq, qd, d);
    fq_weight(t, l, SITE_WK, t->wk, kvd, d);
    fq_weight(t, l, SITE_WV, t->wv, kvd, d);
    fq_weight(t, l, SITE_WO, t->wo, d, qd);
    fq_weight(t, l, SITE_WG, t->wg, H, d);
    fq_weight(t, l, SITE_WU, t->wu, H, d);
    fq_weight(t, l, SITE_WD, t->wd, d, H);
}

/* ---- one layer, forward and backward ---- */

/* x_out (N, d) = layer l (x_in); leaves what backward needs in t */
static void layer_forward(spq_trainer *t, int l, float *x_out, const float *x_in) {
    const spq_config *c = &t->m->cfg;
    int d = c->dim, hd = c->head_dim, H = c->hidden_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    int N = t->N, T = t->T;
    spq_aq_cfg kv = spq_qcfg_kv(&t->q, hd), o = spq_qcfg_o(&t->q, hd);
    spq_rmsnorm_forward(t->n1, t->rstd1, x_in, t->ones, N, d, c->norm_eps);
    fq_act(t, l, SITE_N1, t->n1, N, d, &t->q.a);
    spq_matmul_forward(t->q_, t->n1, t->wq, N, d, qd);
    spq_matmul_forward(t->k_, t->n1, t->wk, N, d, kvd);
    spq_matmul_forward(t->v_, t->n1, t->wv, N, d, kvd);
    spq_rope_forward(t->q_, t->pos, t->rope_cos, t->rope_sin, N, c->n_heads, hd);
    spq_rope_forward(t->k_, t->pos, t->rope_cos, t->rope_sin, N, c->n_kv_heads, hd);
    if (t->r3) {
        spq_rot_online_apply(t->r3, t->q_, N * c->n_heads);
        spq_rot_online_apply(t->r3, t->k_, N * c->n_kv_heads);
    }
    fq_act(t, l, SITE_K, t->k_, N, kvd, &kv);
    fq_act(t, l, SITE_V, t->v_, N, kvd, &kv);
    for (int b = 0; b < t->B; b++) {
        size_t r = (size_t)b * T;
        spq_attention_forward(t->att + r * qd, t->q_ + r * qd, t->k_ + r * kvd, t->v_ + r * kvd, t->attn_scratch, T,
                              T, c->n_heads, c->n_kv_heads, hd);
    }
    fq_act(t, l, SITE_ATT, t->att, N, qd, &o);
    spq_matmul_forward(t->xm, t->att, t->wo, N, qd, d);
    for (size_t i = 0; i < (size_t)N * d; i++) t->xm[i] += x_in[i];
    spq_rmsnorm_forward(t->n2, t->rstd2, t->xm, t->ones, N, d, c->norm_eps);
    fq_act(t, l, SITE_N2, t->n2, N, d, &t->q.a);
    spq_matmul_forward(t->gate, t->n2, t->wg, N, d, H);
    spq_matmul_forward(t->up, t->n2, t->wu, N, d, H);
    spq_swiglu_forward(t->h, t->gate, t->up, (size_t)N * H);
    if (t->r4) spq_rot_online_apply(t->r4, t->h, N);
    fq_act(t, l, SITE_H, t->h, N, H, &t->q.a);
    spq_matmul_forward(x_out, t->h, t->wd, N, H, d);
    for (size_t i = 0; i < (size_t)N * d; i++) x_out[i] += t->xm[i];
}

/* dR1 += A^T B for A (rows, d), B (rows, d) */
static void acc_at_b(float *dR, const float *A, const float *B, int rows, int d) {
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, d, rows, 1.0f, A, d, B, d, 1.0f, dR, d);
}

/* dR1 += A B^T for A (d, cols), B (d, cols) */
static void acc_a_bt(float *dR, const float *A, const float *B, int d, int cols) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, cols, 1.0f, A, cols, B, cols, 1.0f, dR, d);
}

/* Given dx (N, d) = dL/d(layer output), overwrites dx with dL/d(layer
 * input) and accumulates the layer's contributions to dR1 and dR2[l]. The
 * layer's forward must have just run (t holds its activations and weights). */
static void layer_backward(spq_trainer *t, int l, const float *x_in) {
    const spq_config *c = &t->m->cfg;
    const spq_layer *L = &t->src; /* the layer's forward just loaded it */
    int d = c->dim, hd = c->head_dim, H = c->hidden_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    int N = t->N, T = t->T;
    float *dR1 = t->dR1, *dR2 = t->dR2 + (size_t)l * hd * hd;
    const float *R1 = t->R1, *R2 = t->R2 + (size_t)l * hd * hd;

    /* feed-forward block: x_out = xm + h Wd'^T */
    spq_matmul_backward(t->dh, t->dw, t->dx, t->h, t->wd, N, H, d, 0);
    /* Wd' = R1^T Wdf: dR1 += Wdf dWd'^T */
    acc_a_bt(dR1, down_weight(t), t->dw, d, H);
    if (t->r4) spq_rot_online_apply_t(t->r4, t->dh, N);
    spq_swiglu_backward(t->dgate, t->dup, t->dh, t->gate, t->up, (size_t)N * H);
    spq_matmul_backward(t->dn, t->dw, t->dgate, t->n2, t->wg, N, d, H, 0);
    acc_at_b(dR1, L->w_gate, t->dw, H, d);
    spq_matmul_backward(t->dn, t->dw, t->dup, t->n2, t->wu, N, d, H, 1);
    acc_at_b(dR1, L->w_up, t->dw, H, d);
    /* through the norm into the residual: dxm = dx + rmsnorm'(dn) */
    spq_rmsnorm_backward(t->dtmp, t->dn, t->xm, t->ones, t->rstd2, N, d);
    for (size_t i = 0; i < (size_t)N * d; i++) t->dx[i] += t->dtmp[i];

    /* attention block: xm = x_in + att Wo'^T */
    spq_matmul_backward(t->datt, t->dw, t->dx, t->att, t->wo, N, qd, d, 0);
    /* Wo' = R1^T A, A = Wo blockdiag(R2): dR1 += A dWo'^T; dA = R1 dWo';
     * A_h = Wo_h R2: dR2 += Wo_h^T dA_h */
    acc_a_bt(dR1, t->ao, t->dw, d, qd);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, qd, d, 1.0f, R1, d, t->dw, qd, 0.0f, t->tmp_dd, qd);
    for (int h = 0; h < c->n_heads; h++)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hd, hd, d, 1.0f, L->wo + (size_t)h * hd, qd,
                    t->tmp_dd + (size_t)h * hd, qd, 1.0f, dR2, hd);
    for (int b = 0; b < t->B; b++) {
        size_t r = (size_t)b * T;
        spq_attention_backward(t->dq + r * qd, t->dk + r * kvd, t->dv + r * kvd, t->datt + r * qd, t->q_ + r * qd,
                               t->k_ + r * kvd, t->v_ + r * kvd, t->attn_scratch, T, c->n_heads, c->n_kv_heads, hd);
    }
    if (t->r3) {
        spq_rot_online_apply_t(t->r3, t->dq, N * c->n_heads);
        spq_rot_online_apply_t(t->r3, t->dk, N * c->n_kv_heads);
    }
    spq_rope_backward(t->dq, t->pos, t->rope_cos, t->rope_sin, N, c->n_heads, hd);
    spq_rope_backward(t->dk, t->pos, t->rope_cos, t->rope_sin, N, c->n_kv_heads, hd);
    spq_matmul_backward(t->dn, t->dw, t->dq, t->n1, t->wq, N, d, qd, 0);
    acc_at_b(dR1, L->wq, t->dw, qd, d);
    spq_matmul_backward(t->dn, t->dw, t->dk, t->n1, t->wk, N, d, kvd, 1);
    acc_at_b(dR1, L->wk, t->dw, kvd, d);
    spq_matmul_backward(t->dn, t->dw, t->dv, t->n1, t->wv, N, d, kvd, 1);
    /* Wv' = blockdiag(R2^T) M, M = Wv R1: dR2 += M_h dWv'_h^T, dM_h = R2 dWv'_h,
     * dR1 += Wv^T dM */
    for (int h = 0; h < c->n_kv_heads; h++) {
        const float *Mh = t->mv + (size_t)h * hd * d, *dWh = t->dw + (size_t)h * hd * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, hd, hd, d, 1.0f, Mh, d, dWh, d, 1.0f, dR2, hd);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hd, d, hd, 1.0f, R2, hd, dWh, d, 0.0f,
                    t->tmp_dd + (size_t)h * hd * d, d);
    }
    acc_at_b(dR1, L->wv, t->tmp_dd, kvd, d);
    spq_rmsnorm_backward(t->dtmp, t->dn, x_in, t->ones, t->rstd1, N, d);
    for (size_t i = 0; i < (size_t)N * d; i++) t->dx[i] += t->dtmp[i];
}

/* ---- the whole model ---- */

static void to_float(float *dst, const double *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

double spq_trainer_step(spq_trainer *t, const spq_rotation *rot, const int *tokens, int want_grad) {
    const spq_model *m = t->m;
    const spq_config *c = &m->cfg;
    int d = c->dim, hd = c->head_dim, V = c->vocab_size, N = t->N, T = t->T, L = c->n_layers;
    to_float(t->R1, rot->R1, (size_t)d * d);
    to_float(t->R2, rot->R2, (size_t)L * hd * hd);
    for (int i = 0; i < N; i++) t->targets[i] = (i % T == T - 1) ? -1 : tokens[i + 1];

    /* x = E[tokens] R1 (E rows gathered into dn as scratch) */
    for (int i = 0; i < N; i++) memcpy(t->dn + (size_t)i * d, m->tok_emb + (size_t)tokens[i] * d, d * sizeof(float));
    right_r1(t->xs, t->dn, t->R1, N, d);
    int passes = want_grad ? 2 * L : L;
    for (int l = 0; l < L; l++) {
        rotate_layer(t, l);
        layer_forward(t, l, t->xs + (size_t)(l + 1) * N * d, t->xs + (size_t)l * N * d);
        if (t->on_pass) t->on_pass(t->on_pass_ud, l + 1, passes);
    }

    /* head: n = rmsnorm(x), g = n R1^T, logits = g Wlm^T, in row chunks */
    const float *xL = t->xs + (size_t)L * N * d;
    spq_rmsnorm_forward(t->n1, t->rstd1, xL, t->ones, N, d, c->norm_eps);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, d, d, 1.0f, t->n1, d, t->R1, d, 0.0f, t->n2, d);
    int scored_total = 0;
    for (int i = 0; i < N; i++) scored_total += t->targets[i] >= 0;
    float scale = 1.0f / (float)scored_total;
    size_t chunk = (1u << 24) / V;
    if (chunk < 1) chunk = 1;
    double loss = 0;
    if (want_grad) {
        memset(t->dR1, 0, (size_t)d * d * sizeof(float));
        memset(t->dR2, 0, (size_t)L * hd * hd * sizeof(float));
    }
    for (int r0 = 0; r0 < N; r0 += (int)chunk) {
        int rows = N - r0 < (int)chunk ? N - r0 : (int)chunk;
        spq_matmul_forward(t->logits, t->n2 + (size_t)r0 * d, m->lm_head, rows, d, V);
        loss += spq_crossentropy_forward_backward(t->logits, t->logits, t->targets + r0, rows, V, scale, NULL);
        /* dg (rows, d) = dlogits Wlm, into dn */
        if (want_grad) spq_matmul_backward(t->dn + (size_t)r0 * d, NULL, t->logits, NULL, m->lm_head, rows, d, V, 0);
    }
    loss /= scored_total;
    if (!want_grad) return loss;

    /* g = n R1^T: dR1 += dg^T n; dn = dg R1; then through the final norm */
    acc_at_b(t->dR1, t->dn, t->n1, N, d);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, d, d, 1.0f, t->dn, d, t->R1, d, 0.0f, t->dtmp, d);
    spq_rmsnorm_backward(t->dx, t->dtmp, xL, t->ones, t->rstd1, N, d);

    for (int l = L - 1; l >= 0; l--) {
        const float *x_in = t->xs + (size_t)l * N * d;
        rotate_layer(t, l);
        layer_forward(t, l, t->dn /* output unused */, x_in);
        layer_backward(t, l, x_in);
        if (t->on_pass) t->on_pass(t->on_pass_ud, 2 * L - l, passes);
    }
    /* x = E R1: dR1 += E^T dx */
    for (int i = 0; i < N; i++) memcpy(t->dn + (size_t)i * d, m->tok_emb + (size_t)tokens[i] * d, d * sizeof(float));
    acc_at_b(t->dR1, t->dn, t->dx, N, d);
    return loss;
}

double spq_trainer_flops(const spq_trainer *t) {
    const spq_config *c = &t->m->cfg;
    double d = c->dim, hd = c->head_dim, H = c->hidden_dim, V = c->vocab_size, N = t->N, T = t->T;
    double qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, L = c->n_layers;
    double params = d * (qd + 2 * kvd + qd) + 3 * d * H;          /* one layer's linears */
    double rotate = 2 * d * params + 2 * hd * hd * d * (c->n_kv_heads + c->n_heads);
    double attn_fwd = t->B * c->n_heads * 2 * (2 * T * T * hd);   /* scores and P V */
    double fwd = 2 * N * params + attn_fwd;
    double bwd = 4 * N * params                                   /* dX and dW */
                 + 2 * d * params + 2 * d * d * qd                /* dR1 terms, R1 dWo */
                 + 2 * hd * hd * d * (c->n_heads + 2 * c->n_kv_heads)  /* dR2 terms */
                 + t->B * c->n_heads * 5 * (2 * T * T * hd);      /* P, dV, dP, dQ, dK */
    double head = 2 * N * d * V * 2 + 2 * N * d * d * 4;          /* logits, dg; R1 products */
    return L * (2 * rotate + 2 * fwd + bwd) + head + 2 * N * d * d * 2;
}
