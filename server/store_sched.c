/* store_sched.c - a run's life on a worker, the scheduler's side of the
 * runs table: claiming the oldest queued run (attempts + 1, with its latest
 * checkpoint), giving a claim back, stages, the final state, an interrupted
 * run going back to the queue or failing after max_attempts, recovery at
 * start, and the cancel flags the loop passes on. Every change appends the
 * run's "status" event in its transaction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/db.h"
#include "server/store.h"
#include "server/store_internal.h"

void store_job_free(store_job *j) {
    free(j->spec);
    free(j->ckpt);
    memset(j, 0, sizeof *j);
}

int store_claim_next(sqlite3 *db, int64_t worker_id, const char *worker_name, const char *worker_host,
                     int64_t only_run, store_job *job) {
    memset(job, 0, sizeof *job);
    job->ckpt_step = -1;
    if (db_begin(db)) return -1;
    enum { ID, SPEC, ATTEMPTS };
    sqlite3_stmt *st = db_prep(db, "SELECT id, spec, attempts FROM runs WHERE status = 'queued' AND (?1 = 0 OR id = ?1) "
                                   "ORDER BY id LIMIT 1");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, only_run);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        job->run_id = sqlite3_column_int64(st, ID);
        job->spec = spq_strdup((const char *)sqlite3_column_text(st, SPEC));
        job->attempt = sqlite3_column_int(st, ATTEMPTS) + 1;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        db_rollback(db);
        return 0;
    }
    if (rc != SQLITE_ROW) goto fail;
    st = db_prep(db, "UPDATE runs SET status = 'running', worker_id = ?, attempts = attempts + 1, "
                     "started_at = coalesce(started_at, ?), reason = NULL, worker_name = ?, worker_host = ?, "
                     "slurm_claimed = 1 WHERE id = ?");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, worker_id);
    sqlite3_bind_double(st, 2, db_now());
    sqlite3_bind_text(st, 3, worker_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, worker_host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, job->run_id);
    if (store_step_done(db, st, "claim run")) goto fail;
    /* the latest checkpoint, when there is one (ckpt_step stays -1 when not) */
    if (store_checkpoint_get(db, job->run_id, -1, &job->ckpt, &job->ckpt_len, &job->ckpt_step) == STORE_ERROR)
        goto fail;
    json_t *e = json_pack("{s:s,s:I,s:s,s:s,s:i}", "status", "running", "worker_id", (json_int_t)worker_id,
                          "worker_name", worker_name, "worker_host", worker_host, "attempt", job->attempt);
    if (job->ckpt_step >= 0) json_object_set_new(e, "resume_step", json_integer(job->ckpt_step));
    if (db_event(db, job->run_id, "status", e) < 0) goto fail;
    if (db_commit(db)) {
        store_job_free(job);
        return -1;
    }
    return 1;
fail:
    db_rollback(db);
    store_job_free(job);
    return -1;
}

/* Binds ?1 text (NULL: null) and ?2 the run. */
static void bind_text_run(sqlite3_stmt *st, const char *text, int64_t run_id) {
    if (text) sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 1);
    sqlite3_bind_int64(st, 2, run_id);
}

/* In the caller's transaction: changes run_id with sql (?1 text, ?2 the
 * run) and appends the status event (stolen). 0 or -1. */
static int change_run(sqlite3 *db, const char *sql, int64_t run_id, const char *text, const char *what, json_t *event) {
    sqlite3_stmt *st = db_prep(db, sql);
    if (st) bind_text_run(st, text, run_id);
    if (!st || store_step_done(db, st, what)) {
        json_decref(event);
        return -1;
    }
    return db_event(db, run_id, "status", event) < 0 ? -1 : 0;
}

/* change_run in a transaction of its own. */
static int change_run_alone(sqlite3 *db, const char *sql, int64_t run_id, const char *text, const char *what,
                            json_t *event) {
    sqlite3_stmt *st = store_begin_prep(db, sql);
    if (!st) {
        json_decref(event);
        return -1;
    }
    bind_text_run(st, text, run_id);
    return store_step_commit(db, st, what, run_id, "status", event);
}

int store_run_stage(sqlite3 *db, int64_t run_id, const char *stage) {
    return change_run_alone(db, "UPDATE runs SET stage = ?1 WHERE id = ?2", run_id, stage, "stage",
                            store_status_event("running", stage, NULL));
}

int store_run_finish(sqlite3 *db, int64_t run_id, const char *status, const char *reason) {
    /* the worker stays on the run: who ran it is part of its record */
    sqlite3_stmt *st = store_begin_prep(db, "UPDATE runs SET status = ?, reason = ?, finished_at = ?, "
                                            "stage = CASE WHEN ? = 'done' THEN 'done' ELSE stage END WHERE id = ?");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    if (reason) sqlite3_bind_text(st, 2, reason, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 2);
    sqlite3_bind_double(st, 3, db_now());
    sqlite3_bind_text(st, 4, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, run_id);
    return store_step_commit(db, st, "finish run", run_id, "status", store_status_event(status, NULL, reason));
}

