/* messages.h - the messages of the daemon <-> worker protocol, one struct and
 * one encode/decode pair each (frame.h has the framing).
 *
 * A session: the worker sends HELLO (with a token when remote); the daemon
 * answers WELCOME or REJECT. Then the daemon sends JOB when it has work; the
 * worker reports STAGE, METRIC, PROGRESS, LOG, CHECKPOINT and ARTIFACT
 * frames for that run and ends it with DONE. CANCEL and SHUTDOWN ask the
 * worker to stop the run (SHUTDOWN: checkpoint first, report "interrupted").
 * PING/PONG keep the connection honest: the daemon pings every second and
 * WELCOME tells the worker how long a silence means a dead peer
 * (heartbeat_ms); both sides drop the connection after that long without
 * a frame.
 *
 * A worker whose connection dropped after its run finished keeps the
 * outputs and names that run in its next HELLO; right after WELCOME the
 * daemon answers RESUMED: whether to deliver them (the run was still waiting for it) and how much of each
 * artifact the daemon already holds, so the upload continues where it
 * broke off. A worker that lacks a job's model or dataset sends WANT (the
 * name as the spec has it), gets the MANIFEST of its files (path under the
 * models or datasets directory, size, sha256), and pulls each file it does
 * not have with FETCH/FILE, one chunk per request, from any offset.
 *
 * A worker started for one run (spinq-worker --run ID: a Slurm job's) names
 * it in HELLO's only_run; the daemon gives it that run or refuses it. The
 * field is an optional tail (messages.c): absent when 0, so HELLOs of
 * workers that predate it keep their bytes and still decode.
 *
 * enc_* append one whole frame to a buffer. dec_* read a frame's payload
 * into the struct (strings malloc'd: free with the matching free_*) and fail
 * on any short, long or ill-formed payload. Blobs (job checkpoint,
 * checkpoint data, artifact chunks) point into the frame after decoding.
 * All of them walk one field table per message (messages.c). */
#ifndef SPQ_PROTO_MESSAGES_H
#define SPQ_PROTO_MESSAGES_H

#include "proto/frame.h"

typedef struct {
    uint32_t version; /* PROTO_VERSION of the worker */
    char *name;       /* host:pid or a configured name */
    uint32_t pid;
    char *token;      /* "" for local workers */
    uint32_t threads;
    uint64_t held_run;     /* a finished run whose outputs this worker holds; 0: none */
    uint32_t held_attempt; /* its attempt */
    uint64_t only_run;     /* a worker started for one run (spinq-worker --run, a Slurm job): that run and no
                            * other; 0: any. Optional on the wire (absent = 0), so older workers still connect */
} proto_hello;

typedef struct {
    uint64_t worker_id;
    uint32_t heartbeat_ms;
} proto_welcome;

typedef struct {
    char *reason;
} proto_reject;

typedef struct {
    uint64_t run_id;
    uint32_t attempt;
    char *spec;          /* normalized job spec JSON */
    int64_t ckpt_step;   /* -1: start from scratch */
    const uint8_t *ckpt; /* checkpoint bytes (into the frame) */
    size_t ckpt_len;
} proto_job;

typedef struct {
    uint64_t run_id;
} proto_run_ref; /* CANCEL */

typedef struct {
    uint64_t seq;
} proto_ping; /* PING, PONG */

typedef struct {
    uint64_t run_id;
    char *stage;
} proto_stage;

typedef struct {
    uint64_t run_id;
    char *key;
    int64_t step;
    double value;
} proto_metric;

typedef struct {
    uint64_t run_id;
    char *stage;
    int64_t done, total;
} proto_progress;

typedef struct {
    uint64_t run_id;
    char *level; /* debug, info, warn, error */
    char *text;
} proto_log;

typedef struct {
    uint64_t run_id;
    int64_t step;
    const uint8_t *data;
    size_t len;
} proto_checkpoint;

typedef struct {
    uint64_t run_id;
    char *name;     /* plain file name: [A-Za-z0-9._-], not starting with '.' */
    uint64_t offset;
    uint64_t total; /* size of the whole file */
    const uint8_t *data;
    size_t len;
    uint8_t final;  /* last chunk: sha256 holds the file's digest */
    char *sha256;
} proto_artifact;

