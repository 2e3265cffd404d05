/* store.c - see store.h.
 *
 * Statements come from db_prep's per-connection cache, so the hot reads (a
 * page of runs) are prepared once per thread. Writes follow one pattern:
 * db_begin, the change, db_event for what it means to a watcher, db_commit.
 * On any failure the transaction is rolled back and the error logged. */
#include "server/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/sha256.h"
#include "server/db.h"
#include "server/jsonw.h"
#include "server/log.h"

#define RUN_COLS                                                                                                       \
    "r.id, r.name, r.model, r.tags, r.status, r.stage, r.reason, r.owner, r.sweep_id, r.worker_id, r.attempts, "      \
    "r.cancel_requested, r.created_at, r.started_at, r.finished_at, r.worker_name, r.worker_host"

enum { RUN_NCOLS = 17 }; /* the columns of RUN_COLS */

static json_t *col_json(sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, i));
    case SQLITE_TEXT: return json_string((const char *)sqlite3_column_text(st, i));
    default: return json_null();
    }
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        log_error("store: %s: %s", what, sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

static json_t *run_row(sqlite3_stmt *st) {
    static const char *names[] = {"id",        "name",      "model",    "tags",             "status",
                                  "stage",     "reason",    "owner",    "sweep_id",         "worker_id",
                                  "attempts",  "cancel_requested", "created_at", "started_at", "finished_at",
                                  "worker_name", "worker_host"};
    json_t *o = json_object();
    for (int i = 0; i < RUN_NCOLS; i++) {
        if (i == 3) {
            json_t *tags = json_loads((const char *)sqlite3_column_text(st, i), 0, NULL);
            json_object_set_new(o, names[i], tags ? tags : json_array());
        } else if (i == 11) {
            json_object_set_new(o, names[i], json_boolean(sqlite3_column_int(st, i)));
        } else {
            json_object_set_new(o, names[i], col_json(st, i));
        }
    }
    return o;
}

json_t *store_metrics_latest(sqlite3 *db, int64_t run_id) {
    sqlite3_stmt *st = db_prep(db, "SELECT key, step, value FROM metrics_latest WHERE run_id = ? ORDER BY key");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, run_id);
    json_t *m = json_object();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(m, (const char *)sqlite3_column_text(st, 0),
                            json_pack("{s:I,s:o}", "step", (json_int_t)sqlite3_column_int64(st, 1), "value",
                                      col_json(st, 2)));
    sqlite3_reset(st);
    return m;
}

/* ---- runs ---- */

