/* main_worker.c - spinq-worker: runs jobs for spinqd.
 *
 *   spinq-worker --fd 3 [--models-dir D] [--datasets-dir D] [--name N]
 *       a local worker: spinqd spawned it with a socket on fd 3
 *   spinq-worker --connect HOST:PORT [--token T] [--models-dir D] ...
 *       a remote worker: connects (and reconnects) to spinqd's worker port
 *   spinq-worker --connect HOST:PORT --run ID ...
 *       one run and exit (a Slurm job of spinqd's slurm executor): the HELLO
 *       names the run, the daemon hands out that one or refuses; there is
 *       no reconnect, a run cut off is the daemon's to resume elsewhere.
 *       Under srun/mpirun rank 0 does all of the above and the other ranks
 *       follow its broadcasts (ranks.h).
 *
 * Two threads. The reader thread owns the socket's input: it queues a JOB,
 * sets the cancel/shutdown flags, answers PING, and notices the end of the
 * connection. The main thread runs one job at a time through the pipeline;
 * its reporter (below) writes STAGE/METRIC/... frames, and the pipeline
 * polls should_stop between steps. A lost connection stops the job: a local
 * worker then exits (its daemon is gone), a remote one reconnects, also
 * after a SHUTDOWN (the daemon is restarting).
 *
 * The daemon pings every second; the reader treats a silence of the
 * WELCOME's heartbeat_ms as a dead connection (a host gone without a FIN)
 * and shuts the socket, which also frees a writer blocked on it.
 *
 * Requests and answers: the main thread may ask the daemon something
 * (call: WANT, FETCH, RESUME) and wait; the reader puts the answer in the
 * mailbox. A remote worker fetches the job's models and datasets it lacks
 * that way before the pipeline starts (fetch.c).
 *
 * Outputs: the pipeline's artifacts are collected while it runs and
 * delivered (chunks with the sha256) once it ends, then DONE. A connection
 * lost during delivery leaves the run held: its work directory stays, and
 * after the reconnect RESUME asks the daemon to take the outputs, from
 * where each upload broke off: the next HELLO names the run, and the
 * daemon's RESUMED says whether to deliver and what it already has. */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/cpu.h"
#include "common/base/par.h"
#include "common/base/sha256.h"
#include "worker/fetch.h"
#include "worker/pipeline.h"
#include "worker/ranks.h"
#include "worker/serve.h"
#include "worker/wire.h"
#include "worker/workdir.h"

typedef struct {
    char *name, *path;
} artifact;

/* A finished run whose outputs are not delivered yet. */
typedef struct {
    uint64_t run;
    uint32_t attempt;
    char dir[4096];   /* its work directory ("" when none) */
    artifact *arts;
    int n_arts;
    proto_buf done;   /* its DONE frame */
    uint8_t outcome;  /* proto_outcome */
} outputs;

typedef struct {
    wk_wire w;
    const char *name;
    int remote;       /* --connect: fetches what it lacks, holds undelivered outputs */
    uint64_t only_run; /* --run: this run, then exit */
    int job_shared;   /* --run under MPI: the job (or that there is none) went to the other ranks */
    int last_outcome; /* proto_outcome of the last run_job */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int have_job;
    uint64_t job_run;
    uint32_t job_attempt;
    char *job_spec;
    int64_t job_ckpt_step;
    uint8_t *job_ckpt;
    size_t job_ckpt_len;
    uint64_t current_run; /* 0 when idle */
    int cancel, shutdown, lost;
    double last_progress;
    /* the mailbox: the answer the main thread waits for */
    int reply_type;
    uint8_t *reply;
    size_t reply_len;
    outputs out;      /* the current run's, or a held one's (out.run > 0) */
} worker;

static void wlog(const worker *wk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void wlog(const worker *wk, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "spinq-worker[%s]: %s\n", wk->name, msg);
}

