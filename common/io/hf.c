/* hf.c - loads a Hugging Face LLaMA directory into the fp32 model.
 *
 * Moving parts:
 *  - config.json -> spq_config (spq_hf_config_parse): every key typed and
 *    range-checked through json_util, unsupported variants (another
 *    architecture, biases, an activation other than silu, rope scaling other
 *    than llama3, pre-quantized checkpoints) refused by name.
 *  - the weight files (weights_open): model.safetensors, or the shards that
 *    model.safetensors.index.json's weight_map names, each opened (mapped
 *    and validated) once.
 *  - a plan of the tensors the config implies (plan_entry): name, shape and
 *    destination. Every tensor is found and shape-checked before anything is
 *    allocated, so a config that promises a huge model fails on a missing
 *    tensor rather than on memory; then each is converted once to fp32.
 * HF stores q/k rows in rotate-half order, which is our in-memory layout, so
 * nothing is permuted. Tensors we do not use (rotary_emb.inv_freq of old
 * checkpoints, a tied lm_head kept on disk) are ignored.
 *
 * Saving (spq_model_save_hf) walks the same plan to write model.safetensors
 * in F32, F16 or BF16, and writes the config.json that loads it back. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf.h"
#include "common/base/half.h"
#include "common/base/json_util.h"
#include "common/model/linear.h"
#include "common/model/mapped.h"
#include "common/tok/tokenizer.h"

/* ---- config.json ---- */

static int check_architecture(const json_t *j, const char *src, spq_err *err) {
    json_t *arch = spq_json_present(j, "architectures");
    const char *mt;
    if (spq_json_opt_str(&mt, NULL, j, "model_type", src, err)) return -1;
    if (arch) {
        if (!json_is_array(arch)) return spq_json_type_error(err, src, "architectures", "an array of strings", arch);
        size_t i;
        json_t *a;
        json_array_foreach(arch, i, a) {
            if (!json_is_string(a))
                return spq_json_type_error(err, src, "architectures", "an array of strings", arch);
            if (!strcmp(json_string_value(a), "LlamaForCausalLM")) return 0;
        }
        json_t *first = json_array_get(arch, 0);
        return spq_fail(err, "%s: architectures: unsupported architecture \"%s\" (spinq runs LlamaForCausalLM)", src,
                        first ? json_string_value(first) : "(empty list)");
    }
    if (!mt) return spq_fail(err, "%s: architectures: missing, and no model_type either", src);
    if (strcmp(mt, "llama"))
        return spq_fail(err, "%s: model_type: unsupported architecture \"%s\" (spinq runs llama)", src, mt);
    return 0;
}

static int parse_rope_scaling(spq_config *c, const json_t *j, const char *src, spq_err *err) {
    json_t *rs = spq_json_present(j, "rope_scaling");
    if (!rs) return 0;
    if (!json_is_object(rs)) return spq_json_type_error(err, src, "rope_scaling", "an object or null", rs);
    char sub[1024];
    snprintf(sub, sizeof sub, "%s: rope_scaling", src);
    const char *type;
    const char *key = json_object_get(rs, "rope_type") ? "rope_type" : "type";
    if (spq_json_get_str(&type, rs, key, sub, err)) return -1;
    if (!strcmp(type, "default")) return 0;
    if (strcmp(type, "llama3"))
        return spq_fail(err, "%s: %s: \"%s\" is not supported (only llama3 scaling or none)", sub, key, type);
    double f, lo, hi;
    if (spq_json_get_num(&f, rs, "factor", sub, err) || spq_json_get_num(&lo, rs, "low_freq_factor", sub, err) ||
        spq_json_get_num(&hi, rs, "high_freq_factor", sub, err) ||
        spq_json_get_int(&c->rope_orig_ctx, rs, "original_max_position_embeddings", 1, INT_MAX, sub, err))
        return -1;
    c->rope_llama3 = 1;
    c->rope_factor = (float)f;
    c->rope_low_freq_factor = (float)lo;
    c->rope_high_freq_factor = (float)hi;
    return 0;
}

