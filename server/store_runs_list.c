/* store_runs_list.c - listing runs: filters (status, model, tag, sweep,
 * text), an order by a column or by a metric's latest value (runs that lack
 * the metric come after, newest first), offset pages and keyset pages
 * (before_id) of the newest-first order. This is the daemon's hot read: a
 * page is written as JSON text straight from the statements (jsonw.h), with
 * each run's latest metrics from one more query. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/db.h"
#include "server/jsonw.h"
#include "server/log.h"
#include "server/store.h"
#include "server/store_internal.h"

/* The columns a listing may be ordered by (any other order is a metric key);
 * the first is the id, whose order needs no tie-break. */
static const char *const order_columns[] = {"id",          "created_at", "name",  "status", "started_at",
                                            "finished_at", "model",      "owner", NULL};
enum { ORDER_ID = 0 };

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

/* What a listing query is for. */
typedef enum {
    LIST_ROWS,           /* rows in a column order */
    LIST_COUNT,          /* how many match (the total) */
    LIST_WITH_METRIC,    /* rows that have the order metric (from its index, in value order) */
    LIST_WITHOUT_METRIC, /* rows that lack it */
} list_kind;

/* The listing's SQL after its "SELECT ... FROM runs r". Binds are fixed:
 * ?1 tag, ?2 metric key, ?3 status, ?4 model, ?5 sweep, ?6 text, ?7 limit,
 * ?8 offset, ?9 before_id. */
