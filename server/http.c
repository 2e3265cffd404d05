/* http.c - see http.h. The route table is at the bottom of the file's
 * helpers: method, path pattern ({id}: a positive integer; {arg}: any
 * segment), the least role it needs, the query parameters it takes. */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api.h"
#include "server/db.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/static.h"

typedef struct {
    const char *method;
    const char *pattern;
    int role; /* ROLE_NONE: public */
    const char *query;
    http_res (*fn)(http_req *);
} route;

static const route routes[] = {
    {"GET", "/api/health", ROLE_NONE, "", api_health},
    {"GET", "/metrics", ROLE_VIEWER, "", api_metrics},
    {"GET", "/api/whoami", ROLE_VIEWER, "", api_whoami},
    {"GET", "/api/runs", ROLE_VIEWER, "status model tag sweep q order limit offset before_id", api_runs_list},
    {"POST", "/api/runs", ROLE_MEMBER, "", api_runs_create},
    {"GET", "/api/runs/{id}", ROLE_VIEWER, "", api_run_get},
    {"DELETE", "/api/runs/{id}", ROLE_MEMBER, "", api_run_delete},
    {"POST", "/api/runs/{id}/cancel", ROLE_MEMBER, "", api_run_cancel},
    {"GET", "/api/runs/{id}/metrics", ROLE_VIEWER, "key since_step limit", api_run_metrics},
    {"GET", "/api/runs/{id}/events", ROLE_VIEWER, "last_event_id access_token", api_run_events},
    {"GET", "/api/runs/{id}/checkpoints", ROLE_VIEWER, "", api_run_checkpoints},
    {"GET", "/api/runs/{id}/checkpoints/{arg}", ROLE_VIEWER, "", api_run_checkpoint_get},
    {"GET", "/api/runs/{id}/artifacts", ROLE_VIEWER, "", api_run_artifacts},
    {"GET", "/api/runs/{id}/artifacts/{arg}", ROLE_VIEWER, "", api_run_artifact_get},
    {"GET", "/api/events", ROLE_VIEWER, "last_event_id access_token", api_events},
    {"GET", "/api/sweeps", ROLE_VIEWER, "limit offset", api_sweeps_list},
    {"POST", "/api/sweeps", ROLE_MEMBER, "", api_sweeps_create},
    {"GET", "/api/sweeps/{id}", ROLE_VIEWER, "order limit offset before_id status", api_sweep_get},
    {"GET", "/api/workers", ROLE_VIEWER, "", api_workers},
    {"GET", "/api/defaults", ROLE_VIEWER, "", api_defaults},
    /* serving a finished run's model (api_serve.c) */
    {"POST", "/api/runs/{id}/serve", ROLE_MEMBER, "", api_run_serve_start},
    {"DELETE", "/api/runs/{id}/serve", ROLE_MEMBER, "", api_run_serve_stop},
    {"GET", "/api/runs/{id}/serve", ROLE_VIEWER, "", api_run_serve_get},
    {"GET", "/api/serving", ROLE_VIEWER, "", api_serving},
    {"GET", "/api/runs/{id}/v1/models", ROLE_VIEWER, "", api_run_proxy},
    {"POST", "/api/runs/{id}/v1/completions", ROLE_VIEWER, "", api_run_proxy},
    {"POST", "/api/runs/{id}/v1/chat/completions", ROLE_VIEWER, "", api_run_proxy},
    {"POST", "/api/runs/{id}/completion", ROLE_VIEWER, "", api_run_proxy},
    {"POST", "/api/runs/{id}/tokenize", ROLE_VIEWER, "", api_run_proxy},
    {"POST", "/api/runs/{id}/detokenize", ROLE_VIEWER, "", api_run_proxy},
    {"GET", "/api/runs/{id}/slots", ROLE_VIEWER, "", api_run_proxy},
    {"GET", "/api/runs/{id}/props", ROLE_VIEWER, "", api_run_proxy},
};
enum { N_ROUTES = sizeof routes / sizeof routes[0] };

typedef struct {
    http_req r;
    char *url_copy; /* for the log line after MHD has recycled its own */
    size_t cap;
    int too_large;
    double t0;
    const char *route;
    unsigned status;
} req_ctx;

static struct MHD_Daemon *g_daemon;

/* A method name that outlives the request (metrics keep it). */
static const char *intern_method(const char *m) {
    static const char *const known[] = {"GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(known[i], m)) return known[i];
    return "OTHER";
}
static const spqd_config *g_cfg;

/* ---- responses ---- */

http_res http_json(unsigned status, json_t *body) {
    char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(body);
    if (!s) s = spq_strdup("{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode the response\"}}");
    size_t n = strlen(s);
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return (http_res){status, resp};
}

http_res http_json_text(unsigned status, char *text) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return (http_res){status, resp};
}