/* eos_token_id: an integer, a list of integers (the first is eos_id), or null */
static int parse_eos(spq_config *c, const json_t *j, const char *src, spq_err *err) {
    json_t *e = spq_json_present(j, "eos_token_id");
    c->eos_id = -1;
    c->n_eos = 0;
    if (!e) return 0;
    if (json_is_integer(e)) return spq_json_get_int(&c->eos_id, j, "eos_token_id", 0, INT_MAX, src, err);
    if (!json_is_array(e) || json_array_size(e) == 0)
        return spq_json_type_error(err, src, "eos_token_id", "an integer or a non-empty list of integers", e);
    if (json_array_size(e) > SPQ_MAX_EOS)
        return spq_fail(err, "%s: eos_token_id: %zu ids, at most %d supported", src, json_array_size(e), SPQ_MAX_EOS);
    size_t i;
    json_t *v;
    json_array_foreach(e, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT_MAX)
            return spq_json_type_error(err, src, "eos_token_id", "an integer or a list of non-negative integers", e);
        c->eos_ids[c->n_eos++] = (int)json_integer_value(v);
    }
    c->eos_id = c->eos_ids[0];
    return 0;
}

static int unsupported_flags(const json_t *j, const char *src, spq_err *err) {
    int ab, mb;
    if (spq_json_opt_bool(&ab, 0, j, "attention_bias", src, err) ||
        spq_json_opt_bool(&mb, 0, j, "mlp_bias", src, err))
        return -1;
    if (ab) return spq_fail(err, "%s: attention_bias: true is not supported (LLaMA's projections have no bias)", src);
    if (mb) return spq_fail(err, "%s: mlp_bias: true is not supported (LLaMA's MLP has no bias)", src);
    const char *act;
    if (spq_json_opt_str(&act, "silu", j, "hidden_act", src, err)) return -1;
    if (strcmp(act, "silu"))
        return spq_fail(err, "%s: hidden_act: \"%s\" is not supported (LLaMA uses silu)", src, act);
    if (spq_json_present(j, "quantization_config"))
        return spq_fail(err, "%s: quantization_config: pre-quantized checkpoints are not supported "
                        "(load the fp16/bf16/fp32 model)", src);
    return 0;
}

int spq_hf_config_parse(spq_config *c, const json_t *j, const char *src, spq_err *err) {
    memset(c, 0, sizeof *c);
    if (check_architecture(j, src, err) || unsupported_flags(j, src, err)) return -1;
    if (spq_json_get_int(&c->dim, j, "hidden_size", 1, INT_MAX, src, err) ||
        spq_json_get_int(&c->hidden_dim, j, "intermediate_size", 1, INT_MAX, src, err) ||
        spq_json_get_int(&c->n_layers, j, "num_hidden_layers", 1, INT_MAX, src, err) ||
        spq_json_get_int(&c->n_heads, j, "num_attention_heads", 1, INT_MAX, src, err) ||
        spq_json_opt_int(&c->n_kv_heads, c->n_heads, j, "num_key_value_heads", 1, INT_MAX, src, err) ||
        spq_json_get_int(&c->vocab_size, j, "vocab_size", 1, INT_MAX, src, err) ||
        spq_json_get_int(&c->seq_len, j, "max_position_embeddings", 1, INT_MAX, src, err))
        return -1;
    if (spq_json_present(j, "head_dim")) {
        if (spq_json_get_int(&c->head_dim, j, "head_dim", 1, INT_MAX, src, err)) return -1;
    } else {
        if (c->dim % c->n_heads)
            return spq_fail(err, "%s: hidden_size %d is not a multiple of num_attention_heads %d (and no head_dim)",
                            src, c->dim, c->n_heads);
        c->head_dim = c->dim / c->n_heads;
    }
    double eps, theta;
    if (spq_json_get_num(&eps, j, "rms_norm_eps", src, err) ||
        spq_json_opt_num(&theta, 10000.0, j, "rope_theta", src, err))
        return -1;
    if (!(eps > 0)) return spq_fail(err, "%s: rms_norm_eps: must be positive (got %g)", src, eps);
    if (!(theta > 0)) return spq_fail(err, "%s: rope_theta: must be positive (got %g)", src, theta);
    c->norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    if (parse_rope_scaling(c, j, src, err) || spq_json_opt_bool(&c->tied, 0, j, "tie_word_embeddings", src, err) ||
        spq_json_opt_int(&c->bos_id, -1, j, "bos_token_id", 0, INT_MAX, src, err) || parse_eos(c, j, src, err))
        return -1;
    return spq_config_check(c, src, err);
}

/* ---- weight files ---- */

typedef struct {
    char *index_path;    /* NULL for a single model.safetensors */
    json_t *index;       /* the parsed index (owns weight_map) */
    json_t *weight_map;  /* tensor name -> shard file name */
    int n_files;
    char **file_names;   /* (n_files) as the index names them */
    spq_st_file *files;  /* (n_files) */
} weights;

static void weights_close(weights *w) {
    for (int i = 0; i < w->n_files; i++) {
        if (w->files) spq_st_close(&w->files[i]);  /* NULL: a mapped model took them */
        free(w->file_names[i]);
    }
    free(w->files);
    free(w->file_names);
    free(w->index_path);
    json_decref(w->index);
    memset(w, 0, sizeof *w);
}

