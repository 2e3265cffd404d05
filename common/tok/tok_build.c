/* tok_build.c - building a tokenizer (tok_internal.h): the construction
 * helpers the loaders (tok_bin.c, tok_json.c) share, the lookup tables every
 * loader ends with (spq_tok_finish), and spq_tok_free. */
#include "tok_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *spq_tok_memdup(const char *s, size_t n) {
    char *d = spq_malloc(n + 1);
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

spq_tokenizer *spq_tok_alloc(const char *path) {
    spq_tokenizer *t = spq_calloc(1, sizeof *t);
    t->path = spq_strdup(path);
    t->unk_id = t->bos_id = t->eos_id = -1;
    spq_strmap_init(&t->model_map);
    spq_pairmap_init(&t->merges);
    return t;
}

spq_tok_entry *spq_tok_set_entry(spq_tokenizer *t, int id, const char *text, int len, float score) {
    if (id >= t->vocab_cap) {
        int n = t->vocab_cap ? t->vocab_cap : 256;
        while (n <= id) n *= 2;
        t->vocab = spq_realloc(t->vocab, (size_t)n * sizeof *t->vocab);
        memset(t->vocab + t->vocab_cap, 0, (size_t)(n - t->vocab_cap) * sizeof *t->vocab);
        t->vocab_cap = n;
    }
    if (id >= t->n_vocab) t->n_vocab = id + 1;
    spq_tok_entry *e = &t->vocab[id];
    free(e->text);
    e->text = spq_tok_memdup(text, len);
    e->len = len;
    e->score = score;
    return e;
}

#define ADD_STEP(fn, type_t, arr, count)                                   \
    type_t *fn(spq_tokenizer *t, int type) {                               \
        t->arr = spq_realloc(t->arr, (size_t)(t->count + 1) * sizeof(type_t)); \
        type_t *s = &t->arr[t->count++];                                   \
        memset(s, 0, sizeof *s);                                           \
        s->type = type;                                                    \
        return s;                                                          \
    }
ADD_STEP(spq_tok_add_norm, spq_tok_norm, norm, n_norm)
ADD_STEP(spq_tok_add_pre, spq_tok_pre, pre, n_pre)
ADD_STEP(spq_tok_add_dec, spq_tok_dec, dec, n_dec)

static int cmp_added(const void *a, const void *b) {
    const spq_tok_added *x = a, *y = b;
    unsigned char fx = (unsigned char)x->text[0], fy = (unsigned char)y->text[0];
    if (fx != fy) return fx - fy;
    if (x->len != y->len) return y->len - x->len;
    return x->id - y->id;
}

int spq_tok_finish(spq_tokenizer *t, spq_err *err) {
    if (t->n_vocab == 0) return spq_fail(err, "%s: the vocabulary is empty", t->path);
    for (int id = 0; id < t->n_vocab; id++) {
        spq_tok_entry *e = &t->vocab[id];
        if (e->text && e->in_model) spq_strmap_put(&t->model_map, e->text, e->len, id);
    }
    for (int b = 0; b < 256; b++) {
        if (t->bytelevel) {
            char c = (char)b;
            t->byte_ids[b] = spq_strmap_get(&t->model_map, &c, 1);
        } else {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_ids[b] = spq_strmap_get(&t->model_map, name, 6);
        }
    }
    t->n_added = 0;
    for (int id = 0; id < t->n_vocab; id++) t->n_added += t->vocab[id].added && t->vocab[id].len > 0;
    t->added = spq_calloc(t->n_added ? t->n_added : 1, sizeof *t->added);
    int k = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        const spq_tok_entry *e = &t->vocab[id];
        if (e->added && e->len > 0)
            t->added[k++] = (spq_tok_added){.id = id, .text = e->text, .len = e->len, .lstrip = e->lstrip,
                                            .rstrip = e->rstrip};
    }
    qsort(t->added, t->n_added, sizeof *t->added, cmp_added);
    memset(t->added_start, 0, sizeof t->added_start);
    for (int i = 0; i < t->n_added; i++) t->added_start[(unsigned char)t->added[i].text[0] + 1]++;
    for (int b = 0; b < 256; b++) t->added_start[b + 1] += t->added_start[b];
    int ids[] = {t->unk_id, t->bos_id, t->eos_id};
    const char *names[] = {"unk", "bos", "eos"};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= t->n_vocab || (ids[i] >= 0 && !t->vocab[ids[i]].text))
            return spq_fail(err, "%s: the %s token id %d is not in the vocabulary", t->path, names[i], ids[i]);
    return 0;
}

void spq_tok_free(spq_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) free(t->vocab[i].text);
    free(t->vocab);
    spq_strmap_free(&t->model_map);
    spq_pairmap_free(&t->merges);
    free(t->added);
    for (int i = 0; i < t->n_norm; i++) free(t->norm[i].a), free(t->norm[i].b);
    for (int i = 0; i < t->n_pre; i++) {
        pcre2_code_free(t->pre[i].re);
        free(t->pre[i].repl);
        free(t->pre[i].src);
    }
    for (int i = 0; i < t->n_dec; i++) free(t->dec[i].a), free(t->dec[i].b);
    free(t->norm);
    free(t->pre);
    free(t->dec);
    free(t->path);
    free(t);
}
