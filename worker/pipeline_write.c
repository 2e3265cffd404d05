/* pipeline_write.c - the write stage: the run's outputs as artifacts.
 * results.json ({"spec": the normalized spec, "results": every final score,
 * "eval": the evaluation's full report when there is one}) always; the
 * rotation (rotation.safetensors) when the run rotated; the packed low-bit
 * model (model.spq, packed.h: what the run evaluated, with integer kernels,
 * its tokenizer and the spec that made it inside) when the weights were
 * quantized to 2..4 bits. A spinq command leaves out what it does not
 * output (local.skip); `spinq export-gguf` asks for the model as GGUF
 * (model.gguf, local.gguf) instead. Under MPI only rank 0 writes: every
 * rank holds the same rotation and weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/par.h"
#include "common/io/gguf_model.h"
#include "common/io/load.h"
#include "common/io/packed.h"
#include "common/model/mapped.h"
#include "worker/pipeline.h"

static int write_packed(pl_pipeline *p) {
    if (p->wq.cfg.bits > 4) {
        p->rep->log(p->rep->ud, "warn", "no packed model: packed weights are 2..4 bits");
        return PL_STAGE_OK;
    }
    char *info = spq_jobspec_to_json(&p->spec);
    spq_pack_opts o = {.emb_dtype = p->local.emb_dtype ? (spq_st_dtype)p->local.emb_dtype : SPQ_ST_F32, .info = info,
                       .tokenizer_from = p->model_path};
    spq_model pm;
    char *path = spq_path_join(p->work_dir, "model.spq");
    int rc = PL_STAGE_OK;
    if (spq_packed_build(&pm, &p->model, &p->wq, &o, &p->err)) {
        rc = PL_STAGE_FAILED;
    } else {
        if (spq_packed_save(&pm, path, &p->err) || p->rep->artifact(p->rep->ud, "model.spq", path, &p->err))
            rc = PL_STAGE_FAILED;
        spq_model_free(&pm);
    }
    remove(path);
    free(path);
    free(info);
    return rc;
}

static int write_gguf(pl_pipeline *p) {
    char *tpl = spq_model_chat_template(p->model_path), *base = spq_path_base(p->model_path);
    spq_gguf_save_opts o = {.lin_type = p->local.gguf_type, .emb_type = p->local.gguf_emb_type,
                            .wq = p->have_wq ? &p->wq : NULL, .tok = p->tok, .chat_template = tpl,
                            .name = p->local.gguf_name ? p->local.gguf_name : base,
                            .source_info = p->local.gguf_info};
    char *path = spq_path_join(p->work_dir, "model.gguf");
    pl_materialize(p);
    int rc = spq_gguf_save_model(&p->model, &o, path, &p->err) || p->rep->artifact(p->rep->ud, "model.gguf", path, &p->err)
                 ? PL_STAGE_FAILED
                 : PL_STAGE_OK;
    remove(path);
    free(path);
    free(tpl);
    free(base);
    return rc;
}

static int write_results(pl_pipeline *p) {
    char *path = spq_path_join(p->work_dir, "results.json");
    json_t *spec = spq_jobspec_to_value(&p->spec);
    json_t *doc = json_pack("{s:o,s:O}", "spec", spec, "results", p->results);
    if (p->report) json_object_set(doc, "eval", p->report);
    int bad = json_dump_file(doc, path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(doc);
    int rc = PL_STAGE_OK;
    if (bad) {
        spq_fail(&p->err, "cannot write %s", path);
        rc = PL_STAGE_FAILED;
    } else if (p->rep->artifact(p->rep->ud, "results.json", path, &p->err)) {
        rc = PL_STAGE_FAILED;
    }
    remove(path);
    free(path);
    return rc;
}

int pl_stage_write(pl_pipeline *p) {
    if (spq_par_rank() > 0) return PL_STAGE_OK;
    unsigned skip = p->local.skip;
    int rc = skip & PL_ART_RESULTS ? PL_STAGE_OK : write_results(p);
    if (rc == PL_STAGE_OK && p->have_rot && !(skip & PL_ART_ROTATION)) {
        char *path = spq_path_join(p->work_dir, "rotation.safetensors");
        if (spq_rotation_save(path, &p->rot, &p->rot_meta, &p->err) ||
            p->rep->artifact(p->rep->ud, "rotation.safetensors", path, &p->err))
            rc = PL_STAGE_FAILED;
        remove(path);
        free(path);
    }
    if (rc == PL_STAGE_OK && p->local.gguf) rc = write_gguf(p);
    else if (rc == PL_STAGE_OK && p->have_wq && !(skip & PL_ART_MODEL)) rc = write_packed(p);
    return rc;
}
