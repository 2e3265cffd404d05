/* store_events.c - the events table: everything that happened to a run, in
 * commit order, which the SSE streams replay (an event's id is its SSE id).
 * Most events are appended by the change they describe (db_event inside
 * that change's transaction, in the other store_*.c files); progress and
 * log lines are events only. A finished run's metric and progress events
 * are pruned after a while (store_events_prune); the rest stay. */
#include <string.h>

#include "server/db.h"
#include "server/store.h"
#include "server/store_internal.h"

/* One event (data stolen) in a transaction of its own: 0 or -1. */
static int event_alone(sqlite3 *db, int64_t run_id, const char *type, json_t *data) {
    if (db_begin(db)) {
        json_decref(data);
        return -1;
    }
    return store_tx_end(db, db_event(db, run_id, type, data) < 0 ? -1 : 0);
}

int store_progress(sqlite3 *db, int64_t run_id, const char *stage, int64_t done, int64_t total) {
    json_t *e = json_pack("{s:s,s:I,s:I}", "stage", stage, "done", (json_int_t)done, "total", (json_int_t)total);
    return event_alone(db, run_id, "progress", e);
}

int store_log(sqlite3 *db, int64_t run_id, const char *level, const char *text) {
    json_t *e = json_pack("{s:s,s:s%}", "level", level, "text", text, strlen(text));
    if (!e) e = json_pack("{s:s,s:s}", "level", level, "text", "(a log line that was not valid UTF-8)");
    return event_alone(db, run_id, "log", e);
}

int store_events_after(sqlite3 *db, int64_t run_id, int64_t after_id, int limit, store_event_fn fn, void *ud) {
    enum { ID, RUN_ID, TYPE, DATA };
#define EVENTS_SELECT "SELECT id, run_id, type, data FROM events"
    sqlite3_stmt *st = db_prep(db, run_id > 0 ? EVENTS_SELECT " WHERE run_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
                                              : EVENTS_SELECT " WHERE id > ?2 ORDER BY id LIMIT ?3");
#undef EVENTS_SELECT
    if (!st) return -1;
    if (run_id > 0) sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, after_id);
    sqlite3_bind_int(st, 3, limit);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        fn(ud, sqlite3_column_int64(st, ID), sqlite3_column_int64(st, RUN_ID),
           (const char *)sqlite3_column_text(st, TYPE), (const char *)sqlite3_column_text(st, DATA));
        n++;
    }
    sqlite3_reset(st);
    return n;
}

int64_t store_events_max_id(sqlite3 *db) {
    sqlite3_stmt *st = db_prep(db, "SELECT coalesce(max(id), 0) FROM events");
    if (!st) return 0;
    int64_t id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return id;
}

int64_t store_events_prune(sqlite3 *db, double finished_before) {
    sqlite3_stmt *st = db_prep(db, "DELETE FROM events WHERE id IN (SELECT e.id FROM runs r "
                                   "JOIN events e ON e.run_id = r.id AND e.type IN ('metric', 'progress') "
                                   "WHERE r.status IN ('done', 'failed', 'canceled') AND r.finished_at < ? LIMIT 2000)");
    if (!st) return -1;
    int64_t total = 0;
    for (;;) {
        sqlite3_bind_double(st, 1, finished_before);
        if (store_step_done(db, st, "prune events")) return -1;
        int n = sqlite3_changes(db);
        total += n;
        if (n < 2000) return total;
    }
}
