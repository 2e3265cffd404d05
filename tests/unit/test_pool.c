/* test_pool.c - the thread pool runs every task exactly once, for any task
 * count and thread limit; a task that starts another job, and two threads
 * starting jobs at once, still get every task run (serially where the pool is
 * busy). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "common/base/pool.h"

typedef struct {
    atomic_int hits[1000];
    int nested;
} counts;

static void count_task(void *ctx, int t) { atomic_fetch_add(&((counts *)ctx)->hits[t], 1); }

static void check_once(counts *c, int n) {
    for (int i = 0; i < n; i++) cr_assert_eq(atomic_load(&c->hits[i]), 1, "task %d ran %d times", i, c->hits[i]);
    for (int i = n; i < 1000; i++) cr_assert_eq(atomic_load(&c->hits[i]), 0);
}

Test(pool, every_task_runs_once) {
    int keep = spq_pool_threads();
    int sizes[] = {0, 1, 2, 3, 17, 999};
    for (int lim = 1; lim <= 3; lim++) {
        spq_pool_limit(lim);
        cr_assert(spq_pool_threads() >= 1);
        for (int k = 0; k < 6; k++)
            for (int rep = 0; rep < 20; rep++) {
                static counts c;
                memset(&c, 0, sizeof c);
                spq_parallel_for(sizes[k], count_task, &c);
                check_once(&c, sizes[k]);
            }
    }
    spq_pool_limit(keep);
}

static void nested_task(void *ctx, int t) {
    counts *c = ctx;
    counts inner;
    memset(&inner, 0, sizeof inner);
    spq_parallel_for(50, count_task, &inner);  /* the pool is busy: runs in this thread */
    check_once(&inner, 50);
    atomic_fetch_add(&c->hits[t], 1);
}

Test(pool, a_task_may_start_a_job) {
    static counts c;
    memset(&c, 0, sizeof c);
    spq_parallel_for(8, nested_task, &c);
    check_once(&c, 8);
}

static void *starter(void *arg) {
    counts *c = arg;
    for (int rep = 0; rep < 200; rep++) {
        memset(c, 0, sizeof *c);
        spq_parallel_for(300, count_task, c);
        for (int i = 0; i < 300; i++)
            if (atomic_load(&c->hits[i]) != 1) return (void *)1;
    }
    return NULL;
}

Test(pool, two_threads_starting_jobs_at_once) {
    static counts a, b;
    pthread_t ta, tb;
    pthread_create(&ta, NULL, starter, &a);
    pthread_create(&tb, NULL, starter, &b);
    void *ra, *rb;
    pthread_join(ta, &ra);
    pthread_join(tb, &rb);
    cr_assert(ra == NULL && rb == NULL, "a task ran twice or not at all");
}
