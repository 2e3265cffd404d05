/* api_runs.c - /api/runs and everything under a run: create (the spec is
 * validated by the worker's own parser, and every model and dataset it
 * names must exist inside the configured directories), list with filters,
 * metric order and pages, get, cancel, delete, metric history, event
 * streams, checkpoints and artifacts.
 *
 * Status codes: 400 malformed JSON or parameters, 422 a spec field that is
 * wrong (the error names it), 404 no such run, 403 not yours, 409 the run's
 * state does not allow it. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/api.h"
#include "server/db.h"
#include "server/listcache.h"
#include "server/sched.h"
#include "server/sse.h"
#include "server/store.h"

int api_body_json(http_req *r, json_t **out, http_res *res) {
    if (!r->body_len) {
        *res = http_err(400, "invalid_json", NULL, "the request body is empty; expected a JSON object");
        return -1;
    }
    json_error_t je;
    *out = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
    if (!*out) {
        *res = http_err(400, "invalid_json", NULL, "invalid JSON at line %d, column %d: %s", je.line, je.column,
                        je.text);
        return -1;
    }
    return 0;
}

static http_res store_failure(void) { return http_err(500, "internal", NULL, "the store failed (see the daemon log)"); }

static http_res run_or_404(http_req *r, int with_spec) {
    store_rc rc;
    json_t *run = store_run_get(r->db, r->id, with_spec, &rc);
    if (run) return http_json(200, run);
    if (rc == STORE_NOT_FOUND) return http_err(404, "not_found", "id", "no run %lld", (long long)r->id);
    return store_failure();
}

http_res api_runs_create(http_req *r) {
    json_t *body;
    http_res res;
    if (api_body_json(r, &body, &res)) return res;
    spq_jobspec spec;
    spq_err err;
    char field[SPQ_FIELD_MAX];
    int bad = spq_jobspec_parse_value(&spec, body, field, &err);
    json_decref(body);
    if (bad) return http_err(422, "invalid_field", field[0] ? field : NULL, "%s", err.msg);
    if (spq_jobspec_check_paths(&spec, r->cfg->models_dir, r->cfg->datasets_dir, field, &err)) {
        spq_jobspec_free(&spec);
        return http_err(422, "invalid_field", field, "%s", err.msg);
    }
    int64_t id = store_run_create(r->db, &spec, r->who.name, 0);
    spq_jobspec_free(&spec);
    if (id < 0) return store_failure();
    sched_kick();
    r->id = id;
    res = run_or_404(r, 1);
    res.status = res.status == 200 ? 201 : res.status;
    return res;
}

static const char *const statuses[] = {"queued", "running", "done", "failed", "canceled", NULL};

/* Fills f from the query; 0 or -1 with *res. */
int api_run_filter(http_req *r, store_run_filter *f, int default_limit, http_res *res) {
    memset(f, 0, sizeof *f);
    int ok = 1;
    f->status = http_query(r, "status");
    if (f->status) {
        int known = 0;
        for (int i = 0; statuses[i]; i++) known |= !strcmp(statuses[i], f->status);
        if (!known) {
            *res = http_err(400, "invalid_parameter", "status",
                            "status: expected queued, running, done, failed or canceled");
            return -1;
        }
    }
    static const char *const strs[] = {"model", "tag", "q", "order"};
    const char **dst[] = {&f->model, &f->tag, &f->text, &f->order};
    for (int i = 0; i < 4; i++) {
        const char *v = http_query(r, strs[i]);
        if (v && (!*v || strlen(v) > 255)) {
            *res = http_err(400, "invalid_parameter", strs[i], "%s: expected 1 to 255 characters", strs[i]);
            return -1;
        }
        if (v && !spq_utf8_valid(v, strlen(v))) { /* would match nothing, silently */
            *res = http_err(400, "invalid_parameter", strs[i], "%s: not valid UTF-8", strs[i]);
            return -1;
        }
        *dst[i] = v;
    }
    if (f->order && f->order[0] == '-') {
        f->order_desc = 1;
        f->order++;
        if (!*f->order) {
            *res = http_err(400, "invalid_parameter", "order", "order: expected a column or metric key after '-'");
            return -1;
        }
    }
    /* a misspelt key would otherwise list everything in the default order */
    int known = f->order ? store_order_known(r->db, f->order) : 1;
    if (known < 0) {
        *res = http_err(500, "internal", NULL, "the store failed (see the daemon log)");
        return -1;
    }
    if (!known) {
        *res = http_err(400, "invalid_parameter", "order",
                        "order: '%s' is neither a column (id, created_at, name, status, started_at, finished_at, "
                        "model, owner) nor a metric key of any run",
                        f->order);
        return -1;
    }
    f->sweep_id = http_query_int(r, "sweep", 0, 1, INT64_MAX, &ok, res);
    if (ok) f->limit = (int)http_query_int(r, "limit", default_limit, 1, 1000, &ok, res);
    if (ok) f->offset = (int)http_query_int(r, "offset", 0, 0, 1000000000, &ok, res);
    if (ok) f->before_id = http_query_int(r, "before_id", 0, 1, INT64_MAX, &ok, res);
    if (ok && f->before_id && f->order && !(f->order_desc && !strcmp(f->order, "id"))) {
        *res = http_err(400, "invalid_parameter", "before_id",
                        "before_id: a cursor of the newest-first order; use offset with order=%s%s",
                        f->order_desc ? "-" : "", f->order);
        return -1;
    }
    return ok ? 0 : -1;
}

