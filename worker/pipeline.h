/* pipeline.h - a job's pipeline, the one driver of the library for a run:
 * spinq-worker runs the daemon's jobs through it (worker/main_worker.c), and
 * the spinq commands `run`, `eval`, `quantize` and `rotate` run the spec
 * they build from their flags through it (worker/cli_session.c).
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
 * Rotations: rotate builds p->rot (seeded, rotation.init; loaded from
 * rotation.file; or loaded from the resume checkpoint for spinquant) and
 * absorbs it at once for the fixed modes; for spinquant it leaves p->rot to
 * learn, which updates it, reports checkpoint() every checkpoint_every steps
 * (bytes of spq_rotation_save's file, with p->rot_meta.step set) and absorbs
 * it with spq_rotation_apply when done. write saves p->rot as the artifact
 * rotation.safetensors.
 * Weights: quantize rounds them (RTN) or runs GPTQ on weights.calib, keeping
 * their parameters in p->wq; write packs the model into the artifact
 * model.spq (packed.h) when the weights are 2..4 bits.
 * Scores: evaluate (worker/pipeline_eval.c, the one evaluation of the
 * project) reports them as metrics, keeps them in p->results and writes the
 * full report to p->report; write puts both into the artifact results.json.
 *
 * The reporter is implemented over proto by the worker and on the terminal
 * by the spinq commands (worker/cli_session.c); tests record it. */
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

/* A reporter that drops everything but the stop polls (ranks other than 0:
 * rank 0 alone reports). */
pl_reporter pl_reporter_quiet(int (*should_stop)(void *ud), void *ud);

enum { PL_STAGE_OK = 0, PL_STAGE_FAILED = 1, PL_STAGE_STOPPED = 2 };

/* artifacts of the write stage, for pl_local.skip */
enum { PL_ART_RESULTS = 1, PL_ART_ROTATION = 2, PL_ART_MODEL = 4 };

/* What the spinq commands add to a spec: files on this machine and choices
 * the service does not offer. spinq-worker leaves it all zero, which is the
 * service's behaviour. */
typedef struct {
    int paths;           /* the spec's model and dataset names are paths as given (no models/datasets dirs) */
    unsigned skip;       /* PL_ART_* the run does not write */
    /* quantize */
    int calib_seed_set;  /* GPTQ's calibration windows from calib_seed, not from the spec's seed */
    uint64_t calib_seed;
    int calib_act_quant; /* GPTQ calibrates with the activation quantizers on */
    int emb_dtype;       /* the packed model's embeddings: 0 (f32), SPQ_ST_F16 or SPQ_ST_BF16 */
    /* write: the model as a GGUF file for llama.cpp (artifact model.gguf,
     * io/gguf_model.h) instead of the packed model; rotate refuses "had" */
    int gguf;
    uint32_t gguf_type, gguf_emb_type; /* ggml types of the linears, of token_embd and output */
    const char *gguf_name;             /* general.name; NULL: the model file's name */
    const char *gguf_info;             /* general.source info (how it was made), or NULL */
    /* the prepared model (rotated, quantized) and its tokenizer stay in
     * p->model and p->tok after the run for the caller to take (clear
     * model_loaded and tok), as spinq-worker serve does */
    int keep_model;
    /* load every weight in fp32 up front instead of leaving a Hugging Face
     * model's weights in their mapped files (model/mapped.h) until a stage
     * needs them in fp32 */
    int load_f32;
    /* evaluate */
    int seqlen;          /* window of the tasks and default of eval.ppl[i].seqlen; 0: the model's, at most 2048 */
    int batch;           /* perplexity windows per forward call; 0: 4, fewer for large vocabularies */
    int rolling;         /* also lm-eval's rolling word/byte perplexity */
    int limit_tasks;     /* eval.limit counts task items only, not perplexity windows */
    int strict;          /* a bad task item fails the run (the service skips it and says so) */
    int add_bos;         /* BOS before task contexts */
    int max_groups;      /* questions scored together; 0: mc.h's default */
    unsigned char rows[SPQ_SPEC_MAX_EVALS];      /* eval.ppl[i]'s lines are dataset rows (textprep.h) */
    const char *task_label[SPQ_SPEC_MAX_EVALS];  /* eval.tasks[i] reported as; NULL: its name (= its format) */
    const char *kld_base;    /* eval.kld against this model, not the run's own in full precision */
    const char *kld_logits;  /* eval.kld against log-probs saved earlier (one eval.ppl) */
    const char *save_logits; /* save this model's top-k log-probs (one eval.ppl) */
    int save_topk;           /* k; 0: 64 */
} pl_local;

