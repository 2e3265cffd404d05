/* store.h - spinqd's records: runs, metrics, checkpoints, artifacts, sweeps,
 * workers, tokens, events. Every function takes the calling thread's
 * connection (db_get()); every state change is one transaction (db_begin ..
 * db_commit) that also appends the events it causes, so the SSE streams see
 * exactly what was committed. Functions named *_tx expect the caller to hold
 * the transaction (to group several changes, e.g. a sweep's runs).
 *
 * Run states: queued -> running -> done | failed | canceled; a running run
 * whose worker went away goes back to queued (resumable) until its attempts
 * are used up. Reads return jansson objects the API serves as they are.
 *
 * One file per table (each section below names it); store.c and
 * store_internal.h hold what they share. */
#ifndef SPQD_STORE_H
#define SPQD_STORE_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#include "common/job/jobspec.h"

typedef enum { STORE_OK = 0, STORE_ERROR = -1, STORE_NOT_FOUND = -2, STORE_CONFLICT = -3 } store_rc;

/* ---- runs (store_runs.c) ---- */

int64_t store_run_insert_tx(sqlite3 *db, const spq_jobspec *spec, const char *owner, int64_t sweep_id);
/* One run in its own transaction; its id or a store_rc. */
int64_t store_run_create(sqlite3 *db, const spq_jobspec *spec, const char *owner, int64_t sweep_id);
/* The run as the API shows it (with its spec when with_spec); NULL when there
 * is none (or on error: *rc says which). */
json_t *store_run_get(sqlite3 *db, int64_t id, int with_spec, store_rc *rc);
/* owner (cap bytes) and status (16 bytes) of a run. */
store_rc store_run_owner(sqlite3 *db, int64_t id, char *owner, size_t cap, char *status);

/* Cancel: a queued run becomes canceled at once (*now_canceled = 1); a
 * running run gets cancel_requested (the scheduler tells its worker);
 * STORE_CONFLICT when it already finished. */
store_rc store_run_cancel(sqlite3 *db, int64_t id, int *now_canceled);
/* Deletes a run that is not running and everything it owns; the artifact
 * files under data_dir too. STORE_CONFLICT while it runs. */
store_rc store_run_delete(sqlite3 *db, int64_t id, const char *data_dir);

/* {"queued": n, "running": n, ...} */
json_t *store_run_counts(sqlite3 *db);

/* ---- listing runs (store_runs_list.c) ---- */

typedef struct {
    const char *status;  /* NULL: any */
    const char *model;
    const char *tag;
    const char *text;    /* substring of name or model */
    int64_t sweep_id;    /* 0: any */
    const char *order;   /* column (id, created_at, name, status, started_at, finished_at, model, owner) or metric key */
    int order_desc;
    int limit, offset;
    int64_t before_id;   /* > 0: keyset page of the newest-first order, runs with id < before_id */
} store_run_filter;
/* 1 when order (without its '-') is a column or a metric key some run
 * has, 0 when not, -1 on a store error. */
int store_order_known(sqlite3 *db, const char *order);
/* {"runs": [...], "total": n, "limit": l, "offset": o, "next_before_id": id|null}
 * as JSON text (malloc'd); NULL on a store error. next_before_id is set in
 * the newest-first order when the page is full: the cursor of the next page,
 * which costs the same however deep it is (offset pages scan what they skip). */
char *store_runs_list(sqlite3 *db, const store_run_filter *f);

/* ---- the scheduler's side (store_sched.c) ---- */

typedef struct {
    int64_t run_id;
    int attempt;         /* 1 on the first try */
    char *spec;          /* normalized spec JSON */
    int64_t ckpt_step;   /* -1: no checkpoint, start from scratch */
    void *ckpt;
    size_t ckpt_len;
} store_job;
void store_job_free(store_job *j);
/* Claims the oldest queued run (only_run > 0: that run, if it is queued)
 * for worker_id (status running, attempts+1) with its latest checkpoint;
 * the worker's name and host stay on the run (worker ids live only as long
 * as the daemon). 1 when a job was claimed, 0 when none, -1. */
int store_claim_next(sqlite3 *db, int64_t worker_id, const char *worker_name, const char *worker_host,
                     int64_t only_run, store_job *job);
int store_run_stage(sqlite3 *db, int64_t run_id, const char *stage);
/* Final states: "done", "failed" (reason), "canceled". */
int store_run_finish(sqlite3 *db, int64_t run_id, const char *status, const char *reason);
/* The worker of a running run went away: back to queued with the reason, or
 * failed when max_attempts are used up. count_attempt 0 gives the attempt
 * back (a graceful stop is not the run's failure). Returns the new status
 * ("queued", "failed") via *now_failed. */
int store_run_interrupted(sqlite3 *db, int64_t run_id, const char *reason, int max_attempts, int count_attempt,
                          int *now_failed);
/* A worker that finished run_id (its attempt) but lost the connection
 * before it delivered the outputs takes the run back: only while the run
 * waits in the queue after that same attempt (attempts is attempt, or one
 * less when the drop gave the attempt back). 1 when taken (running again on
 * worker_id, attempts = attempt), 0 when not (*why says why), -1. */
int store_run_reclaim(sqlite3 *db, int64_t run_id, int attempt, int64_t worker_id, const char *worker_name,
                      const char *worker_host, char *why, size_t why_cap);
