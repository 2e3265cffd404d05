/* pipeline_rotate.c - the rotate stage: R1/R2 (and the online R3/R4 when
 * rotation.online_had) built for the fused model, seeded by the spec's seed.
 * Modes "hadamard" and "random" are fixed rotations, absorbed into the
 * weights here. Mode "spinquant" starts from rotation.init and is left in
 * p->rot for the learn stage, which absorbs it once learned; a run resumed
 * from a checkpoint starts from the checkpoint's rotation instead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/pipeline.h"

/* The resume checkpoint (a rotation safetensors file) into p->rot. */
static int load_checkpoint(pl_pipeline *p) {
    char *path = spq_path_join(p->work_dir, "resume.safetensors");
    FILE *f = fopen(path, "wb");
    int rc = -1;
    if (f && fwrite(p->resume_ckpt, 1, p->resume_len, f) == p->resume_len && !fclose(f)) {
        f = NULL;
        rc = spq_rotation_load(&p->rot, &p->rot_meta, path, &p->err);
        if (!rc) rc = spq_rotation_check(&p->rot, &p->model.cfg, &p->err); /* 0: fits (despite its header) */
        if (rc) spq_fail_prefix(&p->err, "resume checkpoint (step %lld)", (long long)p->resume_step);
    } else {
        spq_fail(&p->err, "cannot write %s", path);
    }
    if (f) fclose(f);
    unlink(path);
    free(path);
    return rc;
}

int pl_stage_rotate(pl_pipeline *p) {
    const spq_jobspec *s = &p->spec;
    int init = s->rotation.mode == SPQ_ROT_HADAMARD ? SPQ_INIT_HADAMARD
               : s->rotation.mode == SPQ_ROT_RANDOM ? SPQ_INIT_RANDOM
               : s->rotation.init_hadamard           ? SPQ_INIT_HADAMARD
                                                     : SPQ_INIT_RANDOM;
    memset(&p->rot_meta, 0, sizeof p->rot_meta);
    if (s->rotation.mode == SPQ_ROT_SPINQUANT && p->resume_step >= 0 && p->resume_len) {
        if (load_checkpoint(p)) return PL_STAGE_FAILED;
        char line[128];
        snprintf(line, sizeof line, "resuming from the checkpoint of step %lld", (long long)p->resume_step);
        p->rep->log(p->rep->ud, "info", line);
    } else if (spq_rotation_build(&p->rot, &p->model.cfg, s->rotation.online_had, init, s->seed, &p->err)) {
        return PL_STAGE_FAILED;
    }
    p->have_rot = 1;
    if (p->resume_step < 0 || s->rotation.mode != SPQ_ROT_SPINQUANT) p->rot_meta.loss = NAN;
    p->rot_meta.init = init;
    p->rot_meta.seed = s->seed;
    snprintf(p->rot_meta.mode, sizeof p->rot_meta.mode, "%s", s->rotation.online_had ? "had" : "no-had");
    if (s->rotation.mode == SPQ_ROT_SPINQUANT) return PL_STAGE_OK; /* learn absorbs it */
    if (spq_rotation_apply(&p->model, &p->rot, &p->err)) return PL_STAGE_FAILED;
    char line[160];
    snprintf(line, sizeof line, "%s rotations applied (R1 %dx%d, R2 %dx%d per layer%s)",
             spq_rot_mode_name(s->rotation.mode), p->rot.dim, p->rot.dim, p->rot.head_dim, p->rot.head_dim,
             s->rotation.online_had ? ", online R3/R4" : "");
    p->rep->log(p->rep->ud, "info", line);
    return PL_STAGE_OK;
}