static void send_buf(worker *wk, proto_buf *b) {
    if (wk_wire_send(&wk->w, b)) {
        pthread_mutex_lock(&wk->mu);
        wk->lost = 1;
        pthread_cond_broadcast(&wk->cv);
        pthread_mutex_unlock(&wk->mu);
    }
    proto_buf_free(b);
}

/* ---- the reader thread ---- */

static void *reader(void *arg) {
    worker *wk = arg;
    spq_err err;
    proto_frame f;
    int rc;
    while ((rc = wk_wire_recv(&wk->w, &f, &err)) == 1) {
        int bad = 0;
        switch (f.type) {
        case PROTO_JOB: {
            proto_job j;
            if (proto_dec_job(&j, f.payload, f.len, &err)) {
                bad = 1;
                break;
            }
            pthread_mutex_lock(&wk->mu);
            if (wk->have_job || wk->current_run) {
                wlog(wk, "the daemon sent run %llu while run %llu is still going; ignored",
                     (unsigned long long)j.run_id, (unsigned long long)wk->current_run);
                proto_free_job(&j);
            } else {
                wk->have_job = 1;
                wk->job_run = j.run_id;
                wk->job_attempt = j.attempt;
                wk->job_spec = j.spec;
                wk->job_ckpt_step = j.ckpt_step;
                wk->job_ckpt_len = j.ckpt_len;
                wk->job_ckpt = spq_malloc(j.ckpt_len);
                if (j.ckpt_len) memcpy(wk->job_ckpt, j.ckpt, j.ckpt_len);
                wk->cancel = 0;
                pthread_cond_broadcast(&wk->cv);
            }
            pthread_mutex_unlock(&wk->mu);
            break;
        }
        case PROTO_CANCEL: {
            proto_run_ref c;
            if (proto_dec_cancel(&c, f.payload, f.len, &err)) {
                bad = 1;
                break;
            }
            pthread_mutex_lock(&wk->mu);
            if (c.run_id == wk->current_run || (wk->have_job && c.run_id == wk->job_run)) wk->cancel = 1;
            pthread_mutex_unlock(&wk->mu);
            break;
        }
        case PROTO_SHUTDOWN:
            if (proto_dec_shutdown(f.payload, f.len, &err)) {
                bad = 1;
                break;
            }
            pthread_mutex_lock(&wk->mu);
            wk->shutdown = 1;
            pthread_cond_broadcast(&wk->cv);
            pthread_mutex_unlock(&wk->mu);
            break;
        case PROTO_PING: {
            proto_ping p;
            if (proto_dec_ping(&p, f.payload, f.len, &err)) {
                bad = 1;
                break;
            }
            proto_buf b = {0};
            proto_enc_ping(&b, PROTO_PONG, &p);
            send_buf(wk, &b);
            break;
        }
        case PROTO_PONG: break;
        case PROTO_MANIFEST:
        case PROTO_FILE:
        case PROTO_RESUMED:
            pthread_mutex_lock(&wk->mu);
            free(wk->reply);
            wk->reply = spq_malloc(f.len ? f.len : 1);
            if (f.len) memcpy(wk->reply, f.payload, f.len);
            wk->reply_len = f.len;
            wk->reply_type = f.type;
            pthread_cond_broadcast(&wk->cv);
            pthread_mutex_unlock(&wk->mu);
            break;
        default:
            spq_fail(&err, "unexpected %s frame from the daemon", proto_type_name(f.type));
            bad = 1;
        }
        if (bad) {
            rc = -1;
            break;
        }
    }
    if (rc < 0) wlog(wk, "connection to the daemon dropped: %s", err.msg);
    shutdown(wk->w.fd, SHUT_RDWR); /* a writer blocked on a dead peer returns now */
    pthread_mutex_lock(&wk->mu);
    wk->lost = 1;
    pthread_cond_broadcast(&wk->cv);
    pthread_mutex_unlock(&wk->mu);
    return NULL;
}

/* ---- the reporter over proto ---- */

static void rep_stage(void *ud, const char *stage) {
    worker *wk = ud;
    proto_buf b = {0};
    proto_enc_stage(&b, &(proto_stage){wk->current_run, (char *)stage});
    send_buf(wk, &b);
}

