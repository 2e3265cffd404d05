/* learn.c - see learn.h.
 *
 * Under MPI (common/base/par.h) each step's global batch of B windows is
 * split across the ranks: a rank builds its trainer for its share b of the
 * windows and computes the mean loss and gradient over them; weighted by
 * b / B (every window scores T-1 positions) and summed over the ranks in
 * rank order, they are the global batch's mean loss and gradient, to fp32
 * summation error. The clipping and the Cayley step then run on identical
 * inputs on every rank, so every rank holds the same rotation. A rank with
 * no window (P > B) adds zeros but still takes part in every sum. */
#include "learn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/par.h"

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

/* within-step progress, passed on once the step has run for 5 s */
typedef struct {
    const spq_learn_hooks *hooks;
    int step;
    double t0;
} pass_ctx;

static void on_pass(void *ud, int done, int total) {
    pass_ctx *c = ud;
    if (spq_now() - c->t0 >= 5.0) c->hooks->on_pass(c->hooks->ud, c->step, done, total);
}

/* the global batch's mean loss, and its gradient in grads, from this rank's
 * windows [lo, hi) of B; with one rank, the trainer's step as it is */
static double share_loss_grad(spq_trainer *tr, const spq_rotation *rot, const int *batch, int lo, int hi, int B,
                              float *grads[2], const size_t sizes[2]) {
    if (spq_par_size() < 2) return spq_trainer_step(tr, rot, batch, 1);
    double loss = 0;
    if (hi > lo) {
        float w = (float)(hi - lo) / (float)B;
        loss = spq_trainer_step(tr, rot, batch, 1) * (double)(hi - lo) / B;
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < sizes[k]; i++) grads[k][i] *= w;
    } else { /* the buffers hold the last step's sum */
        for (int k = 0; k < 2; k++) memset(grads[k], 0, sizes[k] * sizeof(float));
    }
    for (int k = 0; k < 2; k++) spq_par_sum_f32(grads[k], sizes[k]);
    spq_par_sum_f64(&loss, 1);
    return loss;
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
    int B = cfg->batch, T = cfg->seqlen, L = mc->n_layers, d = mc->dim, hd = mc->head_dim, lo, hi;
    spq_par_share(B, &lo, &hi);
    spq_trainer tr = {0};
    int bad = hi > lo && spq_trainer_build(&tr, fused, rot, q, hi - lo, cfg->seqlen, err) != 0;
    if (spq_par_any(bad)) return bad ? -1 : spq_fail(err, "another rank could not build its trainer");
    if (hi == lo) { /* nothing to compute here: the gradient buffers alone, zeros */
        tr.dR1 = spq_calloc((size_t)d * d, sizeof(float));
        tr.dR2 = spq_calloc((size_t)L * hd * hd, sizeof(float));
    }
    pass_ctx pc = {.hooks = hooks};
    if (hooks && hooks->on_pass && hi > lo) {
        tr.on_pass = on_pass;
        tr.on_pass_ud = &pc;
    }
    long *starts = window_starts(cfg, n);
    int *batch = spq_malloc((size_t)(hi > lo ? hi - lo : 1) * T * sizeof(int));
    meta->steps = cfg->steps;
    meta->batch = B;
    meta->seqlen = T;
    meta->lr = cfg->lr;
    meta->seed = cfg->seed;
    snprintf(meta->mode, sizeof meta->mode, "%s", rot->online ? "had" : "no-had");
    int rc = 0;
    while (meta->step < cfg->steps) {
        if (spq_par_any(hooks && hooks->should_stop && hooks->should_stop(hooks->ud))) break;
        int t = meta->step;
        double t0 = spq_now();
        pc.step = t;
        pc.t0 = t0;
        for (int b = lo; b < hi; b++)
            memcpy(batch + (size_t)(b - lo) * T, tokens + starts[(size_t)t * B + b], (size_t)T * sizeof(int));
        float *grads[2] = {tr.dR1, tr.dR2};
        size_t sizes[2] = {(size_t)d * d, (size_t)L * hd * hd};
        double loss = share_loss_grad(&tr, rot, batch, lo, hi, B, grads, sizes);
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
        /* agreed: only rank 0 writes, and every rank must stop together */
        if (due && hooks && hooks->on_checkpoint && spq_par_any(hooks->on_checkpoint(hooks->ud, rot, meta))) {
            rc = spq_fail(err, "step %d: checkpoint failed", meta->step);
            break;
        }
    }
    free(batch);
    free(starts);
    if (hi == lo) {
        free(tr.dR1);
        free(tr.dR2);
    } else {
        spq_trainer_free(&tr);
    }
    return rc;
}
