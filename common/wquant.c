/* wquant.c - see wquant.h. */
#include "wquant.h"

#include <stdlib.h>
#include <string.h>

void spq_wquant_alloc(spq_wquant *q, const spq_config *c, const spq_wq_cfg *w) {
    q->cfg = *w;
    q->n_layers = c->n_layers;
    q->p = spq_calloc((size_t)c->n_layers * SPQ_N_LIN, sizeof(spq_wparams));
    for (int l = 0; l < c->n_layers; l++)
        for (int which = 0; which < SPQ_N_LIN; which++) {
            int rows, cols;
            spq_lin_shape(c, which, &rows, &cols);
            size_t n = (size_t)rows * spq_wq_ngroups(w, cols);
            spq_wparams *p = spq_wquant_at(q, l, which);
            p->scale = spq_calloc(n, sizeof(float));
            p->zero = spq_calloc(n, sizeof(float));
        }
}

void spq_wquant_free(spq_wquant *q) {
    if (q->p)
        for (int i = 0; i < q->n_layers * SPQ_N_LIN; i++) {
            free(q->p[i].scale);
            free(q->p[i].zero);
        }
    free(q->p);
    memset(q, 0, sizeof *q);
}

int spq_wquant_rtn(spq_wquant *q, spq_model *m, const spq_wq_cfg *w, spq_err *err) {
    memset(q, 0, sizeof *q);
    if (w->bits >= SPQ_QUANT_OFF) return spq_fail(err, "w_bits: 16 means no weight quantization; nothing to round");
    if (spq_wq_validate(w, 1, err)) return -1;
    spq_wquant_alloc(q, &m->cfg, w);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int which = 0; which < SPQ_N_LIN; which++) {
            int rows, cols;
            spq_lin_shape(&m->cfg, which, &rows, &cols);
            float *W = *spq_lin_weight(&m->layers[l], which);
            spq_wparams *p = spq_wquant_at(q, l, which);
            spq_wq_params(p->scale, p->zero, W, rows, cols, w);
            spq_wq_apply(W, W, p->scale, p->zero, rows, cols, w);
        }
    return 0;
}
