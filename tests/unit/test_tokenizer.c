/* test_tokenizer.c - hand-checked cases for the tokenizers (common/tok/tokenizer.h).
 *
 * Expected ids of stories260K's tok512.bin were read off its vocabulary:
 * 1 BOS, 3 + b the byte token <0xb>, 261 "▁a", 403 "▁Once", 407 "▁upon",
 * 410 "▁". The parity with the reference implementation on real LLaMA
 * tokenizers is tests/integration/tokenizer.test.js; here are the rules one
 * can check by hand, the small tokenizer.json files written by the tests
 * themselves, and the error paths. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/io/load.h"
#include "common/tok/tokenizer.h"

static char shared_dir[1024];
static char tmp_dir[64];

static void setup(void) {
    const char *s = getenv("SPINQ_SHARED");
    snprintf(shared_dir, sizeof shared_dir, "%s", s ? s : "../shared");
    strcpy(tmp_dir, "/tmp/spq_tok_XXXXXX");
    cr_assert(mkdtemp(tmp_dir), "mkdtemp");
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(tokenizer, .init = setup, .fini = teardown);

static char *shared_path(const char *rel) {
    char *p = malloc(2048);
    snprintf(p, 2048, "%s/%s", shared_dir, rel);
    return p;
}

static char *tmp_path(const char *name) {
    char *p = malloc(256);
    snprintf(p, 256, "%s/%s", tmp_dir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static spq_tokenizer *load_ok(const char *path) {
    spq_tokenizer *t;
    spq_err err;
    int rc = spq_tok_load(&t, path, &err);
    cr_assert_eq(rc, 0, "loading %s: %s", path, err.msg);
    return t;
}

static spq_tokenizer *stories_bin(void) {
    char *p = shared_path("models/stories260K/tok512.bin");
    spq_tokenizer *t = load_ok(p);
    free(p);
    return t;
}

/* Encodes text and checks the ids against want[0..n). */
static void expect_ids(const spq_tokenizer *t, const char *text, size_t len, int add_special, const int *want, int n) {
    int *ids, n_ids;
    spq_err err;
    cr_assert_eq(spq_tok_encode(t, text, len, add_special, &ids, &n_ids, &err), 0, "encode: %s", err.msg);
    cr_assert_eq(n_ids, n, "'%s': %d ids, want %d", text, n_ids, n);
    for (int i = 0; i < n; i++) cr_assert_eq(ids[i], want[i], "'%s': id %d is %d, want %d", text, i, ids[i], want[i]);
    free(ids);
}

Test(tokenizer, llama2c_bin_basic_ids_and_bos) {
    spq_tokenizer *t = stories_bin();
    cr_assert_eq(spq_tok_vocab_size(t), 512);
    cr_assert_eq(spq_tok_bos(t), 1);
    cr_assert_eq(spq_tok_eos(t), 2);
    expect_ids(t, "a", 1, 1, (int[]){1, 261}, 2);
    expect_ids(t, "a", 1, 0, (int[]){261}, 1);
    expect_ids(t, "Once upon", 9, 1, (int[]){1, 403, 407}, 3);
    /* " " becomes "▁▁" (prefix + the space) and "▁▁" is not a piece */
    expect_ids(t, " ", 1, 0, (int[]){410, 410}, 2);
    spq_tok_free(t);
}

Test(tokenizer, empty_text_is_just_bos_or_nothing) {
    spq_tokenizer *t = stories_bin();
    expect_ids(t, "", 0, 1, (int[]){1}, 1);
    expect_ids(t, "", 0, 0, NULL, 0);
    spq_tok_free(t);
}

Test(tokenizer, byte_fallback_for_characters_outside_the_vocab) {
    spq_tokenizer *t = stories_bin();
    /* "中" = E4 B8 AD is not a piece: "▁" then its three byte tokens */
    expect_ids(t, "\xE4\xB8\xAD", 3, 1, (int[]){1, 410, 3 + 0xE4, 3 + 0xB8, 3 + 0xAD}, 5);
    spq_tok_free(t);
}

