/* packed_weights.c - see packed_weights.h. */
#include "packed_weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/half.h"

size_t spq_packed_bytes(const spq_packed *p, const spq_config *c) {
    size_t n = 0, table = (size_t)c->vocab_size * c->dim;
    for (size_t i = 0; i < (size_t)p->n_layers * SPQ_N_LIN; i++) n += spq_qlinear_bytes(&p->lin[i]);
    table *= p->emb_dtype == SPQ_EMB_F32 ? sizeof(float) : sizeof(uint16_t);
    return n + table * (c->tied ? 1 : 2);
}

void spq_packed_free(spq_packed *p) {
    if (!p) return;
    if (p->lin)
        for (int i = 0; i < p->n_layers * SPQ_N_LIN; i++) spq_qlinear_free(&p->lin[i]);
    free(p->lin);
    if (p->head16 != p->emb16) free(p->head16);
    free(p->emb16);
    free(p->info);
    free(p->tok_name); free(p->tok_cfg_name); free(p->tok); free(p->tok_cfg);
    memset(p, 0, sizeof *p);
}

/* a deep copy, rebuilt through the checked constructor */
static void qlinear_copy(spq_qlinear *d, const spq_qlinear *s) {
    uint8_t *codes = spq_malloc((size_t)s->rows * s->cols);
    float *scale = spq_malloc((size_t)s->rows * s->ngroups * sizeof(float));
    int32_t *zero = spq_malloc((size_t)s->rows * s->ngroups * sizeof(int32_t));
    spq_qlinear_unpack(codes, scale, zero, s);
    spq_err err;
    if (spq_qlinear_build(d, codes, scale, zero, s->rows, s->cols, s->bits, s->groupsize, s->seg, &err)) {
        fprintf(stderr, "spinq: copying a packed linear: %s\n", err.msg); /* cannot happen: s was built */
        abort();
    }
    free(codes); free(scale); free(zero);
}

spq_packed *spq_packed_clone(const spq_packed *p, const spq_config *c) {
    spq_packed *d = spq_calloc(1, sizeof *d);
    size_t ne = (size_t)c->vocab_size * c->dim;
    d->n_layers = p->n_layers;
    d->emb_dtype = p->emb_dtype;
    d->lin = spq_calloc((size_t)p->n_layers * SPQ_N_LIN, sizeof(spq_qlinear));
    for (int i = 0; i < p->n_layers * SPQ_N_LIN; i++) qlinear_copy(&d->lin[i], &p->lin[i]);
    d->emb16 = spq_memdup(p->emb16, ne * 2);
    d->head16 = p->head16 == p->emb16 ? d->emb16 : spq_memdup(p->head16, ne * 2);
    d->info = p->info ? spq_strdup(p->info) : NULL;
    d->tok_name = p->tok_name ? spq_strdup(p->tok_name) : NULL;
    d->tok_cfg_name = p->tok_cfg_name ? spq_strdup(p->tok_cfg_name) : NULL;
    d->tok = spq_memdup(p->tok, p->tok_len);
    d->tok_cfg = spq_memdup(p->tok_cfg, p->tok_cfg_len);
    d->tok_len = p->tok_len;
    d->tok_cfg_len = p->tok_cfg_len;
    return d;
}

void spq_packed_emb_row(float *x, const spq_packed *p, int token, int dim) {
    const uint16_t *row = p->emb16 + (size_t)token * dim;
    if (p->emb_dtype == SPQ_EMB_BF16) spq_bf16_to_f32_array(x, row, dim);
    else spq_f16_to_f32_array(x, row, dim);
}
