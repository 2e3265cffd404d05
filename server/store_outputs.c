/* store_outputs.c - what a run leaves behind: rotation checkpoints (the
 * bytes, in the checkpoints table: what a resumed run starts from) and
 * artifacts (files under data_dir/artifacts/RUN, recorded with size and
 * sha256 once wconn.c has them whole). Each write is also an event. */
#include <stdio.h>
#include <string.h>

#include "common/base/sha256.h"
#include "server/db.h"
#include "server/store.h"
#include "server/store_internal.h"

int store_checkpoint(sqlite3 *db, int64_t run_id, int64_t step, const void *data, size_t len, int keep) {
    char sha[65];
    spq_sha256_hex(sha, data, len);
    sqlite3_stmt *st = store_begin_prep(db, "INSERT OR REPLACE INTO checkpoints(run_id, step, data, size, sha256, "
                                            "created_at) VALUES (?, ?, ?, ?, ?, ?)");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, step);
    sqlite3_bind_blob64(st, 3, data, len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)len);
    sqlite3_bind_text(st, 5, sha, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, db_now());
    if (store_step_done(db, st, "checkpoint")) return store_tx_end(db, -1);
    if (keep > 0) {
        st = db_prep(db, "DELETE FROM checkpoints WHERE run_id = ?1 AND step NOT IN "
                         "(SELECT step FROM checkpoints WHERE run_id = ?1 ORDER BY step DESC LIMIT ?2)");
        if (!st) return store_tx_end(db, -1);
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int(st, 2, keep);
        if (store_step_done(db, st, "drop old checkpoints")) return store_tx_end(db, -1);
    }
    json_t *e = json_pack("{s:I,s:I,s:s}", "step", (json_int_t)step, "size", (json_int_t)len, "sha256", sha);
    return store_tx_end(db, db_event(db, run_id, "checkpoint", e) < 0 ? -1 : 0);
}

int store_artifact(sqlite3 *db, int64_t run_id, const char *name, const char *relpath, int64_t size,
                   const char *sha256) {
    sqlite3_stmt *st = store_begin_prep(db, "INSERT OR REPLACE INTO artifacts(run_id, name, path, size, sha256, "
                                            "created_at) VALUES (?, ?, ?, ?, ?, ?)");
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, relpath, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, size);
    sqlite3_bind_text(st, 5, sha256, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, db_now());
    return store_step_commit(db, st, "artifact", run_id, "artifact",
                             json_pack("{s:s,s:I,s:s}", "name", name, "size", (json_int_t)size, "sha256", sha256));
}

/* The lists of a run's files: the columns of each SELECT, as shown. */
static const store_col checkpoint_cols[] = {{"step", COL_INT}, {"size", COL_INT}, {"sha256", COL_TEXT},
                                            {"created_at", COL_TIME}};
static const store_col artifact_cols[] = {{"name", COL_TEXT}, {"size", COL_INT}, {"sha256", COL_TEXT},
                                          {"created_at", COL_TIME}};

/* The rows sql selects with ?1 the run, shown as cols say. */
static json_t *run_rows(sqlite3 *db, const char *sql, int64_t run_id, const store_col *cols, int n) {
    sqlite3_stmt *st = db_prep(db, sql);
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, run_id);
    return store_rows_array(st, cols, n);
}

json_t *store_checkpoints_list(sqlite3 *db, int64_t run_id) {
    return run_rows(db, "SELECT step, size, sha256, created_at FROM checkpoints WHERE run_id = ? ORDER BY step",
                    run_id, checkpoint_cols, STORE_NCOLS(checkpoint_cols));
}

store_rc store_checkpoint_get(sqlite3 *db, int64_t run_id, int64_t step, void **data, size_t *len, int64_t *got_step) {
    enum { STEP, DATA };
    sqlite3_stmt *st = db_prep(db, step < 0 ? "SELECT step, data FROM checkpoints WHERE run_id = ?1 "
                                              "ORDER BY step DESC LIMIT 1"
                                            : "SELECT step, data FROM checkpoints WHERE run_id = ?1 AND step = ?2");
    if (!st) return STORE_ERROR;
    sqlite3_bind_int64(st, 1, run_id);
    if (step >= 0) sqlite3_bind_int64(st, 2, step);
    store_rc rc = STORE_NOT_FOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *got_step = sqlite3_column_int64(st, STEP);
        *len = (size_t)sqlite3_column_bytes(st, DATA);
        *data = spq_malloc(*len);
        memcpy(*data, sqlite3_column_blob(st, DATA), *len);
        rc = STORE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

json_t *store_artifacts_list(sqlite3 *db, int64_t run_id) {
    return run_rows(db, "SELECT name, size, sha256, created_at FROM artifacts WHERE run_id = ? ORDER BY name",
                    run_id, artifact_cols, STORE_NCOLS(artifact_cols));
}

store_rc store_artifact_get(sqlite3 *db, int64_t run_id, const char *name, char **relpath, int64_t *size,
                            char sha256[65]) {
    enum { PATH, SIZE, SHA256 };
    sqlite3_stmt *st = db_prep(db, "SELECT path, size, sha256 FROM artifacts WHERE run_id = ? AND name = ?");
    if (!st) return STORE_ERROR;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    store_rc rc = STORE_NOT_FOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *relpath = spq_strdup((const char *)sqlite3_column_text(st, PATH));
        *size = sqlite3_column_int64(st, SIZE);
        snprintf(sha256, 65, "%s", sqlite3_column_text(st, SHA256));
        rc = STORE_OK;
    }
    sqlite3_reset(st);
    return rc;
}
