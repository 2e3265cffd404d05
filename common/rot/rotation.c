/* rotation.c - see rotation.h. Weights are rotated in fp64: each matrix is
 * widened once, every product applied, and rounded back once. */
#include "rotation.h"

#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuse.h"
#include "common/base/safetensors.h"
#include "common/kernels/rotinit.h"
#include "common/model/mapped.h"

static int init_matrix(double *R, int n, int init, uint64_t seed, spq_err *err) {
    switch (init) {
    case SPQ_INIT_IDENTITY: spq_rotinit_identity(R, n); return 0;
    case SPQ_INIT_HADAMARD: return spq_rotinit_hadamard(R, n, seed, NULL, err);
    case SPQ_INIT_RANDOM: return spq_rotinit_random(R, n, seed, err);
    default: return spq_fail(err, "rotation: unknown init %d", init);
    }
}

int spq_rotation_build(spq_rotation *r, const spq_config *c, int online, int init, uint64_t seed, spq_err *err) {
    memset(r, 0, sizeof *r);
    r->dim = c->dim;
    r->head_dim = c->head_dim;
    r->n_layers = c->n_layers;
    r->hidden_dim = c->hidden_dim;
    r->online = online;
    size_t hh = (size_t)c->head_dim * c->head_dim;
    r->R1 = spq_malloc((size_t)c->dim * c->dim * sizeof(double));
    r->R2 = spq_malloc(c->n_layers * hh * sizeof(double));
    if (init_matrix(r->R1, c->dim, init, seed, err)) goto fail;
    for (int l = 0; l < c->n_layers; l++)
        if (init_matrix(r->R2 + l * hh, c->head_dim, init, seed + 1 + (uint64_t)l, err)) goto fail;
    if (online) {
        /* seeds for the dense fallbacks, apart from the R1/R2 seeds */
        if (spq_rot_online_build(&r->r3, c->head_dim, seed ^ 0x5233ULL, err)) goto fail;
        if (spq_rot_online_build(&r->r4, c->hidden_dim, seed ^ 0x5234ULL, err)) goto fail;
    }
    return 0;
fail:
    spq_rotation_free(r);
    return -1;
}

void spq_rotation_free(spq_rotation *r) {
    free(r->R1);
    free(r->R2);
    if (r->r3.n) spq_rot_online_free(&r->r3);
    if (r->r4.n) spq_rot_online_free(&r->r4);
    memset(r, 0, sizeof *r);
}

int spq_rotation_check(const spq_rotation *r, const spq_config *c, spq_err *err) {
#define SAME(field, cfield, name)                                                                               \
    if (r->field != c->cfield)                                                                                  \
        return spq_fail(err, "rotation is for %s %d, the model has %s %d", name, r->field, name, c->cfield)
    SAME(dim, dim, "hidden_size");
    SAME(head_dim, head_dim, "head_dim");
    SAME(n_layers, n_layers, "num_hidden_layers");
    SAME(hidden_dim, hidden_dim, "intermediate_size");
#undef SAME
    return 0;
}

/* ---- absorbing into weights ---- */

static double *widen(const float *x, size_t n) {
    double *d = spq_malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static void narrow(float *x, const double *d, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)d[i];
}

/* W (rows, n) <- W R, R (n, n); in chunks of rows (the embedding is large) */
static void rotate_input_side(float *W, size_t rows, int n, const double *R) {
    const size_t chunk = 2048;
    double *a = spq_malloc(chunk * n * sizeof(double)), *b = spq_malloc(chunk * n * sizeof(double));
    for (size_t r0 = 0; r0 < rows; r0 += chunk) {
        size_t m = rows - r0 < chunk ? rows - r0 : chunk;
        for (size_t i = 0; i < m * n; i++) a[i] = W[r0 * n + i];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, n, n, 1.0, a, n, R, n, 0.0, b, n);
        narrow(W + r0 * n, b, m * n);
    }
    free(a);
    free(b);
}

/* Wd (n, cols) <- R^T Wd, in place in fp64 */
static void left_rt(double *Wd, int n, int cols, const double *R) {
    double *t = spq_malloc((size_t)n * cols * sizeof(double));
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, cols, n, 1.0, R, n, Wd, cols, 0.0, t, cols);
    memcpy(Wd, t, (size_t)n * cols * sizeof(double));
    free(t);
}

/* v_proj (n_kv*hd, dim): W R1, then R2^T on each head's rows */
static void rotate_v(float *W, int n_kv, int hd, int dim, const double *R1, const double *R2) {
    size_t n = (size_t)n_kv * hd * dim;
    double *Wd = widen(W, n), *t = spq_malloc(n * sizeof(double));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n_kv * hd, dim, dim, 1.0, Wd, dim, R1, dim, 0.0, t, dim);
    for (int h = 0; h < n_kv; h++)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hd, dim, hd, 1.0, R2, hd, t + (size_t)h * hd * dim, dim,
                    0.0, Wd + (size_t)h * hd * dim, dim);
    narrow(W, Wd, n);
    free(Wd);
    free(t);
}

