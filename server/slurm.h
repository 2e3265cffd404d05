/* slurm.h - the slurm executor: each queued run becomes a Slurm job whose
 * workers (srun spinq-worker --run ID) connect back to the worker port
 * (internal to the loop thread; sched.c drives it).
 *
 * Every slurm_poll seconds a pass runs in libuv's thread pool (sbatch,
 * squeue and scancel may block on slurmctld; the loop never does):
 *  - squeue: the state and nodes of every job not ended yet go on the run
 *    (PENDING, RUNNING on vm[1-2], COMPLETED...); a job gone from squeue
 *    has ended (GONE);
 *  - a job that ended while its worker still held the run: the loop drops
 *    that worker's connection, which re-queues the run like any lost
 *    worker (the attempt counts; failed after max_attempts); a job that
 *    ended before its worker took the run counts an attempt itself;
 *  - runs that ended canceled or failed have their job scancel'ed; a
 *    running run being canceled first gets the few seconds its worker
 *    needs to stop and say so (then scancel all the same);
 *  - a queued run without a live job gets one: sbatch of slurm_script with
 *    the run's resources; its worker's claim hands it the latest
 *    checkpoint, so a new allocation resumes where the last one stopped.
 * A pass that finds nothing to change writes nothing. */
#ifndef SPQD_SLURM_H
#define SPQD_SLURM_H

#include <uv.h>

#include "server/config.h"

/* Checks the setup (sbatch, squeue, the script) and starts; 0 or -1. */
int slurm_start(uv_loop_t *loop, const spqd_config *cfg, spq_err *err);
/* The loop's tick: starts a pass when one is due (soon: at the next
 * chance, for a cancel), none while draining (no new jobs then). */
void slurm_tick(int soon, int draining);

#endif
