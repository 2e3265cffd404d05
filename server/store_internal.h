/* store_internal.h - what the store's files share (store.c has them); not
 * for the rest of the daemon, which sees only store.h.
 *
 * The store is split by table: store_runs.c (a run's record),
 * store_runs_list.c (listing runs), store_sched.c (claims, attempts and a
 * run's life on a worker), store_metrics.c, store_outputs.c (checkpoints
 * and artifacts), store_events.c (the event log the streams read),
 * store_sweeps.c, store_workers.c, store_tokens.c.
 *
 * Rows are read by named columns: a SELECT's column list stands next to an
 * enum of its indexes, or, where a row becomes a JSON object as it is, next
 * to a table of store_col (the key each column is shown under and how). */
#ifndef SPQD_STORE_INTERNAL_H
#define SPQD_STORE_INTERNAL_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

/* How a column is shown in JSON. */
typedef enum {
    COL_INT,  /* an integer (or null) */
    COL_TEXT, /* a string (or null) */
    COL_TIME, /* seconds since the epoch, a real (or null) */
    COL_BOOL, /* an integer shown as true or false */
    COL_JSON, /* JSON text we stored; null when it does not parse */
    COL_TAGS, /* a JSON array we stored; [] when it does not parse */
} col_kind;

typedef struct {
    const char *key; /* the JSON key, which is also the column's name */
    col_kind kind;
} store_col;

/* The columns of a run the API shows, in SELECT order (RUN_COLS), with how
 * each is shown: one list makes the SQL, the column table and the reads. */
#define RUN_COLUMNS(FIRST, NEXT)                                                                                       \
    FIRST(id, COL_INT)                                                                                                 \
    NEXT(name, COL_TEXT) NEXT(model, COL_TEXT) NEXT(tags, COL_TAGS) NEXT(status, COL_TEXT) NEXT(stage, COL_TEXT)       \
    NEXT(reason, COL_TEXT) NEXT(owner, COL_TEXT) NEXT(sweep_id, COL_INT) NEXT(worker_id, COL_INT)                      \
    NEXT(attempts, COL_INT) NEXT(cancel_requested, COL_BOOL) NEXT(created_at, COL_TIME) NEXT(started_at, COL_TIME)     \
    NEXT(finished_at, COL_TIME) NEXT(worker_name, COL_TEXT) NEXT(worker_host, COL_TEXT)                             \
    NEXT(slurm_job_id, COL_TEXT) NEXT(slurm_state, COL_TEXT) NEXT(slurm_nodes, COL_TEXT) NEXT(slurm_jobs, COL_INT)
#define RUN_COL_SQL_FIRST(name, kind) "r." #name
#define RUN_COL_SQL_NEXT(name, kind) ", r." #name
/* "r.id, r.name, ...": the columns of a runs row aliased r */
#define RUN_COLS RUN_COLUMNS(RUN_COL_SQL_FIRST, RUN_COL_SQL_NEXT)
#define RUN_COL_INDEX(name, kind) RUN_COL_##name,
/* RUN_COL_id, RUN_COL_name, ...: their indexes in a row; RUN_NCOLS of them */
enum { RUN_COLUMNS(RUN_COL_INDEX, RUN_COL_INDEX) RUN_NCOLS };
/* the same columns as a table (store_runs.c) */
extern const store_col store_run_cols[RUN_NCOLS];

/* Begins a write transaction and prepares sql in it: the statement, or
 * NULL when either failed (then nothing is left open). */
sqlite3_stmt *store_begin_prep(sqlite3 *db, const char *sql);
/* In the caller's write transaction: steps st (a change), appends the event
 * it causes (data stolen; type NULL: none) and commits; on any failure it
 * rolls back. 0 or -1. */
int store_step_commit(sqlite3 *db, sqlite3_stmt *st, const char *what, int64_t run_id, const char *type,
                      json_t *data);
/* Ends the caller's write transaction: rolls it back when rc < 0 (and
 * returns -1), else commits it (0, or -1 when the commit failed). */
int store_tx_end(sqlite3 *db, int rc);
/* Steps a statement that returns no rows and resets it: 0, or -1 (logged
 * with what). */
int store_step_done(sqlite3 *db, sqlite3_stmt *st, const char *what);
/* Column i of the current row as stored: integer, real, string or null. */
json_t *store_col_json(sqlite3_stmt *st, int i);
/* Sets o's members from the current row: column first + k as cols[k]. */
void store_row_members(json_t *o, sqlite3_stmt *st, int first, const store_col *cols, int n);
/* Every row st still yields as an object (cols as above, from column 0), in
 * an array; st is reset. */
json_t *store_rows_array(sqlite3_stmt *st, const store_col *cols, int n);
/* The length of a column table (an array, not a pointer). */
#define STORE_NCOLS(cols) ((int)(sizeof(cols) / sizeof((cols)[0])))

/* Sets o's members from the rows (status, n) st yields: {"queued": n, ...};
 * st is reset. */
void store_status_counts(json_t *o, sqlite3_stmt *st);

/* The data of a "status" event. */
json_t *store_status_event(const char *status, const char *stage, const char *reason);

#endif
