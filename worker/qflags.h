/* qflags.h - the quantization flags shared by spinq's commands:
 *   --w-bits B  --w-asym  --w-groupsize G  --w-clip | --no-w-clip
 *   --a-bits B  --a-clip R  --kv-bits B  --kv-clip R  --w-grid q4_0|q8_0
 * the GPTQ flags of the commands that quantize weights:
 *   --calib FILE --nsamples N --seqlen N --damp D --calib-seed S --act-order --calib-act-quant
 * and the rotation flags of commands that evaluate rotated models:
 *   --rotation FILE|hadamard|random|none  --mode had|no-had  --seed S */
#ifndef CLI_QFLAGS_H
#define CLI_QFLAGS_H

#include <stdint.h>

#include "common/model/model.h"
#include "common/rot/rotation.h"

/* If argv[*i] is a quantization flag, parses it into q (advancing *i) and
 * returns 1; returns 0 if it is not one, -1 on a bad value (reported). */
int cli_qflag(spq_qcfg *q, int argc, char **argv, int *i, const char *cmd);

typedef struct {
    const char *rotation;  /* NULL/"none", "hadamard", "random" or a file */
    int online;            /* --mode: 1 had (default), 0 no-had */
    uint64_t seed;
} cli_rotflags;

/* Like cli_qflag, for --rotation, --mode, --seed. */
int cli_rotflag(cli_rotflags *r, int argc, char **argv, int *i, const char *cmd);

/* The rotation that r->rotation names (not "none") for a model of config c:
 * built ("hadamard", "random": seeded, r->online) or loaded from a file
 * and checked against c (the message names the file). The commands that
 * evaluate or quantize put r into a job spec instead (cli_spec_quant). */
int cli_rotation(spq_rotation *rot, const cli_rotflags *r, const spq_config *c, spq_err *err);
typedef struct {
    const char *calib;  /* calibration text */
    int nsamples, seqlen, act_order, calib_act_quant;
    float damp;
    uint64_t calib_seed;
    int given;          /* 1 once any of the flags was given */
} cli_gptqflags;

/* The job spec's GPTQ defaults. */
cli_gptqflags cli_gptqflags_default(void);
/* Like cli_qflag, for the GPTQ flags. */
int cli_gptqflag(cli_gptqflags *g, int argc, char **argv, int *i, const char *cmd);
/* --method (rtn or gptq) against the flags given: *use_gptq, or -1 with the
 * reason on stderr (gptq without --calib, GPTQ flags without gptq). */
int cli_gptq_method(int *use_gptq, const char *method, const cli_gptqflags *g, const char *cmd);

#endif
