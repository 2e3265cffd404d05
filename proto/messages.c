/* messages.c - see messages.h.
 *
 * Every message is a field table: one row per field in wire order, with
 * the struct member's offset and its wire type (u8, u32, u64, i64, f64,
 * str, bytes: frame.h's primitives). Three walkers do the work for all of
 * them: encode writes the rows in order, decode reads them in the same order
 * and then demands the end of the payload, release frees the strings. A
 * decoder's error names the field as "message.member" ("hello.token"), and
 * a failed decode frees what it had read, so the caller frees only after
 * success. What a row cannot say (a key's length, an artifact name's
 * characters) is the message's check, run after its fields were read.
 *
 * To add a message: its struct in messages.h, a table and a proto_msg here,
 * and the public functions through CODEC (and RELEASE when it has strings).
 * tests/unit/test_proto_wire.c pins the bytes of every message. */
#include "proto/messages.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { F_U8, F_U32, F_U64, F_I64, F_F64, F_STR, F_BYTES } field_kind;

typedef struct {
    const char *name;  /* the struct member's name */
    field_kind kind;
    size_t off;        /* offsetof the member */
    size_t len_off;    /* F_BYTES: offsetof its size_t length (the member is a const uint8_t *) */
    int tail;          /* an optional u64 at the end, added after the version's first release: written
                        * only when non-zero, read as 0 when the payload ends before it, so peers that
                        * predate it still understand each other */
} field;

typedef struct {
    const char *name;  /* what errors call it: "hello" */
    const field *fields;
    int n_fields;
    size_t size;       /* sizeof the struct */
    /* checks beyond the fields on a decoded message: 0, or -1 with err set */
    int (*check)(const void *m, spq_err *err);
} message;

#define F(S, member, KIND) {#member, F_##KIND, offsetof(S, member), 0, 0}
#define TAIL(S, member) {#member, F_U64, offsetof(S, member), 0, 1}
#define BYTES(S, member, len) {#member, F_BYTES, offsetof(S, member), offsetof(S, len), 0}
#define MESSAGE(name, S, rows, check) {name, rows, sizeof rows / sizeof rows[0], sizeof(S), check}

/* The member a row describes, in a message being written (IN) or read (OUT). */
#define IN(m, f, T) (*(const T *)((const char *)(m) + (f)->off))
#define IN_LEN(m, f) (*(const size_t *)((const char *)(m) + (f)->len_off))
#define OUT(m, f, T) (*(T *)((char *)(m) + (f)->off))
#define OUT_LEN(m, f) (*(size_t *)((char *)(m) + (f)->len_off))

static void encode(proto_buf *b, proto_type type, const message *d, const void *m) {
    size_t start = proto_frame_begin(b, type);
    for (const field *f = d->fields; f < d->fields + d->n_fields; f++) {
        if (f->tail && !IN(m, f, uint64_t)) break;
        switch (f->kind) {
        case F_U8: proto_put_u8(b, IN(m, f, uint8_t)); break;
        case F_U32: proto_put_u32(b, IN(m, f, uint32_t)); break;
        case F_U64: proto_put_u64(b, IN(m, f, uint64_t)); break;
        case F_I64: proto_put_i64(b, IN(m, f, int64_t)); break;
        case F_F64: proto_put_f64(b, IN(m, f, double)); break;
        case F_STR: proto_put_str(b, IN(m, f, char *)); break;
        case F_BYTES: proto_put_bytes(b, IN(m, f, uint8_t *), IN_LEN(m, f)); break;
        }
    }
    proto_frame_end(b, start);
}

static void release(const message *d, void *m) {
    for (const field *f = d->fields; f < d->fields + d->n_fields; f++)
        if (f->kind == F_STR) {
            free(OUT(m, f, char *));
            OUT(m, f, char *) = NULL;
        }
}

