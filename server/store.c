/* store.c - what the store's files share (store_internal.h): stepping a
 * statement, a column as JSON, rows as objects by their column tables, the
 * data of a status event. The records themselves are in store_*.c, one
 * file per table (store.h's sections name them).
 *
 * Statements come from db_prep's per-connection cache, so the hot reads (a
 * page of runs) are prepared once per thread. Writes follow one pattern:
 * db_begin, the change, db_event for what it means to a watcher, db_commit.
 * On any failure the transaction is rolled back and the error logged. */
#include "server/store.h"

#include "server/db.h"
#include "server/log.h"
#include "server/store_internal.h"

sqlite3_stmt *store_begin_prep(sqlite3 *db, const char *sql) {
    if (db_begin(db)) return NULL;
    sqlite3_stmt *st = db_prep(db, sql);
    if (!st) db_rollback(db);
    return st;
}

int store_step_commit(sqlite3 *db, sqlite3_stmt *st, const char *what, int64_t run_id, const char *type,
                      json_t *data) {
    if (store_step_done(db, st, what)) {
        json_decref(data);
        return store_tx_end(db, -1);
    }
    return store_tx_end(db, type && db_event(db, run_id, type, data) < 0 ? -1 : 0);
}

int store_tx_end(sqlite3 *db, int rc) {
    if (rc < 0) {
        db_rollback(db);
        return -1;
    }
    return db_commit(db);
}

int store_step_done(sqlite3 *db, sqlite3_stmt *st, const char *what) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        log_error("store: %s: %s", what, sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

json_t *store_col_json(sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, i));
    case SQLITE_TEXT: return json_string((const char *)sqlite3_column_text(st, i));
    default: return json_null();
    }
}

static json_t *col_value(sqlite3_stmt *st, int i, col_kind kind) {
    switch (kind) {
    case COL_BOOL: return json_boolean(sqlite3_column_int(st, i));
    case COL_JSON:
    case COL_TAGS: {
        json_t *v = json_loads((const char *)sqlite3_column_text(st, i), 0, NULL);
        return v ? v : kind == COL_TAGS ? json_array() : json_null();
    }
    default: return store_col_json(st, i);
    }
}

void store_row_members(json_t *o, sqlite3_stmt *st, int first, const store_col *cols, int n) {
    for (int k = 0; k < n; k++) json_object_set_new(o, cols[k].key, col_value(st, first + k, cols[k].kind));
}

json_t *store_rows_array(sqlite3_stmt *st, const store_col *cols, int n) {
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *o = json_object();
        store_row_members(o, st, 0, cols, n);
        json_array_append_new(a, o);
    }
    sqlite3_reset(st);
    return a;
}

void store_status_counts(json_t *o, sqlite3_stmt *st) {
    enum { STATUS, N };
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *n = json_integer(sqlite3_column_int64(st, N));
        json_object_set_new(o, (const char *)sqlite3_column_text(st, STATUS), n);
    }
    sqlite3_reset(st);
}

json_t *store_status_event(const char *status, const char *stage, const char *reason) {
    json_t *e = json_pack("{s:s}", "status", status);
    if (stage) json_object_set_new(e, "stage", json_string(stage));
    if (reason) json_object_set_new(e, "reason", json_string(reason));
    return e;
}
