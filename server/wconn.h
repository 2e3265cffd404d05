/* wconn.h - one worker's proto connection on the loop thread (internal to
 * sched.c, wconn.c and supervise.c).
 *
 * The connections know the scheduler only through the hooks it registers
 * at start (wconn_init): what to call when a worker became free or a run
 * went back to the queue, and when the worker counts may have changed. A
 * local connection's process is its supervisor's business: supervise.c
 * sets the connection's on_close to hear of its end.
 *
 * A connection starts in handshake (HELLO within 10 s, token checked for
 * remote workers), then is ready: idle (run_id 0) or busy with one run.
 * Everything a worker reports must be about its current run; anything else,
 * and any malformed frame, drops the connection (never the daemon). When a
 * connection goes away while busy, its run is interrupted: re-queued to
 * resume from its last checkpoint, or failed after max_attempts. Artifacts
 * arrive in chunks into data_dir/artifacts/RUN/NAME.part and are renamed
 * into place once size and sha256 match; a .part cut by a dropped
 * connection stays, for the same worker to go on with after it reconnects
 * naming the run in its HELLO. A connection silent for heartbeat_timeout
 * is dropped (sched.c's tick). Models and datasets are served to remote
 * workers by wfiles.c. */
#ifndef SPQD_WCONN_H
#define SPQD_WCONN_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "common/base/sha256.h"
#include "proto/messages.h"
#include "server/config.h"

/* What the scheduler gives the connections: set once, before the first. */
typedef struct {
    const spqd_config *cfg;
    /* a worker is free or a run is back in the queue: hand out work (and
     * pass on cancel requests) */
    void (*assign)(void);
    /* a connection became ready or went away, or a run ended: recount */
    void (*counts_changed)(void);
} wconn_hooks;
void wconn_init(const wconn_hooks *hooks);

typedef enum { WC_HANDSHAKE, WC_READY, WC_CLOSING } wconn_state;

typedef struct wconn {
    union {
        uv_pipe_t pipe;
        uv_tcp_t tcp;
        uv_handle_t handle;
        uv_stream_t stream;
    } h;
    wconn_state state;
    int local;
    int64_t local_id;        /* local: the worker id its supervisor recorded, taken on at hello */
    /* called by wconn_close (graceful as given) once the connection is off
     * the list, before its handle closes; NULL: nothing to tell */
    void (*on_close)(struct wconn *wc, int graceful);
    void *owner;             /* on_close's: the local worker behind it */
    int64_t worker_id;
    char name[128];
    char addr[80];
    char host[256];          /* where it runs: this host's name, or the remote address */
    int64_t run_id;          /* busy when > 0 */
    int64_t only_run;        /* a worker for one run (--run, a Slurm job's): > 0 */
    int only_run_taken;      /* it has had that run */
    int cancel_sent, shutdown_sent;
    int peer_closed;         /* the worker closed its end: it is going, not broken */
    double opened, last_seen;
    proto_buf rbuf;
    /* the artifact being received */
    FILE *art_f;
    char art_name[160];
    char *art_tmp;
    uint64_t art_next;
    spq_sha256 art_h;
    struct wconn *next;
} wconn;

/* All open connections (the loop thread's list). */
extern wconn *wconn_list;

/* A new connection whose handle the caller initializes (pipe or tcp) and
 * then starts with wconn_start. */
wconn *wconn_new(int local);
int wconn_start(wconn *wc);
void wconn_send(wconn *wc, proto_buf *b); /* takes the frames; b is emptied */
/* Drops the connection; interrupts its run (counting the attempt unless
 * graceful). Safe to call twice. */
void wconn_close(wconn *wc, const char *why, int graceful);

#endif
