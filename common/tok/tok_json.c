/* tok_json.c - Hugging Face tokenizer.json (+ tokenizer_config.json) with a
 * BPE model: the LLaMA-2 style (byte_fallback, "▁" normalizer or the older
 * Metaspace pre-tokenizer) and the LLaMA-3 style (byte-level with a regex
 * Split). Every step type this loader does not implement is an error naming
 * the field, never silently skipped.
 *
 * Byte-level vocabularies spell each byte as one printable character
 * (GPT-2's bytes_to_unicode); we undo that mapping for the vocabulary and
 * the merges at load time so that encoding and decoding work on raw bytes.
 *
 * Which ids frame a text: tokenizer_config.json's add_bos_token /
 * add_eos_token when it has them, else the TemplateProcessing
 * post-processor's special tokens.
 *
 * Where HF's Rust tokenizers and transformers.js (our parity reference)
 * differ, we follow transformers.js: the Metaspace pre-tokenizer never
 * splits the text at "▁" (its "split" field is ignored), and all added
 * tokens, special or not, are matched in the raw text. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* ids above this are taken for a garbled file (the largest real vocabularies
 * have ~256k tokens; the table is sized by the largest id) */
#define SPQ_TOK_MAX_ID (1 << 22)

#define GPT2_PATTERN SPQ_TOK_GPT2_PATTERN

typedef struct {
    spq_tokenizer *t;
    const char *path;
    int unmap[324];    /* byte-level char (code point) -> byte, -1 */
    int has_template;
    int tpl_prefix[4], tpl_suffix[4], n_tpl_prefix, n_tpl_suffix;
    spq_err *err;
} ctx;

static void build_unmap(ctx *c) {
    int cp_of[256], n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp_of[b] = printable ? b : 256 + n++;
    }
    for (int i = 0; i < 324; i++) c->unmap[i] = -1;
    for (int b = 0; b < 256; b++) c->unmap[cp_of[b]] = b;
}

/* Undoes the byte-level spelling of s into out (at most n bytes); returns
 * the byte count, or -1 when s has a character outside the mapping. */
static int unmap_text(const ctx *c, const char *s, int n, char *out) {
    int k = 0;
    for (int i = 0; i < n;) {
        const unsigned char *p = (const unsigned char *)s + i;
        int l = spq_utf8_len(p[0]);
        unsigned cp;
        if (l == 1) cp = p[0];
        else if (l == 2 && i + 1 < n) cp = ((p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        else return -1;
        if (cp >= 324 || c->unmap[cp] < 0) return -1;
        out[k++] = (char)c->unmap[cp];
        i += l;
    }
    return k;
}

static int type_is(json_t *o, const char *name) {
    json_t *ty = json_object_get(o, "type");
    return json_is_string(ty) && !strcmp(json_string_value(ty), name);
}

static const char *type_of(json_t *o) {
    json_t *ty = json_object_get(o, "type");
    return json_is_string(ty) ? json_string_value(ty) : "(none)";
}

/* Optional boolean field; *out keeps its default when absent or null. */
static int get_bool(ctx *c, json_t *o, const char *key, const char *where, int *out) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return spq_fail(c->err, "%s: %s.%s must be true or false", c->path, where, key);
    *out = json_is_true(v);
    return 0;
}

/* Required string field (as pointer + length into the JSON). */
static int get_str(ctx *c, json_t *o, const char *key, const char *where, const char **s, int *n) {
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) return spq_fail(c->err, "%s: %s.%s must be a string", c->path, where, key);
    *s = json_string_value(v);
    *n = (int)json_string_length(v);
    return 0;
}

/* pattern: {"String": "..."} (a "Regex" is an error here) */
static int get_string_pattern(ctx *c, json_t *o, const char *where, const char **s, int *n) {
    json_t *p = json_object_get(o, "pattern");
    if (!json_is_object(p)) return spq_fail(c->err, "%s: %s.pattern must be an object", c->path, where);
    if (json_object_get(p, "Regex"))
        return spq_fail(c->err, "%s: %s.pattern: a Regex pattern is not supported here, only String", c->path, where);
    return get_str(c, p, "String", where, s, n);
}

