/* packed.c - see packed.h; the file format is docs/packed-format.md.
 *
 * Moving parts:
 *  - build: codes of each linear recovered from the fake-quantized weights
 *    and their parameters (and checked to reproduce them exactly), packed
 *    into the kernels' layout;
 *  - save: the layout unpacked back to row-major nibbles, written with the
 *    settings as metadata and the tokenizer files as byte tensors;
 *  - load: metadata parsed and checked first (format, version, config,
 *    settings), then every tensor the config implies is found and its dtype
 *    and shape checked before anything is allocated, then values are checked
 *    while packing (spq_qlinear_build). Every message starts with the file. */
#include "packed.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf.h"
#include "common/base/half.h"
#include "common/base/json_util.h"
#include "common/model/linear.h"
#include "common/model/mapped.h"
#include "common/quant/qmodel.h"
#include "common/quant/qpack.h"

/* the allocation of a packed model without linears: norms, embedding and
 * classifier storage, rotations, settings */
static void alloc_shell(spq_model *pm, const spq_config *c, spq_emb_dtype emb_dtype) {
    memset(pm, 0, sizeof *pm);
    pm->cfg = *c;
    pm->q = spq_qcfg_off();
    pm->packed = spq_calloc(1, sizeof(spq_packed));
    spq_packed *p = pm->packed;
    p->n_layers = c->n_layers;
    p->emb_dtype = emb_dtype;
    p->lin = spq_calloc((size_t)c->n_layers * SPQ_N_LIN, sizeof(spq_qlinear));
    size_t ne = (size_t)c->vocab_size * c->dim;
    pm->layers = spq_calloc(c->n_layers, sizeof(spq_layer));
    for (int l = 0; l < c->n_layers; l++) {
        pm->layers[l].attn_norm = spq_malloc((size_t)c->dim * sizeof(float));
        pm->layers[l].ffn_norm = spq_malloc((size_t)c->dim * sizeof(float));
    }
    pm->final_norm = spq_malloc((size_t)c->dim * sizeof(float));
    if (emb_dtype == SPQ_EMB_F32) {
        pm->tok_emb = spq_malloc(ne * sizeof(float));
        pm->lm_head = c->tied ? pm->tok_emb : spq_malloc(ne * sizeof(float));
    } else {
        p->emb16 = spq_malloc(ne * 2);
        p->head16 = c->tied ? p->emb16 : spq_malloc(ne * 2);
    }
}

static int emb_dtype_ok(int t) { return t == SPQ_ST_F32 || t == SPQ_ST_F16 || t == SPQ_ST_BF16; }

/* the file's dtype of an embedding (emb_dtype_ok) and the model's */
static spq_emb_dtype emb_from_st(int t) {
    return t == SPQ_ST_BF16 ? SPQ_EMB_BF16 : t == SPQ_ST_F16 ? SPQ_EMB_F16 : SPQ_EMB_F32;
}
static spq_st_dtype emb_to_st(spq_emb_dtype e) {
    return e == SPQ_EMB_BF16 ? SPQ_ST_BF16 : e == SPQ_EMB_F16 ? SPQ_ST_F16 : SPQ_ST_F32;
}

/* dst (vocab, dim) in the packed model's dtype <- src: fp32 rows, or (src
 * NULL) the rows of a mapped 16-bit table (mapped.h), a row at a time */
static void store_table(spq_model *pm, void *dst, const float *src, const spq_mtensor *mt) {
    size_t D = pm->cfg.dim, V = pm->cfg.vocab_size;
    spq_emb_dtype e = pm->packed->emb_dtype;
    float *row = src ? NULL : spq_malloc(D * sizeof(float));
    for (size_t v = 0; v < V; v++) {
        const float *x = src ? src + v * D : row;
        if (!src) spq_mtensor_row(row, mt, (int)v, (int)D);
        if (e == SPQ_EMB_F32) memcpy((float *)dst + v * D, x, D * sizeof(float));
        else spq_f32_to_half_array((uint16_t *)dst + v * D, x, D, e == SPQ_EMB_BF16);
    }
    free(row);
}