static int weights_add_file(weights *w, const char *dir, const char *name, spq_err *err) {
    w->files = spq_realloc(w->files, (size_t)(w->n_files + 1) * sizeof *w->files);
    w->file_names = spq_realloc(w->file_names, (size_t)(w->n_files + 1) * sizeof *w->file_names);
    char *path = spq_path_join(dir, name);
    int rc = spq_st_open(&w->files[w->n_files], path, err);
    free(path);
    if (rc) return -1;
    w->file_names[w->n_files++] = spq_strdup(name);
    return 0;
}

/* a shard name must stay inside the model directory */
static int shard_name_ok(const char *s) {
    if (!s[0] || s[0] == '/') return 0;
    for (const char *p = s; *p; p++)
        if (p[0] == '.' && p[1] == '.' && (p == s || p[-1] == '/') && (p[2] == '/' || p[2] == 0)) return 0;
    return 1;
}

static int weights_open_index(weights *w, const char *dir, spq_err *err) {
    const char *src = w->index_path;
    if (!(w->index = spq_json_load_object(src, err))) return -1;
    w->weight_map = json_object_get(w->index, "weight_map");
    if (!json_is_object(w->weight_map))
        return spq_json_type_error(err, src, "weight_map", "an object (tensor name -> shard file)", w->weight_map);
    const char *name;
    json_t *v;
    json_object_foreach(w->weight_map, name, v) {
        if (!json_is_string(v) || !shard_name_ok(json_string_value(v)))
            return spq_fail(err, "%s: weight_map: \"%s\": expected a shard file name inside the model directory",
                            src, name);
        const char *shard = json_string_value(v);
        int seen = 0;
        for (int i = 0; i < w->n_files && !seen; i++) seen = !strcmp(w->file_names[i], shard);
        if (!seen && weights_add_file(w, dir, shard, err))
            return spq_fail_prefix(err, "%s: weight_map: shard \"%s\" (of tensor \"%s\")", src, shard, name);
    }
    return 0;
}

static int weights_open(weights *w, const char *dir, spq_err *err) {
    memset(w, 0, sizeof *w);
    char *single = spq_path_join(dir, "model.safetensors");
    int have_single = spq_file_exists(single);
    free(single);
    if (have_single) return weights_add_file(w, dir, "model.safetensors", err);
    w->index_path = spq_path_join(dir, "model.safetensors.index.json");
    if (spq_file_exists(w->index_path)) return weights_open_index(w, dir, err);
    return spq_fail(err, "%s: no model.safetensors or model.safetensors.index.json (PyTorch .bin weights are not "
                    "supported)", dir);
}

/* Finds tensor `name` and the file that holds it. */
static int weights_find(const spq_st_file **f, const spq_st_tensor **t, const weights *w, const char *name,
                        spq_err *err) {
    int fi = 0;
    if (w->weight_map) {
        json_t *v = json_object_get(w->weight_map, name);
        if (!v) return spq_fail(err, "%s: weight_map: tensor \"%s\" is missing", w->index_path, name);
        for (fi = 0; fi < w->n_files; fi++)
            if (!strcmp(w->file_names[fi], json_string_value(v))) break;
    }
    *f = &w->files[fi];
    *t = spq_st_find(*f, name);
    if (!*t)
        return spq_fail(err, "%s: tensor \"%s\" is missing%s", (*f)->path, name,
                        w->weight_map ? " (the index places it in this shard)" : "");
    return 0;
}

/* ---- the plan: every tensor the config implies ---- */

enum { T_EMB, T_ATTN_NORM, T_WQ, T_WK, T_WV, T_WO, T_FFN_NORM, T_GATE, T_UP, T_DOWN, T_NORM, T_LM_HEAD };

typedef struct {
    char name[80];
    int kind, layer, ndim;
    int64_t shape[2];
    const spq_st_file *f;
    const spq_st_tensor *t;
} planned;

static const char *layer_names[] = {
    [T_ATTN_NORM] = "input_layernorm",     [T_WQ] = "self_attn.q_proj", [T_WK] = "self_attn.k_proj",
    [T_WV] = "self_attn.v_proj",           [T_WO] = "self_attn.o_proj", [T_FFN_NORM] = "post_attention_layernorm",
    [T_GATE] = "mlp.gate_proj",            [T_UP] = "mlp.up_proj",      [T_DOWN] = "mlp.down_proj",
};

