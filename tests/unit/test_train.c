/* test_train.c - rotations leave the full-precision model unchanged; the
 * learning objective equals the inference forward of the rotated model; its
 * gradient with respect to R1 and each R2 matches finite differences (and,
 * with quantizers on, the straight-through definition). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/eval/ppl.h"
#include "common/io/load.h"
#include "common/model/forward.h"
#include "common/model/mapped.h"
#include "common/model/model.h"
#include "common/rot/fuse.h"
#include "common/rot/rotation.h"
#include "common/train/train.h"

static void load_stories(spq_model *m) {
    const char *s = getenv("SPINQ_SHARED");
    char p[4096];
    snprintf(p, sizeof p, "%s/models/stories260K/stories260K.bin", s ? s : "../shared");
    spq_err err;
    cr_assert(spq_model_load(m, p, &err) == 0, "%s", err.msg);
}

static void random_tokens(int *tok, int n, int V, uint64_t seed) {
    spq_rng r;
    spq_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) tok[i] = 3 + (int)(spq_rng_u64(&r) % (V - 3));
}

/* max |a - b| / max |b| of the logits of two models on the same tokens */
static double logits_rel_diff(const spq_model *a, const spq_model *b, int T) {
    int V = a->cfg.vocab_size;
    int *tok = malloc(T * sizeof(int));
    random_tokens(tok, T, V, 11);
    float *la = malloc((size_t)T * V * sizeof(float)), *lb = malloc((size_t)T * V * sizeof(float));
    spq_state s;
    spq_state_build(&s, &a->cfg, 1, T, T);
    int pos = 0;
    spq_forward(la, &s, tok, &pos, a, 1, T, SPQ_LOGITS_ALL);
    spq_forward(lb, &s, tok, &pos, b, 1, T, SPQ_LOGITS_ALL);
    double d = 0, mx = 0;
    for (size_t i = 0; i < (size_t)T * V; i++) {
        d = fmax(d, fabs(la[i] - lb[i]));
        mx = fmax(mx, fabs(lb[i]));
    }
    spq_state_free(&s);
    free(tok); free(la); free(lb);
    return d / mx;
}

static void check_invariance(const spq_model *orig, int online, int init, int T) {
    spq_model m;
    spq_model_copy(&m, orig);
    spq_fuse_norms(&m);
    double fused = logits_rel_diff(&m, orig, T);
    cr_expect(fused < 1e-5, "fusing the norms changed the logits by %g (relative)", fused);
    spq_rotation r;
    spq_err err;
    cr_assert(spq_rotation_build(&r, &m.cfg, online, init, 5, &err) == 0, "%s", err.msg);
    cr_assert(spq_rotation_apply(&m, &r, &err) == 0, "%s", err.msg);
    double rel = logits_rel_diff(&m, orig, T);
    cr_expect(rel < 1e-4, "rotated (%s, init %d) logits differ by %g relative", online ? "had" : "no-had", init, rel);
    spq_rotation_free(&r);
    spq_model_free(&m);
}

Test(rotation, stories260K_rotated_model_gives_the_original_logits) {
    spq_model m;
    load_stories(&m);
    check_invariance(&m, 1, SPQ_INIT_RANDOM, 64);
    check_invariance(&m, 0, SPQ_INIT_RANDOM, 64);
    check_invariance(&m, 1, SPQ_INIT_HADAMARD, 64);
    spq_model_free(&m);
}

/* had mode only (R1-R4, a superset of no-had's R1, R2): rotating the
 * 128256 x 2048 embedding and classifier in fp64 takes most of a minute */
Test(rotation, llama32_1b_shaped_two_layers_rotated_gives_the_original_logits, .timeout = 900) {
    spq_config c = spq_config_llama32_1b(2);
    c.seq_len = 2048;
    spq_model m;
    spq_model_init_random(&m, &c, 9);
    check_invariance(&m, 1, SPQ_INIT_RANDOM, 16);
    spq_model_free(&m);
}