Test(tokenizer, decode_of_byte_pieces_forms_multibyte_utf8) {
    spq_tokenizer *t = stories_bin();
    int ids[] = {1, 410, 3 + 0xE4, 3 + 0xB8, 3 + 0xAD};
    char *s = spq_tok_decode(t, ids, 5, 1);
    cr_assert_str_eq(s, "\xE4\xB8\xAD");  /* the leading "▁" of the text is stripped */
    free(s);
    s = spq_tok_decode(t, ids, 5, 0);
    cr_assert_str_eq(s, "<s> \xE4\xB8\xAD");  /* HF keeps the space after a kept <s> */
    free(s);
    /* streaming: one raw byte per call; together the character */
    char buf[16], all[16] = "";
    for (int i = 2; i < 5; i++) {
        size_t n = spq_tok_piece(t, ids[i - 1], ids[i], buf, sizeof buf);
        cr_assert_eq(n, 1);
        strncat(all, buf, n);
    }
    cr_assert_str_eq(all, "\xE4\xB8\xAD");
    /* a lone continuation byte decodes to U+FFFD, as TextDecoder does */
    int bad[] = {3 + 0xB8, 261};
    s = spq_tok_decode(t, bad, 2, 1);
    cr_assert_str_eq(s, "\xEF\xBF\xBD a");
    free(s);
    spq_tok_free(t);
}

Test(tokenizer, piece_strips_the_leading_space_only_after_bos) {
    spq_tokenizer *t = stories_bin();
    char buf[64];
    cr_assert_eq(spq_tok_piece(t, 1, 403, buf, sizeof buf), 4);
    cr_assert_str_eq(buf, "Once");
    cr_assert_eq(spq_tok_piece(t, 403, 407, buf, sizeof buf), 5);
    cr_assert_str_eq(buf, " upon");
    cr_assert_eq(spq_tok_piece(t, 403, 2, buf, sizeof buf), 0);    /* EOS prints nothing */
    cr_assert_eq(spq_tok_piece(t, 403, 9999, buf, sizeof buf), 0); /* nor an unknown id */
    cr_assert_eq(spq_tok_piece(t, 1, 403, buf, 3), 2);             /* truncated to cap - 1 */
    cr_assert_str_eq(buf, "On");
    spq_tok_free(t);
}

Test(tokenizer, invalid_utf8_is_rejected_with_its_offset) {
    spq_tokenizer *t = stories_bin();
    const char *cases[] = {"ab\xC3\x28", "ab\xC0\xAF", "ab\xED\xA0\x80", "ab\xF4\x90\x80\x80", "ab\xE4\xB8"};
    for (int i = 0; i < 5; i++) {
        int *ids = (int *)1, n = 7;
        spq_err err;
        cr_assert_eq(spq_tok_encode(t, cases[i], strlen(cases[i]), 1, &ids, &n, &err), -1, "case %d", i);
        cr_assert(strstr(err.msg, "invalid UTF-8 at byte 2"), "case %d: %s", i, err.msg);
        cr_assert_null(ids);
        cr_assert_eq(n, 0);
    }
    spq_tok_free(t);
}

Test(tokenizer, special_token_strings_match_before_bpe) {
    spq_tokenizer *t = stories_bin();
    /* "<s>" in the text is BOS; the text around it is normalized on its own */
    expect_ids(t, "a<s>a", 5, 0, (int[]){261, 1, 261}, 3);
    spq_tok_free(t);
}

Test(tokenizer, json_and_bin_of_stories260K_agree) {
    char *dir = shared_path("models/stories260K-hf");
    spq_tokenizer *a = stories_bin(), *b = load_ok(dir);
    cr_assert_eq(spq_tok_vocab_size(a), spq_tok_vocab_size(b));
    cr_assert_eq(spq_tok_bos(b), 1);
    cr_assert_eq(spq_tok_eos(b), 2);
    const char *text = "Once upon a time, Lily's  dog\tran \xE4\xB8\xAD!\n\nThe end.";
    int *x, *y, nx, ny;
    spq_err err;
    cr_assert_eq(spq_tok_encode(a, text, strlen(text), 1, &x, &nx, &err), 0);
    cr_assert_eq(spq_tok_encode(b, text, strlen(text), 1, &y, &ny, &err), 0);
    cr_assert_eq(nx, ny);
    cr_assert_arr_eq(x, y, nx * sizeof *x);
    char *s = spq_tok_decode(b, y, ny, 1);
    cr_assert_str_eq(s, text);
    free(s);
    free(x);
    free(y);
    spq_tok_free(a);
    spq_tok_free(b);
    free(dir);
}

