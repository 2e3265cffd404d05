/* migrate.c - see migrate.h.
 *
 * The .sql files are pulled into .rodata with the assembler's .incbin (paths
 * relative to the checkout, where make runs the compiler), NUL-terminated,
 * so the daemon needs no files beside itself. Adding a migration: drop the
 * next numbered file in migrations/ and add a MIGRATION line below. */
#include "server/migrate.h"

#include <stdio.h>

#define MIGRATION(sym, file)                                                                                           \
    __asm__(".section .rodata\n.global " #sym "\n" #sym ":\n.incbin \"" file "\"\n.byte 0\n.previous\n");               \
    extern const char sym[];

MIGRATION(spqd_mig_001, "migrations/001_init.sql")
MIGRATION(spqd_mig_002, "migrations/002_run_counts.sql")
MIGRATION(spqd_mig_003, "migrations/003_run_ids.sql")
MIGRATION(spqd_mig_004, "migrations/004_slurm.sql")

static const struct {
    const char *file;
    const char *sql;
} migrations[] = {
    {"migrations/001_init.sql", spqd_mig_001},
    {"migrations/002_run_counts.sql", spqd_mig_002},
    {"migrations/003_run_ids.sql", spqd_mig_003},
    {"migrations/004_slurm.sql", spqd_mig_004},
};
enum { N_MIGRATIONS = sizeof migrations / sizeof migrations[0] };

int migrate_latest(void) { return N_MIGRATIONS; }

static int user_version(sqlite3 *db) {
    sqlite3_stmt *st;
    int v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* 1 when some row breaks a foreign key (PRAGMA foreign_key_check), -1 on error. */
static int foreign_keys_broken(sqlite3 *db) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK) return -1;
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* Foreign keys are off while a migration runs (SQLite ignores the pragma
 * inside a transaction, so it is set around it): a migration that rebuilds
 * a table (003) drops the old one, which would otherwise cascade into its
 * children. The keys are checked before the commit instead. */
static int apply_one(sqlite3 *db, int i, spq_err *err) {
    char *msg = NULL;
    char pragma[64];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", i + 1);
    int bad = sqlite3_exec(db, "PRAGMA foreign_keys = OFF", NULL, NULL, &msg) != SQLITE_OK ||
              sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
              sqlite3_exec(db, migrations[i].sql, NULL, NULL, &msg) != SQLITE_OK;
    if (!bad && foreign_keys_broken(db)) {
        spq_fail(err, "%s: the migrated rows break a foreign key", migrations[i].file);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
        return -1;
    }
    bad = bad || sqlite3_exec(db, pragma, NULL, NULL, &msg) != SQLITE_OK ||
          sqlite3_exec(db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK;
    if (bad) {
        spq_fail(err, "%s: %s", migrations[i].file, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    return bad ? -1 : 0;
}

int migrate_apply(sqlite3 *db, spq_err *err) { return migrate_apply_to(db, N_MIGRATIONS, err); }

int migrate_apply_to(sqlite3 *db, int target, spq_err *err) {
    int have = user_version(db);
    if (have < 0) return spq_fail(err, "cannot read the schema version: %s", sqlite3_errmsg(db));
    if (have > N_MIGRATIONS)
        return spq_fail(err, "the database is at schema version %d but this spinqd knows only %d: use a newer spinqd",
                        have, N_MIGRATIONS);
    for (int i = have; i < target && i < N_MIGRATIONS; i++)
        if (apply_one(db, i, err)) return -1;
    return 0;
}
