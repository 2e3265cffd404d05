/* tok_vocab.c - see tok_vocab.h. */
#include "tok_vocab.h"

#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define SPM_SPACE "\xE2\x96\x81" /* "▁" */
/* LLaMA 3's Split regex, as its tokenizer.json spells it */
#define LLAMA3_PATTERN                                                                                           \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|" \
    "\\s+(?!\\S)|\\s+"

/* GPT-2's bytes_to_unicode: the code point that spells each byte, and back */
typedef struct {
    int cp[256];
    int byte_of[324];
} bl_map;

static void bl_init(bl_map *m) {
    int n = 0;
    for (int i = 0; i < 324; i++) m->byte_of[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        m->cp[b] = printable ? b : 256 + n++;
        m->byte_of[m->cp[b]] = b;
    }
}

/* s (n raw bytes) in byte-level spelling: a malloc'd string, *len its length */
static char *bytes_to_spelling(const bl_map *m, const char *s, int n, int *len) {
    char *o = spq_malloc((size_t)n * 2 + 1);
    int k = 0;
    for (int i = 0; i < n; i++) {
        unsigned c = (unsigned)m->cp[(unsigned char)s[i]];
        if (c < 0x80) o[k++] = (char)c;
        else o[k++] = (char)(0xC0 | (c >> 6)), o[k++] = (char)(0x80 | (c & 0x3F));
    }
    o[k] = 0;
    *len = k;
    return o;
}

/* the bytes a byte-level spelling stands for into out (at most n bytes), or
 * -1 when s has a character outside the 256 of the mapping */
static int spelling_to_bytes(const bl_map *m, const char *s, int n, char *out) {
    int k = 0;
    for (int i = 0; i < n;) {
        const unsigned char *p = (const unsigned char *)s + i;
        unsigned cp;
        if (p[0] < 0x80) cp = p[0], i += 1;
        else if ((p[0] & 0xE0) == 0xC0 && i + 1 < n && (p[1] & 0xC0) == 0x80) cp = ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3F), i += 2;
        else return -1;
        if (cp >= 324 || m->byte_of[cp] < 0) return -1;
        out[k++] = (char)m->byte_of[cp];
    }
    return k;
}

void spq_tok_vocab_free(spq_tok_vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->tokens[i]);
    for (int i = 0; i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens);
    free(v->lens);
    free(v->scores);
    free(v->types);
    free(v->merges);
    memset(v, 0, sizeof *v);
}

/* ---- spinq -> GGUF ---- */

static int is_byte_token(const spq_tok_entry *e) {
    return e->len == 6 && !memcmp(e->text, "<0x", 3) && e->text[5] == '>';
}

static int pat_is(const spq_tok_pre *p, const char *pattern) {
    return p->src && p->nsrc == (int)strlen(pattern) && !memcmp(p->src, pattern, p->nsrc);
}

/* which llama.cpp pre-tokenizer a byte-level tokenizer's steps are */
static const char *bytelevel_pre(const spq_tokenizer *t) {
    const spq_tok_pre *p = t->pre;
    if (t->n_norm) return NULL;
    if (t->n_pre == 2 && p[0].type == SPQ_PRE_SPLIT && p[0].behavior == SPQ_SPLIT_ISOLATED && !p[0].invert &&
        pat_is(&p[0], LLAMA3_PATTERN) && p[1].type == SPQ_PRE_BYTELEVEL && !p[1].re && !p[1].add_prefix_space &&
        t->ignore_merges)
        return "llama-bpe";
    if (t->n_pre == 1 && p[0].type == SPQ_PRE_BYTELEVEL && pat_is(&p[0], SPQ_TOK_GPT2_PATTERN) &&
        !p[0].add_prefix_space && !t->ignore_merges)
        return "gpt-2";
    return NULL;
}

/* a SentencePiece tokenizer: "▁" for spaces by the normalizer (LLaMA 2's
 * tokenizer.json, tokenizer.bin) or a Metaspace pre-tokenizer */
