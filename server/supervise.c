/* supervise.c - see supervise.h. */
#include "server/supervise.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/db.h"
#include "server/log.h"
#include "server/store.h"

static local_worker *g_workers;
static int g_n;
static uv_loop_t *g_loop;
static const spqd_config *g_cfg;
static int g_stopping;

static void spawn(local_worker *lw);

static void on_restart_timer(uv_timer_t *t) { spawn(t->data); }

/* A local worker's connection ended (wconn_close). */
static void on_conn_closed(wconn *wc, int graceful) {
    local_worker *lw = wc->owner;
    if (lw->conn == wc) lw->conn = NULL;
    /* a local worker that broke its protocol (or hangs) is restarted from
     * scratch; one that closed its end is exiting by itself: a SIGKILL now
     * would land in its exit (a drained worker closes the connection first,
     * then exits 0) and be reported as its death; the drain's SIGTERM skips
     * it too (supervise_stop) */
    if (lw->running && !graceful && !wc->peer_closed) uv_process_kill(&lw->proc, SIGKILL);
    if (wc->peer_closed) lw->exiting = 1;
}

static void on_proc_closed(uv_handle_t *h) {
    local_worker *lw = h->data;
    lw->running = 0;
    if (g_stopping || lw->stopping) return;
    /* back-off: 0.25 s doubling per quick failure, up to 30 s */
    double up = spq_now() - lw->started;
    if (up > 60) lw->failures = 0;
    double delay = 0.25;
    for (int i = 0; i < lw->failures && delay < 30; i++) delay *= 2;
    if (delay > 30) delay = 30;
    lw->failures++;
    log_info("local worker %d: restarting in %.2fs", lw->slot, delay);
    uv_timer_start(&lw->restart, on_restart_timer, (uint64_t)(delay * 1000), 0);
}

static void on_worker_exit(uv_process_t *p, int64_t status, int sig) {
    local_worker *lw = p->data;
    if (sig) log_warn("local worker %d (pid %d) was killed by signal %d", lw->slot, lw->pid, sig);
    else if (status) log_warn("local worker %d (pid %d) exited with status %lld", lw->slot, lw->pid, (long long)status);
    else log_info("local worker %d (pid %d) exited", lw->slot, lw->pid);
    if (lw->conn) {
        char why[64];
        snprintf(why, sizeof why, sig ? "process killed by signal %d" : "process exited with status %d",
                 sig ? sig : (int)status);
        wconn_close(lw->conn, why, 0);
    }
    uv_close((uv_handle_t *)p, on_proc_closed);
}

static void spawn(local_worker *lw) {
    if (g_stopping) return;
    wconn *wc = wconn_new(1);
    wc->on_close = on_conn_closed;
    wc->owner = lw;
    uv_pipe_init(g_loop, &wc->h.pipe, 0);
    wc->h.handle.data = wc;
    char name[32], fd[] = "3";
    snprintf(name, sizeof name, "local-%d", lw->slot);
    char *args[] = {(char *)g_cfg->worker_bin, "--fd", fd, "--models-dir", (char *)g_cfg->models_dir,
                    "--datasets-dir", (char *)g_cfg->datasets_dir, "--name", name, NULL};
    uv_stdio_container_t stdio[4];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    stdio[3].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
    stdio[3].data.stream = &wc->h.stream;
    uv_process_options_t opt;
    memset(&opt, 0, sizeof opt);
    opt.file = g_cfg->worker_bin;
    opt.args = args;
    opt.exit_cb = on_worker_exit;
    opt.stdio = stdio;
    opt.stdio_count = 4;
    opt.flags = UV_PROCESS_DETACHED;
    lw->proc.data = lw;
    lw->started = spq_now();
    int rc = uv_spawn(g_loop, &lw->proc, &opt);
    if (rc) {
        log_error("local worker %d: cannot start %s: %s", lw->slot, g_cfg->worker_bin, uv_strerror(rc));
        wc->on_close = NULL;
        wconn_close(wc, "the worker process could not be started", 1);
        uv_close((uv_handle_t *)&lw->proc, on_proc_closed);
        return;
    }
    lw->running = 1;
    lw->exiting = 0;
    lw->pid = lw->proc.pid;
    lw->conn = wc;
    sqlite3 *db = db_get();
    if (lw->worker_id <= 0) lw->worker_id = db ? store_worker_add(db, name, "local", lw->pid, NULL) : -1;
    else if (db) store_worker_restarted(db, lw->worker_id, lw->pid);
    wc->local_id = lw->worker_id;
    snprintf(wc->name, sizeof wc->name, "%s", name);
    if (gethostname(wc->host, sizeof wc->host)) snprintf(wc->host, sizeof wc->host, "localhost");
    wc->host[sizeof wc->host - 1] = 0;
    wconn_start(wc);
    log_info("local worker %d started (pid %d)", lw->slot, lw->pid);
}

int supervise_start(uv_loop_t *loop, const spqd_config *cfg, spq_err *err) {
    g_loop = loop;
    g_cfg = cfg;
    g_n = cfg->workers;
    g_workers = spq_calloc(g_n ? g_n : 1, sizeof *g_workers);
    if (g_n && access(cfg->worker_bin, X_OK))
        return spq_fail(err, "worker_bin %s is not an executable (build it, or set --worker-bin)", cfg->worker_bin);
    for (int i = 0; i < g_n; i++) {
        local_worker *lw = &g_workers[i];
        lw->slot = i;
        uv_timer_init(loop, &lw->restart);
        lw->restart.data = lw;
        spawn(lw);
    }
    return 0;
}

void supervise_stop(int sig) {
    g_stopping = 1;
    for (int i = 0; i < g_n; i++) {
        local_worker *lw = &g_workers[i];
        lw->stopping = 1;
        uv_timer_stop(&lw->restart);
        if (lw->running && sig && (!lw->exiting || sig == SIGKILL)) uv_process_kill(&lw->proc, sig);
    }
}

int supervise_alive(void) {
    int n = 0;
    for (int i = 0; i < g_n; i++) n += g_workers[i].running;
    return n;
}

void supervise_close(void) {
    for (int i = 0; i < g_n; i++)
        if (!uv_is_closing((uv_handle_t *)&g_workers[i].restart)) uv_close((uv_handle_t *)&g_workers[i].restart, NULL);
}