/* pm's embedding and classifier <- fq's (fp32, or still mapped) */
static void store_emb(spq_model *pm, const spq_model *fq) {
    spq_packed *p = pm->packed;
    int f32 = p->emb_dtype == SPQ_EMB_F32;
    const spq_mapped *mp = fq->mapped;
    store_table(pm, f32 ? (void *)pm->tok_emb : (void *)p->emb16, fq->tok_emb, mp ? &mp->emb : NULL);
    if (f32 ? pm->lm_head != pm->tok_emb : p->head16 != p->emb16)
        store_table(pm, f32 ? (void *)pm->lm_head : (void *)p->head16, fq->lm_head, mp ? &mp->head : NULL);
}

static int read_whole(char **out, size_t *len, const char *path, spq_err *err) {
    return spq_read_file(out, len, path, err);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int embed_tokenizer(spq_packed *p, const char *model_path, spq_err *err) {
    char *tok = NULL, *cfg = NULL;
    if (spq_packed_is_file(model_path)) {
        /* re-packing a packed model: carry its tokenizer over */
        spq_model src;
        if (spq_packed_load(&src, model_path, err)) return -1;
        spq_packed *s = src.packed;
        p->tok_name = s->tok_name ? spq_strdup(s->tok_name) : NULL;
        p->tok_cfg_name = s->tok_cfg_name ? spq_strdup(s->tok_cfg_name) : NULL;
        p->tok = spq_memdup(s->tok, s->tok_len);
        p->tok_cfg = spq_memdup(s->tok_cfg, s->tok_cfg_len);
        p->tok_len = s->tok_len;
        p->tok_cfg_len = s->tok_cfg_len;
        spq_model_free(&src);
        return 0;
    }
    if (spq_tok_files_for_model(&tok, &cfg, model_path, err)) return -1;
    int rc = read_whole(&p->tok, &p->tok_len, tok, err);
    if (!rc && cfg) rc = read_whole(&p->tok_cfg, &p->tok_cfg_len, cfg, err);
    if (!rc) {
        /* a llama2.c tokenizer may be named tok512.bin: the kind is what matters */
        p->tok_name = spq_strdup(p->tok_len && p->tok[0] == '{' ? "tokenizer.json" : "tokenizer.bin");
        p->tok_cfg_name = cfg ? spq_strdup(base_name(cfg)) : NULL;
    }
    free(tok);
    free(cfg);
    return rc;
}

int spq_packed_build(spq_model *pm, spq_model *fq, const spq_wquant *wq, const spq_pack_opts *o, spq_err *err) {
    const spq_config *c = &fq->cfg;
    const spq_qcfg *q = &fq->q;
    memset(pm, 0, sizeof *pm);
    if (fq->packed) return spq_fail(err, "the model is packed already");
    if (spq_qpack_check(q, c, err)) return -1;
    if (wq->cfg.bits != q->w.bits || wq->cfg.sym != q->w.sym || wq->cfg.groupsize != q->w.groupsize ||
        wq->n_layers != c->n_layers)
        return spq_fail(err, "the weight parameters were made with other settings than the model's (w_bits %d vs %d, "
                             "w_groupsize %d vs %d)", wq->cfg.bits, q->w.bits, wq->cfg.groupsize, q->w.groupsize);
    int emb_dtype = o && o->emb_dtype ? (int)o->emb_dtype : SPQ_ST_F32;
    if (!emb_dtype_ok(emb_dtype))
        return spq_fail(err, "embedding dtype %s: use F32, F16 or BF16", spq_st_dtype_name(emb_dtype));
    int streamed = spq_mapped_all_packed(fq->mapped, c);
    if (fq->mapped && !streamed) return spq_fail(err, "a mapped model is packed once every layer is quantized");
    spq_config pc = *c;
    pc.tied = !fq->tok_emb && fq->mapped ? fq->mapped->head.t == fq->mapped->emb.t : fq->lm_head == fq->tok_emb;
    pc.kv_cache_bits = q->kv.bits < SPQ_QUANT_OFF ? q->kv.bits : 0;
    alloc_shell(pm, &pc, emb_from_st(emb_dtype));
    pm->q = *q;
    pm->r3 = fq->r3 ? spq_rot_online_clone(fq->r3) : NULL;
    pm->r4 = fq->r4 ? spq_rot_online_clone(fq->r4) : NULL;
    pm->path = spq_strdup(fq->path ? fq->path : "packed");
    pm->format = spq_strdup("packed");
    spq_packed *p = pm->packed;
    p->info = spq_strdup(o && o->info ? o->info : "{}");
    int D = c->dim;
    for (int l = 0; l < c->n_layers; l++) {
        memcpy(pm->layers[l].attn_norm, fq->layers[l].attn_norm, D * sizeof(float));
        memcpy(pm->layers[l].ffn_norm, fq->layers[l].ffn_norm, D * sizeof(float));
    }
    memcpy(pm->final_norm, fq->final_norm, D * sizeof(float));
    store_emb(pm, fq);
    int rc = 0;
    if (streamed) { /* packed already, a layer at a time: moved here */
        size_t n = (size_t)c->n_layers * SPQ_N_LIN;
        memcpy(p->lin, fq->mapped->qlin, n * sizeof(spq_qlinear));
        memset(fq->mapped->qlin, 0, n * sizeof(spq_qlinear));
        memset(fq->mapped->qdone, 0, (size_t)c->n_layers);
        fq->mapped->gen++;
    } else {
        for (int l = 0; l < c->n_layers && !rc; l++)
            for (int which = 0; which < SPQ_N_LIN && !rc; which++)
                if (spq_qpack_linear(spq_packed_lin(p, l, which), *spq_lin_weight(&fq->layers[l], which),
                                     spq_wquant_at(wq, l, which), q, c, which, err))
                    rc = spq_fail_prefix(err, "layer %d", l);
    }
    if (!rc && o && o->tokenizer_from) rc = embed_tokenizer(p, o->tokenizer_from, err);
    if (rc) spq_model_free(pm);
    return rc;
}

/* ---- metadata ---- */


/* the settings as every writer of them (qmodel.h), with what packed weights allow */
static int parse_quant(spq_qcfg *q, const json_t *j, const char *src, spq_err *err) {
    if (spq_qcfg_from_value(q, j, 1, src, err)) return -1;
    if (q->w.bits > 4) return spq_fail(err, "%s: w_bits: packed weights are 2..4 bits, got %d", src, q->w.bits);
    if (q->w.groupsize > SPQ_QMAX_COLS)
        return spq_fail(err, "%s: w_groupsize: %d is more than %d columns", src, q->w.groupsize, SPQ_QMAX_COLS);
    return 0;
}

/* ---- saving ---- */

static char *lin_tensor(int l, int which, const char *part) {
    char buf[96];
    snprintf(buf, sizeof buf, "layers.%d.%s.%s", l, spq_lin_name(which), part);
    return spq_strdup(buf);
}

static const char *rot_kind(const spq_rot_online *r) { return !r ? "none" : r->is_hadamard ? "hadamard" : "dense"; }

static int add_rot(spq_st_writer *w, const char *name, const spq_rot_online *r, spq_err *err) {
    if (!r || r->is_hadamard) return 0;
    int64_t shape[2] = {r->n, r->n};
    return spq_st_writer_add(w, name, SPQ_ST_F64, 2, shape, r->Q, err);
}

static void meta_json(spq_st_writer *w, const char *key, json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
    spq_st_writer_meta(w, key, s);
    free(s);
    json_decref(j);
}

/* A linear's tensors are produced from its packed layout while the file is
 * written (spq_st_writer_add_fill), rows r0.. of n: codes as nibbles (two
 * per byte, low first), scales, zero points; a copy of the model's codes
 * would double the memory of writing it. */
static int fill_codes(void *ud, void *dst, int64_t r0, int64_t n, spq_err *err) {
    const spq_qlinear *ql = ud;
    size_t half = (size_t)(ql->cols + 1) / 2;
    uint8_t *o = dst;
    memset(o, 0, (size_t)n * half);
    for (int64_t r = 0; r < n; r++)
        for (int k = 0; k < ql->cols; k++)
            o[r * half + k / 2] |= (uint8_t)(spq_qlinear_code(ql, (int)(r0 + r), k) << (k & 1 ? 4 : 0));
    return 0;
}

static int fill_scale(void *ud, void *dst, int64_t r0, int64_t n, spq_err *err) {
    const spq_qlinear *ql = ud;
    float *o = dst;
    for (int64_t r = 0; r < n; r++)
        for (int g = 0; g < ql->ngroups; g++) o[r * ql->ngroups + g] = ql->scale[spq_qlinear_param(ql, (int)(r0 + r), g)];
    return 0;
}

static int fill_zero(void *ud, void *dst, int64_t r0, int64_t n, spq_err *err) {
    const spq_qlinear *ql = ud;
    uint8_t *o = dst;
    for (int64_t r = 0; r < n; r++)
        for (int g = 0; g < ql->ngroups; g++) o[r * ql->ngroups + g] = (uint8_t)ql->zero[spq_qlinear_param(ql, (int)(r0 + r), g)];
    return 0;
}

int spq_packed_save(const spq_model *pm, const char *path, spq_err *err) {
    const spq_config *c = &pm->cfg;
    const spq_packed *p = pm->packed;
    if (!p) return spq_fail(err, "%s: the model is not packed", path);
    spq_st_writer w;
    spq_st_writer_init(&w);
    char ver[16];
    snprintf(ver, sizeof ver, "%d", SPQ_PACKED_VERSION);
    spq_st_writer_meta(&w, "format", SPQ_PACKED_FORMAT);
    spq_st_writer_meta(&w, "version", ver);
    meta_json(&w, "config", spq_hf_config_json(c));
    meta_json(&w, "quant", spq_qcfg_to_value(&pm->q, 1));
    spq_st_writer_meta(&w, "embedding_dtype", spq_st_dtype_name(emb_to_st(p->emb_dtype)));
    spq_st_writer_meta(&w, "r3", rot_kind(pm->r3));
    spq_st_writer_meta(&w, "r4", rot_kind(pm->r4));
    spq_st_writer_meta(&w, "info", p->info ? p->info : "{}");
    if (p->tok_name) spq_st_writer_meta(&w, "tokenizer", p->tok_name);
    if (p->tok_cfg_name) spq_st_writer_meta(&w, "tokenizer_config", p->tok_cfg_name);
    int rc = 0, D = c->dim;
    int64_t sd[1] = {D}, se[2] = {c->vocab_size, D};
    char name[64];
    for (int l = 0; l < c->n_layers && !rc; l++) {
        snprintf(name, sizeof name, "layers.%d.attn_norm", l);
        rc = spq_st_writer_add(&w, name, SPQ_ST_F32, 1, sd, pm->layers[l].attn_norm, err);
        snprintf(name, sizeof name, "layers.%d.ffn_norm", l);
        if (!rc) rc = spq_st_writer_add(&w, name, SPQ_ST_F32, 1, sd, pm->layers[l].ffn_norm, err);
        for (int which = 0; which < SPQ_N_LIN && !rc; which++) {
            spq_qlinear *ql = spq_packed_lin(p, l, which);
            int64_t sc_shape[2] = {ql->rows, (ql->cols + 1) / 2}, sp_shape[2] = {ql->rows, ql->ngroups};
            char *n1 = lin_tensor(l, which, "codes"), *n2 = lin_tensor(l, which, "scale"),
                 *n3 = lin_tensor(l, which, "zero");
            rc = spq_st_writer_add_fill(&w, n1, SPQ_ST_U8, 2, sc_shape, fill_codes, ql, err) ||
                 spq_st_writer_add_fill(&w, n2, SPQ_ST_F32, 2, sp_shape, fill_scale, ql, err) ||
                 spq_st_writer_add_fill(&w, n3, SPQ_ST_U8, 2, sp_shape, fill_zero, ql, err);
            free(n1); free(n2); free(n3);
        }
    }
    if (!rc) rc = spq_st_writer_add(&w, "final_norm", SPQ_ST_F32, 1, sd, pm->final_norm, err);
    if (!rc) {
        const void *emb = p->emb_dtype == SPQ_EMB_F32 ? (const void *)pm->tok_emb : (const void *)p->emb16;
        const void *head = p->emb_dtype == SPQ_EMB_F32 ? (const void *)pm->lm_head : (const void *)p->head16;
        spq_st_dtype edt = emb_to_st(p->emb_dtype);
        rc = spq_st_writer_add(&w, "tok_embeddings", edt, 2, se, emb, err);
        if (!rc && !c->tied) rc = spq_st_writer_add(&w, "lm_head", edt, 2, se, head, err);
    }
    if (!rc) rc = add_rot(&w, "r3", pm->r3, err);
    if (!rc) rc = add_rot(&w, "r4", pm->r4, err);
    if (!rc && p->tok_name) {
        int64_t n1[1] = {(int64_t)p->tok_len};
        rc = spq_st_writer_add(&w, "tokenizer", SPQ_ST_U8, 1, n1, p->tok, err);
        if (!rc && p->tok_cfg_name) {
            int64_t n2[1] = {(int64_t)p->tok_cfg_len};
            rc = spq_st_writer_add(&w, "tokenizer_config", SPQ_ST_U8, 1, n2, p->tok_cfg, err);
        }
    }
    if (!rc) rc = spq_st_writer_save(&w, path, err);
    spq_st_writer_free(&w);
    return rc;
}

/* ---- loading ---- */

int spq_packed_is_file(const char *path) {
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode) || st.st_size < 10) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char h[9];
    int ok = fread(h, 1, 9, f) == 9;
    fclose(f);
    if (!ok) return 0;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | h[i];
    return n >= 2 && n <= (uint64_t)st.st_size - 8 && h[8] == '{';
}

