/* api_serve.c - serving a finished run's model: `POST /api/runs/{id}/serve`
 * starts `spinq-worker serve` on a loopback port (the run's packed
 * model.spq when it has one, else the full-precision model with the run's
 * rotation artifact and quantizer bits), `DELETE` stops it, `GET` tells its
 * state, `GET /api/serving` lists them all. The served endpoints are
 * proxied under /api/runs/{id}/v1/... and /api/runs/{id}/completion with
 * the API's tokens and roles: the request goes to the worker as HTTP/1.0
 * (so the answer ends when the connection does), the pool thread waits for
 * the status line and headers, and a thread per proxied request then moves
 * the body into the response as it comes, resuming the suspended
 * connection (as sse.c does): a stream passes through unbuffered. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/base/util.h"
#include "common/job/jobspec.h"
#include "server/api.h"
#include "server/log.h"
#include "server/store.h"

extern char **environ;

#define MAX_SERVED 16

typedef struct {
    int64_t run_id;
    pid_t pid;
    int port;
    char model[1024];
    char kind[16]; /* "packed" or "fp" */
    time_t started;
} served;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static served g_served[MAX_SERVED];
static int g_n;

static served *find(int64_t run_id) {
    for (int i = 0; i < g_n; i++)
        if (g_served[i].run_id == run_id) return &g_served[i];
    return NULL;
}

/* GET /health of a port: 200, 503 (loading), or 0 when nothing answers */
static int health(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int status = 0;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (!connect(fd, (struct sockaddr *)&a, sizeof a)) {
        const char *req = "GET /health HTTP/1.0\r\n\r\n";
        char buf[64] = {0};
        if (write(fd, req, strlen(req)) > 0 && read(fd, buf, sizeof buf - 1) > 12) status = atoi(buf + 9);
    }
    close(fd);
    return status;
}

static json_t *served_json(served *s) {
    int h = health(s->port);
    return json_pack("{s:I,s:s,s:s,s:s,s:i,s:i,s:s,s:I,s:s}", "run_id", (json_int_t)s->run_id, "state",
                     h == 200 ? "ready" : h == 503 ? "loading" : "failed", "model", s->model, "kind", s->kind, "port",
                     s->port, "pid", (int)s->pid, "worker", "local", "started_at", (json_int_t)s->started, "endpoint", "/v1");
}

/* The worker's command line for a run: its packed model, else the
 * full-precision model with the rotation artifact and the quantizer bits;
 * the run's full-precision model as --reference when it can be found (the
 * playground's comparison, /compare). */
static int serve_args(http_req *r, json_t *run, char *model, size_t cap, char *kind, char **extra, int *n_extra,
                      http_res *res) {
    char *rel = NULL, sha[65];
    int64_t size;
    json_t *spec = json_object_get(run, "spec");
    const char *name = json_string_value(json_object_get(spec, "model"));
    char *base = NULL;
    spq_err err;
    if (!name || spq_jobspec_resolve_model(&base, r->cfg->models_dir, name, &err)) base = NULL;
    if (base) {
        extra[(*n_extra)++] = spq_strdup("--reference");
        extra[(*n_extra)++] = spq_strdup(base);
    }
    if (store_artifact_get(r->db, r->id, "model.spq", &rel, &size, sha) == STORE_OK) {
        snprintf(model, cap, "%s/%s", r->cfg->data_dir, rel);
        free(rel);
        free(base);
        strcpy(kind, "packed");
        return 0;
    }
    if (!base) {
        *res = http_err(409, "no_model", "model", "run %lld has no model.spq and its model cannot be found: %s",
                        (long long)r->id, name ? err.msg : "no model in the spec");
        return -1;
    }
    snprintf(model, cap, "%s", base);
    free(base);
    strcpy(kind, "fp");
    if (store_artifact_get(r->db, r->id, "rotation.safetensors", &rel, &size, sha) == STORE_OK) {
        char p[1100];
        snprintf(p, sizeof p, "%s/%s", r->cfg->data_dir, rel);
        free(rel);
        extra[(*n_extra)++] = spq_strdup("--rotation");
        extra[(*n_extra)++] = spq_strdup(p);
    }
    json_t *q = json_object_get(spec, "quant");
    static const char *const bits[][2] = {{"w_bits", "--w-bits"}, {"a_bits", "--a-bits"}, {"kv_bits", "--kv-bits"}};
    for (int i = 0; i < 3; i++) {
        json_int_t b = json_integer_value(json_object_get(q, bits[i][0]));
        if (b > 0 && b < 16) {
            char v[16];
            snprintf(v, sizeof v, "%d", (int)b);
            extra[(*n_extra)++] = spq_strdup(bits[i][1]);
            extra[(*n_extra)++] = spq_strdup(v);
        }
    }
    return 0;
}