typedef struct {
    /* inputs */
    spq_jobspec spec;
    const char *models_dir, *datasets_dir; /* unused with local.paths */
    const char *work_dir;     /* scratch space for files the run writes */
    int64_t resume_step;      /* -1: fresh start; else the checkpoint below */
    const void *resume_ckpt;
    size_t resume_len;
    const pl_reporter *rep;
    pl_local local;
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
    int stop;                 /* PL_STOP_* seen by a stage */
    spq_err err;
    /* outputs, kept after the run (also a failed one) until pl_pipeline_free */
    json_t *results;          /* {"key": value} of final scores, as reported by metric() */
    json_t *report;           /* the evaluation in full (worker/pipeline_eval.c), or NULL */
} pl_pipeline;

typedef struct {
    const char *name;
    int (*needed)(const spq_jobspec *s);
    int (*run)(pl_pipeline *p);
} pl_stage;

/* Whether the spec asks for any evaluation (the evaluate stage runs). */
int pl_spec_evaluates(const spq_jobspec *s);

/* The stages in order (NULL-terminated by name). */
extern const pl_stage pl_stages[];

/* Runs the whole pipeline for a parsed spec. Returns PL_STAGE_OK, _FAILED
 * (p->err: "<stage>: reason") or _STOPPED (p->stop says why). Frees the
 * state it built; the inputs and outputs stay for pl_pipeline_free. */
int pl_pipeline_run(pl_pipeline *p);
/* Frees p->spec and the outputs. */
void pl_pipeline_free(pl_pipeline *p);

/* Stage implementations (worker/pipeline_*.c). */
int pl_stage_load(pl_pipeline *p);
int pl_stage_fuse(pl_pipeline *p);
int pl_stage_rotate(pl_pipeline *p);
int pl_stage_learn(pl_pipeline *p);
int pl_stage_quantize(pl_pipeline *p);
int pl_stage_evaluate(pl_pipeline *p);
int pl_stage_write(pl_pipeline *p);

/* Estimates what the run will need of memory (each stage's peak) and disk
 * (common/job/memest.h) once the model is loaded, logs it and fails the run
 * when this machine has less (worker/pipeline_memcheck.c); SPINQ_NO_MEMCHECK=1
 * logs without failing. */
int pl_check_resources(pl_pipeline *p);

/* Converts a mapped model's weights to fp32 (the stages that change or pack
 * them), reporting progress("load", layer, n_layers + 1) with the bar's ETA;
 * nothing to do for a model already in memory. */
void pl_materialize(pl_pipeline *p);
/* 1 when the quantize stage will quantize the mapped model a layer at a
 * time (quant/qpack.h), else it converts the model to fp32 first. */
int pl_quant_streams(const pl_pipeline *p);

/* A dataset name of the spec (field: its path, for the message) as a path
 * inside the datasets dir (as given with local.paths); 0 or -1 with p->err
 * set. */
int pl_dataset_path(pl_pipeline *p, char **path, const char *name, const char *field);

/* Polls the reporter; records the reason in p->stop. */
int pl_pipeline_should_stop(pl_pipeline *p);

/* Reports a final score: metric(key, 0, v) and results[key] (NaN: neither). */
void pl_score(pl_pipeline *p, const char *key, double v);

/* log(level, ...) with printf formatting. */
void pl_log(pl_pipeline *p, const char *level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
