/* tok_dec.c - ids back to text: the decoder steps of a tokenizer.json run
 * over the list of token texts, as HF tokenizers / transformers.js do:
 *   Replace (e.g. "▁" -> " "), ByteFallback (runs of <0xNN> tokens become
 *   the text of their bytes), Fuse (join), Strip (drop leading/trailing
 *   characters), Metaspace (older "▁" decoder), ByteLevel (texts are already
 *   raw bytes here; runs between added tokens are made valid UTF-8).
 * Whole-sequence decoding makes invalid byte runs valid UTF-8 with U+FFFD
 * like the reference's TextDecoder; streaming (`piece`) keeps raw bytes so
 * that a character split over several byte tokens prints whole, and applies
 * the strip-at-start rules only to the first token of a text. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct {
    char *s;
    size_t n, cap;
    int added;
} dstr;

typedef struct {
    dstr *v;
    int n, cap;
} dlist;

static void ds_put(dstr *d, const char *s, size_t n) {
    if (d->n + n + 1 > d->cap) {
        while (d->n + n + 1 > d->cap) d->cap = d->cap ? d->cap * 2 : 32;
        d->s = spq_realloc(d->s, d->cap);
    }
    if (n) memcpy(d->s + d->n, s, n);
    d->n += n;
    d->s[d->n] = 0;
}

static dstr *dl_add(dlist *l, int added) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->v = spq_realloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    dstr *d = &l->v[l->n++];
    memset(d, 0, sizeof *d);
    d->added = added;
    ds_put(d, "", 0);
    return d;
}

static void dl_free(dlist *l) {
    for (int i = 0; i < l->n; i++) free(l->v[i].s);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The byte of a "<0xNN>" token, or -1. */
