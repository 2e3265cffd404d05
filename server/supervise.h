/* supervise.h - local spinq-worker processes (internal to the loop thread).
 *
 * Slot k runs `spinq-worker --fd 3 ...` with a socketpair on fd 3 (libuv
 * pipe) in its own session, so a terminal's Ctrl-C reaches only the daemon,
 * which then drains; the worker dies with the daemon through
 * PR_SET_PDEATHSIG. When a worker exits it is restarted after a back-off
 * that doubles per quick failure (0.25 s .. 30 s) and resets once a worker
 * has stayed up for a minute. */
#ifndef SPQD_SUPERVISE_H
#define SPQD_SUPERVISE_H

#include <uv.h>

#include "server/wconn.h"

typedef struct local_worker {
    int slot;
    uv_process_t proc;
    int running;     /* the process handle is live */
    int pid;
    wconn *conn;
    int64_t worker_id;
    int failures;
    double started;
    uv_timer_t restart;
    int stopping;    /* the daemon is draining: no restarts */
    int exiting;     /* it closed its connection (a drained worker does, then exits): no signal for it */
} local_worker;

int supervise_start(uv_loop_t *loop, const spqd_config *cfg, spq_err *err);
/* Asks every local worker process to go (sig; 0: none) and never restarts
 * them. A worker that is already exiting by itself gets only SIGKILL (the
 * last resort), so that its clean exit is not turned into a death. */
void supervise_stop(int sig);
/* Local processes still alive. */
int supervise_alive(void);
/* Closes the supervisor's own handles (after the processes are gone). */
void supervise_close(void);

#endif