/* The id of a token text (added tokens first, then the model vocabulary). */
static int find_id(ctx *c, const char *s, int n) {
    spq_tokenizer *t = c->t;
    for (int id = 0; id < t->n_vocab; id++)
        if (t->vocab[id].added && t->vocab[id].len == n && !memcmp(t->vocab[id].text, s, n)) return id;
    if (t->bytelevel) {
        char *raw = spq_malloc(n + 1);
        int k = unmap_text(c, s, n, raw), id = k < 0 ? -1 : spq_strmap_get(&t->model_map, raw, k);
        free(raw);
        return id;
    }
    return spq_strmap_get(&t->model_map, s, n);
}

/* ---- model ---- */

static int load_vocab(ctx *c, json_t *vocab) {
    if (!json_is_object(vocab)) return spq_fail(c->err, "%s: model.vocab must be an object", c->path);
    const char *key;
    json_t *v;
    char *raw = NULL;
    int cap = 0;
    json_object_foreach(vocab, key, v) {
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= SPQ_TOK_MAX_ID) {
            free(raw);
            return spq_fail(c->err, "%s: model.vocab[\"%s\"]: the id must be an integer in 0..4194303", c->path, key);
        }
        int n = (int)strlen(key);
        spq_tok_entry *e;
        if (c->t->bytelevel) {
            if (n + 1 > cap) raw = spq_realloc(raw, cap = 2 * n + 16);
            int k = unmap_text(c, key, n, raw);
            /* a text outside the byte alphabet cannot come out of BPE; keep
             * it for decoding only */
            e = k < 0 ? spq_tok_set_entry(c->t, (int)id, key, n, 0) : spq_tok_set_entry(c->t, (int)id, raw, k, 0);
            e->in_model = k >= 0;
        } else {
            e = spq_tok_set_entry(c->t, (int)id, key, n, 0);
            e->in_model = 1;
        }
    }
    free(raw);
    return 0;
}

/* The two halves of merges[i]: "a b" (first space) or ["a", "b"]. */
static int merge_parts(ctx *c, json_t *m, size_t i, const char **a, int *na, const char **b, int *nb) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return spq_fail(c->err, "%s: model.merges[%zu] \"%s\" is not two tokens separated by one space", c->path,
                            i, s);
        *a = s, *na = (int)(sp - s), *b = sp + 1, *nb = (int)strlen(sp + 1);
        return 0;
    }
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0)), *na = (int)json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1)), *nb = (int)json_string_length(json_array_get(m, 1));
        return 0;
    }
    return spq_fail(c->err, "%s: model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", c->path, i);
}

static int load_merges(ctx *c, json_t *merges) {
    if (!json_is_array(merges)) return spq_fail(c->err, "%s: model.merges must be an array", c->path);
    spq_tokenizer *t = c->t;
    for (int id = 0; id < t->n_vocab; id++)
        if (t->vocab[id].text && t->vocab[id].in_model) spq_strmap_put(&t->model_map, t->vocab[id].text, t->vocab[id].len, id);
    char *buf = NULL;
    int cap = 0;
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m) {
        const char *a = NULL, *b = NULL;
        int na = 0, nb = 0;
        if (merge_parts(c, m, i, &a, &na, &b, &nb)) goto fail;
        if (na + nb + 1 > cap) buf = spq_realloc(buf, cap = 2 * (na + nb) + 16);
        int ka = na, kb = nb;
        if (t->bytelevel) {
            ka = unmap_text(c, a, na, buf);
            kb = ka < 0 ? -1 : unmap_text(c, b, nb, buf + ka);
        } else {
            memcpy(buf, a, na);
            memcpy(buf + na, b, nb);
        }
        int ia = ka < 0 ? -1 : spq_strmap_get(&t->model_map, buf, ka);
        int ib = kb < 0 ? -1 : spq_strmap_get(&t->model_map, buf + ka, kb);
        int im = ia < 0 || ib < 0 ? -1 : spq_strmap_get(&t->model_map, buf, ka + kb);
        if (ia < 0 || ib < 0 || im < 0) {
            spq_fail(c->err, "%s: model.merges[%zu] (\"%.*s\", \"%.*s\"): %s is not in model.vocab", c->path, i, na, a,
                     nb, b, ia < 0 ? "the left token" : ib < 0 ? "the right token" : "the merged token");
            goto fail;
        }
        spq_pairmap_put(&t->merges, ia, ib, (int)i, im);  /* a repeated pair keeps its last rank */
    }
    free(buf);
    return 0;
