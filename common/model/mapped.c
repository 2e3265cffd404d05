/* mapped.c - see mapped.h. */
#include "mapped.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linear.h"
#include "common/base/half.h"
#include "common/kernels/qgemm.h"

void spq_mapped_free(spq_mapped *mp) {
    for (int i = 0; i < mp->n_files; i++) spq_st_close(&mp->files[i]);
    free(mp->files);
    free(mp->lin);
    for (int i = 0; i < mp->n_xforms; i++)
        if (mp->xforms[i].free) mp->xforms[i].free(mp->xforms[i].ctx);
    for (size_t i = 0; mp->qlin && i < (size_t)mp->q_layers * SPQ_N_LIN; i++) spq_qlinear_free(&mp->qlin[i]);
    free(mp->qlin);
    free(mp->qdone);
    free(mp->own_data[0]);
    free(mp->own_data[1]);
    memset(mp, 0, sizeof *mp);
}

size_t spq_mapped_layer_floats(const spq_config *c) {
    size_t n = 0;
    for (int which = 0; which < SPQ_N_LIN; which++) {
        int rows, cols;
        spq_lin_shape(c, which, &rows, &cols);
        n += (size_t)rows * cols;
    }
    return n;
}

/* out (numel) <- a mapped tensor in fp32; the loader checked its dtype */
static void tensor_f32(float *out, const spq_mtensor *mt) {
    spq_err err;
    if (spq_st_tensor_f32(out, mt->f, mt->t, &err)) {
        fprintf(stderr, "spinq: %s\n", err.msg);
        abort();
    }
}

/* W (rows, cols) <- the dequantized values of a quantized linear: the
 * weights' fake quantization computes s (c - z) with the signed code c and
 * zero z; the packed codes are c - qmin and z - qmin, so the same float
 * operations give the same values */
static void dequant(float *W, const spq_qlinear *ql, int qmin) {
    int rows = ql->rows, cols = ql->cols, ng = ql->ngroups, G = ql->groupsize > 0 ? ql->groupsize : cols;
    uint8_t *u = spq_malloc((size_t)rows * cols);
    float *sc = spq_malloc((size_t)rows * ng * sizeof(float));
    int32_t *z = spq_malloc((size_t)rows * ng * sizeof(int32_t));
    spq_qlinear_unpack(u, sc, z, ql);
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < cols; k++) {
            size_t g = (size_t)r * ng + k / G;
            W[(size_t)r * cols + k] = sc[g] * ((float)(u[(size_t)r * cols + k] + qmin) - (float)(z[g] + qmin));
        }
    free(u);
    free(sc);
    free(z);
}

/* L's linears (the destinations, set by the caller) <- layer l: dequantized
 * when quantized, else converted from the file and transformed */
static void layer_into(spq_layer *L, const spq_mapped *mp, const spq_config *c, int l) {
    if (mp->qdone && mp->qdone[l] == 1) {
        for (int which = 0; which < SPQ_N_LIN; which++)
            dequant(*spq_lin_weight(L, which), &mp->qlin[(size_t)l * SPQ_N_LIN + which], mp->qmin);
        return;
    }
    for (int which = 0; which < SPQ_N_LIN; which++)
        tensor_f32(*spq_lin_weight(L, which), &mp->lin[(size_t)l * SPQ_N_LIN + which]);
    for (int i = 0; i < mp->n_xforms; i++) mp->xforms[i].apply(L, l, c, mp->xforms[i].ctx);
}

void spq_mapped_layer(spq_layer *L, float *buf, const spq_model *m, int l) {
    *L = m->layers[l];
    for (int which = 0; which < SPQ_N_LIN; which++) {
        int rows, cols;
        spq_lin_shape(&m->cfg, which, &rows, &cols);
        *spq_lin_weight(L, which) = buf;
        buf += (size_t)rows * cols;
    }
    layer_into(L, m->mapped, &m->cfg, l);
}