static json_t *status_event(const char *status, const char *stage, const char *reason) {
    json_t *e = json_pack("{s:s}", "status", status);
    if (stage) json_object_set_new(e, "stage", json_string(stage));
    if (reason) json_object_set_new(e, "reason", json_string(reason));
    return e;
}

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
        if (step_done(db, st, "insert run") == 0) id = sqlite3_last_insert_rowid(db);
    }
    if (id > 0) {
        sqlite3_stmt *t = db_prep(db, "INSERT OR IGNORE INTO run_tags(run_id, tag) VALUES (?, ?)");
        for (int i = 0; t && i < spec->n_tags; i++) {
            sqlite3_bind_int64(t, 1, id);
            sqlite3_bind_text(t, 2, spec->tags[i], -1, SQLITE_STATIC);
            if (step_done(db, t, "insert tag")) id = -1;
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
    if (id < 0) {
        db_rollback(db);
        return STORE_ERROR;
    }
    return db_commit(db) ? STORE_ERROR : id;
}

json_t *store_run_get(sqlite3 *db, int64_t id, int with_spec, store_rc *rc) {
    sqlite3_stmt *st = db_prep(db, "SELECT " RUN_COLS ", r.spec FROM runs r WHERE r.id = ?");
    *rc = STORE_ERROR;
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, id);
    json_t *o = NULL;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        o = run_row(st);
        if (with_spec) {
            json_t *spec = json_loads((const char *)sqlite3_column_text(st, RUN_NCOLS), 0, NULL);
            json_object_set_new(o, "spec", spec ? spec : json_null());
        }
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
    sqlite3_stmt *st = db_prep(db, "SELECT owner, status FROM runs WHERE id = ?");
    if (!st) return STORE_ERROR;
    sqlite3_bind_int64(st, 1, id);
    store_rc rc = STORE_NOT_FOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(owner, cap, "%s", sqlite3_column_text(st, 0));
        snprintf(status, 16, "%s", sqlite3_column_text(st, 1));
        rc = STORE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

static const char *const order_columns[] = {"id",          "created_at", "name",  "status", "started_at",
                                            "finished_at", "model",      "owner", NULL};

int store_order_known(sqlite3 *db, const char *order) {
    for (int i = 0; order_columns[i]; i++)
        if (!strcmp(order_columns[i], order)) return 1;
    sqlite3_stmt *st = db_prep(db, "SELECT 1 FROM metrics_latest WHERE key = ? LIMIT 1"); /* its index */
    if (!st) return -1;
    sqlite3_bind_text(st, 1, order, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The listing's SQL. `kind`: 0 rows of a column order, 1 count, 2 rows that
 * have the order metric (from its index, value order), 3 rows that lack it.
 * Binds are fixed: ?1 tag, ?2 metric key, ?3 status, ?4 model, ?5 sweep,
 * ?6 text, ?7 limit, ?8 offset, ?9 before_id. */
static void list_sql(char *sql, size_t cap, const store_run_filter *f, int kind) {
    size_t n = strlen(sql);
    if (kind == 2) n += snprintf(sql + n, cap - n, " JOIN metrics_latest m ON m.run_id = r.id AND m.key = ?2");
    if (f->tag) n += snprintf(sql + n, cap - n, " JOIN run_tags t ON t.run_id = r.id AND t.tag = ?1");
    n += snprintf(sql + n, cap - n, " WHERE 1");
    if (kind == 3)
        n += snprintf(sql + n, cap - n, " AND NOT EXISTS (SELECT 1 FROM metrics_latest x WHERE x.run_id = r.id "
                                        "AND x.key = ?2)");
    if (f->status) n += snprintf(sql + n, cap - n, " AND r.status = ?3");
    if (f->model) n += snprintf(sql + n, cap - n, " AND r.model = ?4");
    if (f->sweep_id > 0) n += snprintf(sql + n, cap - n, " AND r.sweep_id = ?5");
    if (f->text)
        n += snprintf(sql + n, cap - n, " AND (r.name LIKE ?6 ESCAPE '\\' OR r.model LIKE ?6 ESCAPE '\\')");
    if (f->before_id > 0 && kind != 1) /* the cursor bounds rows, not the total */
        n += snprintf(sql + n, cap - n, f->tag ? " AND t.run_id < ?9" : " AND r.id < ?9");
}

static void list_bind(sqlite3_stmt *st, const store_run_filter *f, const char *like) {
    if (f->tag) sqlite3_bind_text(st, 1, f->tag, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_index(st, "?2")) sqlite3_bind_text(st, 2, f->order, -1, SQLITE_STATIC);
    if (f->status) sqlite3_bind_text(st, 3, f->status, -1, SQLITE_STATIC);
    if (f->model) sqlite3_bind_text(st, 4, f->model, -1, SQLITE_STATIC);
    if (f->sweep_id > 0) sqlite3_bind_int64(st, 5, f->sweep_id);
    if (f->text) sqlite3_bind_text(st, 6, like, -1, SQLITE_STATIC);
    if (sqlite3_bind_parameter_index(st, "?9")) sqlite3_bind_int64(st, 9, f->before_id);
}

/* A page of runs as JSON text, each row written straight from the statement
 * (jansson trees cost more than the query on this path); "metrics" are
 * added from one query over the page's id range. */
typedef struct {
    int64_t id;
    jw row;     /* the run's fields, without the closing brace */
    jw metrics; /* "key":{"step":s,"value":v},... */
} page_row;

typedef struct {
    page_row *rows;
    int n, cap;
} page;

static void page_free(page *pg) {
    for (int i = 0; i < pg->n; i++) {
        jw_free(&pg->rows[i].row);
        jw_free(&pg->rows[i].metrics);
    }
    free(pg->rows);
}

static void col_text(jw *w, sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) jw_null(w);
    else jw_str(w, (const char *)sqlite3_column_text(st, i));
}

static void col_int(jw *w, sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) jw_null(w);
    else jw_int(w, sqlite3_column_int64(st, i));
}

static void col_time(jw *w, sqlite3_stmt *st, int i) {
    if (sqlite3_column_type(st, i) == SQLITE_NULL) jw_null(w);
    else jw_fixed(w, sqlite3_column_double(st, i), 6);
}

/* RUN_COLS of the current row as JSON object members (open object). */
static void run_row_text(jw *w, sqlite3_stmt *st) {
    jw_obj(w);
    jw_key(w, "id");
    col_int(w, st, 0);
    jw_key(w, "name");
    col_text(w, st, 1);
    jw_key(w, "model");
    col_text(w, st, 2);
    jw_key(w, "tags"); /* stored as JSON by us */
    jw_raw(w, (const char *)sqlite3_column_text(st, 3), (size_t)sqlite3_column_bytes(st, 3));
    static const char *const text_cols[] = {"status", "stage", "reason", "owner"};
    for (int k = 0; k < 4; k++) {
        jw_key(w, text_cols[k]);
        col_text(w, st, 4 + k);
    }
    jw_key(w, "sweep_id");
    col_int(w, st, 8);
    jw_key(w, "worker_id");
    col_int(w, st, 9);
    jw_key(w, "attempts");
    col_int(w, st, 10);
    jw_key(w, "cancel_requested");
    jw_bool(w, sqlite3_column_int(st, 11));
    jw_key(w, "created_at");
    col_time(w, st, 12);
    jw_key(w, "started_at");
    col_time(w, st, 13);
    jw_key(w, "finished_at");
    col_time(w, st, 14);
    jw_key(w, "worker_name");
    col_text(w, st, 15);
    jw_key(w, "worker_host");
    col_text(w, st, 16);
}

/* Appends the rows of sql (limit, offset) to pg; -1 on a store error. */
static int list_rows(sqlite3 *db, const char *sql, const store_run_filter *f, const char *like, int limit, int offset,
                     page *pg) {
    sqlite3_stmt *st = db_prep(db, sql);
    if (!st) return -1;
    list_bind(st, f, like);
    sqlite3_bind_int(st, 7, limit);
    sqlite3_bind_int(st, 8, offset);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (pg->n == pg->cap) {
            pg->cap = pg->cap ? 2 * pg->cap : 64;
            pg->rows = spq_realloc(pg->rows, pg->cap * sizeof *pg->rows);
        }
        page_row *r = &pg->rows[pg->n++];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(st, 0);
        run_row_text(&r->row, st);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        log_error("store: list runs: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

static void metric_member(jw *w, sqlite3_stmt *st, int first_col) {
    jw_key(w, (const char *)sqlite3_column_text(st, first_col));
    jw_obj(w);
    jw_key(w, "step");
    jw_int(w, sqlite3_column_int64(st, first_col + 1));
    jw_key(w, "value");
    if (sqlite3_column_type(st, first_col + 2) == SQLITE_NULL) jw_null(w);
    else jw_num(w, sqlite3_column_double(st, first_col + 2), 17);
    jw_end(w);
}

/* Fills every row's metrics: one range query when the ids are close
 * together (the default order), else one lookup per run. */
static void page_metrics(sqlite3 *db, page *pg) {
    if (!pg->n) return;
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < pg->n; i++) {
        lo = pg->rows[i].id < lo ? pg->rows[i].id : lo;
        hi = pg->rows[i].id > hi ? pg->rows[i].id : hi;
    }
    if ((uint64_t)(hi - lo) <= 8 * (uint64_t)pg->n + 64) {
        sqlite3_stmt *st =
            db_prep(db, "SELECT run_id, key, step, value FROM metrics_latest WHERE run_id BETWEEN ? AND ?");
        if (!st) return;
        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
        int at = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(st, 0);
            for (int k = 0; k < pg->n; k++) { /* start where the last match was */
                int j = (at + k) % pg->n;
                if (pg->rows[j].id == id) {
                    metric_member(&pg->rows[j].metrics, st, 1);
                    at = j;
                    break;
                }
            }
        }
        sqlite3_reset(st);
        return;
    }
    sqlite3_stmt *st = db_prep(db, "SELECT key, step, value FROM metrics_latest WHERE run_id = ?");
    if (!st) return;
    for (int i = 0; i < pg->n; i++) {
        sqlite3_bind_int64(st, 1, pg->rows[i].id);
        while (sqlite3_step(st) == SQLITE_ROW) metric_member(&pg->rows[i].metrics, st, 0);
        sqlite3_reset(st);
    }
}

static int64_t list_count(sqlite3 *db, const store_run_filter *f, const char *like, int kind) {
    sqlite3_stmt *cs;
    if (kind == 1 && !f->tag && !f->model && !f->sweep_id && !f->text) { /* kept by triggers: no scan */
        cs = db_prep(db, f->status ? "SELECT coalesce(sum(n), 0) FROM run_counts WHERE status = ?3"
                                   : "SELECT coalesce(sum(n), 0) FROM run_counts");
        if (cs && f->status) sqlite3_bind_text(cs, 3, f->status, -1, SQLITE_STATIC);
    } else {
        char csql[1024] = "SELECT count(*) FROM runs r";
        list_sql(csql, sizeof csql, f, kind);
        cs = db_prep(db, csql);
        if (cs) list_bind(cs, f, like);
    }
    int64_t n = 0;
    if (cs) {
        if (sqlite3_step(cs) == SQLITE_ROW) n = sqlite3_column_int64(cs, 0);
        sqlite3_reset(cs);
    }
    return n;
}

char *store_runs_list(sqlite3 *db, const store_run_filter *f) {
    int column = -1;
    if (f->order)
        for (int i = 0; order_columns[i]; i++)
            if (!strcmp(order_columns[i], f->order)) column = i;
    int metric_order = f->order && column < 0;
    char like[600] = "";
    if (f->text) { /* %text% with LIKE's wildcards escaped */
        size_t n = 0;
        like[n++] = '%';
        for (const char *c = f->text; *c && n < sizeof like - 3; c++) {
            if (*c == '%' || *c == '_' || *c == '\\') like[n++] = '\\';
            like[n++] = *c;
        }
        like[n++] = '%';
        like[n] = 0;
    }
    const char *dir = f->order_desc ? "DESC" : "ASC";
    page pg = {0};
    char sql[1024] = "SELECT " RUN_COLS " FROM runs r";
    size_t n;
    int bad = 0;
    if (metric_order) {
        /* runs with the metric, in the order of its index (key, value, run_id),
         * then the runs without it, newest first */
        list_sql(sql, sizeof sql, f, 2);
        n = strlen(sql);
        snprintf(sql + n, sizeof sql - n, " ORDER BY m.value %s, m.run_id %s LIMIT ?7 OFFSET ?8", dir, dir);
        bad = list_rows(db, sql, f, like, f->limit, f->offset, &pg);
        int got = pg.n;
        if (!bad && got < f->limit) {
            int64_t with = got > 0 ? f->offset + got : list_count(db, f, like, 2);
            int64_t off = f->offset > with ? f->offset - with : 0;
            char sql2[1024] = "SELECT " RUN_COLS " FROM runs r";
            list_sql(sql2, sizeof sql2, f, 3);
            n = strlen(sql2);
            snprintf(sql2 + n, sizeof sql2 - n, " ORDER BY r.id DESC LIMIT ?7 OFFSET ?8");
            bad = list_rows(db, sql2, f, like, f->limit - got, (int)off, &pg);
        }
    } else {
        list_sql(sql, sizeof sql, f, 0);
        n = strlen(sql);
        if (column > 0)
            snprintf(sql + n, sizeof sql - n, " ORDER BY r.%s %s, r.id DESC LIMIT ?7 OFFSET ?8", order_columns[column],
                     dir);
        else /* with a tag, the tag index's run_id order is the id order: no sort */
            snprintf(sql + n, sizeof sql - n, " ORDER BY %s %s LIMIT ?7 OFFSET ?8", f->tag ? "t.run_id" : "r.id",
                     f->order ? dir : "DESC");
        bad = list_rows(db, sql, f, like, f->limit, f->offset, &pg);
    }
    if (bad) {
        page_free(&pg);
        return NULL;
    }
    page_metrics(db, &pg);
    jw w = {0};
    jw_obj(&w);
    jw_key(&w, "runs");
    jw_arr(&w);
    for (int i = 0; i < pg.n; i++) {
        page_row *r = &pg.rows[i];
        jw_raw(&w, r->row.p, r->row.len);
        w.need_comma = 1;
        jw_key(&w, "metrics");
        jw_obj(&w);
        if (r->metrics.len) jw_raw(&w, r->metrics.p, r->metrics.len);
        jw_end(&w);
        jw_end(&w);
    }
    jw_arr_end(&w);
    jw_key(&w, "total");
    jw_int(&w, list_count(db, f, like, 1));
    jw_key(&w, "limit");
    jw_int(&w, f->limit);
    jw_key(&w, "offset");
    jw_int(&w, f->offset);
    jw_key(&w, "next_before_id");
    int newest_first = !f->order || (column == 0 && f->order_desc);
    if (newest_first && pg.n == f->limit) jw_int(&w, pg.rows[pg.n - 1].id);
    else jw_null(&w);
    jw_end(&w);
    page_free(&pg);
    return jw_take(&w, NULL);
}

store_rc store_run_cancel(sqlite3 *db, int64_t id, int *now_canceled) {
    *now_canceled = 0;
    if (db_begin(db)) return STORE_ERROR;
    char owner[64], status[16];
    store_rc found = store_run_owner(db, id, owner, sizeof owner, status);
    if (found != STORE_OK) {
        db_rollback(db);
        return found;
    }
    sqlite3_stmt *st;
    if (!strcmp(status, "queued")) {
        st = db_prep(db, "UPDATE runs SET status = 'canceled', finished_at = ?, cancel_requested = 1 WHERE id = ?");
        if (!st) goto fail;
        sqlite3_bind_double(st, 1, db_now());
        sqlite3_bind_int64(st, 2, id);
        if (step_done(db, st, "cancel run") || db_event(db, id, "status", status_event("canceled", NULL, NULL)) < 0)
            goto fail;
        *now_canceled = 1;
    } else if (!strcmp(status, "running")) {
        st = db_prep(db, "UPDATE runs SET cancel_requested = 1 WHERE id = ?");
        if (!st) goto fail;
        sqlite3_bind_int64(st, 1, id);
        if (step_done(db, st, "request cancel")) goto fail;
        if (db_event(db, id, "log", json_pack("{s:s,s:s}", "level", "info", "text", "cancel requested")) < 0) goto fail;
    } else {
        db_rollback(db);
        return STORE_CONFLICT;
    }
    return db_commit(db) ? STORE_ERROR : STORE_OK;
fail:
    db_rollback(db);
    return STORE_ERROR;
}

store_rc store_run_delete(sqlite3 *db, int64_t id, const char *data_dir) {
    if (db_begin(db)) return STORE_ERROR;
    char owner[64], status[16];
    store_rc found = store_run_owner(db, id, owner, sizeof owner, status);
    if (found != STORE_OK) {
        db_rollback(db);
        return found;
    }
    sqlite3_stmt *st;
    if (!strcmp(status, "running")) {
        db_rollback(db);
        return STORE_CONFLICT;
    }
    /* artifact files: remembered now, removed once the rows are gone */
    char **paths = NULL;
    int n_paths = 0;
    st = db_prep(db, "SELECT path FROM artifacts WHERE run_id = ?");
    if (!st) goto fail;
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
            bad = step_done(db, st, dels[i]);
        }
    }
    if (!bad && db_event(db, id, "deleted", json_object()) < 0) bad = 1;
    if (bad || db_commit(db)) {
        if (bad) db_rollback(db);
        for (int i = 0; i < n_paths; i++) free(paths[i]);
        free(paths);
        return STORE_ERROR;
    }
    for (int i = 0; i < n_paths; i++) {
        unlink(paths[i]);
        free(paths[i]);
    }
    free(paths);
    return STORE_OK;
