/* api_sweeps.c - sweeps: a base spec and a grid over spec paths,
 *
 *   {"name": "lr x seed", "base": {...spec...},
 *    "grid": {"rotation.train.lr": [0.5, 1.5], "seed": [0, 1, 2]}}
 *
 * create one run per point of the grid's cartesian product. Every point is
 * validated (spec parser, models and datasets) before anything is stored,
 * and the sweep and its runs are inserted in one transaction: a sweep is
 * created whole or not at all. Grid paths use the spec's field names, with
 * array elements as "eval.ppl[0].seqlen" (or "eval.ppl.0.seqlen"). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api.h"
#include "server/db.h"
#include "server/sched.h"
#include "server/store.h"

#define MAX_AXES 16
#define MAX_POINTS 1000

typedef struct {
    char path[SPQ_FIELD_MAX]; /* normalized: eval.ppl[0].seqlen */
    json_t *values;           /* borrowed from the request */
} axis;

/* Splits a grid path into segments (keys and indices) and writes its
 * normalized form; -1 when malformed. */
static int parse_path(const char *path, char segs[][64], int *is_index, int *n, char *norm) {
    *n = 0;
    norm[0] = 0;
    const char *p = path;
    if (!*p || strlen(path) >= SPQ_FIELD_MAX - 8) return -1;
    while (*p) {
        if (*n == 16) return -1;
        int idx = 0;
        size_t len = 0;
        if (*p == '[') {
            p++;
            while (isdigit((unsigned char)*p) && len < 8) segs[*n][len++] = *p++;
            if (*p != ']' || !len) return -1;
            p++;
            idx = 1;
        } else {
            while (*p && *p != '.' && *p != '[' && len < 63) {
                if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_') return -1;
                segs[*n][len++] = *p++;
            }
            if (!len) return -1;
            segs[*n][len] = 0;
            idx = 1;
            for (size_t i = 0; i < len; i++) idx &= isdigit((unsigned char)segs[*n][i]) != 0;
            if (idx && *n == 0) return -1; /* the top level is an object */
        }
        segs[*n][len] = 0;
        is_index[*n] = idx;
        size_t m = strlen(norm);
        if (idx) snprintf(norm + m, SPQ_FIELD_MAX - m, "[%s]", segs[*n]);
        else snprintf(norm + m, SPQ_FIELD_MAX - m, "%s%s", m ? "." : "", segs[*n]);
        (*n)++;
        if (*p == '.') {
            p++;
            if (!*p || *p == '.' || *p == '[') return -1;
        }
    }
    return 0;
}

/* Sets path in root to value (a new reference); intermediate objects are
 * created, array elements must exist. -1 with why. */
static int set_path(json_t *root, const char *path, json_t *value, char *why, size_t cap) {
    char segs[16][64], norm[SPQ_FIELD_MAX];
    int is_index[16], n;
    if (parse_path(path, segs, is_index, &n, norm)) {
        snprintf(why, cap, "not a spec path (expected names like rotation.train.lr or eval.ppl[0].seqlen)");
        return -1;
    }
    json_t *cur = root;
    for (int i = 0; i < n; i++) {
        int last = i == n - 1;
        if (is_index[i]) {
            if (!json_is_array(cur)) {
                snprintf(why, cap, "'%s' indexes something that is not an array in the base spec", segs[i]);
                return -1;
            }
            size_t k = (size_t)atoi(segs[i]);
            if (k >= json_array_size(cur)) {
                snprintf(why, cap, "index %zu is past the end of the base spec's array", k);
                return -1;
            }
            if (last) return json_array_set(cur, k, value);
            cur = json_array_get(cur, k);
        } else {
            if (!json_is_object(cur)) {
                snprintf(why, cap, "'%s' is below something that is not an object", segs[i]);
                return -1;
            }
            if (last) return json_object_set(cur, segs[i], value);
            json_t *next = json_object_get(cur, segs[i]);
            if (!next) {
                next = json_object();
                json_object_set_new(cur, segs[i], next);
            }
            cur = next;
        }
    }
    return 0;
}

