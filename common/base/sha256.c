/* sha256.c - see sha256.h. */
#include "sha256.h"

#include <nettle/sha2.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(struct sha256_ctx) <= sizeof(spq_sha256), "spq_sha256 too small for nettle's context");

void spq_sha256_init(spq_sha256 *h) { sha256_init((struct sha256_ctx *)h); }

void spq_sha256_update(spq_sha256 *h, const void *data, size_t n) {
    sha256_update((struct sha256_ctx *)h, n, data);
}

void spq_sha256_hex_final(spq_sha256 *h, char hex[65]) {
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest((struct sha256_ctx *)h, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

void spq_sha256_hex(char hex[65], const void *data, size_t n) {
    spq_sha256 h;
    spq_sha256_init(&h);
    spq_sha256_update(&h, data, n);
    spq_sha256_hex_final(&h, hex);
}

int spq_sha256_file(spq_sha256 *h, const char *path, uint64_t limit, spq_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return spq_fail(err, "%s: cannot open: %s", path, strerror(errno));
    static const size_t cap = 1 << 16;
    uint8_t *buf = spq_malloc(cap);
    uint64_t left = limit;
    while (left) {
        size_t n = fread(buf, 1, left < cap ? (size_t)left : cap, f);
        if (!n) break;
        spq_sha256_update(h, buf, n);
        left -= n;
    }
    int bad = ferror(f);
    free(buf);
    fclose(f);
    if (bad) return spq_fail(err, "%s: read error", path);
    if (left && limit != UINT64_MAX) return spq_fail(err, "%s: shorter than %llu bytes", path, (unsigned long long)limit);
    return 0;
}
