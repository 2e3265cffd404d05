/* test_mapped.c - models whose weights stay in their files (model/mapped.h)
 * and the random models of real shapes that exercise them (io/hf.h's
 * spq_hf_write_random), on a small shape in a temporary folder:
 *  - the generator writes spq_model_init_random's values, rounded to the
 *    file's dtype, in shards with an index;
 *  - a BF16 sharded model loaded mapped gives the logits and perplexity of
 *    the same model loaded in fp32, tied or not, and keeps doing so when a
 *    state runs it again;
 *  - materializing a mapped model (and copying one) gives exactly the fp32
 *    model;
 *  - fp32 tables narrowed to 16-bit tables of the model's own run and
 *    materialize as the fp32 model with rounded tables.
 * Tolerance of the logits: a mapped layer's linears are converted to the
 * same fp32 values the fp32 load has (BF16 widens exactly) and run through
 * the same sgemm, so the hidden states agree; the 16-bit classifier runs
 * through spq_hgemm (blocks widened to fp32, or its own fp32 sums for a
 * few rows) where the fp32 model has one sgemm, which may sum a row's
 * dim = 64 products in another order: differences of fp32 rounding,
 * bounded by 1e-5 relative to the largest logit (the rounding of 64
 * products is below 64 * 2^-24 of their absolute sum). */
#include <criterion/criterion.h>
#include <ftw.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/half.h"
#include "common/eval/ppl.h"
#include "common/io/hf.h"
#include "common/io/load.h"
#include "common/model/forward.h"
#include "common/model/linear.h"
#include "common/model/mapped.h"

static char tmpdir[256];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/spq_test_mapped_XXXXXX");
    cr_assert(mkdtemp(tmpdir), "mkdtemp");
}

static void remove_tmpdir(void) {
    if (tmpdir[0]) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = 0;
}

/* LLaMA 3.2's layout (GQA, llama3 rope scaling) at a size ASan runs fast */
static spq_config small_shape(int tied) {
    spq_config c = spq_config_llama32_1b(3);
    c.dim = 64;
    c.hidden_dim = 160;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 16;
    c.vocab_size = 300;
    c.seq_len = 256;
    c.tied = tied;
    c.bos_id = 1;
    c.eos_id = 2;
    return c;
}

/* the directory of a generated model: tmpdir/name */
static char *write_model(const char *name, const spq_config *c, spq_st_dtype dtype, int shards) {
    char *dir = spq_path_join(tmpdir, name);
    spq_err err = {{0}};
    cr_assert_eq(spq_hf_write_random(dir, c, dtype, shards, 42, &err), 0, "%s", err.msg);
    return dir;
}

static void load(spq_model *m, const char *dir, int mapped) {
    spq_err err = {{0}};
    int rc = mapped ? spq_model_load_mapped(m, dir, &err) : spq_model_load(m, dir, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_eq(m->mapped != NULL, mapped);
}

static float round_to(float x, spq_st_dtype dtype) {
    return dtype == SPQ_ST_BF16 ? spq_bf16_to_f32(spq_f32_to_bf16(x)) : x;
}

static void assert_floats_eq(const float *a, const float *b, size_t n, const char *what) {
    cr_assert(a && b, "%s: missing", what);
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) cr_assert_fail("%s[%zu]: %g != %g", what, i, a[i], b[i]);
}