static void plan_set(planned *p, int kind, int layer, int64_t rows, int64_t cols) {
    p->kind = kind;
    p->layer = layer;
    p->ndim = cols ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols;
    if (kind == T_EMB) snprintf(p->name, sizeof p->name, "model.embed_tokens.weight");
    else if (kind == T_NORM) snprintf(p->name, sizeof p->name, "model.norm.weight");
    else if (kind == T_LM_HEAD) snprintf(p->name, sizeof p->name, "lm_head.weight");
    else snprintf(p->name, sizeof p->name, "model.layers.%d.%s.weight", layer, layer_names[kind]);
}

/* Entry i of the plan, i in [0, plan_size): computed on demand rather than
 * stored, so a config with absurd sizes costs nothing before it fails. */
static long long plan_size(const spq_config *c) {
    return 2 + 9LL * c->n_layers + !c->tied;
}

static void plan_entry(planned *p, const spq_config *c, long long i) {
    int64_t D = c->dim, H = c->hidden_dim, V = c->vocab_size;
    int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    long long last_layer = 9LL * c->n_layers;
    memset(p, 0, sizeof *p);
    if (i == 0) {
        plan_set(p, T_EMB, 0, V, D);
    } else if (i == last_layer + 1) {
        plan_set(p, T_NORM, 0, D, 0);
    } else if (i == last_layer + 2) {
        plan_set(p, T_LM_HEAD, 0, V, D);
    } else {
        /* (rows, cols) of each layer tensor as indices into sizes; -1: a vector */
        static const int dims[][2] = {[T_ATTN_NORM] = {0, -1}, [T_WQ] = {1, 0}, [T_WK] = {2, 0},
                                      [T_WV] = {2, 0},         [T_WO] = {0, 1}, [T_FFN_NORM] = {0, -1},
                                      [T_GATE] = {3, 0},       [T_UP] = {3, 0}, [T_DOWN] = {0, 3}};
        const int64_t sizes[] = {D, qd, kvd, H};
        int kind = T_ATTN_NORM + (int)((i - 1) % 9);
        plan_set(p, kind, (int)((i - 1) / 9), sizes[dims[kind][0]], dims[kind][1] < 0 ? 0 : sizes[dims[kind][1]]);
    }
}

static float *plan_dest(spq_model *m, const planned *p) {
    spq_layer *L = &m->layers[p->layer];
    switch (p->kind) {
    case T_EMB: return m->tok_emb;
    case T_ATTN_NORM: return L->attn_norm;
    case T_WQ: return L->wq;
    case T_WK: return L->wk;
    case T_WV: return L->wv;
    case T_WO: return L->wo;
    case T_FFN_NORM: return L->ffn_norm;
    case T_GATE: return L->w_gate;
    case T_UP: return L->w_up;
    case T_DOWN: return L->w_down;
    case T_NORM: return m->final_norm;
    default: return m->lm_head;
    }
}

static int is_float_dtype(spq_st_dtype t) {
    return t == SPQ_ST_F32 || t == SPQ_ST_F16 || t == SPQ_ST_BF16 || t == SPQ_ST_F64;
}

/* Finds plan entry i and checks its shape and dtype. */
static int plan_resolve(planned *p, const spq_config *c, long long i, const weights *w, spq_err *err) {
    plan_entry(p, c, i);
    if (weights_find(&p->f, &p->t, w, p->name, err) || spq_st_check_shape(p->f, p->t, p->ndim, p->shape, err))
        return -1;
    if (!is_float_dtype(p->t->dtype))
        return spq_fail(err, "%s: tensor \"%s\": dtype %s is not a float type (expected BF16, F16 or F32)",
                        p->f->path, p->name, spq_st_dtype_name(p->t->dtype));
    return 0;
}

/* A mapped model keeps its linears in the files, and its embedding and
 * classifier when they are 16-bit and 2-byte aligned (spq_hgemm reads them
 * as uint16_t); the norms and everything else are converted. */
static int stays_mapped(const planned *p) {
    switch (p->kind) {
    case T_ATTN_NORM: case T_FFN_NORM: case T_NORM: return 0;
    case T_EMB: case T_LM_HEAD:
        return (p->t->dtype == SPQ_ST_BF16 || p->t->dtype == SPQ_ST_F16) && (uintptr_t)p->t->data % 2 == 0;
    default: return 1;
    }
}

