/* learn.c - see learn.h. */
#include "learn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cayley.h"
#include "train.h"

spq_learn_cfg spq_learn_defaults(void) {
    spq_learn_cfg c = {.steps = 100, .lr = 1.5, .batch = 8, .seqlen = 2048, .seed = 0, .grad_clip = 1.0,
                       .checkpoint_every = 10};
    return c;
}

/* the start offset of every window of the schedule */
static long *window_starts(const spq_learn_cfg *c, long n) {
    size_t count = (size_t)c->steps * c->batch;
    long *starts = spq_malloc(count * sizeof(long));
    spq_rng r;
    spq_rng_seed(&r, c->seed ^ 0x6c6561726eULL);
    long range = n - c->seqlen + 1;
    for (size_t i = 0; i < count; i++) starts[i] = (long)(spq_rng_u64(&r) % (uint64_t)range);
    return starts;
}

int spq_learn(spq_rotation *rot, spq_rotation_meta *meta, const spq_model *fused, const spq_qcfg *q,
              const int *tokens, long n, const spq_learn_cfg *cfg, const spq_learn_hooks *hooks, spq_err *err) {
    const spq_config *mc = &fused->cfg;
    if (cfg->steps < 1) return spq_fail(err, "steps must be positive (got %d)", cfg->steps);
    if (!(cfg->lr > 0) || !isfinite(cfg->lr)) return spq_fail(err, "lr must be a positive number");
    if (cfg->batch < 1) return spq_fail(err, "batch must be positive (got %d)", cfg->batch);
    if (cfg->seqlen < 2 || cfg->seqlen > mc->seq_len)
        return spq_fail(err, "seqlen must be in [2, %d] (the model's context), got %d", mc->seq_len, cfg->seqlen);
    if (n < cfg->seqlen)
        return spq_fail(err, "calibration text has %ld tokens, fewer than one window of seqlen %d", n, cfg->seqlen);
    if (meta->step < 0 || meta->step > cfg->steps)
        return spq_fail(err, "resume step %d is outside [0, %d]", meta->step, cfg->steps);
    spq_trainer tr;
    if (spq_trainer_build(&tr, fused, rot, q, cfg->batch, cfg->seqlen, err)) return -1;
    long *starts = window_starts(cfg, n);
    int B = cfg->batch, T = cfg->seqlen, L = mc->n_layers, d = mc->dim, hd = mc->head_dim;
    int *batch = spq_malloc((size_t)B * T * sizeof(int));
    meta->steps = cfg->steps;
    meta->batch = B;
    meta->seqlen = T;
    meta->lr = cfg->lr;
    meta->seed = cfg->seed;
    snprintf(meta->mode, sizeof meta->mode, "%s", rot->online ? "had" : "no-had");
    int rc = 0;
    while (meta->step < cfg->steps) {
        if (hooks && hooks->should_stop && hooks->should_stop(hooks->ud)) break;
        int t = meta->step;
        double t0 = spq_now();
        for (int b = 0; b < B; b++)
            memcpy(batch + (size_t)b * T, tokens + starts[(size_t)t * B + b], (size_t)T * sizeof(int));
        double loss = spq_trainer_step(&tr, rot, batch, 1);
        float *grads[2] = {tr.dR1, tr.dR2};
        size_t sizes[2] = {(size_t)d * d, (size_t)L * hd * hd};
        double gnorm = spq_clip_grad_norm(grads, sizes, 2, cfg->grad_clip > 0 ? cfg->grad_clip : INFINITY);
        if (!isfinite(loss) || !isfinite(gnorm)) {
            rc = spq_fail(err, "step %d: the loss or its gradient is not finite (loss %g, gradient norm %g)", t,
                          loss, gnorm);
            break;
        }
        double lr = spq_lr_cosine(cfg->lr, t, cfg->steps);
        if (spq_cayley_step(rot->R1, tr.dR1, d, lr, NULL, err)) {
            rc = spq_fail_prefix(err, "step %d: R1", t);
            break;
        }
        for (int l = 0; l < L; l++)
            if (spq_cayley_step(rot->R2 + (size_t)l * hd * hd, tr.dR2 + (size_t)l * hd * hd, hd, lr, NULL, err)) {
                rc = spq_fail_prefix(err, "step %d: R2 of layer %d", t, l);
                break;
            }
        if (rc) break;
        meta->step = t + 1;
        meta->loss = loss;
        if (hooks && hooks->on_step)
            hooks->on_step(hooks->ud, meta->step, cfg->steps, loss, lr, gnorm, (double)B * T / (spq_now() - t0));
        int due = meta->step == cfg->steps || (cfg->checkpoint_every > 0 && meta->step % cfg->checkpoint_every == 0);
        if (due && hooks && hooks->on_checkpoint && hooks->on_checkpoint(hooks->ud, rot, meta)) {
            rc = spq_fail(err, "step %d: checkpoint failed", meta->step);
            break;
        }
    }
    free(batch);
    free(starts);
    spq_trainer_free(&tr);
    return rc;
}