static int is_spm(const spq_tokenizer *t) {
    if (!t->byte_fallback || t->bytelevel) return 0;
    if (t->n_norm == 2 && t->n_pre == 0)
        return t->norm[0].type == SPQ_NORM_PREPEND && t->norm[0].na == 3 && !memcmp(t->norm[0].a, SPM_SPACE, 3) &&
               t->norm[1].type == SPQ_NORM_REPLACE && t->norm[1].na == 1 && t->norm[1].a[0] == ' ' &&
               t->norm[1].nb == 3 && !memcmp(t->norm[1].b, SPM_SPACE, 3);
    return t->n_norm == 0 && t->n_pre == 1 && t->pre[0].type == SPQ_PRE_METASPACE && t->pre[0].add_prefix_space &&
           t->pre[0].nrepl == 3 && !memcmp(t->pre[0].repl, SPM_SPACE, 3);
}

typedef struct {
    int rank, left, right, merged;
} merge_rec;

static int by_rank(const void *a, const void *b) {
    const merge_rec *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

/* the merges of t in rank order (*n of them) */
static merge_rec *sorted_merges(const spq_tokenizer *t, int *n) {
    const spq_pairmap *m = &t->merges;
    merge_rec *r = spq_malloc((m->n ? m->n : 1) * sizeof *r);
    int k = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->key[i]) {
            uint64_t key = m->key[i] - 1;
            r[k++] = (merge_rec){m->rank[i], (int)(key >> 32), (int)(key & 0xFFFFFFFFu), m->merged[i]};
        }
    qsort(r, k, sizeof *r, by_rank);
    *n = k;
    return r;
}

int spq_tok_to_vocab(spq_tok_vocab *v, const spq_tokenizer *t, spq_err *err) {
    memset(v, 0, sizeof *v);
    const char *pre = NULL;
    if (t->bytelevel) {
        if (!(pre = bytelevel_pre(t)))
            return spq_fail(err, "%s: this byte-level tokenizer's pre-tokenizer has no llama.cpp name (GGUF knows "
                                 "LLaMA 3's Split regex, \"llama-bpe\", and GPT-2's ByteLevel regex, \"gpt-2\")",
                            t->path);
        if (t->merge_mode != SPQ_MERGE_RANK) return spq_fail(err, "%s: a byte-level tokenizer without merges", t->path);
    } else if (!is_spm(t)) {
        return spq_fail(err, "%s: the tokenizer is neither SentencePiece-style (byte fallback, \"▁\" for spaces) nor "
                             "byte-level: GGUF's llama and gpt2 tokenizer models cannot describe it", t->path);
    }
    if (t->n_prefix > 1 || (t->n_prefix == 1 && t->prefix[0] != t->bos_id) || t->n_suffix > 1 ||
        (t->n_suffix == 1 && t->suffix[0] != t->eos_id))
        return spq_fail(err, "%s: the tokenizer frames a text with ids other than BOS / EOS, which GGUF cannot say",
                        t->path);
    bl_map bm;
    bl_init(&bm);
    snprintf(v->model, sizeof v->model, "%s", t->bytelevel ? "gpt2" : "llama");
    snprintf(v->pre, sizeof v->pre, "%s", pre ? pre : "");
    v->n = t->n_vocab;
    v->tokens = spq_calloc(v->n, sizeof *v->tokens);
    v->lens = spq_calloc(v->n, sizeof *v->lens);
    v->types = spq_calloc(v->n, sizeof *v->types);
    v->scores = t->bytelevel ? NULL : spq_calloc(v->n, sizeof *v->scores);
    for (int i = 0; i < v->n; i++) {
        const spq_tok_entry *e = &t->vocab[i];
        if (!e->text) {
            char buf[32];
            snprintf(buf, sizeof buf, "[PAD%d]", i);
            v->tokens[i] = spq_strdup(buf);
            v->lens[i] = (int)strlen(buf);
            v->types[i] = SPQ_TT_UNUSED;
            continue;
        }
        /* added tokens keep their literal text (llama.cpp reads control and
         * user-defined tokens unspelled) */
        if (t->bytelevel && e->in_model && !e->added) v->tokens[i] = bytes_to_spelling(&bm, e->text, e->len, &v->lens[i]);
        else v->tokens[i] = spq_tok_memdup(e->text, v->lens[i] = e->len);
        v->types[i] = i == t->unk_id ? SPQ_TT_UNKNOWN
                      : e->added     ? (e->special ? SPQ_TT_CONTROL : SPQ_TT_USER)
                      : !e->in_model ? SPQ_TT_UNUSED
                      : !t->bytelevel && is_byte_token(e) ? SPQ_TT_BYTE
                                                          : SPQ_TT_NORMAL;
        if (v->scores && t->merge_mode == SPQ_MERGE_SCORE) v->scores[i] = e->score;
    }
    int nm;
    merge_rec *m = sorted_merges(t, &nm);
    if (t->bytelevel) {
        v->merges = spq_calloc(nm ? nm : 1, sizeof *v->merges);
        v->n_merges = nm;
        for (int i = 0; i < nm; i++) {
            int la, lb;
            char *a = bytes_to_spelling(&bm, t->vocab[m[i].left].text, t->vocab[m[i].left].len, &la);
            char *b = bytes_to_spelling(&bm, t->vocab[m[i].right].text, t->vocab[m[i].right].len, &lb);
            v->merges[i] = spq_malloc((size_t)la + lb + 2);
            memcpy(v->merges[i], a, la);
            v->merges[i][la] = ' ';
            memcpy(v->merges[i] + la + 1, b, lb + 1);
            free(a);
            free(b);
        }
    } else if (t->merge_mode == SPQ_MERGE_RANK) {
        /* ranked merges -> scores: the merged piece of rank r scores -(r+1),
         * from the first merge that makes it (m is in rank order) */
        char *seen = spq_calloc(v->n, 1);
        for (int i = 0; i < nm; i++)
            if (!seen[m[i].merged]) {
                seen[m[i].merged] = 1;
                v->scores[m[i].merged] = -(float)(i + 1);
            }
        free(seen);
    }
    free(m);
    v->bos = t->bos_id;
    v->eos = t->eos_id;
    v->unk = t->unk_id;
    v->add_bos = t->n_prefix == 1;
    v->add_eos = t->n_suffix == 1;
    return 0;
}

