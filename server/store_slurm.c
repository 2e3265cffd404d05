/* store_slurm.c - the runs table's Slurm columns (migrations/004_slurm.sql)
 * for the slurm executor (slurm.c): which runs it has to look at, the job
 * sbatch gave a run, the job's state as squeue reports it, and a job that
 * ended before its worker took the run. Every change appends the run's
 * "slurm" event ({job_id, state, nodes}) in its transaction, so the
 * dashboard follows a job from PENDING to RUNNING to its end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/db.h"
#include "server/store.h"
#include "server/store_internal.h"

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int i) {
    const char *v = (const char *)sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", v ? v : "");
}

store_slurm_run *store_slurm_runs(sqlite3 *db, int *n) {
    enum { ID, STATUS, SPEC, JOB, STATE, ENDED, CLAIMED, CANCEL, ATTEMPTS };
    *n = -1;
    sqlite3_stmt *st = db_prep(db, "SELECT id, status, spec, slurm_job_id, slurm_state, slurm_ended, slurm_claimed, "
                                   "cancel_requested, attempts FROM runs WHERE status IN ('queued', 'running') "
                                   "OR (slurm_job_id IS NOT NULL AND slurm_ended = 0) ORDER BY id");
    if (!st) return NULL;
    int cap = 16, k = 0;
    store_slurm_run *r = spq_calloc((size_t)cap, sizeof *r);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == cap) {
            cap *= 2;
            r = spq_realloc(r, (size_t)cap * sizeof *r);
        }
        store_slurm_run *x = &r[k++];
        memset(x, 0, sizeof *x);
        x->run_id = sqlite3_column_int64(st, ID);
        copy_col(x->status, sizeof x->status, st, STATUS);
        x->spec = spq_strdup((const char *)sqlite3_column_text(st, SPEC));
        copy_col(x->job_id, sizeof x->job_id, st, JOB);
        copy_col(x->state, sizeof x->state, st, STATE);
        x->ended = sqlite3_column_int(st, ENDED);
        x->claimed = sqlite3_column_int(st, CLAIMED);
        x->cancel_requested = sqlite3_column_int(st, CANCEL);
        x->attempts = sqlite3_column_int(st, ATTEMPTS);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        store_slurm_runs_free(r, k);
        return NULL;
    }
    *n = k;
    return r;
}

void store_slurm_runs_free(store_slurm_run *r, int n) {
    for (int i = 0; i < n; i++) free(r[i].spec);
    free(r);
}

static json_t *slurm_event(const char *job_id, const char *state, const char *nodes) {
    json_t *e = json_pack("{s:s,s:s}", "job_id", job_id, "state", state);
    json_object_set_new(e, "nodes", nodes && *nodes ? json_string(nodes) : json_null());
    return e;
}

int store_slurm_submitted(sqlite3 *db, int64_t run_id, const char *job_id) {
    sqlite3_stmt *st = store_begin_prep(db, "UPDATE runs SET slurm_job_id = ?, slurm_state = 'PENDING', "
                                            "slurm_nodes = NULL, slurm_ended = 0, slurm_claimed = 0, "
                                            "slurm_jobs = slurm_jobs + 1 WHERE id = ?");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, job_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, run_id);
    return store_step_commit(db, st, "slurm submitted", run_id, "slurm", slurm_event(job_id, "PENDING", NULL));
}

int store_slurm_state(sqlite3 *db, int64_t run_id, const char *state, const char *nodes, int ended) {
    /* only a change is written (and announced): polls repeat themselves */
    sqlite3_stmt *st = store_begin_prep(db, "SELECT slurm_job_id FROM runs WHERE id = ?1 AND slurm_job_id IS NOT NULL "
                                            "AND (slurm_state IS NOT ?2 OR slurm_nodes IS NOT ?3 OR slurm_ended != ?4)");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_TRANSIENT);
    if (nodes && *nodes) sqlite3_bind_text(st, 3, nodes, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 3);
    sqlite3_bind_int(st, 4, ended);
    char job[32] = "";
    if (sqlite3_step(st) == SQLITE_ROW) copy_col(job, sizeof job, st, 0);
    sqlite3_reset(st);
    if (!job[0]) {
        db_rollback(db);
        return 0;
    }
    st = db_prep(db, "UPDATE runs SET slurm_state = ?2, slurm_nodes = ?3, slurm_ended = ?4 WHERE id = ?1");
    if (!st) return store_tx_end(db, -1);
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, state, -1, SQLITE_TRANSIENT);
    if (nodes && *nodes) sqlite3_bind_text(st, 3, nodes, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 3);
    sqlite3_bind_int(st, 4, ended);
    return store_step_commit(db, st, "slurm state", run_id, "slurm", slurm_event(job, state, nodes));
}

int store_slurm_lost(sqlite3 *db, int64_t run_id, const char *reason, int max_attempts) {
    sqlite3_stmt *st = store_begin_prep(db, "SELECT attempts FROM runs WHERE id = ? AND status = 'queued'");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    int attempts = -1;
    if (sqlite3_step(st) == SQLITE_ROW) attempts = sqlite3_column_int(st, 0) + 1;
    sqlite3_reset(st);
    if (attempts < 0) {
        db_rollback(db);
        return 0;
    }
    char why[600];
    const char *status = attempts >= max_attempts ? "failed" : "queued";
    if (attempts >= max_attempts) snprintf(why, sizeof why, "%s (gave up after %d attempts)", reason, attempts);
    else snprintf(why, sizeof why, "%s", reason);
    st = db_prep(db, "UPDATE runs SET status = ?1, reason = ?2, attempts = ?3, "
                     "finished_at = CASE WHEN ?1 = 'queued' THEN NULL ELSE ?4 END WHERE id = ?5");
    if (!st) return store_tx_end(db, -1);
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, why, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, attempts);
    sqlite3_bind_double(st, 4, db_now());
    sqlite3_bind_int64(st, 5, run_id);
    return store_step_commit(db, st, "slurm job lost", run_id, "status", store_status_event(status, NULL, why));
}
