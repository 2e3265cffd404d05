/* scorer.c - the model scorer: spq_forward over an spq_state that grows on
 * demand. */
#include "scorer.h"

#include <stdlib.h>

typedef struct {
    const spq_model *m;
    spq_state st;
    int built;
} fp32_impl;

static void fp32_reserve(spq_scorer *s, int B, int ctx, int max_tokens) {
    fp32_impl *f = s->impl;
    if (f->built && f->st.B >= B && f->st.ctx >= ctx && f->st.max_tokens >= max_tokens) return;
    if (f->built) {
        /* grow to cover both the old and the new request, so that
         * alternating shapes do not rebuild every time */
        if (f->st.B > B) B = f->st.B;
        if (f->st.ctx > ctx) ctx = f->st.ctx;
        if (f->st.max_tokens > max_tokens) max_tokens = f->st.max_tokens;
        spq_state_free(&f->st);
    }
    spq_state_build(&f->st, &f->m->cfg, B, ctx, max_tokens);
    f->built = 1;
}

static void fp32_forward(spq_scorer *s, float *logits, const int *tokens, const int *pos, int B, int T, int mode) {
    fp32_impl *f = s->impl;
    spq_forward(logits, &f->st, tokens, pos, f->m, B, T, mode);
}

static void fp32_free(spq_scorer *s) {
    fp32_impl *f = s->impl;
    if (f->built) spq_state_free(&f->st);
    free(f);
    s->impl = NULL;
}

void spq_scorer_model(spq_scorer *s, const spq_model *m) {
    fp32_impl *f = spq_calloc(1, sizeof *f);
    f->m = m;
    int quant = m->q.w.bits < 16 || m->q.a.bits < 16 || m->q.kv.bits < 16 || m->r3 || m->r4;
    s->kind = quant ? "fake-quant" : "fp32";
    s->vocab_size = m->cfg.vocab_size;
    s->seq_len = m->cfg.seq_len;
    s->bos_id = m->cfg.bos_id;
    s->eos_id = m->cfg.eos_id;
    s->reserve = fp32_reserve;
    s->forward = fp32_forward;
    s->free = fp32_free;
    s->impl = f;
}