fail:
    db_rollback(db);
    return STORE_ERROR;
}

/* ---- scheduler ---- */

void store_job_free(store_job *j) {
    free(j->spec);
    free(j->ckpt);
    memset(j, 0, sizeof *j);
}

int store_claim_next(sqlite3 *db, int64_t worker_id, const char *worker_name, const char *worker_host,
                     store_job *job) {
    memset(job, 0, sizeof *job);
    job->ckpt_step = -1;
    if (db_begin(db)) return -1;
    sqlite3_stmt *st = db_prep(db, "SELECT id, spec, attempts FROM runs WHERE status = 'queued' ORDER BY id LIMIT 1");
    if (!st) goto fail;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        job->run_id = sqlite3_column_int64(st, 0);
        job->spec = spq_strdup((const char *)sqlite3_column_text(st, 1));
        job->attempt = sqlite3_column_int(st, 2) + 1;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        db_rollback(db);
        return 0;
    }
    if (rc != SQLITE_ROW) goto fail;
    st = db_prep(db, "UPDATE runs SET status = 'running', worker_id = ?, attempts = attempts + 1, "
                     "started_at = coalesce(started_at, ?), reason = NULL, worker_name = ?, worker_host = ? "
                     "WHERE id = ?");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, worker_id);
    sqlite3_bind_double(st, 2, db_now());
    sqlite3_bind_text(st, 3, worker_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, worker_host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, job->run_id);
    if (step_done(db, st, "claim run")) goto fail;
    st = db_prep(db, "SELECT step, data FROM checkpoints WHERE run_id = ? ORDER BY step DESC LIMIT 1");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, job->run_id);
    if (sqlite3_step(st) == SQLITE_ROW) {
        job->ckpt_step = sqlite3_column_int64(st, 0);
        job->ckpt_len = (size_t)sqlite3_column_bytes(st, 1);
        job->ckpt = spq_malloc(job->ckpt_len);
        memcpy(job->ckpt, sqlite3_column_blob(st, 1), job->ckpt_len);
    }
    sqlite3_reset(st);
    json_t *e = json_pack("{s:s,s:I,s:s,s:s,s:i}", "status", "running", "worker_id", (json_int_t)worker_id,
                          "worker_name", worker_name, "worker_host", worker_host, "attempt", job->attempt);
    if (job->ckpt_step >= 0) json_object_set_new(e, "resume_step", json_integer(job->ckpt_step));
    if (db_event(db, job->run_id, "status", e) < 0) goto fail;
    if (db_commit(db)) {
        store_job_free(job);
        return -1;
    }
    return 1;
