/* http.c - see http.h. The route table is at the bottom of the file's
 * helpers: method, path pattern ({id}: a positive integer; {arg}: any
 * segment), the least role it needs, the query parameters it takes. */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/api.h"
#include "server/db.h"
#include "server/log.h"
#include "server/metrics.h"
#include "server/reply.h"
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
    {"POST", "/api/runs/{id}/compare", ROLE_VIEWER, "", api_run_proxy},
    {"POST", "/api/runs/{id}/tokenize", ROLE_VIEWER, "", api_run_proxy},
    {"POST", "/api/runs/{id}/detokenize", ROLE_VIEWER, "", api_run_proxy},
    {"GET", "/api/runs/{id}/slots", ROLE_VIEWER, "", api_run_proxy},
    {"GET", "/api/runs/{id}/props", ROLE_VIEWER, "", api_run_proxy},
};
enum { N_ROUTES = sizeof routes / sizeof routes[0] };

/* Limits of a request's head, below libmicrohttpd's own (its connection
 * memory, MEMORY_LIMIT, holds the head): a head between ours and its limit
 * gets our JSON 414/431; only a larger one meets libmicrohttpd's own HTML
 * answer, which has no hook. */
#define MAX_URL 8192
#define MAX_HEADERS 16384
#define MEMORY_LIMIT (64u << 10)

