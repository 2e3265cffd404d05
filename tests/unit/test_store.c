/* test_store.c - spinqd's store against a real SQLite file: migrations, the
 * run life cycle (claim, checkpoint, interruption, bounded attempts), listing
 * with filters and metric order, events in commit order, tokens. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/db.h"
#include "server/migrate.h"
#include "server/store.h"

static char dir[64];

static sqlite3 *open_store(void) {
    snprintf(dir, sizeof dir, "/tmp/spq_store_XXXXXX");
    cr_assert(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/spinq.db", dir);
    spq_err err;
    cr_assert_eq(db_init(path, &err), 0, "%s", err.msg);
    return db_get();
}

static void close_store(void) {
    db_close_all();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static int64_t new_run(sqlite3 *db, const char *json, const char *owner) {
    spq_jobspec s;
    spq_err err;
    char field[SPQ_FIELD_MAX];
    cr_assert_eq(spq_jobspec_parse(&s, json, strlen(json), field, &err), 0, "%s", err.msg);
    int64_t id = store_run_create(db, &s, owner, 0);
    spq_jobspec_free(&s);
    cr_assert_gt(id, 0);
    return id;
}

static const char *status_of(sqlite3 *db, int64_t id) {
    static char status[16];
    char owner[64];
    cr_assert_eq(store_run_owner(db, id, owner, sizeof owner, status), STORE_OK);
    return status;
}

Test(store, migrations_apply_once_and_set_user_version) {
    sqlite3 *db = open_store();
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), migrate_latest());
    sqlite3_finalize(st);
    spq_err err;
    cr_assert_eq(migrate_apply(db, &err), 0, "a second start must find nothing to do: %s", err.msg);
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    close_store();
}

Test(store, a_newer_database_is_refused) {
    sqlite3 *db = open_store();
    db_exec(db, "PRAGMA user_version = 999");
    spq_err err;
    cr_assert_eq(migrate_apply(db, &err), -1);
    cr_assert(strstr(err.msg, "999"), "%s", err.msg);
    close_store();
}

Test(store, created_run_reads_back_with_its_normalized_spec) {
    sqlite3 *db = open_store();
    int64_t id = new_run(db, "{\"model\":\"stories260K\",\"tags\":[\"t1\"],\"seed\":3}", "alice");
    store_rc rc;
    json_t *r = store_run_get(db, id, 1, &rc);
    cr_assert_eq(rc, STORE_OK);
    cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "queued");
    cr_assert_str_eq(json_string_value(json_object_get(r, "owner")), "alice");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(r, "tags"), 0)), "t1");
    json_t *spec = json_object_get(r, "spec");
    cr_assert_eq(json_integer_value(json_object_get(spec, "seed")), 3);
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(spec, "quant"), "a_bits")), 4);
    json_decref(r);
    cr_assert_null(store_run_get(db, id + 100, 0, &rc));
    cr_assert_eq(rc, STORE_NOT_FOUND);
    close_store();
}

Test(store, claim_checkpoint_interrupt_resume_then_give_up) {
    sqlite3 *db = open_store();
    int64_t id = new_run(db, "{\"model\":\"m\"}", "a");
    store_job job;
    cr_assert_eq(store_claim_next(db, 7, "w7", "host", 0, &job), 1);
    cr_assert_eq(job.run_id, id);
    cr_assert_eq(job.attempt, 1);
    cr_assert_eq(job.ckpt_step, -1, "a fresh run has no checkpoint");
    store_job_free(&job);
    cr_assert_str_eq(status_of(db, id), "running");
    cr_assert_eq(store_claim_next(db, 8, "w8", "host", 0, &job), 0, "nothing else is queued");

    cr_assert_eq(store_checkpoint(db, id, 10, "ten", 3, 0), 0);
    cr_assert_eq(store_checkpoint(db, id, 20, "twenty", 6, 0), 0);
    int failed;
    cr_assert_eq(store_run_interrupted(db, id, "worker died", 3, 1, &failed), 0);
    cr_assert_eq(failed, 0);
    cr_assert_str_eq(status_of(db, id), "queued");

    cr_assert_eq(store_claim_next(db, 8, "w8", "host", 0, &job), 1);
    cr_assert_eq(job.attempt, 2);
    cr_assert_eq(job.ckpt_step, 20, "resumes from the latest checkpoint");
    cr_assert_eq(job.ckpt_len, 6);
    cr_assert_eq(memcmp(job.ckpt, "twenty", 6), 0);
    store_job_free(&job);

    /* a graceful stop does not use up an attempt */
    cr_assert_eq(store_run_interrupted(db, id, "daemon stopping", 3, 0, &failed), 0);
    cr_assert_eq(store_claim_next(db, 8, "w8", "host", 0, &job), 1);
    cr_assert_eq(job.attempt, 2);
    store_job_free(&job);
    cr_assert_eq(store_run_interrupted(db, id, "worker died", 3, 1, &failed), 0);
    cr_assert_eq(store_claim_next(db, 8, "w8", "host", 0, &job), 1);
    cr_assert_eq(job.attempt, 3);
    store_job_free(&job);
    cr_assert_eq(store_run_interrupted(db, id, "worker died", 3, 1, &failed), 0);
    cr_assert_eq(failed, 1);
    store_rc rc;
    json_t *r = store_run_get(db, id, 0, &rc);
    cr_assert_str_eq(json_string_value(json_object_get(r, "status")), "failed");
    cr_assert(strstr(json_string_value(json_object_get(r, "reason")), "gave up after 3 attempts"));
    json_decref(r);
    close_store();
}

