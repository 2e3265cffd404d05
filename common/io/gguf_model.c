/* gguf_model.c - see gguf_model.h. */
#include "gguf_model.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/kernels/ggml_quant.h"
#include "common/base/half.h"
#include "common/tok/tok_vocab.h"

/* the tensors of a block, in llama.cpp's names */
enum { B_ATTN_NORM, B_Q, B_K, B_V, B_O, B_FFN_NORM, B_GATE, B_UP, B_DOWN, B_N };
static const char *blk_names[B_N] = {"attn_norm", "attn_q",   "attn_k", "attn_v",  "attn_output",
                                     "ffn_norm",  "ffn_gate", "ffn_up", "ffn_down"};
/* the linear (linear.h) behind each block tensor; -1 for the norms */
static const int blk_lin[B_N] = {-1, SPQ_LIN_Q, SPQ_LIN_K, SPQ_LIN_V, SPQ_LIN_O, -1, SPQ_LIN_GATE, SPQ_LIN_UP,
                                 SPQ_LIN_DOWN};

static float **blk_dest(spq_layer *L, int b) {
    return b == B_ATTN_NORM ? &L->attn_norm : b == B_FFN_NORM ? &L->ffn_norm : spq_lin_weight(L, blk_lin[b]);
}

/* (rows, cols) of block tensor b; cols 0 for a vector */
static void blk_shape(const spq_config *c, int b, int64_t *rows, int64_t *cols) {
    if (blk_lin[b] < 0) {
        *rows = c->dim;
        *cols = 0;
        return;
    }
    int r, k;
    spq_lin_shape(c, blk_lin[b], &r, &k);
    *rows = r;
    *cols = k;
}

/* Each head's rows (head_dim of row_bytes) from rotate-half order to
 * interleaved pairs (to_interleaved) or back. */
static void rope_permute(uint8_t *w, size_t row_bytes, int n_heads, int head_dim, int to_interleaved) {
    uint8_t *tmp = spq_malloc((size_t)head_dim * row_bytes);
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        uint8_t *hw = w + (size_t)h * head_dim * row_bytes;
        for (int j = 0; j < half; j++) {
            /* interleaved row 2j <-> half row j, interleaved 2j+1 <-> half j+hd/2 */
            size_t a = (size_t)(to_interleaved ? 2 * j : j), b = (size_t)(to_interleaved ? j : 2 * j);
            size_t a2 = (size_t)(to_interleaved ? 2 * j + 1 : j + half), b2 = (size_t)(to_interleaved ? j + half : 2 * j + 1);
            memcpy(tmp + a * row_bytes, hw + b * row_bytes, row_bytes);
            memcpy(tmp + a2 * row_bytes, hw + b2 * row_bytes, row_bytes);
        }
        memcpy(hw, tmp, (size_t)head_dim * row_bytes);
    }
    free(tmp);
}

/* LLaMA 3 rope scaling as llama.cpp's frequency divisors (out: head_dim/2) */
static void llama3_freq_factors(float *out, const spq_config *c) {
    int half = c->head_dim / 2;
    double low_wl = c->rope_orig_ctx / c->rope_low_freq_factor, high_wl = c->rope_orig_ctx / c->rope_high_freq_factor;
    for (int i = 0; i < half; i++) {
        float f = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
        double wl = 2 * M_PI / f;
        if (wl > low_wl) {
            out[i] = c->rope_factor;
        } else if (wl >= high_wl) {
            double smooth = (c->rope_orig_ctx / wl - c->rope_low_freq_factor) /
                            (c->rope_high_freq_factor - c->rope_low_freq_factor);
            out[i] = (float)(1.0 / ((1 - smooth) / c->rope_factor + smooth));
        } else {
            out[i] = 1.0f;
        }
    }
}

int spq_ggml_grid_of(uint32_t type) {
    return type == SPQ_GGML_Q4_0 ? SPQ_GRID_Q4_0 : type == SPQ_GGML_Q8_0 ? SPQ_GRID_Q8_0 : SPQ_GRID_NONE;
}

/* ---- writing ---- */

/* W (rows, cols) encoded as type (rows of whole blocks for Q4_0/Q8_0);
 * p: the grid parameters W was quantized with, or NULL to round it here */