void spq_mapped_add_xform(spq_model *m, spq_mapped_xform x) {
    spq_mapped *mp = m->mapped;
    if (mp->n_xforms == SPQ_MAPPED_MAX_XFORMS) {
        fprintf(stderr, "spinq: more than %d layer transforms on a mapped model\n", SPQ_MAPPED_MAX_XFORMS);
        abort();
    }
    mp->xforms[mp->n_xforms++] = x;
    mp->gen++;
}

/* the linears of layer l that have no array of their own get one, filled */
static void own_layer(spq_layer *dst, const spq_mapped *mp, const spq_config *c, int l) {
    if (dst->wq) return; /* a layer has all seven or none */
    spq_layer L = *dst;
    for (int which = 0; which < SPQ_N_LIN; which++) {
        int rows, cols;
        spq_lin_shape(c, which, &rows, &cols);
        *spq_lin_weight(&L, which) = spq_malloc((size_t)rows * cols * sizeof(float));
    }
    layer_into(&L, mp, c, l);
    *dst = L;
}

void spq_mapped_layer_own(spq_model *m, int l) {
    own_layer(&m->layers[l], m->mapped, &m->cfg, l);
    m->mapped->gen++;
}

void spq_mapped_layer_set_packed(spq_model *m, int l, spq_qlinear *ql, int qmin) {
    spq_mapped *mp = m->mapped;
    int n = m->cfg.n_layers;
    if (!mp->qlin) {
        mp->qlin = spq_calloc((size_t)n * SPQ_N_LIN, sizeof(spq_qlinear));
        mp->qdone = spq_calloc((size_t)n, 1);
        mp->q_layers = n;
    }
    for (int which = 0; which < SPQ_N_LIN; which++) {
        spq_qlinear *dst = &mp->qlin[(size_t)l * SPQ_N_LIN + which];
        spq_qlinear_free(dst);
        *dst = ql[which];
        float **w = spq_lin_weight(&m->layers[l], which);
        free(*w);
        *w = NULL;
    }
    mp->qdone[l] = 1;
    mp->qmin = qmin;
    mp->gen++;
}

int spq_mapped_all_packed(const spq_mapped *mp, const spq_config *c) {
    if (!mp || !mp->qdone) return 0;
    for (int l = 0; l < c->n_layers; l++)
        if (mp->qdone[l] != 1) return 0;
    return 1;
}

void spq_mtensor_row(float *x, const spq_mtensor *mt, int row, int n) {
    const uint8_t *r = mt->t->data + (size_t)row * n * 2;
    spq_half_to_f32_array(x, r, n, mt->t->dtype == SPQ_ST_BF16);
}

void spq_mapped_emb_row(float *x, const spq_mapped *mp, int token, int dim) { spq_mtensor_row(x, &mp->emb, token, dim); }

void spq_mapped_classifier(float *logits, const float *x, int N, const spq_mapped *mp, const spq_config *c) {
    /* the loader maps only 2-byte aligned 16-bit tables */
    spq_hgemm(logits, x, N, (const uint16_t *)mp->head.t->data, c->vocab_size, c->dim, mp->head.t->dtype == SPQ_ST_BF16);
}

void spq_mapped_to_f32(spq_model *dst, const spq_mapped *mp) { spq_mapped_to_f32_progress(dst, mp, NULL, NULL); }

/* dst's embedding and classifier, where NULL, <- mp's in fp32 */
static void ends_f32(spq_model *dst, const spq_mapped *mp) {
    const spq_config *c = &dst->cfg;
    size_t ne = (size_t)c->vocab_size * c->dim;
    if (!dst->tok_emb && mp->emb.t) {
        dst->tok_emb = spq_malloc(ne * sizeof(float));
        tensor_f32(dst->tok_emb, &mp->emb);
    }
    if (!dst->lm_head && mp->head.t) {
        if (mp->head.t == mp->emb.t) {
            dst->lm_head = dst->tok_emb;
        } else {
            dst->lm_head = spq_malloc(ne * sizeof(float));
            tensor_f32(dst->lm_head, &mp->head);
        }
    }
}