fail:
    free(buf);
    return -1;
}

static int load_model(ctx *c, json_t *model) {
    if (!json_is_object(model)) return spq_fail(c->err, "%s: model must be an object", c->path);
    json_t *ty = json_object_get(model, "type");
    if (ty && !type_is(model, "BPE"))
        return spq_fail(c->err, "%s: model.type \"%s\" is not supported (only BPE)", c->path, type_of(model));
    const char *unsupported[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(model, unsupported[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && !json_string_length(v)))
            return spq_fail(c->err, "%s: model.%s is not supported", c->path, unsupported[i]);
    }
    if (load_vocab(c, json_object_get(model, "vocab"))) return -1;
    if (get_bool(c, model, "byte_fallback", "model", &c->t->byte_fallback)) return -1;
    if (get_bool(c, model, "ignore_merges", "model", &c->t->ignore_merges)) return -1;
    return 0;
}

static int load_added(ctx *c, json_t *added) {
    if (!added || json_is_null(added)) return 0;
    if (!json_is_array(added)) return spq_fail(c->err, "%s: added_tokens must be an array", c->path);
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        json_t *id = json_object_get(a, "id"), *content = json_object_get(a, "content");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= SPQ_TOK_MAX_ID ||
            !json_is_string(content))
            return spq_fail(c->err, "%s: added_tokens[%zu] needs an integer id and a string content", c->path, i);
        int k = (int)json_integer_value(id), n = (int)json_string_length(content);
        const char *s = json_string_value(content);
        spq_tok_entry *e = k < c->t->n_vocab ? &c->t->vocab[k] : NULL;
        if (!e || !e->text || e->len != n || memcmp(e->text, s, n)) {
            e = spq_tok_set_entry(c->t, k, s, n, 0);
            e->in_model = 0;  /* its own text now: not a model piece */
        }
        int special = 0, lstrip = 0, rstrip = 0;
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        if (get_bool(c, a, "special", where, &special) || get_bool(c, a, "lstrip", where, &lstrip) ||
            get_bool(c, a, "rstrip", where, &rstrip))
            return -1;
        e->added = 1;
        e->special = (uint8_t)special;
        e->lstrip = (uint8_t)lstrip;
        e->rstrip = (uint8_t)rstrip;
    }
    return 0;
}

/* ---- normalizer, pre-tokenizer, post-processor, decoder ---- */