/* At daemon start: runs left running by a previous daemon go back to queued.
 * Returns how many, or -1. */
int store_recover(sqlite3 *db);
/* Ids of running runs with cancel_requested (n at most cap). */
int store_cancel_requests(sqlite3 *db, int64_t *ids, int cap);

/* ---- Slurm jobs of runs (store_slurm.c) ---- */

/* What the slurm executor looks at: one entry per run that is queued or
 * running, or whose job has not ended. */
typedef struct {
    int64_t run_id;
    char status[16];
    char *spec;            /* normalized spec JSON */
    char job_id[32];       /* "" when none */
    char state[32];        /* Slurm's, as last seen */
    int ended, claimed, cancel_requested, attempts;
} store_slurm_run;
/* The entries (malloc'd array, *n of them), or NULL with *n -1 on error. */
store_slurm_run *store_slurm_runs(sqlite3 *db, int *n);
void store_slurm_runs_free(store_slurm_run *r, int n);
/* sbatch gave run_id the job job_id (state PENDING). */
int store_slurm_submitted(sqlite3 *db, int64_t run_id, const char *job_id);
/* Slurm's state and nodes of run_id's job (ended: the job is over). */
int store_slurm_state(sqlite3 *db, int64_t run_id, const char *state, const char *nodes, int ended);
/* The job of queued run_id ended before its worker took the run: that is
 * an attempt (failed with the reason after max_attempts); the next poll
 * submits a new job for a run still queued. */
int store_slurm_lost(sqlite3 *db, int64_t run_id, const char *reason, int max_attempts);

/* ---- metrics (store_metrics.c) ---- */

int store_metric(sqlite3 *db, int64_t run_id, const char *key, int64_t step, double value);
/* {"key": {"step": s, "value": v}, ...} */
json_t *store_metrics_latest(sqlite3 *db, int64_t run_id);
/* [[step, value], ...] with step > since_step, at most limit points. */
json_t *store_metric_history(sqlite3 *db, int64_t run_id, const char *key, int64_t since_step, int limit);

/* ---- checkpoints and artifacts (store_outputs.c) ---- */

/* Stores a rotation checkpoint; keep > 0 keeps only the run's newest keep
 * checkpoints (the newest is all a resumed run needs). */
int store_checkpoint(sqlite3 *db, int64_t run_id, int64_t step, const void *data, size_t len, int keep);
int store_artifact(sqlite3 *db, int64_t run_id, const char *name, const char *relpath, int64_t size,
                   const char *sha256);

json_t *store_checkpoints_list(sqlite3 *db, int64_t run_id);
/* step -1: the latest. STORE_NOT_FOUND when there is none. */
store_rc store_checkpoint_get(sqlite3 *db, int64_t run_id, int64_t step, void **data, size_t *len, int64_t *got_step);
json_t *store_artifacts_list(sqlite3 *db, int64_t run_id);
store_rc store_artifact_get(sqlite3 *db, int64_t run_id, const char *name, char **relpath, int64_t *size,
                            char sha256[65]);

/* ---- events (store_events.c) ---- */

int store_progress(sqlite3 *db, int64_t run_id, const char *stage, int64_t done, int64_t total);
int store_log(sqlite3 *db, int64_t run_id, const char *level, const char *text);

typedef void (*store_event_fn)(void *ud, int64_t id, int64_t run_id, const char *type, const char *json);
/* Events with id > after_id (of run_id, or all when run_id is 0), in order,
 * at most limit. Returns how many or -1. */
int store_events_after(sqlite3 *db, int64_t run_id, int64_t after_id, int limit, store_event_fn fn, void *ud);

/* The id of the newest event (0 when there is none). */
int64_t store_events_max_id(sqlite3 *db);
/* Deletes the metric and progress events of runs that finished before
 * `finished_before` (their metrics stay in the metrics table; status, log,
 * checkpoint and artifact events stay). Works in batches so that writers
 * wait at most one batch. Returns how many or -1. */
int64_t store_events_prune(sqlite3 *db, double finished_before);

/* ---- sweeps (store_sweeps.c) ---- */

int64_t store_sweep_insert_tx(sqlite3 *db, const char *name, const char *base, const char *grid, const char *owner);
json_t *store_sweep_get(sqlite3 *db, int64_t id);
json_t *store_sweeps_list(sqlite3 *db, int limit, int offset);

/* ---- workers (store_workers.c) ---- */

int64_t store_worker_add(sqlite3 *db, const char *name, const char *kind, int pid, const char *addr);
int store_worker_state(sqlite3 *db, int64_t id, const char *state, int64_t run_id);
int store_worker_restarted(sqlite3 *db, int64_t id, int pid);
int store_worker_job_done(sqlite3 *db, int64_t id);
/* Forget workers of a previous daemon. */
int store_workers_reset(sqlite3 *db);
json_t *store_workers_list(sqlite3 *db);

/* ---- tokens (store_tokens.c) ---- */

store_rc store_token_create(sqlite3 *db, const char *name, const char *role, const char *hash_hex);
/* 1 and name/role (64 bytes each) when hash_hex is a live token, 0 when not, -1. */
int store_token_lookup(sqlite3 *db, const char *hash_hex, char *name, char *role);
int store_token_count(sqlite3 *db);
json_t *store_tokens_list(sqlite3 *db);
store_rc store_token_revoke(sqlite3 *db, const char *name);

#endif