static int byte_token(const dstr *d) {
    if (d->n != 6 || memcmp(d->s, "<0x", 3) || d->s[5] != '>') return -1;
    int hi = hexval(d->s[3]), lo = hexval(d->s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static void put_bytes(dstr *d, const char *s, size_t n, int raw) {
    if (raw) ds_put(d, s, n);
    else spq_utf8_sanitize_append(&d->s, &d->n, &d->cap, s, n);
}

/* Replaces every pat in each text by rep. */
static void step_replace(dlist *l, const char *pat, int np, const char *rep, int nr) {
    if (np <= 0) return;
    for (int i = 0; i < l->n; i++) {
        dstr *d = &l->v[i];
        if (!memmem(d->s, d->n, pat, np)) continue;
        dstr r = {0};
        ds_put(&r, "", 0);
        size_t j = 0, run = 0;
        while (j + np <= d->n) {
            if (!memcmp(d->s + j, pat, np)) {
                ds_put(&r, d->s + run, j - run);
                ds_put(&r, rep, nr);
                j += np;
                run = j;
            } else {
                j++;
            }
        }
        ds_put(&r, d->s + run, d->n - run);
        r.added = d->added;
        free(d->s);
        *d = r;
    }
}

/* Joins each run of byte tokens into one text, or into runs of texts
 * between added tokens (ByteLevel). */
static void step_join(dlist *l, int bytelevel, int raw) {
    dlist out = {0};
    char *run = NULL;
    size_t rn = 0, rcap = 0;
    int in_run = 0;
    for (int i = 0; i <= l->n; i++) {
        dstr *d = i < l->n ? &l->v[i] : NULL;
        int b = -1, joins = 0;
        if (d && bytelevel) joins = !d->added;
        else if (d && (b = byte_token(d)) >= 0) joins = 1;
        if (joins) {
            if (rn + d->n + 1 > rcap) {
                rcap = (rn + d->n + 1) * 2;
                run = spq_realloc(run, rcap);
            }
            if (bytelevel) memcpy(run + rn, d->s, d->n), rn += d->n;
            else run[rn++] = (char)b;
            in_run = 1;
            continue;
        }
        if (in_run) {
            put_bytes(dl_add(&out, 0), run, rn, raw);
            rn = 0;
            in_run = 0;
        }
        if (d) {
            dstr *o = dl_add(&out, d->added);
            ds_put(o, d->s, d->n);
        }
    }
    free(run);
    dl_free(l);
    *l = out;
}

static void step_fuse(dlist *l) {
    if (l->n <= 1) return;
    dstr all = {0};
    ds_put(&all, "", 0);
    for (int i = 0; i < l->n; i++) ds_put(&all, l->v[i].s, l->v[i].n);
    dl_free(l);
    dstr *d = dl_add(l, 0);
    free(d->s);
    *d = all;
}

static void step_strip(dlist *l, const char *c, int nc, int start, int stop, int first, int piece) {
    if (nc <= 0) return;
    for (int i = 0; i < l->n; i++) {
        dstr *d = &l->v[i];
        size_t a = 0, b = d->n;
        for (int k = 0; k < start && (first || !piece); k++) {
            if (b - a >= (size_t)nc && !memcmp(d->s + a, c, nc)) a += nc;
            else break;
        }
        for (int k = 0; k < stop && !piece; k++) {
            if (b - a >= (size_t)nc && !memcmp(d->s + b - nc, c, nc)) b -= nc;
            else break;
        }
        memmove(d->s, d->s + a, b - a);
        d->n = b - a;
        d->s[d->n] = 0;
    }
}

static void step_metaspace(dlist *l, const spq_tok_dec *st, int first) {
    step_replace(l, st->a, st->na, " ", 1);
    if (st->start && first && l->n > 0 && l->v[0].n > 0 && l->v[0].s[0] == ' ') {
        dstr *d = &l->v[0];
        memmove(d->s, d->s + 1, d->n);  /* with the NUL */
        d->n--;
    }
}

/* Runs the decoder on ids; piece = 1 is the streaming form (raw bytes,
 * start-of-text rules only when first). */
static char *run_decoder(const spq_tokenizer *t, const int *ids, int n_ids, int skip_special, int piece, int first,
                         size_t *out_len) {
    dlist l = {0};
    for (int i = 0; i < n_ids; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_vocab || !t->vocab[id].text) continue;
        const spq_tok_entry *e = &t->vocab[id];
        if (skip_special && e->special) continue;
        ds_put(dl_add(&l, e->added), e->text, e->len);
    }
    for (int k = 0; k < t->n_dec; k++) {
        const spq_tok_dec *st = &t->dec[k];
        switch (st->type) {
        case SPQ_DEC_REPLACE: step_replace(&l, st->a, st->na, st->b, st->nb); break;
        case SPQ_DEC_BYTEFALLBACK: step_join(&l, 0, piece); break;
        case SPQ_DEC_BYTELEVEL: step_join(&l, 1, piece); break;
        case SPQ_DEC_FUSE: step_fuse(&l); break;
        case SPQ_DEC_STRIP: step_strip(&l, st->a, st->na, st->start, st->stop, first, piece); break;
        case SPQ_DEC_METASPACE: step_metaspace(&l, st, first); break;
        }
    }
    dstr all = {0};
    ds_put(&all, "", 0);
    for (int i = 0; i < l.n; i++) ds_put(&all, l.v[i].s, l.v[i].n);
    dl_free(&l);
    *out_len = all.n;
    return all.s;
}

char *spq_tok_decode_len(const spq_tokenizer *t, const int *ids, int n_ids, int skip_special, size_t *len) {
    size_t n;
    char *s = run_decoder(t, ids, n_ids, skip_special, 0, 1, &n);
    if (!t->n_dec) {  /* no decoder: still hand back valid UTF-8 */
        char *o = NULL;
        size_t on = 0, cap = 0;
        spq_utf8_sanitize_append(&o, &on, &cap, s, n);
        if (!o) o = spq_calloc(1, 1);
        free(s);
        s = o;
        n = on;
    }
    if (len) *len = n;
    return s;
}

char *spq_tok_decode(const spq_tokenizer *t, const int *ids, int n_ids, int skip_special) {
    return spq_tok_decode_len(t, ids, n_ids, skip_special, NULL);
}

size_t spq_tok_piece(const spq_tokenizer *t, int prev, int id, char *buf, size_t cap) {
    if (cap == 0) return 0;
    buf[0] = 0;
    if (id < 0 || id >= t->n_vocab || !t->vocab[id].text || t->vocab[id].special) return 0;
    int first = prev < 0 || prev == t->bos_id;
    size_t n;
    char *s = run_decoder(t, &id, 1, 1, 1, first, &n);
    if (n > cap - 1) n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    free(s);
    return n;
}
