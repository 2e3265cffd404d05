/* pipeline.h - a job's pipeline, as spinq-worker runs it:
 *
 *   load -> fuse -> rotate -> learn -> quantize -> evaluate -> write -> done
 *
 * Each stage is one function `int stage(pl_pipeline *p)` returning
 * PL_STAGE_OK, PL_STAGE_FAILED (p->err says why) or PL_STAGE_STOPPED (the
 * reporter asked to stop: cancel or shutdown). A stage the spec does not
 * need is skipped (`needed`). The spec is a parsed one (jobspec.h): every
 * rule between its fields has been checked, so a stage refuses only what
 * depends on the model or the data.
 *
 * A stage is a run function in worker/pipeline_<stage>.c against the state
 * below, reporting through p->rep:
 *   stage(name)                    when it starts (the pipeline does this)
 *   metric(key, step, value)       loss/lr per step ("train/loss",
 *                                  "train/lr"), scores ("ppl/<data>", ...)
 *   progress(stage, done, total)   per step, layer, window
 *   log(level, text)               human-readable lines
 *   checkpoint(step, bytes, n)     rotation state every
 *                                  rotation.train.checkpoint_every steps; the
 *                                  daemon stores it and hands it back in
 *                                  p->resume_* when the run restarts elsewhere
 *   artifact(name, path)           a finished file (uploaded with its sha256)
 *   should_stop()                  poll between steps; PL_STOP_SHUTDOWN
 *                                  means: checkpoint now, then stop
 * Rotations: rotate builds p->rot (seeded, rotation.init; or loaded from the
 * resume checkpoint for spinquant) and absorbs it at once for the fixed
 * modes; for spinquant it leaves p->rot to learn, which updates it, reports
 * checkpoint() every checkpoint_every steps (bytes of spq_rotation_save's
 * file, with p->rot_meta.step set) and absorbs it with spq_rotation_apply
 * when done. write saves p->rot as the artifact rotation.safetensors.
 * Weights: quantize rounds them (RTN) or runs GPTQ on weights.calib, keeping
 * their parameters in p->wq; write packs the model into the artifact
 * model.spq (packed.h) when the weights are 2..4 bits.
 *
 * The reporter is implemented over proto by the worker (worker/report.c) and
 * can be any other sink (the spinq CLI, tests). */
#ifndef PL_PIPELINE_H
#define PL_PIPELINE_H

#include <jansson.h>
#include <stdint.h>

#include "common/job/jobspec.h"
#include "common/model/model.h"
#include "common/quant/wquant.h"
#include "common/rot/rotation.h"
#include "common/tok/tokenizer.h"

enum { PL_STOP_NONE = 0, PL_STOP_CANCEL = 1, PL_STOP_SHUTDOWN = 2 };

typedef struct {
    void *ud;
    void (*stage)(void *ud, const char *stage);
    void (*metric)(void *ud, const char *key, int64_t step, double value);
    void (*progress)(void *ud, const char *stage, int64_t done, int64_t total);
    void (*log)(void *ud, const char *level, const char *text);
    void (*checkpoint)(void *ud, int64_t step, const void *data, size_t len);
    /* Uploads the file at path as artifact `name`; 0 or -1 (err set). */
    int (*artifact)(void *ud, const char *name, const char *path, spq_err *err);
    int (*should_stop)(void *ud);
} pl_reporter;

enum { PL_STAGE_OK = 0, PL_STAGE_FAILED = 1, PL_STAGE_STOPPED = 2 };

typedef struct {
    /* inputs */
    spq_jobspec spec;
    const char *models_dir, *datasets_dir;
    const char *work_dir;     /* scratch space for files the run writes */
    int64_t resume_step;      /* -1: fresh start; else the checkpoint below */
    const void *resume_ckpt;
    size_t resume_len;
    const pl_reporter *rep;
    /* state the stages build up */
    char *model_path;
    spq_model model;
    int model_loaded;
    spq_tokenizer *tok;
    spq_rotation rot;         /* built by rotate; learned by learn (spinquant) */
    spq_rotation_meta rot_meta;
    int have_rot;
    spq_wquant wq;            /* the weights' quantization parameters (quantize), for the packed model */
    int have_wq;
    json_t *results;          /* {"key": value} of final scores, for results.json */
    int stop;                 /* PL_STOP_* seen by a stage */
    spq_err err;
} pl_pipeline;

typedef struct {
    const char *name;
    int (*needed)(const spq_jobspec *s);
    int (*run)(pl_pipeline *p);
} pl_stage;

/* The stages in order (NULL-terminated by name). */
extern const pl_stage pl_stages[];

/* Runs the whole pipeline for a parsed spec. Returns PL_STAGE_OK, _FAILED
 * (p->err: "<stage>: reason") or _STOPPED (p->stop says why). Frees the
 * state it built but not p->spec. */
int pl_pipeline_run(pl_pipeline *p);

/* Stage implementations (worker/pipeline_*.c). */
int pl_stage_load(pl_pipeline *p);
int pl_stage_fuse(pl_pipeline *p);
int pl_stage_rotate(pl_pipeline *p);
int pl_stage_learn(pl_pipeline *p);
int pl_stage_quantize(pl_pipeline *p);
int pl_stage_evaluate(pl_pipeline *p);
int pl_stage_write(pl_pipeline *p);

/* A dataset name of the spec (field: its path, for the message) as a path
 * inside the datasets dir; 0 or -1 with p->err set. */
int pl_dataset_path(pl_pipeline *p, char **path, const char *name, const char *field);

/* Polls the reporter; records the reason in p->stop. */
int pl_pipeline_should_stop(pl_pipeline *p);

#endif
