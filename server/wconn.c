/* wconn.c - see wconn.h. Frames are handled in the order they arrive; each
 * store call is its own transaction, and its events reach the SSE clients
 * as soon as it commits.
 *
 * The handshake comes first: the protocol version (the frame's and
 * HELLO's, which keeps its layout in every version) and, for a remote
 * worker, its token; a refusal is a REJECT saying why, a warning in the
 * log naming the worker and its address, and the end of the connection.
 *
 * Artifacts: a connection that drops in the middle of one leaves its .part
 * file in place (only a finished run's DONE, or a fresh upload at offset 0,
 * removes or restarts it). A chunk at offset > 0 with no file open goes on
 * from that .part: its first `offset` bytes are hashed again and the rest
 * appended. A reconnected worker's HELLO may name a finished run whose
 * outputs it holds; RESUMED (right after WELCOME) tells it whether to
 * deliver them and what is already here (resume_held). Models and datasets are served by wfiles.c. */
#include "server/wconn.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/auth.h"
#include "server/db.h"
#include "server/log.h"
#include "server/store.h"
#include "server/wfiles.h"

wconn *wconn_list;
static wconn_hooks g_hooks;
static int g_no_assign; /* set while a RESUME moves a run between connections */

void wconn_init(const wconn_hooks *hooks) { g_hooks = *hooks; }

typedef struct {
    uv_write_t req;
    proto_buf buf;
} write_req;

wconn *wconn_new(int local) {
    wconn *wc = spq_calloc(1, sizeof *wc);
    wc->local = local;
    wc->state = WC_HANDSHAKE;
    wc->opened = wc->last_seen = spq_now();
    wc->h.handle.data = wc;
    snprintf(wc->name, sizeof wc->name, "%s", local ? "local" : "remote");
    return wc;
}

static void on_write(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    proto_buf_free(&w->buf);
    free(w);
}

void wconn_send(wconn *wc, proto_buf *b) {
    if (wc->state == WC_CLOSING) {
        proto_buf_free(b);
        return;
    }
    write_req *w = spq_calloc(1, sizeof *w);
    w->buf = *b;
    memset(b, 0, sizeof *b);
    uv_buf_t ub = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
    int rc = uv_write(&w->req, &wc->h.stream, &ub, 1, on_write);
    if (rc) {
        proto_buf_free(&w->buf);
        free(w);
        wconn_close(wc, uv_strerror(rc), 0);
    }
}

static void on_closed(uv_handle_t *h) {
    wconn *wc = h->data;
    proto_buf_free(&wc->rbuf);
    free(wc->art_tmp);
    free(wc);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    wconn *wc = req->data;
    free(req);
    uv_close(&wc->h.handle, on_closed);
}

/* Closes the artifact being received; removes its .part unless it is kept
 * for the worker to go on with after a reconnect. */
static void artifact_drop(wconn *wc, int keep) {
    if (!wc->art_f) return;
    fclose(wc->art_f);
    if (!keep) unlink(wc->art_tmp);
    wc->art_f = NULL;
}

void wconn_close(wconn *wc, const char *why, int graceful) {
    if (wc->state == WC_CLOSING) return;
    const spqd_config *cfg = g_hooks.cfg;
    sqlite3 *db = db_get();
    log_info("worker %s (%lld): connection closed: %s", wc->name, (long long)wc->worker_id, why);
    int was_ready = wc->state == WC_READY;
    wc->state = WC_CLOSING;
    artifact_drop(wc, 1);
    if (wc->run_id > 0 && db) {
        char reason[300];
        snprintf(reason, sizeof reason, "worker %s went away (%s)", wc->name, why);
        int failed;
        store_run_interrupted(db, wc->run_id, reason, cfg->max_attempts, !graceful, &failed);
        log_info("run %lld: %s; %s", (long long)wc->run_id, reason, failed ? "failed" : "back in the queue");
        wc->run_id = 0;
    }
    if (db && wc->worker_id > 0) store_worker_state(db, wc->worker_id, wc->local ? "restarting" : "gone", 0);
    for (wconn **p = &wconn_list; *p; p = &(*p)->next)
        if (*p == wc) {
            *p = wc->next;
            break;
        }
    if (wc->on_close) wc->on_close(wc, graceful);
    /* flush what is queued (a REJECT, say), then close */
    uv_read_stop(&wc->h.stream);
    uv_shutdown_t *req = spq_malloc(sizeof *req);
    req->data = wc;
    if (uv_shutdown(req, &wc->h.stream, on_shutdown)) {
        free(req);
        uv_close(&wc->h.handle, on_closed);
    }
    if (was_ready) g_hooks.counts_changed();
    if (!g_no_assign) g_hooks.assign(); /* a re-queued run can go to another worker now */
}

