/* model.h - the in-memory LLaMA model: configuration and fp32 weights.
 *
 * One layout whatever the file format: row-major fp32, a linear layer's weight
 * is (out, in) as in PyTorch/HF (y = x W^T), and q/k rows are in Hugging
 * Face's rotate-half RoPE order (llama2.c checkpoints, which pair interleaved
 * dimensions, are permuted on load). A tied classifier shares tok_emb until
 * spq_model_untie() gives it its own copy. */
#ifndef SPQ_MODEL_H
#define SPQ_MODEL_H

#include "common/base/util.h"
#include "common/kernels/quant.h"
#include "common/kernels/rotonline.h"

#define SPQ_MAX_EOS 8

typedef struct {
    int dim;          /* hidden_size */
    int hidden_dim;   /* intermediate_size */
    int n_layers;
    int n_heads;
    int n_kv_heads;   /* < n_heads for grouped-query attention */
    int head_dim;
    int vocab_size;
    int seq_len;      /* max_position_embeddings: the context the model was trained for */
    float norm_eps;
    float rope_theta;
    /* rope_scaling of type "llama3" (LLaMA 3.1/3.2); off when rope_llama3 is 0 */
    int rope_llama3;
    float rope_factor;
    float rope_low_freq_factor;
    float rope_high_freq_factor;
    int rope_orig_ctx;  /* original_max_position_embeddings */
    int tied;           /* classifier tied to the token embedding on disk */
    int bos_id;         /* -1 when the model has none */
    int eos_id;         /* -1 when the model has none */
    /* every end-of-sequence id when the model has several (HF eos_token_id
     * may be a list, e.g. LLaMA 3 instruct's <|end_of_text|>, <|eom_id|>,
     * <|eot_id|>); eos_ids[0] == eos_id. n_eos 0: eos_id alone. */
    int n_eos;
    int eos_ids[SPQ_MAX_EOS];
    /* how a KV cache for this model stores keys and values: 0 as fp32; 2..8
     * as integer codes with a scale and zero point per (token, head). Set by
     * the packed loader from its KV quantizer (io/packed.h); read by
     * spq_state_build. */
    int kv_cache_bits;
} spq_config;

typedef struct {
    float *attn_norm;  /* (dim) */
    float *wq;         /* (n_heads*head_dim, dim) */
    float *wk;         /* (n_kv_heads*head_dim, dim) */
    float *wv;         /* (n_kv_heads*head_dim, dim) */
    float *wo;         /* (dim, n_heads*head_dim) */
    float *ffn_norm;   /* (dim) */
    float *w_gate;     /* (hidden_dim, dim) */
    float *w_up;       /* (hidden_dim, dim) */
    float *w_down;     /* (dim, hidden_dim) */
} spq_layer;

/* Quantization settings of a model. Weights are fake-quantized once (their
 * dequantized values replace the fp32 ones); the forward pass applies the
 * activation quantizers on the fly. 16 bits: off. */
typedef struct {
    spq_wq_cfg w;   /* every linear but lm_head */
    spq_aq_cfg a;   /* inputs of q/k/v, gate/up, down per token; o_proj's per (token, head) */
    spq_aq_cfg kv;  /* K (after R3) and V, per (token, head); groupsize is set to head_dim */
} spq_qcfg;

/* Everything off. */
spq_qcfg spq_qcfg_off(void);
/* The configurations the forward pass uses for K/V and the o_proj input
 * (per head groups) of a model with this head_dim. */
spq_aq_cfg spq_qcfg_kv(const spq_qcfg *q, int head_dim);
spq_aq_cfg spq_qcfg_o(const spq_qcfg *q, int head_dim);

typedef struct {
    spq_config cfg;
    spq_qcfg q;          /* activation quantizers applied by the forward pass */
    spq_rot_online *r3;  /* owned; on q and k per head after RoPE, or NULL */
    spq_rot_online *r4;  /* owned; on the down_proj input, or NULL */
    float *tok_emb;     /* (vocab_size, dim) */
    spq_layer *layers;  /* (n_layers) */
    float *final_norm;  /* (dim) */
    float *lm_head;     /* (vocab_size, dim); == tok_emb while tied */
    /* owned; when set, the model is packed (packed_weights.h): the linears run as
     * integer kernels, their fp32 weights (and tok_emb/lm_head when stored
     * in 16 bits) are NULL */
    struct spq_packed *packed;
    /* owned; when set, the weights are still in their mapped file
     * (mapped.h): the linears' fp32 pointers are NULL, and so are
     * tok_emb/lm_head when they stay mapped in 16 bits */
    struct spq_mapped *mapped;
    char *path;         /* where it was loaded from */
    char *format;       /* "llama2c" or "hf" */
} spq_model;

/* Checks a config for values the model core cannot run (non-positive sizes,
 * heads that do not divide, ...). `src` names the file for the message. */
int spq_config_check(const spq_config *c, const char *src, spq_err *err);

/* 1 when id ends a sequence (eos_id or any of eos_ids). */
int spq_config_is_eos(const spq_config *c, int id);

/* Allocates zeroed weights for c (tied: lm_head aliases tok_emb). */
void spq_model_alloc(spq_model *m, const spq_config *c);
/* Only the norm weights (zeroed): the linears, embedding and classifier
 * stay NULL, for a loader that keeps them elsewhere (mapped.h). */
void spq_model_alloc_norms(spq_model *m, const spq_config *c);
void spq_model_free(spq_model *m);

/* Gives a tied classifier its own copy of the embedding (a mapped model's
 * embedding and classifier are converted to fp32 first; its layers stay
 * mapped). */
void spq_model_untie(spq_model *m);

/* A deep copy (untied if the source is untied); a mapped source's weights
 * are converted to fp32 in the copy. */
void spq_model_copy(spq_model *dst, const spq_model *src);

/* Seeded random weights of a given shape (for benchmarks and tests at sizes
 * we have no real model for): linears uniform with standard deviation 0.02,
 * norms near 1. */
void spq_model_init_random(spq_model *m, const spq_config *c, uint64_t seed);

/* The values spq_model_init_random draws: its tensors in the order
 * embedding; per layer attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up,
 * w_down; final_norm; lm_head unless tied, from one stream seeded with the
 * seed. A tensor filled in pieces, in order, gets the same values, so a
 * writer can produce the model a piece at a time (io/hf.h's
 * spq_hf_write_random). norm: a norm weight (near 1), else a linear's. */
void spq_random_weights(float *x, size_t n, int norm, spq_rng *r);

/* The LLaMA-3.2-1B shape with n_layers layers. */
spq_config spq_config_llama32_1b(int n_layers);
/* A real model's shape by name (spq_config_shape_names: "llama3.2-1b",
 * "llama2-7b", "llama3-8b") with n_layers layers (0: the model's own).
 * -1 for an unknown name. */
int spq_config_shape(spq_config *c, const char *name, int n_layers);
const char *spq_config_shape_names(void);

/* Number of parameters (counting a tied classifier once). */
size_t spq_model_nparams(const spq_model *m);

#endif