static int load_normalizer(ctx *c, json_t *n, const char *where) {
    if (!n || json_is_null(n)) return 0;
    if (!json_is_object(n)) return spq_fail(c->err, "%s: %s must be an object", c->path, where);
    const char *s = NULL;
    int len = 0;
    if (type_is(n, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers"), *x;
        if (!json_is_array(list)) return spq_fail(c->err, "%s: %s.normalizers must be an array", c->path, where);
        size_t i;
        json_array_foreach(list, i, x) {
            char w[96];
            snprintf(w, sizeof w, "%s.normalizers[%zu]", where, i);
            if (load_normalizer(c, x, w)) return -1;
        }
    } else if (type_is(n, "Prepend")) {
        if (get_str(c, n, "prepend", where, &s, &len)) return -1;
        spq_tok_norm *st = spq_tok_add_norm(c->t, SPQ_NORM_PREPEND);
        st->a = spq_tok_memdup(s, st->na = len);
    } else if (type_is(n, "Replace")) {
        const char *to = NULL;
        int nto = 0;
        if (get_string_pattern(c, n, where, &s, &len) || get_str(c, n, "content", where, &to, &nto)) return -1;
        spq_tok_norm *st = spq_tok_add_norm(c->t, SPQ_NORM_REPLACE);
        st->a = spq_tok_memdup(s, st->na = len);
        st->b = spq_tok_memdup(to, st->nb = nto);
    } else {
        return spq_fail(c->err, "%s: %s: normalizer type \"%s\" is not supported", c->path, where, type_of(n));
    }
    return 0;
}

static int prepend_scheme(ctx *c, json_t *o, const char *where, int *out) {
    json_t *v = json_object_get(o, "prepend_scheme");
    *out = SPQ_PREPEND_ALWAYS;
    if (!v || json_is_null(v)) return 0;
    const char *s = json_is_string(v) ? json_string_value(v) : "";
    if (!strcmp(s, "always")) *out = SPQ_PREPEND_ALWAYS;
    else if (!strcmp(s, "first")) *out = SPQ_PREPEND_FIRST;
    else if (!strcmp(s, "never")) *out = SPQ_PREPEND_NEVER;
    else return spq_fail(c->err, "%s: %s.prepend_scheme must be \"always\", \"first\" or \"never\"", c->path, where);
    return 0;
}

/* Metaspace's prefix: add_prefix_space when given, else the prepend scheme. */
static int metaspace_prefix(ctx *c, json_t *o, const char *where, int *add, int *scheme) {
    if (prepend_scheme(c, o, where, scheme)) return -1;
    *add = *scheme != SPQ_PREPEND_NEVER;
    return get_bool(c, o, "add_prefix_space", where, add);
}

static int load_pretokenizer(ctx *c, json_t *p, const char *where) {
    if (!p || json_is_null(p)) return 0;
    if (!json_is_object(p)) return spq_fail(c->err, "%s: %s must be an object", c->path, where);
    if (type_is(p, "Sequence")) {
        json_t *list = json_object_get(p, "pretokenizers"), *x;
        if (!json_is_array(list)) return spq_fail(c->err, "%s: %s.pretokenizers must be an array", c->path, where);
        size_t i;
        json_array_foreach(list, i, x) {
            char w[96];
            snprintf(w, sizeof w, "%s.pretokenizers[%zu]", where, i);
            if (load_pretokenizer(c, x, w)) return -1;
        }
    } else if (type_is(p, "Split")) {
        json_t *pat = json_object_get(p, "pattern");
        json_t *re = json_object_get(pat, "Regex"), *str = json_object_get(pat, "String");
        if (!json_is_string(re) && !json_is_string(str))
            return spq_fail(c->err, "%s: %s.pattern must have a Regex or a String", c->path, where);
        json_t *beh = json_object_get(p, "behavior");
        const char *b = json_is_string(beh) ? json_string_value(beh) : "";
        spq_tok_pre *st = spq_tok_add_pre(c->t, SPQ_PRE_SPLIT);
        if (!strcmp(b, "Isolated")) st->behavior = SPQ_SPLIT_ISOLATED;
        else if (!strcmp(b, "Removed")) st->behavior = SPQ_SPLIT_REMOVED;
        else return spq_fail(c->err, "%s: %s.behavior \"%s\" is not supported (Isolated, Removed)", c->path, where, b);
        if (get_bool(c, p, "invert", where, &st->invert)) return -1;
        json_t *src = json_is_string(re) ? re : str;
        if (spq_tok_compile_regex(st, json_string_value(src), json_string_length(src), !json_is_string(re), c->err))
            return spq_fail_prefix(c->err, "%s: %s.pattern", c->path, where);
    } else if (type_is(p, "ByteLevel")) {
        spq_tok_pre *st = spq_tok_add_pre(c->t, SPQ_PRE_BYTELEVEL);
        int use_regex = 1;
        if (get_bool(c, p, "add_prefix_space", where, &st->add_prefix_space) ||
            get_bool(c, p, "use_regex", where, &use_regex))
            return -1;
        st->invert = 1;  /* the GPT-2 regex's matches are the words */
        if (use_regex && spq_tok_compile_regex(st, GPT2_PATTERN, strlen(GPT2_PATTERN), 0, c->err))
            return spq_fail_prefix(c->err, "%s: %s", c->path, where);
    } else if (type_is(p, "Metaspace")) {
        spq_tok_pre *st = spq_tok_add_pre(c->t, SPQ_PRE_METASPACE);
        const char *r = "\xE2\x96\x81";
        int nr = 3;
        if (json_object_get(p, "replacement") && get_str(c, p, "replacement", where, &r, &nr)) return -1;
        st->repl = spq_tok_memdup(r, st->nrepl = nr);
        if (metaspace_prefix(c, p, where, &st->add_prefix_space, &st->prepend_scheme)) return -1;
    } else {
        return spq_fail(c->err, "%s: %s: pre-tokenizer type \"%s\" is not supported", c->path, where, type_of(p));
    }
    return 0;
}

/* The ids of a TemplateProcessing special token name. */
static int template_ids(ctx *c, json_t *pp, const char *name, int *ids, int *n, int cap) {
    json_t *sp = json_object_get(json_object_get(pp, "special_tokens"), name);
    json_t *list = json_object_get(sp, "ids"), *x;
    if (!json_is_array(list)) {  /* no table: the name is the token */
        int id = find_id(c, name, (int)strlen(name));
        if (id < 0) return spq_fail(c->err, "%s: post_processor: special token \"%s\" is unknown", c->path, name);
        if (*n >= cap) return spq_fail(c->err, "%s: post_processor: too many special tokens", c->path);
        ids[(*n)++] = id;
        return 0;
    }
    size_t i;
    json_array_foreach(list, i, x) {
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) >= SPQ_TOK_MAX_ID)
            return spq_fail(c->err, "%s: post_processor.special_tokens[\"%s\"].ids[%zu] is not an id", c->path, name, i);
        if (*n >= cap) return spq_fail(c->err, "%s: post_processor: too many special tokens", c->path);
        ids[(*n)++] = (int)json_integer_value(x);
    }
    return 0;
}

