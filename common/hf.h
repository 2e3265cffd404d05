/* hf.h - Hugging Face LLaMA directories. Loading is spq_model_load_hf()
 * (model.h); this header adds what needs the safetensors types. */
#ifndef SPQ_HF_H
#define SPQ_HF_H

#include "model.h"
#include "safetensors.h"

/* Writes a Hugging Face directory (created if needed): config.json and
 * model.safetensors with weights stored as dtype (F32, F16 or BF16, rounded
 * to nearest even). A tied classifier is saved tied. Tokenizer files are not
 * written. */
int spq_model_save_hf(const spq_model *m, const char *dir, spq_st_dtype dtype, spq_err *err);

#endif
