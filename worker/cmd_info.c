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

#include "common/hf.h"
#include "common/model.h"
#include "common/tokenizer.h"
#include "worker/commands.h"

static json_t *config_json(const spq_config *c) {
    json_t *j = json_object();
    json_object_set_new(j, "hidden_size", json_integer(c->dim));
    json_object_set_new(j, "intermediate_size", json_integer(c->hidden_dim));
    json_object_set_new(j, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(j, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(j, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(j, "head_dim", json_integer(c->head_dim));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "max_position_embeddings", json_integer(c->seq_len));
    json_object_set_new(j, "rms_norm_eps", json_real(c->norm_eps));
    json_object_set_new(j, "rope_theta", json_real(c->rope_theta));
    if (c->rope_llama3)
        json_object_set_new(j, "rope_scaling",
                            json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor",
                                      (double)c->rope_factor, "low_freq_factor", (double)c->rope_low_freq_factor,
                                      "high_freq_factor", (double)c->rope_high_freq_factor,
                                      "original_max_position_embeddings", c->rope_orig_ctx));
    else
        json_object_set_new(j, "rope_scaling", json_null());
    json_object_set_new(j, "tie_word_embeddings", json_boolean(c->tied));
    json_object_set_new(j, "bos_token_id", c->bos_id >= 0 ? json_integer(c->bos_id) : json_null());
    json_object_set_new(j, "eos_token_id", c->eos_id >= 0 ? json_integer(c->eos_id) : json_null());
    if (c->n_eos > 1) {  /* every id that ends generation */
        json_t *eos = json_array();
        for (int i = 0; i < c->n_eos; i++) json_array_append_new(eos, json_integer(c->eos_ids[i]));
        json_object_set_new(j, "eos_token_ids", eos);
    }
    return j;
}

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

int spq_cmd_info(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: spinq info MODEL\n");
        return 2;
    }
    spq_model m;
    spq_err err;
    double t0 = spq_now();
    if (spq_model_load(&m, argv[1], &err)) {
        fprintf(stderr, "spinq info: %s\n", err.msg);
        return 1;
    }
    double load_s = spq_now() - t0;
    json_t *out = json_object(), *warnings = json_array();
    json_object_set_new(out, "path", json_string(m.path));
    json_object_set_new(out, "format", json_string(m.format));
    json_object_update_new(out, config_json(&m.cfg));
    json_object_set_new(out, "parameters", json_integer((json_int_t)spq_model_nparams(&m)));
    json_object_set_new(out, "load_seconds", json_real(load_s));
    if (spq_is_dir(argv[1])) json_object_set_new(out, "weights", weights_json(argv[1], warnings));

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
