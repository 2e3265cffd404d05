/* cli_session.c - see cli_session.h. */
#include "worker/cli_session.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t signalled;
static void on_signal(int sig) {
    (void)sig;
    signalled = 1;
}

/* a bar that did not reach its end (a stop, a failure) stays where it was */
static void bar_end(cli_session *s) {
    if (s->bar_on && s->bar_done >= s->bar_total) spq_progress_finish(&s->bar, NULL);
    else if (s->bar_on && s->bar.tty) fputc('\n', stderr);
    s->bar_on = 0;
}

static void r_stage(void *ud, const char *stage) {
    cli_session *s = ud;
    bar_end(s);
    fprintf(stderr, "spinq %s: stage %s\n", s->cmd, stage);
}

static void r_metric(void *ud, const char *key, int64_t step, double value) {
    cli_session *s = ud;
    if (!strcmp(key, "train/loss")) s->loss = value;
    if (!s->metrics_json) return;
    printf("{\"metric\": \"%s\", \"step\": %lld, \"value\": %.10g}\n", key, (long long)step, value);
    fflush(stdout);
}

/* one bar per pass: a new one when the stage or the total changes or the count starts over */
static void r_progress(void *ud, const char *stage, int64_t done, int64_t total) {
    cli_session *s = ud;
    if (!s->bar_on || strcmp(s->bar_label, stage) || total != s->bar_total || done < s->bar_done) {
        bar_end(s);
        snprintf(s->bar_label, sizeof s->bar_label, "%s", stage);
        spq_progress_start(&s->bar, s->bar_label, (long)total);
        s->bar_on = 1;
        s->bar_total = (long)total;
    }
    s->bar_done = (long)done;
    char extra[64];
    int loss = !strcmp(stage, "learn") && isfinite(s->loss);
    if (loss) snprintf(extra, sizeof extra, "loss %.4f", s->loss);
    spq_progress_update(&s->bar, (long)done, loss ? extra : NULL);
}

static void r_log(void *ud, const char *level, const char *text) {
    cli_session *s = ud;
    if (s->bar_on && s->bar.tty) fputs("\r\033[K", stderr); /* the bar is drawn again by its next update */
    int plain = !strcmp(level, "info");
    fprintf(stderr, "spinq %s: %s%s%s\n", s->cmd, plain ? "" : level, plain ? "" : ": ", text);
}

static int copy_file(const char *dst, const char *src, spq_err *err) {
    FILE *in = fopen(src, "rb");
    if (!in) return spq_fail(err, "%s: cannot open: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return spq_fail(err, "%s: cannot write: %s", dst, strerror(errno));
    }
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    fclose(in);
    if (fclose(out)) ok = 0;
    return ok ? 0 : spq_fail(err, "%s: cannot write: %s", dst, strerror(errno));
}

/* data into path, through path.part so that a stop never leaves half a file */
static int write_file(const char *path, const void *data, size_t len) {
    size_t n = strlen(path) + sizeof ".part";
    char *tmp = spq_malloc(n);
    snprintf(tmp, n, "%s.part", path);
    FILE *f = fopen(tmp, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f)) ok = 0;
    if (ok && rename(tmp, path)) ok = 0;
    if (!ok) remove(tmp);
    free(tmp);
    return ok ? 0 : -1;
}

static void r_checkpoint(void *ud, int64_t step, const void *data, size_t len) {
    cli_session *s = ud;
    char path[4200];
    if (s->checkpoint_path) snprintf(path, sizeof path, "%s", s->checkpoint_path);
    else if (s->out_dir) snprintf(path, sizeof path, "%s/checkpoint-%06lld.safetensors", s->out_dir, (long long)step);
    else return;
    if (write_file(path, data, len)) fprintf(stderr, "\nspinq %s: cannot write %s: %s\n", s->cmd, path, strerror(errno));
    else s->checkpoint_step = step;
}

static int r_artifact(void *ud, const char *name, const char *path, spq_err *err) {
    cli_session *s = ud;
    char dst[4200] = "";
    for (size_t i = 0; i < sizeof s->dest / sizeof *s->dest; i++)
        if (s->dest[i].name && !strcmp(s->dest[i].name, name)) snprintf(dst, sizeof dst, "%s", s->dest[i].path);
    if (!dst[0] && s->out_dir) snprintf(dst, sizeof dst, "%s/%s", s->out_dir, name);
    if (!dst[0]) return 0;
    if (copy_file(dst, path, err)) return -1;
    fprintf(stderr, "spinq %s: wrote %s\n", s->cmd, dst);
    return 0;
}