static int load_postprocessor(ctx *c, json_t *p, const char *where) {
    if (!p || json_is_null(p)) return 0;
    if (type_is(p, "Sequence")) {
        json_t *list = json_object_get(p, "processors"), *x;
        if (!json_is_array(list)) return spq_fail(c->err, "%s: %s.processors must be an array", c->path, where);
        size_t i;
        json_array_foreach(list, i, x) {
            char w[96];
            snprintf(w, sizeof w, "%s.processors[%zu]", where, i);
            if (load_postprocessor(c, x, w)) return -1;
        }
    } else if (type_is(p, "TemplateProcessing")) {
        json_t *single = json_object_get(p, "single"), *x;
        if (!json_is_array(single)) return spq_fail(c->err, "%s: %s.single must be an array", c->path, where);
        c->has_template = 1;
        c->n_tpl_prefix = c->n_tpl_suffix = 0;
        int seen_a = 0;
        size_t i;
        json_array_foreach(single, i, x) {
            json_t *sp = json_object_get(x, "SpecialToken");
            if (json_object_get(x, "Sequence")) {
                seen_a = 1;
                continue;
            }
            json_t *id = json_object_get(sp, "id");
            if (!json_is_string(id))
                return spq_fail(c->err, "%s: %s.single[%zu] is neither a Sequence nor a SpecialToken with an id",
                                c->path, where, i);
            if (seen_a ? template_ids(c, p, json_string_value(id), c->tpl_suffix, &c->n_tpl_suffix, 4)
                       : template_ids(c, p, json_string_value(id), c->tpl_prefix, &c->n_tpl_prefix, 4))
                return -1;
        }
    } else if (!type_is(p, "ByteLevel")) {  /* ByteLevel only trims offsets */
        return spq_fail(c->err, "%s: %s: post-processor type \"%s\" is not supported", c->path, where, type_of(p));
    }
    return 0;
}

static int load_decoder(ctx *c, json_t *d, const char *where) {
    if (!d || json_is_null(d)) return 0;
    if (!json_is_object(d)) return spq_fail(c->err, "%s: %s must be an object", c->path, where);
    const char *s = NULL, *to = NULL;
    int n = 0, nto = 0;
    if (type_is(d, "Sequence")) {
        json_t *list = json_object_get(d, "decoders"), *x;
        if (!json_is_array(list)) return spq_fail(c->err, "%s: %s.decoders must be an array", c->path, where);
        size_t i;
        json_array_foreach(list, i, x) {
            char w[96];
            snprintf(w, sizeof w, "%s.decoders[%zu]", where, i);
            if (load_decoder(c, x, w)) return -1;
        }
    } else if (type_is(d, "Replace")) {
        if (get_string_pattern(c, d, where, &s, &n) || get_str(c, d, "content", where, &to, &nto)) return -1;
        spq_tok_dec *st = spq_tok_add_dec(c->t, SPQ_DEC_REPLACE);
        st->a = spq_tok_memdup(s, st->na = n);
        st->b = spq_tok_memdup(to, st->nb = nto);
    } else if (type_is(d, "ByteFallback")) {
        spq_tok_add_dec(c->t, SPQ_DEC_BYTEFALLBACK);
    } else if (type_is(d, "Fuse")) {
        spq_tok_add_dec(c->t, SPQ_DEC_FUSE);
    } else if (type_is(d, "Strip")) {
        json_t *start = json_object_get(d, "start"), *stop = json_object_get(d, "stop");
        if (get_str(c, d, "content", where, &s, &n)) return -1;
        if (!json_is_integer(start) || !json_is_integer(stop) || json_integer_value(start) < 0 ||
            json_integer_value(stop) < 0 || n == 0 || spq_utf8_len((unsigned char)s[0]) != n)
            return spq_fail(c->err, "%s: %s needs one content character and integer start, stop >= 0", c->path, where);
        spq_tok_dec *st = spq_tok_add_dec(c->t, SPQ_DEC_STRIP);
        st->a = spq_tok_memdup(s, st->na = n);
        st->start = (int)json_integer_value(start);
        st->stop = (int)json_integer_value(stop);
    } else if (type_is(d, "Metaspace")) {
        const char *r = "\xE2\x96\x81";
        int nr = 3, scheme;
        if (json_object_get(d, "replacement") && get_str(c, d, "replacement", where, &r, &nr)) return -1;
        spq_tok_dec *st = spq_tok_add_dec(c->t, SPQ_DEC_METASPACE);
        st->a = spq_tok_memdup(r, st->na = nr);
        if (metaspace_prefix(c, d, where, &st->start, &scheme)) return -1;
    } else if (type_is(d, "ByteLevel")) {
        spq_tok_add_dec(c->t, SPQ_DEC_BYTELEVEL);
    } else {
        return spq_fail(c->err, "%s: %s: decoder type \"%s\" is not supported", c->path, where, type_of(d));
    }
    return 0;
}

