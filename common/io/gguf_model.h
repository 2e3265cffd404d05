/* gguf_model.h - LLaMA models as GGUF files, the way llama.cpp's "llama"
 * architecture reads them (and its convert_hf_to_gguf.py writes them).
 *
 * Keys: general.architecture "llama", llama.{context_length,
 * embedding_length, block_count, feed_forward_length, attention.head_count,
 * attention.head_count_kv, attention.key_length, attention.value_length,
 * attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count,
 * vocab_size}, general.file_type, the tokenizer (tok_vocab.h) under
 * tokenizer.ggml.* and tokenizer.chat_template.
 *
 * Tensors (ggml shapes are (row length, rows), i.e. a weight (out, in) is
 * ne = [in, out]): token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v,
 * attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output
 * (absent when the classifier is tied to token_embd), and rope_freqs (F32,
 * head_dim/2 frequency divisors) for LLaMA 3's rope scaling. Norms are F32.
 *
 * RoPE: llama.cpp's llama architecture rotates adjacent pairs (2i, 2i+1)
 * of a head, Meta's layout; spinq holds q/k rows in Hugging Face's
 * rotate-half order (i, i + head_dim/2). The writer permutes each head's
 * q/k rows to the interleaved order (as convert_hf_to_gguf.py does), the
 * reader permutes them back (as the llama2.c loader does).
 *
 * Reading dequantizes F16, BF16, Q8_0 and Q4_0 tensors to fp32 at load;
 * other types are refused naming the tensor. The tokenizer comes from the
 * same file (spq_gguf_tokenizer). */
#ifndef SPQ_GGUF_MODEL_H
#define SPQ_GGUF_MODEL_H

#include <jansson.h>

#include "common/base/gguf.h"
#include "common/model/model.h"
#include "common/tok/tokenizer.h"
#include "common/quant/wquant.h"

typedef struct {
    uint32_t lin_type;          /* the block linears: SPQ_GGML_F32, _F16, _Q8_0 or _Q4_0 */
    uint32_t emb_type;          /* token_embd and output: the same choice */
    /* lin_type Q8_0 / Q4_0: the weight quantization the linears went through
     * (cfg.grid is the type's grid; their fp32 weights hold the dequantized
     * values); NULL: round to nearest on the grid here. Linears whose row
     * length is not a multiple of 32 are written as F16. */
    const spq_wquant *wq;
    const spq_tokenizer *tok;   /* required */
    const char *chat_template;  /* or NULL */
    const char *name;           /* general.name, or NULL */
    const char *source_info;    /* or NULL: stored as spinq.info (a JSON text) */
    int vocab_only;             /* 1: the keys (shape, tokenizer) without tensors, like llama.cpp's
                                   vocab-only files; only m->cfg is read */
} spq_gguf_save_opts;

/* The grid of a block type (ggml_quant.h), 0 for the float types. */
int spq_ggml_grid_of(uint32_t type);

int spq_gguf_save_model(const spq_model *m, const spq_gguf_save_opts *o, const char *path, spq_err *err);

/* A model from a GGUF file (m->format "gguf"). */
int spq_model_load_gguf(spq_model *m, const char *path, spq_err *err);
/* The tokenizer stored in a GGUF file. */
int spq_gguf_tokenizer(spq_tokenizer **t, const char *path, spq_err *err);

/* Facts about a GGUF file for `spinq info`: a new JSON object with the
 * version, tensor count and types, file type, tokenizer model and whether
 * there is a chat template, whether the classifier is the embedding (tied);
 * NULL on error. */
json_t *spq_gguf_describe(const char *path, spq_err *err);

#endif