/* the tensor `name` with dtype and shape as given, or a message naming it */
static const spq_st_tensor *need(const spq_st_file *f, const char *name, spq_st_dtype dt, int ndim,
                                 const int64_t *shape, spq_err *err) {
    const spq_st_tensor *t = spq_st_find(f, name);
    if (!t) {
        spq_fail(err, "%s: tensor %s is missing", f->path, name);
        return NULL;
    }
    if (t->dtype != dt) {
        spq_fail(err, "%s: tensor %s: dtype %s, expected %s", f->path, name, spq_st_dtype_name(t->dtype),
                 spq_st_dtype_name(dt));
        return NULL;
    }
    if (spq_st_check_shape(f, t, ndim, shape, err)) return NULL;
    return t;
}

static int parse_meta_json(json_t **out, const spq_st_file *f, const char *key, spq_err *err) {
    const char *s = spq_st_meta(f, key);
    if (!s) return spq_fail(err, "%s: metadata %s is missing", f->path, key);
    json_error_t je;
    *out = json_loads(s, 0, &je);
    if (!*out) return spq_fail(err, "%s: metadata %s: invalid JSON at column %d: %s", f->path, key, je.column, je.text);
    return 0;
}

static int parse_rot_kind(int *kind, const spq_st_file *f, const char *key, spq_err *err) {
    const char *s = spq_st_meta(f, key);
    if (!s) return spq_fail(err, "%s: metadata %s is missing", f->path, key);
    if (!strcmp(s, "none")) *kind = 0;
    else if (!strcmp(s, "hadamard")) *kind = 1;
    else if (!strcmp(s, "dense")) *kind = 2;
    else return spq_fail(err, "%s: metadata %s: \"%s\" is not none, hadamard or dense", f->path, key, s);
    return 0;
}

