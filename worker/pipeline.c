/* pipeline.c - the stage table and the runner (see pipeline.h): the needed
 * stages in order, each announced; the state they built freed at the end,
 * the scores kept for the caller.
 *
 * Under MPI (common/base/par.h) every rank runs the same stages on its share
 * of the data; only rank 0 talks: the other ranks get a quiet reporter that
 * keeps nothing but should_stop, and the ranks agree after every stage (a
 * failure or a stop on one of them ends the run on all, so that none waits
 * in a collective the others never reach). */
#include "worker/pipeline.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/par.h"

static int always(const spq_jobspec *s) { return 1; }
static int rotated(const spq_jobspec *s) { return s->rotation.mode != SPQ_ROT_NONE; }
static int learned(const spq_jobspec *s) { return s->rotation.mode == SPQ_ROT_SPINQUANT; }
static int quantized(const spq_jobspec *s) { return s->quant.w_bits < 16 || s->quant.a_bits < 16 || s->quant.kv_bits < 16; }
int pl_spec_evaluates(const spq_jobspec *s) { return s->eval.n_ppl > 0 || s->eval.kld || s->eval.n_tasks > 0; }

const pl_stage pl_stages[] = {
    {"load", always, pl_stage_load},
    {"fuse", rotated, pl_stage_fuse},
    {"rotate", rotated, pl_stage_rotate},
    {"learn", learned, pl_stage_learn},
    {"quantize", quantized, pl_stage_quantize},
    {"evaluate", pl_spec_evaluates, pl_stage_evaluate},
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

/* ---- ranks other than 0: silent ---- */

/* (the build has -Wno-unused-parameter) */
static void q_stage(void *ud, const char *stage) {}
static void q_metric(void *ud, const char *key, int64_t step, double value) {}
static void q_progress(void *ud, const char *stage, int64_t done, int64_t total) {}
static void q_log(void *ud, const char *level, const char *text) {}
static void q_checkpoint(void *ud, int64_t step, const void *data, size_t len) {}
static int q_artifact(void *ud, const char *name, const char *path, spq_err *err) { return 0; }

pl_reporter pl_reporter_quiet(int (*should_stop)(void *ud), void *ud) {
    return (pl_reporter){ud, q_stage, q_metric, q_progress, q_log, q_checkpoint, q_artifact, should_stop};
}

/* a stage's outcome as every rank sees it: failed when it failed on any
 * rank, stopped when any rank stopped; with one rank, rc */
static int agree(pl_pipeline *p, int rc) {
    int failed = spq_par_any(rc == PL_STAGE_FAILED), stopped = spq_par_any(rc == PL_STAGE_STOPPED);
    if (failed && rc != PL_STAGE_FAILED) {
        spq_fail(&p->err, "another rank failed (its message is on its own stderr)");
        return PL_STAGE_FAILED;
    }
    return failed ? PL_STAGE_FAILED : stopped ? PL_STAGE_STOPPED : rc;
}

int pl_pipeline_run(pl_pipeline *p) {
    const pl_reporter *loud = p->rep;
    pl_reporter quiet;
    if (spq_par_rank() > 0) {
        /* stops still reach it (rank 0's answer, a signal from the launcher) */
        quiet = pl_reporter_quiet(loud->should_stop, loud->ud);
        p->rep = &quiet;
    }
    json_decref(p->results);
    json_decref(p->report);
    p->results = json_object();
    p->report = NULL;
    p->stop = PL_STOP_NONE;
    int rc = PL_STAGE_OK;
    for (const pl_stage *s = pl_stages; s->name && rc == PL_STAGE_OK; s++) {
        if (!s->needed(&p->spec)) continue;
        if (spq_par_any(pl_pipeline_should_stop(p))) {
            rc = PL_STAGE_STOPPED;
            break;
        }
        p->rep->stage(p->rep->ud, s->name);
        rc = agree(p, s->run(p));
        if (rc == PL_STAGE_FAILED) spq_fail_prefix(&p->err, "%s", s->name);
    }
    cleanup(p);
    p->rep = loud;
    return rc;
}
