/* sched.h - the scheduler and the workers' side of spinqd, on one libuv loop
 * thread: local workers spawned and supervised (supervise.c), remote workers
 * accepted on the worker port, their proto connections (wconn.c), and the
 * queue: an idle worker gets the oldest queued run with its latest
 * checkpoint; a run whose worker goes away is re-queued (or failed after
 * max_attempts); cancel requests reach the run's worker; SIGTERM drains.
 *
 * Other threads talk to the loop only through sched_kick (an async handle):
 * "the queue or a cancel flag changed, look again". */
#ifndef SPQD_SCHED_H
#define SPQD_SCHED_H

#include "server/config.h"

/* Sets up the loop (listeners, local workers); sched_run blocks until the
 * daemon has drained after a signal. */
int sched_start(const spqd_config *cfg, spq_err *err);
void sched_run(void);

/* Any thread: look at the queue and cancel flags again. */
void sched_kick(void);
void sched_worker_counts(int *total, int *busy);
int sched_draining(void);

#endif
