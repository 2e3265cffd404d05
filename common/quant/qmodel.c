/* qmodel.c - see qmodel.h. */
#include "qmodel.h"

#include <jansson.h>
#include <stdio.h>

#include "common/rot/fuse.h"

void spq_rtn_model(spq_model *m, const spq_wq_cfg *w) {
    if (w->bits >= SPQ_QUANT_OFF) return;
    const spq_config *c = &m->cfg;
    int d = c->dim, H = c->hidden_dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    for (int l = 0; l < c->n_layers; l++) {
        spq_layer *L = &m->layers[l];
        spq_wq_forward(L->wq, L->wq, qd, d, w);
        spq_wq_forward(L->wk, L->wk, kvd, d, w);
        spq_wq_forward(L->wv, L->wv, kvd, d, w);
        spq_wq_forward(L->wo, L->wo, d, qd, w);
        spq_wq_forward(L->w_gate, L->w_gate, H, d, w);
        spq_wq_forward(L->w_up, L->w_up, H, d, w);
        spq_wq_forward(L->w_down, L->w_down, d, H, w);
    }
}

int spq_qcfg_check(const spq_qcfg *q, const spq_config *c, spq_err *err) {
    int hd = c->head_dim;
    spq_aq_cfg kv = spq_qcfg_kv(q, hd), o = spq_qcfg_o(q, hd);
    /* the smallest input width a weight group must fit is the model's dim */
    if (spq_wq_validate(&q->w, c->dim < c->hidden_dim ? c->dim : c->hidden_dim, err)) return -1;
    if (spq_aq_validate(&q->a, c->dim, err)) return -1;
    /* the KV quantizer shares the activation checks; name its own fields */
    if (!((kv.bits >= 2 && kv.bits <= 8) || kv.bits == SPQ_QUANT_OFF))
        return spq_fail(err, "kv_bits: %d is not 2..8 or 16 (off)", kv.bits);
    if (!(kv.clip > 0 && kv.clip <= 1)) return spq_fail(err, "kv_clip: %g is not in (0, 1]", (double)kv.clip);
    if (spq_aq_validate(&kv, c->n_kv_heads * hd, err) || spq_aq_validate(&o, c->n_heads * hd, err)) return -1;
    return 0;
}

int spq_qmodel_prepare(spq_model *m, const spq_rotation *rot, const spq_qcfg *q, int rtn, spq_err *err) {
    if (spq_qcfg_check(q, &m->cfg, err)) return -1;
    if (rot) {
        spq_fuse_norms(m);
        if (spq_rotation_apply(m, rot, err)) return -1;
    }
    if (rtn) spq_rtn_model(m, &q->w);
    m->q = *q;
    return 0;
}

void spq_qcfg_to_json(char *buf, size_t cap, const spq_qcfg *q) {
    snprintf(buf, cap,
             "{\"w_bits\":%d,\"w_sym\":%s,\"w_groupsize\":%d,\"w_clip\":%s,\"a_bits\":%d,\"a_clip\":%.9g,"
             "\"kv_bits\":%d,\"kv_clip\":%.9g}",
             q->w.bits, q->w.sym ? "true" : "false", q->w.groupsize, q->w.mse ? "true" : "false", q->a.bits,
             (double)q->a.clip, q->kv.bits, (double)q->kv.clip);
}

int spq_qcfg_from_json(spq_qcfg *q, const char *text, spq_err *err) {
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return spq_fail(err, "quantization settings: not a JSON object");
    }
    *q = spq_qcfg_off();
    int rc = -1;
    json_t *v;
#define INT(key, dst)                                                                         \
    if (!json_is_integer(v = json_object_get(o, key))) {                                      \
        spq_fail(err, "quantization settings: %s must be an integer", key);                   \
        goto done;                                                                            \
    }                                                                                         \
    dst = (int)json_integer_value(v);
#define BOOL(key, dst)                                                                        \
    if (!json_is_boolean(v = json_object_get(o, key))) {                                      \
        spq_fail(err, "quantization settings: %s must be true or false", key);                \
        goto done;                                                                            \
    }                                                                                         \
    dst = json_is_true(v);
#define NUM(key, dst)                                                                         \
    if (!json_is_number(v = json_object_get(o, key))) {                                       \
        spq_fail(err, "quantization settings: %s must be a number", key);                     \
        goto done;                                                                            \
    }                                                                                         \
    dst = (float)json_number_value(v);
    INT("w_bits", q->w.bits) BOOL("w_sym", q->w.sym) INT("w_groupsize", q->w.groupsize) BOOL("w_clip", q->w.mse)
    INT("a_bits", q->a.bits) NUM("a_clip", q->a.clip) INT("kv_bits", q->kv.bits) NUM("kv_clip", q->kv.clip)
#undef INT
#undef BOOL
#undef NUM
    rc = 0;
done:
    json_decref(o);
    return rc;
}
