/* cmd_rotate.c - `spinq rotate`: learn SpinQuant rotations on calibration
 * text and save them (checkpointing to the same file as it goes, so that a
 * stopped run resumes with --resume).
 *
 * The flags become a job spec (rotation.mode "spinquant" with its train
 * section, the quantizers to learn with, 16-bit weights afterwards), and the
 * pipeline learns (worker/cli_session.c): its checkpoints replace the
 * output file as they come, its rotation.safetensors artifact is the
 * result. --resume hands the file to the pipeline as the daemon hands a
 * run's last checkpoint to a worker, with the settings saved in it. A
 * Hugging Face model is learned on from its mapped files, one layer in fp32
 * at a time (train/train.h), unless --load-f32; the summary gives the peak
 * memory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/par.h"
#include "common/quant/qmodel.h"
#include "common/rot/rotation.h"
#include "worker/args.h"
#include "worker/cli_session.h"
#include "worker/commands.h"
#include "worker/qflags.h"

static int usage(void) {
    fprintf(stderr,
            "usage: spinq rotate MODEL --calib FILE --out R.safetensors [--mode had|no-had]\n"
            "         [--init hadamard|random|identity] [--steps 100] [--lr 1.5] [--batch 8] [--seqlen 512]\n"
            "         [--seed S] [--checkpoint-every 10] [--resume R.safetensors]\n"
            "         [--load-f32 (every weight in fp32 at load, not read from the mapped files a layer at a time)]\n"
            "         [--w-bits 4 --w-asym --w-groupsize G --w-clip|--no-w-clip --a-bits 4 --a-clip R\n"
            "          --kv-bits 4 --kv-clip R]   (quantizers during learning; W4A4KV4 with clip search by default)\n"
            "  the window is at most the model's context; --steps 0 saves the initial rotation\n");
    return 2;
}

typedef struct {
    int steps, batch, seqlen, checkpoint_every, init;
    float lr;
} learn_flags;

/* --resume FILE: the rotation to continue and the settings it was learned with */
static int resume_from(pl_pipeline *p, const char *path, learn_flags *lf, cli_rotflags *rf, spq_qcfg *q) {
    spq_rotation rot;
    spq_rotation_meta meta;
    spq_err err;
    char *data = NULL;
    size_t len;
    if (spq_rotation_load(&rot, &meta, path, &err)) goto bad;
    spq_rotation_free(&rot); /* the pipeline loads it again and checks it against the model */
    if (spq_qcfg_from_json(q, meta.extra, &err) || spq_read_file(&data, &len, path, &err)) goto bad;
    lf->steps = meta.steps;
    lf->lr = (float)meta.lr;
    lf->batch = meta.batch;
    lf->seqlen = meta.seqlen;
    lf->init = meta.init;
    rf->seed = meta.seed;
    rf->online = strcmp(meta.mode, "no-had") != 0;
    p->resume_ckpt = data;
    p->resume_len = len;
    p->resume_step = meta.step;
    fprintf(stderr, "spinq rotate: resuming %s at step %d of %d\n", path, meta.step, meta.steps);
    return 0;
bad:
    fprintf(stderr, "spinq rotate: --resume %s: %s\n", path, err.msg);
    return -1;
}

