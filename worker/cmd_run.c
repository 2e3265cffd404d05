/* cmd_run.c - `spinq run SPEC.json`: one job through the same pipeline the
 * workers run, without a daemon. Progress on stderr; metrics as JSON lines
 * on stdout; artifacts and checkpoints copied into --out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "worker/args.h"
#include "worker/commands.h"
#include "worker/pipeline.h"

typedef struct {
    const char *out;
    spq_progress bar;
    int bar_on;
    char bar_label[32];
} local_rep;

static void l_stage(void *ud, const char *stage) {
    local_rep *r = ud;
    if (r->bar_on) spq_progress_finish(&r->bar, NULL);
    r->bar_on = 0;
    fprintf(stderr, "spinq run: stage %s\n", stage);
}

static void l_metric(void *ud, const char *key, int64_t step, double value) {
    printf("{\"metric\": \"%s\", \"step\": %lld, \"value\": %.10g}\n", key, (long long)step, value);
    fflush(stdout);
}

static void l_progress(void *ud, const char *stage, int64_t done, int64_t total) {
    local_rep *r = ud;
    if (!r->bar_on) {
        snprintf(r->bar_label, sizeof r->bar_label, "%s", stage);
        spq_progress_start(&r->bar, r->bar_label, (long)total);
        r->bar_on = 1;
    }
    spq_progress_update(&r->bar, (long)done, NULL);
}

static void l_log(void *ud, const char *level, const char *text) { fprintf(stderr, "spinq run: %s\n", text); }

static int copy_file(const char *dst, const char *src, spq_err *err) {
    char *data;
    size_t len;
    if (spq_read_file(&data, &len, src, err)) return -1;
    FILE *f = fopen(dst, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f)) ok = 0;
    free(data);
    return ok ? 0 : spq_fail(err, "%s: cannot write: %s", dst, strerror(errno));
}

static void l_checkpoint(void *ud, int64_t step, const void *data, size_t len) {
    local_rep *r = ud;
    char path[1024];
    snprintf(path, sizeof path, "%s/checkpoint-%06lld.safetensors", r->out, (long long)step);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len) fprintf(stderr, "spinq run: cannot write %s\n", path);
    if (f) fclose(f);
}

static int l_artifact(void *ud, const char *name, const char *path, spq_err *err) {
    local_rep *r = ud;
    char dst[1024];
    snprintf(dst, sizeof dst, "%s/%s", r->out, name);
    if (copy_file(dst, path, err)) return -1;
    fprintf(stderr, "spinq run: wrote %s\n", dst);
    return 0;
}

static int l_stop(void *ud) { return PL_STOP_NONE; }

static int usage(void) {
    fprintf(stderr, "usage: spinq run SPEC.json [--models-dir D] [--datasets-dir D] [--out DIR]\n"
                    "  D default to $SPINQ_SHARED/models and $SPINQ_SHARED/data (../shared)\n");
    return 2;
}

int cli_cmd_run(int argc, char **argv) {
    const char *spec_path = NULL, *models = NULL, *datasets = NULL, *out = "spinq-out";
    for (int i = 1; i < argc; i++) {
        int bad = 0;
        if (!strcmp(argv[i], "--models-dir")) bad = cli_arg_str(&models, argc, argv, &i, "run");
        else if (!strcmp(argv[i], "--datasets-dir")) bad = cli_arg_str(&datasets, argc, argv, &i, "run");
        else if (!strcmp(argv[i], "--out")) bad = cli_arg_str(&out, argc, argv, &i, "run");
        else if (argv[i][0] == '-') return usage();
        else if (!spec_path) spec_path = argv[i];
        else return usage();
        if (bad) return 2;
    }
    if (!spec_path) return usage();
    const char *shared = getenv("SPINQ_SHARED") ? getenv("SPINQ_SHARED") : "../shared";
    char mbuf[600], dbuf[600];
    snprintf(mbuf, sizeof mbuf, "%s/models", shared);
    snprintf(dbuf, sizeof dbuf, "%s/data", shared);
    spq_err err;
    char *json;
    size_t len;
    if (spq_read_file(&json, &len, spec_path, &err)) {
        fprintf(stderr, "spinq run: %s\n", err.msg);
        return 1;
    }
    pl_pipeline p;
    memset(&p, 0, sizeof p);
    char field[SPQ_FIELD_MAX];
    int bad = spq_jobspec_parse(&p.spec, json, len, field, &p.err);
    free(json);
    if (bad) {
        fprintf(stderr, "spinq run: %s: %s\n", spec_path, p.err.msg);
        return 2;
    }
    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "spinq run: cannot create %s: %s\n", out, strerror(errno));
        spq_jobspec_free(&p.spec);
        return 1;
    }
    char work[] = "/tmp/spinq-run-XXXXXX";
    if (!mkdtemp(work)) {
        fprintf(stderr, "spinq run: cannot create a work directory\n");
        spq_jobspec_free(&p.spec);
        return 1;
    }
    local_rep lr = {.out = out};
    pl_reporter rep = {&lr, l_stage, l_metric, l_progress, l_log, l_checkpoint, l_artifact, l_stop};
    p.models_dir = models ? models : mbuf;
    p.datasets_dir = datasets ? datasets : dbuf;
    p.work_dir = work;
    p.resume_step = -1;
    p.rep = &rep;
    int rc = pl_pipeline_run(&p);
    if (lr.bar_on) spq_progress_finish(&lr.bar, NULL);
    spq_jobspec_free(&p.spec);
    rmdir(work);
    if (rc != PL_STAGE_OK) {
        fprintf(stderr, "spinq run: %s\n", rc == PL_STAGE_FAILED ? p.err.msg : "stopped");
        return 1;
    }
    return 0;
}