/* label = "path=value" + (label empty ? "" : " " + label), truncated to cap. */
static void prepend(char *label, size_t cap, const char *path, const char *value) {
    char *old = spq_strdup(label);
    int n = snprintf(label, cap, "%s=%s%s%s", path, value, old[0] ? " " : "", old);
    if (n < 0 || (size_t)n >= cap) label[cap - 1] = 0;
    free(old);
}

http_res api_sweeps_create(http_req *r) {
    json_t *body;
    http_res res;
    if (api_body_json(r, &body, &res)) return res;
    axis axes[MAX_AXES];
    int n_axes = 0;
    spq_jobspec *specs = NULL;
    int n_specs = 0;
    char **labels = NULL;
    json_t *point = NULL;
    const char *key;
    json_t *v;
    if (!json_is_object(body)) {
        res = http_err(400, "invalid_field", NULL, "a sweep must be a JSON object with base and grid");
        goto done;
    }
    json_object_foreach(body, key, v) {
        if (strcmp(key, "name") && strcmp(key, "base") && strcmp(key, "grid")) {
            res = http_err(422, "invalid_field", key, "%s: unknown field (a sweep has name, base and grid)", key);
            goto done;
        }
    }
    json_t *name = json_object_get(body, "name"), *base = json_object_get(body, "base"),
           *grid = json_object_get(body, "grid");
    if (name && (!json_is_string(name) || !json_string_length(name) || json_string_length(name) > 200)) {
        res = http_err(422, "invalid_field", "name", "name: must be a string of 1 to 200 characters");
        goto done;
    }
    if (!base || !json_is_object(base)) {
        res = http_err(422, "invalid_field", "base", "base: %s", base ? "must be an object (a job spec)" : "is required");
        goto done;
    }
    if (!grid || !json_is_object(grid) || !json_object_size(grid)) {
        res = http_err(422, "invalid_field", "grid", "grid: %s",
                       grid ? "must be a non-empty object of spec paths to arrays of values" : "is required");
        goto done;
    }
    if (json_object_size(grid) > MAX_AXES) {
        res = http_err(422, "invalid_field", "grid", "grid: at most %d paths", MAX_AXES);
        goto done;
    }
    long points = 1;
    json_object_foreach(grid, key, v) {
        char field[SPQ_FIELD_MAX + 8], segs[16][64];
        int is_index[16], n;
        snprintf(field, sizeof field, "grid.%s", key);
        axis *a = &axes[n_axes];
        if (parse_path(key, segs, is_index, &n, a->path)) {
            res = http_err(422, "invalid_field", field,
                           "%s: not a spec path (expected names like rotation.train.lr or eval.ppl[0].seqlen)", field);
            goto done;
        }
        if (!json_is_array(v) || !json_array_size(v)) {
            res = http_err(422, "invalid_field", field, "%s: must be a non-empty array of values", field);
            goto done;
        }
        points *= (long)json_array_size(v);
        if (points > MAX_POINTS) {
            res = http_err(422, "invalid_field", "grid", "grid: more than %d points", MAX_POINTS);
            goto done;
        }
        a->values = v;
        n_axes++;
    }
    specs = spq_calloc((size_t)points, sizeof *specs);
    labels = spq_calloc((size_t)points, sizeof *labels);
    for (long p = 0; p < points; p++) {
        point = json_deep_copy(base);
        char label[1024] = "";
        long rest = p;
        for (int i = n_axes - 1; i >= 0; i--) { /* the last axis varies fastest */
            size_t k = (size_t)(rest % (long)json_array_size(axes[i].values));
            rest /= (long)json_array_size(axes[i].values);
            json_t *val = json_array_get(axes[i].values, k);
            char why[256], field[SPQ_FIELD_MAX + 8];
            snprintf(field, sizeof field, "grid.%s", axes[i].path);
            if (set_path(point, axes[i].path, val, why, sizeof why)) {
                res = http_err(422, "invalid_field", field, "%s: %s", field, why);
                goto done;
            }
            char *txt = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
            prepend(label, sizeof label, axes[i].path, txt ? txt : "?");
            free(txt);
        }
        spq_err err;
        char field[SPQ_FIELD_MAX];
        if (spq_jobspec_parse_value(&specs[p], point, field, &err) ||
            spq_jobspec_check_paths(&specs[p], r->cfg->models_dir, r->cfg->datasets_dir, field, &err)) {
            if (specs[p].model) spq_jobspec_free(&specs[p]);
            int on_axis = 0;
            for (int i = 0; i < n_axes; i++) on_axis |= !strcmp(axes[i].path, field);
            char where[SPQ_FIELD_MAX + 8];
            snprintf(where, sizeof where, "%s%s", on_axis ? "grid." : "base.", field);
            res = http_err(422, "invalid_field", field[0] ? where : "base", "%s (at grid point %s)", err.msg, label);
            goto done;
        }
        n_specs++;
        labels[p] = spq_strdup(label);
        json_decref(point);
        point = NULL;
    }
    /* all points are valid: store the sweep and its runs at once */
    char *base_txt = json_dumps(base, JSON_COMPACT), *grid_txt = json_dumps(grid, JSON_COMPACT);
    const char *sweep_name = name ? json_string_value(name) : specs[0].name;
    int64_t sweep_id = -1;
    json_t *ids = json_array();
    if (!db_begin(r->db)) {
        sweep_id = store_sweep_insert_tx(r->db, sweep_name, base_txt, grid_txt, r->who.name);
        for (long p = 0; sweep_id > 0 && p < points; p++) {
            char run_name[1300];
            snprintf(run_name, sizeof run_name, "%s [%s]", sweep_name, labels[p]);
            if (!json_object_get(json_object_get(body, "base"), "name")) {
                free(specs[p].name);
                specs[p].name = spq_strdup(run_name);
            }
            int64_t id = store_run_insert_tx(r->db, &specs[p], r->who.name, sweep_id);
            if (id < 0) sweep_id = -1;
            else json_array_append_new(ids, json_integer(id));
        }
        if (sweep_id > 0 && db_event(r->db, 0, "sweep", json_pack("{s:I,s:s,s:i}", "sweep_id", (json_int_t)sweep_id,
                                                                   "name", sweep_name, "runs", (int)points)) < 0)
            sweep_id = -1;
        if (sweep_id > 0) {
            if (db_commit(r->db)) sweep_id = -1;
        } else {
            db_rollback(r->db);
        }
    }
    free(base_txt);
    free(grid_txt);
    if (sweep_id < 0) {
        json_decref(ids);
        res = http_err(500, "internal", NULL, "the store failed (see the daemon log)");
        goto done;
    }
    sched_kick();
    json_t *sw = store_sweep_get(r->db, sweep_id);
    res = http_json(201, json_pack("{s:o,s:o}", "sweep", sw ? sw : json_null(), "runs", ids));
done:
    for (int i = 0; i < n_specs; i++) spq_jobspec_free(&specs[i]);
    if (labels)
        for (int i = 0; i < n_specs; i++) free(labels[i]);
    free(specs);
    free(labels);
    json_decref(point);
    json_decref(body);
    return res;
}