static void rep_metric(void *ud, const char *key, int64_t step, double value) {
    worker *wk = ud;
    proto_buf b = {0};
    proto_enc_metric(&b, &(proto_metric){wk->current_run, (char *)key, step, value});
    send_buf(wk, &b);
}

static void rep_progress(void *ud, const char *stage, int64_t done, int64_t total) {
    worker *wk = ud;
    double now = spq_now();
    if (done < total && now - wk->last_progress < 0.1) return; /* at most ~10 a second */
    wk->last_progress = now;
    proto_buf b = {0};
    proto_enc_progress(&b, &(proto_progress){wk->current_run, (char *)stage, done, total});
    send_buf(wk, &b);
}

static void rep_log(void *ud, const char *level, const char *text) {
    worker *wk = ud;
    proto_buf b = {0};
    proto_enc_log(&b, &(proto_log){wk->current_run, (char *)level, (char *)text});
    send_buf(wk, &b);
}

static void rep_checkpoint(void *ud, int64_t step, const void *data, size_t len) {
    worker *wk = ud;
    proto_buf b = {0};
    proto_enc_checkpoint(&b, &(proto_checkpoint){wk->current_run, step, data, len});
    send_buf(wk, &b);
}

/* Takes the artifact (the pipeline removes its file after this call) into
 * the work directory's outbox, WORK/out.NAME; deliver sends it once the
 * pipeline is over. */
static int rep_artifact(void *ud, const char *name, const char *path, spq_err *err) {
    worker *wk = ud;
    outputs *o = &wk->out;
    size_t n = strlen(o->dir) + strlen(name) + 8;
    char *kept = spq_malloc(n);
    snprintf(kept, n, "%s/out.%s", o->dir, name);
    if (rename(path, kept)) {
        free(kept);
        return spq_fail(err, "%s: cannot keep it for delivery: %s", path, strerror(errno));
    }
    o->arts = spq_realloc(o->arts, (size_t)(o->n_arts + 1) * sizeof *o->arts);
    o->arts[o->n_arts++] = (artifact){spq_strdup(name), kept};
    return 0;
}

static int rep_should_stop(void *ud) {
    worker *wk = ud;
    pthread_mutex_lock(&wk->mu);
    int s = wk->lost || wk->shutdown ? PL_STOP_SHUTDOWN : wk->cancel ? PL_STOP_CANCEL : PL_STOP_NONE;
    pthread_mutex_unlock(&wk->mu);
    return wk_ranks_agree_stop(s); /* every rank stops at the same step */
}

/* ---- asking the daemon ---- */

/* Sends req (NULL: nothing, the answer comes unasked) and waits for the
 * answer of type reply_type (wk_fetch_io.call). */
static int call(void *ud, proto_buf *req, int reply_type, uint8_t **payload, size_t *len, spq_err *err) {
    worker *wk = ud;
    if (req) {
        pthread_mutex_lock(&wk->mu);
        free(wk->reply);
        wk->reply = NULL;
        wk->reply_type = 0;
        pthread_mutex_unlock(&wk->mu);
        send_buf(wk, req);
    }
    pthread_mutex_lock(&wk->mu);
    while (!wk->reply_type && !wk->lost) pthread_cond_wait(&wk->cv, &wk->mu);
    int got = wk->reply_type;
    *payload = wk->reply;
    *len = wk->reply_len;
    wk->reply = NULL;
    wk->reply_type = 0;
    pthread_mutex_unlock(&wk->mu);
    if (got == reply_type) return 0;
    free(*payload);
    *payload = NULL;
    if (!got) return spq_fail(err, "the connection to the daemon was lost");
    return spq_fail(err, "the daemon answered %s, not %s", proto_type_name(got), proto_type_name(reply_type));
}

static void note(void *ud, const char *text) {
    worker *wk = ud;
    wlog(wk, "%s", text);
    rep_log(ud, "info", text);
}

