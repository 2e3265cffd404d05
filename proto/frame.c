/* frame.c - see frame.h. */
#include "proto/frame.h"

#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"?",       "hello",    "welcome",  "reject", "job",  "cancel",
                                         "shutdown", "ping",    "pong",     "stage",  "metric", "progress",
                                         "log",     "checkpoint", "artifact", "done", "resumed",
                                         "want",    "manifest", "fetch",    "file"};

const char *proto_type_name(int type) {
    return type > 0 && type < PROTO_TYPE_END ? type_names[type] : "unknown";
}

void proto_buf_free(proto_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void proto_buf_reserve(proto_buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra) cap *= 2;
    b->data = spq_realloc(b->data, cap);
    b->cap = cap;
}

void proto_buf_consume(proto_buf *b, size_t n) {
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static void put_be(proto_buf *b, uint64_t v, int n) {
    proto_buf_reserve(b, (size_t)n);
    for (int i = n - 1; i >= 0; i--) b->data[b->len++] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_be(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

size_t proto_frame_begin(proto_buf *b, proto_type type) {
    size_t start = b->len;
    proto_buf_reserve(b, PROTO_HEADER);
    memcpy(b->data + b->len, "SPQW", 4);
    b->len += 4;
    put_be(b, PROTO_VERSION, 2);
    put_be(b, (uint64_t)type, 2);
    put_be(b, 0, 4);
    return start;
}

void proto_frame_end(proto_buf *b, size_t start) {
    uint64_t n = b->len - start - PROTO_HEADER;
    for (int i = 0; i < 4; i++) b->data[start + 8 + i] = (uint8_t)(n >> (8 * (3 - i)));
}

void proto_put_u8(proto_buf *b, uint8_t v) { put_be(b, v, 1); }
void proto_put_u32(proto_buf *b, uint32_t v) { put_be(b, v, 4); }
void proto_put_u64(proto_buf *b, uint64_t v) { put_be(b, v, 8); }
void proto_put_i64(proto_buf *b, int64_t v) { put_be(b, (uint64_t)v, 8); }

void proto_put_f64(proto_buf *b, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_be(b, u, 8);
}

void proto_put_bytes(proto_buf *b, const void *p, size_t n) {
    put_be(b, n, 4);
    proto_buf_reserve(b, n);
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
}

void proto_put_str(proto_buf *b, const char *s) { proto_put_bytes(b, s ? s : "", s ? strlen(s) : 0); }

static int need(proto_reader *r, size_t n, const char *field, spq_err *err) {
    if (r->len - r->pos < n)
        return spq_fail(err, "%s: the payload ends %zu bytes short", field, n - (r->len - r->pos));
    return 0;
}

int proto_get_u8(proto_reader *r, uint8_t *v, const char *field, spq_err *err) {
    if (need(r, 1, field, err)) return -1;
    *v = r->p[r->pos++];
    return 0;
}

int proto_get_u32(proto_reader *r, uint32_t *v, const char *field, spq_err *err) {
    if (need(r, 4, field, err)) return -1;
    *v = (uint32_t)get_be(r->p + r->pos, 4);
    r->pos += 4;
    return 0;
}

int proto_get_u64(proto_reader *r, uint64_t *v, const char *field, spq_err *err) {
    if (need(r, 8, field, err)) return -1;
    *v = get_be(r->p + r->pos, 8);
    r->pos += 8;
    return 0;
}

int proto_get_i64(proto_reader *r, int64_t *v, const char *field, spq_err *err) {
    uint64_t u;
    if (proto_get_u64(r, &u, field, err)) return -1;
    *v = (int64_t)u;
    return 0;
}

int proto_get_f64(proto_reader *r, double *v, const char *field, spq_err *err) {
    uint64_t u;
    if (proto_get_u64(r, &u, field, err)) return -1;
    memcpy(v, &u, 8);
    return 0;
}

int proto_get_bytes(proto_reader *r, const uint8_t **p, size_t *n, const char *field, spq_err *err) {
    uint32_t len;
    if (proto_get_u32(r, &len, field, err)) return -1;
    if (need(r, len, field, err)) return -1;
    *p = r->p + r->pos;
    *n = len;
    r->pos += len;
    return 0;
}

int proto_get_str(proto_reader *r, char **s, const char *field, spq_err *err) {
    const uint8_t *p;
    size_t n;
    *s = NULL;
    if (proto_get_bytes(r, &p, &n, field, err)) return -1;
    if (memchr(p, 0, n)) return spq_fail(err, "%s: the string contains a NUL byte", field);
    if (!spq_utf8_valid((const char *)p, n)) return spq_fail(err, "%s: the string is not valid UTF-8", field);
    *s = spq_malloc(n + 1);
    memcpy(*s, p, n);
    (*s)[n] = 0;
    return 0;
}

int proto_get_end(proto_reader *r, spq_err *err) {
    if (r->pos != r->len) return spq_fail(err, "%zu unexpected bytes after the last field", r->len - r->pos);
    return 0;
}

int proto_frame_parse(proto_frame *f, const uint8_t *buf, size_t len, spq_err *err) {
    /* check what is there as early as possible: a wrong magic is refused
     * before a whole header arrived */
    size_t m = len < 4 ? len : 4;
    if (memcmp(buf, "SPQW", m)) return spq_fail(err, "bad frame magic (not a spinq worker stream)");
    if (len < PROTO_HEADER) return 0;
    unsigned version = (unsigned)get_be(buf + 4, 2);
    unsigned type = (unsigned)get_be(buf + 6, 2);
    uint64_t n = get_be(buf + 8, 4);
    int handshake = type == PROTO_HELLO || type == PROTO_REJECT; /* the same in every version */
    if (version != PROTO_VERSION && !handshake)
        return spq_fail(err, "protocol version %u, this side speaks %d", version, PROTO_VERSION);
    if (type == 0 || type >= PROTO_TYPE_END) return spq_fail(err, "unknown frame type %u", type);
    if (n > PROTO_MAX_PAYLOAD) return spq_fail(err, "frame of %llu bytes exceeds the limit", (unsigned long long)n);
    if (len < PROTO_HEADER + n) return 0;
    f->type = (int)type;
    f->version = version;
    f->payload = buf + PROTO_HEADER;
    f->len = (size_t)n;
    return 1;
}
