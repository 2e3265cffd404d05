/* hf.h - Hugging Face LLaMA directories: loading, saving, the config.json
 * schema, the tokenizer files beside the weights. */
#ifndef SPQ_HF_H
#define SPQ_HF_H

#include <jansson.h>

#include "common/base/safetensors.h"
#include "common/model/model.h"

/* Loads a directory: config.json and model.safetensors (or its shards). */
int spq_model_load_hf(spq_model *m, const char *dir, spq_err *err);
/* The same with the weights left in the mapped files in their dtype
 * (model/mapped.h): the linears, and a 16-bit embedding and classifier. */
int spq_model_load_hf_mapped(spq_model *m, const char *dir, spq_err *err);

/* Writes a Hugging Face directory (created if needed): config.json and
 * model.safetensors with weights stored as dtype (F32, F16 or BF16, rounded
 * to nearest even). A tied classifier is saved tied. Tokenizer files are not
 * written. */
int spq_model_save_hf(const spq_model *m, const char *dir, spq_st_dtype dtype, spq_err *err);

/* config.json (LlamaForCausalLM keys) <-> spq_config: the one schema for a
 * model's shape, also inside packed models. parse: every key typed and
 * checked, the message names the key; json: a new object (no torch_dtype). */
int spq_hf_config_parse(spq_config *c, const json_t *j, const char *src, spq_err *err);
json_t *spq_hf_config_json(const spq_config *c);

/* Copies the tokenizer files of the model at src (a Hugging Face directory:
 * tokenizer.json, tokenizer_config.json and generation_config.json when
 * present; a llama2.c checkpoint: its tokenizer.bin) into dir, each written
 * atomically. */
int spq_hf_copy_tokenizer(const char *src, const char *dir, spq_err *err);

/* Writes a Hugging Face directory of c's shape with seeded random weights
 * (exactly spq_model_init_random's values, rounded to dtype: F32, F16 or
 * BF16), one piece of a tensor at a time, so memory stays a few tens of MiB
 * whatever the size: config.json, and model.safetensors (n_shards 1) or
 * model-0000i-of-0000n.safetensors with model.safetensors.index.json.
 * n_shards 0: as many as shards of at most SPQ_HF_SHARD_BYTES take
 * (transformers' default max_shard_size, 5 GB). No tokenizer. */
#define SPQ_HF_SHARD_BYTES 5000000000ull
int spq_hf_write_random(const char *dir, const spq_config *c, spq_st_dtype dtype, int n_shards, uint64_t seed,
                        spq_err *err);

/* Copies a tokenizer.json file into dir, with the tokenizer_config.json
 * beside it when there is one. */
int spq_hf_add_tokenizer(const char *dir, const char *tokenizer_json, spq_err *err);

/* What the weight files of a directory hold, for `spinq info`. */
typedef struct {
    int n_files;                       /* 1, or the number of shards */
    int n_tensors;
    size_t bytes;                      /* total size of the files */
    int dtype_count[SPQ_ST_NDTYPES];   /* tensors per dtype */
} spq_hf_weights_info;

/* Opens (and so validates) every weight file of dir and summarizes them. */
int spq_hf_inspect(spq_hf_weights_info *info, const char *dir, spq_err *err);

#endif
