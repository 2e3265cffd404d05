/* cmd_make_model.c - `spinq make-model SHAPE --out DIR`: a Hugging Face
 * directory of a real model's shape (llama3.2-1b, llama2-7b, llama3-8b)
 * with seeded random weights, for tests and benchmarks at sizes we have no
 * real model for. The weights are spq_model_init_random's, written a piece
 * of a tensor at a time (io/hf.h's spq_hf_write_random), so an 8B model
 * is made in a few tens of MiB. The tokenizer is copied from --tokenizer
 * (LLaMA 3's or LLaMA 2's tokenizer.json); without it the directory has
 * none and only commands that need no text run on it. */
#include <stdio.h>
#include <string.h>

#include "common/io/hf.h"
#include "common/tok/tokenizer.h"
#include "worker/args.h"
#include "worker/commands.h"

static int usage(void) {
    fprintf(stderr, "usage: spinq make-model SHAPE --out DIR [--dtype bf16|f16|f32] [--layers L] [--shards N] [--seed S]\n"
                    "         [--tokenizer tokenizer.json]\n"
                    "  SHAPE: %s; --shards 0 (default): shards of at most 5 GB as transformers writes them\n",
            spq_config_shape_names());
    return 2;
}

/* the tokenizer's ids must be rows of the embedding */
static int check_tokenizer(const char *path, const spq_config *c, spq_err *err) {
    spq_tokenizer *t;
    if (spq_tok_load(&t, path, err)) return -1;
    int n = spq_tok_vocab_size(t);
    spq_tok_free(t);
    if (n > c->vocab_size)
        return spq_fail(err, "%s: %d tokens, more than the shape's vocabulary of %d", path, n, c->vocab_size);
    return 0;
}

int cli_cmd_make_model(int argc, char **argv) {
    const char *shape = NULL, *out = NULL, *dt = "bf16", *tok = NULL;
    int layers = 0, shards = 0;
    uint64_t seed = 1234;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (!strcmp(a, "--out")) bad = cli_arg_str(&out, argc, argv, &i, "make-model");
        else if (!strcmp(a, "--dtype")) bad = cli_arg_str(&dt, argc, argv, &i, "make-model");
        else if (!strcmp(a, "--layers")) bad = cli_arg_int(&layers, argc, argv, &i, "make-model", 1, 1024);
        else if (!strcmp(a, "--shards")) bad = cli_arg_int(&shards, argc, argv, &i, "make-model", 0, 9999);
        else if (!strcmp(a, "--seed")) bad = cli_arg_u64(&seed, argc, argv, &i, "make-model");
        else if (!strcmp(a, "--tokenizer")) bad = cli_arg_str(&tok, argc, argv, &i, "make-model");
        else if (cli_arg_positional(&shape, a, "make-model")) return usage();
        if (bad) return 2;
    }
    if (!shape || !out) return usage();
    spq_config c;
    if (spq_config_shape(&c, shape, layers)) {
        fprintf(stderr, "spinq make-model: unknown shape '%s' (expected %s)\n", shape, spq_config_shape_names());
        return 2;
    }
    spq_st_dtype dtype;
    if (!strcmp(dt, "bf16")) dtype = SPQ_ST_BF16;
    else if (!strcmp(dt, "f16")) dtype = SPQ_ST_F16;
    else if (!strcmp(dt, "f32")) dtype = SPQ_ST_F32;
    else {
        fprintf(stderr, "spinq make-model: --dtype: expected bf16, f16 or f32, got '%s'\n", dt);
        return 2;
    }
    spq_err err;
    double t0 = spq_now();
    if ((tok && check_tokenizer(tok, &c, &err)) || spq_hf_write_random(out, &c, dtype, shards, seed, &err) ||
        (tok && spq_hf_add_tokenizer(out, tok, &err))) {
        fprintf(stderr, "spinq make-model: %s\n", err.msg);
        return 1;
    }
    spq_hf_weights_info info;
    if (spq_hf_inspect(&info, out, &err)) {
        fprintf(stderr, "spinq make-model: %s\n", err.msg);
        return 1;
    }
    printf("{\"out\": \"%s\", \"shape\": \"%s\", \"layers\": %d, \"dtype\": \"%s\", \"shards\": %d, \"bytes\": %zu, "
           "\"tokenizer\": %s, \"seed\": %llu, \"seconds\": %.1f}\n",
           out, shape, c.n_layers, spq_st_dtype_name(dtype), info.n_files, info.bytes, tok ? "true" : "false",
           (unsigned long long)seed, spq_now() - t0);
    return 0;
}
