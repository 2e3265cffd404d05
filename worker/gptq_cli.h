/* gptq_cli.h - GPTQ from the command line, shared by `spinq quantize` and
 * `spinq export-gguf`: its flags
 *   --calib FILE --nsamples N --seqlen N --damp D --calib-seed S --act-order --calib-act-quant
 * and a run on a calibration text with per-layer progress on stderr. */
#ifndef SPQ_GPTQ_CLI_H
#define SPQ_GPTQ_CLI_H

#include <jansson.h>

#include "common/gptq.h"

typedef struct {
    spq_gptq_cfg g;     /* g.seqlen 0: the model's context, at most 2048 */
    const char *calib;  /* calibration text */
    int given;          /* 1 once any of the flags was given */
} spq_gptq_flags;

/* Defaults (spq_gptq_defaults with seqlen 0). */
spq_gptq_flags spq_gptq_flags_default(void);

/* Like spq_qflag (qflags.h): 1 and the value when argv[*i] is a GPTQ flag, 0
 * when it is not one, -1 on a bad value (reported). */
int spq_gptqflag(spq_gptq_flags *f, int argc, char **argv, int *i, const char *cmd);

/* The settings as JSON (calib, nsamples, seqlen, seed, damp, act_order,
 * calib_act_quant), for the provenance a written model keeps. */
json_t *spq_gptq_flags_json(const spq_gptq_flags *f);

/* Quantizes m's linears under w with GPTQ on f->calib, encoded with the
 * tokenizer of model_path; *wq gets the parameters. Prints one line per
 * layer and a summary (prefixed "spinq CMD: ") on stderr. */
int spq_gptq_run(spq_wquant *wq, spq_model *m, const char *model_path, const spq_wq_cfg *w, spq_gptq_flags *f,
                 const char *cmd, spq_err *err);

#endif
