/* qpack.c - see qpack.h. */
#include "qpack.h"

#include <stdlib.h>

#include "common/model/mapped.h"

int spq_qpack_seg(int *seg, const spq_qcfg *q, const spq_config *c, int which, spq_err *err) {
    int rows, cols;
    spq_lin_shape(c, which, &rows, &cols);
    spq_aq_cfg aq = spq_site_aq(q, spq_lin_site(which), c->head_dim);
    int ag = aq.bits < SPQ_QUANT_OFF ? aq.groupsize : 0;
    if (spq_qseg(seg, cols, ag, q->w.groupsize, err)) return spq_fail_prefix(err, "%s", spq_lin_name(which));
    return 0;
}

int spq_qpack_check(const spq_qcfg *q, const spq_config *c, spq_err *err) {
    if (q->w.bits < 2 || q->w.bits > 4)
        return spq_fail(err, "w_bits: packed weights are 2..4 bits (the model's weights are %d-bit)", q->w.bits);
    if (q->kv.bits < SPQ_QUANT_OFF && (q->kv.bits < 2 || q->kv.bits > 8))
        return spq_fail(err, "kv_bits: %d is not 2..8 or 16", q->kv.bits);
    for (int which = 0; which < SPQ_N_LIN; which++) {
        int seg;
        if (spq_qpack_seg(&seg, q, c, which, err)) return -1;
    }
    return 0;
}

int spq_qpack_linear(spq_qlinear *ql, const float *W, const spq_wparams *wp, const spq_qcfg *q, const spq_config *c,
                     int which, spq_err *err) {
    int rows, cols, seg, qmin, qmax;
    spq_lin_shape(c, which, &rows, &cols);
    if (spq_qpack_seg(&seg, q, c, which, err)) return -1;
    spq_quant_range(q->w.bits, q->w.sym, &qmin, &qmax);
    int ng = spq_wq_ngroups(&q->w, cols), G = q->w.groupsize > 0 ? q->w.groupsize : cols, rc = 0;
    int8_t *sc = spq_malloc((size_t)rows * cols);
    uint8_t *u = spq_malloc((size_t)rows * cols);
    int32_t *z = spq_malloc((size_t)rows * ng * sizeof(int32_t));
    spq_wq_codes(sc, W, wp->scale, wp->zero, rows, cols, &q->w);
    for (size_t i = 0; i < (size_t)rows * ng; i++) z[i] = (int32_t)wp->zero[i] - qmin;
    for (int r = 0; r < rows && !rc; r++)
        for (int k = 0; k < cols; k++) {
            size_t e = (size_t)r * cols + k, g = (size_t)r * ng + k / G;
            u[e] = (uint8_t)(sc[e] - qmin);
            float back = wp->scale[g] * ((float)sc[e] - wp->zero[g]);
            if (back != W[e]) {
                rc = spq_fail(err, "%s: weight [%d, %d] = %.9g is not on the grid of its scale %g and zero %g "
                                   "(dequantizes to %.9g)", spq_lin_name(which), r, k, (double)W[e],
                              (double)wp->scale[g], (double)wp->zero[g], (double)back);
                break;
            }
        }
    if (!rc && spq_qlinear_build(ql, u, wp->scale, z, rows, cols, q->w.bits, q->w.groupsize, seg, err))
        rc = spq_fail_prefix(err, "%s", spq_lin_name(which));
    free(sc);
    free(u);
    free(z);
    return rc;
}

int spq_qpack_streams(const spq_model *m, const spq_qcfg *q) {
    spq_err err;
    if (!m->mapped || q->w.grid || spq_qpack_check(q, &m->cfg, &err)) return 0;
    for (int which = 0; which < SPQ_N_LIN; which++) {
        int rows, cols;
        spq_lin_shape(&m->cfg, which, &rows, &cols);
        if (!spq_wq_fits(&q->w, cols)) return 0;
    }
    return 1;
}

void spq_qpack_take(spq_model *m, int l) {
    if (m->mapped) spq_mapped_layer_own(m, l);
}

int spq_qpack_settle(spq_model *m, int l, const spq_wquant *wq, spq_err *err) {
    if (!m->mapped) return 0;
    spq_qlinear ql[SPQ_N_LIN] = {0};
    int qmin, qmax;
    spq_quant_range(m->q.w.bits, m->q.w.sym, &qmin, &qmax);
    for (int which = 0; which < SPQ_N_LIN; which++)
        if (spq_qpack_linear(&ql[which], *spq_lin_weight(&m->layers[l], which), spq_wquant_at(wq, l, which), &m->q,
                             &m->cfg, which, err)) {
            for (int i = 0; i < which; i++) spq_qlinear_free(&ql[i]);
            return spq_fail_prefix(err, "layer %d", l);
        }
    spq_mapped_layer_set_packed(m, l, ql, qmin);
    return 0;
}