Test(tokenizer, load_for_model_finds_the_tokenizer_beside_the_checkpoint) {
    spq_tokenizer *t;
    spq_err err;
    char *bin = shared_path("models/stories260K/stories260K.bin");
    cr_assert_eq(spq_tok_load_for_model(&t, bin, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_tok_vocab_size(t), 512);
    spq_tok_free(t);
    free(bin);

    /* no tokenizer beside the model, then two candidates */
    char *model = tmp_path("model.bin"), *t1 = tmp_path("tok1.bin"), *t2 = tmp_path("tok2.bin");
    write_file(model, "x", 1);
    cr_assert_eq(spq_tok_load_for_model(&t, model, &err), -1);
    cr_assert(strstr(err.msg, tmp_dir) && strstr(err.msg, "no tokenizer.bin"), "%s", err.msg);
    write_file(t1, "x", 1);
    write_file(t2, "x", 1);
    cr_assert_eq(spq_tok_load_for_model(&t, model, &err), -1);
    cr_assert(strstr(err.msg, "2 tok*.bin"), "%s", err.msg);
    /* a directory without tokenizer.json */
    cr_assert_eq(spq_tok_load_for_model(&t, tmp_dir, &err), -1);
    cr_assert(strstr(err.msg, "no tokenizer.json"), "%s", err.msg);
    free(model);
    free(t1);
    free(t2);
}

Test(tokenizer, missing_and_garbled_files_name_the_file) {
    spq_tokenizer *t = (spq_tokenizer *)1;
    spq_err err;
    char *missing = tmp_path("missing.json");
    cr_assert_eq(spq_tok_load(&t, missing, &err), -1);
    cr_assert_null(t);
    cr_assert(strstr(err.msg, missing) && strstr(err.msg, "cannot open"), "%s", err.msg);

    char *json = tmp_path("tokenizer.json");
    write_file(json, "{\"model\": {\"vocab\": {\"a\": 0}, ", 30);
    cr_assert_eq(spq_tok_load(&t, json, &err), -1);
    cr_assert(strstr(err.msg, json) && strstr(err.msg, "invalid JSON"), "%s", err.msg);

    const char *unigram = "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}";
    write_file(json, unigram, strlen(unigram));
    cr_assert_eq(spq_tok_load(&t, json, &err), -1);
    cr_assert(strstr(err.msg, "model.type \"Unigram\" is not supported"), "%s", err.msg);

    const char *bad_norm = "{\"normalizer\": {\"type\": \"NFKC\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
                           "\"merges\": []}}";
    write_file(json, bad_norm, strlen(bad_norm));
    cr_assert_eq(spq_tok_load(&t, json, &err), -1);
    cr_assert(strstr(err.msg, "normalizer: normalizer type \"NFKC\" is not supported"), "%s", err.msg);

    char *bin = tmp_path("tokenizer.bin");
    int32_t neg = -5;
    write_file(bin, &neg, 4);
    cr_assert_eq(spq_tok_load(&t, bin, &err), -1);
    cr_assert(strstr(err.msg, bin) && strstr(err.msg, "max_token_length is -5"), "%s", err.msg);
    free(missing);
    free(json);
    free(bin);
}

Test(tokenizer, truncated_tokenizer_bin_is_an_error_at_the_token) {
    char *src = shared_path("models/stories260K/tok512.bin");
    FILE *f = fopen(src, "rb");
    cr_assert(f);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert_gt(n, 100);
    char *bin = tmp_path("tok.bin");
    spq_tokenizer *t;
    spq_err err;
    /* header + token 0 ("<unk>": 8 + 5 bytes) + half of token 1's header */
    write_file(bin, buf, 4 + 13 + 4);
    cr_assert_eq(spq_tok_load(&t, bin, &err), -1);
    cr_assert(strstr(err.msg, "truncated at token 1"), "%s", err.msg);
    /* cut inside the last token's text */
    write_file(bin, buf, n - 2);
    cr_assert_eq(spq_tok_load(&t, bin, &err), -1);
    cr_assert(strstr(err.msg, "truncated at token 511"), "%s", err.msg);
    /* a length beyond max_token_length */
    int32_t big = 1000;
    memcpy(buf + 4 + 4, &big, 4);
    write_file(bin, buf, n);
    cr_assert_eq(spq_tok_load(&t, bin, &err), -1);
    cr_assert(strstr(err.msg, "token 0 has length 1000"), "%s", err.msg);
    free(bin);
    free(src);
}

/* A byte-level tokenizer small enough to check by hand: bytes a, b, c and
 * space (spelled "Ġ"), merges a+b, ab+c, Ġ+a, Ġa+b, Ġab+c in rank order.
 * The ignore_merges variant takes a word that is a token as it is. */
static const char *BYTELEVEL_JSON =
    "{\"added_tokens\": [{\"id\": 9, \"content\": \"<|end|>\", \"special\": true}],"
    " \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true},"
    " \"post_processor\": {\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"ByteLevel\"},"
    " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"\xC4\xA0\": 3, \"ab\": 4, \"abc\": 5,"
    " \"\xC4\xA0" "a\": 6, \"\xC4\xA0" "ab\": 7, \"\xC4\xA0" "abc\": 8},"
    " \"merges\": [\"a b\", \"ab c\", \"\xC4\xA0 a\", \"\xC4\xA0" "a b\", \"\xC4\xA0" "ab c\"]}}";

Test(tokenizer, bytelevel_words_merge_by_rank_and_decode_to_bytes) {
    char *json = tmp_path("tokenizer.json");
    write_file(json, BYTELEVEL_JSON, strlen(BYTELEVEL_JSON));
    spq_tokenizer *t = load_ok(json);
    cr_assert_eq(spq_tok_vocab_size(t), 10);
    cr_assert_eq(spq_tok_bos(t), -1);
    /* words "abc", " abc", " ab", " c" (the GPT-2 regex keeps the space in
     * front); a+b outranks Ġ+a, and once "ab" exists "Ġ a" no longer applies */
    expect_ids(t, "abc abc ab c", 12, 1, (int[]){5, 3, 5, 3, 4, 3, 2}, 7);
    expect_ids(t, "ab<|end|>ca", 11, 1, (int[]){4, 9, 2, 0}, 4);
    int ids[] = {8, 9, 3, 0};
    char *s = spq_tok_decode(t, ids, 4, 1);
    cr_assert_str_eq(s, " abc a");
    free(s);
    s = spq_tok_decode(t, ids, 4, 0);
    cr_assert_str_eq(s, " abc<|end|> a");
    free(s);
    /* "d" has no token, and there is neither byte fallback nor unk */
    int *out, n;
    spq_err err;
    cr_assert_eq(spq_tok_encode(t, "abd", 3, 1, &out, &n, &err), -1);
    cr_assert(strstr(err.msg, "'d' has no token"), "%s", err.msg);
    spq_tok_free(t);

    char *with_ignore = strdup(BYTELEVEL_JSON), *p = strstr(with_ignore, "\"type\": \"BPE\",");
    size_t cap = strlen(BYTELEVEL_JSON) + 32;
    char *j2 = malloc(cap);
    snprintf(j2, cap, "%.*s\"ignore_merges\": true, %s", (int)(p - with_ignore), with_ignore, p);
    write_file(json, j2, strlen(j2));
    t = load_ok(json);
    expect_ids(t, "abc abc ab c", 12, 1, (int[]){5, 8, 7, 3, 2}, 5);
    spq_tok_free(t);
    free(j2);
    free(with_ignore);
    free(json);
}

Test(tokenizer, equal_ranks_merge_leftmost_first) {
    /* "aaa" with the single merge a+a: the left pair merges, "aa" + "a" */
    const char *j = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"aa\": 1}, \"merges\": [[\"a\", \"a\"]]}}";
    char *json = tmp_path("tokenizer.json");
    write_file(json, j, strlen(j));
    spq_tokenizer *t = load_ok(json);
    expect_ids(t, "aaa", 3, 1, (int[]){1, 0}, 2);
    expect_ids(t, "aaaa", 4, 1, (int[]){1, 1}, 2);
    spq_tok_free(t);
    free(json);
}

Test(tokenizer, lower_rank_wins_over_position) {
    /* "abc": b+c (rank 0) beats a+b (rank 1) though a+b is further left */
    const char *j = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4},"
                    " \"merges\": [\"b c\", \"a b\"]}}";
    char *json = tmp_path("tokenizer.json");
    write_file(json, j, strlen(j));
    spq_tokenizer *t = load_ok(json);
    expect_ids(t, "abc", 3, 0, (int[]){0, 4}, 2);
    expect_ids(t, "abab", 4, 0, (int[]){3, 3}, 2);
    spq_tok_free(t);
    free(json);
}

