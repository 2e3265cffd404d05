/* tok_pre.c - normalizers and pre-tokenizers, with PCRE2 for the split
 * regexes.
 *
 * The regexes in tokenizer.json files are written for Python/Rust; the
 * reference we match (HF transformers.js, as packaged by @lenml/tokenizers)
 * runs them as JavaScript /gu regexes after two rewrites, and we make the same
 * ones so that PCRE2 (UTF + UCP) splits exactly like it:
 *  - "(?i:'s|'t|'re|'ve|'m|'ll|'d)" becomes an explicit [sS]-style group
 *    (PCRE2's caseless matching would also fold e.g. U+017F "ſ" to "s");
 *  - \s and \S mean JavaScript's white space set (it includes U+FEFF and
 *    excludes U+0085, unlike PCRE2's \s).
 * Matching follows JS's split helper: matches and the gaps between them both
 * become words ("Isolated"), empty matches are dropped. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tok_pre.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#define JS_SPACE "\\t\\n\\x{0b}\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}\\x{feff}"

static const char CONTRACTIONS_CI[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
static const char CONTRACTIONS_JS[] = "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))";

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 256;
        b->s = spq_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

/* Rewrites pattern for PCRE2 (see the top of the file). */
static int rewrite_regex(sbuf *out, const char *p, size_t n, spq_err *err) {
    int in_class = 0;
    for (size_t i = 0; i < n;) {
        if (!in_class && n - i >= sizeof CONTRACTIONS_CI - 1 && !memcmp(p + i, CONTRACTIONS_CI, sizeof CONTRACTIONS_CI - 1)) {
            sb_put(out, CONTRACTIONS_JS, sizeof CONTRACTIONS_JS - 1);
            i += sizeof CONTRACTIONS_CI - 1;
            continue;
        }
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[i + 1];
            if (e == 's') {
                if (in_class) sb_put(out, JS_SPACE, strlen(JS_SPACE));
                else sb_put(out, "[" JS_SPACE "]", strlen(JS_SPACE) + 2);
            } else if (e == 'S') {
                if (in_class) return spq_fail(err, "regex '%.*s': \\S inside a character class is not supported", (int)n, p);
                sb_put(out, "[^" JS_SPACE "]", strlen(JS_SPACE) + 3);
            } else {
                sb_put(out, p + i, 2);
            }
            i += 2;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            sb_put(out, p + i, 1);
            i++;
            /* a ']' right after '[' or '[^' is a literal */
            if (i < n && p[i] == '^') sb_put(out, p + i++, 1);
            if (i < n && p[i] == ']') sb_put(out, p + i++, 1);
            continue;
        }
        if (in_class && c == ']') in_class = 0;
        sb_put(out, p + i, 1);
        i++;
    }
    return 0;
}

int spq_tok_compile_regex(spq_tok_pre *pre, const char *pattern, size_t len, int literal, spq_err *err) {
    sbuf re = {0};
    if (literal) sb_put(&re, pattern, len);
    else if (rewrite_regex(&re, pattern, len, err)) {
        free(re.s);
        return -1;
    }
    int code;
    PCRE2_SIZE where;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re.s, re.n, PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0), &code, &where, NULL);
    if (!c) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        spq_fail(err, "regex '%.*s': %s at offset %zu", (int)len, pattern, (const char *)msg, (size_t)where);
        free(re.s);
        return -1;
    }
    pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);  /* optional: falls back to the interpreter */
    free(re.s);
    pre->re = c;
    pre->src = spq_tok_memdup(pattern, pre->nsrc = (int)len);
    return 0;
}

void spq_words_free(spq_words *ws) {
    free(ws->buf);
    free(ws->w);
    memset(ws, 0, sizeof *ws);
}

size_t spq_words_append(spq_words *ws, const char *s, size_t n) {
    if (ws->len + n + 1 > ws->cap) {
        while (ws->len + n + 1 > ws->cap) ws->cap = ws->cap ? ws->cap * 2 : 1024;
        ws->buf = spq_realloc(ws->buf, ws->cap);
    }
    size_t off = ws->len;
    if (n && s) memcpy(ws->buf + off, s, n); /* s == NULL reserves n bytes */
    ws->len += n;
    ws->buf[ws->len] = 0;
    return off;
}

void spq_words_add(spq_words *ws, size_t off, int len) {
    if (ws->n == ws->cap_w) {
        ws->cap_w = ws->cap_w ? ws->cap_w * 2 : 64;
        ws->w = spq_realloc(ws->w, (size_t)ws->cap_w * sizeof *ws->w);
    }
    ws->w[ws->n++] = (spq_span){off, len};
}

/* Appends s with every occurrence of pat replaced by rep (left to right,
 * non-overlapping); returns the new span. */
static spq_span append_replaced(spq_words *ws, const char *s, size_t n, const char *pat, int np, const char *rep,
                                int nr) {
    size_t off = spq_words_append(ws, NULL, 0), i = 0, run = 0;
    if (np > 0)
        while (i + np <= n) {
            if (!memcmp(s + i, pat, np)) {
                spq_words_append(ws, s + run, i - run);
                spq_words_append(ws, rep, nr);
                i += np;
                run = i;
            } else {
                i++;
            }
        }
    spq_words_append(ws, s + run, n - run);
    return (spq_span){off, (int)(ws->len - off)};
}