/* ---- outputs ---- */

static void outputs_clear(outputs *o) {
    if (o->dir[0]) wk_workdir_remove(o->dir);
    for (int i = 0; i < o->n_arts; i++) {
        free(o->arts[i].name);
        free(o->arts[i].path);
    }
    free(o->arts);
    proto_buf_free(&o->done);
    memset(o, 0, sizeof *o);
}

/* Where to start artifact name (total bytes, digest sha) given what the
 * daemon holds (RESUMED's have): total when it has the whole, the size of
 * its .part when that can be a prefix, else 0. */
static uint64_t resume_offset(json_t *have, const char *name, uint64_t total, const char *sha) {
    json_t *h = json_object_get(have, name);
    json_int_t size = json_integer_value(json_object_get(h, "size"));
    const char *their = json_string_value(json_object_get(h, "sha256"));
    if (!h || size < 0 || (uint64_t)size > total) return 0;
    if (their) return !strcmp(their, sha) && (uint64_t)size == total ? total : 0;
    return (uint64_t)size;
}

/* Sends artifact a from byte `from` in 1 MiB chunks (the last one carries
 * the sha256 of the whole file, whose digest is also logged). 0, or -1 when
 * the connection is gone or the file cannot be read. */
static int upload(worker *wk, const artifact *a, json_t *have) {
    spq_err err;
    spq_sha256 h;
    spq_sha256_init(&h);
    char sha[65];
    if (spq_sha256_file(&h, a->path, UINT64_MAX, &err)) {
        wlog(wk, "artifact %s: %s", a->name, err.msg);
        return -1;
    }
    spq_sha256_hex_final(&h, sha);
    struct stat st;
    FILE *f = fopen(a->path, "rb");
    if (!f || fstat(fileno(f), &st)) {
        if (f) fclose(f);
        wlog(wk, "artifact %s: cannot open %s", a->name, a->path);
        return -1;
    }
    uint64_t total = (uint64_t)st.st_size, off = resume_offset(have, a->name, total, sha);
    wlog(wk, "artifact %s: %llu bytes, sha256 %s%s", a->name, (unsigned long long)total, sha,
         off == total && total ? " (the daemon has it)" : off ? " (going on where the upload broke off)" : "");
    if (off == total && total) {
        fclose(f);
        return 0;
    }
    size_t cap = 1 << 20;
    uint8_t *buf = spq_malloc(cap);
    fseeko(f, (off_t)off, SEEK_SET);
    int rc = 0;
    for (;;) {
        size_t n = fread(buf, 1, cap, f);
        int final = off + n >= total || n < cap;
        proto_buf b = {0};
        proto_enc_artifact(&b, &(proto_artifact){wk->out.run, a->name, off, total, buf, n, (uint8_t)final,
                                                 final ? sha : ""});
        send_buf(wk, &b);
        off += n;
        if (wk->lost) rc = -1;
        if (final || rc) break;
    }
    free(buf);
    fclose(f);
    return rc;
}

/* Sends the run's artifacts and its DONE. 0, or -1 when the connection was
 * lost on the way (the outputs stay for a RESUME). */
static int deliver(worker *wk, json_t *have) {
    outputs *o = &wk->out;
    pthread_mutex_lock(&wk->mu);
    wk->current_run = o->run;
    pthread_mutex_unlock(&wk->mu);
    for (int i = 0; i < o->n_arts && !wk->lost; i++)
        if (upload(wk, &o->arts[i], have) && !wk->lost) {
            /* unreadable: the run cannot be delivered as done */
            proto_buf_free(&o->done);
            char reason[300];
            snprintf(reason, sizeof reason, "artifact %s cannot be read on the worker", o->arts[i].name);
            proto_enc_done(&o->done, &(proto_done){o->run, PROTO_OUT_FAILED, reason});
            break;
        }
    pthread_mutex_lock(&wk->mu);
    wk->current_run = 0; /* idle before DONE: the daemon answers it with the next job */
    pthread_mutex_unlock(&wk->mu);
    if (!wk->lost) {
        proto_buf b = o->done;
        memset(&o->done, 0, sizeof o->done);
        send_buf(wk, &b);
    }
    pthread_mutex_lock(&wk->mu);
    int lost = wk->lost;
    pthread_mutex_unlock(&wk->mu);
    return lost ? -1 : 0;
}