/* Does this pre-tokenizer (or decoder) tree contain a ByteLevel step? */
static int has_bytelevel(json_t *o, const char *list_key) {
    if (!json_is_object(o)) return 0;
    if (type_is(o, "ByteLevel")) return 1;
    json_t *list = json_object_get(o, list_key), *x;
    size_t i;
    json_array_foreach(list, i, x) if (has_bytelevel(x, list_key)) return 1;
    return 0;
}

/* ---- tokenizer_config.json ---- */

/* bos_token etc.: a string, {"content": ...}, or null/absent (returns NULL). */
static const char *config_token(json_t *cfg, const char *key, int *n) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return NULL;
    *n = (int)json_string_length(v);
    return json_string_value(v);
}

/* cfg: the parsed tokenizer_config.json (an object) or NULL; cfg_path names it */
static int load_config(ctx *c, const char *cfg_path, json_t *cfg) {
    spq_tokenizer *t = c->t;
    const char *keys[3] = {"bos_token", "eos_token", "unk_token"};
    int *ids[3] = {&t->bos_id, &t->eos_id, &t->unk_id};
    for (int i = 0; i < 3; i++) {
        int n;
        const char *s = cfg ? config_token(cfg, keys[i], &n) : NULL;
        if (!s) continue;
        if ((*ids[i] = find_id(c, s, n)) < 0)
            return spq_fail(c->err, "%s: %s \"%s\" is not a token of %s", cfg_path, keys[i], s, c->path);
    }
    /* without a config, the template's first / last special token */
    if (t->bos_id < 0 && c->n_tpl_prefix > 0) t->bos_id = c->tpl_prefix[0];
    if (t->eos_id < 0 && c->n_tpl_suffix > 0) t->eos_id = c->tpl_suffix[c->n_tpl_suffix - 1];

    memcpy(t->prefix, c->tpl_prefix, sizeof t->prefix);
    memcpy(t->suffix, c->tpl_suffix, sizeof t->suffix);
    t->n_prefix = c->n_tpl_prefix;
    t->n_suffix = c->n_tpl_suffix;
    int add_bos = -1, add_eos = -1, rc = 0;
    if (cfg && (get_bool(c, cfg, "add_bos_token", "tokenizer_config", &add_bos) ||
                get_bool(c, cfg, "add_eos_token", "tokenizer_config", &add_eos)))
        rc = spq_fail_prefix(c->err, "%s", cfg_path);
    if (!rc && add_bos >= 0) {
        if (add_bos && t->bos_id < 0) rc = spq_fail(c->err, "%s: add_bos_token is true but there is no bos_token", cfg_path);
        t->n_prefix = add_bos ? 1 : 0;
        t->prefix[0] = t->bos_id;
    }
    if (!rc && add_eos >= 0) {
        if (add_eos && t->eos_id < 0) rc = spq_fail(c->err, "%s: add_eos_token is true but there is no eos_token", cfg_path);
        t->n_suffix = add_eos ? 1 : 0;
        t->suffix[0] = t->eos_id;
    }
    return rc;
}