/* o_proj (dim, n_heads*hd): R1^T W, then R2 on each head's columns */
static void rotate_o(float *W, int n_heads, int hd, int dim, const double *R1, const double *R2) {
    int qd = n_heads * hd;
    size_t n = (size_t)dim * qd;
    double *Wd = widen(W, n), *t = spq_malloc(n * sizeof(double));
    left_rt(Wd, dim, qd, R1);
    for (int h = 0; h < n_heads; h++)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, hd, hd, 1.0, Wd + (size_t)h * hd, qd, R2, hd, 0.0,
                    t + (size_t)h * hd, qd);
    narrow(W, t, n);
    free(Wd);
    free(t);
}

/* down_proj (dim, hidden): W M4^T (when online), then R1^T W */
static void rotate_down(float *W, int dim, int hidden, const double *R1, const spq_rot_online *r4) {
    size_t n = (size_t)dim * hidden;
    double *Wd = widen(W, n);
    if (r4) spq_rot_online_apply_f64(r4, Wd, dim);
    left_rt(Wd, dim, hidden, R1);
    narrow(W, Wd, n);
    free(Wd);
}

int spq_rotation_plain_only(const spq_rotation *r, const char *what, spq_err *err) {
    if (!r->online) return 0;
    return spq_fail(err, "%s is a \"had\" rotation: its online Hadamards (R3 on Q/K, R4 on the down_proj input, "
                         "whose transpose is folded into down_proj) cannot be expressed in a plain LLaMA, so the "
                         "export would not be equivalent. Use a no-had rotation (spinq rotate --mode no-had, or "
                         "--mode no-had with hadamard/random)", what);
}

/* layer l's linears <- their rotation by R1 and the layer's R2 (and R4
 * folded into down_proj when online) */
static void rotate_layer(spq_layer *L, int l, const spq_config *c, const spq_rotation *r) {
    int d = c->dim, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    const double *R2 = r->R2 + (size_t)l * hd * hd;
    rotate_input_side(L->wq, qd, d, r->R1);
    rotate_input_side(L->wk, kvd, d, r->R1);
    rotate_v(L->wv, c->n_kv_heads, hd, d, r->R1, R2);
    rotate_o(L->wo, c->n_heads, hd, d, r->R1, R2);
    rotate_input_side(L->w_gate, c->hidden_dim, d, r->R1);
    rotate_input_side(L->w_up, c->hidden_dim, d, r->R1);
    rotate_down(L->w_down, d, c->hidden_dim, r->R1, r->online ? &r->r4 : NULL);
}

/* A mapped model's layers are rotated when converted: the transform keeps
 * a copy of the rotation. */
static void rotate_xform(spq_layer *L, int l, const spq_config *c, const void *ctx) { rotate_layer(L, l, c, ctx); }

static void free_xform(void *ctx) {
    spq_rotation_free(ctx);
    free(ctx);
}

static spq_rotation *rotation_clone(const spq_rotation *r) {
    spq_rotation *k = spq_calloc(1, sizeof *k);
    *k = *r;
    size_t n1 = (size_t)r->dim * r->dim, n2 = (size_t)r->n_layers * r->head_dim * r->head_dim;
    k->R1 = spq_malloc(n1 * sizeof(double));
    memcpy(k->R1, r->R1, n1 * sizeof(double));
    k->R2 = spq_malloc(n2 * sizeof(double));
    memcpy(k->R2, r->R2, n2 * sizeof(double));
    if (r->online) {
        spq_rot_online *r3 = spq_rot_online_clone(&r->r3), *r4 = spq_rot_online_clone(&r->r4);
        k->r3 = *r3;
        k->r4 = *r4;
        free(r3);
        free(r4);
    }
    return k;
}

int spq_rotation_apply(spq_model *m, const spq_rotation *r, spq_err *err) {
    const spq_config *c = &m->cfg;
    if (spq_rotation_check(r, c, err)) return -1;
    if (!spq_model_is_fused(m)) return spq_fail(err, "rotation: the model's norms must be fused first");
    if (m->r3 || m->r4) return spq_fail(err, "rotation: the model is already rotated");
    rotate_input_side(m->tok_emb, c->vocab_size, c->dim, r->R1);
    rotate_input_side(m->lm_head, c->vocab_size, c->dim, r->R1);
    if (m->mapped) {
        spq_mapped_add_xform(m, (spq_mapped_xform){rotate_xform, free_xform, rotation_clone(r)});
    } else {
        for (int l = 0; l < c->n_layers; l++) rotate_layer(&m->layers[l], l, c, r);
    }
    if (r->online) {
        m->r3 = spq_rot_online_clone(&r->r3);
        m->r4 = spq_rot_online_clone(&r->r4);
    }
    return 0;
}