int cli_cmd_rotate(int argc, char **argv) {
    const char *model_path = NULL, *calib = NULL, *out = NULL, *resume = NULL, *init_s = "hadamard";
    spq_jobspec d;
    spq_jobspec_defaults(&d); /* the learning defaults are the job spec's */
    learn_flags lf = {d.rotation.train.steps, d.rotation.train.batch, d.rotation.train.seqlen,
                      d.rotation.train.checkpoint_every, d.rotation.init, (float)d.rotation.train.lr};
    spq_jobspec_free(&d);
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = 4; q.w.mse = 1; q.a.bits = 4; q.kv.bits = 4;
    cli_rotflags rf = {.online = 1};
    int learning = 0, quant = 0, load_f32 = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if ((f = cli_qflag(&q, argc, argv, &i, "rotate"))) {
            if (f < 0) return 2;
            quant = 1;
            continue;
        }
        if (!strcmp(a, "--mode") || !strcmp(a, "--seed")) {
            if (cli_rotflag(&rf, argc, argv, &i, "rotate") < 0) return 2;
            learning = 1;
            continue;
        }
        if (!strcmp(a, "--calib")) bad = cli_arg_str(&calib, argc, argv, &i, "rotate");
        else if (!strcmp(a, "--out")) bad = cli_arg_str(&out, argc, argv, &i, "rotate");
        else if (!strcmp(a, "--resume")) bad = cli_arg_str(&resume, argc, argv, &i, "rotate");
        else if (!strcmp(a, "--load-f32")) load_f32 = 1;
        else if (!strcmp(a, "--init")) bad = cli_arg_str(&init_s, argc, argv, &i, "rotate"), learning = 1;
        else if (!strcmp(a, "--steps")) bad = cli_arg_int(&lf.steps, argc, argv, &i, "rotate", 0, 1000000), learning = 1;
        else if (!strcmp(a, "--lr")) bad = cli_arg_float(&lf.lr, argc, argv, &i, "rotate", 1e-9, 1e3), learning = 1;
        else if (!strcmp(a, "--batch")) bad = cli_arg_int(&lf.batch, argc, argv, &i, "rotate", 1, 4096), learning = 1;
        else if (!strcmp(a, "--seqlen")) bad = cli_arg_int(&lf.seqlen, argc, argv, &i, "rotate", 2, 1 << 20), learning = 1;
        else if (!strcmp(a, "--checkpoint-every"))
            bad = cli_arg_int(&lf.checkpoint_every, argc, argv, &i, "rotate", 0, 1 << 30);
        else if (cli_arg_positional(&model_path, a, "rotate")) return usage();
        if (bad) return 2;
    }
    if (!model_path || !calib || !out) return usage();
    lf.init = !strcmp(init_s, "hadamard") ? SPQ_INIT_HADAMARD
              : !strcmp(init_s, "random") ? SPQ_INIT_RANDOM
              : !strcmp(init_s, "identity") ? SPQ_INIT_IDENTITY : -1;
    if (lf.init < 0) {
        fprintf(stderr, "spinq rotate: --init: expected hadamard, random or identity, got '%s'\n", init_s);
        return 2;
    }
    if (resume && (learning || quant)) {
        fprintf(stderr, "spinq rotate: --resume continues with the settings saved in %s; drop the other learning "
                        "and quantization flags\n", resume);
        return 2;
    }
    pl_pipeline p;
    cli_spec_start(&p, model_path);
    int rc = 1;
    if (resume && resume_from(&p, resume, &lf, &rf, &q)) goto done;
    spq_jobspec *s = &p.spec;
    s->seed = rf.seed;
    s->rotation.mode = SPQ_ROT_SPINQUANT;
    s->rotation.online_had = rf.online;
    s->rotation.init = lf.init;
    s->rotation.train.steps = lf.steps;
    s->rotation.train.lr = lf.lr;
    s->rotation.train.batch = lf.batch;
    s->rotation.train.seqlen = lf.seqlen;
    s->rotation.train.checkpoint_every = lf.checkpoint_every;
    s->rotation.train.w_bits = q.w.bits;
    cli_spec_set(&s->rotation.train.calib, calib);
    spq_jobspec_set_qcfg(s, &q);
    s->quant.w_bits = 16; /* the weights are quantized while learning only */
    s->weights.method = SPQ_WQ_NONE;
    p.local.skip &= ~(unsigned)PL_ART_ROTATION;
    p.local.load_f32 = load_f32;
    cli_session ses = {.cmd = "rotate", .dest = {{"rotation.safetensors", out}}, .checkpoint_path = out,
                       .stop_on_signal = 1};
    rc = 2;
    if (cli_spec_check(&ses, s)) goto done;
    double t0 = spq_now();
    spq_rss_watch *watch = spq_rss_watch_start(10);
    int r = cli_session_run(&ses, &p);
    long peak_anon = spq_rss_watch_stop(watch);
    if (r == PL_STAGE_STOPPED && ses.checkpoint_step >= 0) {
        fprintf(stderr, "spinq rotate: stopped at step %lld; resume with --resume %s\n", (long long)ses.checkpoint_step,
                out);
        rc = 130;
        goto done;
    }
    rc = cli_session_status(&ses, &p, r);
    json_t *loss = json_object_get(p.results, "train/loss");
    if (rc == 0 && lf.steps > 0 && spq_par_rank() == 0) /* one line, from the rank that wrote the file */
        printf("{\"out\": \"%s\", \"steps\": %d, \"final_loss\": %.6f, \"seconds\": %.1f, \"peak_rss_anon_kib\": %ld, "
               "\"peak_rss_kib\": %zu}\n", out, lf.steps, loss ? json_number_value(loss) : NAN, spq_now() - t0,
               peak_anon, spq_peak_rss() / 1024);
done:
    free((void *)p.resume_ckpt);
    pl_pipeline_free(&p);
    return rc;
}
