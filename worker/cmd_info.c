/* cmd_info.c - `spinq info MODEL`: the model's shape as JSON. */
#include <stdio.h>

#include "common/model.h"
#include "common/tokenizer.h"
#include "worker/commands.h"

int spq_cmd_info(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: spinq info MODEL\n");
        return 2;
    }
    spq_model m;
    spq_err err;
    if (spq_model_load(&m, argv[1], &err)) {
        fprintf(stderr, "spinq info: %s\n", err.msg);
        return 1;
    }
    const spq_config *c = &m.cfg;
    printf("{\n  \"path\": \"%s\",\n  \"format\": \"%s\",\n", m.path, m.format);
    printf("  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n  \"num_hidden_layers\": %d,\n", c->dim,
           c->hidden_dim, c->n_layers);
    printf("  \"num_attention_heads\": %d,\n  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n", c->n_heads,
           c->n_kv_heads, c->head_dim);
    printf("  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": %g,\n", c->vocab_size,
           c->seq_len, c->norm_eps);
    printf("  \"rope_theta\": %g,\n  \"rope_scaling\": %s,\n  \"tie_word_embeddings\": %s,\n", c->rope_theta,
           c->rope_llama3 ? "\"llama3\"" : "null", c->tied ? "true" : "false");
    printf("  \"bos_token_id\": %d,\n  \"eos_token_id\": %d,\n  \"parameters\": %zu", c->bos_id, c->eos_id,
           spq_model_nparams(&m));
    spq_tokenizer *t;
    if (spq_tok_load_for_model(&t, argv[1], &err) == 0) {
        printf(",\n  \"tokenizer_vocab_size\": %d", spq_tok_vocab_size(t));
        spq_tok_free(t);
    } else {
        printf(",\n  \"tokenizer_error\": \"(see stderr)\"");
        fprintf(stderr, "spinq info: tokenizer: %s\n", err.msg);
    }
    printf("\n}\n");
    spq_model_free(&m);
    return 0;
}