/* After a reconnect whose HELLO named the held outputs: delivers them when
 * the daemon's RESUMED takes them, drops them when it does not. */
static void resume_held(worker *wk) {
    uint8_t *payload;
    size_t len;
    spq_err err;
    proto_resumed r;
    if (call(wk, NULL, PROTO_RESUMED, &payload, &len, &err)) return; /* lost again: still held */
    int bad = proto_dec_resumed(&r, payload, len, &err);
    free(payload);
    if (bad) {
        wlog(wk, "run %llu: %s", (unsigned long long)wk->out.run, err.msg);
        return;
    }
    if (!r.accepted) {
        wlog(wk, "run %llu: the daemon does not take its outputs: %s", (unsigned long long)wk->out.run, r.reason);
        outputs_clear(&wk->out);
    } else {
        wlog(wk, "run %llu: delivering its outputs after the reconnect", (unsigned long long)wk->out.run);
        json_t *have = json_loads(r.have, 0, NULL);
        if (!deliver(wk, have)) outputs_clear(&wk->out);
        json_decref(have);
    }
    proto_free_resumed(&r);
}

/* ---- jobs ---- */

/* Runs the current job into wk->out (its work directory, artifacts and
 * DONE frame), for deliver. */
static void run_job(worker *wk, const char *models_dir, const char *datasets_dir) {
    pl_reporter rep = {wk,          rep_stage,      rep_metric,      rep_progress,
                        rep_log,     rep_checkpoint, rep_artifact,    rep_should_stop};
    pl_pipeline p;
    memset(&p, 0, sizeof p);
    p.models_dir = models_dir;
    p.datasets_dir = datasets_dir;
    p.resume_step = wk->job_ckpt_step;
    p.resume_ckpt = wk->job_ckpt;
    p.resume_len = wk->job_ckpt_len;
    p.rep = &rep;
    char field[SPQ_FIELD_MAX];
    outputs *o = &wk->out;
    o->run = wk->current_run;
    o->attempt = wk->job_attempt;
    proto_done done = {wk->current_run, PROTO_OUT_DONE, ""};
    char reason[1100] = "";
    int went = 0; /* the pipeline ran */
    wlog(wk, "run %llu (attempt %u)%s", (unsigned long long)wk->current_run, wk->job_attempt,
         wk->job_ckpt_step >= 0 ? ", resuming from a checkpoint" : "");
    wk_fetch_io io = {wk, call, note};
    if (spq_jobspec_parse(&p.spec, wk->job_spec, strlen(wk->job_spec), field, &p.err)) {
        done.outcome = PROTO_OUT_FAILED;
        snprintf(reason, sizeof reason, "spec: %s", p.err.msg);
        o->dir[0] = 0;
    } else if (wk_workdir_make(o->dir, sizeof o->dir)) {
        done.outcome = PROTO_OUT_FAILED;
        snprintf(reason, sizeof reason, "cannot create a work directory: %s", strerror(errno));
        o->dir[0] = 0;
        pl_pipeline_free(&p);
    } else if (wk->remote && wk_fetch_inputs(&p.spec, models_dir, datasets_dir, &io, &p.err)) {
        done.outcome = wk->lost ? PROTO_OUT_INTERRUPTED : PROTO_OUT_FAILED;
        snprintf(reason, sizeof reason, "fetch: %s", p.err.msg);
        pl_pipeline_free(&p);
    } else {
        went = 1;
        if (spq_par_size() > 1) { /* the other ranks run it too, on the inputs found here */
            wk_ranks_bcast_int(1);
            free(wk_ranks_bcast_str(models_dir));
            free(wk_ranks_bcast_str(datasets_dir));
        }
        p.work_dir = o->dir;
        int rc = pl_pipeline_run(&p);
        if (rc == PL_STAGE_FAILED) {
            done.outcome = PROTO_OUT_FAILED;
            snprintf(reason, sizeof reason, "%s", p.err.msg);
        } else if (rc == PL_STAGE_STOPPED) {
            done.outcome = p.stop == PL_STOP_CANCEL ? PROTO_OUT_CANCELED : PROTO_OUT_INTERRUPTED;
            snprintf(reason, sizeof reason, "%s", p.stop == PL_STOP_CANCEL ? "canceled" : "worker stopping");
        }
        pl_pipeline_free(&p);
    }
    if (spq_par_size() > 1 && !went) wk_ranks_bcast_int(0); /* the other ranks skip it */
    done.reason = reason;
    wlog(wk, "run %llu: %s%s%s", (unsigned long long)wk->current_run,
         (const char *[]){"done", "failed", "canceled", "interrupted"}[done.outcome], reason[0] ? ": " : "", reason);
    proto_enc_done(&o->done, &done);
    o->outcome = done.outcome;
    wk->last_outcome = done.outcome;
}

