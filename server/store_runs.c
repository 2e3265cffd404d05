/* store_runs.c - the runs table as a record: a run inserted (queued, its
 * normalized spec, tags, a "run" event), read as the API shows it (the
 * columns of RUN_COLUMNS, the spec, the latest metrics), its owner and
 * status, canceled, deleted with everything it owns, and counted by state.
 * Listing runs is store_runs_list.c; a run's life on a worker is
 * store_sched.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/db.h"
#include "server/log.h"
#include "server/store.h"
#include "server/store_internal.h"

#define RUN_COL_ROW(name, kind) {#name, kind},
const store_col store_run_cols[RUN_NCOLS] = {RUN_COLUMNS(RUN_COL_ROW, RUN_COL_ROW)};

int64_t store_run_insert_tx(sqlite3 *db, const spq_jobspec *spec, const char *owner, int64_t sweep_id) {
    char *spec_json = spq_jobspec_to_json(spec);
    json_t *tags = json_array();
    for (int i = 0; i < spec->n_tags; i++) json_array_append_new(tags, json_string(spec->tags[i]));
    char *tags_json = json_dumps(tags, JSON_COMPACT);
    json_decref(tags);
    sqlite3_stmt *st = db_prep(db, "INSERT INTO runs(name, model, spec, tags, status, owner, sweep_id, created_at) "
                                   "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)");
    int64_t id = -1;
    if (st) {
        sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, spec->model, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, spec_json, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, tags_json, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, owner, -1, SQLITE_STATIC);
        if (sweep_id > 0) sqlite3_bind_int64(st, 6, sweep_id);
        else sqlite3_bind_null(st, 6);
        sqlite3_bind_double(st, 7, db_now());
        if (store_step_done(db, st, "insert run") == 0) id = sqlite3_last_insert_rowid(db);
    }
    if (id > 0) {
        sqlite3_stmt *t = db_prep(db, "INSERT OR IGNORE INTO run_tags(run_id, tag) VALUES (?, ?)");
        for (int i = 0; t && i < spec->n_tags; i++) {
            sqlite3_bind_int64(t, 1, id);
            sqlite3_bind_text(t, 2, spec->tags[i], -1, SQLITE_STATIC);
            if (store_step_done(db, t, "insert tag")) id = -1;
        }
    }
    if (id > 0) {
        json_t *e = json_pack("{s:s,s:s,s:s,s:s}", "status", "queued", "name", spec->name, "model", spec->model,
                              "owner", owner);
        if (sweep_id > 0) json_object_set_new(e, "sweep_id", json_integer(sweep_id));
        if (db_event(db, id, "run", e) < 0) id = -1;
    }
    free(spec_json);
    free(tags_json);
    return id;
}

int64_t store_run_create(sqlite3 *db, const spq_jobspec *spec, const char *owner, int64_t sweep_id) {
    if (db_begin(db)) return STORE_ERROR;
    int64_t id = store_run_insert_tx(db, spec, owner, sweep_id);
    return store_tx_end(db, id < 0 ? -1 : 0) ? STORE_ERROR : id;
}

json_t *store_run_get(sqlite3 *db, int64_t id, int with_spec, store_rc *rc) {
    static const store_col spec_col[] = {{"spec", COL_JSON}}; /* after RUN_COLS */
    sqlite3_stmt *st = db_prep(db, "SELECT " RUN_COLS ", r.spec FROM runs r WHERE r.id = ?");
    *rc = STORE_ERROR;
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, id);
    json_t *o = NULL;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        o = json_object();
        store_row_members(o, st, 0, store_run_cols, RUN_NCOLS);
        if (with_spec) store_row_members(o, st, RUN_NCOLS, spec_col, 1);
        *rc = STORE_OK;
    } else if (s == SQLITE_DONE) {
        *rc = STORE_NOT_FOUND;
    } else {
        log_error("store: get run: %s", sqlite3_errmsg(db));
    }
    sqlite3_reset(st);
    if (o) {
        json_t *m = store_metrics_latest(db, id);
        json_object_set_new(o, "metrics", m ? m : json_object());
    }
    return o;
}

