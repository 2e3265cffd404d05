/* pool.c - see pool.h.
 *
 * A job is published by storing a new generation (and the number of
 * helpers) in `job` under the mutex and broadcasting; spinning workers see
 * it without the mutex, sleeping ones are woken by the broadcast (they
 * re-check `job` under the mutex before waiting, so no wake-up is lost).
 * Each participant takes task indices from `next` until they run out, then
 * the helpers count themselves in `finished`; the caller waits for every
 * helper it published to before returning, so
 * `fn` and `ctx` are never touched after spq_parallel_for returns. */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

#define SPIN_ROUNDS 4000

static struct {
    pthread_once_t once;
    int n_workers;       /* threads besides the caller */
    atomic_int limit;    /* threads a job may use, caller included */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* (generation << 16) | workers taking part in the job: one word, so a
     * worker never pairs a generation with another job's count */
    atomic_ullong job;
    atomic_int next;
    atomic_int finished;
    spq_task_fn fn;
    void *ctx;
    int n_tasks;
    pthread_mutex_t busy;
} P = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
       .busy = PTHREAD_MUTEX_INITIALIZER};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_tasks(void) {
    int i;
    while ((i = atomic_fetch_add(&P.next, 1)) < P.n_tasks) P.fn(P.ctx, i);
}

static void *worker(void *arg) {
    int id = (int)(long)arg;  /* 1-based: the caller is 0 */
    unsigned long long seen = 0;
    for (;;) {
        unsigned long long g;
        int spins = 0;
        while ((g = atomic_load(&P.job)) >> 16 == seen >> 16) {
            if (++spins < SPIN_ROUNDS) {
                cpu_relax();
                continue;
            }
            pthread_mutex_lock(&P.mu);
            while ((g = atomic_load(&P.job)) >> 16 == seen >> 16) pthread_cond_wait(&P.cv, &P.mu);
            pthread_mutex_unlock(&P.mu);
            break;
        }
        seen = g;
        if (id <= (int)(g & 0xffff)) {
            run_tasks();
            atomic_fetch_add(&P.finished, 1);
        }
    }
    return NULL;
}

static void pool_init(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    const char *e = getenv("SPINQ_THREADS");
    if (e && atoi(e) > 0) n = atoi(e);
    if (n < 1) n = 1;
    if (n > 256) n = 256; /* the job word holds the count in 16 bits */
    P.n_workers = 0;
    for (long i = 1; i < n; i++) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &a, worker, (void *)(long)(P.n_workers + 1)) == 0) P.n_workers++;
        pthread_attr_destroy(&a);
    }
    atomic_store(&P.limit, P.n_workers + 1);
}

int spq_pool_threads(void) {
    pthread_once(&P.once, pool_init);
    return atomic_load(&P.limit);
}

void spq_pool_limit(int n) {
    pthread_once(&P.once, pool_init);
    if (n < 1) n = 1;
    if (n > P.n_workers + 1) n = P.n_workers + 1;
    atomic_store(&P.limit, n);
}

void spq_parallel_for(int n_tasks, spq_task_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    pthread_once(&P.once, pool_init);
    int helpers = atomic_load(&P.limit) - 1;
    if (helpers > n_tasks - 1) helpers = n_tasks - 1;
    if (helpers <= 0 || pthread_mutex_trylock(&P.busy) != 0) {
        for (int i = 0; i < n_tasks; i++) fn(ctx, i);
        return;
    }
    P.fn = fn;
    P.ctx = ctx;
    P.n_tasks = n_tasks;
    atomic_store(&P.next, 0);
    atomic_store(&P.finished, 0);
    pthread_mutex_lock(&P.mu);
    unsigned long long gen = (atomic_load(&P.job) >> 16) + 1;
    atomic_store(&P.job, gen << 16 | (unsigned long long)helpers);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    run_tasks();
    for (int spins = 0; atomic_load(&P.finished) < helpers; spins++) {
        if (spins < SPIN_ROUNDS) cpu_relax();
        else sched_yield();
    }
    pthread_mutex_unlock(&P.busy);
}