/* every weight of a and b bitwise equal (a's values optionally rounded) */
static void assert_models_eq(const spq_model *a, const spq_model *b, spq_st_dtype round) {
    const spq_config *c = &a->cfg;
    size_t ne = (size_t)c->vocab_size * c->dim;
    float *tmp = spq_malloc(ne * sizeof(float));
#define SAME(x, y, n, what)                                          \
    do {                                                             \
        for (size_t i = 0; i < (n); i++) tmp[i] = round_to((x)[i], round); \
        assert_floats_eq(tmp, (y), (n), what);                       \
    } while (0)
    SAME(a->tok_emb, b->tok_emb, ne, "tok_emb");
    SAME(a->lm_head, b->lm_head, ne, "lm_head");
    SAME(a->final_norm, b->final_norm, (size_t)c->dim, "final_norm");
    for (int l = 0; l < c->n_layers; l++) {
        SAME(a->layers[l].attn_norm, b->layers[l].attn_norm, (size_t)c->dim, "attn_norm");
        SAME(a->layers[l].ffn_norm, b->layers[l].ffn_norm, (size_t)c->dim, "ffn_norm");
        for (int which = 0; which < SPQ_N_LIN; which++) {
            int rows, cols;
            spq_lin_shape(c, which, &rows, &cols);
            SAME(*spq_lin_weight(&a->layers[l], which), *spq_lin_weight(&b->layers[l], which), (size_t)rows * cols,
                 spq_lin_name(which));
        }
    }
#undef SAME
    cr_assert_eq(a->lm_head == a->tok_emb, b->lm_head == b->tok_emb, "tied alike");
    free(tmp);
}

Test(make_model, writes_init_random_values_in_shards_with_an_index, .init = make_tmpdir, .fini = remove_tmpdir) {
    for (int tied = 0; tied <= 1; tied++)
        for (int k = 0; k < 2; k++) {
            spq_st_dtype dtype = k ? SPQ_ST_F32 : SPQ_ST_BF16;
            spq_config c = small_shape(tied);
            char name[32];
            snprintf(name, sizeof name, "m%d%d", tied, k);
            char *dir = write_model(name, &c, dtype, 3);
            spq_hf_weights_info info;
            spq_err err = {{0}};
            cr_assert_eq(spq_hf_inspect(&info, dir, &err), 0, "%s", err.msg);
            cr_assert_eq(info.n_files, 3);
            cr_assert_eq(info.dtype_count[dtype], 2 + 9 * c.n_layers + !tied);
            char *idx = spq_path_join(dir, "model.safetensors.index.json"),
                 *single = spq_path_join(dir, "model.safetensors");
            cr_assert(spq_file_exists(idx) && !spq_file_exists(single));
            spq_model want, got;
            spq_model_init_random(&want, &c, 42);
            load(&got, dir, 0);
            cr_assert_eq(got.cfg.rope_llama3, 1, "LLaMA 3 rope scaling in config.json");
            assert_models_eq(&want, &got, dtype);
            spq_model_free(&want);
            spq_model_free(&got);
            /* one shard: model.safetensors, and the stale index is gone */
            cr_assert_eq(spq_hf_write_random(dir, &c, dtype, 1, 42, &err), 0, "%s", err.msg);
            cr_assert(!spq_file_exists(idx) && spq_file_exists(single));
            free(idx);
            free(single);
            free(dir);
        }
}

