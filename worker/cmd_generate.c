/* cmd_generate.c - `spinq generate MODEL [-p TEXT] [-n N] [-t T] [--top-p P]
 * [--seed S]`: prefill the prompt, then decode with the KV cache, printing
 * each token as it comes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/io/load.h"
#include "common/model/forward.h"
#include "common/model/model.h"
#include "common/model/sampler.h"
#include "common/tok/tokenizer.h"
#include "worker/args.h"
#include "worker/commands.h"

static int usage(void) {
    fprintf(stderr, "usage: spinq generate MODEL [-p TEXT] [-n N] [-t TEMPERATURE] [--top-p P] [--seed S]\n");
    return 2;
}

int cli_cmd_generate(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL;
    int n_gen = 256;
    float temp = 0.0f, top_p = 1.0f;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) bad = cli_arg_str(&prompt, argc, argv, &i, "generate");
        else if (!strcmp(a, "-n")) bad = cli_arg_int(&n_gen, argc, argv, &i, "generate", 0, 1 << 24);
        else if (!strcmp(a, "-t") || !strcmp(a, "--temperature"))
            bad = cli_arg_float(&temp, argc, argv, &i, "generate", 0, 100);
        else if (!strcmp(a, "--top-p")) bad = cli_arg_float(&top_p, argc, argv, &i, "generate", 0, 1);
        else if (!strcmp(a, "--seed")) bad = cli_arg_u64(&seed, argc, argv, &i, "generate");
        else if (cli_arg_positional(&model_path, a, "generate")) return usage();
        if (bad) return 2;
    }
    if (!model_path) return usage();

    spq_err err;
    if (prompt) {
        if (!*prompt) {
            fprintf(stderr, "spinq generate: -p: the prompt is empty (omit -p to start from BOS)\n");
            return 2;
        }
        if (!spq_utf8_valid(prompt, strlen(prompt))) {
            fprintf(stderr, "spinq generate: -p: the prompt is not valid UTF-8\n");
            return 2;
        }
    }
    spq_model m;
    if (spq_model_load(&m, model_path, &err)) {
        fprintf(stderr, "spinq generate: %s\n", err.msg);
        return 1;
    }
    spq_tokenizer *tok;
    if (spq_tok_load_for_model(&tok, model_path, &err)) {
        fprintf(stderr, "spinq generate: %s\n", err.msg);
        spq_model_free(&m);
        return 1;
    }
    int *ids = NULL, n_ids = 0;
    if (prompt) {
        if (spq_tok_encode(tok, prompt, strlen(prompt), 1, &ids, &n_ids, &err)) {
            fprintf(stderr, "spinq generate: -p: %s\n", err.msg);
            spq_tok_free(tok);
            spq_model_free(&m);
            return 2;
        }
    }
    if (n_ids == 0) {  /* start from BOS */
        free(ids);
        ids = spq_malloc(sizeof(int));
        ids[0] = m.cfg.bos_id >= 0 ? m.cfg.bos_id : 0;
        n_ids = 1;
    }
    int ctx = m.cfg.seq_len;
    if (ctx > 8192) ctx = 8192;
    if (n_ids >= ctx) {
        fprintf(stderr, "spinq generate: -p: the prompt has %d tokens, the context is %d\n", n_ids, ctx);
        return 2;
    }
    if (n_ids + n_gen > ctx) n_gen = ctx - n_ids;

    spq_state s;
    spq_state_build(&s, &m.cfg, 1, ctx, n_ids);
    spq_sampler smp;
    spq_sampler_build(&smp, m.cfg.vocab_size, temp, top_p, seed);
    float *logits = spq_malloc((size_t)m.cfg.vocab_size * sizeof(float));

    /* echo the prompt, then stream the continuation */
    char piece[256];
    for (int i = 1; i < n_ids; i++) {
        size_t n = spq_tok_piece(tok, ids[i - 1], ids[i], piece, sizeof piece);
        fwrite(piece, 1, n, stdout);
    }
    int pos0 = 0;
    spq_forward(logits, &s, ids, &pos0, &m, 1, n_ids, SPQ_LOGITS_LAST);
    int prev = ids[n_ids - 1];
    double t0 = spq_now();
    int produced = 0;
    for (int i = 0; i < n_gen; i++) {
        int next = spq_sample(&smp, logits);
        if (spq_config_is_eos(&m.cfg, next) || (next == m.cfg.bos_id && m.cfg.bos_id >= 0)) break;
        size_t n = spq_tok_piece(tok, prev, next, piece, sizeof piece);
        fwrite(piece, 1, n, stdout);
        fflush(stdout);
        produced++;
        int pos = n_ids + i;
        if (i + 1 < n_gen) spq_forward(logits, &s, &next, &pos, &m, 1, 1, SPQ_LOGITS_LAST);
        prev = next;
    }
    printf("\n");
    fflush(stdout);  // the text ends before the stats line on a shared terminal or pipe
    double dt = spq_now() - t0;
    if (produced > 0) fprintf(stderr, "spinq generate: %d tokens, %.1f tokens/s\n", produced, produced / dt);

    free(logits);
    free(ids);
    spq_sampler_free(&smp);
    spq_state_free(&s);
    spq_tok_free(tok);
    spq_model_free(&m);
    return 0;
}
