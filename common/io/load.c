/* load.c - see load.h. */
#include "load.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/json_util.h"
#include "gguf_model.h"
#include "hf.h"
#include "llama2c.h"
#include "packed.h"

int spq_model_load(spq_model *m, const char *path, spq_err *err) {
    memset(m, 0, sizeof *m);
    if (spq_is_dir(path)) return spq_model_load_hf(m, path, err);
    if (spq_gguf_is_file(path)) return spq_model_load_gguf(m, path, err);
    if (spq_packed_is_file(path)) return spq_packed_load(m, path, err);
    if (spq_file_exists(path)) return spq_model_load_llama2c(m, path, err);
    return spq_fail(err, "%s: no such model (expected a Hugging Face directory, a llama2.c .bin, a GGUF file or a "
                         "packed model)",
                    path);
}

int spq_model_load_mapped(spq_model *m, const char *path, spq_err *err) {
    if (spq_is_dir(path)) {
        memset(m, 0, sizeof *m);
        return spq_model_load_hf_mapped(m, path, err);
    }
    return spq_model_load(m, path, err);
}

int spq_tok_load_for_model(spq_tokenizer **t, const char *model_path, spq_err *err) {
    *t = NULL;
    if (spq_is_dir(model_path)) return spq_tok_load(t, model_path, err);
    if (spq_gguf_is_file(model_path)) return spq_gguf_tokenizer(t, model_path, err);
    if (spq_packed_is_file(model_path)) return spq_packed_tokenizer(t, model_path, err);
    /* a llama2.c checkpoint: its tokenizer.bin (or tok*.bin) beside it */
    char *bin = NULL, *cfg = NULL;
    if (spq_tok_files_for_model(&bin, &cfg, model_path, err)) return -1;
    int rc = spq_tok_load(t, bin, err);
    free(bin);
    free(cfg);
    return rc;
}

int spq_tok_load_file(spq_tokenizer **t, const char *path, spq_err *err) {
    if (spq_gguf_is_file(path)) return spq_gguf_tokenizer(t, path, err);
    return spq_tok_load(t, path, err);
}

char *spq_model_chat_template(const char *path) {
    char *tpl = NULL;
    spq_err err;
    if (spq_is_dir(path)) {
        char *cfg = spq_path_join(path, "tokenizer_config.json");
        json_t *j = spq_file_exists(cfg) ? spq_json_load_object(cfg, &err) : NULL;
        json_t *t = json_object_get(j, "chat_template");
        if (json_is_array(t)) { /* [{name, template}]: the one named "default", else the first */
            size_t i;
            json_t *e, *pick = NULL;
            json_array_foreach(t, i, e) {
                const char *name = json_string_value(json_object_get(e, "name"));
                if (!pick || (name && !strcmp(name, "default"))) pick = json_object_get(e, "template");
            }
            t = pick;
        }
        if (json_is_string(t)) tpl = spq_strdup(json_string_value(t));
        json_decref(j);
        free(cfg);
    } else if (spq_gguf_is_file(path)) {
        spq_gguf_file f;
        if (!spq_gguf_open(&f, path, &err)) {
            spq_gguf_get_str(&f, "tokenizer.chat_template", &tpl, 0, &err);
            spq_gguf_close(&f);
        }
    }
    return tpl;
}
