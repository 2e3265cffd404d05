/* messages.c - see messages.h. Each decoder reads the fields in the order
 * its encoder wrote them and ends with proto_get_end; on failure it frees
 * what it had read, so the caller frees only after success. */
#include "proto/messages.h"

#include <stdlib.h>
#include <string.h>

#define R(p, n) proto_reader r = {(p), (n), 0}

void proto_enc_hello(proto_buf *b, const proto_hello *m) {
    size_t s = proto_frame_begin(b, PROTO_HELLO);
    proto_put_u32(b, m->version);
    proto_put_str(b, m->name);
    proto_put_u32(b, m->pid);
    proto_put_str(b, m->token);
    proto_put_u32(b, m->threads);
    proto_frame_end(b, s);
}

int proto_dec_hello(proto_hello *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    memset(m, 0, sizeof *m);
    if (proto_get_u32(&r, &m->version, "hello.version", err) || proto_get_str(&r, &m->name, "hello.name", err) ||
        proto_get_u32(&r, &m->pid, "hello.pid", err) || proto_get_str(&r, &m->token, "hello.token", err) ||
        proto_get_u32(&r, &m->threads, "hello.threads", err) || proto_get_end(&r, err)) {
        proto_free_hello(m);
        return -1;
    }
    return 0;
}

void proto_free_hello(proto_hello *m) {
    free(m->name);
    free(m->token);
    m->name = m->token = NULL;
}

void proto_enc_welcome(proto_buf *b, const proto_welcome *m) {
    size_t s = proto_frame_begin(b, PROTO_WELCOME);
    proto_put_u64(b, m->worker_id);
    proto_put_u32(b, m->heartbeat_ms);
    proto_frame_end(b, s);
}

int proto_dec_welcome(proto_welcome *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    return proto_get_u64(&r, &m->worker_id, "welcome.worker_id", err) ||
                   proto_get_u32(&r, &m->heartbeat_ms, "welcome.heartbeat_ms", err) || proto_get_end(&r, err)
               ? -1
               : 0;
}

void proto_enc_reject(proto_buf *b, const proto_reject *m) {
    size_t s = proto_frame_begin(b, PROTO_REJECT);
    proto_put_str(b, m->reason);
    proto_frame_end(b, s);
}

int proto_dec_reject(proto_reject *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    if (proto_get_str(&r, &m->reason, "reject.reason", err) || proto_get_end(&r, err)) {
        proto_free_reject(m);
        return -1;
    }
    return 0;
}

void proto_free_reject(proto_reject *m) {
    free(m->reason);
    m->reason = NULL;
}

void proto_enc_job(proto_buf *b, const proto_job *m) {
    size_t s = proto_frame_begin(b, PROTO_JOB);
    proto_put_u64(b, m->run_id);
    proto_put_u32(b, m->attempt);
    proto_put_str(b, m->spec);
    proto_put_i64(b, m->ckpt_step);
    proto_put_bytes(b, m->ckpt, m->ckpt_len);
    proto_frame_end(b, s);
}

int proto_dec_job(proto_job *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    memset(m, 0, sizeof *m);
    if (proto_get_u64(&r, &m->run_id, "job.run_id", err) || proto_get_u32(&r, &m->attempt, "job.attempt", err) ||
        proto_get_str(&r, &m->spec, "job.spec", err) || proto_get_i64(&r, &m->ckpt_step, "job.ckpt_step", err) ||
        proto_get_bytes(&r, &m->ckpt, &m->ckpt_len, "job.ckpt", err) || proto_get_end(&r, err)) {
        proto_free_job(m);
        return -1;
    }
    if (m->ckpt_step < -1 || (m->ckpt_step == -1 && m->ckpt_len)) {
        proto_free_job(m);
        return spq_fail(err, "job.ckpt_step: %lld with %zu checkpoint bytes", (long long)m->ckpt_step, m->ckpt_len);
    }
    return 0;
}

void proto_free_job(proto_job *m) {
    free(m->spec);
    m->spec = NULL;
}

void proto_enc_cancel(proto_buf *b, const proto_run_ref *m) {
    size_t s = proto_frame_begin(b, PROTO_CANCEL);
    proto_put_u64(b, m->run_id);
    proto_frame_end(b, s);
}

