/* packed_weights.h - a packed low-bit model's weights in memory.
 *
 * A packed model is a spq_model whose `packed` member (this struct) holds
 * every linear as int codes with per-(row, group) scales and zero points in
 * the kernels' layout (qgemm.h); its fp32 linear weights are NULL, so the
 * forward pass (forward.h) runs the integer kernels. The embedding and
 * classifier are fp32 (the model's tok_emb/lm_head) or 16-bit rows here.
 * The struct also carries how the model was made and the tokenizer files
 * that travel with it. Building, saving and loading one: io/packed.h. */
#ifndef SPQ_PACKED_WEIGHTS_H
#define SPQ_PACKED_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "linear.h"
#include "model.h"
#include "common/kernels/qgemm.h"

/* how a packed model stores its embedding and classifier */
typedef enum { SPQ_EMB_F32, SPQ_EMB_F16, SPQ_EMB_BF16 } spq_emb_dtype;

typedef struct spq_packed {
    int n_layers;
    spq_qlinear *lin;          /* (n_layers, SPQ_N_LIN) */
    spq_emb_dtype emb_dtype;   /* of the embedding and classifier */
    uint16_t *emb16, *head16;  /* (vocab, dim) when 16-bit (head16 == emb16 when tied) */
    char *info;                /* a JSON object: how the model was made */
    char *tok_name;            /* "tokenizer.json" or "tokenizer.bin", NULL: none embedded */
    char *tok_cfg_name;        /* "tokenizer_config.json" or NULL */
    char *tok, *tok_cfg;       /* the files' bytes */
    size_t tok_len, tok_cfg_len;
} spq_packed;

void spq_packed_free(spq_packed *p);
/* Bytes of weights a packed model of config c holds in memory: its packed
 * linears and its embedding and classifier (16-bit here, or fp32 in the
 * model's tok_emb/lm_head). */
size_t spq_packed_bytes(const spq_packed *p, const spq_config *c);
spq_packed *spq_packed_clone(const spq_packed *p, const spq_config *c);

/* Linear `which` (linear.h) of layer l. */
static inline spq_qlinear *spq_packed_lin(const spq_packed *p, int l, int which) {
    return &p->lin[(size_t)l * SPQ_N_LIN + which];
}

/* x (dim) <- row `token` of a 16-bit embedding, as fp32. */
void spq_packed_emb_row(float *x, const spq_packed *p, int token, int dim);

#endif
