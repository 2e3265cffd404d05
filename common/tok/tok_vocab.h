/* tok_vocab.h - a tokenizer in the form GGUF's tokenizer.ggml.* keys (and
 * llama.cpp) describe it, to and from spinq's tokenizer:
 *
 *  - model "llama": SentencePiece BPE with byte fallback. tokens are the
 *    pieces ("▁" for a space, <0xNN> byte tokens), scores rank the merges
 *    (the pair whose merged piece has the highest score merges first).
 *    From a llama2.c tokenizer.bin the scores are its own; from a
 *    tokenizer.json, whose merges list is ranked, the merged piece of the
 *    merge of rank r gets score -(r + 1) (the first merge that makes it),
 *    which gives the same encodings.
 *  - model "gpt2": byte-level BPE. tokens are spelled with GPT-2's
 *    byte-to-unicode characters, merges are "left right" in that spelling
 *    (rank order), and pre names the pre-tokenizer regex the way llama.cpp
 *    does: "llama-bpe" (LLaMA 3's Split regex; merges are skipped for a word
 *    that is itself a token) or "gpt-2" (ByteLevel's own regex).
 * token_type is llama.cpp's: 1 normal, 2 unknown, 3 control (special added
 * tokens), 4 user-defined (other added tokens), 5 unused (ids without a
 * token), 6 byte (<0xNN>). A tokenizer whose pipeline has no such
 * description (another regex, normalizer or model) is refused by name. */
#ifndef SPQ_TOK_VOCAB_H
#define SPQ_TOK_VOCAB_H

#include <stdint.h>

#include "tokenizer.h"

enum { SPQ_TT_NORMAL = 1, SPQ_TT_UNKNOWN = 2, SPQ_TT_CONTROL = 3, SPQ_TT_USER = 4, SPQ_TT_UNUSED = 5,
       SPQ_TT_BYTE = 6 };

typedef struct {
    char model[16];   /* "llama" or "gpt2" */
    char pre[32];     /* gpt2: "llama-bpe" or "gpt-2"; llama: empty */
    int n;            /* tokens */
    char **tokens;    /* (n) texts as GGUF spells them */
    int *lens;        /* (n) their byte lengths */
    float *scores;    /* (n) llama; NULL for gpt2 */
    int32_t *types;   /* (n) */
    int n_merges;
    char **merges;    /* gpt2: (n_merges) "left right" */
    int bos, eos, unk;  /* -1 when none */
    int add_bos, add_eos;
} spq_tok_vocab;

/* The GGUF description of t (*v allocated here). */
int spq_tok_to_vocab(spq_tok_vocab *v, const spq_tokenizer *t, spq_err *err);
/* A tokenizer from a description; name stands for its source in messages.
 * v's arrays are only read. */
int spq_tok_from_vocab(spq_tokenizer **t, const spq_tok_vocab *v, const char *name, spq_err *err);
void spq_tok_vocab_free(spq_tok_vocab *v);

#endif
