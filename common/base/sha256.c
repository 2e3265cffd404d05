/* sha256.c - see sha256.h. */
#include "sha256.h"

#include <nettle/sha2.h>
#include <stdio.h>

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