spq_span spq_tok_normalize(const spq_tokenizer *t, spq_words *ws, const char *s, size_t n) {
    size_t off = spq_words_append(ws, s, n);
    spq_span cur = {off, (int)n};
    for (int k = 0; k < t->n_norm; k++) {
        const spq_tok_norm *st = &t->norm[k];
        if (st->type == SPQ_NORM_PREPEND) {
            size_t o = spq_words_append(ws, st->a, st->na);
            /* the source may have moved with the append: copy from the offset */
            spq_words_append(ws, NULL, cur.len);
            memcpy(ws->buf + o + st->na, ws->buf + cur.off, cur.len);
            cur = (spq_span){o, st->na + cur.len};
        } else {
            /* the source must not move while being read: copy it first */
            char *src = spq_malloc(cur.len + 1);
            memcpy(src, ws->buf + cur.off, cur.len);
            cur = append_replaced(ws, src, cur.len, st->a, st->na, st->b, st->nb);
            free(src);
        }
    }
    return cur;
}

/* Splits one word with a compiled regex into out. */
static void split_word(spq_words *out, const char *buf, spq_span w, pcre2_code *re, pcre2_match_data *md,
                       int behavior, int invert) {
    const char *s = buf + w.off;
    size_t n = w.len, prev = 0, start = 0;
    while (start <= n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (!invert && behavior == SPQ_SPLIT_ISOLATED && ms > prev) spq_words_add(out, w.off + prev, (int)(ms - prev));
        if (!invert && behavior == SPQ_SPLIT_REMOVED && ms > prev) spq_words_add(out, w.off + prev, (int)(ms - prev));
        if (me > ms && (invert || behavior == SPQ_SPLIT_ISOLATED)) spq_words_add(out, w.off + ms, (int)(me - ms));
        prev = me;
        /* an empty match moves on by one character, as JS's /u matchAll does */
        start = me > ms ? me : me + (me < n ? spq_utf8_len((unsigned char)s[me]) : 1);
    }
    if (!invert && prev < n) spq_words_add(out, w.off + prev, (int)(n - prev));
}

/* Swaps in the words of the next step. */
static void take_words(spq_words *ws, spq_words *next) {
    free(ws->w);
    ws->w = next->w;
    ws->n = next->n;
    ws->cap_w = next->cap_w;
    next->w = NULL;
    next->n = next->cap_w = 0;
}

int spq_tok_pretokenize(const spq_tokenizer *t, spq_words *ws, spq_span section, int section_index, spq_err *err) {
    ws->n = 0;
    spq_words_add(ws, section.off, section.len);
    for (int k = 0; k < t->n_pre; k++) {
        const spq_tok_pre *st = &t->pre[k];
        spq_words next = {0};
        if (st->type == SPQ_PRE_METASPACE) {
            for (int i = 0; i < ws->n; i++) {
                spq_span w = ws->w[i];
                char *src = spq_malloc(w.len + 1);
                memcpy(src, ws->buf + w.off, w.len);
                spq_span r = append_replaced(ws, src, w.len, " ", 1, st->repl, st->nrepl);
                free(src);
                int starts = r.len >= st->nrepl && !memcmp(ws->buf + r.off, st->repl, st->nrepl);
                if (st->add_prefix_space && !starts &&
                    (st->prepend_scheme == SPQ_PREPEND_ALWAYS ||
                     (st->prepend_scheme == SPQ_PREPEND_FIRST && section_index == 0))) {
                    size_t o = spq_words_append(ws, st->repl, st->nrepl);
                    spq_words_append(ws, NULL, r.len);
                    memcpy(ws->buf + o + st->nrepl, ws->buf + r.off, r.len);
                    r = (spq_span){o, st->nrepl + r.len};
                }
                spq_words_add(&next, r.off, r.len);
            }
        } else {
            pcre2_match_data *md = st->re ? pcre2_match_data_create_from_pattern(st->re, NULL) : NULL;
            if (st->re && !md) return spq_fail(err, "out of memory for regex match data");
            for (int i = 0; i < ws->n; i++) {
                spq_span w = ws->w[i];
                if (st->type == SPQ_PRE_BYTELEVEL && st->add_prefix_space && (w.len == 0 || ws->buf[w.off] != ' ')) {
                    size_t o = spq_words_append(ws, " ", 1);
                    spq_words_append(ws, NULL, w.len);
                    memcpy(ws->buf + o + 1, ws->buf + w.off, w.len);
                    w = (spq_span){o, w.len + 1};
                }
                if (st->re) split_word(&next, ws->buf, w, st->re, md, st->behavior, st->invert);
                else spq_words_add(&next, w.off, w.len);
            }
            pcre2_match_data_free(md);
        }
        take_words(ws, &next);
    }
    return 0;
}
