/* cli_session.h - the spinq commands' side of a pipeline run. `spinq run`,
 * `eval`, `quantize` and `rotate` each build a job spec (and the few local
 * options of pl_local) from their flags and run it through the pipeline
 * (worker/pipeline.h) here, as spinq-worker does for the daemon's jobs: in a
 * scratch directory, with a reporter on the terminal (stage and log lines
 * and progress bars on stderr), the artifacts they output copied where
 * their flags say. Their outputs come from the pipeline's: artifacts,
 * p->results and p->report. */
#ifndef CLI_SESSION_H
#define CLI_SESSION_H

#include "common/base/util.h"
#include "common/job/jobspec.h"
#include "common/model/model.h"
#include "worker/pipeline.h"
#include "worker/qflags.h"

typedef struct {
    const char *name; /* an artifact of the write stage */
    const char *path; /* where it goes */
} cli_dest;

typedef struct {
    const char *cmd;             /* "eval", ...: lines start "spinq eval: " */
    const char *out_dir;         /* other artifacts and every checkpoint are copied here (spinq run); NULL: dropped */
    cli_dest dest[2];            /* these artifacts go to these paths */
    const char *checkpoint_path; /* every checkpoint replaces this file (spinq rotate) */
    int metrics_json;            /* every metric as a JSON line on stdout (spinq run) */
    int stop_on_signal;          /* SIGINT/SIGTERM: checkpoint and stop (PL_STOP_SHUTDOWN) */
    /* state */
    spq_progress bar;
    int bar_on;
    char bar_label[32];
    long bar_total, bar_done;
    double loss;                 /* the last train/loss, shown with learn's progress */
    int64_t checkpoint_step;     /* the last checkpoint written, -1 if none */
} cli_session;

/* Runs p (spec and local options set; models_dir and datasets_dir, or
 * local.paths) in a scratch directory with the session's reporter. Returns
 * pl_pipeline_run's code; p's outputs stay for the caller
 * (pl_pipeline_free). */
int cli_session_run(cli_session *s, pl_pipeline *p);
/* The command's exit status for rc: 0; 1 with p->err printed; 130 when it
 * was stopped. */
int cli_session_status(const cli_session *s, const pl_pipeline *p, int rc);

/* A spec built from flags: the defaults (jobspec.c), the model as a path
 * (p->local.paths set), nothing to evaluate and nothing written; the
 * command fills in the rest. */
void cli_spec_start(pl_pipeline *p, const char *model);
/* The rotation flags (--rotation none|hadamard|random|FILE, --mode, --seed)
 * and the quantizer settings into the spec: weights rounded to nearest when
 * they are quantized. */
void cli_spec_quant(spq_jobspec *s, const cli_rotflags *r, const spq_qcfg *q);
/* GPTQ as the weights' method, with g's settings (qflags.h). */
void cli_spec_gptq(pl_pipeline *p, const cli_gptqflags *g);
/* Replaces a string of the spec. */
void cli_spec_set(char **field, const char *value);
/* Checks the spec as the parser does (spq_jobspec_check); 0, or prints
 * "spinq CMD: field: why" and returns -1. */
int cli_spec_check(const cli_session *s, const spq_jobspec *spec);

#endif