static void random_tokens(int *t, int n, int V, unsigned seed) {
    for (int i = 0; i < n; i++) t[i] = (int)((seed = seed * 1103515245u + 12345u) >> 8) % V;
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

static void assert_logits_close(const float *a, const float *b, size_t n) {
    double tol = 1e-5 * (1 + max_abs(b, n));
    for (size_t i = 0; i < n; i++) cr_assert(fabs(a[i] - b[i]) <= tol, "logit %zu: %.9g vs %.9g", i, a[i], b[i]);
}

Test(mapped, bf16_sharded_model_runs_as_its_fp32_load, .init = make_tmpdir, .fini = remove_tmpdir) {
    enum { B = 3, T = 20 };
    for (int tied = 0; tied <= 1; tied++) {
        spq_config c = small_shape(tied);
        char *dir = write_model(tied ? "tied" : "untied", &c, SPQ_ST_BF16, 3);
        spq_model mm, fm;
        load(&mm, dir, 1);
        load(&fm, dir, 0);
        cr_assert(mm.mapped->emb.t && mm.mapped->head.t && !mm.tok_emb && !mm.lm_head, "16-bit tables stay mapped");
        cr_assert_eq(mm.mapped->head.t == mm.mapped->emb.t, tied);
        int V = c.vocab_size, tokens[B * T], pos[B] = {0, 0, 0};
        float *lm = spq_malloc((size_t)B * T * V * sizeof(float)), *lf = spq_malloc((size_t)B * T * V * sizeof(float));
        spq_state sm, sf;
        spq_state_build(&sm, &c, B, 64, B * T);
        spq_state_build(&sf, &c, B, 64, B * T);
        /* all logits of a batch (prefill: > 8 rows), then the last of a few
         * decode rows (hgemm's own sums) on the same state, whose buffer
         * holds the last layer from the first call */
        random_tokens(tokens, B * T, V, 7);
        spq_forward(lm, &sm, tokens, pos, &mm, B, T, SPQ_LOGITS_ALL);
        spq_forward(lf, &sf, tokens, pos, &fm, B, T, SPQ_LOGITS_ALL);
        assert_logits_close(lm, lf, (size_t)B * T * V);
        int next[B] = {5, 6, 7}, at[B] = {T, T, T};
        spq_forward(lm, &sm, next, at, &mm, B, 1, SPQ_LOGITS_LAST);
        spq_forward(lf, &sf, next, at, &fm, B, 1, SPQ_LOGITS_LAST);
        assert_logits_close(lm, lf, (size_t)B * V);
        spq_state_free(&sm);
        spq_state_free(&sf);

        /* perplexity of 5 windows in batches of 2 */
        int text[5 * 32];
        random_tokens(text, 5 * 32, V, 11);
        spq_ppl_result rm, rf;
        spq_err err = {{0}};
        cr_assert_eq(spq_ppl_windows(&rm, &mm, text, 5 * 32, 32, 2, NULL, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(spq_ppl_windows(&rf, &fm, text, 5 * 32, 32, 2, NULL, NULL, &err), 0, "%s", err.msg);
        cr_assert_eq(rm.n_scored, rf.n_scored);
        cr_assert(fabs(rm.ppl / rf.ppl - 1) < 1e-6, "ppl %.9g vs %.9g", rm.ppl, rf.ppl);
        free(lm);
        free(lf);
        spq_model_free(&mm);
        spq_model_free(&fm);
        free(dir);
    }
}

Test(mapped, materialize_and_copy_give_the_fp32_model, .init = make_tmpdir, .fini = remove_tmpdir) {
    for (int tied = 0; tied <= 1; tied++) {
        spq_config c = small_shape(tied);
        char *dir = write_model(tied ? "tied" : "untied", &c, SPQ_ST_BF16, 2);
        spq_model mm, fm, copy;
        load(&mm, dir, 1);
        load(&fm, dir, 0);
        spq_model_copy(&copy, &mm);
        cr_assert_null(copy.mapped, "a copy is an fp32 model");
        assert_models_eq(&fm, &copy, SPQ_ST_F32);
        spq_model_materialize(&mm);
        cr_assert_null(mm.mapped);
        assert_models_eq(&fm, &mm, SPQ_ST_F32);
        spq_model_materialize(&mm); /* nothing left to do */
        spq_model_free(&mm);
        spq_model_free(&fm);
        spq_model_free(&copy);
        free(dir);
    }
}

Test(mapped, f32_files_map_the_linears_and_convert_the_tables, .init = make_tmpdir, .fini = remove_tmpdir) {
    spq_config c = small_shape(1);
    char *dir = write_model("f32", &c, SPQ_ST_F32, 1);
    spq_model mm;
    load(&mm, dir, 1);
    cr_assert(!mm.mapped->emb.t && mm.tok_emb && mm.lm_head == mm.tok_emb, "F32 tables are read into the model");
    cr_assert(mm.mapped->lin[0].t && !mm.layers[0].wq, "the linears stay in the file");
    spq_model_untie(&mm); /* the tables are fp32 already: the linears stay mapped */
    cr_assert(mm.mapped && !mm.layers[0].wq && mm.lm_head != mm.tok_emb);
    spq_model_materialize(&mm);
    cr_assert(!mm.mapped && mm.layers[0].wq);
    spq_model_free(&mm);
    free(dir);
}

/* spq_mapped_ends_16: fp32 tables (as fusing and rotating leave them)
 * become 16-bit tables the model owns, which run and materialize as the fp32
 * model whose tables hold the rounded values; narrowing again to the other
 * dtype converts those */
Test(mapped, fp32_tables_narrowed_to_16_bits_are_the_rounded_tables, .init = make_tmpdir, .fini = remove_tmpdir) {
    enum { B = 2, T = 12 };
    for (int tied = 0; tied <= 1; tied++) {
        spq_config c = small_shape(tied);
        char *dir = write_model(tied ? "tied32" : "untied32", &c, SPQ_ST_F32, 1);
        spq_model mm, fm;
        load(&mm, dir, 1);
        load(&fm, dir, 0);
        size_t ne = (size_t)c.vocab_size * c.dim;
        for (size_t i = 0; i < ne; i++) fm.tok_emb[i] = round_to(fm.tok_emb[i], SPQ_ST_BF16);
        for (size_t i = 0; !tied && i < ne; i++) fm.lm_head[i] = round_to(fm.lm_head[i], SPQ_ST_BF16);
        spq_mapped_ends_16(&mm, SPQ_ST_BF16);
        cr_assert(!mm.tok_emb && !mm.lm_head && mm.mapped->emb.t && mm.mapped->emb.t->dtype == SPQ_ST_BF16);
        cr_assert_eq(mm.mapped->head.t == mm.mapped->emb.t, tied);
        spq_mapped_ends_16(&mm, SPQ_ST_BF16); /* already so: unchanged */
        cr_assert(mm.mapped->emb.t == &mm.mapped->own[0]);
        int V = c.vocab_size, tokens[B * T], pos[B] = {0, 0};
        random_tokens(tokens, B * T, V, 3);
        float *lm = spq_malloc((size_t)B * T * V * sizeof(float)), *lf = spq_malloc((size_t)B * T * V * sizeof(float));
        spq_state sm, sf;
        spq_state_build(&sm, &c, B, 32, B * T);
        spq_state_build(&sf, &c, B, 32, B * T);
        spq_forward(lm, &sm, tokens, pos, &mm, B, T, SPQ_LOGITS_ALL);
        spq_forward(lf, &sf, tokens, pos, &fm, B, T, SPQ_LOGITS_ALL);
        assert_logits_close(lm, lf, (size_t)B * T * V);
        spq_state_free(&sm);
        spq_state_free(&sf);
        /* to F16: each value the F16 rounding of the BF16 one */
        spq_mapped_ends_16(&mm, SPQ_ST_F16);
        cr_assert(mm.mapped->emb.t->dtype == SPQ_ST_F16);
        float *row = spq_malloc((size_t)c.dim * sizeof(float));
        for (int v = 0; v < V; v += 37) {
            spq_mtensor_row(row, &mm.mapped->emb, v, c.dim);
            for (int k = 0; k < c.dim; k++)
                cr_assert_eq(row[k], spq_f16_to_f32(spq_f32_to_f16(fm.tok_emb[(size_t)v * c.dim + k])), "row %d", v);
        }
        spq_mapped_ends_16(&mm, SPQ_ST_BF16); /* back: BF16 of F16 of BF16 values */
        spq_model_materialize(&mm);
        cr_assert(!mm.mapped && mm.tok_emb && (mm.lm_head == mm.tok_emb) == tied);
        for (size_t i = 0; i < ne; i++) fm.tok_emb[i] = round_to(spq_f16_to_f32(spq_f32_to_f16(fm.tok_emb[i])), SPQ_ST_BF16);
        for (size_t i = 0; !tied && i < ne; i++)
            fm.lm_head[i] = round_to(spq_f16_to_f32(spq_f32_to_f16(fm.lm_head[i])), SPQ_ST_BF16);
        assert_models_eq(&fm, &mm, SPQ_ST_F32);
        free(row);
        free(lm);
        free(lf);
        spq_model_free(&mm);
        spq_model_free(&fm);
        free(dir);
    }
}