Test(rotation, save_and_load_give_the_same_rotation) {
    spq_config c = {.dim = 64, .head_dim = 8, .n_layers = 3, .hidden_dim = 172};
    spq_rotation r, back;
    spq_err err;
    cr_assert(spq_rotation_build(&r, &c, 1, SPQ_INIT_RANDOM, 3, &err) == 0, "%s", err.msg);
    char path[] = "/tmp/spinq-rot-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    spq_rotation_meta meta = {.step = 7, .steps = 100, .lr = 1.5, .seed = 42, .loss = 2.5, .batch = 8,
                              .seqlen = 512};
    cr_assert(spq_rotation_save(path, &r, &meta, &err) == 0, "%s", err.msg);
    spq_rotation_meta mb;
    cr_assert(spq_rotation_load(&back, &mb, path, &err) == 0, "%s", err.msg);
    cr_expect_eq(memcmp(r.R1, back.R1, 64 * 64 * sizeof(double)), 0);
    cr_expect_eq(memcmp(r.R2, back.R2, 3 * 64 * sizeof(double)), 0);
    cr_expect_eq(back.r4.is_hadamard, 0);  /* 172: dense, saved with the rotation */
    cr_expect_eq(memcmp(r.r4.Q, back.r4.Q, 172 * 172 * sizeof(double)), 0);
    cr_expect_eq(mb.step, 7);
    cr_expect_eq(mb.seed, 42);
    cr_expect(mb.lr == 1.5 && mb.loss == 2.5);
    /* a rotation for another shape is refused by name */
    spq_config other = c;
    other.dim = 128;
    cr_expect(spq_rotation_check(&back, &other, &err) != 0);
    cr_expect(strstr(err.msg, "hidden_size") != NULL, "%s", err.msg);
    unlink(path);
    spq_rotation_free(&r);
    spq_rotation_free(&back);
}

/* ---- the learning objective ---- */

typedef struct {
    spq_model orig, fused;
    spq_rotation rot;
    spq_trainer tr;
    int *tok;
    int B, T;
} fixture;

static void fixture_build(fixture *f, int online, spq_qcfg q, int B, int T) {
    spq_err err;
    load_stories(&f->orig);
    spq_model_copy(&f->fused, &f->orig);
    spq_fuse_norms(&f->fused);
    cr_assert(spq_rotation_build(&f->rot, &f->fused.cfg, online, SPQ_INIT_RANDOM, 21, &err) == 0, "%s", err.msg);
    cr_assert(spq_trainer_build(&f->tr, &f->fused, &f->rot, &q, B, T, &err) == 0, "%s", err.msg);
    f->B = B;
    f->T = T;
    f->tok = malloc((size_t)B * T * sizeof(int));
    random_tokens(f->tok, B * T, f->orig.cfg.vocab_size, 4);
}

static void fixture_free(fixture *f) {
    free(f->tok);
    spq_trainer_free(&f->tr);
    spq_rotation_free(&f->rot);
    spq_model_free(&f->fused);
    spq_model_free(&f->orig);
}

/* mean NLL of the inference forward of the rotated (and, per q, fake
 * quantized) model on the fixture's windows */
static double inference_loss(fixture *f, spq_qcfg q) {
    spq_model m;
    spq_err err;
    spq_model_copy(&m, &f->fused);
    cr_assert(spq_rotation_apply(&m, &f->rot, &err) == 0, "%s", err.msg);
    for (int l = 0; l < m.cfg.n_layers; l++) {
        spq_layer *L = &m.layers[l];
        int d = m.cfg.dim, H = m.cfg.hidden_dim, qd = m.cfg.n_heads * m.cfg.head_dim,
            kvd = m.cfg.n_kv_heads * m.cfg.head_dim;
        spq_wq_forward(L->wq, L->wq, qd, d, &q.w);
        spq_wq_forward(L->wk, L->wk, kvd, d, &q.w);
        spq_wq_forward(L->wv, L->wv, kvd, d, &q.w);
        spq_wq_forward(L->wo, L->wo, d, qd, &q.w);
        spq_wq_forward(L->w_gate, L->w_gate, H, d, &q.w);
        spq_wq_forward(L->w_up, L->w_up, H, d, &q.w);
        spq_wq_forward(L->w_down, L->w_down, d, H, &q.w);
    }
    m.q = q;
    spq_ppl_result r;
    cr_assert(spq_ppl_windows(&r, &m, f->tok, (long)f->B * f->T, f->T, f->B, NULL, NULL, &err) == 0, "%s", err.msg);
    spq_model_free(&m);
    return r.nll_sum / r.n_scored;
}

