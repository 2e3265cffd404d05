/* pipeline_learn.c - the learn stage (rotation.mode "spinquant"): Cayley SGD
 * on R1 and every R2 against the fake-quantized model's loss on the
 * calibration text (common/train/learn.h), weights fake-quantized at
 * rotation.train.w_bits while learning. Every step reports train/loss,
 * train/lr and train/grad_norm; every checkpoint_every steps (and after the
 * last) the rotation goes to the daemon as a checkpoint (the bytes of a
 * rotation safetensors file, learning state in its metadata). A run resumed
 * from such a checkpoint continues the same trajectory bit for bit: the data
 * schedule is a function of the seed and the rotation is the whole optimizer
 * state. On a shutdown request it checkpoints the current step and stops; on
 * cancel it just stops. When done, the learned rotation is absorbed. Under
 * MPI the ranks share each step's batch (learn.c) and hold the same
 * rotation: rank 0 alone checkpoints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/par.h"
#include "common/quant/qmodel.h"
#include "common/train/learn.h"
#include "worker/pipeline.h"

typedef struct {
    pl_pipeline *p;
    char qjson[256];
} learn_ctx;

static void on_step(void *ud, int step, int steps, double loss, double lr, double gnorm, double tps) {
    learn_ctx *c = ud;
    const pl_reporter *r = c->p->rep;
    r->metric(r->ud, "train/loss", step, loss);
    r->metric(r->ud, "train/lr", step, lr);
    r->metric(r->ud, "train/grad_norm", step, gnorm);
    r->progress(r->ud, "learn", step, steps);
}

static void on_pass(void *ud, int step, int done, int total) {
    learn_ctx *c = ud;
    c->p->rep->progress(c->p->rep->ud, "learn step", done, total);
}

static int on_checkpoint(void *ud, const spq_rotation *rot, const spq_rotation_meta *meta) {
    learn_ctx *c = ud;
    pl_pipeline *p = c->p;
    if (spq_par_rank() > 0) return 0; /* the same rotation as rank 0's */
    spq_rotation_meta m = *meta;
    snprintf(m.extra, sizeof m.extra, "%s", c->qjson);
    char *path = spq_path_join(p->work_dir, "checkpoint.safetensors");
    char *data = NULL;
    size_t len;
    spq_err err;
    int rc = spq_rotation_save(path, rot, &m, &err) || spq_read_file(&data, &len, path, &err);
    if (rc) p->rep->log(p->rep->ud, "error", err.msg);
    else p->rep->checkpoint(p->rep->ud, m.step, data, len);
    free(data);
    unlink(path);
    free(path);
    return rc;
}

static int should_stop(void *ud) { return pl_pipeline_should_stop(((learn_ctx *)ud)->p); }

/* Whether a later stage reads the weights (quantizes, evaluates, exports or
 * serves them): otherwise the run's result is the rotation file alone, and
 * absorbing it (a product over the embedding and classifier as well, about
 * 9 TFLOP at 8B) is skipped. */
static int weights_used_after(const pl_pipeline *p) {
    const spq_jobspec *s = &p->spec;
    return s->quant.w_bits < 16 || pl_spec_evaluates(s) || p->local.gguf || p->local.keep_model;
}

int pl_stage_learn(pl_pipeline *p) {
    const spq_jobspec *s = &p->spec;
    spq_learn_cfg lc = spq_learn_defaults();
    lc.steps = s->rotation.train.steps;
    lc.lr = s->rotation.train.lr;
    lc.batch = s->rotation.train.batch;
    lc.seqlen = s->rotation.train.seqlen < p->model.cfg.seq_len ? s->rotation.train.seqlen : p->model.cfg.seq_len;
    lc.seed = s->seed;
    lc.checkpoint_every = s->rotation.train.checkpoint_every;
    spq_qcfg q = spq_jobspec_qcfg(s, s->rotation.train.w_bits);
    if (spq_qcfg_check(&q, &p->model.cfg, &p->err)) return PL_STAGE_FAILED;
    learn_ctx ctx = {.p = p};
    spq_qcfg_to_json(ctx.qjson, sizeof ctx.qjson, &q);
    /* the learning quantizers travel with the rotation, whether or not the run was resumed, so that the final
     * file does not depend on the run's history */
    snprintf(p->rot_meta.extra, sizeof p->rot_meta.extra, "%s", ctx.qjson);
    if (lc.steps == 0) { /* `spinq rotate --steps 0` (the API asks for 1 or more): the initial rotation, a baseline */
        p->rot_meta.steps = 0;
        p->rep->log(p->rep->ud, "info", "no learning steps: the initial rotation is kept");
        return weights_used_after(p) && spq_rotation_apply(&p->model, &p->rot, &p->err) ? PL_STAGE_FAILED : PL_STAGE_OK;
    }
    char *path = NULL, *text = NULL;
    int *ids = NULL, n_ids = 0, rc = PL_STAGE_FAILED;
    size_t len;
    if (pl_dataset_path(p, &path, s->rotation.train.calib, "rotation.train.calib")) goto setup_failed;
    if (spq_read_file(&text, &len, path, &p->err) || spq_tok_encode(p->tok, text, len, 1, &ids, &n_ids, &p->err)) {
        spq_fail_prefix(&p->err, "%s", s->rotation.train.calib);
        goto setup_failed;
    }
    if (spq_par_any(0)) { /* every rank read the text: the learning's sums can start */
        spq_fail(&p->err, "another rank failed");
        goto done;
    }
    spq_learn_hooks hooks = {.on_step = on_step, .on_checkpoint = on_checkpoint, .should_stop = should_stop,
                             .on_pass = on_pass, .ud = &ctx};
    char line[256];
    snprintf(line, sizeof line, "learning rotations: %d steps of %d x %d tokens, lr %g, seed %llu%s", lc.steps,
             lc.batch, lc.seqlen, lc.lr, (unsigned long long)lc.seed,
             p->rot_meta.step > 0 ? " (resumed)" : "");
    p->rep->log(p->rep->ud, "info", line);
    if (spq_learn(&p->rot, &p->rot_meta, &p->model, &q, ids, n_ids, &lc, &hooks, &p->err)) goto done;
    if (p->rot_meta.step < lc.steps) { /* asked to stop */
        if (p->stop == PL_STOP_SHUTDOWN && on_checkpoint(&ctx, &p->rot, &p->rot_meta)) {
            spq_fail(&p->err, "could not checkpoint before stopping");
            goto done;
        }
        rc = PL_STAGE_STOPPED;
        goto done;
    }
    json_object_set_new(p->results, "train/loss", json_real(p->rot_meta.loss));
    int absorb = weights_used_after(p);
    if (absorb && spq_rotation_apply(&p->model, &p->rot, &p->err)) goto done;
    snprintf(line, sizeof line, "rotations learned (final loss %.4f)%s", p->rot_meta.loss,
             absorb ? " and absorbed" : "");
    p->rep->log(p->rep->ud, "info", line);
    rc = PL_STAGE_OK;
    goto done;
setup_failed:
    spq_par_any(1); /* the other ranks' agreement above */
done:
    free(ids);
    free(text);
    free(path);
    return rc;
}