Test(store, keep_drops_all_but_the_newest_checkpoints_of_that_run) {
    sqlite3 *db = open_store();
    int64_t a = new_run(db, "{\"model\":\"m\"}", "a"), b = new_run(db, "{\"model\":\"m\"}", "a");
    cr_assert_eq(store_checkpoint(db, b, 5, "b5", 2, 0), 0);
    for (int step = 1; step <= 4; step++) cr_assert_eq(store_checkpoint(db, a, step, "ck", 2, 2), 0);
    json_t *ca = store_checkpoints_list(db, a), *cb = store_checkpoints_list(db, b);
    cr_assert_eq(json_array_size(ca), 2);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(ca, 0), "step")), 3);
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(ca, 1), "step")), 4);
    cr_assert_eq(json_array_size(cb), 1, "another run's checkpoints stay");
    json_decref(ca);
    json_decref(cb);
    close_store();
}

Test(store, recover_requeues_runs_left_running) {
    sqlite3 *db = open_store();
    int64_t a = new_run(db, "{\"model\":\"m\"}", "a");
    new_run(db, "{\"model\":\"m\"}", "a");
    store_job job;
    cr_assert_eq(store_claim_next(db, 1, "w1", "host", 0, &job), 1);
    cr_assert_eq(job.run_id, a);
    store_job_free(&job);
    cr_assert_eq(store_recover(db), 1);
    cr_assert_str_eq(status_of(db, a), "queued");
    close_store();
}

Test(store, cancel_and_delete_follow_the_run_state) {
    sqlite3 *db = open_store();
    int64_t q = new_run(db, "{\"model\":\"m\"}", "a");
    int64_t r = new_run(db, "{\"model\":\"m\"}", "a");
    int now;
    cr_assert_eq(store_run_cancel(db, q, &now), STORE_OK);
    cr_assert_eq(now, 1);
    cr_assert_str_eq(status_of(db, q), "canceled");
    cr_assert_eq(store_run_cancel(db, q, &now), STORE_CONFLICT, "a finished run cannot be canceled");
    store_job job;
    cr_assert_eq(store_claim_next(db, 1, "w1", "host", 0, &job), 1);
    cr_assert_eq(job.run_id, r);
    store_job_free(&job);
    cr_assert_eq(store_run_cancel(db, r, &now), STORE_OK);
    cr_assert_eq(now, 0, "a running run is canceled by its worker");
    int64_t ids[4];
    cr_assert_eq(store_cancel_requests(db, ids, 4), 1);
    cr_assert_eq(ids[0], r);
    cr_assert_eq(store_run_delete(db, r, dir), STORE_CONFLICT, "a running run cannot be deleted");
    cr_assert_eq(store_run_delete(db, q, dir), STORE_OK);
    cr_assert_eq(store_run_delete(db, q, dir), STORE_NOT_FOUND);
    cr_assert_eq(store_run_cancel(db, 999, &now), STORE_NOT_FOUND);
    close_store();
}