/* ---- GGUF -> spinq ---- */

static int set_tokens(spq_tokenizer *t, const spq_tok_vocab *v, int gpt2, const bl_map *bm, spq_err *err) {
    char *raw = NULL;
    int cap = 0;
    for (int i = 0; i < v->n; i++) {
        int ty = v->types ? v->types[i] : SPQ_TT_NORMAL, len = v->lens[i];
        if (ty < SPQ_TT_NORMAL || ty > SPQ_TT_BYTE) {
            free(raw);
            return spq_fail(err, "%s: tokenizer.ggml.token_type[%d]: %d is not a token type (1..6)", t->path, i, ty);
        }
        int model = ty == SPQ_TT_NORMAL || ty == SPQ_TT_BYTE, k = len;
        const char *text = v->tokens[i];
        if (gpt2 && model) {
            if (len + 1 > cap) raw = spq_realloc(raw, cap = 2 * len + 16);
            k = spelling_to_bytes(bm, text, len, raw);
            if (k >= 0) text = raw;
            else k = len, model = 0; /* a text outside the byte alphabet: decoding only */
        }
        spq_tok_entry *e = spq_tok_set_entry(t, i, text, k, v->scores ? v->scores[i] : 0);
        e->in_model = (uint8_t)model;
        if (ty == SPQ_TT_CONTROL || ty == SPQ_TT_UNKNOWN || ty == SPQ_TT_USER) {
            e->added = 1;
            e->special = ty != SPQ_TT_USER;
        }
    }
    free(raw);
    return 0;
}

static int set_merges(spq_tokenizer *t, const spq_tok_vocab *v, const bl_map *bm, spq_err *err) {
    for (int id = 0; id < t->n_vocab; id++)
        if (t->vocab[id].in_model) spq_strmap_put(&t->model_map, t->vocab[id].text, t->vocab[id].len, id);
    char *buf = NULL;
    int cap = 0, rc = 0;
    for (int i = 0; i < v->n_merges && !rc; i++) {
        const char *s = v->merges[i], *sp = strchr(s, ' ');
        int n = (int)strlen(s);
        if (!sp || strchr(sp + 1, ' ')) {
            rc = spq_fail(err, "%s: tokenizer.ggml.merges[%d] \"%s\" is not two tokens separated by one space",
                          t->path, i, s);
            break;
        }
        if (n + 1 > cap) buf = spq_realloc(buf, cap = 2 * n + 16);
        int ka = spelling_to_bytes(bm, s, (int)(sp - s), buf);
        int kb = ka < 0 ? -1 : spelling_to_bytes(bm, sp + 1, (int)strlen(sp + 1), buf + ka);
        int ia = ka < 0 ? -1 : spq_strmap_get(&t->model_map, buf, ka);
        int ib = kb < 0 ? -1 : spq_strmap_get(&t->model_map, buf + ka, kb);
        int im = ia < 0 || ib < 0 ? -1 : spq_strmap_get(&t->model_map, buf, ka + kb);
        if (ia < 0 || ib < 0 || im < 0)
            rc = spq_fail(err, "%s: tokenizer.ggml.merges[%d] \"%s\": %s is not a token", t->path, i, s,
                          ia < 0 ? "the left part" : ib < 0 ? "the right part" : "the merged text");
        else spq_pairmap_put(&t->merges, ia, ib, i, im);
    }
    free(buf);
    return rc;
}

