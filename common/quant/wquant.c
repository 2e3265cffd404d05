/* wquant.c - see wquant.h. */
#include "wquant.h"
#include "qpack.h"

#include <stdlib.h>
#include <string.h>

#include "common/base/pool.h"

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

typedef struct {
    float *scale, *zero;
    const float *W;
    const spq_wq_cfg *w;
    int rows, cols, ng, per_task;
} params_ctx;

static void params_task(void *ctx, int t) {
    const params_ctx *c = ctx;
    int r0 = t * c->per_task, r1 = r0 + c->per_task < c->rows ? r0 + c->per_task : c->rows;
    size_t o = (size_t)r0 * c->ng;
    spq_wq_params(c->scale + o, c->zero + o, c->W + (size_t)r0 * c->cols, r1 - r0, c->cols, c->w);
}

void spq_wq_params_parallel(float *scale, float *zero, const float *W, int rows, int cols, const spq_wq_cfg *w) {
    params_ctx c = {.scale = scale, .zero = zero, .W = W, .w = w, .rows = rows, .cols = cols,
                    .ng = spq_wq_ngroups(w, cols)};
    int threads = spq_pool_threads();
    int want = (double)rows * cols * (w->mse ? 80 : 1) < 1e6 || threads == 1 ? 1 : threads * 4;
    c.per_task = (rows + want - 1) / want;
    spq_parallel_for((rows + c.per_task - 1) / c.per_task, params_task, &c);
}

int spq_wquant_rtn(spq_wquant *q, spq_model *m, const spq_wq_cfg *w, spq_err *err) {
    return spq_wquant_rtn_progress(q, m, w, NULL, NULL, err);
}

int spq_wquant_rtn_progress(spq_wquant *q, spq_model *m, const spq_wq_cfg *w, spq_convert_progress_fn fn, void *ud,
                            spq_err *err) {
    memset(q, 0, sizeof *q);
    if (w->bits >= SPQ_QUANT_OFF) return spq_fail(err, "w_bits: 16 means no weight quantization; nothing to round");
    if (spq_wq_validate(w, 1, err)) return -1;
    spq_wquant_alloc(q, &m->cfg, w);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        spq_qpack_take(m, l);
        for (int which = 0; which < SPQ_N_LIN; which++) {
            int rows, cols;
            spq_lin_shape(&m->cfg, which, &rows, &cols);
            if (!spq_wq_fits(w, cols)) continue;
            float *W = *spq_lin_weight(&m->layers[l], which);
            spq_wparams *p = spq_wquant_at(q, l, which);
            spq_wq_params_parallel(p->scale, p->zero, W, rows, cols, w);
            spq_wq_apply(W, W, p->scale, p->zero, rows, cols, w);
        }
        if (spq_qpack_settle(m, l, q, err)) {
            spq_wquant_free(q);
            return -1;
        }
        if (fn) fn(ud, l + 1, m->cfg.n_layers);
    }
    return 0;
}
