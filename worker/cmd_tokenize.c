/* cmd_tokenize.c - `spinq tokenize`: text to token ids and back, one text per
 * input line, for checking the tokenizers against a reference and for
 * looking at what a model sees.
 *
 *   spinq tokenize (--tokenizer PATH | --model PATH) [--no-special]
 *                  [--lines FILE | --jsonl FILE | --file FILE | --text TEXT]
 *                  [--decode [--keep-special]]
 *
 * Input: --lines (each line is a text, without its newline), --jsonl (each
 * line is a JSON string, so texts can hold newlines and anything else),
 * --file (the whole file is one text), --text, or lines on stdin.
 * Output: one JSON array of ids per text. With --decode each input line is a
 * JSON array of ids and each output line the JSON string they decode to
 * (special tokens skipped unless --keep-special). Timing goes to stderr. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/io/load.h"
#include "common/tok/tokenizer.h"
#include "worker/args.h"
#include "worker/commands.h"

static int usage(void) {
    fprintf(stderr,
            "usage: spinq tokenize (--tokenizer PATH | --model PATH) [--no-special]\n"
            "                      [--lines FILE | --jsonl FILE | --file FILE | --text TEXT]\n"
            "                      [--decode [--keep-special]]\n");
    return 2;
}

typedef struct {
    const spq_tokenizer *tok;
    int add_special, decode, skip_special;
    long n_texts, n_tokens;
    double seconds;
} run;

static void print_ids(const int *ids, int n) {
    putchar('[');
    for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
    fputs("]\n", stdout);
}

/* Encodes one text and prints its ids; where names the text in errors. */
static int encode_one(run *r, const char *text, size_t len, const char *where) {
    spq_err err;
    int *ids, n;
    double t0 = spq_now();
    if (spq_tok_encode(r->tok, text, len, r->add_special, &ids, &n, &err)) {
        fprintf(stderr, "spinq tokenize: %s: %s\n", where, err.msg);
        return -1;
    }
    r->seconds += spq_now() - t0;
    r->n_texts++;
    r->n_tokens += n;
    print_ids(ids, n);
    free(ids);
    return 0;
}

/* Decodes one JSON array of ids and prints the text as a JSON string. */
static int decode_one(run *r, const char *line, size_t len, const char *where) {
    json_error_t je;
    json_t *a = json_loadb(line, len, JSON_DECODE_ANY, &je);
    if (!json_is_array(a)) {
        fprintf(stderr, "spinq tokenize: %s: expected a JSON array of token ids\n", where);
        json_decref(a);
        return -1;
    }
    int n = (int)json_array_size(a), V = spq_tok_vocab_size(r->tok);
    int *ids = spq_malloc((n ? n : 1) * sizeof *ids);
    for (int i = 0; i < n; i++) {
        json_t *x = json_array_get(a, i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= V) {
            fprintf(stderr, "spinq tokenize: %s: item %d is not a token id in 0..%d\n", where, i, V - 1);
            free(ids);
            json_decref(a);
            return -1;
        }
        ids[i] = (int)json_integer_value(x);
    }
    json_decref(a);
    size_t len_text;
    char *text = spq_tok_decode_len(r->tok, ids, n, r->skip_special, &len_text);
    json_t *s = json_stringn(text, len_text);
    char *out = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    if (out) puts(out);
    int rc = out ? 0 : -1;
    if (!out) fprintf(stderr, "spinq tokenize: %s: the decoded text cannot be written as JSON\n", where);
    free(out);
    json_decref(s);
    free(text);
    free(ids);
    r->n_texts++;
    return rc;
}

/* One input line: a text (jsonl = 0), a JSON string (jsonl = 1), or ids. */
static int handle_line(run *r, char *line, size_t len, int jsonl, const char *where) {
    if (r->decode) return decode_one(r, line, len, where);
    if (!jsonl) return encode_one(r, line, len, where);
    json_error_t je;
    json_t *s = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!json_is_string(s)) {
        fprintf(stderr, "spinq tokenize: %s: expected a JSON string%s%s\n", where, s ? "" : ": ", s ? "" : je.text);
        json_decref(s);
        return -1;
    }
    int rc = encode_one(r, json_string_value(s), json_string_length(s), where);
    json_decref(s);
    return rc;
}

