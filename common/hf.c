/* hf.c - Hugging Face LLaMA directory loader (in progress on its own branch). */
#include "model.h"

int spq_model_load_hf(spq_model *m, const char *dir, spq_err *err) {
    (void)m;
    return spq_fail(err, "%s: Hugging Face directories are not supported yet", dir);
}
