/* par.h - data parallelism across processes: MPI when a launcher started us.
 *
 * spinq and spinq-worker run the same program on every rank (mpirun -np P,
 * srun --mpi=pmix -n P); each rank takes a contiguous share of the windows,
 * items or calibration samples, and the partial sums are combined here.
 *
 * Moving parts:
 *  - spq_par_init starts MPI only when the environment says a launcher
 *    started this process (OMPI_COMM_WORLD_SIZE, PMIX_RANK, PMI_RANK); a
 *    plain start runs as rank 0 of 1 without touching MPI, so a machine with
 *    no MPI runtime running behaves exactly as before. Built without MPI
 *    (no libopenmpi-dev: SPQ_NO_MPI), a launched process refuses to start
 *    rather than silently run P copies of the whole job.
 *  - Sums are deterministic: every rank's buffer is gathered to rank 0 in
 *    chunks, added in rank order (rank 0 + rank 1 + ...), and the result
 *    broadcast, so the bits do not depend on timing or on MPI's reduction
 *    algorithm, and with one rank the buffer is untouched.
 *  - Threads: when SPINQ_THREADS is unset, each rank's share of the CPUs is
 *    online CPUs / ranks on this node (OMPI_COMM_WORLD_LOCAL_SIZE,
 *    SLURM_NTASKS_PER_NODE), set for our pool and OpenBLAS before either
 *    starts, so P ranks on one node do not oversubscribe it. */
#ifndef SPQ_PAR_H
#define SPQ_PAR_H

#include <stddef.h>

/* Call first thing in main (after spq_cpu_ensure_coretype, which may re-exec).
 * Returns 0, or -1 with a message on stderr when MPI cannot start. */
int spq_par_init(int *argc, char ***argv);
/* At exit (registered with atexit by spq_par_init). */
void spq_par_finalize(void);

int spq_par_rank(void);
int spq_par_size(void);
/* "OpenMPI 4.1.4" style name of the runtime in use, or "none" */
const char *spq_par_runtime(void);

/* [*lo, *hi): this rank's contiguous share of n items (the first n % P ranks
 * take one more). */
void spq_par_share(int n, int *lo, int *hi);

/* buf <- the sum over ranks of buf, the same bits on every rank. */
void spq_par_sum_f64(double *buf, size_t n);
void spq_par_sum_f32(float *buf, size_t n);
void spq_par_sum_i64(long long *buf, size_t n);
/* bytes of buf from root to every rank */
void spq_par_bcast(void *buf, size_t bytes, int root);
/* 1 on every rank when flag is non-zero on any rank (errors, stop requests) */
int spq_par_any(int flag);
/* waits for every rank */
void spq_par_barrier(void);
/* stops every rank (after a fatal error on one of them) */
void spq_par_abort(int code);

#endif