static void *encode(uint32_t type, const float *W, int64_t rows, int64_t cols, const spq_wparams *p, size_t *nbytes) {
    size_t n = (size_t)rows * cols;
    *nbytes = n / (size_t)spq_ggml_block_size(type) * spq_ggml_type_size(type);
    void *out = spq_malloc(*nbytes);
    if (type == SPQ_GGML_F32) {
        memcpy(out, W, n * sizeof(float));
    } else if (type == SPQ_GGML_F16) {
        spq_f32_to_f16_array(out, W, n);
    } else {
        int grid = spq_ggml_grid_of(type);
        spq_wq_cfg g = {.bits = grid == SPQ_GRID_Q4_0 ? 4 : 8, .sym = 1, .groupsize = SPQ_QK, .grid = grid};
        size_t nb = n / SPQ_QK;
        float *scale = p ? p->scale : spq_malloc(nb * sizeof(float)), *zero = p ? p->zero : spq_malloc(nb * sizeof(float));
        if (!p) spq_wq_params_parallel(scale, zero, W, (int)rows, (int)cols, &g);
        int8_t *codes = spq_malloc(n);
        spq_wq_codes(codes, W, scale, zero, (int)rows, (int)cols, &g);
        if (grid == SPQ_GRID_Q4_0) spq_q4_0_pack(out, codes, scale, n);
        else spq_q8_0_pack(out, codes, scale, n);
        free(codes);
        if (!p) free(scale), free(zero);
    }
    return out;
}

/* a matrix as type; rows that are not whole blocks fall back to F16 (as
 * llama.cpp's converter does) */
static int add_matrix(spq_gguf_writer *w, const char *name, uint32_t type, const float *W, int64_t rows, int64_t cols,
                      const spq_wparams *p, int rope_heads, int head_dim, spq_err *err) {
    if (spq_ggml_grid_of(type) && cols % SPQ_QK) type = SPQ_GGML_F16, p = NULL;
    size_t nbytes;
    void *data = encode(type, W, rows, cols, p, &nbytes);
    if (rope_heads) rope_permute(data, nbytes / (size_t)rows, rope_heads, head_dim, 1);
    int64_t ne[2] = {cols, rows};
    return spq_gguf_add_tensor(w, name, type, 2, ne, data, nbytes, err);
}

static int add_vector(spq_gguf_writer *w, const char *name, const float *x, int64_t n, spq_err *err) {
    float *d = spq_malloc((size_t)n * sizeof(float));
    memcpy(d, x, (size_t)n * sizeof(float));
    return spq_gguf_add_tensor(w, name, SPQ_GGML_F32, 1, &n, d, (size_t)n * sizeof(float), err);
}

static int set_tokenizer(spq_gguf_writer *w, const spq_tokenizer *tok, const spq_config *c, spq_err *err) {
    spq_tok_vocab v;
    if (spq_tok_to_vocab(&v, tok, err)) return -1;
    if (v.n > c->vocab_size) {
        int n = v.n;
        spq_tok_vocab_free(&v);
        return spq_fail(err, "the tokenizer has %d tokens, more than the model's vocab_size %d", n, c->vocab_size);
    }
    spq_gguf_set_str(w, "tokenizer.ggml.model", v.model);
    if (v.pre[0]) spq_gguf_set_str(w, "tokenizer.ggml.pre", v.pre);
    /* llama.cpp wants one token per embedding row: pad a shorter vocabulary */
    int n = c->vocab_size;
    const char **tokens = spq_malloc((size_t)n * sizeof *tokens);
    int *lens = spq_malloc((size_t)n * sizeof *lens);
    float *scores = spq_calloc(n, sizeof *scores);
    int32_t *types = spq_malloc((size_t)n * sizeof *types);
    char **pads = spq_calloc(n, sizeof *pads);
    for (int i = 0; i < n; i++) {
        if (i < v.n) {
            tokens[i] = v.tokens[i];
            lens[i] = v.lens[i];
            types[i] = v.types[i];
            if (v.scores) scores[i] = v.scores[i];
        } else {
            pads[i] = spq_malloc(32);
            snprintf(pads[i], 32, "[PAD%d]", i);
            tokens[i] = pads[i];
            lens[i] = (int)strlen(pads[i]);
            types[i] = SPQ_TT_UNUSED;
        }
    }
    spq_gguf_set_str_arr(w, "tokenizer.ggml.tokens", tokens, lens, (size_t)n);
    if (v.scores) spq_gguf_set_f32_arr(w, "tokenizer.ggml.scores", scores, (size_t)n);
    spq_gguf_set_i32_arr(w, "tokenizer.ggml.token_type", types, (size_t)n);
    if (v.n_merges) spq_gguf_set_str_arr(w, "tokenizer.ggml.merges", (const char *const *)v.merges, NULL, (size_t)v.n_merges);
    if (v.bos >= 0) spq_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v.bos);
    if (v.eos >= 0) spq_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v.eos);
    if (v.unk >= 0) spq_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)v.unk);
    spq_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", v.add_bos);
    spq_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", v.add_eos);
    for (int i = 0; i < n; i++) free(pads[i]);
    free(pads);
    free(tokens);
    free(lens);
    free(scores);
    free(types);
    spq_tok_vocab_free(&v);
    return 0;
}

