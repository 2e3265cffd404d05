/* api_misc.c - health, whoami, workers, the spec defaults and the Prometheus
 * exposition. */
#include <stdlib.h>
#include <string.h>

#include "server/api.h"
#include "server/metrics.h"
#include "server/sched.h"
#include "server/sse.h"
#include "server/store.h"

#define SPQD_VERSION "0.1.0"

static double g_started;

http_res api_health(http_req *r) {
    if (!g_started) g_started = spq_now();
    int total, busy;
    sched_worker_counts(&total, &busy);
    json_t *counts = store_run_counts(r->db);
    return http_json(200, json_pack("{s:s,s:s,s:b,s:b,s:{s:i,s:i},s:o}", "status", "ok", "version", SPQD_VERSION,
                                    "auth", auth_enabled(r->db), "draining", sched_draining(), "workers", "connected",
                                    total, "busy", busy, "runs", counts));
}

http_res api_whoami(http_req *r) {
    return http_json(200, json_pack("{s:s,s:s}", "name", r->who.name, "role", auth_role_name(r->who.role)));
}

http_res api_workers(http_req *r) {
    json_t *l = store_workers_list(r->db);
    return l ? http_json(200, json_pack("{s:o}", "workers", l)) : http_err(500, "internal", NULL, "the store failed");
}

/* The job spec with every default filled in (the parser's own, so a form
 * prefilled with it never drifts from what a run gets); "model" is left
 * empty for the caller to fill and "name" out (derived when absent). */
http_res api_defaults(http_req *r) {
    static const char probe[] = "{\"model\":\"MODEL\"}";
    spq_jobspec s;
    spq_err err;
    char field[SPQ_FIELD_MAX];
    if (spq_jobspec_parse(&s, probe, sizeof probe - 1, field, &err))
        return http_err(500, "internal", field, "the defaults do not parse: %s", err.msg);
    json_t *v = spq_jobspec_to_value(&s);
    spq_jobspec_free(&s);
    json_object_del(v, "name");
    json_object_set_new(v, "model", json_string(""));
    return http_json(200, json_pack("{s:o}", "spec", v));
}

http_res api_metrics(http_req *r) {
    char *text = metrics_render(r->db);
    return http_bytes(200, text, strlen(text), "text/plain; version=0.0.4");
}