static spq_mtensor *mapped_slot(spq_mapped *mp, const planned *p) {
    static const int lin_of[] = {[T_WQ] = SPQ_LIN_Q, [T_WK] = SPQ_LIN_K, [T_WV] = SPQ_LIN_V, [T_WO] = SPQ_LIN_O,
                                 [T_GATE] = SPQ_LIN_GATE, [T_UP] = SPQ_LIN_UP, [T_DOWN] = SPQ_LIN_DOWN};
    if (p->kind == T_EMB) return &mp->emb;
    if (p->kind == T_LM_HEAD) return &mp->head;
    return &mp->lin[(size_t)p->layer * SPQ_N_LIN + lin_of[p->kind]];
}

/* Every tensor of the plan into m (allocated by the caller): converted to
 * fp32, or, when mp is not NULL, left in its file where stays_mapped says. */
static int load_tensors(spq_model *m, spq_mapped *mp, const weights *w, spq_err *err) {
    const spq_config *c = &m->cfg;
    size_t ne = (size_t)c->vocab_size * c->dim;
    planned p;
    for (long long i = 0, n = plan_size(c); i < n; i++) {
        if (plan_resolve(&p, c, i, w, err)) return -1;
        if (mp && stays_mapped(&p)) {
            *mapped_slot(mp, &p) = (spq_mtensor){p.f, p.t};
            continue;
        }
        if (p.kind == T_EMB && !m->tok_emb) m->tok_emb = spq_malloc(ne * sizeof(float));
        if (p.kind == T_LM_HEAD && !m->lm_head) m->lm_head = spq_malloc(ne * sizeof(float));
        if (spq_st_tensor_f32(plan_dest(m, &p), p.f, p.t, err)) return -1;
    }
    if (mp && c->tied) {
        if (mp->emb.t) mp->head = mp->emb;
        else m->lm_head = m->tok_emb;
    }
    return 0;
}

static int load_hf(spq_model *m, const char *dir, int mapped, spq_err *err) {
    memset(m, 0, sizeof *m);
    char *cfg_path = spq_path_join(dir, "config.json");
    json_t *j = spq_json_load_object(cfg_path, err);
    spq_config c;
    int rc = !j || spq_hf_config_parse(&c, j, cfg_path, err) ? -1 : 0;
    json_decref(j);
    free(cfg_path);
    if (rc) return -1;

    weights w;
    if (weights_open(&w, dir, err)) {
        weights_close(&w);
        return -1;
    }
    /* check everything, then allocate and convert */
    long long n = plan_size(&c);
    planned p;
    for (long long i = 0; i < n && !rc; i++) rc = plan_resolve(&p, &c, i, &w, err);
    if (!rc) {
        spq_mapped *mp = NULL;
        if (mapped) {
            spq_model_alloc_norms(m, &c);
            mp = m->mapped = spq_calloc(1, sizeof *mp);
            mp->lin = spq_calloc((size_t)c.n_layers * SPQ_N_LIN, sizeof *mp->lin);
        } else {
            spq_model_alloc(m, &c);
        }
        rc = load_tensors(m, mp, &w, err);
        if (!rc && mp) { /* the maps now belong to the model */
            mp->files = w.files;
            mp->n_files = w.n_files;
            w.files = NULL;
        }
        if (rc) spq_model_free(m);
    }
    weights_close(&w);
    if (rc) return -1;
    m->path = spq_strdup(dir);
    m->format = spq_strdup("hf");
    return 0;
}

int spq_model_load_hf(spq_model *m, const char *dir, spq_err *err) {
    return load_hf(m, dir, 0, err);
}

int spq_model_load_hf_mapped(spq_model *m, const char *dir, spq_err *err) {
    return load_hf(m, dir, 1, err);
}

int spq_hf_inspect(spq_hf_weights_info *info, const char *dir, spq_err *err) {
    memset(info, 0, sizeof *info);
    weights w;
    int rc = weights_open(&w, dir, err);
    for (int i = 0; i < w.n_files && !rc; i++) {
        const spq_st_file *f = &w.files[i];
        info->n_files++;
        info->bytes += f->map.size;
        info->n_tensors += f->n_tensors;
        for (int k = 0; k < f->n_tensors; k++) info->dtype_count[f->tensors[k].dtype]++;
    }
    weights_close(&w);
    return rc;
}

/* ---- saving ---- */

