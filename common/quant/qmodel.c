/* qmodel.c - see qmodel.h. */
#include "qmodel.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/base/json_util.h"
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

/* ---- the settings as JSON: one writer and one reader ---- */

struct json_t *spq_qcfg_to_value(const spq_qcfg *q, int full) {
    json_t *o = json_object();
    json_object_set_new(o, "w_bits", json_integer(q->w.bits));
    json_object_set_new(o, "w_sym", json_boolean(q->w.sym));
    json_object_set_new(o, "w_groupsize", json_integer(q->w.groupsize));
    json_object_set_new(o, "w_clip", json_boolean(q->w.mse));
    if (q->w.grid) json_object_set_new(o, "w_grid", json_string(spq_wq_grid_name(q->w.grid)));
    json_object_set_new(o, "a_bits", json_integer(q->a.bits));
    if (full) json_object_set_new(o, "a_sym", json_boolean(q->a.sym));
    if (full) json_object_set_new(o, "a_groupsize", json_integer(q->a.groupsize));
    json_object_set_new(o, "a_clip", spq_json_real_f32(q->a.clip));
    json_object_set_new(o, "kv_bits", json_integer(q->kv.bits));
    if (full) json_object_set_new(o, "kv_sym", json_boolean(q->kv.sym));
    json_object_set_new(o, "kv_clip", spq_json_real_f32(q->kv.clip));
    return o;
}

static int get_bits(int *out, const json_t *o, const char *key, const char *src, spq_err *err) {
    if (spq_json_get_int(out, o, key, 2, SPQ_QUANT_OFF, src, err)) return -1;
    if (*out > 8 && *out != SPQ_QUANT_OFF) return spq_fail(err, "%s: %s: %d is not 2..8 or 16 (off)", src, key, *out);
    return 0;
}

static int get_bool(int *out, const json_t *o, const char *key, const char *src, spq_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v) return spq_fail(err, "%s: %s: missing", src, key);
    if (!json_is_boolean(v)) return spq_json_type_error(err, src, key, "true or false", v);
    *out = json_is_true(v);
    return 0;
}

static int get_clip(float *out, const json_t *o, const char *key, const char *src, spq_err *err) {
    double d;
    if (spq_json_get_num(&d, o, key, src, err)) return -1;
    *out = (float)d;
    return 0;
}

int spq_qcfg_from_value(spq_qcfg *q, const struct json_t *o, int full, const char *src, spq_err *err) {
    *q = spq_qcfg_off();
    if (!json_is_object(o)) return spq_fail(err, "%s: not a JSON object", src);
    enum { G = 1 << 24 };
    if (get_bits(&q->w.bits, o, "w_bits", src, err) || get_bool(&q->w.sym, o, "w_sym", src, err) ||
        spq_json_get_int(&q->w.groupsize, o, "w_groupsize", 0, G, src, err) ||
        get_bool(&q->w.mse, o, "w_clip", src, err) || get_bits(&q->a.bits, o, "a_bits", src, err) ||
        get_clip(&q->a.clip, o, "a_clip", src, err) || get_bits(&q->kv.bits, o, "kv_bits", src, err) ||
        get_clip(&q->kv.clip, o, "kv_clip", src, err))
        return -1;
    json_t *g = json_object_get(o, "w_grid"); /* optional: written only when the weights are on a block grid */
    if (g && (!json_is_string(g) || (q->w.grid = spq_wq_grid_of(json_string_value(g))) < 0))
        return spq_fail(err, "%s: w_grid: expected \"none\", \"q4_0\" or \"q8_0\"", src);
    if (full && (get_bool(&q->a.sym, o, "a_sym", src, err) ||
                 spq_json_get_int(&q->a.groupsize, o, "a_groupsize", 0, G, src, err) ||
                 get_bool(&q->kv.sym, o, "kv_sym", src, err)))
        return -1;
    return 0;
}

void spq_qcfg_to_json(char *buf, size_t cap, const spq_qcfg *q) {
    json_t *o = spq_qcfg_to_value(q, 0);
    char *t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    snprintf(buf, cap, "%s", t ? t : "{}");
    free(t);
    json_decref(o);
}

int spq_qcfg_from_json(spq_qcfg *q, const char *text, spq_err *err) {
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o) return spq_fail(err, "quantization settings: not JSON (%s)", je.text);
    int rc = spq_qcfg_from_value(q, o, 0, "quantization settings", err);
    json_decref(o);
    return rc;
}

void spq_qcfg_describe(char *buf, size_t cap, const spq_qcfg *q) {
    char g[32] = "per channel";
    if (q->w.groupsize > 0) snprintf(g, sizeof g, "groups of %d", q->w.groupsize);
    snprintf(buf, cap, "W%dA%dKV%d (w: %s, %s%s%s%s; a clip %.2f; kv clip %.2f)", q->w.bits, q->a.bits, q->kv.bits,
             q->w.sym ? "sym" : "asym", g, q->w.mse ? ", clip search" : "", q->w.grid ? ", grid " : "",
             q->w.grid ? spq_wq_grid_name(q->w.grid) : "", (double)q->a.clip, (double)q->kv.clip);
}
