/* metrics.c - see metrics.h. Counters live in two small tables guarded by
 * one mutex; routes are a fixed set of templates, so the tables stay small
 * and a linear search is the fastest lookup. */
#include "server/metrics.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/sched.h"
#include "server/sse.h"
#include "server/store.h"

#define MAX_COUNTERS 256
#define MAX_ROUTES 64
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
enum { N_BUCKETS = sizeof buckets / sizeof buckets[0] };

typedef struct {
    const char *route, *method;
    unsigned status;
    unsigned long long n;
} counter;

typedef struct {
    const char *route;
    unsigned long long le[N_BUCKETS + 1]; /* cumulative at render time; +Inf last */
    double sum;
    unsigned long long count;
} histogram;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static counter counters[MAX_COUNTERS];
static int n_counters;
static histogram hists[MAX_ROUTES];
static int n_hists;

void metrics_http(const char *route, const char *method, unsigned status, double seconds) {
    pthread_mutex_lock(&mu);
    int i;
    for (i = 0; i < n_counters; i++)
        if (counters[i].status == status && !strcmp(counters[i].route, route) && !strcmp(counters[i].method, method))
            break;
    if (i == n_counters && n_counters < MAX_COUNTERS) counters[n_counters++] = (counter){route, method, status, 0};
    if (i < n_counters) counters[i].n++;
    for (i = 0; i < n_hists; i++)
        if (!strcmp(hists[i].route, route)) break;
    if (i == n_hists && n_hists < MAX_ROUTES) hists[n_hists++] = (histogram){.route = route};
    if (i < n_hists) {
        int b = 0;
        while (b < N_BUCKETS && seconds > buckets[b]) b++;
        hists[i].le[b]++;
        hists[i].sum += seconds;
        hists[i].count++;
    }
    pthread_mutex_unlock(&mu);
}

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void out(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(sbuf *s, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(s->p + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < s->cap - s->len) {
            s->len += (size_t)n;
            return;
        }
        s->cap = s->cap * 2 + (size_t)n + 64;
        s->p = realloc(s->p, s->cap);
    }
}

char *metrics_render(sqlite3 *db) {
    sbuf s = {malloc(4096), 0, 4096};
    s.p[0] = 0;
    json_t *counts = store_run_counts(db);
    out(&s, "# HELP spinqd_runs Runs by state.\n# TYPE spinqd_runs gauge\n");
    const char *k;
    json_t *v;
    json_object_foreach(counts, k, v) out(&s, "spinqd_runs{state=\"%s\"} %lld\n", k, (long long)json_integer_value(v));
    out(&s, "# HELP spinqd_queue_length Runs waiting for a worker.\n# TYPE spinqd_queue_length gauge\n");
    out(&s, "spinqd_queue_length %lld\n", (long long)json_integer_value(json_object_get(counts, "queued")));
    json_decref(counts);
    int total, busy;
    sched_worker_counts(&total, &busy);
    out(&s, "# HELP spinqd_workers Connected workers.\n# TYPE spinqd_workers gauge\n");
    out(&s, "spinqd_workers{state=\"idle\"} %d\nspinqd_workers{state=\"busy\"} %d\n", total - busy, busy);
    out(&s, "# HELP spinqd_sse_clients Open event streams.\n# TYPE spinqd_sse_clients gauge\n");
    out(&s, "spinqd_sse_clients %d\n", sse_clients());
    pthread_mutex_lock(&mu);
    out(&s, "# HELP spinqd_http_requests_total HTTP requests by route, method and status.\n"
            "# TYPE spinqd_http_requests_total counter\n");
    for (int i = 0; i < n_counters; i++)
        out(&s, "spinqd_http_requests_total{route=\"%s\",method=\"%s\",code=\"%u\"} %llu\n", counters[i].route,
            counters[i].method, counters[i].status, counters[i].n);
    out(&s, "# HELP spinqd_http_request_duration_seconds Time to answer a request.\n"
            "# TYPE spinqd_http_request_duration_seconds histogram\n");
    for (int i = 0; i < n_hists; i++) {
        unsigned long long cum = 0;
        for (int b = 0; b < N_BUCKETS; b++) {
            cum += hists[i].le[b];
            out(&s, "spinqd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", hists[i].route,
                buckets[b], cum);
        }
        cum += hists[i].le[N_BUCKETS];
        out(&s, "spinqd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", hists[i].route, cum);
        out(&s, "spinqd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", hists[i].route, hists[i].sum);
        out(&s, "spinqd_http_request_duration_seconds_count{route=\"%s\"} %llu\n", hists[i].route, hists[i].count);
    }
    pthread_mutex_unlock(&mu);
    return s.p;
}