http_res api_runs_list(http_req *r) {
    store_run_filter f;
    http_res res;
    if (api_run_filter(r, &f, 50, &res)) return res;
    char key[1600];
    snprintf(key, sizeof key, "%s|%s|%s|%s|%lld|%s|%d|%d|%d|%lld", f.status ? f.status : "", f.model ? f.model : "",
             f.tag ? f.tag : "", f.text ? f.text : "", (long long)f.sweep_id, f.order ? f.order : "", f.order_desc,
             f.limit, f.offset, (long long)f.before_id);
    uint64_t gen = db_generation(); /* read before the listing: a write during it makes the entry stale */
    char *list = listcache_get(key, gen);
    if (list) return http_json_text(200, list);
    list = store_runs_list(r->db, &f);
    if (!list) return store_failure();
    listcache_put(key, gen, list);
    return http_json_text(200, list);
}

http_res api_run_get(http_req *r) { return run_or_404(r, 1); }

/* 0 when the caller may change run r->id (an admin, or its owner); else -1
 * with *res (404 or 403). */
static int check_owner(http_req *r, http_res *res, char *status) {
    char owner[64];
    store_rc rc = store_run_owner(r->db, r->id, owner, sizeof owner, status);
    if (rc == STORE_NOT_FOUND) {
        *res = http_err(404, "not_found", "id", "no run %lld", (long long)r->id);
        return -1;
    }
    if (rc != STORE_OK) {
        *res = store_failure();
        return -1;
    }
    if (r->who.role < ROLE_ADMIN && strcmp(owner, r->who.name)) {
        *res = http_err(403, "forbidden", NULL, "run %lld belongs to '%s'; a member may change only their own runs",
                        (long long)r->id, owner);
        return -1;
    }
    return 0;
}

http_res api_run_cancel(http_req *r) {
    http_res res;
    char status[16];
    if (check_owner(r, &res, status)) return res;
    int now;
    store_rc rc = store_run_cancel(r->db, r->id, &now);
    if (rc == STORE_CONFLICT)
        return http_err(409, "conflict", NULL, "run %lld is %s; only queued or running runs can be canceled",
                        (long long)r->id, status);
    if (rc == STORE_NOT_FOUND) return http_err(404, "not_found", "id", "no run %lld", (long long)r->id);
    if (rc != STORE_OK) return store_failure();
    sched_kick();
    res = run_or_404(r, 0);
    if (res.status == 200 && !now) res.status = 202; /* the worker stops it */
    return res;
}

http_res api_run_delete(http_req *r) {
    http_res res;
    char status[16];
    if (check_owner(r, &res, status)) return res;
    store_rc rc = store_run_delete(r->db, r->id, r->cfg->data_dir);
    if (rc == STORE_CONFLICT)
        return http_err(409, "conflict", NULL, "run %lld is running; cancel it first", (long long)r->id);
    if (rc == STORE_NOT_FOUND) return http_err(404, "not_found", "id", "no run %lld", (long long)r->id);
    if (rc != STORE_OK) return store_failure();
    return http_json(200, json_pack("{s:I}", "deleted", (json_int_t)r->id));
}

static int run_exists(http_req *r, http_res *res) {
    char owner[64], status[16];
    store_rc rc = store_run_owner(r->db, r->id, owner, sizeof owner, status);
    if (rc == STORE_OK) return 1;
    *res = rc == STORE_NOT_FOUND ? http_err(404, "not_found", "id", "no run %lld", (long long)r->id) : store_failure();
    return 0;
}

http_res api_run_metrics(http_req *r) {
    http_res res;
    if (!run_exists(r, &res)) return res;
    const char *key = http_query(r, "key");
    int ok = 1;
    int64_t since = http_query_int(r, "since_step", -1, -1, INT64_MAX, &ok, &res);
    int limit = ok ? (int)http_query_int(r, "limit", 10000, 1, 100000, &ok, &res) : 0;
    if (!ok) return res;
    if (!key) {
        json_t *m = store_metrics_latest(r->db, r->id);
        return m ? http_json(200, json_pack("{s:I,s:o}", "run_id", (json_int_t)r->id, "metrics", m)) : store_failure();
    }
    if (!*key || strlen(key) > 200) return http_err(400, "invalid_parameter", "key", "key: expected 1 to 200 characters");
    json_t *pts = store_metric_history(r->db, r->id, key, since, limit);
    if (!pts) return store_failure();
    return http_json(200, json_pack("{s:I,s:s,s:I,s:o}", "run_id", (json_int_t)r->id, "key", key, "since_step",
                                    (json_int_t)since, "points", pts));
}

