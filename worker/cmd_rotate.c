/* cmd_rotate.c - `spinq rotate`: learn SpinQuant rotations on calibration
 * text and save them (checkpointing to the same file as it goes, so that a
 * stopped run resumes with --resume). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/io/load.h"
#include "common/model/model.h"
#include "common/quant/qmodel.h"
#include "common/rot/fuse.h"
#include "common/rot/rotation.h"
#include "common/tok/tokenizer.h"
#include "common/train/learn.h"
#include "worker/args.h"
#include "worker/commands.h"
#include "worker/qflags.h"

static int usage(void) {
    fprintf(stderr,
            "usage: spinq rotate MODEL --calib FILE --out R.safetensors [--mode had|no-had]\n"
            "         [--init hadamard|random|identity] [--steps 100] [--lr 1.5] [--batch 8] [--seqlen N]\n"
            "         [--seed S] [--checkpoint-every K] [--resume R.safetensors]\n"
            "         [--w-bits 4 --w-asym --w-groupsize G --w-clip|--no-w-clip --a-bits 4 --a-clip R\n"
            "          --kv-bits 4 --kv-clip R]   (quantizers during learning; W4A4KV4 with clip search by default)\n");
    return 2;
}

typedef struct {
    spq_progress bar;
    const char *out;
    const char *qjson;
} rotate_ctx;

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void on_step(void *ud, int step, int steps, double loss, double lr, double gnorm, double tps) {
    rotate_ctx *c = ud;
    char extra[128];
    snprintf(extra, sizeof extra, "loss %.4f  lr %.3g  |g| %.3g  %.0f tok/s", loss, lr, gnorm, tps);
    (void)steps;
    spq_progress_update(&c->bar, step, extra);
}

static int on_checkpoint(void *ud, const spq_rotation *rot, const spq_rotation_meta *meta) {
    rotate_ctx *c = ud;
    spq_rotation_meta m = *meta;
    snprintf(m.extra, sizeof m.extra, "%s", c->qjson);
    spq_err err;
    if (spq_rotation_save(c->out, rot, &m, &err)) {
        fprintf(stderr, "\nspinq rotate: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int should_stop(void *ud) {
    (void)ud;
    return stop_requested;
}

int cli_cmd_rotate(int argc, char **argv) {
    const char *model_path = NULL, *calib = NULL, *out = NULL, *resume = NULL, *init_s = "hadamard";
    spq_learn_cfg lc = spq_learn_defaults();
    lc.seqlen = 0;
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = 4; q.w.mse = 1; q.a.bits = 4; q.kv.bits = 4;
    cli_rotflags rf = {.online = 1};
    int learn_flags = 0, q_flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if ((f = cli_qflag(&q, argc, argv, &i, "rotate"))) {
            if (f < 0) return 2;
            q_flags = 1;
            continue;
        }
        if (!strcmp(a, "--mode") || !strcmp(a, "--seed")) {
            if (cli_rotflag(&rf, argc, argv, &i, "rotate") < 0) return 2;
            if (!strcmp(a, "--seed")) lc.seed = rf.seed;
            learn_flags = 1;
            continue;
        }
        if (!strcmp(a, "--calib")) bad = cli_arg_str(&calib, argc, argv, &i, "rotate");
        else if (!strcmp(a, "--out")) bad = cli_arg_str(&out, argc, argv, &i, "rotate");
        else if (!strcmp(a, "--resume")) bad = cli_arg_str(&resume, argc, argv, &i, "rotate");
        else if (!strcmp(a, "--init")) bad = cli_arg_str(&init_s, argc, argv, &i, "rotate"), learn_flags = 1;
        else if (!strcmp(a, "--steps")) bad = cli_arg_int(&lc.steps, argc, argv, &i, "rotate", 0, 1000000), learn_flags = 1;
        else if (!strcmp(a, "--lr")) {
            float lr;
            bad = cli_arg_float(&lr, argc, argv, &i, "rotate", 1e-9, 1e3);
            lc.lr = lr;
            learn_flags = 1;
        } else if (!strcmp(a, "--batch")) bad = cli_arg_int(&lc.batch, argc, argv, &i, "rotate", 1, 4096), learn_flags = 1;
        else if (!strcmp(a, "--seqlen")) bad = cli_arg_int(&lc.seqlen, argc, argv, &i, "rotate", 2, 1 << 20), learn_flags = 1;
        else if (!strcmp(a, "--checkpoint-every"))
            bad = cli_arg_int(&lc.checkpoint_every, argc, argv, &i, "rotate", 0, 1 << 30);
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "spinq rotate: unknown flag %s\n", a);
            return usage();
        } else if (!model_path) model_path = a;
        else return usage();
        if (bad) return 2;
    }
    if (!model_path || !calib || !out) return usage();
    int init = !strcmp(init_s, "hadamard") ? SPQ_INIT_HADAMARD
               : !strcmp(init_s, "random") ? SPQ_INIT_RANDOM
               : !strcmp(init_s, "identity") ? SPQ_INIT_IDENTITY : -1;
    if (init < 0) {
        fprintf(stderr, "spinq rotate: --init: expected hadamard, random or identity, got '%s'\n", init_s);
        return 2;
    }
    if (resume && (learn_flags || q_flags)) {
        fprintf(stderr, "spinq rotate: --resume continues with the settings saved in %s; drop the other learning "
                        "and quantization flags\n", resume);
        return 2;
    }

    spq_err err;
    spq_model m;
    spq_tokenizer *tok = NULL;
    spq_rotation rot = {0};
    spq_rotation_meta meta = {.loss = NAN, .init = init};
    char *text = NULL;
    int *ids = NULL, n_ids = 0, rc = 1;
    size_t len;
    if (spq_model_load(&m, model_path, &err)) {
        fprintf(stderr, "spinq rotate: %s\n", err.msg);
        return 1;
    }
    if (resume) {
        if (spq_rotation_load(&rot, &meta, resume, &err) || spq_rotation_check(&rot, &m.cfg, &err) ||
            spq_qcfg_from_json(&q, meta.extra, &err)) {
            fprintf(stderr, "spinq rotate: --resume %s: %s\n", resume, err.msg);
            goto done;
        }
        lc.steps = meta.steps;
        lc.lr = meta.lr;
        lc.batch = meta.batch;
        lc.seqlen = meta.seqlen;
        lc.seed = meta.seed;
        fprintf(stderr, "spinq rotate: resuming %s at step %d of %d\n", resume, meta.step, meta.steps);
    } else {
        if (lc.seqlen == 0) lc.seqlen = m.cfg.seq_len < 2048 ? m.cfg.seq_len : 2048;
        if (spq_rotation_build(&rot, &m.cfg, rf.online, init, lc.seed, &err)) {
            fprintf(stderr, "spinq rotate: %s\n", err.msg);
            goto done;
        }
    }
    if (spq_qcfg_check(&q, &m.cfg, &err)) {
        fprintf(stderr, "spinq rotate: %s\n", err.msg);
        goto done;
    }
    if (spq_tok_load_for_model(&tok, model_path, &err) || spq_read_file(&text, &len, calib, &err) ||
        spq_tok_encode(tok, text, len, 1, &ids, &n_ids, &err)) {
        fprintf(stderr, "spinq rotate: %s\n", err.msg);
        goto done;
    }
    spq_fuse_norms(&m);
    char qjson[256], desc[160];
    spq_qcfg_to_json(qjson, sizeof qjson, &q);
    spq_qcfg_describe(desc, sizeof desc, &q);
    fprintf(stderr, "spinq rotate: %s mode, %s, %d steps of %d x %d tokens, lr %g, seed %llu\n",
            rot.online ? "had" : "no-had", desc, lc.steps, lc.batch, lc.seqlen, lc.lr, (unsigned long long)lc.seed);
    rotate_ctx ctx = {.out = out, .qjson = qjson};
    spq_progress_start(&ctx.bar, "rotate", lc.steps);
    ctx.bar.done = meta.step;
    spq_learn_hooks hooks = {.on_step = on_step, .on_checkpoint = on_checkpoint, .should_stop = should_stop,
                             .ud = &ctx};
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (lc.steps == 0) {  /* no learning: save the initial rotation (e.g. a random Hadamard baseline) */
        meta.steps = 0;
        rc = on_checkpoint(&ctx, &rot, &meta);
        goto done;
    }
    if (spq_learn(&rot, &meta, &m, &q, ids, n_ids, &lc, &hooks, &err)) {
        fprintf(stderr, "\nspinq rotate: %s: %s\n", calib, err.msg);
        goto done;
    }
    if (meta.step < lc.steps) {
        if (on_checkpoint(&ctx, &rot, &meta)) goto done;
        fprintf(stderr, "\nspinq rotate: stopped at step %d; resume with --resume %s\n", meta.step, out);
        rc = 130;
        goto done;
    }
    char extra[64];
    snprintf(extra, sizeof extra, "loss %.4f", meta.loss);
    spq_progress_finish(&ctx.bar, extra);
    printf("{\"out\": \"%s\", \"steps\": %d, \"final_loss\": %.6f}\n", out, meta.step, meta.loss);
    rc = 0;
done:
    free(ids);
    free(text);
    if (tok) spq_tok_free(tok);
    if (rot.R1) spq_rotation_free(&rot);
    spq_model_free(&m);
    return rc;
}