void spq_mapped_ends_f32(spq_model *m) {
    spq_mapped *mp = m->mapped;
    if (!mp) return;
    ends_f32(m, mp);
    mp->emb.t = mp->head.t = NULL;
    for (int i = 0; i < 2; i++) {
        free(mp->own_data[i]);
        mp->own_data[i] = NULL;
    }
    mp->gen++;
}

/* *t, *data <- a (vocab, dim) table of dtype dt from fp32 rows src, or
 * (src NULL) from the 16-bit table mt */
static void own_table(spq_st_tensor *t, uint16_t **data, const float *src, const spq_mtensor *mt, spq_st_dtype dt,
                      const spq_config *c) {
    size_t V = (size_t)c->vocab_size, D = (size_t)c->dim;
    uint16_t *d = spq_malloc(V * D * sizeof(uint16_t));
    float *row = spq_malloc(D * sizeof(float));
    for (size_t v = 0; v < V; v++) {
        const float *x = src ? src + v * D : row;
        if (!src) spq_mtensor_row(row, mt, (int)v, (int)D);
        spq_f32_to_half_array(d + v * D, x, D, dt == SPQ_ST_BF16);
    }
    free(row);
    *t = (spq_st_tensor){.name = (char *)"embedding table", .dtype = dt,
                         .ndim = 2, .shape = {(int64_t)V, (int64_t)D}, .numel = V * D,
                         .nbytes = V * D * sizeof(uint16_t), .data = (const uint8_t *)d};
    *data = d;
}

void spq_mapped_ends_16(spq_model *m, spq_st_dtype dt) {
    spq_mapped *mp = m->mapped;
    if (!mp) return;
    int tied = m->tok_emb ? m->lm_head == m->tok_emb : mp->head.t == mp->emb.t;
    int emb_ok = !m->tok_emb && mp->emb.t && mp->emb.t->dtype == dt;
    int head_ok = !m->lm_head && mp->head.t && mp->head.t->dtype == dt;
    if (emb_ok && head_ok) return;
    spq_st_tensor t[2] = {0};
    uint16_t *d[2] = {NULL, NULL};
    own_table(&t[0], &d[0], m->tok_emb, &mp->emb, dt, &m->cfg);
    free(m->tok_emb); /* before the classifier's copy: one 16-bit table beside fp32 ones at a time (1 GB at 8B) */
    if (!tied) {
        own_table(&t[1], &d[1], m->lm_head, &mp->head, dt, &m->cfg);
        free(m->lm_head);
    }
    m->tok_emb = m->lm_head = NULL;
    for (int i = 0; i < 2; i++) {
        free(mp->own_data[i]);
        mp->own[i] = t[i];
        mp->own_data[i] = d[i];
    }
    mp->emb = (spq_mtensor){NULL, &mp->own[0]};
    mp->head = tied ? mp->emb : (spq_mtensor){NULL, &mp->own[1]};
    mp->gen++;
}

void spq_mapped_to_f32_progress(spq_model *dst, const spq_mapped *mp, spq_convert_progress_fn fn, void *ud) {
    const spq_config *c = &dst->cfg;
    for (int l = 0; l < c->n_layers; l++) {
        own_layer(&dst->layers[l], mp, c, l);
        if (fn) fn(ud, l + 1, c->n_layers + 1);
    }
    ends_f32(dst, mp);
    if (fn) fn(ud, c->n_layers + 1, c->n_layers + 1);
}

void spq_model_materialize(spq_model *m) { spq_model_materialize_progress(m, NULL, NULL); }

void spq_model_materialize_progress(spq_model *m, spq_convert_progress_fn fn, void *ud) {
    if (!m->mapped) return;
    spq_mapped_to_f32_progress(m, m->mapped, fn, ud);
    spq_mapped_free(m->mapped);
    free(m->mapped);
    m->mapped = NULL;
}