/* reads the worker's "listening on http://HOST:PORT" line (10 s at most) */
static int read_port(int fd) {
    char buf[256];
    size_t n = 0;
    double t0 = spq_now();
    while (n < sizeof buf - 1 && spq_now() - t0 < 10) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) continue;
        ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
        if (k <= 0) break;
        n += (size_t)k;
        buf[n] = 0;
        char *nl = strchr(buf, '\n'), *c;
        if (nl && (c = strstr(buf, "listening on http://")) && (c = strrchr(c, ':'))) return atoi(c + 1);
    }
    return -1;
}

http_res api_run_serve_start(http_req *r) {
    store_rc rc;
    json_t *run = store_run_get(r->db, r->id, 1, &rc);
    if (!run) return rc == STORE_NOT_FOUND ? http_err(404, "not_found", "id", "no run %lld", (long long)r->id)
                                           : http_err(500, "internal", NULL, "the store failed");
    const char *status = json_string_value(json_object_get(run, "status"));
    if (!status || strcmp(status, "done")) {
        http_res res = http_err(409, "not_finished", "id", "run %lld is %s; only a finished run can be served",
                                (long long)r->id, status ? status : "unknown");
        json_decref(run);
        return res;
    }
    pthread_mutex_lock(&g_mu);
    served *s = find(r->id);
    if (s) {
        json_t *j = served_json(s);
        pthread_mutex_unlock(&g_mu);
        json_decref(run);
        return http_json(200, j);
    }
    if (g_n == MAX_SERVED) {
        pthread_mutex_unlock(&g_mu);
        json_decref(run);
        return http_err(503, "busy", NULL, "%d models are served already; stop one first", MAX_SERVED);
    }
    served e = {.run_id = r->id, .started = time(NULL)};
    char *extra[16];
    int n_extra = 0;
    http_res res;
    if (serve_args(r, run, e.model, sizeof e.model, e.kind, extra, &n_extra, &res)) {
        pthread_mutex_unlock(&g_mu);
        json_decref(run);
        return res;
    }
    json_decref(run);
    char alias[32];
    snprintf(alias, sizeof alias, "run-%lld", (long long)r->id);
    char *argv[32] = {(char *)r->cfg->worker_bin, "serve", e.model, "--listen", "127.0.0.1:0", "--alias", alias,
                      "--die-with-parent"};
    int argc = 8;
    for (int i = 0; i < n_extra; i++) argv[argc++] = extra[i];
    argv[argc] = NULL;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC)) {
        pthread_mutex_unlock(&g_mu);
        return http_err(500, "internal", NULL, "pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    int err = posix_spawn(&e.pid, r->cfg->worker_bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    for (int i = 0; i < n_extra; i++) free(extra[i]);
    if (err) {
        close(pipefd[0]);
        pthread_mutex_unlock(&g_mu);
        return http_err(500, "internal", NULL, "cannot start %s: %s", r->cfg->worker_bin, strerror(err));
    }
    e.port = read_port(pipefd[0]);
    close(pipefd[0]);
    if (e.port <= 0) {
        kill(e.pid, SIGKILL);
        waitpid(e.pid, NULL, 0);
        pthread_mutex_unlock(&g_mu);
        return http_err(500, "internal", NULL, "the serving worker did not start (see the daemon log)");
    }
    g_served[g_n++] = e;
    log_info("serving run %lld (%s %s) on 127.0.0.1:%d, pid %d", (long long)r->id, e.kind, e.model, e.port,
             (int)e.pid);
    json_t *j = served_json(&g_served[g_n - 1]);
    pthread_mutex_unlock(&g_mu);
    return http_json(202, j);
}

http_res api_run_serve_stop(http_req *r) {
    pthread_mutex_lock(&g_mu);
    served *s = find(r->id);
    if (!s) {
        pthread_mutex_unlock(&g_mu);
        return http_err(404, "not_served", "id", "run %lld is not being served", (long long)r->id);
    }
    pid_t pid = s->pid;
    *s = g_served[--g_n];
    pthread_mutex_unlock(&g_mu);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    log_info("stopped serving run %lld", (long long)r->id);
    return http_json(200, json_pack("{s:I,s:s}", "run_id", (json_int_t)r->id, "state", "stopped"));
}

http_res api_run_serve_get(http_req *r) {
    pthread_mutex_lock(&g_mu);
    served *s = find(r->id);
    json_t *j = s ? served_json(s) : NULL;
    pthread_mutex_unlock(&g_mu);
    if (!j) return http_err(404, "not_served", "id", "run %lld is not being served", (long long)r->id);
    return http_json(200, j);
}

http_res api_serving(http_req *r) {
    json_t *a = json_array();
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < g_n; i++) json_array_append_new(a, served_json(&g_served[i]));
    pthread_mutex_unlock(&g_mu);
    return http_json(200, json_pack("{s:o}", "serving", a));
}

void api_serve_stop_all(void) {
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < g_n; i++) {
        kill(g_served[i].pid, SIGTERM);
        waitpid(g_served[i].pid, NULL, 0);
    }
    g_n = 0;
    pthread_mutex_unlock(&g_mu);
}

