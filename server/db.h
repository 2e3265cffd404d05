/* db.h - SQLite connections for spinqd: one per thread, WAL, busy_timeout,
 * writes in BEGIN IMMEDIATE transactions, and the events a transaction
 * produced handed to a sink (the SSE hub) after it commits.
 *
 * Threads: libmicrohttpd's pool threads and the libuv loop thread each get
 * their own connection on first use (db_get). Our own writers are serialized
 * by a process-wide mutex taken in db_begin and released in db_commit, so they
 * never spin in SQLite's busy handler against each other, and events reach the
 * sink in commit order: an event's id (its SSE id) is published only after
 * every smaller id is committed and published. Another process (a
 * `spinqd token create` beside a running daemon) is handled by busy_timeout.
 *
 * Prepared statements are cached per connection, keyed by their SQL text. */
#ifndef SPQD_DB_H
#define SPQD_DB_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>

#include "common/base/util.h"

/* Opens the database at path (creating it), applies migrations. Call once,
 * from the main thread, before any other thread uses the store. */
int db_init(const char *path, spq_err *err);
/* This thread's connection; NULL (logged) when it cannot be opened. */
sqlite3 *db_get(void);
/* Closes every connection (after the other threads have stopped). */
void db_close_all(void);

/* A cached statement for sql, reset and with bindings cleared. */
sqlite3_stmt *db_prep(sqlite3 *db, const char *sql);

/* Write transactions: db_begin locks our writer mutex and begins IMMEDIATE;
 * db_commit commits, publishes the queued events and unlocks; db_rollback
 * drops them. Each returns 0 or -1 (logged). */
int db_begin(sqlite3 *db);
int db_commit(sqlite3 *db);
void db_rollback(sqlite3 *db);

/* Inside a write transaction: appends an event (type, data object; the
 * reference is stolen) for run_id (0: not about a run), published after
 * commit. Returns the event id or -1. */
int64_t db_event(sqlite3 *db, int64_t run_id, const char *type, json_t *data);

typedef void (*db_event_sink)(int64_t id, int64_t run_id, const char *type, const char *json);
void db_set_event_sink(db_event_sink fn);

/* Counts commits made by this process: cached reads built at an older
 * generation are stale. */
uint64_t db_generation(void);

/* Wall-clock seconds since the epoch. */
double db_now(void);

/* Runs one statement with no result rows; 0 or -1 (logged). */
int db_exec(sqlite3 *db, const char *sql);

#endif