static int load_rot(spq_rot_online **out, const spq_st_file *f, const char *key, int kind, int n, spq_err *err) {
    *out = NULL;
    if (!kind) return 0;
    spq_rot_online *r = spq_calloc(1, sizeof *r);
    int rc;
    if (kind == 1) {
        rc = spq_had_possible(n) ? spq_rot_online_build(r, n, 0, err)
                                 : spq_fail(err, "%s: metadata %s: no Hadamard matrix of size %d", f->path, key, n);
    } else {
        int64_t shape[2] = {n, n};
        const spq_st_tensor *t = need(f, key, SPQ_ST_F64, 2, shape, err);
        double *Q = t ? spq_malloc((size_t)n * n * sizeof(double)) : NULL;
        if (t) memcpy(Q, t->data, (size_t)n * n * sizeof(double));
        rc = t ? spq_rot_online_build_dense(r, Q, n, err) : -1;
        if (t && rc) spq_fail_prefix(err, "%s: tensor %s", f->path, key);
        free(Q);
    }
    if (rc) {
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

/* every tensor the config implies, found and checked before allocating */
static int check_tensors(const spq_st_file *f, const spq_config *c, const spq_qcfg *q, int emb_dtype, spq_err *err) {
    int64_t sd[1] = {c->dim}, se[2] = {c->vocab_size, c->dim};
    char name[64];
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(name, sizeof name, "layers.%d.attn_norm", l);
        if (!need(f, name, SPQ_ST_F32, 1, sd, err)) return -1;
        snprintf(name, sizeof name, "layers.%d.ffn_norm", l);
        if (!need(f, name, SPQ_ST_F32, 1, sd, err)) return -1;
        for (int which = 0; which < SPQ_N_LIN; which++) {
            int rows, cols;
            spq_lin_shape(c, which, &rows, &cols);
            int64_t s1[2] = {rows, (cols + 1) / 2}, s2[2] = {rows, spq_wq_ngroups(&q->w, cols)};
            char *n1 = lin_tensor(l, which, "codes"), *n2 = lin_tensor(l, which, "scale"),
                 *n3 = lin_tensor(l, which, "zero");
            int bad = !need(f, n1, SPQ_ST_U8, 2, s1, err) || !need(f, n2, SPQ_ST_F32, 2, s2, err) ||
                      !need(f, n3, SPQ_ST_U8, 2, s2, err);
            free(n1); free(n2); free(n3);
            if (bad) return -1;
        }
    }
    if (!need(f, "final_norm", SPQ_ST_F32, 1, sd, err) || !need(f, "tok_embeddings", emb_dtype, 2, se, err)) return -1;
    if (!c->tied && !need(f, "lm_head", emb_dtype, 2, se, err)) return -1;
    return 0;
}

static int load_linear(spq_qlinear *ql, const spq_st_file *f, const spq_config *c, const spq_qcfg *q, int l,
                       int which, spq_err *err) {
    int rows, cols, seg;
    spq_lin_shape(c, which, &rows, &cols);
    if (spq_qpack_seg(&seg, q, c, which, err)) return spq_fail_prefix(err, "%s: metadata quant", f->path);
    int ng = spq_wq_ngroups(&q->w, cols), half = (cols + 1) / 2;
    char *n1 = lin_tensor(l, which, "codes"), *n2 = lin_tensor(l, which, "scale"), *n3 = lin_tensor(l, which, "zero");
    const spq_st_tensor *tc = spq_st_find(f, n1), *ts = spq_st_find(f, n2), *tz = spq_st_find(f, n3);
    uint8_t *u = spq_malloc((size_t)rows * cols);
    float *sc = spq_malloc((size_t)rows * ng * sizeof(float));
    int32_t *z = spq_malloc((size_t)rows * ng * sizeof(int32_t));
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) {
            uint8_t b = tc->data[(size_t)r * half + k / 2];
            u[(size_t)r * cols + k] = k & 1 ? b >> 4 : b & 15;
        }
    memcpy(sc, ts->data, (size_t)rows * ng * sizeof(float));
    for (size_t i = 0; i < (size_t)rows * ng; i++) z[i] = tz->data[i];
    int rc = 0;
    /* an odd column count leaves a padding nibble, which must be 0 */
    for (int r = 0; r < rows && cols % 2; r++)
        if (tc->data[(size_t)r * half + half - 1] >> 4) {
            rc = spq_fail(err, "%s: tensor %s: row %d: the padding nibble after the last column is not 0", f->path, n1,
                          r);
            break;
        }
    if (!rc && spq_qlinear_build(ql, u, sc, z, rows, cols, q->w.bits, q->w.groupsize, seg, err))
        rc = spq_fail_prefix(err, "%s: %s", f->path, n1);
    free(u); free(sc); free(z);
    free(n1); free(n2); free(n3);
    return rc;
}