/* Last-Event-ID header, else ?last_event_id=; dflt when neither. */
static int last_event_id(http_req *r, int64_t dflt, int64_t *out, http_res *res) {
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
    *out = dflt;
    if (h) {
        char *end;
        long long x = strtoll(h, &end, 10);
        if (!*h || *end || x < 0) {
            *res = http_err(400, "invalid_parameter", "Last-Event-ID", "Last-Event-ID: expected an event id");
            return -1;
        }
        *out = x;
        return 0;
    }
    int ok = 1;
    *out = http_query_int(r, "last_event_id", dflt, 0, INT64_MAX, &ok, res);
    return ok ? 0 : -1;
}

static http_res stream(http_req *r, int64_t run_id, int64_t last) {
    struct MHD_Response *resp = sse_response(r->conn, run_id, last);
    if (!resp) return http_err(500, "internal", NULL, "cannot open the stream");
    return (http_res){200, resp};
}

http_res api_run_events(http_req *r) {
    http_res res;
    if (!run_exists(r, &res)) return res;
    int64_t last;
    if (last_event_id(r, 0, &last, &res)) return res; /* a new client gets the run's whole story */
    return stream(r, r->id, last);
}

http_res api_events(http_req *r) {
    http_res res;
    int64_t last;
    if (last_event_id(r, store_events_max_id(r->db), &last, &res)) return res; /* a new client: from now on */
    return stream(r, 0, last);
}

/* {"run_id": id, key: the list} of a run that exists. */
static http_res run_list(http_req *r, const char *key, json_t *(*list)(sqlite3 *, int64_t)) {
    http_res res;
    if (!run_exists(r, &res)) return res;
    json_t *l = list(r->db, r->id);
    return l ? http_json(200, json_pack("{s:I,s:o}", "run_id", (json_int_t)r->id, key, l)) : store_failure();
}

http_res api_run_checkpoints(http_req *r) { return run_list(r, "checkpoints", store_checkpoints_list); }

http_res api_run_checkpoint_get(http_req *r) {
    http_res res;
    if (!run_exists(r, &res)) return res;
    int64_t step = -1;
    if (strcmp(r->arg, "latest")) {
        char *end;
        long long x = strtoll(r->arg, &end, 10);
        if (*end || x < 0 || r->arg[0] < '0' || r->arg[0] > '9')
            return http_err(400, "bad_id", "step", "the checkpoint step must be a number or 'latest'");
        step = x;
    }
    void *data;
    size_t len;
    int64_t got;
    store_rc rc = store_checkpoint_get(r->db, r->id, step, &data, &len, &got);
    if (rc == STORE_NOT_FOUND) return http_err(404, "not_found", "step", "run %lld has no such checkpoint", (long long)r->id);
    if (rc != STORE_OK) return store_failure();
    res = http_bytes(200, data, len, "application/octet-stream");
    char hdr[128];
    snprintf(hdr, sizeof hdr, "run%lld-step%lld.ckpt", (long long)r->id, (long long)got);
    http_attachment(res, hdr);
    snprintf(hdr, sizeof hdr, "%lld", (long long)got);
    MHD_add_response_header(res.resp, "X-Checkpoint-Step", hdr);
    return res;
}

http_res api_run_artifacts(http_req *r) { return run_list(r, "artifacts", store_artifacts_list); }

http_res api_run_artifact_get(http_req *r) {
    http_res res;
    if (!run_exists(r, &res)) return res;
    char *rel, sha[65];
    int64_t size;
    store_rc rc = store_artifact_get(r->db, r->id, r->arg, &rel, &size, sha);
    if (rc == STORE_NOT_FOUND) return http_err(404, "not_found", "name", "run %lld has no artifact of that name", (long long)r->id);
    if (rc != STORE_OK) return store_failure();
    char *path = spq_path_join(r->cfg->data_dir, rel);
    free(rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || st.st_size != size) {
        if (fd >= 0) close(fd);
        return http_err(410, "gone", "name", "the artifact file is missing or changed on disk");
    }
    res = http_file(fd, (uint64_t)size, "application/octet-stream", r->arg);
    if (res.status != 200) return res;
    http_attachment(res, r->arg);
    MHD_add_response_header(res.resp, "X-Sha256", sha);
    return res;
}
