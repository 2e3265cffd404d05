/* migrate.h - the schema in migrations/NNN_name.sql, embedded in the binary and
 * applied in order at start. PRAGMA user_version holds the number of the last
 * migration applied; each one runs in its own transaction. */
#ifndef SPQD_MIGRATE_H
#define SPQD_MIGRATE_H

#include <sqlite3.h>

#include "common/base/util.h"

/* Applies the migrations newer than the database; fails (naming the file)
 * when one does not apply or the database is newer than this binary. */
int migrate_apply(sqlite3 *db, spq_err *err);
/* The same up to migration number target only (tests build older schemas). */
int migrate_apply_to(sqlite3 *db, int target, spq_err *err);
/* Number of the newest migration this binary carries. */
int migrate_latest(void);

#endif
