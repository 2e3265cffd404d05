/* learn.h - SpinQuant's rotation learning: Cayley SGD on R1 and every R2
 * against the fake-quantized model's next-token loss on calibration text.
 *
 * Data: steps x batch windows of seqlen tokens with start offsets drawn
 * uniformly from the calibration tokens by a seeded generator, step t using
 * windows [t*batch, (t+1)*batch) — the whole schedule is a function of the
 * seed, so a run resumed at step k sees the same data as one that never
 * stopped. Each step: loss and gradient (train.h), global gradient-norm
 * clipping over R1 and all R2, learning rate lr * (1 + cos(pi t / steps)) / 2,
 * one Cayley step per matrix (cayley.h). The rotation (fp64) is the whole
 * optimizer state (SGDG without momentum), so a checkpoint of it and the step
 * count resumes the same trajectory bit for bit. */
#ifndef SPQ_LEARN_H
#define SPQ_LEARN_H

#include "common/model/model.h"
#include "common/rot/rotation.h"

typedef struct {
    int steps;             /* 100 */
    double lr;             /* 1.5 */
    int batch;             /* 8 */
    int seqlen;            /* 2048 in the paper; at most the model's context */
    uint64_t seed;
    double grad_clip;      /* 1.0; 0 disables */
    int checkpoint_every;  /* steps between checkpoints; 0: only at the end */
} spq_learn_cfg;

spq_learn_cfg spq_learn_defaults(void);

typedef struct {
    /* after every step; tokens_per_s over the step */
    void (*on_step)(void *ud, int step, int steps, double loss, double lr, double grad_norm, double tokens_per_s);
    /* every checkpoint_every steps and after the last; non-zero stops learning
     * with an error (e.g. the checkpoint could not be written) */
    int (*on_checkpoint)(void *ud, const spq_rotation *rot, const spq_rotation_meta *meta);
    /* polled between steps; non-zero stops cleanly (the caller checkpoints) */
    int (*should_stop)(void *ud);
    /* optional: within step `step` (0-based), done of total layer passes
     * (forward and backward), once the step has run for 5 s: a step on an
     * 8B model takes most of an hour on two cores, a small model's never
     * calls it */
    void (*on_pass)(void *ud, int step, int done, int total);
    void *ud;
} spq_learn_hooks;

/* Learns rot in place, starting at step meta->step (0 for a fresh run) and
 * updating meta (step, loss, settings). fused: the model after
 * spq_fuse_norms; q: the quantizers during learning; tokens (n): the
 * tokenized calibration text. Returns 0 when all steps are done or
 * should_stop asked to stop (meta->step tells which). */
int spq_learn(spq_rotation *rot, spq_rotation_meta *meta, const spq_model *fused, const spq_qcfg *q,
              const int *tokens, long n, const spq_learn_cfg *cfg, const spq_learn_hooks *hooks, spq_err *err);

#endif