fail:
    db_rollback(db);
    store_job_free(job);
    return -1;
}

static int simple_update(sqlite3 *db, const char *sql, int64_t run_id, const char *text, const char *what) {
    sqlite3_stmt *st = db_prep(db, sql);
    if (!st) return -1;
    if (text) sqlite3_bind_text(st, 1, text, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 1);
    sqlite3_bind_int64(st, 2, run_id);
    return step_done(db, st, what);
}

int store_run_unclaim(sqlite3 *db, int64_t run_id) {
    if (db_begin(db)) return -1;
    if (simple_update(db,
                      "UPDATE runs SET status = 'queued', worker_id = NULL, attempts = attempts - 1, reason = ?1 "
                      "WHERE id = ?2 AND status = 'running'",
                      run_id, "could not be sent to the worker", "unclaim") ||
        db_event(db, run_id, "status", status_event("queued", NULL, "could not be sent to the worker")) < 0) {
        db_rollback(db);
        return -1;
    }
    return db_commit(db);
}

int store_run_stage(sqlite3 *db, int64_t run_id, const char *stage) {
    if (db_begin(db)) return -1;
    if (simple_update(db, "UPDATE runs SET stage = ?1 WHERE id = ?2", run_id, stage, "stage") ||
        db_event(db, run_id, "status", status_event("running", stage, NULL)) < 0) {
        db_rollback(db);
        return -1;
    }
    return db_commit(db);
}