int proto_dec_cancel(proto_run_ref *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    return proto_get_u64(&r, &m->run_id, "cancel.run_id", err) || proto_get_end(&r, err) ? -1 : 0;
}

void proto_enc_shutdown(proto_buf *b) { proto_frame_end(b, proto_frame_begin(b, PROTO_SHUTDOWN)); }

int proto_dec_shutdown(const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    return proto_get_end(&r, err);
}

void proto_enc_ping(proto_buf *b, proto_type type, const proto_ping *m) {
    size_t s = proto_frame_begin(b, type);
    proto_put_u64(b, m->seq);
    proto_frame_end(b, s);
}

int proto_dec_ping(proto_ping *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    return proto_get_u64(&r, &m->seq, "ping.seq", err) || proto_get_end(&r, err) ? -1 : 0;
}

void proto_enc_stage(proto_buf *b, const proto_stage *m) {
    size_t s = proto_frame_begin(b, PROTO_STAGE);
    proto_put_u64(b, m->run_id);
    proto_put_str(b, m->stage);
    proto_frame_end(b, s);
}

int proto_dec_stage(proto_stage *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    memset(m, 0, sizeof *m);
    if (proto_get_u64(&r, &m->run_id, "stage.run_id", err) || proto_get_str(&r, &m->stage, "stage.stage", err) ||
        proto_get_end(&r, err)) {
        proto_free_stage(m);
        return -1;
    }
    return 0;
}

void proto_free_stage(proto_stage *m) {
    free(m->stage);
    m->stage = NULL;
}

void proto_enc_metric(proto_buf *b, const proto_metric *m) {
    size_t s = proto_frame_begin(b, PROTO_METRIC);
    proto_put_u64(b, m->run_id);
    proto_put_str(b, m->key);
    proto_put_i64(b, m->step);
    proto_put_f64(b, m->value);
    proto_frame_end(b, s);
}

int proto_dec_metric(proto_metric *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    memset(m, 0, sizeof *m);
    if (proto_get_u64(&r, &m->run_id, "metric.run_id", err) || proto_get_str(&r, &m->key, "metric.key", err) ||
        proto_get_i64(&r, &m->step, "metric.step", err) || proto_get_f64(&r, &m->value, "metric.value", err) ||
        proto_get_end(&r, err)) {
        proto_free_metric(m);
        return -1;
    }
    if (!m->key[0] || strlen(m->key) > 200) {
        proto_free_metric(m);
        return spq_fail(err, "metric.key: must be 1 to 200 bytes");
    }
    return 0;
}

void proto_free_metric(proto_metric *m) {
    free(m->key);
    m->key = NULL;
}

void proto_enc_progress(proto_buf *b, const proto_progress *m) {
    size_t s = proto_frame_begin(b, PROTO_PROGRESS);
    proto_put_u64(b, m->run_id);
    proto_put_str(b, m->stage);
    proto_put_i64(b, m->done);
    proto_put_i64(b, m->total);
    proto_frame_end(b, s);
}

int proto_dec_progress(proto_progress *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    memset(m, 0, sizeof *m);
    if (proto_get_u64(&r, &m->run_id, "progress.run_id", err) ||
        proto_get_str(&r, &m->stage, "progress.stage", err) || proto_get_i64(&r, &m->done, "progress.done", err) ||
        proto_get_i64(&r, &m->total, "progress.total", err) || proto_get_end(&r, err)) {
        proto_free_progress(m);
        return -1;
    }
    return 0;
}

void proto_free_progress(proto_progress *m) {
    free(m->stage);
    m->stage = NULL;
}

void proto_enc_log(proto_buf *b, const proto_log *m) {
    size_t s = proto_frame_begin(b, PROTO_LOG);
    proto_put_u64(b, m->run_id);
    proto_put_str(b, m->level);
    proto_put_str(b, m->text);
    proto_frame_end(b, s);
}

int proto_dec_log(proto_log *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    memset(m, 0, sizeof *m);
    if (proto_get_u64(&r, &m->run_id, "log.run_id", err) || proto_get_str(&r, &m->level, "log.level", err) ||
        proto_get_str(&r, &m->text, "log.text", err) || proto_get_end(&r, err)) {
        proto_free_log(m);
        return -1;
    }
    return 0;
}