/* ---- files ---- */

static void meta_int(spq_st_writer *w, const char *k, long long v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    spq_st_writer_meta(w, k, b);
}

static void meta_num(spq_st_writer *w, const char *k, double v) {
    char b[48];
    snprintf(b, sizeof b, "%.17g", v);
    spq_st_writer_meta(w, k, b);
}

int spq_rotation_save(const char *path, const spq_rotation *r, const spq_rotation_meta *meta, spq_err *err) {
    spq_st_writer w;
    spq_st_writer_init(&w);
    int64_t s1[2] = {r->dim, r->dim}, s2[3] = {r->n_layers, r->head_dim, r->head_dim};
    double *q3 = NULL, *q4 = NULL;
    int rc = -1;
    if (spq_st_writer_add(&w, "R1", SPQ_ST_F64, 2, s1, r->R1, err) ||
        spq_st_writer_add(&w, "R2", SPQ_ST_F64, 3, s2, r->R2, err))
        goto done;
    if (r->online && !r->r3.is_hadamard) {
        int64_t s[2] = {r->head_dim, r->head_dim};
        if (spq_st_writer_add(&w, "R3", SPQ_ST_F64, 2, s, r->r3.Q, err)) goto done;
    }
    if (r->online && !r->r4.is_hadamard) {
        int64_t s[2] = {r->hidden_dim, r->hidden_dim};
        if (spq_st_writer_add(&w, "R4", SPQ_ST_F64, 2, s, r->r4.Q, err)) goto done;
    }
    spq_st_writer_meta(&w, "format", "spinq-rotation");
    spq_st_writer_meta(&w, "version", "1");
    spq_st_writer_meta(&w, "mode", r->online ? "had" : "no-had");
    meta_int(&w, "hidden_size", r->dim);
    meta_int(&w, "head_dim", r->head_dim);
    meta_int(&w, "num_hidden_layers", r->n_layers);
    meta_int(&w, "intermediate_size", r->hidden_dim);
    if (meta) {
        meta_int(&w, "step", meta->step);
        meta_int(&w, "steps", meta->steps);
        meta_int(&w, "batch", meta->batch);
        meta_int(&w, "seqlen", meta->seqlen);
        meta_int(&w, "init", meta->init);
        meta_num(&w, "lr", meta->lr);
        meta_int(&w, "seed", (long long)meta->seed);
        meta_num(&w, "loss", meta->loss);
        if (meta->extra[0]) spq_st_writer_meta(&w, "extra", meta->extra);
    }
    rc = spq_st_writer_save(&w, path, err);
done:
    free(q3);
    free(q4);
    spq_st_writer_free(&w);
    return rc;
}

static int meta_get_long(long long *out, const spq_st_file *f, const char *key, int required, spq_err *err) {
    const char *v = spq_st_meta(f, key);
    if (!v) return required ? spq_fail(err, "%s: metadata: %s is missing", f->path, key) : 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return spq_fail(err, "%s: metadata: %s: expected an integer, got '%s'", f->path, key, v);
    *out = x;
    return 0;
}

static int meta_get_double(double *out, const spq_st_file *f, const char *key, spq_err *err) {
    const char *v = spq_st_meta(f, key);
    if (!v) return 0;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end) return spq_fail(err, "%s: metadata: %s: expected a number, got '%s'", f->path, key, v);
    *out = x;
    return 0;
}

/* reads an F64 tensor of the given shape into a malloc'd array */
static double *read_f64(const spq_st_file *f, const char *name, int ndim, const int64_t *shape, spq_err *err) {
    const spq_st_tensor *t = spq_st_find(f, name);
    if (!t) {
        spq_fail(err, "%s: tensor %s is missing", f->path, name);
        return NULL;
    }
    if (t->dtype != SPQ_ST_F64) {
        spq_fail(err, "%s: tensor %s: expected dtype F64, got %s", f->path, name, spq_st_dtype_name(t->dtype));
        return NULL;
    }
    if (spq_st_check_shape(f, t, ndim, shape, err)) return NULL;
    double *d = spq_malloc(t->nbytes ? t->nbytes : 1);
    memcpy(d, t->data, t->nbytes);
    for (size_t i = 0; i < t->numel; i++)
        if (!isfinite(d[i])) {
            spq_fail(err, "%s: tensor %s: element %zu is not finite", f->path, name, i);
            free(d);
            return NULL;
        }
    return d;
}

/* max |R R^T - I| over a stack of count (n, n) matrices */
static double orth_error(const double *R, int n, int count) {
    double worst = 0;
    double *G = spq_malloc((size_t)n * n * sizeof(double));
    for (int c = 0; c < count; c++) {
        const double *A = R + (size_t)c * n * n;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0, A, n, A, n, 0.0, G, n);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double e = fabs(G[(size_t)i * n + j] - (i == j));
                if (e > worst) worst = e;
            }
    }
    free(G);
    return worst;
}