int store_run_finish(sqlite3 *db, int64_t run_id, const char *status, const char *reason) {
    if (db_begin(db)) return -1;
    /* the worker stays on the run: who ran it is part of its record */
    sqlite3_stmt *st = db_prep(db, "UPDATE runs SET status = ?, reason = ?, finished_at = ?, "
                                   "stage = CASE WHEN ? = 'done' THEN 'done' ELSE stage END WHERE id = ?");
    if (!st) goto fail;
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    if (reason) sqlite3_bind_text(st, 2, reason, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, 2);
    sqlite3_bind_double(st, 3, db_now());
    sqlite3_bind_text(st, 4, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, run_id);
    if (step_done(db, st, "finish run")) goto fail;
    if (db_event(db, run_id, "status", status_event(status, NULL, reason)) < 0) goto fail;
    return db_commit(db);
fail:
    db_rollback(db);
    return -1;
}

int store_run_interrupted(sqlite3 *db, int64_t run_id, const char *reason, int max_attempts, int count_attempt,
                          int *now_failed) {
    *now_failed = 0;
    if (db_begin(db)) return -1;
    sqlite3_stmt *st = db_prep(db, "SELECT attempts, cancel_requested FROM runs WHERE id = ? AND status = 'running'");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, run_id);
    int attempts = -1, cancel = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        attempts = sqlite3_column_int(st, 0);
        cancel = sqlite3_column_int(st, 1);
    }
    sqlite3_reset(st);
    if (attempts < 0) { /* not running any more: nothing to do */
        db_rollback(db);
        return 0;
    }
    if (!count_attempt) attempts--;
    char why[600];
    const char *status;
    if (cancel) {
        status = "canceled";
        snprintf(why, sizeof why, "%s", reason);
    } else if (attempts >= max_attempts) {
        status = "failed";
        snprintf(why, sizeof why, "%s (gave up after %d attempts)", reason, attempts);
        *now_failed = 1;
    } else {
        status = "queued";
        snprintf(why, sizeof why, "%s", reason);
    }
    st = db_prep(db, "UPDATE runs SET status = ?1, reason = ?2, attempts = ?3, "
                     "worker_id = CASE WHEN ?4 = 'queued' THEN NULL ELSE worker_id END, "
                     "finished_at = CASE WHEN ?4 = 'queued' THEN NULL ELSE ?5 END WHERE id = ?6");
    if (!st) goto fail;
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, why, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, attempts);
    sqlite3_bind_text(st, 4, status, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, db_now());
    sqlite3_bind_int64(st, 6, run_id);
    if (step_done(db, st, "interrupt run")) goto fail;
    if (db_event(db, run_id, "status", status_event(status, NULL, why)) < 0) goto fail;
    return db_commit(db);
fail:
    db_rollback(db);
    return -1;
}

int store_recover(sqlite3 *db) {
    if (db_begin(db)) return -1;
    int64_t ids[1024];
    int n = 0;
    sqlite3_stmt *st = db_prep(db, "SELECT id FROM runs WHERE status = 'running' ORDER BY id");
    if (!st) goto fail;
    while (n < 1024 && sqlite3_step(st) == SQLITE_ROW) ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    for (int i = 0; i < n; i++) {
        if (simple_update(db, "UPDATE runs SET status = 'queued', worker_id = NULL, reason = ?1 WHERE id = ?2", ids[i],
                          "the daemon stopped while it ran", "recover") ||
            db_event(db, ids[i], "status", status_event("queued", NULL, "the daemon stopped while it ran")) < 0)
            goto fail;
    }
    if (db_commit(db)) return -1;
    return n;
fail:
    db_rollback(db);
    return -1;
}

int store_cancel_requests(sqlite3 *db, int64_t *ids, int cap) {
    sqlite3_stmt *st = db_prep(db, "SELECT id FROM runs WHERE status = 'running' AND cancel_requested = 1");
    if (!st) return -1;
    int n = 0;
    while (n < cap && sqlite3_step(st) == SQLITE_ROW) ids[n++] = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}