static void list_sql(char *sql, size_t cap, const store_run_filter *f, list_kind kind) {
    size_t n = strlen(sql);
    if (kind == LIST_WITH_METRIC) n += snprintf(sql + n, cap - n, " JOIN metrics_latest m ON m.run_id = r.id AND m.key = ?2");
    if (f->tag) n += snprintf(sql + n, cap - n, " JOIN run_tags t ON t.run_id = r.id AND t.tag = ?1");
    n += snprintf(sql + n, cap - n, " WHERE 1");
    if (kind == LIST_WITHOUT_METRIC)
        n += snprintf(sql + n, cap - n, " AND NOT EXISTS (SELECT 1 FROM metrics_latest x WHERE x.run_id = r.id "
                                        "AND x.key = ?2)");
    if (f->status) n += snprintf(sql + n, cap - n, " AND r.status = ?3");
    if (f->model) n += snprintf(sql + n, cap - n, " AND r.model = ?4");
    if (f->sweep_id > 0) n += snprintf(sql + n, cap - n, " AND r.sweep_id = ?5");
    if (f->text)
        n += snprintf(sql + n, cap - n, " AND (r.name LIKE ?6 ESCAPE '\\' OR r.model LIKE ?6 ESCAPE '\\')");
    if (f->before_id > 0 && kind != LIST_COUNT) /* the cursor bounds rows, not the total */
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

/* Column i of the current row as JSON text, shown as kind says. */
static void col_text(jw *w, sqlite3_stmt *st, int i, col_kind kind) {
    if (kind == COL_BOOL) {
        jw_bool(w, sqlite3_column_int(st, i));
    } else if (kind == COL_JSON || kind == COL_TAGS) { /* stored as JSON by us */
        jw_raw(w, (const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i));
    } else if (sqlite3_column_type(st, i) == SQLITE_NULL) {
        jw_null(w);
    } else if (kind == COL_INT) {
        jw_int(w, sqlite3_column_int64(st, i));
    } else if (kind == COL_TIME) {
        jw_fixed(w, sqlite3_column_double(st, i), 6);
    } else {
        jw_str(w, (const char *)sqlite3_column_text(st, i));
    }
}

/* RUN_COLS of the current row as JSON object members (open object). */
static void run_row_text(jw *w, sqlite3_stmt *st) {
    jw_obj(w);
    for (int i = 0; i < RUN_NCOLS; i++) {
        jw_key(w, store_run_cols[i].key);
        col_text(w, st, i, store_run_cols[i].kind);
    }
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
        r->id = sqlite3_column_int64(st, RUN_COL_id);
        run_row_text(&r->row, st);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        log_error("store: list runs: %s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* A run's latest value of a metric: METRIC_COLS from column first on. */
#define METRIC_COLS "key, step, value"
enum { METRIC_KEY, METRIC_STEP, METRIC_VALUE };

/* The metric at column first as the member "key":{"step":s,"value":v}. */
static void metric_member(jw *w, sqlite3_stmt *st, int first) {
    jw_key(w, (const char *)sqlite3_column_text(st, first + METRIC_KEY));
    jw_obj(w);
    jw_key(w, "step");
    jw_int(w, sqlite3_column_int64(st, first + METRIC_STEP));
    jw_key(w, "value");
    if (sqlite3_column_type(st, first + METRIC_VALUE) == SQLITE_NULL) jw_null(w);
    else jw_num(w, sqlite3_column_double(st, first + METRIC_VALUE), 17);
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
        enum { RUN_ID, METRIC };
        sqlite3_stmt *st =
            db_prep(db, "SELECT run_id, " METRIC_COLS " FROM metrics_latest WHERE run_id BETWEEN ? AND ?");
        if (!st) return;
        sqlite3_bind_int64(st, 1, lo);
        sqlite3_bind_int64(st, 2, hi);
        int at = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(st, RUN_ID);
            for (int k = 0; k < pg->n; k++) { /* start where the last match was */
                int j = (at + k) % pg->n;
                if (pg->rows[j].id == id) {
                    metric_member(&pg->rows[j].metrics, st, METRIC);
                    at = j;
                    break;
                }
            }
        }
        sqlite3_reset(st);
        return;
    }
    sqlite3_stmt *st = db_prep(db, "SELECT " METRIC_COLS " FROM metrics_latest WHERE run_id = ?");
    if (!st) return;
    for (int i = 0; i < pg->n; i++) {
        sqlite3_bind_int64(st, 1, pg->rows[i].id);
        while (sqlite3_step(st) == SQLITE_ROW) metric_member(&pg->rows[i].metrics, st, 0);
        sqlite3_reset(st);
    }
}

static int64_t list_count(sqlite3 *db, const store_run_filter *f, const char *like, list_kind kind) {
    sqlite3_stmt *cs;
    if (kind == LIST_COUNT && !f->tag && !f->model && !f->sweep_id && !f->text) { /* kept by triggers: no scan */
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
        list_sql(sql, sizeof sql, f, LIST_WITH_METRIC);
        n = strlen(sql);
        snprintf(sql + n, sizeof sql - n, " ORDER BY m.value %s, m.run_id %s LIMIT ?7 OFFSET ?8", dir, dir);
        bad = list_rows(db, sql, f, like, f->limit, f->offset, &pg);
        int got = pg.n;
        if (!bad && got < f->limit) {
            int64_t with = got > 0 ? f->offset + got : list_count(db, f, like, LIST_WITH_METRIC);
            int64_t off = f->offset > with ? f->offset - with : 0;
            char sql2[1024] = "SELECT " RUN_COLS " FROM runs r";
            list_sql(sql2, sizeof sql2, f, LIST_WITHOUT_METRIC);
            n = strlen(sql2);
            snprintf(sql2 + n, sizeof sql2 - n, " ORDER BY r.id DESC LIMIT ?7 OFFSET ?8");
            bad = list_rows(db, sql2, f, like, f->limit - got, (int)off, &pg);
        }
    } else {
        list_sql(sql, sizeof sql, f, LIST_ROWS);
        n = strlen(sql);
        if (column > ORDER_ID)
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
    jw_int(&w, list_count(db, f, like, LIST_COUNT));
    jw_key(&w, "limit");
    jw_int(&w, f->limit);
    jw_key(&w, "offset");
    jw_int(&w, f->offset);
    jw_key(&w, "next_before_id");
    int newest_first = !f->order || (column == ORDER_ID && f->order_desc);
    if (newest_first && pg.n == f->limit) jw_int(&w, pg.rows[pg.n - 1].id);
    else jw_null(&w);
    jw_end(&w);
    page_free(&pg);
    return jw_take(&w, NULL);
}
