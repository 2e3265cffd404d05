/* test_hf.c - the Hugging Face loader against the llama2.c copy of the same
 * model (config, weights, logits through spq_forward), 16-bit copies written
 * by spq_model_save_hf, sharded checkpoints, and broken directories built in
 * a temporary folder from the real stories260K-hf files: every one must
 * fail with a message naming the file and the key or tensor. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/half.h"
#include "common/base/safetensors.h"
#include "common/io/hf.h"
#include "common/io/llama2c.h"
#include "common/io/load.h"
#include "common/model/forward.h"
#include "common/model/model.h"

/* ---- helpers ---- */

static char tmpdir[256];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/spq_test_hf_XXXXXX");
    cr_assert(mkdtemp(tmpdir), "mkdtemp");
}

static void remove_tmpdir(void) {
    if (tmpdir[0]) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = 0;
}

static const char *shared_dir(void) {
    const char *s = getenv("SPINQ_SHARED");
    return s && *s ? s : "../shared";
}

static char *shared_path(const char *rel) {
    return spq_path_join(shared_dir(), rel);
}

#define HF_DIR "models/stories260K-hf"
#define L2C_BIN "models/stories260K/stories260K.bin"

static void load_hf_ok(spq_model *m, const char *dir) {
    spq_err err = {{0}};
    cr_assert_eq(spq_model_load_hf(m, dir, &err), 0, "%s", err.msg);
}

static void load_real(spq_model *hf, spq_model *l2c) {
    char *d = shared_path(HF_DIR), *b = shared_path(L2C_BIN);
    spq_err err = {{0}};
    if (hf) load_hf_ok(hf, d);
    if (l2c) cr_assert_eq(spq_model_load_llama2c(l2c, b, &err), 0, "%s", err.msg);
    free(d);
    free(b);
}

static json_t *real_config(void) {
    char *p = shared_path(HF_DIR "/config.json");
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    cr_assert_not_null(j, "%s", je.text);
    free(p);
    return j;
}

/* A model directory tmpdir/name holding cfg (stolen) as config.json and, when
 * link_weights, a symlink to the real model.safetensors. Returns its path. */
static char *make_dir(const char *name, json_t *cfg, int link_weights) {
    char *dir = spq_path_join(tmpdir, name);
    cr_assert_eq(mkdir(dir, 0755), 0);
    char *cp = spq_path_join(dir, "config.json");
    cr_assert_eq(json_dump_file(cfg, cp, JSON_INDENT(2)), 0);
    json_decref(cfg);
    free(cp);
    if (link_weights) {
        char *src = shared_path(HF_DIR "/model.safetensors"), *dst = spq_path_join(dir, "model.safetensors");
        cr_assert_eq(symlink(src, dst), 0);
        free(src);
        free(dst);
    }
    return dir;
}

/* Writes the real tensors to path with edits: `skip` left out, `reshape`
 * given shape (ndim, shape) with the same bytes, `retype` relabelled I32
 * (same element size as F32), only names for which keep(name) holds (NULL:
 * all). */
typedef struct {
    const char *skip;
    const char *reshape;
    int ndim;
    int64_t shape[2];
    const char *retype;
    int (*keep)(const char *name);
    const char *extra_name;  /* a copy of the embedding under this name */
} edits;

static void write_edited(const char *path, const edits *e) {
    char *src = shared_path(HF_DIR "/model.safetensors");
    spq_st_file f;
    spq_err err = {{0}};
    cr_assert_eq(spq_st_open(&f, src, &err), 0, "%s", err.msg);
    spq_st_writer w;
    spq_st_writer_init(&w);
    for (int i = 0; i < f.n_tensors; i++) {
        const spq_st_tensor *t = &f.tensors[i];
        if (e->skip && !strcmp(t->name, e->skip)) continue;
        if (e->keep && !e->keep(t->name)) continue;
        int ndim = t->ndim;
        const int64_t *shape = t->shape;
        spq_st_dtype dt = t->dtype;
        if (e->reshape && !strcmp(t->name, e->reshape)) ndim = e->ndim, shape = e->shape;
        if (e->retype && !strcmp(t->name, e->retype)) dt = SPQ_ST_I32;
        cr_assert_eq(spq_st_writer_add(&w, t->name, dt, ndim, shape, t->data, &err), 0, "%s", err.msg);
    }
    if (e->extra_name) {
        const spq_st_tensor *t = spq_st_find(&f, "model.embed_tokens.weight");
        cr_assert_eq(spq_st_writer_add(&w, e->extra_name, t->dtype, t->ndim, t->shape, t->data, &err), 0);
    }
    cr_assert_eq(spq_st_writer_save(&w, path, &err), 0, "%s", err.msg);
    spq_st_writer_free(&w);
    spq_st_close(&f);
    free(src);
}

