/* db.c - see db.h. */
#include "server/db.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "server/log.h"
#include "server/migrate.h"

#define CACHE_MAX 96

typedef struct db_conn {
    sqlite3 *db;
    int n_cache;
    struct {
        char *sql;
        sqlite3_stmt *st;
    } cache[CACHE_MAX];
    struct db_conn *next;
} db_conn;

typedef struct {
    int64_t id, run_id;
    char *type, *json;
} pending_event;

static char *g_path;
static pthread_mutex_t g_list_mu = PTHREAD_MUTEX_INITIALIZER;
static db_conn *g_list;
static pthread_mutex_t g_write_mu = PTHREAD_MUTEX_INITIALIZER;
static db_event_sink g_sink;
static _Atomic uint64_t g_generation;
static __thread db_conn *tl_conn;
static __thread pending_event *tl_pending;
static __thread int tl_n_pending, tl_cap_pending;

double db_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

void db_set_event_sink(db_event_sink fn) { g_sink = fn; }

uint64_t db_generation(void) { return atomic_load(&g_generation); }

static int open_conn(sqlite3 **out, const char *path, spq_err *err) {
    sqlite3 *db;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        spq_fail(err, "%s: cannot open: %s", path, db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return -1;
    }
    sqlite3_busy_timeout(db, 10000);
    char *msg = NULL;
    if (sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
                     /* reads through a memory map and a larger page cache: listing a page
                      * of runs then costs no read(2) copies */
                     "PRAGMA temp_store=MEMORY; PRAGMA mmap_size=1073741824; PRAGMA cache_size=-16384;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        spq_fail(err, "%s: %s", path, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        sqlite3_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

int db_init(const char *path, spq_err *err) {
    free(g_path);
    g_path = spq_strdup(path);
    sqlite3 *db = db_get();
    if (!db) return spq_fail(err, "%s: cannot open the database (see the log)", path);
    if (migrate_apply(db, err)) return spq_fail_prefix(err, "%s", path);
    return 0;
}

sqlite3 *db_get(void) {
    if (tl_conn) return tl_conn->db;
    spq_err err;
    sqlite3 *db;
    if (open_conn(&db, g_path, &err)) {
        log_error("store: %s", err.msg);
        return NULL;
    }
    db_conn *c = spq_calloc(1, sizeof *c);
    c->db = db;
    pthread_mutex_lock(&g_list_mu);
    c->next = g_list;
    g_list = c;
    pthread_mutex_unlock(&g_list_mu);
    tl_conn = c;
    return db;
}

void db_close_all(void) {
    pthread_mutex_lock(&g_list_mu);
    for (db_conn *c = g_list, *next; c; c = next) {
        next = c->next;
        for (int i = 0; i < c->n_cache; i++) {
            sqlite3_finalize(c->cache[i].st);
            free(c->cache[i].sql);
        }
        sqlite3_close(c->db);
        free(c);
    }
    g_list = NULL;
    pthread_mutex_unlock(&g_list_mu);
    tl_conn = NULL;
    free(tl_pending);
    tl_pending = NULL;
    tl_n_pending = tl_cap_pending = 0;
}

static db_conn *conn_of(sqlite3 *db) {
    if (tl_conn && tl_conn->db == db) return tl_conn;
    return NULL;
}

sqlite3_stmt *db_prep(sqlite3 *db, const char *sql) {
    db_conn *c = conn_of(db);
    if (c)
        for (int i = 0; i < c->n_cache; i++)
            if (!strcmp(c->cache[i].sql, sql)) {
                sqlite3_reset(c->cache[i].st);
                sqlite3_clear_bindings(c->cache[i].st);
                return c->cache[i].st;
            }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
        log_error("store: cannot prepare '%s': %s", sql, sqlite3_errmsg(db));
        return NULL;
    }
    if (c) {
        if (c->n_cache == CACHE_MAX) { /* evict the oldest entry */
            sqlite3_finalize(c->cache[0].st);
            free(c->cache[0].sql);
            memmove(c->cache, c->cache + 1, sizeof c->cache[0] * (CACHE_MAX - 1));
            c->n_cache--;
        }
        c->cache[c->n_cache].sql = spq_strdup(sql);
        c->cache[c->n_cache].st = st;
        c->n_cache++;
    }
    return st;
}

int db_exec(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_error("store: '%s': %s", sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static void drop_pending(void) {
    for (int i = 0; i < tl_n_pending; i++) {
        free(tl_pending[i].type);
        free(tl_pending[i].json);
    }
    /* freed each time: a pool thread's thread-local buffer would otherwise
     * outlive the thread */
    free(tl_pending);
    tl_pending = NULL;
    tl_n_pending = tl_cap_pending = 0;
}

int db_begin(sqlite3 *db) {
    pthread_mutex_lock(&g_write_mu);
    drop_pending();
    if (db_exec(db, "BEGIN IMMEDIATE")) {
        pthread_mutex_unlock(&g_write_mu);
        return -1;
    }
    return 0;
}

int db_commit(sqlite3 *db) {
    if (db_exec(db, "COMMIT")) {
        db_exec(db, "ROLLBACK");
        drop_pending();
        pthread_mutex_unlock(&g_write_mu);
        return -1;
    }
    atomic_fetch_add(&g_generation, 1);
    if (g_sink)
        for (int i = 0; i < tl_n_pending; i++)
            g_sink(tl_pending[i].id, tl_pending[i].run_id, tl_pending[i].type, tl_pending[i].json);
    drop_pending();
    pthread_mutex_unlock(&g_write_mu);
    return 0;
}

void db_rollback(sqlite3 *db) {
    db_exec(db, "ROLLBACK");
    drop_pending();
    pthread_mutex_unlock(&g_write_mu);
}

int64_t db_event(sqlite3 *db, int64_t run_id, const char *type, json_t *data) {
    double t = db_now();
    if (run_id > 0) json_object_set_new(data, "run_id", json_integer(run_id));
    json_object_set_new(data, "t", json_real(t));
    char *json = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(data);
    if (!json) return -1;
    sqlite3_stmt *st = db_prep(db, "INSERT INTO events(run_id, type, data, t) VALUES (?, ?, ?, ?)");
    if (!st) {
        free(json);
        return -1;
    }
    if (run_id > 0) sqlite3_bind_int64(st, 1, run_id);
    else sqlite3_bind_null(st, 1);
    sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, json, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, t);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        log_error("store: cannot append an event: %s", sqlite3_errmsg(db));
        free(json);
        return -1;
    }
    int64_t id = sqlite3_last_insert_rowid(db);
    if (tl_n_pending == tl_cap_pending) {
        tl_cap_pending = tl_cap_pending ? 2 * tl_cap_pending : 8;
        tl_pending = spq_realloc(tl_pending, tl_cap_pending * sizeof *tl_pending);
    }
    tl_pending[tl_n_pending++] = (pending_event){id, run_id, spq_strdup(type), json};
    return id;
}