Test(train, objective_equals_the_inference_forward_of_the_rotated_model) {
    for (int online = 0; online <= 1; online++) {
        fixture f;
        fixture_build(&f, online, spq_qcfg_off(), 3, 32);
        double a = spq_trainer_step(&f.tr, &f.rot, f.tok, 0), b = inference_loss(&f, spq_qcfg_off());
        cr_expect(fabs(a - b) < 1e-5, "%s: objective %.8f vs inference %.8f", online ? "had" : "no-had", a, b);
        fixture_free(&f);
    }
}

Test(train, quantized_objective_is_close_to_the_fake_quantized_inference) {
    /* W4A8KV8: the objective rotates weights in fp32, inference in fp64, so a
     * few weights round to the other level; the losses agree to ~1e-3 */
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = 4; q.w.mse = 1;
    q.a.bits = 8; q.kv.bits = 8;
    fixture f;
    fixture_build(&f, 1, q, 2, 32);
    double a = spq_trainer_step(&f.tr, &f.rot, f.tok, 0), b = inference_loss(&f, q);
    cr_expect(fabs(a - b) < 2e-3 * b, "objective %.6f vs fake-quantized inference %.6f", a, b);
    fixture_free(&f);
}

/* Learning on a model that stays in its files reads each layer's weights
 * from the map when the layer runs: the objective and its gradient are
 * those of the same model loaded in fp32, to the bit. */
Test(train, a_mapped_model_gives_the_objective_and_gradient_of_its_fp32_load_bit_for_bit) {
    const char *sh = getenv("SPINQ_SHARED");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/stories260K-hf", sh ? sh : "../shared");
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = 4; q.a.bits = 8; q.kv.bits = 8;
    spq_model m[2];
    spq_trainer tr[2];
    spq_rotation rot;
    spq_err err;
    int B = 2, T = 32;
    for (int k = 0; k < 2; k++) {
        cr_assert((k ? spq_model_load_mapped : spq_model_load)(&m[k], dir, &err) == 0, "%s", err.msg);
        spq_fuse_norms(&m[k]);
    }
    cr_assert(m[1].mapped != NULL && m[1].layers[0].wq == NULL, "the layers stay in the file");
    cr_assert(spq_rotation_build(&rot, &m[0].cfg, 1, SPQ_INIT_RANDOM, 21, &err) == 0, "%s", err.msg);
    int *tok = malloc((size_t)B * T * sizeof(int));
    random_tokens(tok, B * T, m[0].cfg.vocab_size, 4);
    double loss[2];
    for (int k = 0; k < 2; k++) {
        cr_assert(spq_trainer_build(&tr[k], &m[k], &rot, &q, B, T, &err) == 0, "%s", err.msg);
        loss[k] = spq_trainer_step(&tr[k], &rot, tok, 1);
    }
    const spq_config *c = &m[0].cfg;
    cr_expect(loss[0] == loss[1], "loss %.17g (fp32) vs %.17g (mapped)", loss[0], loss[1]);
    cr_expect_eq(memcmp(tr[0].dR1, tr[1].dR1, (size_t)c->dim * c->dim * sizeof(float)), 0, "dR1 differs");
    cr_expect_eq(memcmp(tr[0].dR2, tr[1].dR2, (size_t)c->n_layers * c->head_dim * c->head_dim * sizeof(float)), 0,
                 "dR2 differs");
    for (int k = 0; k < 2; k++) {
        spq_trainer_free(&tr[k]);
        spq_model_free(&m[k]);
    }
    spq_rotation_free(&rot);
    free(tok);
}

