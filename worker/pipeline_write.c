/* pipeline_write.c - the write stage: the run's outputs as artifacts.
 * results.json (the normalized spec, the model path and every final score)
 * always; the rotation (rotation.safetensors) when the run rotated; the
 * packed model joins them when weight quantization lands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/pipeline.h"

int spq_stage_write(spq_pipeline *p) {
    char *path = spq_path_join(p->work_dir, "results.json");
    json_t *spec = spq_jobspec_to_value(&p->spec);
    json_t *doc = json_pack("{s:o,s:O}", "spec", spec, "results", p->results);
    int bad = json_dump_file(doc, path, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(doc);
    int rc = SPQ_STAGE_OK;
    if (bad) {
        spq_fail(&p->err, "cannot write %s", path);
        rc = SPQ_STAGE_FAILED;
    } else if (p->rep->artifact(p->rep->ud, "results.json", path, &p->err)) {
        rc = SPQ_STAGE_FAILED;
    }
    remove(path);
    free(path);
    if (rc == SPQ_STAGE_OK && p->have_rot) {
        path = spq_path_join(p->work_dir, "rotation.safetensors");
        if (spq_rotation_save(path, &p->rot, &p->rot_meta, &p->err) ||
            p->rep->artifact(p->rep->ud, "rotation.safetensors", path, &p->err))
            rc = SPQ_STAGE_FAILED;
        remove(path);
        free(path);
    }
    return rc;
}
