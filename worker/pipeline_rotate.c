/* pipeline_rotate.c - the rotate stage: R1/R2 (and the online R3/R4 when
 * rotation.online_had) built for the fused model, seeded by the spec's seed.
 * Modes "hadamard" and "random" are fixed rotations, absorbed into the
 * weights here; so is mode "file", a rotation saved earlier (by a run or
 * `spinq rotate`), which brings its own had/no-had mode. Mode "spinquant"
 * starts from rotation.init and is left in p->rot for the learn stage, which
 * absorbs it once learned; a run resumed from a checkpoint starts from the
 * checkpoint's rotation instead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/pipeline.h"

/* A rotation file into p->rot, checked against the model. */
static int load_file(pl_pipeline *p, const char *path) {
    if (spq_rotation_load(&p->rot, &p->rot_meta, path, &p->err)) return -1;
    if (spq_rotation_check(&p->rot, &p->model.cfg, &p->err)) { /* fits (despite its header) */
        spq_rotation_free(&p->rot);
        return -1;
    }
    return 0;
}

/* The resume checkpoint (a rotation safetensors file) into p->rot. */
static int load_checkpoint(pl_pipeline *p) {
    char *path = spq_path_join(p->work_dir, "resume.safetensors");
    FILE *f = fopen(path, "wb");
    int rc = -1;
    if (f && fwrite(p->resume_ckpt, 1, p->resume_len, f) == p->resume_len && !fclose(f)) {
        f = NULL;
        rc = load_file(p, path);
        if (rc) spq_fail_prefix(&p->err, "resume checkpoint (step %lld)", (long long)p->resume_step);
    } else {
        spq_fail(&p->err, "cannot write %s", path);
    }
    if (f) fclose(f);
    unlink(path);
    free(path);
    return rc;
}

/* a fixed rotation absorbed into the weights */
static int apply(pl_pipeline *p, const char *what, int online) {
    if (spq_rotation_apply(&p->model, &p->rot, &p->err)) return PL_STAGE_FAILED;
    char line[400];
    snprintf(line, sizeof line, "%s rotations applied (R1 %dx%d, R2 %dx%d per layer%s)", what, p->rot.dim,
             p->rot.dim, p->rot.head_dim, p->rot.head_dim, online ? ", online R3/R4" : "");
    p->rep->log(p->rep->ud, "info", line);
    return PL_STAGE_OK;
}

/* A model written as GGUF (local.gguf) is a plain LLaMA, which cannot run a
 * "had" rotation's online Hadamards: refused before any work. */
static int refuse_online(pl_pipeline *p, const char *what) {
    if (!p->local.gguf || !spq_rotation_plain_only(&p->rot, what, &p->err)) return 0;
    spq_rotation_free(&p->rot);
    p->have_rot = 0;
    return -1;
}

int pl_stage_rotate(pl_pipeline *p) {
    const spq_jobspec *s = &p->spec;
    int init = s->rotation.mode == SPQ_ROT_HADAMARD ? SPQ_INIT_HADAMARD
               : s->rotation.mode == SPQ_ROT_RANDOM ? SPQ_INIT_RANDOM
                                                     : s->rotation.init;
    memset(&p->rot_meta, 0, sizeof p->rot_meta);
    if (s->rotation.mode == SPQ_ROT_FILE) {
        char *path;
        if (pl_dataset_path(p, &path, s->rotation.file, "rotation.file")) return PL_STAGE_FAILED;
        int bad = load_file(p, path);
        if (bad) spq_fail_prefix(&p->err, "rotation.file %s", s->rotation.file);
        free(path);
        if (bad) return PL_STAGE_FAILED;
        p->have_rot = 1;
        if (refuse_online(p, s->rotation.file)) return PL_STAGE_FAILED;
        return apply(p, s->rotation.file, p->rot.online);
    } else if (s->rotation.mode == SPQ_ROT_SPINQUANT && p->resume_step >= 0 && p->resume_len) {
        if (load_checkpoint(p)) return PL_STAGE_FAILED;
        char line[128];
        snprintf(line, sizeof line, "resuming from the checkpoint of step %lld", (long long)p->resume_step);
        p->rep->log(p->rep->ud, "info", line);
    } else if (spq_rotation_build(&p->rot, &p->model.cfg, s->rotation.online_had, init, s->seed, &p->err)) {
        return PL_STAGE_FAILED;
    }
    p->have_rot = 1;
    if (refuse_online(p, spq_rot_mode_name(s->rotation.mode))) return PL_STAGE_FAILED;
    if (p->resume_step < 0 || s->rotation.mode != SPQ_ROT_SPINQUANT) p->rot_meta.loss = NAN;
    p->rot_meta.init = init;
    p->rot_meta.seed = s->seed;
    snprintf(p->rot_meta.mode, sizeof p->rot_meta.mode, "%s", s->rotation.online_had ? "had" : "no-had");
    if (s->rotation.mode == SPQ_ROT_SPINQUANT) return PL_STAGE_OK; /* learn absorbs it */
    return apply(p, spq_rot_mode_name(s->rotation.mode), s->rotation.online_had);
}