static int handle_stream(run *r, FILE *f, const char *name, int jsonl) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (n > 0 && line[n - 1] == '\n') line[--n] = 0;
        char where[512];
        snprintf(where, sizeof where, "%s:%ld", name, lineno);
        rc = handle_line(r, line, (size_t)n, jsonl, where);
    }
    free(line);
    return rc;
}

int cli_cmd_tokenize(int argc, char **argv) {
    const char *tok_path = NULL, *model_path = NULL, *lines = NULL, *jsonl = NULL, *file = NULL, *text = NULL;
    run r = {.add_special = 1, .skip_special = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0;
        if (!strcmp(a, "--tokenizer")) bad = cli_arg_str(&tok_path, argc, argv, &i, "tokenize");
        else if (!strcmp(a, "--model")) bad = cli_arg_str(&model_path, argc, argv, &i, "tokenize");
        else if (!strcmp(a, "--lines")) bad = cli_arg_str(&lines, argc, argv, &i, "tokenize");
        else if (!strcmp(a, "--jsonl")) bad = cli_arg_str(&jsonl, argc, argv, &i, "tokenize");
        else if (!strcmp(a, "--file")) bad = cli_arg_str(&file, argc, argv, &i, "tokenize");
        else if (!strcmp(a, "--text")) bad = cli_arg_str(&text, argc, argv, &i, "tokenize");
        else if (!strcmp(a, "--no-special")) r.add_special = 0;
        else if (!strcmp(a, "--decode")) r.decode = 1;
        else if (!strcmp(a, "--keep-special")) r.skip_special = 0;
        else {
            fprintf(stderr, "spinq tokenize: unknown argument %s\n", a);
            return usage();
        }
        if (bad) return 2;
    }
    if (!tok_path == !model_path) {
        fprintf(stderr, "spinq tokenize: give one of --tokenizer and --model\n");
        return usage();
    }
    if (!!lines + !!jsonl + !!file + !!text > 1) {
        fprintf(stderr, "spinq tokenize: give at most one of --lines, --jsonl, --file, --text\n");
        return usage();
    }
    if (r.decode && (file || text)) {
        fprintf(stderr, "spinq tokenize: --decode reads JSON arrays of ids per line (--lines, --jsonl or stdin)\n");
        return usage();
    }
    spq_err err;
    spq_tokenizer *tok;
    double t0 = spq_now();
    if (tok_path ? spq_tok_load_file(&tok, tok_path, &err) : spq_tok_load_for_model(&tok, model_path, &err)) {
        fprintf(stderr, "spinq tokenize: %s\n", err.msg);
        return 1;
    }
    double t_load = spq_now() - t0;
    r.tok = tok;
    int rc = 0;
    if (text) {
        rc = encode_one(&r, text, strlen(text), "--text");
    } else if (file) {
        char *buf;
        size_t len;
        if (spq_read_file(&buf, &len, file, &err)) {
            fprintf(stderr, "spinq tokenize: %s\n", err.msg);
            rc = -1;
        } else {
            rc = encode_one(&r, buf, len, file);
            free(buf);
        }
    } else {
        const char *name = lines ? lines : jsonl ? jsonl : "stdin";
        FILE *f = lines || jsonl ? fopen(name, "rb") : stdin;
        if (!f) {
            fprintf(stderr, "spinq tokenize: %s: cannot open\n", name);
            rc = -1;
        } else {
            rc = handle_stream(&r, f, name, jsonl != NULL);
            if (f != stdin) fclose(f);
        }
    }
    fflush(stdout);
    if (!r.decode && r.n_texts > 0)
        fprintf(stderr, "spinq tokenize: load %.3f s, %ld texts, %ld tokens in %.3f s (%.0f tokens/s)\n", t_load,
                r.n_texts, r.n_tokens, r.seconds, r.seconds > 0 ? r.n_tokens / r.seconds : 0.0);
    spq_tok_free(tok);
    return rc ? 1 : 0;
}