static int64_t list_ids(sqlite3 *db, const store_run_filter *f, int64_t *ids, int *total) {
    char *text = store_runs_list(db, f);
    cr_assert_not_null(text);
    json_error_t je;
    json_t *l = json_loads(text, 0, &je);
    cr_assert_not_null(l, "the listing is not JSON: %s: %s", je.text, text);
    free(text);
    json_t *runs = json_object_get(l, "runs");
    size_t i;
    json_t *r;
    json_array_foreach(runs, i, r) ids[i] = json_integer_value(json_object_get(r, "id"));
    *total = (int)json_integer_value(json_object_get(l, "total"));
    int64_t n = (int64_t)json_array_size(runs);
    json_decref(l);
    return n;
}

Test(store, listing_filters_and_orders_by_a_metric) {
    sqlite3 *db = open_store();
    int64_t a = new_run(db, "{\"model\":\"m1\",\"name\":\"alpha 100%\",\"tags\":[\"x\"]}", "a");
    int64_t b = new_run(db, "{\"model\":\"m2\",\"name\":\"beta\",\"tags\":[\"x\",\"y\"]}", "a");
    int64_t c = new_run(db, "{\"model\":\"m1\",\"name\":\"gamma\"}", "a");
    int64_t d = new_run(db, "{\"model\":\"m1\",\"name\":\"delta\"}", "a");
    cr_assert_eq(store_metric(db, a, "ppl", 0, 9.5), 0);
    cr_assert_eq(store_metric(db, b, "ppl", 0, 7.25), 0);
    cr_assert_eq(store_metric(db, c, "ppl", 0, 12.0), 0);
    cr_assert_eq(store_metric(db, c, "ppl", 1, 8.0), 0); /* the latest step counts */
    int64_t ids[8];
    int total;
    store_run_filter f = {.limit = 10};
    cr_assert_eq(list_ids(db, &f, ids, &total), 4);
    cr_assert_eq(ids[0], d, "newest first by default");
    f.order = "ppl";
    cr_assert_eq(list_ids(db, &f, ids, &total), 4);
    cr_assert_eq(ids[0], b);
    cr_assert_eq(ids[1], c);
    cr_assert_eq(ids[2], a);
    cr_assert_eq(ids[3], d, "runs without the metric come last");
    f.order_desc = 1;
    list_ids(db, &f, ids, &total);
    cr_assert_eq(ids[0], a);
    cr_assert_eq(ids[3], d);
    store_run_filter g = {.limit = 10, .tag = "x"};
    cr_assert_eq(list_ids(db, &g, ids, &total), 2);
    cr_assert_eq(total, 2);
    store_run_filter h = {.limit = 1, .offset = 1, .model = "m1"};
    cr_assert_eq(list_ids(db, &h, ids, &total), 1);
    cr_assert_eq(total, 3);
    cr_assert_eq(ids[0], c);
    store_run_filter t = {.limit = 10, .text = "100%"};
    cr_assert_eq(list_ids(db, &t, ids, &total), 1, "LIKE wildcards in the text are literal");
    cr_assert_eq(ids[0], a);
    store_run_filter s = {.limit = 10, .status = "done"};
    cr_assert_eq(list_ids(db, &s, ids, &total), 0);
    store_run_filter m = {.limit = 10, .order = "model", .order_desc = 1};
    cr_assert_eq(list_ids(db, &m, ids, &total), 4);
    cr_assert_eq(ids[0], b, "model is a column: m2 first when descending");
    cr_assert_eq(ids[1], d, "then m1, newest first among equals");
    json_t *hist = store_metric_history(db, c, "ppl", 0, 100);
    cr_assert_eq(json_array_size(hist), 1, "since_step 0 leaves out step 0");
    json_decref(hist);
    close_store();
}

static int64_t seen[256];
static int n_seen;
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;
static void sink(int64_t id, int64_t run_id, const char *type, const char *json) {
    pthread_mutex_lock(&seen_mu);
    if (n_seen < 256) seen[n_seen++] = id;
    pthread_mutex_unlock(&seen_mu);
}

