/* metrics.h - Prometheus text exposition for GET /metrics: request counts by
 * route, method and status; a latency histogram per route; and gauges read at
 * scrape time (runs by state, queue length, workers, SSE clients). */
#ifndef SPQD_METRICS_H
#define SPQD_METRICS_H

#include <sqlite3.h>

/* Records one finished request; route is a template ("/api/runs/{id}"). */
void metrics_http(const char *route, const char *method, unsigned status, double seconds);
/* The exposition text (malloc'd). */
char *metrics_render(sqlite3 *db);

#endif
