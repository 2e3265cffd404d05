/* ranks.h - spinq-worker under an MPI launcher (srun --mpi=pmix, mpirun):
 * one run, several ranks, one of them talking to spinqd.
 *
 * Rank 0 alone has the connection: it receives the job, reports progress,
 * metrics and checkpoints, and delivers the artifacts. The other ranks run
 * the same pipeline silently (wk_follow_rank0): they learn the job (spec,
 * attempt, resume checkpoint) and the input directories rank 0 resolved
 * from rank 0's broadcasts, in the order below, and every stop poll of the
 * pipeline is a broadcast of rank 0's answer, so a cancel or a shutdown
 * stops all ranks at the same step. That asks of the pipeline what its
 * collectives ask anyway: every rank polls should_stop at the same points.
 *
 *   rank 0                          other ranks
 *   job (or none: exit) ----bcast-> job
 *   go (spec parsed, inputs here) -> go
 *   models dir, datasets dir -----> dirs
 *   pipeline, each stop poll -----> the same answer
 *
 * A run that fails ends the whole job: rank 0 reports it first (DONE with
 * the reason), then aborts every rank, since the others may wait in a
 * collective it will not join; a rank other than 0 whose pipeline fails
 * waits 10 s for rank 0 to report, then does the same. Canceled and
 * interrupted runs stop on every rank at the same poll, and all exit.
 *
 * Without a launcher there is one rank and none of this happens. */
#ifndef WK_RANKS_H
#define WK_RANKS_H

#include <stddef.h>
#include <stdint.h>

/* A job as rank 0 received it. */
typedef struct {
    int have;           /* 0: there is no job (the ranks exit) */
    uint64_t run;
    uint32_t attempt;
    char *spec;
    int64_t ckpt_step;
    uint8_t *ckpt;
    size_t ckpt_len;
} wk_rank_job;

/* Collective: rank 0's job to every rank (the others' fields malloc'd). */
void wk_ranks_bcast_job(wk_rank_job *j);
/* Collective: rank 0's int and string (others: malloc'd copy). */
int wk_ranks_bcast_int(int v);
char *wk_ranks_bcast_str(const char *s);
/* Collective: rank 0's stop answer (PL_STOP_*) to every rank. */
int wk_ranks_agree_stop(int mine);
/* The life of a rank other than 0: follows rank 0's broadcasts through one
 * job. Returns the process's exit code. */
int wk_follow_rank0(void);

#endif