/* A directory with the real config and edited weights. */
static char *make_edited_dir(const char *name, const edits *e) {
    char *dir = make_dir(name, real_config(), 0);
    char *st = spq_path_join(dir, "model.safetensors");
    write_edited(st, e);
    free(st);
    return dir;
}

/* Loading dir must fail with a message containing every fragment. */
static void expect_load_error(const char *dir, const char *f1, const char *f2, const char *f3) {
    spq_model m;
    spq_err err = {{0}};
    cr_assert_eq(spq_model_load_hf(&m, dir, &err), -1, "loading %s should fail", dir);
    const char *fr[] = {f1, f2, f3};
    for (int i = 0; i < 3; i++)
        if (fr[i]) cr_assert(strstr(err.msg, fr[i]), "message should mention '%s': %s", fr[i], err.msg);
    cr_assert(strstr(err.msg, dir), "message should name the directory's file: %s", err.msg);
}

/* config.json with one key set (value stolen) or removed (value NULL). */
static char *dir_with_config_edit(const char *name, const char *key, json_t *value) {
    json_t *cfg = real_config();
    if (value) json_object_set_new(cfg, key, value);
    else json_object_del(cfg, key);
    return make_dir(name, cfg, 1);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* The largest difference over every weight of two same-shaped models. */
static double model_max_diff(const spq_model *a, const spq_model *b) {
    const spq_config *c = &a->cfg;
    size_t D = c->dim, H = c->hidden_dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, V = c->vocab_size;
    double m = fmax(max_abs_diff(a->tok_emb, b->tok_emb, V * D), max_abs_diff(a->lm_head, b->lm_head, V * D));
    m = fmax(m, max_abs_diff(a->final_norm, b->final_norm, D));
    for (int l = 0; l < c->n_layers; l++) {
        const spq_layer *x = &a->layers[l], *y = &b->layers[l];
        m = fmax(m, max_abs_diff(x->attn_norm, y->attn_norm, D));
        m = fmax(m, max_abs_diff(x->wq, y->wq, qd * D));
        m = fmax(m, max_abs_diff(x->wk, y->wk, kvd * D));
        m = fmax(m, max_abs_diff(x->wv, y->wv, kvd * D));
        m = fmax(m, max_abs_diff(x->wo, y->wo, D * qd));
        m = fmax(m, max_abs_diff(x->ffn_norm, y->ffn_norm, D));
        m = fmax(m, max_abs_diff(x->w_gate, y->w_gate, H * D));
        m = fmax(m, max_abs_diff(x->w_up, y->w_up, H * D));
        m = fmax(m, max_abs_diff(x->w_down, y->w_down, D * H));
    }
    return m;
}

/* Applies f to every weight of m in place. */
static void map_weights(spq_model *m, float (*f)(float)) {
    const spq_config *c = &m->cfg;
    size_t D = c->dim, H = c->hidden_dim, qd = (size_t)c->n_heads * c->head_dim,
           kvd = (size_t)c->n_kv_heads * c->head_dim, V = c->vocab_size;
#define MAP(p, n) for (size_t i = 0; i < (n); i++) (p)[i] = f((p)[i])
    MAP(m->tok_emb, V * D);
    if (m->lm_head != m->tok_emb) MAP(m->lm_head, V * D);
    MAP(m->final_norm, D);
    for (int l = 0; l < c->n_layers; l++) {
        spq_layer *L = &m->layers[l];
        MAP(L->attn_norm, D); MAP(L->wq, qd * D); MAP(L->wk, kvd * D); MAP(L->wv, kvd * D); MAP(L->wo, D * qd);
        MAP(L->ffn_norm, D); MAP(L->w_gate, H * D); MAP(L->w_up, H * D); MAP(L->w_down, D * H);
    }
#undef MAP
}

static float round_bf16(float x) { return spq_bf16_to_f32(spq_f32_to_bf16(x)); }
static float round_f16(float x) { return spq_f16_to_f32(spq_f32_to_f16(x)); }

#define NTOK 64

/* A real-text prompt: BOS then 63 tokens greedily decoded by the model. */
static void greedy_tokens(int *toks, const spq_model *m) {
    spq_state s;
    spq_state_build(&s, &m->cfg, 1, NTOK, 1);
    float *logits = spq_malloc((size_t)m->cfg.vocab_size * sizeof(float));
    toks[0] = m->cfg.bos_id;
    for (int t = 0; t + 1 < NTOK; t++) {
        int pos = t;
        spq_forward(logits, &s, &toks[t], &pos, m, 1, 1, SPQ_LOGITS_LAST);
        int best = 0;
        for (int v = 1; v < m->cfg.vocab_size; v++)
            if (logits[v] > logits[best]) best = v;
        toks[t + 1] = best;
    }
    free(logits);
    spq_state_free(&s);
}

/* logits (NTOK, V) of the whole prompt in one prefill */
static float *prefill_logits(const spq_model *m, const int *toks) {
    spq_state s;
    spq_state_build(&s, &m->cfg, 1, NTOK, NTOK);
    float *logits = spq_malloc((size_t)NTOK * m->cfg.vocab_size * sizeof(float));
    int pos = 0;
    spq_forward(logits, &s, toks, &pos, m, 1, NTOK, SPQ_LOGITS_ALL);
    spq_state_free(&s);
    return logits;
}

/* ---- the real model ---- */

Test(hf, config_equals_the_llama2c_config) {
    spq_model hf, l2c;
    load_real(&hf, &l2c);
    const spq_config *a = &hf.cfg, *b = &l2c.cfg;
    cr_assert_eq(a->dim, 64);
    cr_assert_eq(a->dim, b->dim);
    cr_assert_eq(a->hidden_dim, b->hidden_dim);
    cr_assert_eq(a->n_layers, b->n_layers);
    cr_assert_eq(a->n_heads, b->n_heads);
    cr_assert_eq(a->n_kv_heads, b->n_kv_heads);
    cr_assert_eq(a->head_dim, b->head_dim);
    cr_assert_eq(a->vocab_size, b->vocab_size);
    cr_assert_eq(a->seq_len, b->seq_len);
    cr_assert_eq(a->norm_eps, b->norm_eps);
    cr_assert_eq(a->rope_theta, b->rope_theta);
    cr_assert_eq(a->rope_llama3, 0);
    cr_assert_eq(a->rope_llama3, b->rope_llama3);
    cr_assert_eq(a->tied, 1);
    cr_assert_eq(a->tied, b->tied);
    cr_assert_eq(a->bos_id, b->bos_id);
    cr_assert_eq(a->eos_id, b->eos_id);
    cr_assert(spq_config_is_eos(a, 2) && !spq_config_is_eos(a, 1));
    cr_assert_eq(hf.lm_head, hf.tok_emb, "tied classifier shares the embedding");
    cr_assert_str_eq(hf.format, "hf");
    cr_assert_eq(spq_model_nparams(&hf), spq_model_nparams(&l2c));
    spq_model_free(&hf);
    spq_model_free(&l2c);
}

Test(hf, weights_are_bit_identical_to_llama2c_after_its_qk_permutation) {
    /* both files hold the same fp32 numbers; llama2.c's q/k rows are
     * permuted to rotate-half on load, HF's already are */
    spq_model hf, l2c;
    load_real(&hf, &l2c);
    cr_assert_eq(model_max_diff(&hf, &l2c), 0.0);
    spq_model_free(&hf);
    spq_model_free(&l2c);
}

Test(hf, logits_match_llama2c_on_a_64_token_prompt) {
    spq_model hf, l2c;
    load_real(&hf, &l2c);
    int toks[NTOK];
    greedy_tokens(toks, &l2c);
    float *a = prefill_logits(&hf, toks), *b = prefill_logits(&l2c, toks);
    double d = max_abs_diff(a, b, (size_t)NTOK * hf.cfg.vocab_size);
    /* identical weights through identical code: the issue asks < 1e-5, and
     * the result is in fact exact */
    cr_assert_lt(d, 1e-5);
    cr_assert_eq(d, 0.0, "max |diff| %g", d);
    /* and the logits are not trivially equal: a trained model's are spread out */
    double lo = a[0], hi = a[0];
    for (size_t i = 0; i < (size_t)NTOK * hf.cfg.vocab_size; i++) lo = fmin(lo, a[i]), hi = fmax(hi, a[i]);
    cr_assert_gt(hi - lo, 5.0);
    free(a);
    free(b);
    spq_model_free(&hf);
    spq_model_free(&l2c);
}

/* ---- 16-bit copies written by spq_model_save_hf ---- */

static void check_16bit_copy(spq_st_dtype dtype, float (*round)(float), double tol, const char *name) {
    spq_model ref;
    load_real(&ref, NULL);
    char *dir = spq_path_join(tmpdir, name);
    spq_err err = {{0}};
    cr_assert_eq(spq_model_save_hf(&ref, dir, dtype, &err), 0, "%s", err.msg);
    /* the file really holds 16-bit tensors */
    char *st = spq_path_join(dir, "model.safetensors");
    spq_st_file f;
    cr_assert_eq(spq_st_open(&f, st, &err), 0, "%s", err.msg);
    cr_assert_eq(f.n_tensors, 2 + 9 * 5);
    for (int i = 0; i < f.n_tensors; i++) cr_assert_eq(f.tensors[i].dtype, dtype, "%s", f.tensors[i].name);
    spq_st_close(&f);

    spq_model m;
    load_hf_ok(&m, dir);
    cr_assert_eq(m.lm_head, m.tok_emb, "saved tied, loads tied");
    /* weights are exactly the fp32 weights rounded to nearest even */
    spq_model rounded;
    spq_model_copy(&rounded, &ref);
    map_weights(&rounded, round);
    cr_assert_eq(model_max_diff(&m, &rounded), 0.0);
    cr_assert_gt(model_max_diff(&m, &ref), 0.0, "rounding changed something");

    int toks[NTOK];
    greedy_tokens(toks, &ref);
    float *a = prefill_logits(&m, toks), *b = prefill_logits(&ref, toks), *c = prefill_logits(&rounded, toks);
    size_t n = (size_t)NTOK * m.cfg.vocab_size;
    cr_assert_eq(max_abs_diff(a, c, n), 0.0, "same weights, same logits");
    double d = max_abs_diff(a, b, n), big = 0;
    for (size_t i = 0; i < n; i++) big = fmax(big, fabs(b[i]));
    int agree = 0;
    for (int t = 0; t < NTOK; t++) {
        const float *x = a + (size_t)t * m.cfg.vocab_size, *y = b + (size_t)t * m.cfg.vocab_size;
        int ax = 0, ay = 0;
        for (int v = 1; v < m.cfg.vocab_size; v++) ax = x[v] > x[ax] ? v : ax, ay = y[v] > y[ay] ? v : ay;
        agree += ax == ay;
    }
    cr_log_info("%s: max |logit diff| vs fp32 = %g (max |logit| %g), top-1 agreement %d/%d", name, d, big, agree,
                NTOK);
    cr_assert_lt(d, tol, "%s: max |logit diff| %g", name, d);
    cr_assert_geq(agree, NTOK - 2, "%s: top-1 agreement %d/%d", name, agree, NTOK);
    free(a);
    free(b);
    free(c);
    spq_model_free(&m);
    spq_model_free(&rounded);
    spq_model_free(&ref);
    free(st);
    free(dir);
}

/* Tolerances: rounding moves a weight by at most 2^-9 of itself in bf16 (8
 * significant bits) and 2^-12 in fp16 (11 bits), so logit errors should
 * scale by 8 between the two. Measured over 64 positions x 512 logits (max
 * |logit| about 20): 0.118 (bf16) and 0.0166 (fp16), ratio 7.1. The bounds
 * leave 2.5x headroom; a mis-converted tensor (wrong byte order, wrong
 * format) moves logits by O(1) or more and fails. The exactness check above
 * (same logits as the fp32 model with weights rounded in memory) is the
 * tight one. */
Test(hf16, bf16_copy_loads_and_gives_close_logits, .init = make_tmpdir, .fini = remove_tmpdir) {
    check_16bit_copy(SPQ_ST_BF16, round_bf16, 0.3, "bf16");
}

Test(hf16, fp16_copy_loads_and_gives_close_logits, .init = make_tmpdir, .fini = remove_tmpdir) {
    check_16bit_copy(SPQ_ST_F16, round_f16, 0.04, "fp16");
}

Test(hf16, fp32_save_roundtrips_exactly_untied_too, .init = make_tmpdir, .fini = remove_tmpdir) {
    spq_model ref, m;
    load_real(&ref, NULL);
    spq_model_untie(&ref);
    ref.lm_head[5] += 1.0f;  /* now really different from the embedding */
    char *dir = spq_path_join(tmpdir, "f32");
    spq_err err = {{0}};
    cr_assert_eq(spq_model_save_hf(&ref, dir, SPQ_ST_F32, &err), 0, "%s", err.msg);
    load_hf_ok(&m, dir);
    cr_assert_eq(m.cfg.tied, 0);
    cr_assert_neq(m.lm_head, m.tok_emb);
    cr_assert_eq(model_max_diff(&m, &ref), 0.0);
    cr_assert_eq(memcmp(&m.cfg, &ref.cfg, sizeof m.cfg), 0, "config survives config.json");
    cr_assert_eq(spq_model_save_hf(&ref, dir, SPQ_ST_I8, &err), -1);
    spq_model_free(&m);
    spq_model_free(&ref);
    free(dir);
}

/* ---- sharded checkpoints ---- */

static int first_half(const char *n) {
    return !strncmp(n, "model.embed_tokens", 18) || !strncmp(n, "model.layers.0.", 15) ||
           !strncmp(n, "model.layers.1.", 15);
}
static int second_half(const char *n) { return !first_half(n); }

/* tmpdir/name with two shards and an index; returns the directory */
static char *make_sharded(const char *name) {
    char *dir = make_dir(name, real_config(), 0);
    char *s1 = spq_path_join(dir, "model-00001-of-00002.safetensors");
    char *s2 = spq_path_join(dir, "model-00002-of-00002.safetensors");
    edits e1 = {.keep = first_half}, e2 = {.keep = second_half};
    write_edited(s1, &e1);
    write_edited(s2, &e2);
    /* the index maps every tensor to its shard */
    char *src = shared_path(HF_DIR "/model.safetensors");
    spq_st_file f;
    spq_err err;
    cr_assert_eq(spq_st_open(&f, src, &err), 0);
    json_t *map = json_object();
    for (int i = 0; i < f.n_tensors; i++)
        json_object_set_new(map, f.tensors[i].name,
                            json_string(first_half(f.tensors[i].name) ? "model-00001-of-00002.safetensors"
                                                                      : "model-00002-of-00002.safetensors"));
    spq_st_close(&f);
    json_t *idx = json_pack("{s:{s:i}, s:o}", "metadata", "total_size", 1044000, "weight_map", map);
    char *ip = spq_path_join(dir, "model.safetensors.index.json");
    cr_assert_eq(json_dump_file(idx, ip, JSON_INDENT(2)), 0);
    json_decref(idx);
    free(ip);
    free(src);
    free(s1);
    free(s2);
    return dir;
}

Test(hf_sharded, loads_the_same_weights_as_one_file, .init = make_tmpdir, .fini = remove_tmpdir) {
    char *dir = make_sharded("sharded");
    spq_model a, b;
    load_hf_ok(&a, dir);
    load_real(&b, NULL);
    cr_assert_eq(model_max_diff(&a, &b), 0.0);
    spq_model_free(&a);
    spq_model_free(&b);
    free(dir);
}

Test(hf_sharded, index_pointing_at_a_missing_shard, .init = make_tmpdir, .fini = remove_tmpdir) {
    char *dir = make_sharded("sharded");
    char *s2 = spq_path_join(dir, "model-00002-of-00002.safetensors");
    cr_assert_eq(unlink(s2), 0);
    expect_load_error(dir, "model.safetensors.index.json: weight_map: shard \"model-00002-of-00002.safetensors\"",
                      "cannot open", "No such file");
    free(s2);
    free(dir);
}

Test(hf_sharded, index_without_a_tensor_or_with_a_wrong_shard, .init = make_tmpdir, .fini = remove_tmpdir) {
    char *dir = make_sharded("sharded");
    char *ip = spq_path_join(dir, "model.safetensors.index.json");
    json_t *idx = json_load_file(ip, 0, NULL);
    json_t *map = json_object_get(idx, "weight_map");
    json_object_del(map, "model.norm.weight");
    cr_assert_eq(json_dump_file(idx, ip, 0), 0);
    expect_load_error(dir, "model.safetensors.index.json: weight_map: tensor \"model.norm.weight\" is missing", NULL,
                      NULL);
    /* listed in the wrong shard */
    json_object_set_new(map, "model.norm.weight", json_string("model-00001-of-00002.safetensors"));
    cr_assert_eq(json_dump_file(idx, ip, 0), 0);
    expect_load_error(dir, "model-00001-of-00002.safetensors: tensor \"model.norm.weight\" is missing",
                      "the index places it in this shard", NULL);
    /* a shard name that leaves the directory */
    json_object_set_new(map, "model.norm.weight", json_string("../elsewhere.safetensors"));
    cr_assert_eq(json_dump_file(idx, ip, 0), 0);
    expect_load_error(dir, "weight_map: \"model.norm.weight\"", "inside the model directory", NULL);
    /* weight_map not an object */
    json_object_set_new(idx, "weight_map", json_array());
    cr_assert_eq(json_dump_file(idx, ip, 0), 0);
    expect_load_error(dir, "model.safetensors.index.json: weight_map: expected an object", NULL, NULL);
    json_decref(idx);
    free(ip);
    free(dir);
}

/* ---- broken weights ---- */

Test(hf_bad, tensor_with_the_wrong_shape, .init = make_tmpdir, .fini = remove_tmpdir) {
    edits e = {.reshape = "model.layers.2.self_attn.q_proj.weight", .ndim = 2, .shape = {32, 128}};
    char *dir = make_edited_dir("reshaped", &e);
    expect_load_error(dir, "model.safetensors: tensor \"model.layers.2.self_attn.q_proj.weight\"",
                      "expected shape [64, 64], got [32, 128]", NULL);
    free(dir);
}

Test(hf_bad, missing_tensor, .init = make_tmpdir, .fini = remove_tmpdir) {
    edits e = {.skip = "model.norm.weight"};
    char *dir = make_edited_dir("missing", &e);
    expect_load_error(dir, "model.safetensors: tensor \"model.norm.weight\" is missing", NULL, NULL);
    free(dir);
}

Test(hf_bad, integer_tensor_where_a_weight_belongs, .init = make_tmpdir, .fini = remove_tmpdir) {
    edits e = {.retype = "model.norm.weight"};
    char *dir = make_edited_dir("retyped", &e);
    expect_load_error(dir, "model.safetensors: tensor \"model.norm.weight\"", "dtype I32 is not a float type", NULL);
    free(dir);
}

Test(hf_bad, untied_config_needs_lm_head, .init = make_tmpdir, .fini = remove_tmpdir) {
    char *dir = dir_with_config_edit("untied", "tie_word_embeddings", json_false());
    expect_load_error(dir, "model.safetensors: tensor \"lm_head.weight\" is missing", NULL, NULL);
    free(dir);
    /* with an lm_head present the untied model loads and computes the same logits */
    edits e = {.extra_name = "lm_head.weight"};
    json_t *cfg = real_config();
    json_object_set_new(cfg, "tie_word_embeddings", json_false());
    dir = make_dir("untied2", cfg, 0);
    char *st = spq_path_join(dir, "model.safetensors");
    write_edited(st, &e);
    spq_model m, ref;
    load_hf_ok(&m, dir);
    load_real(&ref, NULL);
    cr_assert_neq(m.lm_head, m.tok_emb);
    cr_assert_eq(model_max_diff(&m, &ref), 0.0);
    spq_model_free(&m);
    spq_model_free(&ref);
    free(st);
    free(dir);
}

Test(hf_bad, truncated_safetensors_in_a_model_dir, .init = make_tmpdir, .fini = remove_tmpdir) {
    char *dir = make_dir("trunc", real_config(), 0);
    char *src = shared_path(HF_DIR "/model.safetensors"), *dst = spq_path_join(dir, "model.safetensors");
    char *buf;
    size_t n;
    spq_err err;
    cr_assert_eq(spq_read_file(&buf, &n, src, &err), 0);
    FILE *f = fopen(dst, "wb");
    fwrite(buf, 1, n / 2, f);
    fclose(f);
    expect_load_error(dir, "model.safetensors: tensor", "past the end of the data", NULL);
    free(buf);
    free(src);
    free(dst);
    free(dir);
}

Test(hf_bad, no_weights_or_no_config, .init = make_tmpdir, .fini = remove_tmpdir) {
    char *dir = make_dir("noweights", real_config(), 0);
    expect_load_error(dir, "no model.safetensors or model.safetensors.index.json", NULL, NULL);
    char *cp = spq_path_join(dir, "config.json");
    unlink(cp);
    expect_load_error(dir, "config.json: no such file", NULL, NULL);
    FILE *f = fopen(cp, "w");
    fputs("{\"hidden_size\": 64,", f);
    fclose(f);
    expect_load_error(dir, "config.json: not valid JSON", NULL, NULL);
    f = fopen(cp, "w");
    fputs("[64]", f);
    fclose(f);
    expect_load_error(dir, "config.json: expected a JSON object", NULL, NULL);
    free(cp);
    free(dir);
}

/* ---- config.json ---- */

Test(hf_config, missing_required_keys, .init = make_tmpdir, .fini = remove_tmpdir) {
    const char *keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "vocab_size", "rms_norm_eps", "max_position_embeddings"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        char *dir = dir_with_config_edit(keys[i], keys[i], NULL);
        char want[128];
        snprintf(want, sizeof want, "config.json: %s: missing", keys[i]);
        expect_load_error(dir, want, NULL, NULL);
        free(dir);
    }
}