/* After run_job: delivers the outputs, or holds them for the reconnect when
 * the connection is gone and the run finished (done or failed) on a remote
 * worker; a run stopped by the lost connection is the daemon's to re-queue
 * from its checkpoint. */
static void finish_job(worker *wk) {
    int finished = wk->out.outcome == PROTO_OUT_DONE || wk->out.outcome == PROTO_OUT_FAILED;
    if ((wk->lost || deliver(wk, NULL)) && wk->remote && finished) {
        wlog(wk, "run %llu: connection lost before its outputs were delivered; holding them for the reconnect",
             (unsigned long long)wk->out.run);
        return;
    }
    outputs_clear(&wk->out);
}

/* One connection's life: handshake, then jobs until it ends. Returns 1 when
 * the worker should exit (shutdown), 0 when the connection was lost, 2 when
 * the daemon refused this worker. */
static int serve(worker *wk, int fd, const char *token, const char *models_dir, const char *datasets_dir) {
    wk_wire_init(&wk->w, fd);
    wk->w.timeout_ms = 15000; /* for the WELCOME */
    wk->have_job = wk->cancel = wk->shutdown = wk->lost = 0;
    wk->current_run = 0;
    proto_buf b = {0};
    proto_enc_hello(&b, &(proto_hello){PROTO_VERSION, (char *)wk->name, (uint32_t)getpid(), (char *)token, 1,
                                       wk->out.run, wk->out.attempt, wk->only_run});
    int sent = wk_wire_send(&wk->w, &b);
    proto_buf_free(&b);
    proto_frame f;
    spq_err err = {{0}};
    int rc = sent ? -1 : wk_wire_recv(&wk->w, &f, &err);
    if (rc == 1 && f.type == PROTO_REJECT) {
        proto_reject r;
        if (!proto_dec_reject(&r, f.payload, f.len, &err)) {
            wlog(wk, "the daemon refused this worker: %s", r.reason);
            proto_free_reject(&r);
        } else {
            wlog(wk, "the daemon refused this worker (its reason unreadable: %s)", err.msg);
        }
        wk_wire_close(&wk->w);
        return 2;
    }
    proto_welcome wel;
    if (rc != 1 || f.type != PROTO_WELCOME || proto_dec_welcome(&wel, f.payload, f.len, &err)) {
        wlog(wk, "handshake failed: %s", err.msg[0] ? err.msg : "no welcome from the daemon");
        wk_wire_close(&wk->w);
        return 0;
    }
    wk->w.timeout_ms = (int)wel.heartbeat_ms;
    wlog(wk, "connected as worker %llu (heartbeat %.1f s)", (unsigned long long)wel.worker_id,
         wel.heartbeat_ms / 1000.0);
    free(wk->reply); /* nothing of the last connection's is an answer now */
    wk->reply = NULL;
    wk->reply_type = 0;
    pthread_t th;
    pthread_create(&th, NULL, reader, wk);
    if (wk->out.run) resume_held(wk);
    int exit_now = 0;
    for (;;) {
        pthread_mutex_lock(&wk->mu);
        while (!wk->have_job && !wk->shutdown && !wk->lost) pthread_cond_wait(&wk->cv, &wk->mu);
        if (wk->lost || (wk->shutdown && !wk->have_job)) {
            exit_now = wk->shutdown;
            pthread_mutex_unlock(&wk->mu);
            break;
        }
        wk->have_job = 0;
        wk->current_run = wk->job_run;
        pthread_mutex_unlock(&wk->mu);
        if (spq_par_size() > 1) {
            wk_ranks_bcast_job(&(wk_rank_job){1, wk->job_run, wk->job_attempt, wk->job_spec, wk->job_ckpt_step,
                                              wk->job_ckpt, wk->job_ckpt_len});
            wk->job_shared = 1;
        }
        run_job(wk, models_dir, datasets_dir);
        pthread_mutex_lock(&wk->mu);
        wk->current_run = 0;
        free(wk->job_spec);
        free(wk->job_ckpt);
        wk->job_spec = NULL;
        wk->job_ckpt = NULL;
        pthread_mutex_unlock(&wk->mu);
        finish_job(wk);
        if (wk->only_run) {
            exit_now = 1;
            break;
        }
    }
    shutdown(wk->w.fd, SHUT_RDWR); /* ends the reader */
    pthread_join(th, NULL);
    wk_wire_close(&wk->w);
    return exit_now;
}

