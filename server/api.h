/* api.h - the route handlers (api_runs.c, api_sweeps.c, api_misc.c). Each
 * takes a request the router has authenticated and whose query parameters
 * it has checked, and returns the response. */
#ifndef SPQD_API_H
#define SPQD_API_H

#include "server/reply.h"

http_res api_runs_create(http_req *r);
http_res api_runs_list(http_req *r);
http_res api_run_get(http_req *r);
http_res api_run_delete(http_req *r);
http_res api_run_cancel(http_req *r);
http_res api_run_metrics(http_req *r);
http_res api_run_events(http_req *r);
http_res api_run_checkpoints(http_req *r);
http_res api_run_checkpoint_get(http_req *r);
http_res api_run_artifacts(http_req *r);
http_res api_run_artifact_get(http_req *r);
http_res api_events(http_req *r);
http_res api_sweeps_create(http_req *r);
http_res api_sweeps_list(http_req *r);
http_res api_sweep_get(http_req *r);
http_res api_workers(http_req *r);
http_res api_defaults(http_req *r);
http_res api_health(http_req *r);
http_res api_whoami(http_req *r);
http_res api_metrics(http_req *r);
/* api_serve.c: a finished run's model served by a local spinq-worker, and its proxy */
http_res api_run_serve_start(http_req *r);
http_res api_run_serve_stop(http_req *r);
http_res api_run_serve_get(http_req *r);
http_res api_serving(http_req *r);
http_res api_run_proxy(http_req *r);
void api_serve_stop_all(void);

/* Reads the run filters of a listing from the query (status, model, tag,
 * sweep, q, order, limit, offset): 0, or -1 with *res the 400 to send. */
#include "server/store.h"
int api_run_filter(http_req *r, store_run_filter *f, int default_limit, http_res *res);

/* Parses a JSON request body: 0, or -1 with *res the 400 to send. */
int api_body_json(http_req *r, json_t **out, http_res *res);

#endif