static int read_field(proto_reader *r, const message *d, const field *f, void *m, spq_err *err) {
    char name[64];
    snprintf(name, sizeof name, "%s.%s", d->name, f->name);
    switch (f->kind) {
    case F_U8: return proto_get_u8(r, &OUT(m, f, uint8_t), name, err);
    case F_U32: return proto_get_u32(r, &OUT(m, f, uint32_t), name, err);
    case F_U64: return proto_get_u64(r, &OUT(m, f, uint64_t), name, err);
    case F_I64: return proto_get_i64(r, &OUT(m, f, int64_t), name, err);
    case F_F64: return proto_get_f64(r, &OUT(m, f, double), name, err);
    case F_STR: return proto_get_str(r, &OUT(m, f, char *), name, err);
    case F_BYTES: return proto_get_bytes(r, &OUT(m, f, const uint8_t *), &OUT_LEN(m, f), name, err);
    }
    return -1;
}

static int decode(const message *d, void *m, const uint8_t *p, size_t n, spq_err *err) {
    proto_reader r = {p, n, 0};
    memset(m, 0, d->size);
    for (const field *f = d->fields; f < d->fields + d->n_fields; f++)
        if (f->tail && r.pos == r.len) break;
        else if (read_field(&r, d, f, m, err)) {
            release(d, m);
            return -1;
        }
    if (proto_get_end(&r, err) || (d->check && d->check(m, err))) {
        release(d, m);
        return -1;
    }
    return 0;
}

/* ---- the messages ---- */

static const field hello_fields[] = {
    F(proto_hello, version, U32),
    F(proto_hello, name, STR),
    F(proto_hello, pid, U32),
    F(proto_hello, token, STR),
    F(proto_hello, threads, U32),
    F(proto_hello, held_run, U64),
    F(proto_hello, held_attempt, U32),
    TAIL(proto_hello, only_run),
};
static const message hello_msg = MESSAGE("hello", proto_hello, hello_fields, NULL);

static const field welcome_fields[] = {
    F(proto_welcome, worker_id, U64),
    F(proto_welcome, heartbeat_ms, U32),
};
static const message welcome_msg = MESSAGE("welcome", proto_welcome, welcome_fields, NULL);

static const field reject_fields[] = {
    F(proto_reject, reason, STR),
};
static const message reject_msg = MESSAGE("reject", proto_reject, reject_fields, NULL);

static int job_check(const void *v, spq_err *err) {
    const proto_job *m = v;
    if (m->ckpt_step < -1 || (m->ckpt_step == -1 && m->ckpt_len))
        return spq_fail(err, "job.ckpt_step: %lld with %zu checkpoint bytes", (long long)m->ckpt_step, m->ckpt_len);
    return 0;
}
static const field job_fields[] = {
    F(proto_job, run_id, U64),
    F(proto_job, attempt, U32),
    F(proto_job, spec, STR),
    F(proto_job, ckpt_step, I64),
    BYTES(proto_job, ckpt, ckpt_len),
};
static const message job_msg = MESSAGE("job", proto_job, job_fields, job_check);

static const field cancel_fields[] = {
    F(proto_run_ref, run_id, U64),
};
static const message cancel_msg = MESSAGE("cancel", proto_run_ref, cancel_fields, NULL);

/* PING and PONG: the same message under two frame types. */
static const field ping_fields[] = {
    F(proto_ping, seq, U64),
};
static const message ping_msg = MESSAGE("ping", proto_ping, ping_fields, NULL);

static const field stage_fields[] = {
    F(proto_stage, run_id, U64),
    F(proto_stage, stage, STR),
};
static const message stage_msg = MESSAGE("stage", proto_stage, stage_fields, NULL);

static int metric_check(const void *v, spq_err *err) {
    const proto_metric *m = v;
    if (!m->key[0] || strlen(m->key) > 200) return spq_fail(err, "metric.key: must be 1 to 200 bytes");
    return 0;
}
static const field metric_fields[] = {
    F(proto_metric, run_id, U64),
    F(proto_metric, key, STR),
    F(proto_metric, step, I64),
    F(proto_metric, value, F64),
};
static const message metric_msg = MESSAGE("metric", proto_metric, metric_fields, metric_check);