/* ---- frames from the worker ---- */

static int proto_error(wconn *wc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int proto_error(wconn *wc, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_warn("worker %s: protocol error: %s", wc->name, msg);
    char why[600];
    snprintf(why, sizeof why, "protocol error: %s", msg);
    wconn_close(wc, why, 0);
    return -1;
}

/* Refuses the worker: REJECT saying why, the daemon's log, the end. */
static int refuse(wconn *wc, const char *who, const char *why) {
    proto_buf b = {0};
    proto_enc_reject(&b, &(proto_reject){(char *)why});
    wconn_send(wc, &b);
    log_warn("worker %s (%s) refused: %s", who, wc->local ? "local" : wc->addr, why);
    wconn_close(wc, "refused", 1);
    return -1;
}

static void resume_held(wconn *wc, uint64_t run_id, uint32_t attempt);

static int on_hello(wconn *wc, const proto_frame *f) {
    char why[256] = "";
    /* the header first: another version's payload may not read as ours */
    if (f->version != PROTO_VERSION) {
        snprintf(why, sizeof why, "protocol version %u, the daemon speaks %d: run a spinq-worker of the daemon's "
                 "version", f->version, PROTO_VERSION);
        return refuse(wc, "?", why);
    }
    proto_hello h;
    spq_err err;
    if (proto_dec_hello(&h, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
    sqlite3 *db = db_get();
    if (h.version != PROTO_VERSION)
        snprintf(why, sizeof why, "protocol version %u, the daemon speaks %d: run a spinq-worker of the daemon's "
                 "version", h.version, PROTO_VERSION);
    else if (!wc->local && db)
        auth_worker(db, h.token, why, sizeof why); /* sets why when refused */
    if (!why[0] && h.only_run && db) { /* a worker for one run: only while that run waits for it */
        char owner[128], status[16] = "";
        store_rc rc = store_run_owner(db, (int64_t)h.only_run, owner, sizeof owner, status);
        if (rc == STORE_NOT_FOUND) snprintf(why, sizeof why, "run %llu does not exist", (unsigned long long)h.only_run);
        else if (rc != STORE_OK) snprintf(why, sizeof why, "the daemon cannot read run %llu",
                                          (unsigned long long)h.only_run);
        else if (strcmp(status, "queued"))
            snprintf(why, sizeof why, "run %llu is %s, not waiting for a worker", (unsigned long long)h.only_run, status);
    }
    if (why[0]) {
        refuse(wc, h.name, why);
        proto_free_hello(&h);
        return -1;
    }
    snprintf(wc->name, sizeof wc->name, "%s", h.name);
    if (wc->local) {
        wc->worker_id = wc->local_id;
    } else {
        wc->worker_id = db ? store_worker_add(db, h.name, "remote", (int)h.pid, wc->addr) : -1;
        if (wc->worker_id < 0) {
            proto_free_hello(&h);
            return proto_error(wc, "cannot record the worker");
        }
    }
    wc->only_run = (int64_t)h.only_run;
    uint64_t held = h.held_run;
    uint32_t held_attempt = h.held_attempt;
    proto_free_hello(&h);
    wc->state = WC_READY;
    if (db) store_worker_state(db, wc->worker_id, "idle", 0);
    proto_buf b = {0};
    proto_enc_welcome(&b, &(proto_welcome){(uint64_t)wc->worker_id,
                                           (uint32_t)(g_hooks.cfg->heartbeat_timeout * 1000)});
    wconn_send(wc, &b);
    log_info("worker %s connected (%s, id %lld)", wc->name, wc->local ? "local" : wc->addr, (long long)wc->worker_id);
    if (held) resume_held(wc, held, held_attempt);
    g_hooks.counts_changed();
    g_hooks.assign();
    return 0;
}

static int check_run(wconn *wc, uint64_t run_id, const char *what) {
    if (wc->run_id > 0 && run_id == (uint64_t)wc->run_id) return 0;
    return proto_error(wc, "%s for run %llu, but the worker's run is %lld", what, (unsigned long long)run_id,
                       (long long)wc->run_id);
}

/* data_dir/artifacts/RUN/NAME.part, its directories made (malloc'd). */
static char *part_path(int64_t run_id, const char *name) {
    const spqd_config *cfg = g_hooks.cfg;
    char dir[700];
    snprintf(dir, sizeof dir, "%s/artifacts", cfg->data_dir);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/artifacts/%lld", cfg->data_dir, (long long)run_id);
    mkdir(dir, 0755);
    size_t n = strlen(dir) + strlen(name) + 16;
    char *p = spq_malloc(n);
    snprintf(p, n, "%s/%s.part", dir, name);
    return p;
}

/* Opens the .part of artifact a: new at offset 0, else the kept one, cut
 * to a->offset bytes and hashed so far. */
static int artifact_open(wconn *wc, const proto_artifact *a) {
    artifact_drop(wc, 1);
    free(wc->art_tmp);
    wc->art_tmp = part_path(wc->run_id, a->name);
    spq_sha256_init(&wc->art_h);
    spq_err err;
    if (a->offset == 0) {
        wc->art_f = fopen(wc->art_tmp, "wb");
    } else if (spq_sha256_file(&wc->art_h, wc->art_tmp, a->offset, &err)) {
        return proto_error(wc, "artifact %s: cannot go on at %llu: %s", a->name, (unsigned long long)a->offset,
                           err.msg);
    } else if (truncate(wc->art_tmp, (off_t)a->offset) == 0) {
        wc->art_f = fopen(wc->art_tmp, "ab");
        log_info("run %lld: artifact %s goes on from byte %llu", (long long)wc->run_id, a->name,
                 (unsigned long long)a->offset);
    }
    if (!wc->art_f) {
        log_error("artifact %s: cannot write %s: %s", a->name, wc->art_tmp, strerror(errno));
        return proto_error(wc, "the daemon cannot store artifact %s", a->name);
    }
    snprintf(wc->art_name, sizeof wc->art_name, "%s", a->name);
    wc->art_next = a->offset;
    return 0;
}

static int artifact_chunk(wconn *wc, const proto_artifact *a) {
    int fresh = !wc->art_f || strcmp(wc->art_name, a->name);
    if (a->offset == 0 || fresh) {
        if (artifact_open(wc, a)) return -1;
    } else if (a->offset != wc->art_next) {
        return proto_error(wc, "artifact %s: chunk at %llu out of sequence", a->name, (unsigned long long)a->offset);
    }
    if (a->len && fwrite(a->data, 1, a->len, wc->art_f) != a->len) {
        artifact_drop(wc, 0);
        return proto_error(wc, "artifact %s: write failed", a->name);
    }
    spq_sha256_update(&wc->art_h, a->data, a->len);
    wc->art_next += a->len;
    if (!a->final) return 0;
    char sha[65];
    spq_sha256_hex_final(&wc->art_h, sha);
    int bad = fclose(wc->art_f);
    wc->art_f = NULL;
    if (bad || wc->art_next != a->total || strcmp(sha, a->sha256)) {
        unlink(wc->art_tmp);
        return proto_error(wc, "artifact %s: size or sha256 does not match what was sent", a->name);
    }
    size_t n = strlen(wc->art_tmp);
    char *final_path = spq_strdup(wc->art_tmp);
    final_path[n - 5] = 0; /* drop ".part" */
    char rel[400];
    snprintf(rel, sizeof rel, "artifacts/%lld/%s", (long long)wc->run_id, a->name);
    int rc = rename(wc->art_tmp, final_path);
    free(final_path);
    if (rc) return proto_error(wc, "artifact %s: cannot move into place", a->name);
    sqlite3 *db = db_get();
    if (db) store_artifact(db, wc->run_id, a->name, rel, (int64_t)a->total, sha);
    return 0;
}

/* What the daemon holds of run's artifacts: {"NAME": {"size", "sha256"}}
 * for the recorded ones, {"NAME": {"size"}} for a kept .part (malloc'd). */
static char *artifacts_held(sqlite3 *db, int64_t run_id) {
    json_t *have = json_object();
    json_t *list = store_artifacts_list(db, run_id);
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a) json_object_set_new(
        have, json_string_value(json_object_get(a, "name")),
        json_pack("{s:O,s:O}", "size", json_object_get(a, "size"), "sha256", json_object_get(a, "sha256")));
    json_decref(list);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/artifacts/%lld", g_hooks.cfg->data_dir, (long long)run_id);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n <= 5 || strcmp(e->d_name + n - 5, ".part")) continue;
        char path[1000], name[256];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(name, sizeof name, "%.*s", (int)(n - 5), e->d_name);
        if (!stat(path, &st) && !json_object_get(have, name))
            json_object_set_new(have, name, json_pack("{s:I}", "size", (json_int_t)st.st_size));
    }
    if (d) closedir(d);
    char *s = json_dumps(have, JSON_COMPACT);
    json_decref(have);
    return s;
}

/* A worker that lost its connection after run_id finished takes the run
 * back to deliver its outputs (RESUMED says whether, and what is here); an
 * older connection of the same worker still holding the run (its drop not
 * yet noticed) is closed first, giving the attempt back. */
static void resume_held(wconn *wc, uint64_t run_id, uint32_t attempt) {
    sqlite3 *db = db_get();
    g_no_assign = 1;
    for (wconn *o = wconn_list, *next; o; o = next) {
        next = o->next;
        if (o != wc && o->run_id == (int64_t)run_id && !strcmp(o->name, wc->name))
            wconn_close(o, "replaced by the worker's new connection", 1);
    }
    g_no_assign = 0;
    char why[200];
    int rc = !db ? -1 : store_run_reclaim(db, (int64_t)run_id, (int)attempt, wc->worker_id, wc->name, wc->host, why,
                               sizeof why);
    if (rc < 0) snprintf(why, sizeof why, "the daemon cannot record it");
    char *have = rc > 0 ? artifacts_held(db, (int64_t)run_id) : NULL;
    proto_buf b = {0};
    proto_enc_resumed(&b, &(proto_resumed){run_id, rc > 0, rc > 0 ? "" : why, have ? have : "{}"});
    wconn_send(wc, &b);
    free(have);
    if (rc > 0) {
        wc->run_id = (int64_t)run_id;
        wc->cancel_sent = 0;
        store_worker_state(db, wc->worker_id, "busy", wc->run_id);
        log_info("run %llu: worker %s is back to deliver its outputs", (unsigned long long)run_id, wc->name);
    } else {
        log_info("run %llu: worker %s holds its outputs, but %s", (unsigned long long)run_id, wc->name, why);
    }
}

/* WANT: the manifest of a model or dataset. */
static void on_want(wconn *wc, const proto_want *w) {
    char *files = NULL;
    spq_err err = {{0}};
    if (wfiles_manifest(g_hooks.cfg, w->kind, w->name, &files, &err))
        log_warn("worker %s wants %s '%s': %s", wc->name, w->kind == PROTO_KIND_MODEL ? "model" : "dataset", w->name,
                 err.msg);
    proto_buf b = {0};
    proto_enc_manifest(&b, &(proto_manifest){w->kind, w->name, files ? files : "[]", files ? "" : err.msg});
    wconn_send(wc, &b);
    free(files);
}

static int on_done(wconn *wc, const proto_done *d) {
    const spqd_config *cfg = g_hooks.cfg;
    sqlite3 *db = db_get();
    if (!db) return -1;
    int64_t run = wc->run_id;
    artifact_drop(wc, 0);
    switch (d->outcome) {
    case PROTO_OUT_DONE: store_run_finish(db, run, "done", NULL); break;
    case PROTO_OUT_FAILED: store_run_finish(db, run, "failed", d->reason[0] ? d->reason : "failed"); break;
    case PROTO_OUT_CANCELED: store_run_finish(db, run, "canceled", "canceled while running"); break;
    default: {
        int failed;
        char reason[300];
        snprintf(reason, sizeof reason, "worker %s stopped (%s)", wc->name, d->reason);
        store_run_interrupted(db, run, reason, cfg->max_attempts, 0, &failed);
    }
    }
    log_info("run %lld: %s%s%s (worker %s)", (long long)run,
             (const char *[]){"done", "failed", "canceled", "interrupted"}[d->outcome], d->reason[0] ? ": " : "",
             d->reason, wc->name);
    wc->run_id = 0;
    wc->cancel_sent = 0;
    store_worker_job_done(db, wc->worker_id);
    store_worker_state(db, wc->worker_id, "idle", 0);
    g_hooks.counts_changed();
    g_hooks.assign();
    return 0;
}

static int valid_level(const char *l) {
    return !strcmp(l, "debug") || !strcmp(l, "info") || !strcmp(l, "warn") || !strcmp(l, "error");
}

/* Handles one frame; -1 when the connection was closed. */
static int on_frame(wconn *wc, const proto_frame *f) {
    spq_err err;
    sqlite3 *db = db_get();
    wc->last_seen = spq_now();
    if (wc->state == WC_HANDSHAKE) {
        if (f->type != PROTO_HELLO) return proto_error(wc, "expected hello, got %s", proto_type_name(f->type));
        return on_hello(wc, f);
    }
    switch (f->type) {
    case PROTO_STAGE: {
        proto_stage m;
        if (proto_dec_stage(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        int rc = check_run(wc, m.run_id, "stage");
        if (!rc) store_run_stage(db, wc->run_id, m.stage);
        proto_free_stage(&m);
        return rc;
    }
    case PROTO_METRIC: {
        proto_metric m;
        if (proto_dec_metric(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        int rc = check_run(wc, m.run_id, "metric");
        if (!rc) store_metric(db, wc->run_id, m.key, m.step, m.value);
        proto_free_metric(&m);
        return rc;
    }
    case PROTO_PROGRESS: {
        proto_progress m;
        if (proto_dec_progress(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        int rc = check_run(wc, m.run_id, "progress");
        if (!rc) store_progress(db, wc->run_id, m.stage, m.done, m.total);
        proto_free_progress(&m);
        return rc;
    }
    case PROTO_LOG: {
        proto_log m;
        if (proto_dec_log(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        int rc = !valid_level(m.level) ? proto_error(wc, "log level '%s'", m.level) : check_run(wc, m.run_id, "log");
        if (!rc) store_log(db, wc->run_id, m.level, m.text);
        proto_free_log(&m);
        return rc;
    }
    case PROTO_CHECKPOINT: {
        proto_checkpoint m;
        if (proto_dec_checkpoint(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        if (check_run(wc, m.run_id, "checkpoint")) return -1;
        store_checkpoint(db, wc->run_id, m.step, m.data, m.len, g_hooks.cfg->keep_checkpoints);
        return 0;
    }
    case PROTO_ARTIFACT: {
        proto_artifact m;
        if (proto_dec_artifact(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        int rc = check_run(wc, m.run_id, "artifact");
        if (!rc) rc = artifact_chunk(wc, &m);
        proto_free_artifact(&m);
        return rc;
    }
    case PROTO_DONE: {
        proto_done m;
        if (proto_dec_done(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        int rc = check_run(wc, m.run_id, "done");
        if (!rc) rc = on_done(wc, &m);
        proto_free_done(&m);
        return rc;
    }
    case PROTO_WANT: {
        proto_want m;
        if (proto_dec_want(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        on_want(wc, &m);
        proto_free_want(&m);
        return 0;
    }
    case PROTO_FETCH: {
        proto_fetch m;
        if (proto_dec_fetch(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        proto_buf b = {0};
        wfiles_chunk(g_hooks.cfg, &m, &b);
        wconn_send(wc, &b);
        proto_free_fetch(&m);
        return 0;
    }
    case PROTO_PING: {
        proto_ping m;
        if (proto_dec_ping(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        proto_buf b = {0};
        proto_enc_ping(&b, PROTO_PONG, &m);
        wconn_send(wc, &b);
        return 0;
    }
    case PROTO_PONG: {
        proto_ping m;
        if (proto_dec_ping(&m, f->payload, f->len, &err)) return proto_error(wc, "%s", err.msg);
        return 0;
    }
    default: return proto_error(wc, "a worker does not send %s frames", proto_type_name(f->type));
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    wconn *wc = h->data;
    proto_buf_reserve(&wc->rbuf, 64 * 1024);
    *buf = uv_buf_init((char *)wc->rbuf.data + wc->rbuf.len, (unsigned)(wc->rbuf.cap - wc->rbuf.len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    wconn *wc = s->data;
    if (wc->state == WC_CLOSING) return;
    if (nread < 0) {
        wc->peer_closed = 1;
        wconn_close(wc, nread == UV_EOF ? "end of stream" : uv_strerror((int)nread), 0);
        return;
    }
    wc->rbuf.len += (size_t)nread;
    size_t off = 0;
    for (;;) {
        proto_frame f;
        spq_err err;
        int rc = proto_frame_parse(&f, wc->rbuf.data + off, wc->rbuf.len - off, &err);
        if (rc < 0) {
            proto_error(wc, "%s", err.msg);
            return;
        }
        if (rc == 0) break;
        if (on_frame(wc, &f) < 0 || wc->state == WC_CLOSING) return;
        off += PROTO_HEADER + f.len;
    }
    proto_buf_consume(&wc->rbuf, off);
}

int wconn_start(wconn *wc) {
    wc->h.handle.data = wc;
    wc->next = wconn_list;
    wconn_list = wc;
    int rc = uv_read_start(&wc->h.stream, on_alloc, on_read);
    if (rc) {
        log_error("worker connection: %s", uv_strerror(rc));
        wconn_close(wc, uv_strerror(rc), 1);
        return -1;
    }
    return 0;
}