static void *writer(void *arg) {
    sqlite3 *db = db_get();
    int64_t run = *(int64_t *)arg;
    for (int i = 0; i < 50; i++) store_metric(db, run, "loss", i, 1.0 / (i + 1));
    return NULL;
}

Test(store, events_reach_the_sink_in_commit_order_across_threads) {
    sqlite3 *db = open_store();
    int64_t run = new_run(db, "{\"model\":\"m\"}", "a");
    db_set_event_sink(sink);
    pthread_t t[2];
    int64_t runs[2] = {run, run};
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, writer, &runs[i]);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    cr_assert_eq(n_seen, 100);
    for (int i = 1; i < n_seen; i++) cr_assert_lt(seen[i - 1], seen[i], "event ids published out of order");
    close_store();
}

static int n_replayed;
static int64_t last_replayed;
static void count(void *ud, int64_t id, int64_t run_id, const char *type, const char *json) {
    n_replayed++;
    last_replayed = id;
}

Test(store, events_after_an_id_replay_the_rest) {
    sqlite3 *db = open_store();
    int64_t run = new_run(db, "{\"model\":\"m\"}", "a");
    for (int i = 0; i < 5; i++) store_metric(db, run, "loss", i, i);
    n_replayed = 0;
    cr_assert_eq(store_events_after(db, run, 0, 100, count, NULL), 6); /* run + 5 metrics */
    int64_t mid = last_replayed - 2;
    n_replayed = 0;
    cr_assert_eq(store_events_after(db, run, mid, 100, count, NULL), 2);
    close_store();
}

Test(store, tokens_are_found_by_hash_and_names_are_unique) {
    sqlite3 *db = open_store();
    cr_assert_eq(store_token_count(db), 0);
    cr_assert_eq(store_token_create(db, "alice", "member", "aa"), STORE_OK);
    cr_assert_eq(store_token_create(db, "alice", "viewer", "bb"), STORE_CONFLICT);
    char name[64], role[64];
    cr_assert_eq(store_token_lookup(db, "aa", name, role), 1);
    cr_assert_str_eq(name, "alice");
    cr_assert_str_eq(role, "member");
    cr_assert_eq(store_token_lookup(db, "cc", name, role), 0);
    cr_assert_eq(store_token_revoke(db, "alice"), STORE_OK);
    cr_assert_eq(store_token_lookup(db, "aa", name, role), 0);
    close_store();
}

Test(store, run_counts_follow_every_status_change) {
    sqlite3 *db = open_store();
    int64_t a = new_run(db, "{\"model\":\"m\"}", "a");
    new_run(db, "{\"model\":\"m\"}", "a");
    int now;
    store_run_cancel(db, a, &now);
    store_job job;
    cr_assert_eq(store_claim_next(db, 1, "w1", "host", 0, &job), 1);
    store_job_free(&job);
    json_t *c = store_run_counts(db);
    cr_assert_eq(json_integer_value(json_object_get(c, "queued")), 0);
    cr_assert_eq(json_integer_value(json_object_get(c, "running")), 1);
    cr_assert_eq(json_integer_value(json_object_get(c, "canceled")), 1);
    cr_assert_eq(json_integer_value(json_object_get(c, "done")), 0);
    json_decref(c);
    cr_assert_eq(store_run_delete(db, a, dir), STORE_OK);
    c = store_run_counts(db);
    cr_assert_eq(json_integer_value(json_object_get(c, "canceled")), 0);
    json_decref(c);
    close_store();
}

static int64_t one_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void exec_ok(sqlite3 *db, const char *sql) {
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg ? msg : "");
}

/* A database of the schema before 003 (runs.id without AUTOINCREMENT), with
 * runs, their rows in child tables, and the events of a deleted run 9: 003
 * keeps every row (dropping the old runs table must not cascade), and the
 * next id lies past 9, and past a deleted newest run after that. */
