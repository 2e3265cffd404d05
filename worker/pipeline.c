/* pipeline.c - the stage table and the runner (see pipeline.h).
 *
 * The runner checks every needed stage's availability before it loads
 * anything, so a spec this build cannot run fails at once with the reason,
 * then runs the needed stages in order, announcing each. */
#include "worker/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int always(const spq_jobspec *s) { return 1; }
static int yes(const spq_jobspec *s, char *why, size_t cap) { return 1; }
static int rotated(const spq_jobspec *s) { return s->rotation.mode != SPQ_ROT_NONE; }
static int learned(const spq_jobspec *s) { return s->rotation.mode == SPQ_ROT_SPINQUANT; }
static int weights_quantized(const spq_jobspec *s) { return s->quant.w_bits < 16; }
static int evaluated(const spq_jobspec *s) { return s->eval.n_ppl > 0 || s->eval.kld || s->eval.n_tasks > 0; }

static int learn_available(const spq_jobspec *s, char *why, size_t cap) {
    snprintf(why, cap, "rotation.mode \"spinquant\": learning rotations (Cayley SGD) is not available yet in this build");
    return 0;
}

static int quantize_available(const spq_jobspec *s, char *why, size_t cap) {
    if (s->weights.method == SPQ_WQ_NONE)
        snprintf(why, cap, "quant.w_bits %d needs weights.method \"rtn\" or \"gptq\" (or quant.w_bits 16)",
                 s->quant.w_bits);
    else
        snprintf(why, cap, "weights.method \"%s\" at quant.w_bits %d: weight quantization is not available yet in "
                           "this build", spq_wq_method_name(s->weights.method), s->quant.w_bits);
    return 0;
}

static int evaluate_available(const spq_jobspec *s, char *why, size_t cap) {
    if (s->quant.a_bits < 16 || s->quant.kv_bits < 16) {
        snprintf(why, cap, "quant.a_bits %d / quant.kv_bits %d: evaluating with quantized activations or KV cache "
                           "is not available yet in this build (use 16 for a full-precision evaluation)",
                 s->quant.a_bits, s->quant.kv_bits);
        return 0;
    }
    if (s->eval.kld) {
        snprintf(why, cap, "eval.kld: KL divergence against the full-precision model is not available yet in this "
                           "build");
        return 0;
    }
    if (s->eval.n_tasks) {
        snprintf(why, cap, "eval.tasks: zero-shot tasks (%s, ...) are not available yet in this build",
                 s->eval.tasks[0].name);
        return 0;
    }
    return 1;
}

static int unavailable_run(spq_pipeline *p) {
    spq_fail(&p->err, "not available yet");
    return SPQ_STAGE_FAILED;
}

const spq_stage spq_stages[] = {
    {"load", always, yes, spq_stage_load},
    {"fuse", rotated, yes, spq_stage_fuse},
    {"rotate", rotated, yes, spq_stage_rotate},
    {"learn", learned, learn_available, unavailable_run},
    {"quantize", weights_quantized, quantize_available, unavailable_run},
    {"evaluate", evaluated, evaluate_available, spq_stage_evaluate},
    {"write", always, yes, spq_stage_write},
    {NULL, NULL, NULL, NULL},
};

int spq_pipeline_should_stop(spq_pipeline *p) {
    if (!p->stop && p->rep->should_stop) p->stop = p->rep->should_stop(p->rep->ud);
    return p->stop;
}

static void cleanup(spq_pipeline *p) {
    if (p->model_loaded) spq_model_free(&p->model);
    p->model_loaded = 0;
    if (p->have_rot) spq_rotation_free(&p->rot);
    p->have_rot = 0;
    if (p->tok) spq_tok_free(p->tok);
    p->tok = NULL;
    free(p->model_path);
    p->model_path = NULL;
    json_decref(p->results);
    p->results = NULL;
}

int spq_pipeline_run(spq_pipeline *p) {
    p->results = json_object();
    p->stop = SPQ_STOP_NONE;
    for (const spq_stage *s = spq_stages; s->name; s++) {
        char why[512];
        if (s->needed(&p->spec) && !s->available(&p->spec, why, sizeof why)) {
            spq_fail(&p->err, "%s: not available yet: %s", s->name, why);
            cleanup(p);
            return SPQ_STAGE_FAILED;
        }
    }
    int rc = SPQ_STAGE_OK;
    for (const spq_stage *s = spq_stages; s->name && rc == SPQ_STAGE_OK; s++) {
        if (!s->needed(&p->spec)) continue;
        if (spq_pipeline_should_stop(p)) {
            rc = SPQ_STAGE_STOPPED;
            break;
        }
        p->rep->stage(p->rep->ud, s->name);
        rc = s->run(p);
        if (rc == SPQ_STAGE_FAILED) spq_fail_prefix(&p->err, "%s", s->name);
    }
    cleanup(p);
    return rc;
}