static uint32_t file_type(uint32_t lin_type) {
    switch (lin_type) {
    case SPQ_GGML_F16: return 1;   /* LLAMA_FTYPE_MOSTLY_F16 */
    case SPQ_GGML_Q4_0: return 2;  /* LLAMA_FTYPE_MOSTLY_Q4_0 */
    case SPQ_GGML_Q8_0: return 7;  /* LLAMA_FTYPE_MOSTLY_Q8_0 */
    default: return 0;             /* LLAMA_FTYPE_ALL_F32 */
    }
}

static int type_ok(uint32_t t) {
    return t == SPQ_GGML_F32 || t == SPQ_GGML_F16 || t == SPQ_GGML_Q8_0 || t == SPQ_GGML_Q4_0;
}

int spq_gguf_save_model(const spq_model *m, const spq_gguf_save_opts *o, const char *path, spq_err *err) {
    const spq_config *c = &m->cfg;
    if (m->packed) return spq_fail(err, "%s: a packed model cannot be written as GGUF (export the fp32 model)", path);
    if (m->r3 || m->r4)
        return spq_fail(err, "%s: the model has online Hadamard rotations (R3/R4), which a plain LLaMA cannot run",
                        path);
    if (!type_ok(o->lin_type) || !type_ok(o->emb_type))
        return spq_fail(err, "%s: GGUF types are F32, F16, Q8_0 or Q4_0", path);
    if (o->wq && (o->wq->cfg.grid != spq_ggml_grid_of(o->lin_type) || !o->wq->cfg.grid))
        return spq_fail(err, "%s: the weights were quantized on another grid than %s's", path,
                        spq_ggml_type_name(o->lin_type));
    spq_gguf_writer w;
    spq_gguf_writer_init(&w);
    spq_gguf_set_str(&w, "general.architecture", "llama");
    if (o->name) spq_gguf_set_str(&w, "general.name", o->name);
    spq_gguf_set_u32(&w, "general.file_type", file_type(o->lin_type));
    if (spq_ggml_grid_of(o->lin_type) || spq_ggml_grid_of(o->emb_type))
        spq_gguf_set_u32(&w, "general.quantization_version", 2);
    spq_gguf_set_u32(&w, "llama.vocab_size", (uint32_t)c->vocab_size);
    spq_gguf_set_u32(&w, "llama.context_length", (uint32_t)c->seq_len);
    spq_gguf_set_u32(&w, "llama.embedding_length", (uint32_t)c->dim);
    spq_gguf_set_u32(&w, "llama.block_count", (uint32_t)c->n_layers);
    spq_gguf_set_u32(&w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    spq_gguf_set_u32(&w, "llama.attention.head_count", (uint32_t)c->n_heads);
    spq_gguf_set_u32(&w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    spq_gguf_set_u32(&w, "llama.attention.key_length", (uint32_t)c->head_dim);
    spq_gguf_set_u32(&w, "llama.attention.value_length", (uint32_t)c->head_dim);
    spq_gguf_set_f32(&w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    spq_gguf_set_f32(&w, "llama.rope.freq_base", c->rope_theta);
    spq_gguf_set_u32(&w, "llama.rope.dimension_count", (uint32_t)c->head_dim);
    if (c->rope_llama3) {
        spq_gguf_set_f32(&w, "spinq.rope_scaling.factor", c->rope_factor);
        spq_gguf_set_f32(&w, "spinq.rope_scaling.low_freq_factor", c->rope_low_freq_factor);
        spq_gguf_set_f32(&w, "spinq.rope_scaling.high_freq_factor", c->rope_high_freq_factor);
        spq_gguf_set_u32(&w, "spinq.rope_scaling.original_max_position_embeddings", (uint32_t)c->rope_orig_ctx);
    }
    if (o->source_info) spq_gguf_set_str(&w, "spinq.info", o->source_info);
    int rc = set_tokenizer(&w, o->tok, c, err);
    if (!rc && o->chat_template) spq_gguf_set_str(&w, "tokenizer.chat_template", o->chat_template);

    if (o->vocab_only) {
        if (!rc) rc = spq_gguf_writer_save(&w, path, err);
        spq_gguf_writer_free(&w);
        return rc;
    }
    int tied = m->lm_head == m->tok_emb;
    if (!rc) rc = add_matrix(&w, "token_embd.weight", o->emb_type, m->tok_emb, c->vocab_size, c->dim, NULL, 0, 0, err);
    char name[64];
    for (int l = 0; l < c->n_layers && !rc; l++) {
        spq_layer *L = &m->layers[l];
        for (int b = 0; b < B_N && !rc; b++) {
            int64_t rows, cols;
            blk_shape(c, b, &rows, &cols);
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, blk_names[b]);
            const float *x = *blk_dest(L, b);
            if (!cols) {
                rc = add_vector(&w, name, x, rows, err);
                continue;
            }
            const spq_wparams *p = o->wq ? spq_wquant_at(o->wq, l, blk_lin[b]) : NULL;
            int heads = b == B_Q ? c->n_heads : b == B_K ? c->n_kv_heads : 0;
            rc = add_matrix(&w, name, o->lin_type, x, rows, cols, p, heads, c->head_dim, err);
        }
    }
    if (!rc) rc = add_vector(&w, "output_norm.weight", m->final_norm, c->dim, err);
    if (!rc && !tied)
        rc = add_matrix(&w, "output.weight", o->emb_type, m->lm_head, c->vocab_size, c->dim, NULL, 0, 0, err);
    if (!rc && c->rope_llama3) {
        float *ff = spq_malloc((size_t)c->head_dim / 2 * sizeof(float));
        llama3_freq_factors(ff, c);
        rc = add_vector(&w, "rope_freqs.weight", ff, c->head_dim / 2, err);
        free(ff);
    }
    if (!rc) rc = spq_gguf_writer_save(&w, path, err);
    spq_gguf_writer_free(&w);
    return rc;
}

/* ---- reading ---- */

static int get_u(const spq_gguf_file *f, const char *key, int *out, int def, spq_err *err) {
    int64_t v;
    int rc = spq_gguf_get_int(f, key, 1, INT_MAX, &v, def < 0, err);
    if (rc < 0) return -1;
    *out = rc == 0 ? (int)v : def;
    return 0;
}

static int get_id(const spq_gguf_file *f, const char *key, int *out, spq_err *err) {
    int64_t v;
    int rc = spq_gguf_get_int(f, key, 0, INT_MAX, &v, 0, err);
    if (rc < 0) return -1;
    *out = rc == 0 ? (int)v : -1;
    return 0;
}

static int read_config(spq_config *c, const spq_gguf_file *f, spq_err *err) {
    memset(c, 0, sizeof *c);
    char *arch = NULL;
    if (spq_gguf_get_str(f, "general.architecture", &arch, 1, err)) return -1;
    int bad = strcmp(arch, "llama");
    if (bad) spq_fail(err, "%s: general.architecture \"%s\" is not supported (spinq runs llama)", f->path, arch);
    free(arch);
    if (bad) return -1;
    char *rs = NULL;
    if (spq_gguf_get_str(f, "llama.rope.scaling.type", &rs, 0, err) < 0) return -1;
    bad = rs && strcmp(rs, "none");
    if (bad) spq_fail(err, "%s: llama.rope.scaling.type \"%s\" is not supported", f->path, rs);
    free(rs);
    if (bad) return -1;
    if (get_u(f, "llama.block_count", &c->n_layers, -1, err) || get_u(f, "llama.embedding_length", &c->dim, -1, err) ||
        get_u(f, "llama.feed_forward_length", &c->hidden_dim, -1, err) ||
        get_u(f, "llama.attention.head_count", &c->n_heads, -1, err) ||
        get_u(f, "llama.attention.head_count_kv", &c->n_kv_heads, c->n_heads, err) ||
        get_u(f, "llama.context_length", &c->seq_len, -1, err) ||
        get_u(f, "llama.attention.key_length", &c->head_dim, c->dim / c->n_heads, err))
        return -1;
    int vl, rd;
    if (get_u(f, "llama.attention.value_length", &vl, c->head_dim, err) ||
        get_u(f, "llama.rope.dimension_count", &rd, c->head_dim, err))
        return -1;
    if (vl != c->head_dim)
        return spq_fail(err, "%s: llama.attention.value_length %d differs from key_length %d (not supported)",
                        f->path, vl, c->head_dim);
    if (rd != c->head_dim)
        return spq_fail(err, "%s: llama.rope.dimension_count %d differs from the head size %d (partial rotary is not "
                             "supported)", f->path, rd, c->head_dim);
    double eps, theta = 10000.0;
    if (spq_gguf_get_float(f, "llama.attention.layer_norm_rms_epsilon", &eps, 1, err) ||
        spq_gguf_get_float(f, "llama.rope.freq_base", &theta, 0, err) < 0)
        return -1;
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    const spq_gguf_tensor *emb = spq_gguf_find_tensor(f, "token_embd.weight");
    if (!emb) return spq_fail(err, "%s: tensor \"token_embd.weight\" is missing", f->path);
    if (emb->n_dims != 2 || emb->ne[1] > INT_MAX)
        return spq_fail(err, "%s: tensor \"token_embd.weight\" is not a matrix of at most 2^31 rows", f->path);
    c->vocab_size = (int)emb->ne[1];
    int vs;
    if (get_u(f, "llama.vocab_size", &vs, c->vocab_size, err)) return -1;
    if (vs != c->vocab_size)
        return spq_fail(err, "%s: llama.vocab_size %d differs from token_embd.weight's %d rows", f->path, vs,
                        c->vocab_size);
    c->tied = !spq_gguf_find_tensor(f, "output.weight");
    if (get_id(f, "tokenizer.ggml.bos_token_id", &c->bos_id, err) ||
        get_id(f, "tokenizer.ggml.eos_token_id", &c->eos_id, err))
        return -1;
    /* end-of-turn tokens of chat models end a sequence too */
    const char *more[] = {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
    for (int i = 0; i < 2; i++) {
        int id;
        if (get_id(f, more[i], &id, err)) return -1;
        if (id < 0 || id == c->eos_id) continue;
        if (!c->n_eos && c->eos_id >= 0) c->eos_ids[c->n_eos++] = c->eos_id;
        c->eos_ids[c->n_eos++] = id;
        if (c->eos_id < 0) c->eos_id = id;
    }
    return spq_config_check(c, f->path, err);
}

/* LLaMA 3 rope scaling from rope_freqs: spinq's own keys, else LLaMA 3.x's
 * published settings; either must reproduce the tensor */
static int read_rope_freqs(spq_config *c, const spq_gguf_file *f, const spq_gguf_tensor *t, spq_err *err) {
    int half = c->head_dim / 2;
    if (t->n_dims != 1 || t->ne[0] != half || t->type != SPQ_GGML_F32)
        return spq_fail(err, "%s: tensor \"rope_freqs.weight\" must be F32 of %d values", f->path, half);
    float *ff = spq_malloc((size_t)half * sizeof(float)), *mine = spq_malloc((size_t)half * sizeof(float));
    memcpy(ff, t->data, (size_t)half * sizeof(float));
    double fac = 0, lo = 1, hi = 4;
    int orig = 8192, rc = 0;
    for (int i = 0; i < half; i++) fac = ff[i] > fac ? ff[i] : fac;
    if (spq_gguf_get_float(f, "spinq.rope_scaling.factor", &fac, 0, err) < 0 ||
        spq_gguf_get_float(f, "spinq.rope_scaling.low_freq_factor", &lo, 0, err) < 0 ||
        spq_gguf_get_float(f, "spinq.rope_scaling.high_freq_factor", &hi, 0, err) < 0 ||
        get_u(f, "spinq.rope_scaling.original_max_position_embeddings", &orig, orig, err))
        rc = -1;
    if (!rc) {
        c->rope_llama3 = 1;
        c->rope_factor = (float)fac;
        c->rope_low_freq_factor = (float)lo;
        c->rope_high_freq_factor = (float)hi;
        c->rope_orig_ctx = orig;
        if (spq_config_check(c, f->path, err)) rc = -1;
    }
    if (!rc) {
        llama3_freq_factors(mine, c);
        for (int i = 0; i < half && !rc; i++)
            if (!(fabsf(mine[i] - ff[i]) <= 1e-4f * fabsf(ff[i])))
                rc = spq_fail(err, "%s: tensor \"rope_freqs.weight\": value %d (%g) is not LLaMA 3's rope scaling "
                                   "(factor %g, low/high freq factor %g/%g, original context %d gives %g)",
                              f->path, i, ff[i], fac, lo, hi, orig, mine[i]);
    }
    free(ff);
    free(mine);
    return rc;
}

/* *tp = tensor name after checking its type and its shape (rows x cols, or
 * rows when cols is 0) */
static int check_tensor(const spq_gguf_tensor **tp, const spq_gguf_file *f, const char *name, int64_t rows,
                        int64_t cols, spq_err *err) {
    const spq_gguf_tensor *t = *tp = spq_gguf_find_tensor(f, name);
    if (!t) return spq_fail(err, "%s: tensor \"%s\" is missing", f->path, name);
    if (t->type != SPQ_GGML_F32 && t->type != SPQ_GGML_F16 && t->type != SPQ_GGML_BF16 && t->type != SPQ_GGML_Q8_0 &&
        t->type != SPQ_GGML_Q4_0)
        return spq_fail(err, "%s: tensor \"%s\": type %s is not supported (F32, F16, BF16, Q8_0, Q4_0)", f->path, name,
                        spq_ggml_type_name(t->type));
    int64_t want0 = cols ? cols : rows, want1 = cols ? rows : 1;
    if (t->n_dims != (cols ? 2u : 1u) || t->ne[0] != want0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1)
        return spq_fail(err, "%s: tensor \"%s\" has shape [%lld, %lld, %lld, %lld], expected [%lld%s%lld]", f->path,
                        name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3],
                        (long long)want0, cols ? ", " : "", cols ? (long long)want1 : 0LL);
    return 0;
}

static void to_f32(float *out, const spq_gguf_tensor *t) {
    size_t n = (size_t)t->ne[0] * t->ne[1];
    switch (t->type) {
    case SPQ_GGML_F32: memcpy(out, t->data, n * sizeof(float)); break;
    case SPQ_GGML_F16: spq_f16_to_f32_array(out, t->data, n); break;
    case SPQ_GGML_BF16: spq_bf16_to_f32_array(out, t->data, n); break;
    case SPQ_GGML_Q8_0: spq_q8_0_decode(out, (const spq_block_q8_0 *)t->data, n); break;
    default: spq_q4_0_decode(out, (const spq_block_q4_0 *)t->data, n); break;
    }
}

/* every tensor the config implies: checked (load 0) or converted (load 1) */
static int walk_tensors(spq_model *m, const spq_config *c, const spq_gguf_file *f, int load, spq_err *err) {
    const spq_gguf_tensor *t;
    char name[64];
    if (check_tensor(&t, f, "token_embd.weight", c->vocab_size, c->dim, err)) return -1;
    if (load) to_f32(m->tok_emb, t);
    for (int l = 0; l < c->n_layers; l++)
        for (int b = 0; b < B_N; b++) {
            int64_t rows, cols;
            blk_shape(c, b, &rows, &cols);
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, blk_names[b]);
            if (check_tensor(&t, f, name, rows, cols, err)) return -1;
            if (!load) continue;
            float *dst = *blk_dest(&m->layers[l], b);
            to_f32(dst, t);
            if (b == B_Q || b == B_K)
                rope_permute((uint8_t *)dst, (size_t)cols * sizeof(float), b == B_Q ? c->n_heads : c->n_kv_heads,
                             c->head_dim, 0);
        }
    if (check_tensor(&t, f, "output_norm.weight", c->dim, 0, err)) return -1;
    if (load) to_f32(m->final_norm, t);
    if (!c->tied) {
        if (check_tensor(&t, f, "output.weight", c->vocab_size, c->dim, err)) return -1;
        if (load) to_f32(m->lm_head, t);
    }
    return 0;
}

int spq_model_load_gguf(spq_model *m, const char *path, spq_err *err) {
    memset(m, 0, sizeof *m);
    spq_gguf_file f;
    if (spq_gguf_open(&f, path, err)) return -1;
    spq_config c;
    const spq_gguf_tensor *rf = NULL;
    int rc = read_config(&c, &f, err);
    if (!rc && (rf = spq_gguf_find_tensor(&f, "rope_freqs.weight"))) rc = read_rope_freqs(&c, &f, rf, err);
    if (!rc && !rf && spq_gguf_find(&f, "spinq.rope_scaling.factor"))
        rc = spq_fail(err, "%s: spinq.rope_scaling.* without the tensor \"rope_freqs.weight\"", path);
    if (!rc) rc = walk_tensors(m, &c, &f, 0, err);
    if (!rc) {
        spq_model_alloc(m, &c);
        walk_tensors(m, &c, &f, 1, err);
        m->path = spq_strdup(path);
        m->format = spq_strdup("gguf");
    }
    spq_gguf_close(&f);
    return rc;
}

/* ---- tokenizer ---- */

/* a NUL-terminated copy of a GGUF string (NUL inside refused) */
static char *str_copy(const spq_gguf_str *s) {
    if (memchr(s->s, 0, s->len)) return NULL;
    char *c = spq_malloc(s->len + 1);
    memcpy(c, s->s, s->len);
    c[s->len] = 0;
    return c;
}

static int read_vocab(spq_tok_vocab *v, const spq_gguf_file *f, spq_err *err) {
    memset(v, 0, sizeof *v);
    v->bos = v->eos = v->unk = -1;
    char *model = NULL, *pre = NULL;
    const spq_gguf_kv *tokens, *scores = NULL, *types = NULL, *merges = NULL;
    if (spq_gguf_get_str(f, "tokenizer.ggml.model", &model, 1, err) ||
        spq_gguf_get_str(f, "tokenizer.ggml.pre", &pre, 0, err) < 0 ||
        spq_gguf_get_arr(f, "tokenizer.ggml.tokens", SPQ_GGUF_STR, &tokens, 1, err) ||
        spq_gguf_get_arr(f, "tokenizer.ggml.scores", SPQ_GGUF_F32, &scores, 0, err) < 0 ||
        spq_gguf_get_arr(f, "tokenizer.ggml.token_type", SPQ_GGUF_I32, &types, 0, err) < 0 ||
        spq_gguf_get_arr(f, "tokenizer.ggml.merges", SPQ_GGUF_STR, &merges, 0, err) < 0) {
        free(model);
        free(pre);
        return -1;
    }
    snprintf(v->model, sizeof v->model, "%s", model);
    snprintf(v->pre, sizeof v->pre, "%s", pre ? pre : "");
    int long_name = strlen(model) >= sizeof v->model || (pre && strlen(pre) >= sizeof v->pre);
    free(model);
    free(pre);
    if (long_name) return spq_fail(err, "%s: tokenizer.ggml.model or .pre is not a known name", f->path);
    if (tokens->n > (1u << 22)) return spq_fail(err, "%s: tokenizer.ggml.tokens: %llu tokens (at most 4194304)",
                                                f->path, (unsigned long long)tokens->n);
    v->n = (int)tokens->n;
    if ((scores && scores->n != tokens->n) || (types && types->n != tokens->n))
        return spq_fail(err, "%s: tokenizer.ggml.%s has %llu entries for %d tokens", f->path,
                        scores && scores->n != tokens->n ? "scores" : "token_type",
                        (unsigned long long)(scores && scores->n != tokens->n ? scores->n : types->n), v->n);
    v->tokens = spq_calloc(v->n ? v->n : 1, sizeof *v->tokens);
    v->lens = spq_calloc(v->n ? v->n : 1, sizeof *v->lens);
    for (int i = 0; i < v->n; i++) {
        if (tokens->strs[i].len > (1u << 16))
            return spq_fail(err, "%s: tokenizer.ggml.tokens[%d] is %zu bytes long", f->path, i, tokens->strs[i].len);
        v->tokens[i] = spq_malloc(tokens->strs[i].len + 1);
        memcpy(v->tokens[i], tokens->strs[i].s, tokens->strs[i].len);
        v->tokens[i][tokens->strs[i].len] = 0;
        v->lens[i] = (int)tokens->strs[i].len;
    }
    if (scores) {
        v->scores = spq_malloc((size_t)(v->n ? v->n : 1) * sizeof(float));
        memcpy(v->scores, scores->data, (size_t)v->n * sizeof(float));
    }
    v->types = spq_malloc((size_t)(v->n ? v->n : 1) * sizeof(int32_t));
    if (types) memcpy(v->types, types->data, (size_t)v->n * sizeof(int32_t));
    else for (int i = 0; i < v->n; i++) v->types[i] = SPQ_TT_NORMAL;
    if (merges) {
        if (merges->n > (1u << 24)) return spq_fail(err, "%s: tokenizer.ggml.merges: too many", f->path);
        v->merges = spq_calloc(merges->n ? merges->n : 1, sizeof *v->merges);
        for (uint64_t i = 0; i < merges->n; i++) {
            if (!(v->merges[i] = str_copy(&merges->strs[i])))
                return spq_fail(err, "%s: tokenizer.ggml.merges[%llu] contains a NUL byte", f->path,
                                (unsigned long long)i);
            v->n_merges++;
        }
    }
    int gpt2 = !strcmp(v->model, "gpt2");
    v->add_bos = 1;
    v->add_eos = 0;
    if (get_id(f, "tokenizer.ggml.bos_token_id", &v->bos, err) ||
        get_id(f, "tokenizer.ggml.eos_token_id", &v->eos, err) ||
        get_id(f, "tokenizer.ggml.unknown_token_id", &v->unk, err) ||
        spq_gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos, 0, err) < 0 ||
        spq_gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos, 0, err) < 0)
        return -1;
    /* llama.cpp's defaults for SentencePiece vocabularies without the keys */
    if (!gpt2 && v->unk < 0 && !spq_gguf_find(f, "tokenizer.ggml.unknown_token_id"))
        for (int i = 0; i < v->n && v->unk < 0; i++)
            if (v->types[i] == SPQ_TT_UNKNOWN) v->unk = i;
    return 0;
}

