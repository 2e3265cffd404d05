/* listcache.c - see listcache.h. A small direct-mapped table under one
 * mutex; a hit costs a hash, a compare and a copy. */
#include "server/listcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/util.h"

#define SLOTS 64

static struct {
    char *key, *text;
    size_t len;
    uint64_t gen;
} slots[SLOTS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned slot_of(const char *key) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)key; *c; c++) h = (h ^ *c) * 16777619u;
    return h % SLOTS;
}

char *listcache_get(const char *key, uint64_t gen) {
    unsigned i = slot_of(key);
    char *out = NULL;
    pthread_mutex_lock(&mu);
    if (slots[i].key && slots[i].gen == gen && !strcmp(slots[i].key, key)) {
        out = spq_malloc(slots[i].len + 1);
        memcpy(out, slots[i].text, slots[i].len + 1);
    }
    pthread_mutex_unlock(&mu);
    return out;
}

void listcache_put(const char *key, uint64_t gen, const char *text) {
    unsigned i = slot_of(key);
    char *k = spq_strdup(key), *t = spq_strdup(text);
    pthread_mutex_lock(&mu);
    char *old_k = slots[i].key, *old_t = slots[i].text;
    slots[i].key = k;
    slots[i].text = t;
    slots[i].len = strlen(t);
    slots[i].gen = gen;
    pthread_mutex_unlock(&mu);
    free(old_k);
    free(old_t);
}