http_res http_err(unsigned status, const char *code, const char *field, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:s,s:s,s:o}", "code", code, "message", msg, "field", field ? json_string(field) : json_null());
    if (!e) /* a message that is not UTF-8 (cannot happen with our texts, but never crash) */
        e = json_pack("{s:s,s:s,s:n}", "code", code, "message", "(unprintable message)", "field");
    return http_json(status, json_pack("{s:o}", "error", e));
}

const char *http_query(const http_req *r, const char *key) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

int64_t http_query_int(const http_req *r, const char *key, int64_t dflt, int64_t lo, int64_t hi, int *ok,
                       http_res *res) {
    const char *v = http_query(r, key);
    if (!v) return dflt;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || errno || *end || x < lo || x > hi) {
        *ok = 0;
        *res = http_err(400, "invalid_parameter", key, "%s: expected an integer in [%lld, %lld]", key, (long long)lo,
                        (long long)hi);
        return dflt;
    }
    return x;
}

/* ---- routing ---- */

/* Matches path against pattern; 1 on a match (id/arg filled, *bad_id set
 * when {id} is not a positive integer). */
static int match(const char *pattern, const char *path, int64_t *id, const char **arg, char *argbuf, size_t cap,
                 int *bad_id) {
    *bad_id = 0;
    *arg = NULL;
    *id = 0;
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (*p != '/' || *u != '/') return 0;
        p++;
        u++;
        const char *pe = strchr(p, '/'), *ue = strchr(u, '/');
        size_t pn = pe ? (size_t)(pe - p) : strlen(p), un = ue ? (size_t)(ue - u) : strlen(u);
        if (pn == 4 && !strncmp(p, "{id}", 4)) {
            if (un == 0) return 0;
            char tmp[32];
            int ok = un < sizeof tmp;
            if (ok) {
                memcpy(tmp, u, un);
                tmp[un] = 0;
                char *end;
                errno = 0;
                long long x = strtoll(tmp, &end, 10);
                ok = tmp[0] >= '0' && tmp[0] <= '9' && !errno && !*end && x > 0;
                if (ok) *id = x;
            }
            if (!ok) *bad_id = 1;
        } else if (pn == 5 && !strncmp(p, "{arg}", 5)) {
            if (un == 0 || un >= cap) return 0;
            memcpy(argbuf, u, un);
            argbuf[un] = 0;
            *arg = argbuf;
        } else if (pn != un || strncmp(p, u, pn)) {
            return 0;
        }
        p += pn;
        u += un;
    }
    return !*p && (!*u || !strcmp(u, "/"));
}

typedef struct {
    const char *allowed;
    const char *bad;
} query_check;

static enum MHD_Result check_query_key(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    query_check *q = cls;
    size_t n = strlen(key);
    for (const char *a = q->allowed; *a;) {
        const char *e = strchr(a, ' ');
        size_t an = e ? (size_t)(e - a) : strlen(a);
        if (an == n && !strncmp(a, key, n)) return MHD_YES;
        a += an + (e ? 1 : 0);
    }
    q->bad = key;
    return MHD_NO;
}

static http_res dispatch(req_ctx *c, const char *url, const char *method) {
    http_req *r = &c->r;
    char argbuf[256];
    const route *found = NULL;
    int path_known = 0, bad_id = 0;
    char allow[64] = "";
    for (int i = 0; i < N_ROUTES; i++) {
        int64_t id;
        const char *arg;
        int bad;
        if (!match(routes[i].pattern, url, &id, &arg, argbuf, sizeof argbuf, &bad)) continue;
        path_known = 1;
        snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "", routes[i].method);
        if (strcmp(routes[i].method, method)) continue;
        found = &routes[i];
        r->id = id;
        r->arg = arg;
        bad_id = bad;
        break;
    }
    if (!found && !path_known && !static_is_api_path(url)) { /* the dashboard's files: public */
        c->route = "(static)";
        return static_serve(r->conn, g_cfg->web_dir, method, url);
    }
    if (!found) {
        c->route = path_known ? "(method)" : "(unknown)";
        if (!path_known) return http_err(404, "not_found", NULL, "no such endpoint: %s %s", method, url);
        http_res res = http_err(405, "method_not_allowed", NULL, "%s is not allowed here; allowed: %s", method, allow);
        MHD_add_response_header(res.resp, "Allow", allow);
        return res;
    }
    c->route = found->pattern;
    r->db = db_get();
    if (!r->db) return http_err(503, "unavailable", NULL, "the store is not available");
    if (found->role != ROLE_NONE) {
        char why[256];
        const char *authz = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
        /* a browser's EventSource cannot set headers: the streams also take ?access_token= */
        const char *qt = strstr(found->query, "access_token") ? http_query(r, "access_token") : NULL;
        char bearer[160];
        if (!authz && qt) {
            snprintf(bearer, sizeof bearer, "Bearer %.100s", qt);
            authz = bearer;
        }
        if (auth_identify(r->db, authz, &r->who, why, sizeof why))
            return http_err(401, "unauthorized", "Authorization", "%s", why);
        if (r->who.role < found->role)
            return http_err(403, "forbidden", NULL, "%s %s needs role %s; token '%s' has role %s", method,
                            found->pattern, auth_role_name(found->role), r->who.name, auth_role_name(r->who.role));
    }
    if (bad_id) return http_err(400, "bad_id", "id", "the id in the path must be a positive integer");
    query_check q = {found->query, NULL};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_query_key, &q);
    if (q.bad) return http_err(400, "unknown_parameter", q.bad, "unknown query parameter '%s'", q.bad);
    if (c->too_large)
        return http_err(413, "too_large", "body", "the request body exceeds %d bytes", g_cfg->max_body);
    return found->fn(r);
}