/* --run: connects (a few tries: the daemon may be restarting), runs that
 * run, exits. 0 when the run ended here (done, failed or canceled, and
 * reported), 1 otherwise: the daemon resumes it in a new job. Under MPI,
 * the other ranks hear of the job, or that there is none. */
static int one_run(worker *wk, const char *connect_to, const char *token, uint64_t run, const char *models_dir,
                   const char *datasets_dir) {
    wk->only_run = run;
    int rc = 0;
    double backoff = 0.5;
    for (int tries = 0; tries < 8; tries++) {
        spq_err err;
        int s = wk_wire_connect(connect_to, &err);
        if (s >= 0) {
            rc = serve(wk, s, token, models_dir, datasets_dir);
            break;
        }
        wlog(wk, "%s; again in %.1fs", err.msg, backoff);
        usleep((useconds_t)(backoff * 1e6));
        backoff *= 2;
    }
    if (spq_par_size() > 1 && !wk->job_shared) wk_ranks_bcast_job(&(wk_rank_job){0});
    int ok = rc == 1 && !wk->out.run; /* out.run: held, the connection was lost before delivery */
    outputs_clear(&wk->out);
    wlog(wk, "run %llu: exiting (%s)", (unsigned long long)run, ok ? "the run ended here" : "the run was not finished here");
    /* done, canceled, interrupted: every rank left the pipeline at the same
     * point (the stop polls agree). A failure on rank 0, or a run not
     * finished here, may leave the others in a collective rank 0 will not join */
    if (spq_par_size() > 1 && wk->job_shared && (!ok || wk->last_outcome == PROTO_OUT_FAILED)) {
        fflush(NULL);
        spq_par_abort(1);
    }
    return ok ? 0 : 1;
}

/* --help on stdout (exit 0); a wrong command line on stderr (exit 2) */
static int usage(FILE *f) {
    fprintf(f, "usage: spinq-worker --connect HOST:PORT [--token T] [--models-dir D] [--datasets-dir D] [--name NAME]\n"
               "           a remote worker of spinqd (its worker_listen, default port 7071); reconnects on its own\n"
               "       spinq-worker --connect HOST:PORT --run ID ...\n"
               "           run ID only, then exit (spinqd's Slurm jobs: srun --mpi=pmix spinq-worker ...)\n"
               "       spinq-worker --fd N ...      a local worker started by spinqd\n"
               "       spinq-worker serve MODEL ... a completion server (spinq-worker serve --help)\n"
               "  --token T          a token of role worker (spinqd token create NAME --role worker);\n"
               "                     also from SPINQ_WORKER_TOKEN\n"
               "  --models-dir D     where the job specs' models are (default ./models)\n"
               "  --datasets-dir D   where their datasets are (default ./data)\n"
               "  --name NAME        shown by GET /api/workers (default HOST:PID)\n");
    return f == stdout ? 0 : 2;
}

