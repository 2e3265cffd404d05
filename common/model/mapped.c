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

void spq_mapped_layer(spq_layer *L, float *buf, const spq_model *m, int l) {
    *L = m->layers[l];
    for (int which = 0; which < SPQ_N_LIN; which++) {
        int rows, cols;
        spq_lin_shape(&m->cfg, which, &rows, &cols);
        tensor_f32(buf, &m->mapped->lin[(size_t)l * SPQ_N_LIN + which]);
        *spq_lin_weight(L, which) = buf;
        buf += (size_t)rows * cols;
    }
}

void spq_mapped_emb_row(float *x, const spq_mapped *mp, int token, int dim) {
    const uint8_t *row = mp->emb.t->data + (size_t)token * dim * 2;
    if (mp->emb.t->dtype == SPQ_ST_BF16) spq_bf16_to_f32_array(x, row, dim);
    else spq_f16_to_f32_array(x, row, dim);
}

void spq_mapped_classifier(float *logits, const float *x, int N, const spq_mapped *mp, const spq_config *c) {
    /* the loader maps only 2-byte aligned 16-bit tables */
    spq_hgemm(logits, x, N, (const uint16_t *)mp->head.t->data, c->vocab_size, c->dim, mp->head.t->dtype == SPQ_ST_BF16);
}

void spq_mapped_to_f32(spq_model *dst, const spq_mapped *mp) { spq_mapped_to_f32_progress(dst, mp, NULL, NULL); }

void spq_mapped_to_f32_progress(spq_model *dst, const spq_mapped *mp, spq_convert_progress_fn fn, void *ud) {
    const spq_config *c = &dst->cfg;
    for (int l = 0; l < c->n_layers; l++) {
        for (int which = 0; which < SPQ_N_LIN; which++) {
            float **w = spq_lin_weight(&dst->layers[l], which);
            if (*w) continue;
            int rows, cols;
            spq_lin_shape(c, which, &rows, &cols);
            *w = spq_malloc((size_t)rows * cols * sizeof(float));
            tensor_f32(*w, &mp->lin[(size_t)l * SPQ_N_LIN + which]);
        }
        if (fn) fn(ud, l + 1, c->n_layers + 1);
    }
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
