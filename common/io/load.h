/* load.h - a model, and its tokenizer, from a path whatever the format:
 * picks the loader (hf.h, llama2c.h, gguf_model.h, packed.h) by what the path is. */
#ifndef SPQ_LOAD_H
#define SPQ_LOAD_H

#include "common/model/model.h"
#include "common/tok/tokenizer.h"

/* Loads a model: a directory (Hugging Face), a GGUF file (gguf_model.h), a
 * packed model file (packed.h, any safetensors file) or a llama2.c `.bin`. */
int spq_model_load(spq_model *m, const char *path, spq_err *err);

/* The same, but a Hugging Face directory's weights stay in their mapped
 * files (model/mapped.h: converted a layer at a time by the forward pass;
 * spq_model_materialize before anything that needs them all in fp32).
 * Other formats load as spq_model_load loads them. */
int spq_model_load_mapped(spq_model *m, const char *path, spq_err *err);

/* Loads the tokenizer that belongs to a model path: for a directory its
 * tokenizer.json (+ tokenizer_config.json), for a llama2.c checkpoint the
 * tokenizer.bin (or tok*.bin) in the same folder, for a packed model
 * (packed.h) the tokenizer files embedded in it, for a GGUF file its
 * tokenizer.ggml.* keys. */
int spq_tok_load_for_model(spq_tokenizer **t, const char *model_path, spq_err *err);

/* Loads an explicit tokenizer file: what spq_tok_load reads (tokenizer.json,
 * a llama2.c tokenizer.bin), or the vocabulary of a GGUF file. */
int spq_tok_load_file(spq_tokenizer **t, const char *path, spq_err *err);

/* The chat template that belongs to a model path (malloc'd), or NULL when it
 * has none: tokenizer_config.json's "chat_template" string for a Hugging
 * Face directory (a list of named templates: the "default" one),
 * tokenizer.chat_template for a GGUF file. */
char *spq_model_chat_template(const char *path);

#endif