int main(int argc, char **argv) {
    spq_cpu_ensure_coretype(argv);
    if (spq_par_init(&argc, &argv)) return 1;
    if (argc > 1 && !strcmp(argv[1], "serve")) return srv_main(argc - 1, argv + 1);
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) return usage(stdout);
    signal(SIGPIPE, SIG_IGN);
    const char *connect_to = NULL, *token = getenv("SPINQ_WORKER_TOKEN"), *name = NULL;
    const char *models_dir = "models", *datasets_dir = "data";
    int fd = -1;
    long long only_run = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) return usage(stderr);
        if (!strcmp(a, "--fd")) fd = atoi(argv[++i]);
        else if (!strcmp(a, "--connect")) connect_to = argv[++i];
        else if (!strcmp(a, "--token")) token = argv[++i];
        else if (!strcmp(a, "--models-dir")) models_dir = argv[++i];
        else if (!strcmp(a, "--datasets-dir")) datasets_dir = argv[++i];
        else if (!strcmp(a, "--name")) name = argv[++i];
        else if (!strcmp(a, "--run")) {
            char *end;
            only_run = strtoll(argv[++i], &end, 10);
            if (*end || only_run <= 0) {
                fprintf(stderr, "spinq-worker: --run: expected a run id, got '%s'\n", argv[i]);
                return 2;
            }
        } else return usage(stderr);
    }
    if ((fd < 0) == !connect_to || (only_run && !connect_to)) return usage(stderr);
    if (spq_par_size() > 1 && !only_run) {
        /* P independent workers in one MPI world would mix their collectives */
        if (spq_par_rank() == 0) fprintf(stderr, "spinq-worker: under an MPI launcher, give --run ID\n");
        return 2;
    }
    if (spq_par_rank() != 0) return wk_follow_rank0();
    char default_name[300];
    if (!name) {
        char host[256] = "worker";
        gethostname(host, sizeof host);
        host[sizeof host - 1] = 0;
        snprintf(default_name, sizeof default_name, "%s:%d", host, (int)getpid());
        name = default_name;
    }
    wk_workdir_clean_stale();
    worker wk;
    memset(&wk, 0, sizeof wk);
    wk.name = name;
    pthread_mutex_init(&wk.mu, NULL);
    pthread_cond_init(&wk.cv, NULL);
    wk.remote = fd < 0;
    if (fd >= 0) {
        /* a local worker lives only as long as its daemon */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) return 1;
        int rc = serve(&wk, fd, "", models_dir, datasets_dir);
        return rc == 1 ? 0 : 1;
    }
    if (only_run) return one_run(&wk, connect_to, token ? token : "", (uint64_t)only_run, models_dir, datasets_dir);
    double backoff = 0.5;
    for (;;) {
        spq_err err;
        int s = wk_wire_connect(connect_to, &err);
        if (s >= 0) {
            double t0 = spq_now();
            int rc = serve(&wk, s, token ? token : "", models_dir, datasets_dir);
            if (rc == 2) return 1; /* refused: a bad token will not get better */
            /* rc 1: the daemon is stopping; a remote worker waits for it to come back */
            if (spq_now() - t0 > 30) backoff = 0.5;
        } else {
            wlog(&wk, "%s", err.msg);
        }
        wlog(&wk, "reconnecting in %.1fs", backoff);
        usleep((useconds_t)(backoff * 1e6));
        backoff = backoff * 2 > 30 ? 30 : backoff * 2;
    }
}