static void copy_tensor_bytes(void *dst, const spq_st_file *f, const char *name) {
    const spq_st_tensor *t = spq_st_find(f, name);
    memcpy(dst, t->data, t->nbytes);
}

int spq_packed_load(spq_model *pm, const char *path, spq_err *err) {
    memset(pm, 0, sizeof *pm);
    spq_st_file f;
    if (spq_st_open(&f, path, err)) return -1;
    int rc = -1;
    json_t *jc = NULL, *jq = NULL;
    char src[1100];
    const char *fmt = spq_st_meta(&f, "format"), *ver = spq_st_meta(&f, "version");
    if (!fmt || strcmp(fmt, SPQ_PACKED_FORMAT)) {
        spq_fail(err, "%s: not a packed spinq model (metadata format is %s%s%s, expected \"%s\")", path,
                 fmt ? "\"" : "", fmt ? fmt : "missing", fmt ? "\"" : "", SPQ_PACKED_FORMAT);
        goto done;
    }
    char *end;
    long v = ver ? strtol(ver, &end, 10) : 0;
    if (!ver || *end || end == ver) {
        spq_fail(err, "%s: metadata version: %s%s is not an integer", path, ver ? ver : "missing", "");
        goto done;
    }
    if (v != SPQ_PACKED_VERSION) {
        spq_fail(err, "%s: metadata version: %ld is not supported (this build reads version %d)", path, v,
                 SPQ_PACKED_VERSION);
        goto done;
    }
    spq_config c;
    spq_qcfg q;
    snprintf(src, sizeof src, "%s: metadata config", path);
    if (parse_meta_json(&jc, &f, "config", err) || spq_hf_config_parse(&c, jc, src, err)) goto done;
    snprintf(src, sizeof src, "%s: metadata quant", path);
    if (parse_meta_json(&jq, &f, "quant", err) || parse_quant(&q, jq, src, err)) goto done;
    if (spq_aq_validate(&q.a, c.dim, err) || spq_aq_validate(&q.kv, c.n_kv_heads * c.head_dim, err)) {
        spq_fail_prefix(err, "%s", src);
        goto done;
    }
    const char *ed = spq_st_meta(&f, "embedding_dtype");
    spq_st_dtype edt;
    if (!ed || spq_st_dtype_parse(&edt, ed) || !emb_dtype_ok(edt)) {
        spq_fail(err, "%s: metadata embedding_dtype: %s is not F32, F16 or BF16", path, ed ? ed : "missing");
        goto done;
    }
    int r3k, r4k;
    if (parse_rot_kind(&r3k, &f, "r3", err) || parse_rot_kind(&r4k, &f, "r4", err)) goto done;
    if (check_tensors(&f, &c, &q, edt, err)) goto done;
    c.kv_cache_bits = q.kv.bits < SPQ_QUANT_OFF ? q.kv.bits : 0;
    alloc_shell(pm, &c, emb_from_st(edt));
    pm->q = q;
    pm->path = spq_strdup(path);
    pm->format = spq_strdup("packed");
    spq_packed *p = pm->packed;
    const char *info = spq_st_meta(&f, "info");
    p->info = spq_strdup(info ? info : "{}");
    if (load_rot(&pm->r3, &f, "r3", r3k, c.head_dim, err) || load_rot(&pm->r4, &f, "r4", r4k, c.hidden_dim, err))
        goto fail;
    char name[64];
    for (int l = 0; l < c.n_layers; l++) {
        snprintf(name, sizeof name, "layers.%d.attn_norm", l);
        copy_tensor_bytes(pm->layers[l].attn_norm, &f, name);
        snprintf(name, sizeof name, "layers.%d.ffn_norm", l);
        copy_tensor_bytes(pm->layers[l].ffn_norm, &f, name);
        for (int which = 0; which < SPQ_N_LIN; which++)
            if (load_linear(spq_packed_lin(p, l, which), &f, &c, &q, l, which, err)) goto fail;
    }
    copy_tensor_bytes(pm->final_norm, &f, "final_norm");
    copy_tensor_bytes(edt == SPQ_ST_F32 ? (void *)pm->tok_emb : (void *)p->emb16, &f, "tok_embeddings");
    if (!c.tied) copy_tensor_bytes(edt == SPQ_ST_F32 ? (void *)pm->lm_head : (void *)p->head16, &f, "lm_head");
    const char *tn = spq_st_meta(&f, "tokenizer"), *tcn = spq_st_meta(&f, "tokenizer_config");
    if (tn) {
        const spq_st_tensor *t = spq_st_find(&f, "tokenizer"), *tc = tcn ? spq_st_find(&f, "tokenizer_config") : NULL;
        if (!t || t->dtype != SPQ_ST_U8 || (tcn && (!tc || tc->dtype != SPQ_ST_U8))) {
            spq_fail(err, "%s: metadata names a tokenizer but tensor %s is missing or not U8", path,
                     !t || t->dtype != SPQ_ST_U8 ? "tokenizer" : "tokenizer_config");
            goto fail;
        }
        p->tok_name = spq_strdup(tn);
        p->tok = spq_memdup(t->data, t->nbytes);
        p->tok_len = t->nbytes;
        if (tcn) {
            p->tok_cfg_name = spq_strdup(tcn);
            p->tok_cfg = spq_memdup(tc->data, tc->nbytes);
            p->tok_cfg_len = tc->nbytes;
        }
    }
    rc = 0;
    goto done;
fail:
    spq_model_free(pm);
done:
    json_decref(jc);
    json_decref(jq);
    spq_st_close(&f);
    return rc;
}

