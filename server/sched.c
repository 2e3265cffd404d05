/* sched.c - see sched.h. The loop thread owns: the async handle that other
 * threads kick, the remote workers' listener, a 1 s timer (heartbeats,
 * handshake deadlines, a periodic look at the queue), the SSE ping timer
 * (sse_ping seconds),
 * SIGTERM/SIGINT, and the drain. Heartbeats: every tick pings each ready
 * worker; one silent for heartbeat_timeout (a host gone without a FIN: a
 * cable pulled, a link down) is dropped at the next tick, so within
 * heartbeat_timeout + 1 s, and its run re-queued.
 *
 * Draining (first signal): no new jobs; every worker gets SHUTDOWN and its
 * run comes back as "interrupted" (re-queued, attempt not counted) after the
 * worker checkpointed. When no worker is busy, or shutdown_grace has passed
 * (runs still out are re-queued the same way), the workers are stopped, the
 * handles closed and sched_run returns. A second signal ends the grace. */
#include "server/sched.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "server/db.h"
#include "server/log.h"
#include "server/slurm.h"
#include "server/sse.h"
#include "server/store.h"
#include "server/supervise.h"
#include "server/wconn.h"

static uv_loop_t g_loop;
static uv_async_t g_kick;
static uv_tcp_t g_listener;
static int g_listening;
static uv_timer_t g_tick, g_ping;
static uv_signal_t g_sigterm, g_sigint;
static const spqd_config *g_cfg;
static atomic_int g_total, g_busy, g_draining;
static double g_drain_started;
static int g_stopped;
/* other threads may kick only while the async handle lives */
static pthread_rwlock_t g_kick_lock = PTHREAD_RWLOCK_INITIALIZER;
static int g_kick_live;

int sched_draining(void) { return atomic_load(&g_draining); }

void sched_worker_counts(int *total, int *busy) {
    *total = atomic_load(&g_total);
    *busy = atomic_load(&g_busy);
}

/* The connections' hook: ready and busy workers, for other threads. */
static void counts_changed(void) {
    int t = 0, b = 0;
    for (wconn *wc = wconn_list; wc; wc = wc->next)
        if (wc->state == WC_READY) {
            t++;
            b += wc->run_id > 0;
        }
    atomic_store(&g_total, t);
    atomic_store(&g_busy, b);
}

void sched_kick(void) {
    pthread_rwlock_rdlock(&g_kick_lock);
    if (g_kick_live) uv_async_send(&g_kick);
    pthread_rwlock_unlock(&g_kick_lock);
}

/* Cancel requests reach the run's worker once. */
static void send_cancels(sqlite3 *db) {
    int64_t ids[256];
    int n = store_cancel_requests(db, ids, 256);
    for (int i = 0; i < n; i++)
        for (wconn *wc = wconn_list; wc; wc = wc->next)
            if (wc->run_id == ids[i] && !wc->cancel_sent) {
                proto_buf b = {0};
                proto_enc_cancel(&b, &(proto_run_ref){(uint64_t)ids[i]});
                wconn_send(wc, &b);
                wc->cancel_sent = 1;
                log_info("run %lld: cancel sent to worker %s", (long long)ids[i], wc->name);
            }
}

/* The connections' hook and the loop's look at the queue: cancel requests
 * go out, idle workers get the oldest queued runs. */
static void assign(void) {
    sqlite3 *db = db_get();
    if (!db || g_stopped) return;
    send_cancels(db);
    if (atomic_load(&g_draining)) return;
    for (wconn *wc = wconn_list, *next; wc; wc = next) {
        next = wc->next;
        if (wc->state != WC_READY || wc->run_id > 0 || wc->shutdown_sent) continue;
        /* a worker for one run gets that run once; under Slurm no other gets any */
        if (wc->only_run ? wc->only_run_taken : g_cfg->executor_slurm) continue;
        store_job job;
        int rc = store_claim_next(db, wc->worker_id, wc->name, wc->host, wc->only_run, &job);
        if (rc == 0 && wc->only_run) {
            char why[96];
            snprintf(why, sizeof why, "run %lld is no longer queued", (long long)wc->only_run);
            wconn_close(wc, why, 1);
            continue;
        }
        if (rc < 0) break;  /* the store failed: the tick retries */
        if (rc == 0) continue; /* nothing queued */
        wc->only_run_taken = wc->only_run > 0;
        proto_buf b = {0};
        proto_enc_job(&b, &(proto_job){(uint64_t)job.run_id, (uint32_t)job.attempt, job.spec, job.ckpt_step,
                                       job.ckpt, job.ckpt_len});
        wc->run_id = job.run_id;
        wc->cancel_sent = 0;
        store_worker_state(db, wc->worker_id, "busy", job.run_id);
        log_info("run %lld -> worker %s (attempt %d%s)", (long long)job.run_id, wc->name, job.attempt,
                 job.ckpt_step >= 0 ? ", from a checkpoint" : "");
        wconn_send(wc, &b); /* on failure the connection closes and re-queues the run */
        store_job_free(&job);
    }
    counts_changed();
}