void proto_free_log(proto_log *m) {
    free(m->level);
    free(m->text);
    m->level = m->text = NULL;
}

void proto_enc_checkpoint(proto_buf *b, const proto_checkpoint *m) {
    size_t s = proto_frame_begin(b, PROTO_CHECKPOINT);
    proto_put_u64(b, m->run_id);
    proto_put_i64(b, m->step);
    proto_put_bytes(b, m->data, m->len);
    proto_frame_end(b, s);
}

int proto_dec_checkpoint(proto_checkpoint *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    if (proto_get_u64(&r, &m->run_id, "checkpoint.run_id", err) ||
        proto_get_i64(&r, &m->step, "checkpoint.step", err) ||
        proto_get_bytes(&r, &m->data, &m->len, "checkpoint.data", err) || proto_get_end(&r, err))
        return -1;
    if (m->step < 0) return spq_fail(err, "checkpoint.step: negative");
    return 0;
}

void proto_enc_artifact(proto_buf *b, const proto_artifact *m) {
    size_t s = proto_frame_begin(b, PROTO_ARTIFACT);
    proto_put_u64(b, m->run_id);
    proto_put_str(b, m->name);
    proto_put_u64(b, m->offset);
    proto_put_u64(b, m->total);
    proto_put_bytes(b, m->data, m->len);
    proto_put_u8(b, m->final);
    proto_put_str(b, m->sha256);
    proto_frame_end(b, s);
}

int proto_dec_artifact(proto_artifact *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    memset(m, 0, sizeof *m);
    if (proto_get_u64(&r, &m->run_id, "artifact.run_id", err) || proto_get_str(&r, &m->name, "artifact.name", err) ||
        proto_get_u64(&r, &m->offset, "artifact.offset", err) || proto_get_u64(&r, &m->total, "artifact.total", err) ||
        proto_get_bytes(&r, &m->data, &m->len, "artifact.data", err) ||
        proto_get_u8(&r, &m->final, "artifact.final", err) || proto_get_str(&r, &m->sha256, "artifact.sha256", err) ||
        proto_get_end(&r, err)) {
        proto_free_artifact(m);
        return -1;
    }
    const char *why = NULL;
    int plain = m->name[0] && m->name[0] != '.' && strlen(m->name) <= 128;
    for (const char *c = m->name; *c && plain; c++)
        plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                *c == '_' || *c == '-';
    if (!plain)
        why = "artifact.name: must be a plain file name (letters, digits, '.', '_', '-'; not starting with '.')";
    else if (m->offset > m->total || m->len > m->total - m->offset)
        why = "artifact: chunk lies outside the file";
    else if (m->final > 1 || (m->final && strlen(m->sha256) != 64))
        why = "artifact.sha256: the final chunk must carry a 64-digit sha256";
    if (why) {
        proto_free_artifact(m);
        return spq_fail(err, "%s", why);
    }
    return 0;
}

void proto_free_artifact(proto_artifact *m) {
    free(m->name);
    free(m->sha256);
    m->name = m->sha256 = NULL;
}

void proto_enc_done(proto_buf *b, const proto_done *m) {
    size_t s = proto_frame_begin(b, PROTO_DONE);
    proto_put_u64(b, m->run_id);
    proto_put_u8(b, m->outcome);
    proto_put_str(b, m->reason);
    proto_frame_end(b, s);
}

int proto_dec_done(proto_done *m, const uint8_t *p, size_t n, spq_err *err) {
    R(p, n);
    memset(m, 0, sizeof *m);
    if (proto_get_u64(&r, &m->run_id, "done.run_id", err) || proto_get_u8(&r, &m->outcome, "done.outcome", err) ||
        proto_get_str(&r, &m->reason, "done.reason", err) || proto_get_end(&r, err)) {
        proto_free_done(m);
        return -1;
    }
    if (m->outcome > PROTO_OUT_INTERRUPTED) {
        proto_free_done(m);
        return spq_fail(err, "done.outcome: unknown value");
    }
    return 0;
}

void proto_free_done(proto_done *m) {
    free(m->reason);
    m->reason = NULL;
}
