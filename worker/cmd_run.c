/* cmd_run.c - `spinq run SPEC.json`: one job through the same pipeline the
 * workers run, without a daemon. Progress on stderr; metrics as JSON lines
 * on stdout; artifacts and checkpoints copied into --out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "worker/args.h"
#include "worker/cli_session.h"
#include "worker/commands.h"

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
        pl_pipeline_free(&p);
        return 1;
    }
    p.models_dir = models ? models : mbuf;
    p.datasets_dir = datasets ? datasets : dbuf;
    p.resume_step = -1;
    cli_session s = {.cmd = "run", .out_dir = out, .metrics_json = 1};
    int rc = cli_session_status(&s, &p, cli_session_run(&s, &p));
    pl_pipeline_free(&p);
    return rc;
}