int spq_rotation_load(spq_rotation *r, spq_rotation_meta *meta, const char *path, spq_err *err) {
    memset(r, 0, sizeof *r);
    spq_st_file f;
    if (spq_st_open(&f, path, err)) return -1;
    int rc = -1;
    long long dim = 0, hd = 0, nl = 0, hid = 0;
    const char *fmt = spq_st_meta(&f, "format"), *mode = spq_st_meta(&f, "mode");
    if (!fmt || strcmp(fmt, "spinq-rotation")) {
        spq_fail(err, "%s: metadata: format is %s%s%s, expected \"spinq-rotation\"", path, fmt ? "\"" : "",
                 fmt ? fmt : "missing", fmt ? "\"" : "");
        goto done;
    }
    if (!mode || (strcmp(mode, "had") && strcmp(mode, "no-had"))) {
        spq_fail(err, "%s: metadata: mode must be \"had\" or \"no-had\"", path);
        goto done;
    }
    if (meta_get_long(&dim, &f, "hidden_size", 1, err) || meta_get_long(&hd, &f, "head_dim", 1, err) ||
        meta_get_long(&nl, &f, "num_hidden_layers", 1, err) || meta_get_long(&hid, &f, "intermediate_size", 1, err))
        goto done;
    if (dim < 1 || hd < 1 || nl < 1 || hid < 1 || dim > 65536 || hd > 4096 || nl > 4096 || hid > 262144) {
        spq_fail(err, "%s: metadata: implausible shape (hidden_size %lld, head_dim %lld, layers %lld, "
                      "intermediate_size %lld)", path, dim, hd, nl, hid);
        goto done;
    }
    r->dim = (int)dim;
    r->head_dim = (int)hd;
    r->n_layers = (int)nl;
    r->hidden_dim = (int)hid;
    r->online = !strcmp(mode, "had");
    int64_t s1[2] = {dim, dim}, s2[3] = {nl, hd, hd};
    if (!(r->R1 = read_f64(&f, "R1", 2, s1, err)) || !(r->R2 = read_f64(&f, "R2", 3, s2, err))) goto done;
    double e1 = orth_error(r->R1, r->dim, 1), e2 = orth_error(r->R2, r->head_dim, r->n_layers);
    if (e1 > 1e-5 || e2 > 1e-5) {
        spq_fail(err, "%s: tensor %s is not orthogonal (max |R R^T - I| = %g)", path, e1 > 1e-5 ? "R1" : "R2",
                 e1 > 1e-5 ? e1 : e2);
        goto done;
    }
    if (r->online) {
        const char *names[2] = {"R3", "R4"};
        int sizes[2] = {r->head_dim, r->hidden_dim};
        spq_rot_online *dst[2] = {&r->r3, &r->r4};
        for (int i = 0; i < 2; i++) {
            if (spq_st_find(&f, names[i])) {
                int64_t s[2] = {sizes[i], sizes[i]};
                double *Q = read_f64(&f, names[i], 2, s, err);
                int bad = !Q || spq_rot_online_build_dense(dst[i], Q, sizes[i], err);
                free(Q);
                if (bad) {
                    spq_fail_prefix(err, "%s: tensor %s", path, names[i]);
                    goto done;
                }
            } else if (!spq_had_possible(sizes[i])) {
                spq_fail(err, "%s: tensor %s is missing (no Hadamard matrix of size %d exists)", path, names[i],
                         sizes[i]);
                goto done;
            } else if (spq_rot_online_build(dst[i], sizes[i], 0, err)) {
                goto done;
            }
        }
    }
    if (meta) {
        memset(meta, 0, sizeof *meta);
        meta->loss = NAN;
        long long v;
        snprintf(meta->mode, sizeof meta->mode, "%s", mode);
#define GETI(field)                                                              \
    v = 0;                                                                       \
    if (meta_get_long(&v, &f, #field, 0, err)) goto done;                        \
    meta->field = (int)v;
        GETI(step) GETI(steps) GETI(batch) GETI(seqlen) GETI(init)
#undef GETI
        v = 0;
        if (meta_get_long(&v, &f, "seed", 0, err) || meta_get_double(&meta->lr, &f, "lr", err) ||
            meta_get_double(&meta->loss, &f, "loss", err))
            goto done;
        meta->seed = (uint64_t)v;
        const char *ex = spq_st_meta(&f, "extra");
        if (ex) snprintf(meta->extra, sizeof meta->extra, "%s", ex);
    }
    rc = 0;
done:
    spq_st_close(&f);
    if (rc) spq_rotation_free(r);
    return rc;
}
