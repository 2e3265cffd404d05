/* sha256.h - SHA-256 (nettle) for checkpoints, artifacts and token hashes:
 * one-shot to lowercase hex, or streaming. */
#ifndef SPQ_SHA256_H
#define SPQ_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct {
    uint64_t opaque[16]; /* holds a struct sha256_ctx (nettle), checked at compile time */
} spq_sha256;

void spq_sha256_init(spq_sha256 *h);
void spq_sha256_update(spq_sha256 *h, const void *data, size_t n);
/* Writes 64 hex digits and a NUL into hex. */
void spq_sha256_hex_final(spq_sha256 *h, char hex[65]);
void spq_sha256_hex(char hex[65], const void *data, size_t n);
/* Feeds the first `limit` bytes of the file at path into h (UINT64_MAX: all
 * of it); a file shorter than a finite limit is an error. 0 or -1. */
int spq_sha256_file(spq_sha256 *h, const char *path, uint64_t limit, spq_err *err);

#endif