/* ---- gradient checks ---- */

/* a random skew-symmetric A (n, n) with ||A||_F = 1 */
static void random_skew(double *A, int n, uint64_t seed) {
    spq_rng r;
    spq_rng_seed(&r, seed);
    double ss = 0;
    for (int i = 0; i < n; i++) {
        A[i * n + i] = 0;
        for (int j = i + 1; j < n; j++) {
            double v = spq_rng_normal(&r);
            A[i * n + j] = v;
            A[j * n + i] = -v;
            ss += 2 * v * v;
        }
    }
    for (int i = 0; i < n * n; i++) A[i] /= sqrt(ss);
}

/* Delta = R A, the tangent direction at R of the skew A */
static void tangent(double *D, const double *R, const double *A, int n) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += R[i * n + k] * A[k * n + j];
            D[i * n + j] = s;
        }
}

/* loss with R (R1 if layer < 0, else R2 of that layer) moved by eps * D */
static double loss_moved(fixture *f, int layer, const double *D, double eps) {
    int n = layer < 0 ? f->rot.dim : f->rot.head_dim;
    double *R = layer < 0 ? f->rot.R1 : f->rot.R2 + (size_t)layer * n * n;
    double *save = malloc((size_t)n * n * sizeof(double));
    memcpy(save, R, (size_t)n * n * sizeof(double));
    for (int i = 0; i < n * n; i++) R[i] += eps * D[i];
    double l = spq_trainer_step(&f->tr, &f->rot, f->tok, 0);
    memcpy(R, save, (size_t)n * n * sizeof(double));
    free(save);
    return l;
}

/* Richardson-extrapolated central difference: error O(eps^4) */
static double directional_fd(fixture *f, int layer, const double *D, double eps) {
    double d1 = (loss_moved(f, layer, D, eps) - loss_moved(f, layer, D, -eps)) / (2 * eps);
    double d2 = (loss_moved(f, layer, D, eps / 2) - loss_moved(f, layer, D, -eps / 2)) / eps;
    return (4 * d2 - d1) / 3;
}

static double directional_analytic(const fixture *f, int layer, const double *D) {
    int n = layer < 0 ? f->rot.dim : f->rot.head_dim;
    const float *G = layer < 0 ? f->tr.dR1 : f->tr.dR2 + (size_t)layer * n * n;
    double s = 0;
    for (int i = 0; i < n * n; i++) s += G[i] * D[i];
    return s;
}

/* a random direction (n, n) with ||D||_F = 1, not tangent to the group */
static void random_direction(double *D, int n, uint64_t seed) {
    spq_rng r;
    spq_rng_seed(&r, seed);
    double ss = 0;
    for (int i = 0; i < n * n; i++) {
        D[i] = spq_rng_normal(&r);
        ss += D[i] * D[i];
    }
    for (int i = 0; i < n * n; i++) D[i] /= sqrt(ss);
}

static double eps_fd = 0.05;

/* For R1 and every R2 (the objective is defined for any matrices, and the
 * trainer computes its Euclidean gradient):
 *  - along random directions the analytic derivative matches the finite
 *    difference;
 *  - along tangent directions R A (A skew) it is 0 with quantizers off,
 *    since the full-precision model does not depend on the rotation.
 * The objective runs in fp32 (loss rounding ~1e-6); with eps = 0.05 and
 * Richardson extrapolation the difference quotient is good to ~1e-4, and the
 * derivatives along unit directions are ~0.01 to 1. */
