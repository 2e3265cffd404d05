/* pool.h - a process-wide pool of worker threads for data-parallel loops
 * (the packed model's GEMM/GEMV split over output rows).
 *
 * spq_parallel_for(n, fn, ctx) runs fn(ctx, i) for i in [0, n) on the pool
 * and the calling thread together and returns when all are done. Tasks must
 * write disjoint outputs; results never depend on the number of threads or
 * on which thread ran a task.
 *
 * Moving parts: the pool is created on first use (pthread_once) with one
 * thread per online CPU minus the caller, or SPINQ_THREADS - 1 when that is
 * set. Workers take task indices from an atomic counter. Between jobs they
 * spin for a few tens of microseconds (decode issues a job per linear layer,
 * back to back) and then sleep on a condition variable. One job runs at a
 * time: a call made while another is running (another thread, or a task
 * calling spq_parallel_for) runs its tasks serially in the caller. */
#ifndef SPQ_POOL_H
#define SPQ_POOL_H

typedef void (*spq_task_fn)(void *ctx, int task);

void spq_parallel_for(int n_tasks, spq_task_fn fn, void *ctx);

/* Threads a job uses, the caller included (>= 1). */
int spq_pool_threads(void);

/* Limits later jobs to n threads (1: everything runs in the caller); n is
 * capped at the pool's size. For benchmarks and tests. */
void spq_pool_limit(int n);

#endif
