/* pipeline_load.c - the load and fuse stages: the model named by the spec
 * (resolved inside the models dir) and its tokenizer; RMSNorm weights folded
 * into the linears when the run rotates. A packed model (packed.h) carries
 * its own rotations and quantizers: it is evaluated as it is, and a spec
 * that would rotate or quantize it again is refused here, where the model's
 * kind is known.
 *
 * A Hugging Face model is loaded mapped (model/mapped.h): its weights stay
 * in their files and evaluation converts a layer at a time, so evaluating
 * a model needs memory for one layer, not the whole model in fp32. Fusing
 * and rotating are recorded and done as a layer is converted; quantizing
 * to a packed form goes a layer at a time (quant/qpack.h), and so does
 * learning (train/train.h). Other quantizations, a GGUF write and the
 * evaluation of a rotated model materialize the weights first; a model kept
 * for serving is loaded in fp32, as decoding would convert every layer at
 * every token. */
#include <stdio.h>
#include <stdlib.h>

#include "common/io/load.h"
#include "common/model/mapped.h"
#include "common/rot/fuse.h"
#include "worker/pipeline.h"

int pl_stage_load(pl_pipeline *p) {
    const spq_jobspec *s = &p->spec;
    if (p->local.paths) {
        p->model_path = spq_strdup(s->model);
    } else if (spq_jobspec_resolve_model(&p->model_path, p->models_dir, s->model, &p->err)) {
        spq_fail_prefix(&p->err, "model");
        return PL_STAGE_FAILED;
    }
    int mapped = !p->local.load_f32 && !p->local.keep_model;
    if ((mapped ? spq_model_load_mapped : spq_model_load)(&p->model, p->model_path, &p->err)) return PL_STAGE_FAILED;
    p->model_loaded = 1;
    if (p->model.packed &&
        (s->rotation.mode != SPQ_ROT_NONE || s->quant.w_bits < 16 || s->quant.a_bits < 16 || s->quant.kv_bits < 16)) {
        spq_fail(&p->err, "model: %s is a packed model: it carries its own rotations and quantization settings "
                          "and takes no others", s->model);
        return PL_STAGE_FAILED;
    }
    if (spq_tok_load_for_model(&p->tok, p->model_path, &p->err)) return PL_STAGE_FAILED;
    const spq_config *c = &p->model.cfg;
    pl_log(p, "info", "loaded %s (%s): dim %d, %d layers, %d heads (%d kv), vocab %d, %zu parameters%s", s->model,
           p->model.format, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
           spq_model_nparams(&p->model), p->model.mapped ? "; weights mapped, converted a layer at a time" : "");
    return pl_check_resources(p);
}

static void on_convert(void *ud, long done, long total) {
    pl_pipeline *p = ud;
    p->rep->progress(p->rep->ud, "load", done, total);
}

void pl_materialize(pl_pipeline *p) {
    if (!p->model.mapped) return;
    double t0 = spq_now();
    spq_model_materialize_progress(&p->model, on_convert, p);
    pl_log(p, "info", "weights converted to fp32 (%.1f s)", spq_now() - t0);
}

int pl_stage_fuse(pl_pipeline *p) {
    spq_fuse_norms(&p->model); /* a mapped model's layers as they are converted */
    p->rep->log(p->rep->ud, "info", "RMSNorm weights fused into the following linears");
    return PL_STAGE_OK;
}