int spq_packed_tokenizer(spq_tokenizer **t, const char *path, spq_err *err) {
    *t = NULL;
    spq_st_file f;
    if (spq_st_open(&f, path, err)) return -1;
    const char *tn = spq_st_meta(&f, "tokenizer"), *tcn = spq_st_meta(&f, "tokenizer_config");
    const spq_st_tensor *tt = spq_st_find(&f, "tokenizer"), *tc = spq_st_find(&f, "tokenizer_config");
    int rc;
    if (!tn || !tt || tt->dtype != SPQ_ST_U8) {
        rc = spq_fail(err, "%s: no tokenizer embedded (metadata tokenizer and a U8 tensor tokenizer)", path);
    } else if (tcn && (!tc || tc->dtype != SPQ_ST_U8)) {
        rc = spq_fail(err, "%s: metadata tokenizer_config names a file but tensor tokenizer_config is missing or not U8",
                      path);
    } else {
        char name[1200], cname[1200];
        snprintf(name, sizeof name, "%s:%s", path, tn);
        snprintf(cname, sizeof cname, "%s:%s", path, tcn ? tcn : "");
        rc = spq_tok_load_mem(t, name, (const char *)tt->data, tt->nbytes, cname,
                              tcn ? (const char *)tc->data : NULL, tcn ? tc->nbytes : 0, err);
    }
    spq_st_close(&f);
    return rc;
}
