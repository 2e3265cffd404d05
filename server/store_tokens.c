/* store_tokens.c - the tokens table: API and worker tokens, of which only
 * the sha256 is kept (auth.c makes and checks them). A name is unique; a
 * revoked token stays listed but no longer identifies anyone. */
#include <stdio.h>

#include "server/db.h"
#include "server/log.h"
#include "server/store.h"
#include "server/store_internal.h"

store_rc store_token_create(sqlite3 *db, const char *name, const char *role, const char *hash_hex) {
    sqlite3_stmt *st = store_begin_prep(db, "INSERT INTO tokens(name, role, hash, created_at) VALUES (?, ?, ?, ?)");
    if (!st) return STORE_ERROR;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, hash_hex, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, db_now());
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_CONSTRAINT) {
        db_rollback(db);
        return STORE_CONFLICT;
    }
    if (rc != SQLITE_DONE) {
        log_error("store: create token: %s", sqlite3_errmsg(db));
        db_rollback(db);
        return STORE_ERROR;
    }
    return db_commit(db) ? STORE_ERROR : STORE_OK;
}

int store_token_lookup(sqlite3 *db, const char *hash_hex, char *name, char *role) {
    enum { NAME, ROLE };
    sqlite3_stmt *st = db_prep(db, "SELECT name, role FROM tokens WHERE hash = ? AND revoked = 0");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, hash_hex, -1, SQLITE_STATIC);
    int found = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(name, 64, "%s", sqlite3_column_text(st, NAME));
        snprintf(role, 64, "%s", sqlite3_column_text(st, ROLE));
        found = 1;
    }
    sqlite3_reset(st);
    return found;
}

int store_token_count(sqlite3 *db) {
    sqlite3_stmt *st = db_prep(db, "SELECT count(*) FROM tokens WHERE revoked = 0");
    if (!st) return -1;
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_reset(st);
    return n;
}

json_t *store_tokens_list(sqlite3 *db) {
    static const store_col cols[] = {
        {"name", COL_TEXT}, {"role", COL_TEXT}, {"created_at", COL_TIME}, {"revoked", COL_BOOL},
    };
    sqlite3_stmt *st = db_prep(db, "SELECT name, role, created_at, revoked FROM tokens ORDER BY id");
    return st ? store_rows_array(st, cols, STORE_NCOLS(cols)) : NULL;
}

store_rc store_token_revoke(sqlite3 *db, const char *name) {
    sqlite3_stmt *st = store_begin_prep(db, "UPDATE tokens SET revoked = 1 WHERE name = ? AND revoked = 0");
    if (!st) return STORE_ERROR;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (store_step_done(db, st, "revoke token")) {
        db_rollback(db);
        return STORE_ERROR;
    }
    int n = sqlite3_changes(db);
    if (db_commit(db)) return STORE_ERROR;
    return n ? STORE_OK : STORE_NOT_FOUND;
}