int spq_tok_from_vocab(spq_tokenizer **out, const spq_tok_vocab *v, const char *name, spq_err *err) {
    *out = NULL;
    int gpt2 = !strcmp(v->model, "gpt2");
    if (!gpt2 && strcmp(v->model, "llama"))
        return spq_fail(err, "%s: tokenizer.ggml.model \"%s\" is not supported (llama or gpt2)", name, v->model);
    int llama3 = gpt2 && !strcmp(v->pre, "llama-bpe");
    if (gpt2 && !llama3 && strcmp(v->pre, "gpt-2"))
        return spq_fail(err, "%s: tokenizer.ggml.pre \"%s\" is not supported (llama-bpe or gpt-2)", name, v->pre);
    if (v->n < 1) return spq_fail(err, "%s: tokenizer.ggml.tokens is empty", name);
    if (!gpt2 && !v->scores) return spq_fail(err, "%s: tokenizer.ggml.scores is missing (model llama)", name);
    if (gpt2 && v->n_merges < 1) return spq_fail(err, "%s: tokenizer.ggml.merges is missing (model gpt2)", name);
    const char *keys[3] = {"bos_token_id", "eos_token_id", "unknown_token_id"};
    int ids[3] = {v->bos, v->eos, v->unk};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= v->n)
            return spq_fail(err, "%s: tokenizer.ggml.%s %d is not below the %d tokens", name, keys[i], ids[i], v->n);
    if ((v->add_bos && v->bos < 0) || (v->add_eos && v->eos < 0))
        return spq_fail(err, "%s: tokenizer.ggml.add_%s_token is true but there is no %s token id", name,
                        v->add_bos && v->bos < 0 ? "bos" : "eos", v->add_bos && v->bos < 0 ? "bos" : "eos");
    spq_tokenizer *t = spq_tok_alloc(name);
    t->bytelevel = gpt2;
    t->merge_mode = gpt2 ? SPQ_MERGE_RANK : SPQ_MERGE_SCORE;
    t->byte_fallback = !gpt2;
    t->ignore_merges = llama3;
    t->bos_id = v->bos;
    t->eos_id = v->eos;
    t->unk_id = v->unk;
    if (v->add_bos) t->prefix[t->n_prefix++] = v->bos;
    if (v->add_eos) t->suffix[t->n_suffix++] = v->eos;
    bl_map bm;
    bl_init(&bm);
    if (set_tokens(t, v, gpt2, &bm, err) || (gpt2 && set_merges(t, v, &bm, err))) goto fail;
    if (!gpt2) {
        spq_tok_spm_pipeline(t);
    } else {
        spq_tok_pre *p;
        if (llama3) {
            p = spq_tok_add_pre(t, SPQ_PRE_SPLIT);
            p->behavior = SPQ_SPLIT_ISOLATED;
            if (spq_tok_compile_regex(p, LLAMA3_PATTERN, strlen(LLAMA3_PATTERN), 0, err)) goto fail;
            spq_tok_add_pre(t, SPQ_PRE_BYTELEVEL);
        } else {
            p = spq_tok_add_pre(t, SPQ_PRE_BYTELEVEL);
            p->invert = 1;
            if (spq_tok_compile_regex(p, SPQ_TOK_GPT2_PATTERN, strlen(SPQ_TOK_GPT2_PATTERN), 0, err)) goto fail;
        }
        spq_tok_add_dec(t, SPQ_DEC_BYTELEVEL);
    }
    if (spq_tok_finish(t, err)) goto fail;
    *out = t;
    return 0;
fail:
    spq_tok_free(t);
    return -1;
}