Test(store, migration_003_keeps_runs_and_never_reuses_an_id) {
    char d[] = "/tmp/spq_mig_XXXXXX", path[64];
    cr_assert(mkdtemp(d));
    snprintf(path, sizeof path, "%s/spinq.db", d);
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    exec_ok(db, "PRAGMA foreign_keys = ON");
    spq_err err;
    cr_assert_eq(migrate_apply_to(db, 2, &err), 0, "%s", err.msg);
    exec_ok(db, "INSERT INTO runs(id, name, model, spec, status, owner, created_at, worker_id) VALUES "
                "(1, 'a', 'm', '{}', 'done', 'o', 1, 4), (2, 'b', 'm', '{}', 'queued', 'o', 2, NULL), "
                "(3, 'c', 'm', '{}', 'failed', 'o', 3, NULL);"
                "INSERT INTO run_tags VALUES (1, 'x'); INSERT INTO metrics VALUES (1, 'ppl', 0, 5.5, 1);"
                "INSERT INTO metrics_latest VALUES (1, 'ppl', 0, 5.5);"
                "INSERT INTO checkpoints(run_id, step, data, size, sha256, created_at) VALUES (3, 1, x'00', 1, 's', 1);"
                "INSERT INTO events(run_id, type, data, t) VALUES (1, 'run', '{}', 1), (9, 'deleted', '{}', 2);");
    cr_assert_eq(one_int(db, "SELECT n FROM run_counts WHERE status = 'done'"), 1);
    cr_assert_eq(migrate_apply(db, &err), 0, "%s", err.msg);
    cr_assert_eq(one_int(db, "PRAGMA user_version"), migrate_latest());
    cr_assert_eq(one_int(db, "SELECT count(*) FROM runs"), 3);
    cr_assert_eq(one_int(db, "SELECT worker_id FROM runs WHERE id = 1"), 4);
    cr_assert_eq(one_int(db, "SELECT count(*) FROM run_tags"), 1, "children survive the rebuild");
    cr_assert_eq(one_int(db, "SELECT count(*) FROM metrics"), 1);
    cr_assert_eq(one_int(db, "SELECT count(*) FROM metrics_latest"), 1);
    cr_assert_eq(one_int(db, "SELECT count(*) FROM checkpoints"), 1);
    cr_assert_eq(one_int(db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' "
                             "AND name IN ('runs_status', 'runs_model', 'runs_sweep')"), 3);
    exec_ok(db, "INSERT INTO runs(name, model, spec, status, owner, created_at) VALUES ('d', 'm', '{}', 'done', 'o', 4)");
    int64_t next = one_int(db, "SELECT max(id) FROM runs");
    cr_assert_eq(next, 10, "past the deleted run 9 whose events remain, got %lld", (long long)next);
    cr_assert_eq(one_int(db, "SELECT n FROM run_counts WHERE status = 'done'"), 2, "the count triggers are back");
    exec_ok(db, "DELETE FROM runs WHERE id = 10");
    cr_assert_eq(one_int(db, "SELECT n FROM run_counts WHERE status = 'done'"), 1);
    exec_ok(db, "INSERT INTO runs(name, model, spec, status, owner, created_at) VALUES ('e', 'm', '{}', 'queued', 'o', 5)");
    cr_assert_eq(one_int(db, "SELECT max(id) FROM runs"), 11, "the deleted newest id is not handed out again");
    exec_ok(db, "DELETE FROM runs WHERE id = 1");
    cr_assert_eq(one_int(db, "SELECT count(*) FROM metrics"), 0, "foreign keys cascade again");
    sqlite3_close(db);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    cr_assert_eq(system(cmd), 0);
}

/* Through the store: delete the newest run, create another: a new id, and
 * nothing of the old run's story comes with it. */
Test(store, a_deleted_newest_run_id_is_not_reused) {
    sqlite3 *db = open_store();
    const char *spec = "{\"model\":\"m\"}";
    int64_t a = new_run(db, spec, "o");
    cr_assert_eq(store_run_delete(db, a, dir), STORE_OK);
    int64_t b = new_run(db, spec, "o");
    cr_assert_gt(b, a);
    int n_deleted = 0;
    cr_assert_eq(one_int(db, "SELECT count(*) FROM events WHERE run_id = (SELECT max(id) FROM runs) AND type = 'deleted'"),
                 n_deleted);
    close_store();
}
