/* jobspec.h - the job spec: what a run does, as the API takes it and the
 * worker runs it (design notes, section 5). One parser for both sides, so a
 * spec the daemon accepted is a spec the worker can run.
 *
 * Every field is optional but `model`; the defaults are the paper's (the
 * example in the design notes), kept in one table in jobspec.c. Unknown
 * fields, wrong types, values out of range and values that do not go with
 * another field (spq_jobspec_check: "weights.method" "none" with
 * quant.w_bits 4) are errors that name the field by its path
 * ("quant.a_bits", "eval.ppl[1].data"). The worker trusts a parsed spec:
 * what it still refuses depends on the model (a window longer than its
 * context) or on the data. spq_jobspec_to_json() writes the spec back with every
 * default filled in: the daemon stores that form, so a run's spec never
 * changes meaning when a default does.
 *
 * Models and datasets are names relative to configured directories.
 * spq_jobspec_resolve_*() turn a name into a path that is guaranteed to lie
 * inside its directory: absolute names, `..` components and symlinks that
 * lead out are refused. */
#ifndef SPQ_JOBSPEC_H
#define SPQ_JOBSPEC_H

#include <stdint.h>

#include "common/base/util.h"
#include "common/model/model.h"

#define SPQ_FIELD_MAX 128
#define SPQ_SPEC_MAX_TAGS 32
#define SPQ_SPEC_MAX_EVALS 16

typedef enum { SPQ_ROT_NONE, SPQ_ROT_HADAMARD, SPQ_ROT_RANDOM, SPQ_ROT_SPINQUANT, SPQ_ROT_FILE } spq_rot_mode;
typedef enum { SPQ_WQ_NONE, SPQ_WQ_RTN, SPQ_WQ_GPTQ } spq_wq_method;

typedef struct {
    char *data;  /* dataset name, relative to the datasets dir */
    int seqlen;  /* window; 0 = the model's context, capped at 2048 */
} spq_spec_ppl;

typedef struct {
    char *name;  /* arc_easy, arc_challenge, piqa, hellaswag, winogrande, boolq, openbookqa, siqa, lambada */
    char *data;  /* dataset name */
} spq_spec_task;

typedef struct {
    char *name;
    char *tags[SPQ_SPEC_MAX_TAGS];
    int n_tags;
    char *model;  /* model name, relative to the models dir */
    uint64_t seed;
    struct {
        int w_bits, w_sym, w_groupsize, w_clip;
        int w_grid;  /* 0, or llama.cpp's Q4_0 / Q8_0 block grid (quant.h) */
        int a_bits;
        double a_clip;
        int kv_bits;
        double kv_clip;
    } quant;
    struct {
        spq_rot_mode mode;
        int online_had;  /* "had" mode: online R3/R4 (not for "file": the file says) */
        int init;        /* SPQ_INIT_HADAMARD, _RANDOM or _IDENTITY (rot/rotation.h) */
        char *file;      /* mode "file": a rotation file (spq_rotation_save), a dataset name */
        struct {
            int steps;
            double lr;
            int batch, seqlen;
            char *calib;
            int w_bits;
            int checkpoint_every;
        } train;
    } rotation;
    struct {
        spq_wq_method method;
        char *calib;
        int nsamples, seqlen;
        double damp;
        int act_order;
        int blocksize;
    } weights;
    struct {
        spq_spec_ppl ppl[SPQ_SPEC_MAX_EVALS];
        int n_ppl;
        int kld;
        spq_spec_task tasks[SPQ_SPEC_MAX_EVALS];
        int n_tasks;
        int limit; /* 0: everything; else at most this many windows / examples */
    } eval;
    /* where the run goes when the daemon's executor is Slurm (the local
     * executor ignores it): nodes and MPI tasks of the allocation, threads
     * of each task; 0 = the daemon's default (its slurm_* settings) */
    struct {
        int nodes, tasks, threads_per_task;
    } resources;
} spq_jobspec;

/* The defaults (one table in jobspec.c), strings malloc'd; `model` NULL.
 * Callers that build a spec themselves (the spinq commands) start here and
 * finish with spq_jobspec_check. */
void spq_jobspec_defaults(spq_jobspec *s);
/* The rules between fields (a value that is fine alone but not with
 * another), which parsing applies after the fields: 0, or -1 naming the
 * field like the parser. A spec that passes is one the worker runs without
 * checking it again. */
int spq_jobspec_check(const spq_jobspec *s, char *field, spq_err *err);

/* Parses a spec from JSON text. On failure returns -1 with err->msg saying
 * what was wrong and `field` (SPQ_FIELD_MAX bytes, may be NULL) the path of
 * the offending field ("" when the document itself is bad). */
int spq_jobspec_parse(spq_jobspec *s, const char *json, size_t len, char *field, spq_err *err);
/* The same from a jansson value (json_t *), for callers that built the
 * document themselves (sweeps). */
int spq_jobspec_parse_value(spq_jobspec *s, const void *json_value, char *field, spq_err *err);
void spq_jobspec_free(spq_jobspec *s);

/* The spec with every default filled in, as a jansson object (json_t *,
 * caller owns the reference) or as compact JSON text (malloc'd). */
void *spq_jobspec_to_value(const spq_jobspec *s);
char *spq_jobspec_to_json(const spq_jobspec *s);

const char *spq_rot_mode_name(spq_rot_mode m);
const char *spq_wq_method_name(spq_wq_method m);
const char *spq_rot_init_name(int init);

/* The quantizer settings of a spec (its quant section), with the weights at
 * w_bits (quant.w_bits, or rotation.train.w_bits while learning). */
spq_qcfg spq_jobspec_qcfg(const spq_jobspec *s, int w_bits);
/* The other way: q into the quant section (q's settings that a spec does
 * not hold, such as asymmetric activations, are left out). */
void spq_jobspec_set_qcfg(spq_jobspec *s, const spq_qcfg *q);

/* Checks a name for use under a configured directory: not empty, relative,
 * no "." or ".." component, no NUL or backslash. */
int spq_name_check(const char *name, spq_err *err);
/* dir/name as a malloc'd real path, which must exist and lie inside dir (after
 * resolving symlinks). */
int spq_resolve_under(char **path, const char *dir, const char *name, spq_err *err);
/* A model name: dir/name when it is a Hugging Face directory (config.json) or
 * a file; for a directory without config.json, the llama2.c checkpoint in it
 * (name.bin, else its only .bin that is not a tokenizer). */
int spq_jobspec_resolve_model(char **path, const char *models_dir, const char *name, spq_err *err);
/* The datasets a spec reads: the field that names each (out[i].field, a
 * SPQ_FIELD_MAX buffer) and the name (pointing into s). Returns how many
 * (at most 3 + 2 * SPQ_SPEC_MAX_EVALS, the size out must have). */
typedef struct {
    char field[SPQ_FIELD_MAX];
    const char *name;
} spq_jobspec_data;
#define SPQ_SPEC_MAX_DATA (3 + 2 * SPQ_SPEC_MAX_EVALS)
int spq_jobspec_datasets(const spq_jobspec *s, spq_jobspec_data *out);
/* Checks that every model and dataset the spec needs exists inside its
 * directory; on failure names the field. */
int spq_jobspec_check_paths(const spq_jobspec *s, const char *models_dir, const char *datasets_dir, char *field,
                            spq_err *err);

#endif
