/* scorer.h - the model behind an evaluation.
 *
 * Every evaluation (perplexity, rolling windows, KL divergence, multiple
 * choice) talks to the model through this one interface: "logits for B
 * sequences of T tokens at these positions", with a KV cache per sequence
 * slot. The full-precision model implements it here (spq_scorer_model);
 * fake-quantized and packed low-bit models add their own implementations
 * without the evaluation code changing.
 *
 * Cache contract (what multiple-choice scoring relies on): forward() writes
 * the keys/values of sequence b's T tokens into slot b at positions
 * pos[b] .. pos[b]+T-1, and a query at position p reads only positions <= p.
 * So a slot can hold a shared context once and each continuation can be run
 * after it with pos = context length: whatever a previous continuation left
 * beyond the context is overwritten before it is read. */
#ifndef SPQ_SCORER_H
#define SPQ_SCORER_H

#include "common/model/forward.h"
#include "common/model/model.h"

typedef struct spq_scorer spq_scorer;
struct spq_scorer {
    const char *kind;  /* "fp32", "fake-quant", ...: for reports */
    int vocab_size;
    int seq_len;       /* the context the model was trained for */
    int bos_id;        /* -1 when none */
    int eos_id;        /* -1 when none */
    /* Room for B slots of ctx positions and max_tokens (= B*T) rows per
     * call. Keeps the current buffers when they are big enough; cache
     * contents are undefined afterwards. */
    void (*reserve)(spq_scorer *s, int B, int ctx, int max_tokens);
    /* logits: (B, T, V) for SPQ_LOGITS_ALL, (B, V) for SPQ_LOGITS_LAST.
     * tokens (B, T); pos (B); pos[b] + T <= ctx; B*T <= max_tokens. */
    void (*forward)(spq_scorer *s, float *logits, const int *tokens, const int *pos, int B, int T, int mode);
    void (*free)(spq_scorer *s);
    void *impl;
};

/* A model run by spq_forward (with whatever quantizers it carries). Borrows
 * m, which must outlive the scorer. */
void spq_scorer_model(spq_scorer *s, const spq_model *m);

static inline void spq_scorer_free(spq_scorer *s) {
    if (s->free) s->free(s);
}

#endif
