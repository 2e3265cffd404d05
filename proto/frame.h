/* frame.h - framing of the daemon <-> worker protocol.
 *
 * A frame is a 12-byte header and a payload:
 *
 *   magic "SPQW" (4) | version u16 | type u16 | payload length u32 | payload
 *
 * all integers big-endian. A reader accepts only its own protocol version
 * and known types (with one exception: the handshake frames HELLO and
 * REJECT keep their type numbers in every version, and REJECT its layout,
 * so they are cut from the stream whatever version their header names:
 * the daemon reads a HELLO's header version before its payload and answers
 * a foreign one with a REJECT saying "version N, the daemon speaks M",
 * which any worker can read, instead of dropping a stream it cannot read), and payloads up to PROTO_MAX_PAYLOAD; anything else is a
 * malformed stream, and the connection it came on is dropped (never the
 * process). Payloads are built and read with the bounds-checked primitives
 * below; a decoder must consume the payload exactly. */
#ifndef SPQ_PROTO_FRAME_H
#define SPQ_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/util.h"

/* 2: HELLO names the run whose outputs the worker holds, RESUMED (a
 * finished run's outputs delivered after a reconnect), WANT/MANIFEST/
 * FETCH/FILE (models and datasets pulled from the daemon), artifact
 * uploads that continue a kept .part. */
#define PROTO_VERSION 2
#define PROTO_HEADER 12
#define PROTO_MAX_PAYLOAD (256u << 20)

typedef enum {
    PROTO_HELLO = 1,  /* worker -> daemon: who I am */
    PROTO_WELCOME,    /* daemon -> worker: accepted, your id */
    PROTO_REJECT,     /* daemon -> worker: refused (bad token, version); then closed */
    PROTO_JOB,        /* daemon -> worker: run this spec (from this checkpoint) */
    PROTO_CANCEL,     /* daemon -> worker: stop this run, it was canceled */
    PROTO_SHUTDOWN,   /* daemon -> worker: checkpoint, stop, report interrupted */
    PROTO_PING,       /* either way: are you there */
    PROTO_PONG,
    PROTO_STAGE,      /* worker -> daemon: the run entered a pipeline stage */
    PROTO_METRIC,     /* worker -> daemon: key, step, value */
    PROTO_PROGRESS,   /* worker -> daemon: done/total within a stage */
    PROTO_LOG,        /* worker -> daemon: a log line of the run */
    PROTO_CHECKPOINT, /* worker -> daemon: rotation checkpoint bytes at a step */
    PROTO_ARTIFACT,   /* worker -> daemon: a chunk of an output file */
    PROTO_DONE,       /* worker -> daemon: the run ended (done, failed, canceled, interrupted) */
    PROTO_RESUMED,    /* daemon -> worker: deliver the outputs HELLO said you hold (from where), or drop them */
    PROTO_WANT,       /* worker -> daemon: which files make up this model / dataset */
    PROTO_MANIFEST,   /* daemon -> worker: those files, with size and sha256 */
    PROTO_FETCH,      /* worker -> daemon: a chunk of one of them, from an offset */
    PROTO_FILE,       /* daemon -> worker: that chunk */
    PROTO_TYPE_END
} proto_type;

const char *proto_type_name(int type);

/* A growable byte buffer. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} proto_buf;
void proto_buf_free(proto_buf *b);
void proto_buf_reserve(proto_buf *b, size_t extra);
/* Drops the first n bytes. */
void proto_buf_consume(proto_buf *b, size_t n);

/* Writing a frame: begin (header with a placeholder length), the payload
 * primitives, end (patches the length). Frames append to b. */
size_t proto_frame_begin(proto_buf *b, proto_type type);
void proto_frame_end(proto_buf *b, size_t start);
void proto_put_u8(proto_buf *b, uint8_t v);
void proto_put_u32(proto_buf *b, uint32_t v);
void proto_put_u64(proto_buf *b, uint64_t v);
void proto_put_i64(proto_buf *b, int64_t v);
void proto_put_f64(proto_buf *b, double v);
/* Strings: u32 length, bytes (no NUL); NULL is written as "". */
void proto_put_str(proto_buf *b, const char *s);
/* Byte blobs: u32 length, bytes. */
void proto_put_bytes(proto_buf *b, const void *p, size_t n);

/* Reading a payload. Every getter fails (returns -1, err names the field)
 * when the payload is too short; strings must be valid UTF-8 without NUL and
 * come back malloc'd. proto_get_end fails on trailing bytes. */
typedef struct {
    const uint8_t *p;
    size_t len, pos;
} proto_reader;
int proto_get_u8(proto_reader *r, uint8_t *v, const char *field, spq_err *err);
int proto_get_u32(proto_reader *r, uint32_t *v, const char *field, spq_err *err);
int proto_get_u64(proto_reader *r, uint64_t *v, const char *field, spq_err *err);
int proto_get_i64(proto_reader *r, int64_t *v, const char *field, spq_err *err);
int proto_get_f64(proto_reader *r, double *v, const char *field, spq_err *err);
int proto_get_str(proto_reader *r, char **s, const char *field, spq_err *err);
/* A blob: *p points into the payload (no copy). */
int proto_get_bytes(proto_reader *r, const uint8_t **p, size_t *n, const char *field, spq_err *err);
int proto_get_end(proto_reader *r, spq_err *err);

/* One frame cut out of a byte stream. */
typedef struct {
    int type;
    unsigned version; /* PROTO_VERSION, or another for HELLO and REJECT */
    const uint8_t *payload; /* points into the stream buffer: valid until it is consumed */
    size_t len;
} proto_frame;

/* Looks at the start of buf: 1 and f when a whole frame is there (its size is
 * PROTO_HEADER + f->len: consume it when done), 0 when more bytes are needed,
 * -1 when the stream is malformed (err says how). */
int proto_frame_parse(proto_frame *f, const uint8_t *buf, size_t len, spq_err *err);

#endif
