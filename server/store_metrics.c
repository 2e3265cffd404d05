/* store_metrics.c - the metrics tables: every point a worker reported
 * (metrics: loss and lr per step, scores) and the latest value of each key
 * of a run (metrics_latest: what a run shows, and what listings sort by
 * through its (key, value) index). A point is also a "metric" event. */
#include "server/db.h"
#include "server/store.h"
#include "server/store_internal.h"

json_t *store_metrics_latest(sqlite3 *db, int64_t run_id) {
    enum { KEY, STEP, VALUE };
    sqlite3_stmt *st = db_prep(db, "SELECT key, step, value FROM metrics_latest WHERE run_id = ? ORDER BY key");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, run_id);
    json_t *m = json_object();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(m, (const char *)sqlite3_column_text(st, KEY),
                            json_pack("{s:I,s:o}", "step", (json_int_t)sqlite3_column_int64(st, STEP), "value",
                                      store_col_json(st, VALUE)));
    sqlite3_reset(st);
    return m;
}

/* Binds a point: ?1 the run, ?2 key, ?3 step, ?4 value. */
static void bind_point(sqlite3_stmt *st, int64_t run_id, const char *key, int64_t step, double value) {
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, step);
    sqlite3_bind_double(st, 4, value);
}

int store_metric(sqlite3 *db, int64_t run_id, const char *key, int64_t step, double value) {
    sqlite3_stmt *st =
        store_begin_prep(db, "INSERT OR REPLACE INTO metrics(run_id, key, step, value, t) VALUES (?, ?, ?, ?, ?)");
    if (!st) return -1;
    bind_point(st, run_id, key, step, value);
    sqlite3_bind_double(st, 5, db_now());
    if (store_step_done(db, st, "metric")) return store_tx_end(db, -1);
    st = db_prep(db, "INSERT INTO metrics_latest(run_id, key, step, value) VALUES (?1, ?2, ?3, ?4) "
                     "ON CONFLICT(run_id, key) DO UPDATE SET step = ?3, value = ?4 WHERE ?3 >= step");
    if (!st) return store_tx_end(db, -1);
    bind_point(st, run_id, key, step, value);
    json_t *e = json_pack("{s:s,s:I,s:f}", "key", key, "step", (json_int_t)step, "value", value);
    if (!e) e = json_pack("{s:s,s:I,s:n}", "key", key, "step", (json_int_t)step, "value"); /* NaN, inf */
    return store_step_commit(db, st, "metric latest", run_id, "metric", e);
}

json_t *store_metric_history(sqlite3 *db, int64_t run_id, const char *key, int64_t since_step, int limit) {
    enum { STEP, VALUE };
    sqlite3_stmt *st = db_prep(db, "SELECT step, value FROM metrics WHERE run_id = ? AND key = ? AND step > ? "
                                   "ORDER BY step LIMIT ?");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, since_step);
    sqlite3_bind_int(st, 4, limit);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_int_t step = sqlite3_column_int64(st, STEP);
        json_array_append_new(a, json_pack("[I,o]", step, store_col_json(st, VALUE)));
    }
    sqlite3_reset(st);
    return a;
}