static const field progress_fields[] = {
    F(proto_progress, run_id, U64),
    F(proto_progress, stage, STR),
    F(proto_progress, done, I64),
    F(proto_progress, total, I64),
};
static const message progress_msg = MESSAGE("progress", proto_progress, progress_fields, NULL);

static const field log_fields[] = {
    F(proto_log, run_id, U64),
    F(proto_log, level, STR),
    F(proto_log, text, STR),
};
static const message log_msg = MESSAGE("log", proto_log, log_fields, NULL);

static int checkpoint_check(const void *v, spq_err *err) {
    return ((const proto_checkpoint *)v)->step < 0 ? spq_fail(err, "checkpoint.step: negative") : 0;
}
static const field checkpoint_fields[] = {
    F(proto_checkpoint, run_id, U64),
    F(proto_checkpoint, step, I64),
    BYTES(proto_checkpoint, data, len),
};
static const message checkpoint_msg = MESSAGE("checkpoint", proto_checkpoint, checkpoint_fields, checkpoint_check);

static int artifact_check(const void *v, spq_err *err) {
    const proto_artifact *m = v;
    int plain = m->name[0] && m->name[0] != '.' && strlen(m->name) <= 128;
    for (const char *c = m->name; *c && plain; c++)
        plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                *c == '_' || *c == '-';
    if (!plain)
        return spq_fail(err, "artifact.name: must be a plain file name (letters, digits, '.', '_', '-'; not "
                             "starting with '.')");
    if (m->offset > m->total || m->len > m->total - m->offset)
        return spq_fail(err, "artifact: chunk lies outside the file");
    if (m->final > 1 || (m->final && strlen(m->sha256) != 64))
        return spq_fail(err, "artifact.sha256: the final chunk must carry a 64-digit sha256");
    return 0;
}
static const field artifact_fields[] = {
    F(proto_artifact, run_id, U64),
    F(proto_artifact, name, STR),
    F(proto_artifact, offset, U64),
    F(proto_artifact, total, U64),
    BYTES(proto_artifact, data, len),
    F(proto_artifact, final, U8),
    F(proto_artifact, sha256, STR),
};
static const message artifact_msg = MESSAGE("artifact", proto_artifact, artifact_fields, artifact_check);

static int done_check(const void *v, spq_err *err) {
    return ((const proto_done *)v)->outcome > PROTO_OUT_INTERRUPTED ? spq_fail(err, "done.outcome: unknown value") : 0;
}
static const field done_fields[] = {
    F(proto_done, run_id, U64),
    F(proto_done, outcome, U8),
    F(proto_done, reason, STR),
};
static const message done_msg = MESSAGE("done", proto_done, done_fields, done_check);

static int resumed_check(const void *v, spq_err *err) {
    return ((const proto_resumed *)v)->accepted > 1 ? spq_fail(err, "resumed.accepted: must be 0 or 1") : 0;
}
static const field resumed_fields[] = {
    F(proto_resumed, run_id, U64),
    F(proto_resumed, accepted, U8),
    F(proto_resumed, reason, STR),
    F(proto_resumed, have, STR),
};
static const message resumed_msg = MESSAGE("resumed", proto_resumed, resumed_fields, resumed_check);

/* A kind and a non-empty name or path of at most 1024 bytes. */
static int kind_name_check(const char *msg, uint8_t kind, const char *name, spq_err *err) {
    if (kind > PROTO_KIND_DATASET) return spq_fail(err, "%s.kind: must be 0 (model) or 1 (dataset)", msg);
    if (!name[0] || strlen(name) > 1024) return spq_fail(err, "%s: the name must be 1 to 1024 bytes", msg);
    return 0;
}

static int want_check(const void *v, spq_err *err) {
    const proto_want *m = v;
    return kind_name_check("want", m->kind, m->name, err);
}
static const field want_fields[] = {
    F(proto_want, kind, U8),
    F(proto_want, name, STR),
};
static const message want_msg = MESSAGE("want", proto_want, want_fields, want_check);

