/* tok_bpe.c - byte-pair merging of one word, O(n log n).
 *
 * The word starts as a doubly linked list of symbols (its UTF-8 characters,
 * or its bytes for a byte-level tokenizer), each a span of the word with a
 * token id (-1 when the character has no token). Every adjacent pair that
 * can merge is pushed on a binary heap keyed by (priority, position of the
 * left symbol); the best pair is popped and merged into its left symbol, and
 * the two new neighbour pairs are pushed. A popped pair is stale when one of
 * its symbols has changed since the push: symbols only grow while alive and
 * a merged-away symbol has size 0, so "sizes still add up to what they were"
 * is the whole check. This is the merge order of HF tokenizers (lowest rank,
 * then leftmost) and of SentencePiece / llama2.c (highest score of the merged
 * piece, then leftmost).
 *
 * Priority: RANK mode looks the pair up in the merges table; SCORE mode looks
 * the concatenation (a contiguous span of the word) up in the vocabulary and
 * uses minus the piece's score. Symbols without a token never merge; after
 * merging they become <0xNN> byte tokens (byte fallback) or unk. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

typedef struct {
    int start, n;    /* span of the word; n == 0 once merged away */
    int id;
    int prev, next;  /* -1 at the ends */
} bpe_sym;

typedef struct {
    double prio;     /* lower merges first */
    int left, right; /* symbol indices */
    int size;        /* left.n + right.n when pushed */
    int merged;      /* the id of the merged token */
} bpe_cand;

typedef struct {
    bpe_cand *v;
    int n, cap;
} bpe_heap;

static int cand_less(const bpe_cand *a, const bpe_cand *b) {
    return a->prio < b->prio || (a->prio == b->prio && a->left < b->left);
}

static void heap_push(bpe_heap *h, bpe_cand c) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = spq_realloc(h->v, (size_t)h->cap * sizeof *h->v);
    }
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
}

static bpe_cand heap_pop(bpe_heap *h) {
    bpe_cand top = h->v[0], last = h->v[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && cand_less(&h->v[c + 1], &h->v[c])) c++;
        if (!cand_less(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

/* Pushes the pair (l, r) when it can merge. */
static void try_pair(bpe_heap *h, const spq_tokenizer *t, const char *word, const bpe_sym *s, int l, int r) {
    if (l < 0 || r < 0 || s[l].id < 0 || s[r].id < 0) return;
    bpe_cand c = {.left = l, .right = r, .size = s[l].n + s[r].n};
    if (t->merge_mode == SPQ_MERGE_RANK) {
        int rank;
        if (!spq_pairmap_get(&t->merges, s[l].id, s[r].id, &rank, &c.merged)) return;
        c.prio = rank;
    } else {
        c.merged = spq_strmap_get(&t->model_map, word + s[l].start, c.size);
        if (c.merged < 0) return;
        c.prio = -(double)t->vocab[c.merged].score;
    }
    heap_push(h, c);
}

void spq_ivec_push(spq_ivec *a, int x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = spq_realloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    a->v[a->n++] = x;
}

/* Emits the token(s) of one final symbol. */
static int emit(const spq_tokenizer *t, const char *s, int n, int id, spq_ivec *ids, spq_err *err) {
    if (id >= 0) {
        spq_ivec_push(ids, id);
        return 0;
    }
    int all = t->byte_fallback;
    for (int i = 0; i < n && all; i++) all = t->byte_ids[(unsigned char)s[i]] >= 0;
    if (all) {
        for (int i = 0; i < n; i++) spq_ivec_push(ids, t->byte_ids[(unsigned char)s[i]]);
        return 0;
    }
    if (t->unk_id >= 0) {
        spq_ivec_push(ids, t->unk_id);
        return 0;
    }
    return spq_fail(err, "the character '%.*s' has no token and the tokenizer has no unk token", n, s);
}

int spq_bpe_word(const spq_tokenizer *t, const char *word, int n, spq_ivec *ids, spq_err *err) {
    if (n <= 0) return 0;
    if (t->ignore_merges) {
        int id = spq_strmap_get(&t->model_map, word, n);
        if (id >= 0) {
            spq_ivec_push(ids, id);
            return 0;
        }
    }
    bpe_sym small[64];
    bpe_sym *s = n <= 64 ? small : spq_malloc((size_t)n * sizeof *s);
    int ns = 0;
    for (int i = 0; i < n;) {
        int len = t->bytelevel ? 1 : spq_utf8_len((unsigned char)word[i]);
        if (i + len > n) len = n - i;
        int id = t->bytelevel ? t->byte_ids[(unsigned char)word[i]] : spq_strmap_get(&t->model_map, word + i, len);
        s[ns] = (bpe_sym){.start = i, .n = len, .id = id, .prev = ns - 1, .next = ns + 1};
        ns++;
        i += len;
    }
    s[ns - 1].next = -1;

    /* A symbol without a token never merges, so the runs between such
     * symbols are independent: merging each run on its own heap gives the
     * same result and keeps the heaps small (SentencePiece texts have no
     * pre-tokenizer, but newlines are byte-fallback characters). */
    bpe_heap h = {0};
    for (int r0 = 0; r0 < ns;) {
        int r1 = r0 + 1;
        while (r1 < ns && s[r1].id >= 0 && s[r1 - 1].id >= 0) r1++;
        for (int i = r0; i + 1 < r1; i++) try_pair(&h, t, word, s, i, i + 1);
        while (h.n > 0) {
            bpe_cand c = heap_pop(&h);
            bpe_sym *l = &s[c.left], *r = &s[c.right];
            if (l->n == 0 || r->n == 0 || l->n + r->n != c.size) continue;  /* stale */
            l->n += r->n;
            l->id = c.merged;
            l->next = r->next;
            if (r->next >= 0) s[r->next].prev = c.left;
            r->n = 0;
            try_pair(&h, t, word, s, l->prev, c.left);
            try_pair(&h, t, word, s, c.left, l->next);
        }
        r0 = r1;
    }
    free(h.v);

    int rc = 0;
    for (int i = 0; i >= 0 && rc == 0; i = s[i].next) rc = emit(t, word + s[i].start, s[i].n, s[i].id, ids, err);
    if (s != small) free(s);
    return rc;
}