/* ---- libmicrohttpd glue ---- */

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls) {
    req_ctx *c = *con_cls;
    if (!c) {
        c = spq_calloc(1, sizeof *c);
        c->t0 = spq_now();
        c->r.conn = conn;
        c->r.method = intern_method(method);
        c->url_copy = spq_strdup(url);
        if (strlen(c->url_copy) > 200) c->url_copy[200] = 0;
        c->r.url = c->url_copy;
        c->r.cfg = g_cfg;
        c->route = "(unknown)";
        *con_cls = c;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
        /* a body somewhat too large is read and dropped, so that the client
         * sees the 413 rather than a reset connection; an absurd one is
         * answered before it is read (MHD closes the connection after) */
        if (announced > (unsigned long long)g_cfg->max_body) c->too_large = 1;
        if (announced > 64ull << 20) {
            http_res res = http_err(413, "too_large", "body", "the request body exceeds %d bytes", g_cfg->max_body);
            c->status = res.status;
            c->route = "(too large)";
            enum MHD_Result ret = MHD_queue_response(conn, res.status, res.resp);
            MHD_destroy_response(res.resp);
            return ret;
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (c->status) { /* already answered (413): drop the rest */
            *upload_data_size = 0;
            return MHD_YES;
        }
        size_t n = *upload_data_size;
        if (c->too_large || c->r.body_len + n > (size_t)g_cfg->max_body) {
            c->too_large = 1;
        } else {
            if (c->r.body_len + n + 1 > c->cap) {
                c->cap = (c->r.body_len + n + 1) * 2;
                c->r.body = spq_realloc(c->r.body, c->cap);
            }
            memcpy(c->r.body + c->r.body_len, upload_data, n);
            c->r.body_len += n;
            c->r.body[c->r.body_len] = 0;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->status) return MHD_YES;
    http_res res = dispatch(c, url, method);
    if (!res.resp) res = http_err(500, "internal", NULL, "no response");
    c->status = res.status;
    enum MHD_Result ret = MHD_queue_response(conn, res.status, res.resp);
    MHD_destroy_response(res.resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    req_ctx *c = *con_cls;
    if (!c) return;
    metrics_http(c->route, c->r.method, c->status, spq_now() - c->t0);
    if (c->status >= 500) log_warn("%s %s -> %u", c->r.method, c->r.url, c->status);
    else log_debug("%s %s -> %u", c->r.method, c->r.url, c->status);
    free(c->r.body);
    free(c->url_copy);
    free(c);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    log_debug("http: %s", msg);
}

int http_start(const spqd_config *cfg, spq_err *err) {
    g_cfg = cfg;
    char host[128];
    int port;
    if (config_split_hostport(cfg->listen, host, sizeof host, &port, err)) return spq_fail_prefix(err, "listen");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    int gai = getaddrinfo(host, ports, &hints, &res);
    if (gai) return spq_fail(err, "listen %s: %s", cfg->listen, gai_strerror(gai));
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    int v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    g_daemon = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                                MHD_OPTION_CONNECTION_LIMIT, 4096u,
                                MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                                MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                                MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                MHD_OPTION_END);
    if (!g_daemon) return spq_fail(err, "cannot listen on %s (address in use, or not available here)", cfg->listen);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(g_daemon, MHD_DAEMON_INFO_BIND_PORT);
    log_info("http: listening on http://%s%s%s:%u (%d threads)", v6 ? "[" : "", host, v6 ? "]" : "",
             info ? info->port : (unsigned)port, cfg->http_threads);
    return 0;
}

void http_stop(void) {
    if (!g_daemon) return;
    MHD_quiesce_daemon(g_daemon);
    MHD_stop_daemon(g_daemon);
    g_daemon = NULL;
}
