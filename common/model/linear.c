/* linear.c - see linear.h. */
#include "linear.h"

const char *spq_lin_name(int which) {
    static const char *names[SPQ_N_LIN] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                           "down_proj"};
    return which >= 0 && which < SPQ_N_LIN ? names[which] : "?";
}

int spq_lin_site(int which) {
    switch (which) {
    case SPQ_LIN_Q: case SPQ_LIN_K: case SPQ_LIN_V: return SPQ_SITE_QKV;
    case SPQ_LIN_O: return SPQ_SITE_O;
    case SPQ_LIN_GATE: case SPQ_LIN_UP: return SPQ_SITE_GATEUP;
    default: return SPQ_SITE_DOWN;
    }
}

void spq_lin_shape(const spq_config *c, int which, int *rows, int *cols) {
    int d = c->dim, h = c->hidden_dim, qd = c->n_heads * c->head_dim, kvd = c->n_kv_heads * c->head_dim;
    switch (which) {
    case SPQ_LIN_Q: *rows = qd; *cols = d; break;
    case SPQ_LIN_K: case SPQ_LIN_V: *rows = kvd; *cols = d; break;
    case SPQ_LIN_O: *rows = d; *cols = qd; break;
    case SPQ_LIN_GATE: case SPQ_LIN_UP: *rows = h; *cols = d; break;
    default: *rows = d; *cols = h; break;
    }
}

float **spq_lin_weight(spq_layer *L, int which) {
    switch (which) {
    case SPQ_LIN_Q: return &L->wq;
    case SPQ_LIN_K: return &L->wk;
    case SPQ_LIN_V: return &L->wv;
    case SPQ_LIN_O: return &L->wo;
    case SPQ_LIN_GATE: return &L->w_gate;
    case SPQ_LIN_UP: return &L->w_up;
    default: return &L->w_down;
    }
}

spq_aq_cfg spq_site_aq(const spq_qcfg *q, int site, int head_dim) {
    return site == SPQ_SITE_O ? spq_qcfg_o(q, head_dim) : q->a;
}