int store_metric(sqlite3 *db, int64_t run_id, const char *key, int64_t step, double value) {
    if (db_begin(db)) return -1;
    double t = db_now();
    sqlite3_stmt *st = db_prep(db, "INSERT OR REPLACE INTO metrics(run_id, key, step, value, t) VALUES (?, ?, ?, ?, ?)");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, step);
    sqlite3_bind_double(st, 4, value);
    sqlite3_bind_double(st, 5, t);
    if (step_done(db, st, "metric")) goto fail;
    st = db_prep(db, "INSERT INTO metrics_latest(run_id, key, step, value) VALUES (?1, ?2, ?3, ?4) "
                     "ON CONFLICT(run_id, key) DO UPDATE SET step = ?3, value = ?4 WHERE ?3 >= step");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, step);
    sqlite3_bind_double(st, 4, value);
    if (step_done(db, st, "metric latest")) goto fail;
    json_t *e = json_pack("{s:s,s:I,s:f}", "key", key, "step", (json_int_t)step, "value", value);
    if (!e) e = json_pack("{s:s,s:I,s:n}", "key", key, "step", (json_int_t)step, "value"); /* NaN, inf */
    if (db_event(db, run_id, "metric", e) < 0) goto fail;
    return db_commit(db);
fail:
    db_rollback(db);
    return -1;
}

int store_progress(sqlite3 *db, int64_t run_id, const char *stage, int64_t done, int64_t total) {
    if (db_begin(db)) return -1;
    if (db_event(db, run_id, "progress",
                 json_pack("{s:s,s:I,s:I}", "stage", stage, "done", (json_int_t)done, "total", (json_int_t)total)) < 0) {
        db_rollback(db);
        return -1;
    }
    return db_commit(db);
}

int store_log(sqlite3 *db, int64_t run_id, const char *level, const char *text) {
    if (db_begin(db)) return -1;
    json_t *e = json_pack("{s:s,s:s%}", "level", level, "text", text, strlen(text));
    if (!e) e = json_pack("{s:s,s:s}", "level", level, "text", "(a log line that was not valid UTF-8)");
    if (db_event(db, run_id, "log", e) < 0) {
        db_rollback(db);
        return -1;
    }
    return db_commit(db);
}

int store_checkpoint(sqlite3 *db, int64_t run_id, int64_t step, const void *data, size_t len, int keep) {
    char sha[65];
    spq_sha256_hex(sha, data, len);
    if (db_begin(db)) return -1;
    sqlite3_stmt *st = db_prep(db, "INSERT OR REPLACE INTO checkpoints(run_id, step, data, size, sha256, created_at) "
                                   "VALUES (?, ?, ?, ?, ?, ?)");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, step);
    sqlite3_bind_blob64(st, 3, data, len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)len);
    sqlite3_bind_text(st, 5, sha, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, db_now());
    if (step_done(db, st, "checkpoint")) goto fail;
    if (keep > 0) {
        st = db_prep(db, "DELETE FROM checkpoints WHERE run_id = ?1 AND step NOT IN "
                         "(SELECT step FROM checkpoints WHERE run_id = ?1 ORDER BY step DESC LIMIT ?2)");
        if (!st) goto fail;
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int(st, 2, keep);
        if (step_done(db, st, "drop old checkpoints")) goto fail;
    }
    if (db_event(db, run_id, "checkpoint",
                 json_pack("{s:I,s:I,s:s}", "step", (json_int_t)step, "size", (json_int_t)len, "sha256", sha)) < 0)
        goto fail;
    return db_commit(db);
fail:
    db_rollback(db);
    return -1;
}

int store_artifact(sqlite3 *db, int64_t run_id, const char *name, const char *relpath, int64_t size,
                   const char *sha256) {
    if (db_begin(db)) return -1;
    sqlite3_stmt *st = db_prep(db, "INSERT OR REPLACE INTO artifacts(run_id, name, path, size, sha256, created_at) "
                                   "VALUES (?, ?, ?, ?, ?, ?)");
    if (!st) goto fail;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, relpath, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, size);
    sqlite3_bind_text(st, 5, sha256, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, db_now());
    if (step_done(db, st, "artifact")) goto fail;
    if (db_event(db, run_id, "artifact",
                 json_pack("{s:s,s:I,s:s}", "name", name, "size", (json_int_t)size, "sha256", sha256)) < 0)
        goto fail;
    return db_commit(db);
fail:
    db_rollback(db);
    return -1;
}

/* ---- reads ---- */

json_t *store_metric_history(sqlite3 *db, int64_t run_id, const char *key, int64_t since_step, int limit) {
    sqlite3_stmt *st = db_prep(db, "SELECT step, value FROM metrics WHERE run_id = ? AND key = ? AND step > ? "
                                   "ORDER BY step LIMIT ?");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, since_step);
    sqlite3_bind_int(st, 4, limit);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("[I,o]", (json_int_t)sqlite3_column_int64(st, 0), col_json(st, 1)));
    sqlite3_reset(st);
    return a;
}

json_t *store_checkpoints_list(sqlite3 *db, int64_t run_id) {
    sqlite3_stmt *st =
        db_prep(db, "SELECT step, size, sha256, created_at FROM checkpoints WHERE run_id = ? ORDER BY step");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, run_id);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:I,s:I,s:s,s:f}", "step", (json_int_t)sqlite3_column_int64(st, 0),
                                           "size", (json_int_t)sqlite3_column_int64(st, 1), "sha256",
                                           (const char *)sqlite3_column_text(st, 2), "created_at",
                                           sqlite3_column_double(st, 3)));
    sqlite3_reset(st);
    return a;
}