static int r_should_stop(void *ud) {
    cli_session *s = ud;
    return s->stop_on_signal && signalled ? PL_STOP_SHUTDOWN : PL_STOP_NONE;
}

int cli_session_run(cli_session *s, pl_pipeline *p) {
    s->bar_on = 0;
    s->loss = NAN;
    s->checkpoint_step = -1;
    const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char work[4200];
    snprintf(work, sizeof work, "%s/spinq-%s-XXXXXX", tmp, s->cmd);
    if (!mkdtemp(work)) {
        spq_fail(&p->err, "cannot create a work directory in %s: %s", tmp, strerror(errno));
        return PL_STAGE_FAILED;
    }
    if (s->stop_on_signal) {
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
    pl_reporter rep = {s, r_stage, r_metric, r_progress, r_log, r_checkpoint, r_artifact, r_should_stop};
    p->rep = &rep;
    p->work_dir = work;
    int rc = pl_pipeline_run(p);
    bar_end(s);
    p->rep = NULL;
    p->work_dir = NULL;
    rmdir(work);
    return rc;
}

int cli_session_status(const cli_session *s, const pl_pipeline *p, int rc) {
    if (rc == PL_STAGE_OK) return 0;
    fprintf(stderr, "spinq %s: %s\n", s->cmd, rc == PL_STAGE_FAILED ? p->err.msg : "stopped");
    return rc == PL_STAGE_FAILED ? 1 : 130;
}

void cli_spec_start(pl_pipeline *p, const char *model) {
    memset(p, 0, sizeof *p);
    spq_jobspec *s = &p->spec;
    spq_jobspec_defaults(s);
    s->model = spq_strdup(model);
    for (int i = 0; i < s->eval.n_ppl; i++) free(s->eval.ppl[i].data);
    for (int i = 0; i < s->eval.n_tasks; i++) {
        free(s->eval.tasks[i].name);
        free(s->eval.tasks[i].data);
    }
    s->eval.n_ppl = s->eval.n_tasks = s->eval.kld = 0;
    p->resume_step = -1;
    p->local.paths = 1;
    p->local.skip = PL_ART_RESULTS | PL_ART_ROTATION | PL_ART_MODEL;
}

void cli_spec_set(char **field, const char *value) {
    free(*field);
    *field = value ? spq_strdup(value) : NULL;
}

void cli_spec_quant(spq_jobspec *s, const cli_rotflags *r, const spq_qcfg *q) {
    const char *rot = r->rotation ? r->rotation : "none";
    s->rotation.mode = !strcmp(rot, "none")       ? SPQ_ROT_NONE
                       : !strcmp(rot, "hadamard") ? SPQ_ROT_HADAMARD
                       : !strcmp(rot, "random")   ? SPQ_ROT_RANDOM
                                                  : SPQ_ROT_FILE;
    cli_spec_set(&s->rotation.file, s->rotation.mode == SPQ_ROT_FILE ? rot : NULL);
    s->rotation.online_had = r->online;
    s->seed = r->seed;
    spq_jobspec_set_qcfg(s, q);
    s->weights.method = q->w.bits < 16 ? SPQ_WQ_RTN : SPQ_WQ_NONE;
}

void cli_spec_gptq(pl_pipeline *p, const cli_gptqflags *g) {
    spq_jobspec *s = &p->spec;
    s->weights.method = SPQ_WQ_GPTQ;
    cli_spec_set(&s->weights.calib, g->calib);
    s->weights.nsamples = g->nsamples;
    s->weights.seqlen = g->seqlen;
    s->weights.damp = g->damp;
    s->weights.act_order = g->act_order;
    p->local.calib_seed_set = 1; /* GPTQ's windows do not move with the rotation's --seed */
    p->local.calib_seed = g->calib_seed;
    p->local.calib_act_quant = g->calib_act_quant;
}

int cli_spec_check(const cli_session *s, const spq_jobspec *spec) {
    char field[SPQ_FIELD_MAX];
    spq_err err;
    if (!spq_jobspec_check(spec, field, &err)) return 0;
    fprintf(stderr, "spinq %s: %s\n", s->cmd, err.msg);
    return -1;
}