static void check_gradient(fixture *f, int quantized) {
    double loss = spq_trainer_step(&f->tr, &f->rot, f->tok, 1);
    cr_assert(isfinite(loss));
    int L = f->rot.n_layers;
    for (int layer = -1; layer < L; layer++) {
        int n = layer < 0 ? f->rot.dim : f->rot.head_dim;
        double *A = malloc((size_t)n * n * sizeof(double)), *D = malloc((size_t)n * n * sizeof(double));
        const double *R = layer < 0 ? f->rot.R1 : f->rot.R2 + (size_t)layer * n * n;
        char name[32];
        snprintf(name, sizeof name, layer < 0 ? "R1" : "R2 of layer %d", layer);
        for (int rep = 0; rep < 2; rep++) {
            random_direction(D, n, 100 + 7 * rep + layer);
            double an = directional_analytic(f, layer, D), fd = directional_fd(f, layer, D, eps_fd);
            cr_expect(fabs(an - fd) <= 2e-3 * fabs(fd) + 1e-4, "%s: analytic %.6g vs finite difference %.6g", name,
                      an, fd);
            random_skew(A, n, 200 + 7 * rep + layer);
            tangent(D, R, A, n);
            an = directional_analytic(f, layer, D);
            if (!quantized)
                cr_expect(fabs(an) < 1e-4, "%s: derivative along a rotation %.3g should be 0", name, an);
            else {
                fd = directional_fd(f, layer, D, eps_fd);
                cr_expect(fabs(an - fd) <= 2e-3 * fabs(fd) + 1e-4, "%s tangent: analytic %.6g vs FD %.6g", name,
                          an, fd);
            }
        }
        free(A);
        free(D);
    }
}

Test(train, gradient_matches_finite_differences_had_mode, .timeout = 300) {
    fixture f;
    fixture_build(&f, 1, spq_qcfg_off(), 2, 24);
    check_gradient(&f, 0);
    fixture_free(&f);
}

Test(train, gradient_matches_finite_differences_no_had_mode, .timeout = 300) {
    fixture f;
    fixture_build(&f, 0, spq_qcfg_off(), 2, 24);
    check_gradient(&f, 0);
    fixture_free(&f);
}

/* With quantizers on, the straight-through gradient is the exact gradient of
 * the loss with each quantizer's error frozen at the current point (x ->
 * x + (q(x0) - x0)): record the errors, then finite-difference the frozen
 * objective. W4A4KV4 with groups of 16 and clip search, R1-R4. */
Test(train, gradient_with_quantizers_matches_the_straight_through_definition, .timeout = 300) {
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = 4; q.w.mse = 1; q.w.groupsize = 16;
    q.a.bits = 4; q.kv.bits = 4;
    fixture f;
    fixture_build(&f, 1, q, 2, 24);
    f.tr.noise_mode = SPQ_NOISE_RECORD;
    double l_rec = spq_trainer_step(&f.tr, &f.rot, f.tok, 1);
    f.tr.noise_mode = SPQ_NOISE_REPLAY;
    double l_rep = spq_trainer_step(&f.tr, &f.rot, f.tok, 0);
    cr_expect(fabs(l_rec - l_rep) < 1e-5, "replaying the recorded noise changes the loss: %g vs %g", l_rec, l_rep);
    /* the STE gradient, computed with the true quantizers (record mode),
     * against finite differences of the frozen-noise objective */
    float *g1 = malloc(sizeof(float) * f.rot.dim * f.rot.dim), *g2 = malloc(sizeof(float) * f.tr.m->cfg.n_layers * 64);
    memcpy(g1, f.tr.dR1, sizeof(float) * f.rot.dim * f.rot.dim);
    memcpy(g2, f.tr.dR2, sizeof(float) * f.tr.m->cfg.n_layers * 64);
    spq_trainer_step(&f.tr, &f.rot, f.tok, 1);
    double dg = 0;
    for (int i = 0; i < f.rot.dim * f.rot.dim; i++) dg = fmax(dg, fabs(g1[i] - f.tr.dR1[i]));
    for (int i = 0; i < f.tr.m->cfg.n_layers * 64; i++) dg = fmax(dg, fabs(g2[i] - f.tr.dR2[i]));
    cr_expect(dg < 1e-6, "STE gradient and frozen-noise gradient differ by %g", dg);
    check_gradient(&f, 1);
    free(g1);
    free(g2);
    fixture_free(&f);
}