store_rc store_checkpoint_get(sqlite3 *db, int64_t run_id, int64_t step, void **data, size_t *len, int64_t *got_step) {
    sqlite3_stmt *st = db_prep(db, step < 0 ? "SELECT step, data FROM checkpoints WHERE run_id = ?1 "
                                              "ORDER BY step DESC LIMIT 1"
                                            : "SELECT step, data FROM checkpoints WHERE run_id = ?1 AND step = ?2");
    if (!st) return STORE_ERROR;
    sqlite3_bind_int64(st, 1, run_id);
    if (step >= 0) sqlite3_bind_int64(st, 2, step);
    store_rc rc = STORE_NOT_FOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *got_step = sqlite3_column_int64(st, 0);
        *len = (size_t)sqlite3_column_bytes(st, 1);
        *data = spq_malloc(*len);
        memcpy(*data, sqlite3_column_blob(st, 1), *len);
        rc = STORE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

json_t *store_artifacts_list(sqlite3 *db, int64_t run_id) {
    sqlite3_stmt *st = db_prep(db, "SELECT name, size, sha256, created_at FROM artifacts WHERE run_id = ? ORDER BY name");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, run_id);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:s,s:I,s:s,s:f}", "name", (const char *)sqlite3_column_text(st, 0),
                                           "size", (json_int_t)sqlite3_column_int64(st, 1), "sha256",
                                           (const char *)sqlite3_column_text(st, 2), "created_at",
                                           sqlite3_column_double(st, 3)));
    sqlite3_reset(st);
    return a;
}

store_rc store_artifact_get(sqlite3 *db, int64_t run_id, const char *name, char **relpath, int64_t *size,
                            char sha256[65]) {
    sqlite3_stmt *st = db_prep(db, "SELECT path, size, sha256 FROM artifacts WHERE run_id = ? AND name = ?");
    if (!st) return STORE_ERROR;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    store_rc rc = STORE_NOT_FOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *relpath = spq_strdup((const char *)sqlite3_column_text(st, 0));
        *size = sqlite3_column_int64(st, 1);
        snprintf(sha256, 65, "%s", sqlite3_column_text(st, 2));
        rc = STORE_OK;
    }
    sqlite3_reset(st);
    return rc;
}

json_t *store_run_counts(sqlite3 *db) {
    json_t *o = json_object();
    sqlite3_stmt *st = db_prep(db, "SELECT status, n FROM run_counts ORDER BY CASE status WHEN 'queued' THEN 0 WHEN 'running' THEN 1 "
                                   "WHEN 'done' THEN 2 WHEN 'failed' THEN 3 ELSE 4 END");
    if (!st) return o;
    while (sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(o, (const char *)sqlite3_column_text(st, 0), json_integer(sqlite3_column_int64(st, 1)));
    sqlite3_reset(st);
    return o;
}

int store_events_after(sqlite3 *db, int64_t run_id, int64_t after_id, int limit, store_event_fn fn, void *ud) {
    sqlite3_stmt *st = db_prep(db, run_id > 0 ? "SELECT id, run_id, type, data FROM events WHERE run_id = ?1 AND id > ?2 "
                                                "ORDER BY id LIMIT ?3"
                                              : "SELECT id, run_id, type, data FROM events WHERE id > ?2 "
                                                "ORDER BY id LIMIT ?3");
    if (!st) return -1;
    if (run_id > 0) sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, after_id);
    sqlite3_bind_int(st, 3, limit);
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        fn(ud, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), (const char *)sqlite3_column_text(st, 2),
           (const char *)sqlite3_column_text(st, 3));
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
        if (step_done(db, st, "prune events")) return -1;
        int n = sqlite3_changes(db);
        total += n;
        if (n < 2000) return total;
    }
}

/* ---- sweeps ---- */

int64_t store_sweep_insert_tx(sqlite3 *db, const char *name, const char *base, const char *grid, const char *owner) {
    sqlite3_stmt *st =
        db_prep(db, "INSERT INTO sweeps(name, base, grid, owner, created_at) VALUES (?, ?, ?, ?, ?)");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, base, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, grid, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, owner, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 5, db_now());
    if (step_done(db, st, "insert sweep")) return -1;
    return sqlite3_last_insert_rowid(db);
}

static json_t *sweep_row(sqlite3 *db, sqlite3_stmt *st) {
    json_t *base = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
    json_t *grid = json_loads((const char *)sqlite3_column_text(st, 3), 0, NULL);
    json_t *o = json_pack("{s:I,s:s,s:o,s:o,s:s,s:f}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
                          (const char *)sqlite3_column_text(st, 1), "base", base ? base : json_null(), "grid",
                          grid ? grid : json_null(), "owner", (const char *)sqlite3_column_text(st, 4), "created_at",
                          sqlite3_column_double(st, 5));
    sqlite3_stmt *c = db_prep(db, "SELECT status, count(*) FROM runs WHERE sweep_id = ? GROUP BY status");
    json_t *counts = json_object();
    if (c) {
        sqlite3_bind_int64(c, 1, sqlite3_column_int64(st, 0));
        while (sqlite3_step(c) == SQLITE_ROW)
            json_object_set_new(counts, (const char *)sqlite3_column_text(c, 0), json_integer(sqlite3_column_int64(c, 1)));
        sqlite3_reset(c);
    }
    json_object_set_new(o, "runs_by_status", counts);
    return o;
}

json_t *store_sweep_get(sqlite3 *db, int64_t id) {
    sqlite3_stmt *st = db_prep(db, "SELECT id, name, base, grid, owner, created_at FROM sweeps WHERE id = ?");
    if (!st) return NULL;
    sqlite3_bind_int64(st, 1, id);
    json_t *o = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        /* sweep_row uses another cached statement; copy out this row first */
        o = sweep_row(db, st);
    }
    sqlite3_reset(st);
    return o;
}

json_t *store_sweeps_list(sqlite3 *db, int limit, int offset) {
    sqlite3_stmt *st =
        db_prep(db, "SELECT id, name, base, grid, owner, created_at FROM sweeps ORDER BY id DESC LIMIT ? OFFSET ?");
    if (!st) return NULL;
    sqlite3_bind_int(st, 1, limit);
    sqlite3_bind_int(st, 2, offset);
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) json_array_append_new(a, sweep_row(db, st));
    sqlite3_reset(st);
    return a;
}