Test(tokenizer, a_merge_outside_the_vocab_names_the_merge) {
    const char *j = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}";
    char *json = tmp_path("tokenizer.json");
    write_file(json, j, strlen(j));
    spq_tokenizer *t;
    spq_err err;
    cr_assert_eq(spq_tok_load(&t, json, &err), -1);
    cr_assert(strstr(err.msg, "model.merges[0] (\"a\", \"b\"): the merged token is not in model.vocab"), "%s", err.msg);
    free(json);
}

Test(tokenizer, config_add_bos_and_eos_override_the_template) {
    const char *j = "{\"added_tokens\": [{\"id\": 0, \"content\": \"<s>\", \"special\": true},"
                    " {\"id\": 1, \"content\": \"</s>\", \"special\": true}],"
                    " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
                    "\"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
                    " \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [0], \"tokens\": [\"<s>\"]}}},"
                    " \"model\": {\"type\": \"BPE\", \"vocab\": {\"<s>\": 0, \"</s>\": 1, \"x\": 2}, \"merges\": []}}";
    char *json = tmp_path("tokenizer.json");
    write_file(json, j, strlen(j));
    spq_tokenizer *t = load_ok(json);
    expect_ids(t, "x", 1, 1, (int[]){0, 2}, 2);  /* the template: BOS only */
    spq_tok_free(t);
    const char *cfg = "{\"add_bos_token\": false, \"add_eos_token\": true, \"bos_token\": \"<s>\","
                      " \"eos_token\": {\"content\": \"</s>\"}, \"model_max_length\": 1000000000000000019884624838656}";
    char *cfg_path = tmp_path("tokenizer_config.json");
    write_file(cfg_path, cfg, strlen(cfg));
    t = load_ok(json);
    cr_assert_eq(spq_tok_bos(t), 0);
    cr_assert_eq(spq_tok_eos(t), 1);
    expect_ids(t, "x", 1, 1, (int[]){2, 1}, 2);
    expect_ids(t, "x", 1, 0, (int[]){2}, 1);
    spq_tok_free(t);
    free(json);
    free(cfg_path);
}

Test(tokenizer, long_text_without_pretokenizer_encodes_as_one_word) {
    /* 200k characters through the heap BPE: the result must be the same as
     * encoding the repeated unit once, repeated (every "▁a" stands alone) */
    spq_tokenizer *t = stories_bin();
    size_t n = 200000;
    char *text = malloc(n);
    for (size_t i = 0; i < n; i += 2) text[i] = 'a', text[i + 1] = ' ';
    int *ids, n_ids;
    spq_err err;
    cr_assert_eq(spq_tok_encode(t, text, n - 1, 0, &ids, &n_ids, &err), 0);
    cr_assert_eq(n_ids, (int)(n / 2));
    for (int i = 0; i < n_ids; i++) cr_assert_eq(ids[i], 261, "id %d is %d", i, ids[i]);
    free(ids);
    free(text);
    spq_tok_free(t);
}