/* ---- the proxy ---- */

typedef struct {
    pthread_mutex_t mu;
    struct MHD_Connection *conn;
    int fd, refs, suspended, eof, gone;
    char *buf;
    size_t len, pos, cap;
} proxy;

static void proxy_unref(proxy *p) {
    pthread_mutex_lock(&p->mu);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (!last) return;
    close(p->fd);
    free(p->buf);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void proxy_append(proxy *p, const char *s, size_t n) {
    if (p->len + n > p->cap) {
        p->cap = (p->len + n) * 2 + 4096;
        p->buf = spq_realloc(p->buf, p->cap);
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
}

static void *proxy_thread(void *arg) {
    proxy *p = arg;
    char chunk[16384];
    for (;;) {
        ssize_t n = read(p->fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        pthread_mutex_lock(&p->mu);
        if (n > 0) proxy_append(p, chunk, (size_t)n);
        else p->eof = 1;
        if (p->suspended && !p->gone) {
            p->suspended = 0;
            MHD_resume_connection(p->conn);
        }
        int stop = p->eof || p->gone;
        pthread_mutex_unlock(&p->mu);
        if (stop) break;
    }
    proxy_unref(p);
    return NULL;
}

static ssize_t proxy_reader(void *cls, uint64_t pos, char *out, size_t max) {
    proxy *p = cls;
    pthread_mutex_lock(&p->mu);
    ssize_t n;
    if (p->pos < p->len) {
        n = (ssize_t)(p->len - p->pos < max ? p->len - p->pos : max);
        memcpy(out, p->buf + p->pos, (size_t)n);
        p->pos += (size_t)n;
    } else if (p->eof) n = MHD_CONTENT_READER_END_OF_STREAM;
    else {
        p->suspended = 1;
        MHD_suspend_connection(p->conn);
        n = 0;
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void proxy_free(void *cls) {
    proxy *p = cls;
    pthread_mutex_lock(&p->mu);
    p->gone = 1;
    shutdown(p->fd, SHUT_RDWR); /* wakes the thread; the worker sees the client leave */
    pthread_mutex_unlock(&p->mu);
    proxy_unref(p);
}

http_res api_run_proxy(http_req *r) {
    pthread_mutex_lock(&g_mu);
    served *s = find(r->id);
    int port = s ? s->port : 0;
    pthread_mutex_unlock(&g_mu);
    if (!port)
        return http_err(404, "not_served", "id", "run %lld is not being served (POST /api/runs/%lld/serve)",
                        (long long)r->id, (long long)r->id);
    const char *path = r->url + strlen("/api/runs/");
    while (*path >= '0' && *path <= '9') path++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return http_err(502, "bad_gateway", NULL, "the serving worker of run %lld does not answer", (long long)r->id);
    }
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      r->method, path, r->body_len);
    size_t off = 0;
    int ok = 1;
    for (const char *parts[2] = {head, r->body}; ok && off < 2; off++) {
        size_t n = off ? r->body_len : (size_t)hn, done = 0;
        while (ok && done < n) {
            ssize_t k = write(fd, parts[off] + done, n - done);
            if (k <= 0) ok = 0;
            else done += (size_t)k;
        }
    }
    /* the status line and headers */
    proxy *p = spq_calloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->fd = fd;
    p->conn = r->conn;
    char *end = NULL;
    while (ok && !end) {
        char chunk[8192];
        ssize_t k = read(fd, chunk, sizeof chunk);
        if (k <= 0) break;
        proxy_append(p, chunk, (size_t)k);
        proxy_append(p, "", 1);
        p->len--;
        end = strstr(p->buf, "\r\n\r\n");
    }
    int status = end && p->len > 12 ? atoi(p->buf + 9) : 0;
    if (!status) {
        close(fd);
        free(p->buf);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return http_err(502, "bad_gateway", NULL, "the serving worker of run %lld gave no answer", (long long)r->id);
    }
    char ctype[128] = "application/json", retry[32] = "";
    for (char *line = strstr(p->buf, "\r\n") + 2; line < end; line = strstr(line, "\r\n") + 2) {
        if (!strncasecmp(line, "Content-Type:", 13)) sscanf(line + 13, " %127[^\r]", ctype);
        if (!strncasecmp(line, "Retry-After:", 12)) sscanf(line + 12, " %31[^\r]", retry);
    }
    p->pos = (size_t)(end + 4 - p->buf);
    p->refs = 2; /* the response and the thread */
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, proxy_reader, p,
                                                                  proxy_free);
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (retry[0]) MHD_add_response_header(resp, "Retry-After", retry);
    if (strstr(ctype, "event-stream")) {
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    }
    pthread_t t;
    pthread_create(&t, NULL, proxy_thread, p);
    pthread_detach(t);
    return (http_res){(unsigned)status, resp};
}
