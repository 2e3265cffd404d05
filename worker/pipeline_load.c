/* pipeline_load.c - the load and fuse stages: the model named by the spec
 * (resolved inside the models dir) and its tokenizer; RMSNorm weights folded
 * into the linears when the run rotates. */
#include <stdio.h>

#include "common/io/load.h"
#include "common/rot/fuse.h"
#include "worker/pipeline.h"

int pl_stage_load(pl_pipeline *p) {
    if (spq_jobspec_resolve_model(&p->model_path, p->models_dir, p->spec.model, &p->err)) {
        spq_fail_prefix(&p->err, "model");
        return PL_STAGE_FAILED;
    }
    if (spq_model_load(&p->model, p->model_path, &p->err)) return PL_STAGE_FAILED;
    p->model_loaded = 1;
    if (spq_tok_load_for_model(&p->tok, p->model_path, &p->err)) return PL_STAGE_FAILED;
    const spq_config *c = &p->model.cfg;
    char line[256];
    snprintf(line, sizeof line, "loaded %s (%s): dim %d, %d layers, %d heads (%d kv), vocab %d, %zu parameters",
             p->spec.model, p->model.format, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size,
             spq_model_nparams(&p->model));
    p->rep->log(p->rep->ud, "info", line);
    return PL_STAGE_OK;
}

int pl_stage_fuse(pl_pipeline *p) {
    spq_fuse_norms(&p->model);
    p->rep->log(p->rep->ud, "info", "RMSNorm weights fused into the following linears");
    return PL_STAGE_OK;
}