typedef struct {
    http_req r;
    char *raw_url;  /* the request target as sent (undecoded), for the checks */
    char *url_copy; /* for the log line after MHD has recycled its own */
    size_t cap;
    int started;    /* the access handler has seen this request */
    int head;       /* 1: in its thread's open heads, 2: counted there as overflow, 0: neither */
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

/* 1 when s (n bytes, undecoded) holds a control character, raw or as %XX:
 * libmicrohttpd decodes %00 into a NUL that silently ends the name. */
static int hexval(char ch) {
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

static int has_control(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int ch = (unsigned char)s[i];
        if (ch == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0)
            ch = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
        if (ch < 0x20 || ch == 0x7f) return 1;
    }
    return 0;
}

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

/* The request's head against our limits and rules, before routing: a 414,
 * 431 or 400 (as JSON), or a response with resp NULL when it passes. */
static http_res check_head(req_ctx *c) {
    const char *raw = c->raw_url ? c->raw_url : c->r.url;
    size_t n = strlen(raw);
    if (n > MAX_URL) return http_err(414, "uri_too_long", "url", "the URL has %zu bytes; at most %d", n, MAX_URL);
    size_t headers = 0;
    MHD_get_connection_values(c->r.conn, MHD_HEADER_KIND, sum_header, &headers);
    if (headers > MAX_HEADERS)
        return http_err(431, "headers_too_large", "headers", "the request headers have %zu bytes; at most %d", headers,
                        MAX_HEADERS);
    size_t path_len = strcspn(raw, "?");
    if (has_control(raw, path_len))
        return http_err(400, "invalid_path", "path", "the path contains a control character (%%00-%%1F or %%7F)");
    for (const char *q = raw + path_len; *q;) { /* each parameter: name=value */
        q++;
        size_t len = strcspn(q, "&");
        if (has_control(q, len)) {
            char name[64];
            size_t k = strcspn(q, "=&");
            snprintf(name, sizeof name, "%.*s", (int)(k < sizeof name ? k : sizeof name - 1), q);
            return http_err(400, "invalid_parameter", name, "%s: contains a control character (%%00-%%1F or %%7F)",
                            name);
        }
        q += len;
    }
    return (http_res){0, NULL};
}

static http_res dispatch(req_ctx *c, const char *url, const char *method) {
    http_req *r = &c->r;
    http_res bad_head = check_head(c);
    if (bad_head.resp) {
        c->route = "(bad request)";
        return bad_head;
    }
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
        return http_not_allowed(method, allow);
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

static void head_close(req_ctx *c); /* see "errors libmicrohttpd answers by itself" below */

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size,
                               void **con_cls) {
    req_ctx *c = *con_cls;
    if (!c) { /* no URI callback ran (cannot happen with ours, but never crash) */
        c = spq_calloc(1, sizeof *c);
        c->t0 = spq_now();
        *con_cls = c;
    }
    if (!c->started) {
        c->started = 1;
        head_close(c);
        c->r.conn = conn;
        c->r.method = intern_method(method);
        c->url_copy = spq_strdup(url);
        if (strlen(c->url_copy) > 200) c->url_copy[200] = 0;
        c->r.url = c->url_copy;
        c->r.cfg = g_cfg;
        c->route = "(unknown)";
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

/* ---- errors libmicrohttpd answers by itself ----
 *
 * libmicrohttpd 0.9.75 (Debian 12's) answers some broken heads before any
 * handler of ours runs, with a fixed HTML body and no hook to replace it: a
 * malformed or huge Content-Length (400/413; and its 400 is written twice,
 * a bug of that version: the state it set for the error is overwritten and
 * the reply built again), and headers past its connection memory (431).
 * It logs each such error through our logger, from the thread that handles
 * the connection, while handling it. Each pool thread keeps the requests
 * whose request line it has parsed (the URI callback) and that have not
 * reached the handler yet; when exactly one is open, the failing request
 * is that one, and the logger answers it with our JSON error, then shuts
 * the socket's sending side, so that libmicrohttpd's own reply cannot
 * follow (its send fails and it closes the connection). With more than
 * one open head on the thread the request is left to libmicrohttpd. A URL
 * longer than its memory (414) fails before the request line is parsed,
 * so it is not known here: that one keeps libmicrohttpd's HTML. */
#define MAX_HEADS 8

static __thread struct {
    struct MHD_Connection *conn;
    req_ctx *ctx;
} tl_heads[MAX_HEADS];
static __thread int tl_n_heads, tl_heads_overflow;

static void head_open(struct MHD_Connection *conn, req_ctx *c) {
    if (tl_n_heads == MAX_HEADS) {
        tl_heads_overflow++;
        c->head = 2;
        return;
    }
    tl_heads[tl_n_heads].conn = conn;
    tl_heads[tl_n_heads++].ctx = c;
    c->head = 1;
}

/* The request reached the handler, was answered or ended. */
static void head_close(req_ctx *c) {
    if (c->head == 2) tl_heads_overflow--;
    if (c->head == 1)
        for (int i = 0; i < tl_n_heads; i++)
            if (tl_heads[i].ctx == c) {
                tl_heads[i] = tl_heads[--tl_n_heads];
                break;
            }
    c->head = 0;
}

/* Writes status with the JSON error straight to the connection's socket
 * and shuts its sending side. */
static void answer_early(struct MHD_Connection *conn, req_ctx *c, unsigned status, const char *code, const char *field,
                         const char *message) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return;
    json_t *e = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", message, "field", field);
    char *body = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    if (!body) return;
    const char *reason = status == 413 ? "Content Too Large" : status == 431 ? "Request Header Fields Too Large"
                                                                            : "Bad Request";
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, reason, strlen(body), body);
    free(body);
    if (n <= 0 || n >= (int)sizeof buf) return;
    if (send(ci->connect_fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) return;
    shutdown(ci->connect_fd, SHUT_WR);
    c->status = status;
    c->route = "(bad request)";
}

/* The logger's side: the messages that announce one of those errors. */
static void early_error(const char *fmt, va_list ap) {
    static const char cl_bad[] = "Failed to parse `Content-Length' header", cl_big[] = "Too large value of 'Content-Length'",
                      generic[] = "Error processing request (HTTP response code is %u";
    unsigned status = 0;
    if (!strncmp(fmt, cl_bad, sizeof cl_bad - 1)) status = 400;
    else if (!strncmp(fmt, cl_big, sizeof cl_big - 1)) status = 413;
    else if (!strncmp(fmt, generic, sizeof generic - 1)) {
        va_list aq;
        va_copy(aq, ap);
        status = va_arg(aq, unsigned) == 431 ? 431 : 0; /* a 431 comes after the request line: one of ours */
        va_end(aq);
    }
    if (!status || tl_n_heads != 1 || tl_heads_overflow) return;
    struct MHD_Connection *conn = tl_heads[0].conn;
    req_ctx *c = tl_heads[0].ctx;
    head_close(c);
    if (status == 431)
        answer_early(conn, c, 431, "headers_too_large", "headers", "the request headers are too large");
    else if (status == 413)
        answer_early(conn, c, 413, "too_large", "Content-Length", "Content-Length: too large a value");
    else answer_early(conn, c, 400, "invalid_header", "Content-Length", "Content-Length: expected a decimal byte count");
}

/* Called by libmicrohttpd with the request target as sent, before it
 * decodes it: the context starts here so that the checks see the raw form
 * (a %00 is gone from the decoded path). */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *conn) {
    req_ctx *c = spq_calloc(1, sizeof *c);
    c->t0 = spq_now();
    c->raw_url = spq_strdup(uri);
    c->r.method = "-";
    head_open(conn, c);
    return c;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    req_ctx *c = *con_cls;
    if (!c) return;
    head_close(c);
    if (c->started || c->status) {
        metrics_http(c->route, c->r.method, c->status, spq_now() - c->t0);
        if (c->status >= 500) log_warn("%s %s -> %u", c->r.method, c->r.url, c->status);
        else log_debug("%s %s -> %u", c->r.method, c->r.url, c->status);
    }
    free(c->r.body);
    free(c->url_copy);
    free(c->raw_url);
    free(c);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    early_error(fmt, ap);
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    log_debug("http: %s", msg);
}

/* The listening socket, made here rather than by libmicrohttpd: without
 * SO_REUSEPORT (a second daemon on the port must fail, not share it with
 * the kernel splitting the requests) and with the bind error in hand. */
static int listen_socket(const spqd_config *cfg, char *host, size_t cap, int *v6, unsigned *bound, spq_err *err) {
    int port;
    if (config_split_hostport(cfg->listen, host, cap, &port, err)) return spq_fail_prefix(err, "listen");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    int gai = getaddrinfo(host, ports, &hints, &res);
    if (gai) return spq_fail(err, "listen %s: %s", cfg->listen, gai_strerror(gai));
    *v6 = res->ai_family == AF_INET6;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    /* SO_REUSEADDR only lets a restart bind past TIME_WAIT; two live
     * listeners still conflict */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        (*v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one)) ||
        bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 1024)) {
        int e = errno;
        freeaddrinfo(res);
        if (fd >= 0) close(fd);
        if (e == EADDRINUSE)
            return spq_fail(err, "cannot listen on %s: address in use (another spinqd or another program has it)",
                            cfg->listen);
        return spq_fail(err, "cannot listen on %s: %s", cfg->listen, strerror(e));
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    *bound = (unsigned)port;
    if (!getsockname(fd, (struct sockaddr *)&ss, &len))
        *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int http_start(const spqd_config *cfg, spq_err *err) {
    g_cfg = cfg;
    char host[128];
    int v6 = 0;
    unsigned port = 0;
    int fd = listen_socket(cfg, host, sizeof host, &v6, &port, err);
    if (fd < 0) return -1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    g_daemon = MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL,
                                MHD_OPTION_LISTEN_SOCKET, fd,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
                                MHD_OPTION_CONNECTION_LIMIT, 4096u,
                                MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MEMORY_LIMIT,
                                MHD_OPTION_URI_LOG_CALLBACK, uri_seen, NULL,
                                MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                MHD_OPTION_END);
    if (!g_daemon) {
        close(fd);
        return spq_fail(err, "cannot start the HTTP server on %s (see the log at debug level)", cfg->listen);
    }
    log_info("http: listening on http://%s%s%s:%u (%d threads)", v6 ? "[" : "", host, v6 ? "]" : "", port,
             cfg->http_threads);
    return 0;
}

void http_stop(void) {
    if (!g_daemon) return;
    MHD_socket fd = MHD_quiesce_daemon(g_daemon); /* the listening socket is ours again */
    MHD_stop_daemon(g_daemon);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    g_daemon = NULL;
}
