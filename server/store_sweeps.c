/* store_sweeps.c - the sweeps table: a base spec and a grid over spec paths,
 * as submitted; api_sweeps.c expands the grid into runs inserted in the same
 * transaction (store_sweep_insert_tx, then store_run_insert_tx per point).
 * A sweep is shown with how many of its runs are in each state. */
#include "server/db.h"
#include "server/store.h"
#include "server/store_internal.h"

int64_t store_sweep_insert_tx(sqlite3 *db, const char *name, const char *base, const char *grid, const char *owner) {
    sqlite3_stmt *st =
        db_prep(db, "INSERT INTO sweeps(name, base, grid, owner, created_at) VALUES (?, ?, ?, ?, ?)");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, base, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, grid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, owner, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, db_now());
    if (store_step_done(db, st, "insert sweep")) return -1;
    return sqlite3_last_insert_rowid(db);
}

/* A sweep as the API shows it: these columns, then runs_by_status. */
#define SWEEP_COLS "id, name, base, grid, owner, created_at"
static const store_col sweep_cols[] = {
    {"id", COL_INT},   {"name", COL_TEXT},  {"base", COL_JSON},
    {"grid", COL_JSON}, {"owner", COL_TEXT}, {"created_at", COL_TIME},
};
enum { SWEEP_ID = 0 }; /* the first of SWEEP_COLS */

static json_t *sweep_row(sqlite3 *db, sqlite3_stmt *st) {
    json_t *o = json_object();
    store_row_members(o, st, 0, sweep_cols, STORE_NCOLS(sweep_cols));
    sqlite3_stmt *c = db_prep(db, "SELECT status, count(*) FROM runs WHERE sweep_id = ? GROUP BY status");
    json_t *counts = json_object();
    if (c) {
        sqlite3_bind_int64(c, 1, sqlite3_column_int64(st, SWEEP_ID));
        store_status_counts(counts, c);
    }
    json_object_set_new(o, "runs_by_status", counts);
    return o;
}

json_t *store_sweep_get(sqlite3 *db, int64_t id) {
    sqlite3_stmt *st = db_prep(db, "SELECT " SWEEP_COLS " FROM sweeps WHERE id = ?");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, id);
    /* sweep_row steps another cached statement, not this one */
    json_t *o = sqlite3_step(st) == SQLITE_ROW ? sweep_row(db, st) : NULL;
    sqlite3_reset(st);
    return o;
}

json_t *store_sweeps_list(sqlite3 *db, int limit, int offset) {
    sqlite3_stmt *st = db_prep(db, "SELECT " SWEEP_COLS " FROM sweeps ORDER BY id DESC LIMIT ? OFFSET ?");
    if (!st) return NULL;
    sqlite3_bind_int(st, 1, limit);
    sqlite3_bind_int(st, 2, offset);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) json_array_append_new(a, sweep_row(db, st));
    sqlite3_reset(st);
    return a;
}
