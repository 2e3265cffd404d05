/* tok_map.c - see tok_map.h. Both tables keep the load factor under 1/2,
 * so a probe sequence is short and always ends at an empty slot. */
#include "tok_map.h"

#include <stdlib.h>
#include <string.h>

#include "common/base/util.h"

/* FNV-1a: short keys, good enough spread for token texts */
static uint64_t hash_bytes(const char *s, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {  /* splitmix64 finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void spq_strmap_init(spq_strmap *m) { memset(m, 0, sizeof *m); }

void spq_strmap_free(spq_strmap *m) {
    free(m->key);
    free(m->klen);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static void strmap_grow(spq_strmap *m) {
    spq_strmap old = *m;
    m->cap = old.cap ? old.cap * 2 : 1024;
    m->key = spq_calloc(m->cap, sizeof *m->key);
    m->klen = spq_calloc(m->cap, sizeof *m->klen);
    m->val = spq_calloc(m->cap, sizeof *m->val);
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.key[i]) spq_strmap_put(m, old.key[i], old.klen[i], old.val[i]);
    free(old.key);
    free(old.klen);
    free(old.val);
}

void spq_strmap_put(spq_strmap *m, const char *key, int klen, int val) {
    if ((m->n + 1) * 2 > m->cap) strmap_grow(m);
    size_t mask = m->cap - 1, i = hash_bytes(key, klen) & mask;
    for (;; i = (i + 1) & mask) {
        if (!m->key[i]) {
            m->key[i] = key;
            m->klen[i] = klen;
            m->val[i] = val;
            m->n++;
            return;
        }
        if (m->klen[i] == klen && !memcmp(m->key[i], key, klen)) {
            m->val[i] = val;
            return;
        }
    }
}

int spq_strmap_get(const spq_strmap *m, const char *key, int klen) {
    if (!m->cap) return -1;
    size_t mask = m->cap - 1, i = hash_bytes(key, klen) & mask;
    for (; m->key[i]; i = (i + 1) & mask)
        if (m->klen[i] == klen && !memcmp(m->key[i], key, klen)) return m->val[i];
    return -1;
}

void spq_pairmap_init(spq_pairmap *m) { memset(m, 0, sizeof *m); }

void spq_pairmap_free(spq_pairmap *m) {
    free(m->key);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}

static uint64_t pair_key(int left, int right) {
    return (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
}

static void pairmap_grow(spq_pairmap *m) {
    spq_pairmap old = *m;
    m->cap = old.cap ? old.cap * 2 : 1024;
    m->key = spq_calloc(m->cap, sizeof *m->key);
    m->rank = spq_calloc(m->cap, sizeof *m->rank);
    m->merged = spq_calloc(m->cap, sizeof *m->merged);
    m->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.key[i]) {
            uint64_t k = old.key[i] - 1;
            spq_pairmap_put(m, (int)(k >> 32), (int)(uint32_t)k, old.rank[i], old.merged[i]);
        }
    free(old.key);
    free(old.rank);
    free(old.merged);
}

void spq_pairmap_put(spq_pairmap *m, int left, int right, int rank, int merged) {
    if ((m->n + 1) * 2 > m->cap) pairmap_grow(m);
    uint64_t k = pair_key(left, right);
    size_t mask = m->cap - 1, i = hash_u64(k) & mask;
    for (;; i = (i + 1) & mask) {
        if (!m->key[i] || m->key[i] == k) {
            if (!m->key[i]) m->n++;
            m->key[i] = k;
            m->rank[i] = rank;
            m->merged[i] = merged;
            return;
        }
    }
}

int spq_pairmap_get(const spq_pairmap *m, int left, int right, int *rank, int *merged) {
    if (!m->cap) return 0;
    uint64_t k = pair_key(left, right);
    size_t mask = m->cap - 1, i = hash_u64(k) & mask;
    for (; m->key[i]; i = (i + 1) & mask)
        if (m->key[i] == k) {
            *rank = m->rank[i];
            *merged = m->merged[i];
            return 1;
        }
    return 0;
}