static void on_kick(uv_async_t *a) {
    assign();
    slurm_tick(1, atomic_load(&g_draining)); /* a new run or a cancel: Slurm hears of it now */
}

/* ---- remote workers ---- */

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0) {
        log_warn("worker listener: %s", uv_strerror(status));
        return;
    }
    wconn *wc = wconn_new(0);
    uv_tcp_init(&g_loop, &wc->h.tcp);
    wc->h.handle.data = wc;
    if (uv_accept(server, &wc->h.stream)) {
        wconn_close(wc, "accept failed", 1);
        return;
    }
    uv_tcp_nodelay(&wc->h.tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (!uv_tcp_getpeername(&wc->h.tcp, (struct sockaddr *)&ss, &len)) {
        char ip[64] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(wc->addr, sizeof wc->addr, "%s:%d", ip, port);
        snprintf(wc->host, sizeof wc->host, "%s", ip);
    }
    if (atomic_load(&g_draining)) {
        wconn_close(wc, "the daemon is stopping", 1);
        return;
    }
    wconn_start(wc);
}

static int listen_workers(spq_err *err) {
    if (!g_cfg->worker_listen[0]) return 0;
    char host[128];
    int port;
    if (config_split_hostport(g_cfg->worker_listen, host, sizeof host, &port, err))
        return spq_fail_prefix(err, "worker_listen");
    struct sockaddr_storage ss;
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) && uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss))
        return spq_fail(err, "worker_listen %s: not an IP address", g_cfg->worker_listen);
    uv_tcp_init(&g_loop, &g_listener);
    int rc = uv_tcp_bind(&g_listener, (struct sockaddr *)&ss, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)&g_listener, 64, on_connection);
    if (rc) {
        uv_close((uv_handle_t *)&g_listener, NULL);
        return spq_fail(err, "cannot listen for workers on %s: %s", g_cfg->worker_listen, uv_strerror(rc));
    }
    g_listening = 1;
    struct sockaddr_storage got;
    int len = sizeof got;
    uv_tcp_getsockname(&g_listener, (struct sockaddr *)&got, &len);
    int bound = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                                : ((struct sockaddr_in6 *)&got)->sin6_port);
    log_info("workers: listening on %s:%d", host, bound);
    return 0;
}

/* ---- drain ---- */