http_res api_sweeps_list(http_req *r) {
    http_res res;
    int ok = 1;
    int limit = (int)http_query_int(r, "limit", 50, 1, 1000, &ok, &res);
    int offset = ok ? (int)http_query_int(r, "offset", 0, 0, 1000000000, &ok, &res) : 0;
    if (!ok) return res;
    json_t *l = store_sweeps_list(r->db, limit, offset);
    return l ? http_json(200, json_pack("{s:o}", "sweeps", l)) : http_err(500, "internal", NULL, "the store failed");
}

http_res api_sweep_get(http_req *r) {
    json_t *sw = store_sweep_get(r->db, r->id);
    if (!sw) return http_err(404, "not_found", "id", "no sweep %lld", (long long)r->id);
    store_run_filter f;
    http_res res;
    if (api_run_filter(r, &f, 1000, &res)) {
        json_decref(sw);
        return res;
    }
    f.sweep_id = r->id;
    char *text = store_runs_list(r->db, &f);
    json_t *runs = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!runs) {
        json_decref(sw);
        return http_err(500, "internal", NULL, "the store failed");
    }
    json_object_set(sw, "runs", json_object_get(runs, "runs"));
    json_object_set(sw, "next_before_id", json_object_get(runs, "next_before_id"));
    json_decref(runs);
    return http_json(200, sw);
}