int spq_gguf_tokenizer(spq_tokenizer **t, const char *path, spq_err *err) {
    *t = NULL;
    spq_gguf_file f;
    if (spq_gguf_open(&f, path, err)) return -1;
    spq_tok_vocab v;
    int rc = read_vocab(&v, &f, err);
    if (!rc) rc = spq_tok_from_vocab(t, &v, path, err);
    spq_tok_vocab_free(&v);
    spq_gguf_close(&f);
    return rc;
}

json_t *spq_gguf_describe(const char *path, spq_err *err) {
    spq_gguf_file f;
    if (spq_gguf_open(&f, path, err)) return NULL;
    json_t *types = json_object();
    for (uint64_t i = 0; i < f.n_tensors; i++) {
        const char *tn = spq_ggml_type_name(f.tensors[i].type);
        json_t *n = json_object_get(types, tn);
        json_object_set_new(types, tn, json_integer(n ? json_integer_value(n) + 1 : 1));
    }
    int64_t ft = -1;
    char *tm = NULL;
    spq_err ignore;
    spq_gguf_get_int(&f, "general.file_type", 0, INT32_MAX, &ft, 0, &ignore);
    spq_gguf_get_str(&f, "tokenizer.ggml.model", &tm, 0, &ignore);
    json_t *j = json_pack("{s:i, s:I, s:I, s:o}", "version", (int)f.version, "tensors", (json_int_t)f.n_tensors,
                          "keys", (json_int_t)f.n_kv, "tensor_types", types);
    json_object_set_new(j, "file_type", ft >= 0 ? json_integer(ft) : json_null());
    json_object_set_new(j, "tokenizer_model", tm ? json_string(tm) : json_null());
    json_object_set_new(j, "chat_template", json_boolean(spq_gguf_find(&f, "tokenizer.chat_template") != NULL));
    json_object_set_new(j, "tied", json_boolean(!spq_gguf_find_tensor(&f, "output.weight")));
    free(tm);
    spq_gguf_close(&f);
    return j;
}