static void close_handle(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void finish_drain(void) {
    if (g_stopped) return;
    g_stopped = 1;
    pthread_rwlock_wrlock(&g_kick_lock);
    g_kick_live = 0;
    pthread_rwlock_unlock(&g_kick_lock);
    sqlite3 *db = db_get();
    for (wconn *wc = wconn_list, *next; wc; wc = next) {
        next = wc->next;
        if (wc->run_id > 0 && db) {
            int failed;
            store_run_interrupted(db, wc->run_id, "the daemon stopped before the worker finished", g_cfg->max_attempts,
                                  0, &failed);
            wc->run_id = 0;
        }
        wconn_close(wc, "the daemon is stopping", 1);
    }
    supervise_stop(SIGTERM);
    g_drain_started = spq_now(); /* now: when to stop asking politely */
}

/* Finished runs' metric and progress events (the bulk of the events table)
 * go after events_keep_hours; the first pass runs at the first tick, then
 * every tenth of the keep time, between 1 s and an hour. */
static void prune_events(double now) {
    static double last;
    double keep = g_cfg->events_keep_hours * 3600, every = keep / 10;
    every = every < 1 ? 1 : every > 3600 ? 3600 : every;
    if (last && now - last < every) return;
    last = now;
    sqlite3 *db = db_get();
    int64_t n = db ? store_events_prune(db, db_now() - keep) : -1;
    if (n > 0) log_info("pruned %lld metric/progress events of runs finished over %g h ago", (long long)n,
                        g_cfg->events_keep_hours);
}

static void on_tick(uv_timer_t *t) {
    double now = spq_now();
    if (g_stopped) {
        if (supervise_alive() && now - g_drain_started > 3) supervise_stop(SIGKILL);
        if (!supervise_alive()) {
            supervise_close();
            uv_walk(&g_loop, close_handle, NULL);
        }
        return;
    }
    for (wconn *wc = wconn_list, *next; wc; wc = next) {
        next = wc->next;
        if (wc->state == WC_HANDSHAKE && now - wc->opened > 10) wconn_close(wc, "no hello within 10 s", 0);
        else if (wc->state == WC_READY && now - wc->last_seen > g_cfg->heartbeat_timeout) {
            char why[80];
            snprintf(why, sizeof why, "no heartbeat for %g s", g_cfg->heartbeat_timeout);
            log_warn("worker %s (%s): silent for %.1f s", wc->name, wc->local ? "local" : wc->addr, now - wc->last_seen);
            wconn_close(wc, why, 0);
        }
        else if (wc->state == WC_READY) {
            proto_buf b = {0};
            proto_enc_ping(&b, PROTO_PING, &(proto_ping){(uint64_t)now});
            wconn_send(wc, &b);
        }
    }
    prune_events(now);
    slurm_tick(0, atomic_load(&g_draining));
    if (atomic_load(&g_draining)) {
        int busy = 0;
        for (wconn *wc = wconn_list; wc; wc = wc->next) busy += wc->run_id > 0;
        if (!busy || now - g_drain_started > g_cfg->shutdown_grace) finish_drain();
        return;
    }
    assign();
}

static void on_ping(uv_timer_t *t) { sse_ping_all(); }

static void on_signal(uv_signal_t *s, int signum) {
    if (atomic_load(&g_draining)) {
        log_warn("second signal: stopping now");
        g_drain_started = 0; /* grace over */
        finish_drain();
        return;
    }
    log_info("signal %d: draining (no new jobs; workers checkpoint and stop; up to %.0fs)", signum,
             g_cfg->shutdown_grace);
    atomic_store(&g_draining, 1);
    g_drain_started = spq_now();
    supervise_stop(0);
    for (wconn *wc = wconn_list; wc; wc = wc->next)
        if (wc->state == WC_READY && !wc->shutdown_sent) {
            proto_buf b = {0};
            proto_enc_shutdown(&b);
            wconn_send(wc, &b);
            wc->shutdown_sent = 1;
        }
    uv_timer_start(&g_tick, on_tick, 100, 100); /* watch the drain closely */
}

int sched_start(const spqd_config *cfg, spq_err *err) {
    g_cfg = cfg;
    wconn_init(&(wconn_hooks){cfg, assign, counts_changed});
    uv_loop_init(&g_loop);
    uv_async_init(&g_loop, &g_kick, on_kick);
    pthread_rwlock_wrlock(&g_kick_lock);
    g_kick_live = 1;
    pthread_rwlock_unlock(&g_kick_lock);
    uv_timer_init(&g_loop, &g_tick);
    uv_signal_init(&g_loop, &g_sigterm);
    uv_signal_init(&g_loop, &g_sigint);
    uv_signal_start(&g_sigterm, on_signal, SIGTERM);
    uv_signal_start(&g_sigint, on_signal, SIGINT);
    /* keep-alive comments on the event streams (they also find dead clients) */
    uv_timer_init(&g_loop, &g_ping);
    uint64_t ping_ms = (uint64_t)(cfg->sse_ping * 1000);
    uv_timer_start(&g_ping, on_ping, ping_ms, ping_ms);
    if (listen_workers(err)) return -1;
    if (slurm_start(&g_loop, cfg, err)) return -1;
    if (supervise_start(&g_loop, cfg, err)) return -1;
    uv_timer_start(&g_tick, on_tick, 1000, 1000);
    return 0;
}

void sched_run(void) {
    uv_run(&g_loop, UV_RUN_DEFAULT);
    uv_loop_close(&g_loop);
}
