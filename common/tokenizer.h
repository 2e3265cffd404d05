/* tokenizer.h - text <-> token ids for LLaMA-family models.
 *
 * Two algorithms behind one interface:
 *  - SentencePiece-style BPE with byte fallback (LLaMA 1/2, llama2.c's
 *    tokenizer.bin, and tokenizer.json files whose model is BPE with
 *    byte_fallback and a "▁" normalizer);
 *  - byte-level BPE with a regex pre-tokenizer (LLaMA 3 tokenizer.json; PCRE2
 *    for the Unicode classes).
 * Special tokens (added_tokens) are matched in the text before BPE. Whether
 * BOS/EOS are added follows tokenizer_config.json (add_bos_token /
 * add_eos_token) or the post-processor of tokenizer.json; llama2.c
 * tokenizers add BOS. */
#ifndef SPQ_TOKENIZER_H
#define SPQ_TOKENIZER_H

#include <stddef.h>

#include "util.h"

typedef struct spq_tokenizer spq_tokenizer;

/* Loads the tokenizer that belongs to a model path: for a directory its
 * tokenizer.json (+ tokenizer_config.json), for a llama2.c checkpoint the
 * tokenizer.bin (or tok*.bin) in the same folder, for a packed model
 * (packed.h) the tokenizer files embedded in it, for a GGUF file its
 * tokenizer.ggml.* keys (gguf_model.h). */
int spq_tok_load_for_model(spq_tokenizer **t, const char *model_path, spq_err *err);
/* Loads an explicit file: a tokenizer.json, a llama2.c tokenizer.bin or a
 * GGUF file. */
int spq_tok_load(spq_tokenizer **t, const char *path, spq_err *err);
/* The files spq_tok_load_for_model reads for a Hugging Face directory or a
 * llama2.c checkpoint: *tok_path (tokenizer.json or tokenizer.bin) and
 * *cfg_path (the tokenizer_config.json beside a tokenizer.json, or NULL);
 * both malloc'd. */
int spq_tok_files_for_model(char **tok_path, char **cfg_path, const char *model_path, spq_err *err);
/* Loads a tokenizer from the contents of those files (a tokenizer.json when
 * data starts with '{', else a tokenizer.bin; cfg may be NULL). name and
 * cfg_name stand for the files in messages. */
int spq_tok_load_mem(spq_tokenizer **t, const char *name, const char *data, size_t len, const char *cfg_name,
                     const char *cfg, size_t cfg_len, spq_err *err);
void spq_tok_free(spq_tokenizer *t);

int spq_tok_vocab_size(const spq_tokenizer *t);
int spq_tok_bos(const spq_tokenizer *t); /* -1 if none */
int spq_tok_eos(const spq_tokenizer *t); /* -1 if none */

/* Encodes text[0..len) (must be valid UTF-8, else an error naming the byte
 * offset; NUL bytes are ordinary characters) into a malloc'd
 * array. add_special: 1 adds BOS/EOS as the tokenizer's config says (what
 * HF's encode() does by default), 0 adds none. */
int spq_tok_encode(const spq_tokenizer *t, const char *text, size_t len, int add_special, int **ids,
                   int *n_ids, spq_err *err);

/* Decodes ids into a malloc'd NUL-terminated string (bytes; special tokens
 * such as BOS are skipped when skip_special is 1). Decoding the encoding of
 * a text gives the text back. */
char *spq_tok_decode(const spq_tokenizer *t, const int *ids, int n_ids, int skip_special);
/* The same, with the byte length in *len (the text may hold NUL bytes). */
char *spq_tok_decode_len(const spq_tokenizer *t, const int *ids, int n_ids, int skip_special, size_t *len);

/* The text of one token as it would be printed after `prev` (streaming
 * generation): writes up to cap-1 bytes and returns the byte count. Handles
 * SentencePiece's leading-space rule and byte-fallback tokens <0xNN>. Bytes
 * of a multi-byte character may arrive over several calls. */
size_t spq_tok_piece(const spq_tokenizer *t, int prev, int id, char *buf, size_t cap);

#endif