/* ---- workers ---- */

int64_t store_worker_add(sqlite3 *db, const char *name, const char *kind, int pid, const char *addr) {
    if (db_begin(db)) return -1;
    sqlite3_stmt *st = db_prep(db, "INSERT INTO workers(name, kind, state, pid, addr, connected_at, last_seen) "
                                   "VALUES (?, ?, 'starting', ?, ?, ?, ?)");
    if (!st) goto fail;
    double t = db_now();
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    if (pid > 0) sqlite3_bind_int(st, 3, pid);
    else sqlite3_bind_null(st, 3);
    if (addr) sqlite3_bind_text(st, 4, addr, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 4);
    sqlite3_bind_double(st, 5, t);
    sqlite3_bind_double(st, 6, t);
    if (step_done(db, st, "add worker")) goto fail;
    int64_t id = sqlite3_last_insert_rowid(db);
    return db_commit(db) ? -1 : id;
fail:
    db_rollback(db);
    return -1;
}

int store_worker_state(sqlite3 *db, int64_t id, const char *state, int64_t run_id) {
    if (db_begin(db)) return -1;
    sqlite3_stmt *st = db_prep(db, "UPDATE workers SET state = ?, run_id = ?, last_seen = ? WHERE id = ?");
    if (!st) goto fail;
    sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
    if (run_id > 0) sqlite3_bind_int64(st, 2, run_id);
    else sqlite3_bind_null(st, 2);
    sqlite3_bind_double(st, 3, db_now());
    sqlite3_bind_int64(st, 4, id);
    if (step_done(db, st, "worker state")) goto fail;
    json_t *e = json_pack("{s:I,s:s}", "worker_id", (json_int_t)id, "state", state);
    if (run_id > 0) json_object_set_new(e, "run", json_integer(run_id));
    if (db_event(db, 0, "worker", e) < 0) goto fail;
    return db_commit(db);
fail:
    db_rollback(db);
    return -1;
}

static int worker_update(sqlite3 *db, const char *sql, int64_t id, int arg) {
    if (db_begin(db)) return -1;
    sqlite3_stmt *st = db_prep(db, sql);
    if (!st) {
        db_rollback(db);
        return -1;
    }
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, arg);
    if (step_done(db, st, "worker update")) {
        db_rollback(db);
        return -1;
    }
    return db_commit(db);
}

int store_worker_restarted(sqlite3 *db, int64_t id, int pid) {
    return worker_update(db, "UPDATE workers SET restarts = restarts + 1, pid = ?2, state = 'starting' WHERE id = ?1",
                         id, pid);
}

int store_worker_job_done(sqlite3 *db, int64_t id) {
    return worker_update(db, "UPDATE workers SET jobs_done = jobs_done + 1 WHERE id = ?1 AND ?2 = ?2", id, 0);
}

int store_workers_reset(sqlite3 *db) {
    if (db_begin(db)) return -1;
    if (db_exec(db, "DELETE FROM workers")) {
        db_rollback(db);
        return -1;
    }
    return db_commit(db);
}

json_t *store_workers_list(sqlite3 *db) {
    sqlite3_stmt *st = db_prep(db, "SELECT id, name, kind, state, pid, addr, run_id, jobs_done, restarts, "
                                   "connected_at, last_seen FROM workers WHERE state != 'gone' ORDER BY id");
    if (!st) return NULL;
    static const char *names[] = {"id",     "name",      "kind",     "state",        "pid",      "addr",
                                  "run_id", "jobs_done", "restarts", "connected_at", "last_seen"};
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_t *o = json_object();
        for (int i = 0; i < 11; i++) json_object_set_new(o, names[i], col_json(st, i));
        json_array_append_new(a, o);
    }
    sqlite3_reset(st);
    return a;
}

/* ---- tokens ---- */

store_rc store_token_create(sqlite3 *db, const char *name, const char *role, const char *hash_hex) {
    if (db_begin(db)) return STORE_ERROR;
    sqlite3_stmt *st = db_prep(db, "INSERT INTO tokens(name, role, hash, created_at) VALUES (?, ?, ?, ?)");
    if (!st) {
        db_rollback(db);
        return STORE_ERROR;
    }
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
    sqlite3_stmt *st = db_prep(db, "SELECT name, role FROM tokens WHERE hash = ? AND revoked = 0");
    if (!st) return -1;
    sqlite3_bind_text(st, 1, hash_hex, -1, SQLITE_STATIC);
    int found = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(name, 64, "%s", sqlite3_column_text(st, 0));
        snprintf(role, 64, "%s", sqlite3_column_text(st, 1));
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
    sqlite3_stmt *st = db_prep(db, "SELECT name, role, created_at, revoked FROM tokens ORDER BY id");
    if (!st) return NULL;
    json_t *a = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(a, json_pack("{s:s,s:s,s:f,s:b}", "name", (const char *)sqlite3_column_text(st, 0),
                                           "role", (const char *)sqlite3_column_text(st, 1), "created_at",
                                           sqlite3_column_double(st, 2), "revoked", sqlite3_column_int(st, 3)));
    sqlite3_reset(st);
    return a;
}

store_rc store_token_revoke(sqlite3 *db, const char *name) {
    if (db_begin(db)) return STORE_ERROR;
    sqlite3_stmt *st = db_prep(db, "UPDATE tokens SET revoked = 1 WHERE name = ? AND revoked = 0");
    if (!st) {
        db_rollback(db);
        return STORE_ERROR;
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (step_done(db, st, "revoke token")) {
        db_rollback(db);
        return STORE_ERROR;
    }
    int n = sqlite3_changes(db);
    if (db_commit(db)) return STORE_ERROR;
    return n ? STORE_OK : STORE_NOT_FOUND;
}