/* parses the tokenizer_config.json text (may be NULL) into *cfg */
static int parse_config(json_t **cfg, const char *cfg_path, const char *text, size_t len, spq_err *err) {
    *cfg = NULL;
    if (!text) return 0;
    json_error_t je;
    /* model_max_length can be 1e30 */
    *cfg = json_loadb(text, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &je);
    if (!*cfg) return spq_fail(err, "%s: invalid JSON at line %d column %d: %s", cfg_path, je.line, je.column, je.text);
    if (!json_is_object(*cfg)) {
        json_decref(*cfg);
        *cfg = NULL;
        return spq_fail(err, "%s: not a JSON object", cfg_path);
    }
    return 0;
}

int spq_tok_load_json(spq_tokenizer **out, const char *path, const char *config_path, spq_err *err) {
    *out = NULL;
    char *text = NULL, *cfg_text = NULL;
    size_t len = 0, cfg_len = 0;
    if (spq_read_file(&text, &len, path, err)) return -1;
    if (config_path && spq_read_file(&cfg_text, &cfg_len, config_path, err)) {
        free(text);
        return -1;
    }
    int rc = spq_tok_load_json_mem(out, path, text, len, config_path, cfg_text, cfg_len, err);
    free(text);
    free(cfg_text);
    return rc;
}

int spq_tok_load_json_mem(spq_tokenizer **out, const char *path, const char *text, size_t len,
                          const char *config_path, const char *cfg_text, size_t cfg_len, spq_err *err) {
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_ALLOW_NUL, &je);
    if (!root) return spq_fail(err, "%s: invalid JSON at line %d column %d: %s", path, je.line, je.column, je.text);
    json_t *cfg;
    if (parse_config(&cfg, config_path, cfg_text, cfg_len, err)) {
        json_decref(root);
        return -1;
    }
    ctx c = {.path = path, .err = err};
    build_unmap(&c);
    spq_tokenizer *t = c.t = spq_tok_alloc(path);
    t->merge_mode = SPQ_MERGE_RANK;
    int rc = -1;
    if (!json_is_object(root)) {
        spq_fail(err, "%s: not a JSON object", path);
        goto done;
    }
    json_t *model = json_object_get(root, "model");
    if (!model) {
        spq_fail(err, "%s: no \"model\": not a tokenizer.json", path);
        goto done;
    }
    t->bytelevel = has_bytelevel(json_object_get(root, "pre_tokenizer"), "pretokenizers") ||
                   has_bytelevel(json_object_get(root, "decoder"), "decoders");
    if (load_model(&c, model) || load_added(&c, json_object_get(root, "added_tokens")) ||
        load_merges(&c, json_object_get(model, "merges")) ||
        load_normalizer(&c, json_object_get(root, "normalizer"), "normalizer") ||
        load_pretokenizer(&c, json_object_get(root, "pre_tokenizer"), "pre_tokenizer") ||
        load_postprocessor(&c, json_object_get(root, "post_processor"), "post_processor") ||
        load_decoder(&c, json_object_get(root, "decoder"), "decoder"))
        goto done;
    json_t *unk = json_object_get(model, "unk_token");
    if (json_is_string(unk)) {
        t->unk_id = find_id(&c, json_string_value(unk), (int)json_string_length(unk));
        if (t->unk_id < 0) {
            spq_fail(err, "%s: model.unk_token \"%s\" is not in the vocabulary", path, json_string_value(unk));
            goto done;
        }
    }
    if (load_config(&c, config_path, cfg) || spq_tok_finish(t, err)) goto done;
    for (int i = 0; i < t->n_prefix + t->n_suffix; i++) {
        int id = i < t->n_prefix ? t->prefix[i] : t->suffix[i - t->n_prefix];
        if (id < 0 || id >= t->n_vocab || !t->vocab[id].text) {
            spq_fail(err, "%s: post_processor: the special token id %d is not in the vocabulary", path, id);
            goto done;
        }
    }
    rc = 0;
done:
    json_decref(cfg);
    json_decref(root);
    if (rc) spq_tok_free(t);
    else *out = t;
    return rc;
}
