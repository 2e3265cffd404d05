/* load.h - a model, and its tokenizer, from a path whatever the format:
 * picks the loader (hf.h, llama2c.h, packed.h) by what the path is. */
#ifndef SPQ_LOAD_H
#define SPQ_LOAD_H

#include "common/model/model.h"
#include "common/tok/tokenizer.h"

/* Loads a model: a directory (Hugging Face), a packed model file (packed.h,
 * any safetensors file) or a llama2.c `.bin`. */
int spq_model_load(spq_model *m, const char *path, spq_err *err);

/* Loads the tokenizer that belongs to a model path: for a directory its
 * tokenizer.json (+ tokenizer_config.json), for a llama2.c checkpoint the
 * tokenizer.bin (or tok*.bin) in the same folder, for a packed model
 * (packed.h) the tokenizer files embedded in it. */
int spq_tok_load_for_model(spq_tokenizer **t, const char *model_path, spq_err *err);

#endif
