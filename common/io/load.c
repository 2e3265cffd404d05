/* load.c - see load.h. */
#include "load.h"

#include <stdlib.h>
#include <string.h>

#include "hf.h"
#include "llama2c.h"
#include "packed.h"

int spq_model_load(spq_model *m, const char *path, spq_err *err) {
    memset(m, 0, sizeof *m);
    if (spq_is_dir(path)) return spq_model_load_hf(m, path, err);
    if (spq_packed_is_file(path)) return spq_packed_load(m, path, err);
    if (spq_file_exists(path)) return spq_model_load_llama2c(m, path, err);
    return spq_fail(err, "%s: no such model (expected a Hugging Face directory, a llama2.c .bin or a packed model)",
                    path);
}

int spq_tok_load_for_model(spq_tokenizer **t, const char *model_path, spq_err *err) {
    *t = NULL;
    if (spq_is_dir(model_path)) return spq_tok_load(t, model_path, err);
    if (spq_packed_is_file(model_path)) return spq_packed_tokenizer(t, model_path, err);
    /* a llama2.c checkpoint: its tokenizer.bin (or tok*.bin) beside it */
    char *bin = NULL, *cfg = NULL;
    if (spq_tok_files_for_model(&bin, &cfg, model_path, err)) return -1;
    int rc = spq_tok_load(t, bin, err);
    free(bin);
    free(cfg);
    return rc;
}
