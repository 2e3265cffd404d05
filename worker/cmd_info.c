/* cmd_info.c - `spinq info MODEL`: loads the model (which validates every
 * file: config, tensor shapes, offsets) and prints what it is as JSON: the
 * configuration, parameter count, load time, for a Hugging Face directory
 * what its weight files hold, and the tokenizer's vocabulary. The JSON is
 * built with jansson so paths and messages are escaped properly. Exit status
 * 1 when the model does not load; a tokenizer that does not load is
 * reported in the JSON (tokenizer_error) and on stderr. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/io/gguf_model.h"
#include "common/io/hf.h"
#include "common/io/load.h"
#include "common/model/model.h"
#include "common/tok/tokenizer.h"
#include "worker/commands.h"


static json_t *weights_json(const char *dir, json_t *warnings) {
    spq_hf_weights_info wi;
    spq_err err;
    if (spq_hf_inspect(&wi, dir, &err)) {
        json_array_append_new(warnings, json_string(err.msg));
        return json_null();
    }
    json_t *dt = json_object();
    for (int t = 0; t < SPQ_ST_NDTYPES; t++)
        if (wi.dtype_count[t]) json_object_set_new(dt, spq_st_dtype_name(t), json_integer(wi.dtype_count[t]));
    return json_pack("{s:i, s:i, s:I, s:o}", "files", wi.n_files, "tensors", wi.n_tensors, "bytes",
                     (json_int_t)wi.bytes, "dtypes", dt);
}

int cli_cmd_info(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: spinq info MODEL\n");
        return 2;
    }
    spq_model m;
    spq_err err;
    double t0 = spq_now();
    /* mapped: every tensor is found and checked, none converted, so an 8B
     * model is described without 32 GB of fp32 weights */
    if (spq_model_load_mapped(&m, argv[1], &err)) {
        fprintf(stderr, "spinq info: %s\n", err.msg);
        return 1;
    }
    double load_s = spq_now() - t0;
    json_t *out = json_object(), *warnings = json_array();
    json_object_set_new(out, "path", json_string(m.path));
    json_object_set_new(out, "format", json_string(m.format));
    json_object_update_new(out, spq_hf_config_json(&m.cfg));
    json_object_set_new(out, "parameters", json_integer((json_int_t)spq_model_nparams(&m)));
    json_object_set_new(out, "load_seconds", json_real(load_s));
    if (spq_is_dir(argv[1])) json_object_set_new(out, "weights", weights_json(argv[1], warnings));
    if (spq_gguf_is_file(argv[1])) {
        json_t *g = spq_gguf_describe(argv[1], &err);
        json_object_set_new(out, "gguf", g ? g : json_null());
    }

    spq_tokenizer *t;
    if (spq_tok_load_for_model(&t, argv[1], &err) == 0) {
        int tv = spq_tok_vocab_size(t);
        json_object_set_new(out, "tokenizer_vocab_size", json_integer(tv));
        /* a tokenizer with more ids than embedding rows would index past the embedding */
        if (tv > m.cfg.vocab_size)
            json_array_append_new(warnings, json_sprintf("tokenizer has %d tokens but the model's vocab_size is %d",
                                                         tv, m.cfg.vocab_size));
        spq_tok_free(t);
    } else {
        json_object_set_new(out, "tokenizer_error", json_string(err.msg));
        fprintf(stderr, "spinq info: tokenizer: %s\n", err.msg);
    }
    json_object_set_new(out, "warnings", warnings);
    char *s = json_dumps(out, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    puts(s ? s : "{}");
    free(s);
    json_decref(out);
    spq_model_free(&m);
    return 0;
}
