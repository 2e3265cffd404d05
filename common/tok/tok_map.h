/* tok_map.h - the two hash tables of the tokenizer: token text -> id and
 * (left id, right id) -> merge. Open addressing with linear probing; the
 * tables only grow (a tokenizer is built once and then read). */
#ifndef SPQ_TOK_MAP_H
#define SPQ_TOK_MAP_H

#include <stddef.h>
#include <stdint.h>

/* Keys are borrowed: the caller keeps the bytes alive as long as the map. */
typedef struct {
    const char **key;
    int *klen;
    int *val;
    size_t cap; /* power of two */
    size_t n;
} spq_strmap;

void spq_strmap_init(spq_strmap *m);
void spq_strmap_free(spq_strmap *m);
/* Inserts or overwrites. */
void spq_strmap_put(spq_strmap *m, const char *key, int klen, int val);
/* The value for key, or -1. */
int spq_strmap_get(const spq_strmap *m, const char *key, int klen);

typedef struct {
    uint64_t *key; /* (left << 32 | right) + 1; 0 marks an empty slot */
    int *rank;
    int *merged;
    size_t cap;
    size_t n;
} spq_pairmap;

void spq_pairmap_init(spq_pairmap *m);
void spq_pairmap_free(spq_pairmap *m);
void spq_pairmap_put(spq_pairmap *m, int left, int right, int rank, int merged);
/* Returns 1 and sets *rank, *merged when (left, right) is a merge. */
int spq_pairmap_get(const spq_pairmap *m, int left, int right, int *rank, int *merged);

#endif
