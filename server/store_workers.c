/* store_workers.c - the workers table: every worker connection the daemon
 * has (local processes and remote ones), its state (starting, idle, busy,
 * restarting, gone) and counters, for the API's list. Rows live only as
 * long as the daemon: a new one forgets the last one's (store_workers_reset),
 * while a run keeps the name and host of the worker that ran it. */
#include "server/db.h"
#include "server/store.h"
#include "server/store_internal.h"

int64_t store_worker_add(sqlite3 *db, const char *name, const char *kind, int pid, const char *addr) {
    sqlite3_stmt *st = store_begin_prep(db, "INSERT INTO workers(name, kind, state, pid, addr, connected_at, "
                                            "last_seen) VALUES (?, ?, 'starting', ?, ?, ?, ?)");
    if (!st) return -1;
    double t = db_now();
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    if (pid > 0) sqlite3_bind_int(st, 3, pid);
    else sqlite3_bind_null(st, 3);
    if (addr) sqlite3_bind_text(st, 4, addr, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 4);
    sqlite3_bind_double(st, 5, t);
    sqlite3_bind_double(st, 6, t);
    if (store_step_done(db, st, "add worker")) return store_tx_end(db, -1);
    int64_t id = sqlite3_last_insert_rowid(db);
    return db_commit(db) ? -1 : id;
}

int store_worker_state(sqlite3 *db, int64_t id, const char *state, int64_t run_id) {
    sqlite3_stmt *st = store_begin_prep(db, "UPDATE workers SET state = ?, run_id = ?, last_seen = ? WHERE id = ?");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
    if (run_id > 0) sqlite3_bind_int64(st, 2, run_id);
    else sqlite3_bind_null(st, 2);
    sqlite3_bind_double(st, 3, db_now());
    sqlite3_bind_int64(st, 4, id);
    json_t *e = json_pack("{s:I,s:s}", "worker_id", (json_int_t)id, "state", state);
    if (run_id > 0) json_object_set_new(e, "run", json_integer(run_id));
    return store_step_commit(db, st, "worker state", 0, "worker", e);
}

static int worker_update(sqlite3 *db, const char *sql, int64_t id, int arg) {
    sqlite3_stmt *st = store_begin_prep(db, sql);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, arg);
    return store_step_commit(db, st, "worker update", 0, NULL, NULL);
}

int store_worker_restarted(sqlite3 *db, int64_t id, int pid) {
    return worker_update(db, "UPDATE workers SET restarts = restarts + 1, pid = ?2, state = 'starting' WHERE id = ?1",
                         id, pid);
}

int store_worker_job_done(sqlite3 *db, int64_t id) {
    return worker_update(db, "UPDATE workers SET jobs_done = jobs_done + 1 WHERE id = ?1 AND ?2 = ?2", id, 0);
}

int store_workers_reset(sqlite3 *db) {
    if (db_begin(db)) return -1;
    return store_tx_end(db, db_exec(db, "DELETE FROM workers"));
}

json_t *store_workers_list(sqlite3 *db) {
    static const store_col cols[] = {
        {"id", COL_INT},      {"name", COL_TEXT},      {"kind", COL_TEXT},     {"state", COL_TEXT},
        {"pid", COL_INT},     {"addr", COL_TEXT},      {"run_id", COL_INT},    {"jobs_done", COL_INT},
        {"restarts", COL_INT}, {"connected_at", COL_TIME}, {"last_seen", COL_TIME},
    };
    sqlite3_stmt *st = db_prep(db, "SELECT id, name, kind, state, pid, addr, run_id, jobs_done, restarts, "
                                   "connected_at, last_seen FROM workers WHERE state != 'gone' ORDER BY id");
    return st ? store_rows_array(st, cols, STORE_NCOLS(cols)) : NULL;
}