json_t *spq_hf_config_json(const spq_config *c) {
    json_t *j = json_object();
    json_object_set_new(j, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(j, "model_type", json_string("llama"));
    json_object_set_new(j, "hidden_size", json_integer(c->dim));
    json_object_set_new(j, "intermediate_size", json_integer(c->hidden_dim));
    json_object_set_new(j, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(j, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(j, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(j, "head_dim", json_integer(c->head_dim));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "max_position_embeddings", json_integer(c->seq_len));
    json_object_set_new(j, "rms_norm_eps", spq_json_real_f32(c->norm_eps));
    json_object_set_new(j, "rope_theta", spq_json_real_f32(c->rope_theta));
    if (c->rope_llama3)
        json_object_set_new(j, "rope_scaling",
                            json_pack("{s:s, s:o, s:o, s:o, s:i}", "rope_type", "llama3", "factor",
                                      spq_json_real_f32(c->rope_factor), "low_freq_factor",
                                      spq_json_real_f32(c->rope_low_freq_factor), "high_freq_factor",
                                      spq_json_real_f32(c->rope_high_freq_factor),
                                      "original_max_position_embeddings", c->rope_orig_ctx));
    else
        json_object_set_new(j, "rope_scaling", json_null());
    json_object_set_new(j, "hidden_act", json_string("silu"));
    json_object_set_new(j, "attention_bias", json_false());
    json_object_set_new(j, "mlp_bias", json_false());
    json_object_set_new(j, "tie_word_embeddings", json_boolean(c->tied));
    json_object_set_new(j, "bos_token_id", c->bos_id >= 0 ? json_integer(c->bos_id) : json_null());
    if (c->n_eos > 1) {
        json_t *e = json_array();
        for (int i = 0; i < c->n_eos; i++) json_array_append_new(e, json_integer(c->eos_ids[i]));
        json_object_set_new(j, "eos_token_id", e);
    } else {
        json_object_set_new(j, "eos_token_id", c->eos_id >= 0 ? json_integer(c->eos_id) : json_null());
    }
    return j;
}

/* a JSON document via a temporary file and rename, like the weights */
static int write_json(const char *path, const json_t *j, spq_err *err) {
    char *tmp = spq_malloc(strlen(path) + 16);
    sprintf(tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp), rc = 0;
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        rc = spq_fail(err, "%s: cannot create a temporary file: %s", path, strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        free(tmp);
        return rc;
    }
    int bad = fchmod(fd, 0644) || json_dumpf(j, f, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) || fputc('\n', f) == EOF ||
              fflush(f) || fsync(fd);
    if (fclose(f) || bad) rc = spq_fail(err, "%s: write failed: %s", tmp, strerror(errno));
    else if (rename(tmp, path)) rc = spq_fail(err, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

static int write_config(const char *path, const spq_config *c, spq_st_dtype dtype, spq_err *err) {
    json_t *j = spq_hf_config_json(c);
    const char *td = dtype == SPQ_ST_BF16 ? "bfloat16" : dtype == SPQ_ST_F16 ? "float16" : "float32";
    json_object_set_new(j, "torch_dtype", json_string(td));
    int rc = write_json(path, j, err);
    json_decref(j);
    return rc;
}

int spq_model_save_hf(const spq_model *m, const char *dir, spq_st_dtype dtype, spq_err *err) {
    if (dtype != SPQ_ST_F32 && dtype != SPQ_ST_F16 && dtype != SPQ_ST_BF16)
        return spq_fail(err, "%s: weights can be saved as F32, F16 or BF16, not %s", dir, spq_st_dtype_name(dtype));
    if (mkdir(dir, 0755) && errno != EEXIST) return spq_fail(err, "%s: cannot create: %s", dir, strerror(errno));
    spq_config c = m->cfg;
    c.tied = m->lm_head == m->tok_emb;
    spq_st_writer w;
    spq_st_writer_init(&w);
    int rc = 0;
    planned p;
    for (long long i = 0, n = plan_size(&c); i < n && !rc; i++) {
        plan_entry(&p, &c, i);
        rc = spq_st_writer_add_f32(&w, p.name, dtype, p.ndim, p.shape, plan_dest((spq_model *)m, &p), err);
    }
    spq_st_writer_meta(&w, "format", "pt");
    char *st = spq_path_join(dir, "model.safetensors"), *cfg = spq_path_join(dir, "config.json");
    if (!rc) rc = spq_st_writer_save(&w, st, err);
    if (!rc) rc = write_config(cfg, &c, dtype, err);
    spq_st_writer_free(&w);
    free(st);
    free(cfg);
    return rc;
}

/* ---- tokenizer files ---- */

/* dst <- the bytes of src, via a temporary file and rename */
static int copy_file(const char *src, const char *dst, spq_err *err) {
    char *data;
    size_t len;
    if (spq_read_file(&data, &len, src, err)) return -1;
    char *tmp = spq_malloc(strlen(dst) + 16);
    sprintf(tmp, "%s.tmp.XXXXXX", dst);
    int fd = mkstemp(tmp), rc = 0;
    if (fd < 0) {
        rc = spq_fail(err, "%s: cannot create a temporary file: %s", dst, strerror(errno));
    } else {
        size_t off = 0;
        while (off < len) {
            ssize_t k = write(fd, data + off, len - off);
            if (k <= 0) break;
            off += (size_t)k;
        }
        if (off < len || fchmod(fd, 0644) || fsync(fd)) rc = spq_fail(err, "%s: write failed: %s", tmp, strerror(errno));
        if (close(fd) && !rc) rc = spq_fail(err, "%s: close failed: %s", tmp, strerror(errno));
        if (!rc && rename(tmp, dst)) rc = spq_fail(err, "%s: cannot rename %s into place: %s", dst, tmp, strerror(errno));
        if (rc) unlink(tmp);
    }
    free(tmp);
    free(data);
    return rc;
}

int spq_hf_copy_tokenizer(const char *src, const char *dir, spq_err *err) {
    char *tok, *cfg;
    if (spq_tok_files_for_model(&tok, &cfg, src, err)) return -1;
    const char *name = spq_is_dir(src) ? "tokenizer.json" : "tokenizer.bin";
    char *d1 = spq_path_join(dir, name);
    int rc = copy_file(tok, d1, err);
    free(d1);
    if (!rc && cfg) {
        char *d2 = spq_path_join(dir, "tokenizer_config.json");
        rc = copy_file(cfg, d2, err);
        free(d2);
    }
    if (!rc && spq_is_dir(src)) {
        char *g = spq_path_join(src, "generation_config.json");
        if (spq_file_exists(g)) {
            char *d3 = spq_path_join(dir, "generation_config.json");
            rc = copy_file(g, d3, err);
            free(d3);
        }
        free(g);
    }
    free(tok);
    free(cfg);
    return rc;
}

/* ---- a random model of a real shape, written a piece at a time ---- */

/* spq_random_weights' stream is sequential, so the tensors must be produced
 * in plan order: every shard holds a run of plan entries, all of one dtype,
 * which the safetensors writer lays out in order of addition. `next` checks
 * it rather than trusting it. */
typedef struct {
    const spq_config *c;
    spq_st_dtype dtype;
    spq_rng rng;
    long long next;  /* the plan entry the stream is at */
    int64_t next_row;
    float *buf;      /* fp32 rows before conversion */
    size_t cap;
} rnd_writer;

typedef struct {
    rnd_writer *w;
    long long i;  /* plan entry */
} rnd_tensor;

static int rnd_fill(void *ud, void *dst, int64_t row0, int64_t nrows, spq_err *err) {
    rnd_tensor *rt = ud;
    rnd_writer *w = rt->w;
    planned p;
    plan_entry(&p, w->c, rt->i);
    if (rt->i != w->next || row0 != w->next_row)
        return spq_fail(err, "random weights asked for out of order (plan entry %lld row %lld, the stream is at "
                        "%lld row %lld)", rt->i, (long long)row0, w->next, (long long)w->next_row);
    size_t cols = p.ndim == 2 ? (size_t)p.shape[1] : 1, n = (size_t)nrows * cols;
    if (n > w->cap) {
        free(w->buf);
        w->buf = spq_malloc(n * sizeof(float));
        w->cap = n;
    }
    spq_random_weights(w->buf, n, p.kind == T_ATTN_NORM || p.kind == T_FFN_NORM || p.kind == T_NORM, &w->rng);
    if (w->dtype == SPQ_ST_F32) memcpy(dst, w->buf, n * sizeof(float));
    else if (w->dtype == SPQ_ST_F16) spq_f32_to_f16_array(dst, w->buf, n);
    else spq_f32_to_bf16_array(dst, w->buf, n);
    w->next_row = row0 + nrows;
    if (w->next_row == p.shape[0]) w->next++, w->next_row = 0;
    return 0;
}

static size_t plan_bytes(const planned *p, spq_st_dtype dtype) {
    return (size_t)p->shape[0] * (p->ndim == 2 ? (size_t)p->shape[1] : 1) * spq_st_dtype_size(dtype);
}

/* Writes plan entries [i0, i1) as the file name in dir. */
static int write_random_shard(rnd_writer *rw, const char *dir, const char *name, long long i0, long long i1,
                              spq_err *err) {
    spq_st_writer w;
    spq_st_writer_init(&w);
    rnd_tensor *ts = spq_malloc((size_t)(i1 - i0) * sizeof *ts);
    int rc = 0;
    planned p;
    for (long long i = i0; i < i1 && !rc; i++) {
        plan_entry(&p, rw->c, i);
        ts[i - i0] = (rnd_tensor){rw, i};
        rc = spq_st_writer_add_fill(&w, p.name, rw->dtype, p.ndim, p.shape, rnd_fill, &ts[i - i0], err);
    }
    spq_st_writer_meta(&w, "format", "pt");
    char *path = spq_path_join(dir, name);
    if (!rc) rc = spq_st_writer_save(&w, path, err);
    free(path);
    free(ts);
    spq_st_writer_free(&w);
    return rc;
}

/* removes a weight file of another layout left in dir, which the loader
 * would otherwise prefer (model.safetensors) or follow (the index) */
static int remove_stale(const char *dir, const char *name, spq_err *err) {
    char *path = spq_path_join(dir, name);
    int rc = unlink(path) && errno != ENOENT ? spq_fail(err, "%s: cannot remove: %s", path, strerror(errno)) : 0;
    free(path);
    return rc;
}

int spq_hf_write_random(const char *dir, const spq_config *c, spq_st_dtype dtype, int n_shards, uint64_t seed,
                        spq_err *err) {
    if (dtype != SPQ_ST_F32 && dtype != SPQ_ST_F16 && dtype != SPQ_ST_BF16)
        return spq_fail(err, "%s: weights can be written as F32, F16 or BF16, not %s", dir, spq_st_dtype_name(dtype));
    if (spq_config_check(c, dir, err)) return -1;
    long long n = plan_size(c);
    size_t total = 0;
    planned p;
    for (long long i = 0; i < n; i++) plan_entry(&p, c, i), total += plan_bytes(&p, dtype);
    if (n_shards <= 0) n_shards = (int)((total + SPQ_HF_SHARD_BYTES - 1) / SPQ_HF_SHARD_BYTES);
    if (n_shards < 1) n_shards = 1;
    if (n_shards > n || n_shards > 99999)
        return spq_fail(err, "%s: %d shards for %lld tensors", dir, n_shards, n);
    if (mkdir(dir, 0755) && errno != EEXIST) return spq_fail(err, "%s: cannot create: %s", dir, strerror(errno));
    if (remove_stale(dir, n_shards == 1 ? "model.safetensors.index.json" : "model.safetensors", err)) return -1;

    rnd_writer rw = {.c = c, .dtype = dtype};
    spq_rng_seed(&rw.rng, seed);
    json_t *map = json_object();
    int rc = 0;
    long long i0 = 0;
    size_t done = 0;
    for (int s = 0; s < n_shards && !rc; s++) {
        /* a contiguous run of tensors up to the shard's share of the bytes,
         * leaving at least one tensor for each later shard */
        long long i1 = i0 + 1;
        size_t goal = total / n_shards * (s + 1);
        done += (plan_entry(&p, c, i0), plan_bytes(&p, dtype));
        while (i1 < n - (n_shards - 1 - s) && (s == n_shards - 1 || done < goal))
            done += (plan_entry(&p, c, i1), plan_bytes(&p, dtype)), i1++;
        char name[64];
        if (n_shards == 1) snprintf(name, sizeof name, "model.safetensors");
        else snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        rc = write_random_shard(&rw, dir, name, i0, i1, err);
        for (long long i = i0; i < i1; i++) plan_entry(&p, c, i), json_object_set_new(map, p.name, json_string(name));
        i0 = i1;
    }
    free(rw.buf);
    char *cfg = spq_path_join(dir, "config.json"), *idx = spq_path_join(dir, "model.safetensors.index.json");
    if (!rc && n_shards > 1) {
        json_t *j = json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)total, "weight_map", map);
        rc = write_json(idx, j, err);
        json_decref(j);
    }
    if (!rc) rc = write_config(cfg, c, dtype, err);
    json_decref(map);
    free(cfg);
    free(idx);
    return rc;
}

int spq_hf_add_tokenizer(const char *dir, const char *tokenizer_json, spq_err *err) {
    char *dst = spq_path_join(dir, "tokenizer.json");
    int rc = copy_file(tokenizer_json, dst, err);
    free(dst);
    /* its tokenizer_config.json (BOS handling, chat template) when beside it */
    char *src_dir = spq_strdup(tokenizer_json), *slash = strrchr(src_dir, '/');
    if (slash) slash[1] = 0;
    else src_dir[0] = 0;
    char *cfg = spq_path_join(src_dir[0] ? src_dir : ".", "tokenizer_config.json");
    if (!rc && spq_file_exists(cfg)) {
        char *d = spq_path_join(dir, "tokenizer_config.json");
        rc = copy_file(cfg, d, err);
        free(d);
    }
    free(cfg);
    free(src_dir);
    return rc;
}