static int manifest_check(const void *v, spq_err *err) {
    const proto_manifest *m = v;
    return kind_name_check("manifest", m->kind, m->name, err);
}
static const field manifest_fields[] = {
    F(proto_manifest, kind, U8),
    F(proto_manifest, name, STR),
    F(proto_manifest, files, STR),
    F(proto_manifest, error, STR),
};
static const message manifest_msg = MESSAGE("manifest", proto_manifest, manifest_fields, manifest_check);

static int fetch_check(const void *v, spq_err *err) {
    const proto_fetch *m = v;
    return kind_name_check("fetch", m->kind, m->path, err);
}
static const field fetch_fields[] = {
    F(proto_fetch, kind, U8),
    F(proto_fetch, path, STR),
    F(proto_fetch, offset, U64),
};
static const message fetch_msg = MESSAGE("fetch", proto_fetch, fetch_fields, fetch_check);

static int file_check(const void *v, spq_err *err) {
    const proto_file *m = v;
    if (kind_name_check("file", m->kind, m->path, err)) return -1;
    if (m->offset > m->total || m->len > m->total - m->offset) return spq_fail(err, "file: chunk lies outside the file");
    return 0;
}
static const field file_fields[] = {
    F(proto_file, kind, U8),
    F(proto_file, path, STR),
    F(proto_file, offset, U64),
    F(proto_file, total, U64),
    BYTES(proto_file, data, len),
    F(proto_file, error, STR),
};
static const message file_msg = MESSAGE("file", proto_file, file_fields, file_check);

/* ---- the public functions: each a walk of its table ---- */

#define CODEC(T, S, TYPE)                                                                                              \
    void proto_enc_##T(proto_buf *b, const S *m) { encode(b, TYPE, &T##_msg, m); }                                     \
    int proto_dec_##T(S *m, const uint8_t *p, size_t n, spq_err *err) { return decode(&T##_msg, m, p, n, err); }
#define RELEASE(T) \
    void proto_free_##T(proto_##T *m) { release(&T##_msg, m); }

CODEC(hello, proto_hello, PROTO_HELLO)
RELEASE(hello)
CODEC(welcome, proto_welcome, PROTO_WELCOME)
CODEC(reject, proto_reject, PROTO_REJECT)
RELEASE(reject)
CODEC(job, proto_job, PROTO_JOB)
RELEASE(job)
CODEC(cancel, proto_run_ref, PROTO_CANCEL)
CODEC(stage, proto_stage, PROTO_STAGE)
RELEASE(stage)
CODEC(metric, proto_metric, PROTO_METRIC)
RELEASE(metric)
CODEC(progress, proto_progress, PROTO_PROGRESS)
RELEASE(progress)
CODEC(log, proto_log, PROTO_LOG)
RELEASE(log)
CODEC(checkpoint, proto_checkpoint, PROTO_CHECKPOINT)
CODEC(artifact, proto_artifact, PROTO_ARTIFACT)
RELEASE(artifact)
CODEC(done, proto_done, PROTO_DONE)
RELEASE(done)
CODEC(resumed, proto_resumed, PROTO_RESUMED)
RELEASE(resumed)
CODEC(want, proto_want, PROTO_WANT)
RELEASE(want)
CODEC(manifest, proto_manifest, PROTO_MANIFEST)
RELEASE(manifest)
CODEC(fetch, proto_fetch, PROTO_FETCH)
RELEASE(fetch)
CODEC(file, proto_file, PROTO_FILE)
RELEASE(file)

void proto_enc_ping(proto_buf *b, proto_type type, const proto_ping *m) { encode(b, type, &ping_msg, m); }
int proto_dec_ping(proto_ping *m, const uint8_t *p, size_t n, spq_err *err) { return decode(&ping_msg, m, p, n, err); }

/* SHUTDOWN has no fields. */
void proto_enc_shutdown(proto_buf *b) { proto_frame_end(b, proto_frame_begin(b, PROTO_SHUTDOWN)); }

int proto_dec_shutdown(const uint8_t *p, size_t n, spq_err *err) {
    proto_reader r = {p, n, 0};
    return proto_get_end(&r, err);
}
