/* pipeline.c - the stage table and the runner (see pipeline.h): the needed
 * stages in order, each announced; the state they built freed at the end,
 * the scores kept for the caller. */
#include "worker/pipeline.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int always(const spq_jobspec *s) { return 1; }
static int rotated(const spq_jobspec *s) { return s->rotation.mode != SPQ_ROT_NONE; }
static int learned(const spq_jobspec *s) { return s->rotation.mode == SPQ_ROT_SPINQUANT; }
static int quantized(const spq_jobspec *s) { return s->quant.w_bits < 16 || s->quant.a_bits < 16 || s->quant.kv_bits < 16; }
static int evaluated(const spq_jobspec *s) { return s->eval.n_ppl > 0 || s->eval.kld || s->eval.n_tasks > 0; }

const pl_stage pl_stages[] = {
    {"load", always, pl_stage_load},
    {"fuse", rotated, pl_stage_fuse},
    {"rotate", rotated, pl_stage_rotate},
    {"learn", learned, pl_stage_learn},
    {"quantize", quantized, pl_stage_quantize},
    {"evaluate", evaluated, pl_stage_evaluate},
    {"write", always, pl_stage_write},
    {NULL, NULL, NULL},
};

int pl_dataset_path(pl_pipeline *p, char **path, const char *name, const char *field) {
    if (p->local.paths) {
        *path = spq_strdup(name);
        return 0;
    }
    if (spq_resolve_under(path, p->datasets_dir, name, &p->err)) return spq_fail_prefix(&p->err, "%s", field);
    return 0;
}

int pl_pipeline_should_stop(pl_pipeline *p) {
    if (!p->stop && p->rep->should_stop) p->stop = p->rep->should_stop(p->rep->ud);
    return p->stop;
}

void pl_score(pl_pipeline *p, const char *key, double v) {
    if (!isfinite(v)) return;
    p->rep->metric(p->rep->ud, key, 0, v);
    json_object_set_new(p->results, key, json_real(v));
}

void pl_log(pl_pipeline *p, const char *level, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    p->rep->log(p->rep->ud, level, line);
}

static void free_model(pl_pipeline *p) {
    if (p->model_loaded) spq_model_free(&p->model);
    p->model_loaded = 0;
    if (p->tok) spq_tok_free(p->tok);
    p->tok = NULL;
}

/* the model and tokenizer (unless kept for the caller), rotations, weight
 * parameters and the path */
static void cleanup(pl_pipeline *p) {
    if (!p->local.keep_model) free_model(p);
    if (p->have_rot) spq_rotation_free(&p->rot);
    p->have_rot = 0;
    if (p->have_wq) spq_wquant_free(&p->wq);
    p->have_wq = 0;
    free(p->model_path);
    p->model_path = NULL;
}

void pl_pipeline_free(pl_pipeline *p) {
    free_model(p); /* a kept model the caller did not take */
    spq_jobspec_free(&p->spec);
    json_decref(p->results);
    json_decref(p->report);
    p->results = p->report = NULL;
}

int pl_pipeline_run(pl_pipeline *p) {
    json_decref(p->results);
    json_decref(p->report);
    p->results = json_object();
    p->report = NULL;
    p->stop = PL_STOP_NONE;
    int rc = PL_STAGE_OK;
    for (const pl_stage *s = pl_stages; s->name && rc == PL_STAGE_OK; s++) {
        if (!s->needed(&p->spec)) continue;
        if (pl_pipeline_should_stop(p)) {
            rc = PL_STAGE_STOPPED;
            break;
        }
        p->rep->stage(p->rep->ud, s->name);
        rc = s->run(p);
        if (rc == PL_STAGE_FAILED) spq_fail_prefix(&p->err, "%s", s->name);
    }
    cleanup(p);
    return rc;
}