Test(hf_config, mistyped_keys, .init = make_tmpdir, .fini = remove_tmpdir) {
    char *dir = dir_with_config_edit("a", "hidden_size", json_string("64"));
    expect_load_error(dir, "config.json: hidden_size: expected an integer, got a string (\"64\")", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("b", "hidden_size", json_real(64.0));
    expect_load_error(dir, "config.json: hidden_size: expected an integer, got a real number", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("c", "num_hidden_layers", json_integer(-5));
    expect_load_error(dir, "config.json: num_hidden_layers: must be at least 1 (got -5)", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("d", "rms_norm_eps", json_string("1e-5"));
    expect_load_error(dir, "config.json: rms_norm_eps: expected a number, got a string", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("e", "rms_norm_eps", json_integer(0));
    expect_load_error(dir, "config.json: rms_norm_eps: must be positive", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("f", "tie_word_embeddings", json_string("true"));
    expect_load_error(dir, "config.json: tie_word_embeddings: expected true or false", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("g", "vocab_size", json_integer(4294967296LL));
    expect_load_error(dir, "config.json: vocab_size: must be at least 1", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("h", "eos_token_id", json_pack("[i, s]", 2, "x"));
    expect_load_error(dir, "config.json: eos_token_id: expected an integer or a list", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("i", "bos_token_id", json_integer(512));
    expect_load_error(dir, "config.json: bos/eos token id out of range of vocab_size 512", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("j", "num_attention_heads", json_integer(6));
    expect_load_error(dir, "config.json: num_attention_heads (6) is not a multiple of num_key_value_heads (4)", NULL,
                      NULL);
    free(dir);
}

Test(hf_config, unsupported_architecture_and_features, .init = make_tmpdir, .fini = remove_tmpdir) {
    char *dir = dir_with_config_edit("a", "architectures", json_pack("[s]", "MistralForCausalLM"));
    expect_load_error(dir, "config.json: architectures: unsupported architecture \"MistralForCausalLM\"", NULL, NULL);
    free(dir);
    json_t *cfg = real_config();
    json_object_del(cfg, "architectures");
    json_object_set_new(cfg, "model_type", json_string("gpt2"));
    dir = make_dir("b", cfg, 1);
    expect_load_error(dir, "config.json: model_type: unsupported architecture \"gpt2\"", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("c", "attention_bias", json_true());
    expect_load_error(dir, "config.json: attention_bias: true is not supported", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("d", "mlp_bias", json_true());
    expect_load_error(dir, "config.json: mlp_bias: true is not supported", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("e", "hidden_act", json_string("gelu"));
    expect_load_error(dir, "config.json: hidden_act: \"gelu\" is not supported", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("f", "rope_scaling", json_pack("{s:s, s:f}", "type", "linear", "factor", 2.0));
    expect_load_error(dir, "config.json: rope_scaling: type: \"linear\" is not supported", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("g", "rope_scaling", json_pack("{s:s}", "rope_type", "llama3"));
    expect_load_error(dir, "config.json: rope_scaling: factor: missing", NULL, NULL);
    free(dir);
    dir = dir_with_config_edit("h", "quantization_config", json_pack("{s:s}", "quant_method", "gptq"));
    expect_load_error(dir, "config.json: quantization_config: pre-quantized checkpoints are not supported", NULL,
                      NULL);
    free(dir);
}

Test(hf_config, defaults_and_optional_forms, .init = make_tmpdir, .fini = remove_tmpdir) {
    /* no head_dim: hidden_size / num_attention_heads */
    spq_model m;
    char *dir = dir_with_config_edit("a", "head_dim", NULL);
    load_hf_ok(&m, dir);
    cr_assert_eq(m.cfg.head_dim, 8);
    spq_model_free(&m);
    free(dir);
    /* no rope_theta: 10000; no tie_word_embeddings: untied, so lm_head is needed */
    dir = dir_with_config_edit("b", "rope_theta", NULL);
    load_hf_ok(&m, dir);
    cr_assert_eq(m.cfg.rope_theta, 10000.0f);
    spq_model_free(&m);
    free(dir);
    dir = dir_with_config_edit("c", "tie_word_embeddings", NULL);
    expect_load_error(dir, "lm_head.weight", "is missing", NULL);
    free(dir);
    /* no num_key_value_heads: as many as query heads, which these weights contradict */
    dir = dir_with_config_edit("d", "num_key_value_heads", NULL);
    expect_load_error(dir, "tensor \"model.layers.0.self_attn.k_proj.weight\"", "expected shape [64, 64], got [32, 64]",
                      NULL);
    free(dir);
    /* eos as a list; bos null */
    json_t *cfg = real_config();
    json_object_set_new(cfg, "eos_token_id", json_pack("[i, i, i]", 2, 7, 9));
    json_object_set_new(cfg, "bos_token_id", json_null());
    dir = make_dir("e", cfg, 1);
    load_hf_ok(&m, dir);
    cr_assert_eq(m.cfg.eos_id, 2);
    cr_assert_eq(m.cfg.n_eos, 3);
    cr_assert_eq(m.cfg.bos_id, -1);
    cr_assert(spq_config_is_eos(&m.cfg, 7) && spq_config_is_eos(&m.cfg, 9) && !spq_config_is_eos(&m.cfg, 8));
    spq_model_free(&m);
    free(dir);
    /* llama3 rope scaling and the "default" rope type */
    dir = dir_with_config_edit("f", "rope_scaling",
                               json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor", 32.0,
                                         "low_freq_factor", 1.0, "high_freq_factor", 4.0,
                                         "original_max_position_embeddings", 8192));
    load_hf_ok(&m, dir);
    cr_assert(m.cfg.rope_llama3 && m.cfg.rope_factor == 32.0f && m.cfg.rope_low_freq_factor == 1.0f &&
              m.cfg.rope_high_freq_factor == 4.0f && m.cfg.rope_orig_ctx == 8192);
    spq_model_free(&m);
    free(dir);
    dir = dir_with_config_edit("g", "rope_scaling", json_pack("{s:s}", "rope_type", "default"));
    load_hf_ok(&m, dir);
    cr_assert_eq(m.cfg.rope_llama3, 0);
    spq_model_free(&m);
    free(dir);
    /* model_type alone identifies llama */
    cfg = real_config();
    json_object_del(cfg, "architectures");
    dir = make_dir("h", cfg, 1);
    load_hf_ok(&m, dir);
    spq_model_free(&m);
    free(dir);
}

Test(hf_config, a_config_promising_a_huge_model_fails_on_tensors_not_memory, .init = make_tmpdir,
     .fini = remove_tmpdir) {
    char *dir = dir_with_config_edit("huge", "num_hidden_layers", json_integer(2000000000));
    expect_load_error(dir, "tensor \"model.layers.5.input_layernorm.weight\" is missing", NULL, NULL);
    free(dir);
}

Test(hf, load_dispatches_directories_to_the_hf_loader) {
    char *d = shared_path(HF_DIR);
    spq_model m;
    spq_err err = {{0}};
    cr_assert_eq(spq_model_load(&m, d, &err), 0, "%s", err.msg);
    cr_assert_str_eq(m.format, "hf");
    cr_assert_str_eq(m.path, d);
    spq_model_free(&m);
    free(d);
}

Test(hf_sharded, inspect_summarizes_weight_files, .init = make_tmpdir, .fini = remove_tmpdir) {
    spq_hf_weights_info wi;
    spq_err err = {{0}};
    char *real = shared_path(HF_DIR);
    cr_assert_eq(spq_hf_inspect(&wi, real, &err), 0, "%s", err.msg);
    cr_assert_eq(wi.n_files, 1);
    cr_assert_eq(wi.n_tensors, 47);
    cr_assert_eq(wi.dtype_count[SPQ_ST_F32], 47);
    cr_assert_eq(wi.bytes, 1044984);
    char *dir = make_sharded("sharded");
    cr_assert_eq(spq_hf_inspect(&wi, dir, &err), 0, "%s", err.msg);
    cr_assert_eq(wi.n_files, 2);
    cr_assert_eq(wi.n_tensors, 47);
    cr_assert_eq(spq_hf_inspect(&wi, "/nonexistent", &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent: no model.safetensors"), "%s", err.msg);
    free(real);
    free(dir);
}

/* Every key of the real config set to each value of the wrong kind (or an
 * odd one of the right kind): the load succeeds or fails naming config.json
 * or a weight file, and never crashes (ASan). */
Test(hf_config, every_key_with_every_kind_of_value, .init = make_tmpdir, .fini = remove_tmpdir) {
    json_t *base = real_config();
    const char *key;
    json_t *unused;
    int k = 0, ok = 0, refused = 0;
    json_object_foreach(base, key, unused) {
        json_t *values[] = {json_null(), json_string("x"), json_integer(-1), json_integer(0), json_real(1.5),
                            json_integer(1LL << 40), json_array(), json_object(), json_true()};
        for (size_t v = 0; v < sizeof values / sizeof *values; v++) {
            char name[32];
            snprintf(name, sizeof name, "k%d_%zu", k, v);
            json_t *cfg = json_deep_copy(base);
            json_object_set_new(cfg, key, values[v]);
            char *dir = make_dir(name, cfg, 1);
            spq_model m;
            spq_err err = {{0}};
            if (spq_model_load_hf(&m, dir, &err) == 0) {
                ok++;
                spq_model_free(&m);
            } else {
                refused++;
                cr_assert(strstr(err.msg, dir), "%s=%zu: message names a file: %s", key, v, err.msg);
            }
            free(dir);
        }
        k++;
    }
    cr_log_info("config edits: %d loaded, %d refused", ok, refused);
    cr_assert_gt(refused, 50);
    json_decref(base);
}