store_rc store_run_owner(sqlite3 *db, int64_t id, char *owner, size_t cap, char *status) {
    enum { OWNER, STATUS };
    sqlite3_stmt *st = db_prep(db, "SELECT owner, status FROM runs WHERE id = ?");
    if (!st) return STORE_ERROR;
    sqlite3_bind_int64(st, 1, id);
    store_rc rc = STORE_NOT_FOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(owner, cap, "%s", sqlite3_column_text(st, OWNER));
        snprintf(status, 16, "%s", sqlite3_column_text(st, STATUS));
        rc = STORE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

/* Begins a write transaction and reads the run's status (16 bytes):
 * STORE_OK with the transaction open, or why not with it closed. */
static store_rc begin_with_status(sqlite3 *db, int64_t id, char *status) {
    if (db_begin(db)) return STORE_ERROR;
    char owner[64];
    store_rc rc = store_run_owner(db, id, owner, sizeof owner, status);
    if (rc != STORE_OK) db_rollback(db);
    return rc;
}

store_rc store_run_cancel(sqlite3 *db, int64_t id, int *now_canceled) {
    *now_canceled = 0;
    char status[16];
    store_rc found = begin_with_status(db, id, status);
    if (found != STORE_OK) return found;
    sqlite3_stmt *st;
    if (!strcmp(status, "queued")) {
        st = db_prep(db, "UPDATE runs SET status = 'canceled', finished_at = ?, cancel_requested = 1 WHERE id = ?");
        if (!st) return store_tx_end(db, -1);
        sqlite3_bind_double(st, 1, db_now());
        sqlite3_bind_int64(st, 2, id);
        int rc = store_step_commit(db, st, "cancel run", id, "status", store_status_event("canceled", NULL, NULL));
        *now_canceled = !rc;
        return rc ? STORE_ERROR : STORE_OK;
    }
    if (!strcmp(status, "running")) {
        st = db_prep(db, "UPDATE runs SET cancel_requested = 1 WHERE id = ?");
        if (!st) return store_tx_end(db, -1);
        sqlite3_bind_int64(st, 1, id);
        json_t *e = json_pack("{s:s,s:s}", "level", "info", "text", "cancel requested");
        return store_step_commit(db, st, "request cancel", id, "log", e) ? STORE_ERROR : STORE_OK;
    }
    db_rollback(db);
    return STORE_CONFLICT;
}

store_rc store_run_delete(sqlite3 *db, int64_t id, const char *data_dir) {
    char status[16];
    store_rc found = begin_with_status(db, id, status);
    if (found != STORE_OK) return found;
    if (!strcmp(status, "running")) {
        db_rollback(db);
        return STORE_CONFLICT;
    }
    /* artifact files: remembered now, removed once the rows are gone */
    char **paths = NULL;
    int n_paths = 0;
    sqlite3_stmt *st = db_prep(db, "SELECT path FROM artifacts WHERE run_id = ?");
    if (!st) {
        db_rollback(db);
        return STORE_ERROR;
    }
    sqlite3_bind_int64(st, 1, id);
    while (sqlite3_step(st) == SQLITE_ROW) {
        paths = spq_realloc(paths, (n_paths + 1) * sizeof *paths);
        paths[n_paths++] = spq_path_join(data_dir, (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_reset(st);
    static const char *const dels[] = {"DELETE FROM events WHERE run_id = ?", "DELETE FROM runs WHERE id = ?"};
    int bad = 0;
    for (int i = 0; i < 2 && !bad; i++) {
        st = db_prep(db, dels[i]);
        if (!st) bad = 1;
        else {
            sqlite3_bind_int64(st, 1, id);
            bad = store_step_done(db, st, dels[i]);
        }
    }
    if (!bad && db_event(db, id, "deleted", json_object()) < 0) bad = 1;
    int failed = store_tx_end(db, bad ? -1 : 0);
    for (int i = 0; i < n_paths; i++) {
        if (!failed) unlink(paths[i]);
        free(paths[i]);
    }
    free(paths);
    return failed ? STORE_ERROR : STORE_OK;
}

json_t *store_run_counts(sqlite3 *db) {
    json_t *o = json_object();
    sqlite3_stmt *st = db_prep(db, "SELECT status, n FROM run_counts ORDER BY CASE status WHEN 'queued' THEN 0 "
                                   "WHEN 'running' THEN 1 WHEN 'done' THEN 2 WHEN 'failed' THEN 3 ELSE 4 END");
    if (st) store_status_counts(o, st);
    return o;
}