int store_run_interrupted(sqlite3 *db, int64_t run_id, const char *reason, int max_attempts, int count_attempt,
                          int *now_failed) {
    *now_failed = 0;
    enum { ATTEMPTS, CANCEL_REQUESTED };
    sqlite3_stmt *st =
        store_begin_prep(db, "SELECT attempts, cancel_requested FROM runs WHERE id = ? AND status = 'running'");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int attempts = -1, cancel = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        attempts = sqlite3_column_int(st, ATTEMPTS);
        cancel = sqlite3_column_int(st, CANCEL_REQUESTED);
    }
    sqlite3_reset(st);
    if (attempts < 0) { /* not running any more: nothing to do */
        db_rollback(db);
        return 0;
    }
    if (!count_attempt) attempts--;
    char why[600];
    const char *status;
    if (cancel) {
        status = "canceled";
        snprintf(why, sizeof why, "%s", reason);
    } else if (attempts >= max_attempts) {
        status = "failed";
        snprintf(why, sizeof why, "%s (gave up after %d attempts)", reason, attempts);
        *now_failed = 1;
    } else {
        status = "queued";
        snprintf(why, sizeof why, "%s", reason);
    }
    st = db_prep(db, "UPDATE runs SET status = ?1, reason = ?2, attempts = ?3, "
                     "worker_id = CASE WHEN ?4 = 'queued' THEN NULL ELSE worker_id END, "
                     "finished_at = CASE WHEN ?4 = 'queued' THEN NULL ELSE ?5 END WHERE id = ?6");
    if (!st) return store_tx_end(db, -1);
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, why, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, attempts);
    sqlite3_bind_text(st, 4, status, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, db_now());
    sqlite3_bind_int64(st, 6, run_id);
    return store_step_commit(db, st, "interrupt run", run_id, "status", store_status_event(status, NULL, why));
}

int store_run_reclaim(sqlite3 *db, int64_t run_id, int attempt, int64_t worker_id, const char *worker_name,
                      const char *worker_host, char *why, size_t why_cap) {
    enum { STATUS, ATTEMPTS };
    sqlite3_stmt *st = store_begin_prep(db, "SELECT status, attempts FROM runs WHERE id = ?");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    char status[32] = "";
    int attempts = -1;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(st, STATUS));
        attempts = sqlite3_column_int(st, ATTEMPTS);
    }
    sqlite3_reset(st);
    if (attempts < 0) snprintf(why, why_cap, "run %lld does not exist", (long long)run_id);
    else if (strcmp(status, "queued"))
        snprintf(why, why_cap, "run %lld is %s", (long long)run_id, status);
    else if (attempts != attempt && attempts != attempt - 1)
        snprintf(why, why_cap, "run %lld is at attempt %d, not %d", (long long)run_id, attempts, attempt);
    else why[0] = 0;
    if (why[0]) {
        db_rollback(db);
        return 0;
    }
    st = db_prep(db, "UPDATE runs SET status = 'running', worker_id = ?, attempts = ?, reason = NULL, "
                     "worker_name = ?, worker_host = ? WHERE id = ?");
    if (!st) return store_tx_end(db, -1);
    sqlite3_bind_int64(st, 1, worker_id);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_text(st, 3, worker_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, worker_host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, run_id);
    json_t *e = json_pack("{s:s,s:I,s:s,s:s,s:i,s:b}", "status", "running", "worker_id", (json_int_t)worker_id,
                          "worker_name", worker_name, "worker_host", worker_host, "attempt", attempt, "delivering", 1);
    return store_step_commit(db, st, "reclaim run", run_id, "status", e) ? -1 : 1;
}

/* The ids sql selects (at most cap): how many, or -1. */
static int run_ids(sqlite3 *db, const char *sql, int64_t *ids, int cap) {
    sqlite3_stmt *st = db_prep(db, sql);
    if (!st) return -1;
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}

int store_recover(sqlite3 *db) {
    static const char why[] = "the daemon stopped while it ran";
    if (db_begin(db)) return -1;
    int64_t ids[1024];
    int n = run_ids(db, "SELECT id FROM runs WHERE status = 'running' ORDER BY id", ids, 1024);
    int bad = n < 0;
    for (int i = 0; i < n && !bad; i++)
        bad = change_run(db, "UPDATE runs SET status = 'queued', worker_id = NULL, reason = ?1 WHERE id = ?2", ids[i],
                         why, "recover", store_status_event("queued", NULL, why));
    return store_tx_end(db, bad ? -1 : 0) ? -1 : n;
}

int store_cancel_requests(sqlite3 *db, int64_t *ids, int cap) {
    return run_ids(db, "SELECT id FROM runs WHERE status = 'running' AND cancel_requested = 1", ids, cap);
}
