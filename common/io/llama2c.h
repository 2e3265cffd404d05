/* llama2c.h - llama2.c checkpoints (`.bin`, legacy format). */
#ifndef SPQ_LLAMA2C_H
#define SPQ_LLAMA2C_H

#include "common/model/model.h"

int spq_model_load_llama2c(spq_model *m, const char *path, spq_err *err);

#endif