typedef struct {
    uint64_t run_id;
    uint8_t accepted;
    char *reason; /* why not, when not accepted */
    char *have;   /* JSON {"NAME": {"size": bytes held, "sha256": when whole}} */
} proto_resumed;

typedef enum { PROTO_KIND_MODEL = 0, PROTO_KIND_DATASET } proto_kind;

typedef struct {
    uint8_t kind; /* proto_kind */
    char *name;   /* the spec's model or dataset name */
} proto_want;

typedef struct {
    uint8_t kind;
    char *name;
    char *files;  /* JSON [{"path", "size", "sha256"}], paths relative to the kind's directory */
    char *error;  /* "" or why there is no manifest */
} proto_manifest;

typedef struct {
    uint8_t kind;
    char *path;   /* a manifest's path */
    uint64_t offset;
} proto_fetch;

typedef struct {
    uint8_t kind;
    char *path;
    uint64_t offset;
    uint64_t total; /* size of the whole file */
    const uint8_t *data;
    size_t len;
    char *error;  /* "" or why the chunk cannot be read */
} proto_file;

typedef enum { PROTO_OUT_DONE = 0, PROTO_OUT_FAILED, PROTO_OUT_CANCELED, PROTO_OUT_INTERRUPTED } proto_outcome;

typedef struct {
    uint64_t run_id;
    uint8_t outcome; /* proto_outcome */
    char *reason;
} proto_done;

void proto_enc_hello(proto_buf *b, const proto_hello *m);
int proto_dec_hello(proto_hello *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_hello(proto_hello *m);

void proto_enc_welcome(proto_buf *b, const proto_welcome *m);
int proto_dec_welcome(proto_welcome *m, const uint8_t *p, size_t n, spq_err *err);

void proto_enc_reject(proto_buf *b, const proto_reject *m);
int proto_dec_reject(proto_reject *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_reject(proto_reject *m);

void proto_enc_job(proto_buf *b, const proto_job *m);
int proto_dec_job(proto_job *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_job(proto_job *m);

void proto_enc_cancel(proto_buf *b, const proto_run_ref *m);
int proto_dec_cancel(proto_run_ref *m, const uint8_t *p, size_t n, spq_err *err);

void proto_enc_shutdown(proto_buf *b);
int proto_dec_shutdown(const uint8_t *p, size_t n, spq_err *err);

void proto_enc_ping(proto_buf *b, proto_type type, const proto_ping *m); /* PING or PONG */
int proto_dec_ping(proto_ping *m, const uint8_t *p, size_t n, spq_err *err);

void proto_enc_stage(proto_buf *b, const proto_stage *m);
int proto_dec_stage(proto_stage *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_stage(proto_stage *m);

void proto_enc_metric(proto_buf *b, const proto_metric *m);
int proto_dec_metric(proto_metric *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_metric(proto_metric *m);

void proto_enc_progress(proto_buf *b, const proto_progress *m);
int proto_dec_progress(proto_progress *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_progress(proto_progress *m);

void proto_enc_log(proto_buf *b, const proto_log *m);
int proto_dec_log(proto_log *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_log(proto_log *m);

void proto_enc_checkpoint(proto_buf *b, const proto_checkpoint *m);
int proto_dec_checkpoint(proto_checkpoint *m, const uint8_t *p, size_t n, spq_err *err);

void proto_enc_artifact(proto_buf *b, const proto_artifact *m);
int proto_dec_artifact(proto_artifact *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_artifact(proto_artifact *m);

void proto_enc_resumed(proto_buf *b, const proto_resumed *m);
int proto_dec_resumed(proto_resumed *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_resumed(proto_resumed *m);

void proto_enc_want(proto_buf *b, const proto_want *m);
int proto_dec_want(proto_want *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_want(proto_want *m);

void proto_enc_manifest(proto_buf *b, const proto_manifest *m);
int proto_dec_manifest(proto_manifest *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_manifest(proto_manifest *m);

void proto_enc_fetch(proto_buf *b, const proto_fetch *m);
int proto_dec_fetch(proto_fetch *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_fetch(proto_fetch *m);

void proto_enc_file(proto_buf *b, const proto_file *m);
int proto_dec_file(proto_file *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_file(proto_file *m);

void proto_enc_done(proto_buf *b, const proto_done *m);
int proto_dec_done(proto_done *m, const uint8_t *p, size_t n, spq_err *err);
void proto_free_done(proto_done *m);

#endif
