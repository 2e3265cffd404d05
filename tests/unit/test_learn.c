/* test_learn.c - the rotation-learning loop: a run stopped at step k and
 * resumed from its saved rotation ends with exactly the rotations of one
 * that never stopped; learning lowers the quantized model's loss; R1 and R2
 * stay orthogonal. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/io/load.h"
#include "common/model/model.h"
#include "common/rot/fuse.h"
#include "common/rot/rotation.h"
#include "common/train/cayley.h"
#include "common/train/learn.h"
#include "common/train/train.h"

typedef struct {
    spq_model m;
    int *tok;
    long n;
    spq_qcfg q;
} setup;

static void setup_build(setup *s) {
    const char *sh = getenv("SPINQ_SHARED");
    char p[4096];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.bin", sh ? sh : "../shared");
    spq_err err;
    cr_assert(spq_model_load(&s->m, p, &err) == 0, "%s", err.msg);
    spq_fuse_norms(&s->m);
    /* a token stream with the model's statistics: its own greedy story would
     * do, but any fixed ids are enough for the loop's bookkeeping */
    s->n = 4096;
    s->tok = malloc(s->n * sizeof(int));
    spq_rng r;
    spq_rng_seed(&r, 5);
    for (long i = 0; i < s->n; i++) s->tok[i] = 3 + (int)(spq_rng_u64(&r) % 509);
    s->q = spq_qcfg_off();
    s->q.w.bits = 4;
    s->q.a.bits = 4;
    s->q.kv.bits = 4;
}

static void setup_free(setup *s) {
    free(s->tok);
    spq_model_free(&s->m);
}

typedef struct {
    int stop_at;
    int steps_seen;
} hook_state;

static int stop_hook(void *ud) {
    hook_state *h = ud;
    return h->stop_at > 0 && h->steps_seen >= h->stop_at;
}

static void step_hook(void *ud, int step, int steps, double loss, double lr, double g, double tps) {
    (void)steps; (void)loss; (void)lr; (void)g; (void)tps;
    ((hook_state *)ud)->steps_seen = step;
}

Test(learn, resumed_run_ends_with_the_same_rotations_as_an_uninterrupted_one, .timeout = 300) {
    setup s;
    setup_build(&s);
    spq_err err;
    spq_learn_cfg c = spq_learn_defaults();
    c.steps = 6; c.batch = 2; c.seqlen = 32; c.seed = 3; c.checkpoint_every = 0;
    /* uninterrupted */
    spq_rotation a;
    cr_assert(spq_rotation_build(&a, &s.m.cfg, 1, SPQ_INIT_HADAMARD, c.seed, &err) == 0, "%s", err.msg);
    spq_rotation_meta ma = {.loss = NAN};
    cr_assert(spq_learn(&a, &ma, &s.m, &s.q, s.tok, s.n, &c, NULL, &err) == 0, "%s", err.msg);
    cr_expect_eq(ma.step, 6);
    /* stopped after 2 steps, saved, loaded, resumed */
    spq_rotation b, b2;
    cr_assert(spq_rotation_build(&b, &s.m.cfg, 1, SPQ_INIT_HADAMARD, c.seed, &err) == 0, "%s", err.msg);
    spq_rotation_meta mb = {.loss = NAN};
    hook_state hs = {.stop_at = 2};
    spq_learn_hooks hooks = {.on_step = step_hook, .should_stop = stop_hook, .ud = &hs};
    cr_assert(spq_learn(&b, &mb, &s.m, &s.q, s.tok, s.n, &c, &hooks, &err) == 0, "%s", err.msg);
    cr_expect_eq(mb.step, 2);
    char path[] = "/tmp/spinq-learn-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert(spq_rotation_save(path, &b, &mb, &err) == 0, "%s", err.msg);
    spq_rotation_meta mb2;
    cr_assert(spq_rotation_load(&b2, &mb2, path, &err) == 0, "%s", err.msg);
    cr_expect_eq(mb2.step, 2);
    cr_assert(spq_learn(&b2, &mb2, &s.m, &s.q, s.tok, s.n, &c, NULL, &err) == 0, "%s", err.msg);
    cr_expect_eq(mb2.step, 6);
    int d = s.m.cfg.dim, hd = s.m.cfg.head_dim, L = s.m.cfg.n_layers;
    cr_expect_eq(memcmp(a.R1, b2.R1, (size_t)d * d * sizeof(double)), 0, "R1 differs after resuming");
    cr_expect_eq(memcmp(a.R2, b2.R2, (size_t)L * hd * hd * sizeof(double)), 0, "R2 differs after resuming");
    cr_expect(spq_cayley_orth_error(a.R1, d) < 1e-5);
    for (int l = 0; l < L; l++) cr_expect(spq_cayley_orth_error(a.R2 + (size_t)l * hd * hd, hd) < 1e-5);
    unlink(path);
    spq_rotation_free(&a);
    spq_rotation_free(&b);
    spq_rotation_free(&b2);
    setup_free(&s);
}

Test(learn, learning_lowers_the_quantized_loss_on_its_data, .timeout = 300) {
    setup s;
    setup_build(&s);
    spq_err err;
    /* one window, many steps: the objective on that window must drop */
    spq_learn_cfg c = spq_learn_defaults();
    c.steps = 25; c.batch = 1; c.seqlen = 64; c.seed = 1; c.checkpoint_every = 0;
    long n = c.seqlen;  /* every window is the same one */
    spq_rotation r;
    cr_assert(spq_rotation_build(&r, &s.m.cfg, 1, SPQ_INIT_HADAMARD, 0, &err) == 0, "%s", err.msg);
    spq_trainer tr;
    cr_assert(spq_trainer_build(&tr, &s.m, &r, &s.q, 1, c.seqlen, &err) == 0, "%s", err.msg);
    double before = spq_trainer_step(&tr, &r, s.tok, 0);
    spq_rotation_meta meta = {.loss = NAN};
    cr_assert(spq_learn(&r, &meta, &s.m, &s.q, s.tok, n, &c, NULL, &err) == 0, "%s", err.msg);
    double after = spq_trainer_step(&tr, &r, s.tok, 0);
    cr_expect(after < before - 0.01, "loss %.4f before, %.4f after learning", before, after);
    spq_trainer_free(&tr);
    spq_rotation_free(&r);
    setup_free(&s);
}

Test(learn, bad_settings_are_refused_by_name) {
    setup s;
    setup_build(&s);
    spq_err err;
    spq_rotation r;
    cr_assert(spq_rotation_build(&r, &s.m.cfg, 1, SPQ_INIT_IDENTITY, 0, &err) == 0);
    spq_rotation_meta meta = {0};
    spq_learn_cfg c = spq_learn_defaults();
    c.seqlen = 100000;
    cr_expect(spq_learn(&r, &meta, &s.m, &s.q, s.tok, s.n, &c, NULL, &err) != 0);
    cr_expect(strstr(err.msg, "seqlen") != NULL, "%s", err.msg);
    c = spq_learn_defaults();
    c.seqlen = 512;
    cr_expect(spq_learn(&r, &meta, &s.m, &s.q, s.tok, 100, &c, NULL, &err) != 0);
    cr_expect(strstr(err.msg, "calibration") != NULL, "%s", err.msg);
    spq_rotation_free(&r);
    setup_free(&s);
}
