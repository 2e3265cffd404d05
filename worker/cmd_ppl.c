/* cmd_ppl.c - `spinq ppl MODEL --data FILE [--seqlen N] [--batch B]`: the
 * perplexity of one text as a JSON line. A job spec with one eval.ppl entry
 * through the pipeline (worker/cli_session.c), so the figure is the one
 * `spinq eval` and a daemon's run report for the same windows. The line
 * also gives the peak of the process's own memory (RssAnon, sampled: a
 * mapped model's weights are page cache, not counted there) and of its
 * whole RSS; --load-f32 loads every weight in fp32 first (the path before
 * mapped models, for comparison). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/base/par.h"
#include "common/io/packed.h"
#include "common/quant/qmodel.h"
#include "worker/args.h"
#include "worker/cli_session.h"
#include "worker/commands.h"
#include "worker/qflags.h"

static int usage(void) {
    fprintf(stderr, "usage: spinq ppl MODEL --data FILE [--seqlen N] [--batch B] [--windows N (the first N only)]\n"
                    "         [--rotation FILE|hadamard|random] [--mode had|no-had] [--seed S]\n"
                    "         [--w-bits B --w-asym --w-groupsize G --w-clip --a-bits B --a-clip R --kv-bits B --kv-clip R]\n"
                    "         [--load-f32 (every weight in fp32 at load, not mapped)]\n");
    return 2;
}

int cli_cmd_ppl(int argc, char **argv) {
    const char *model_path = NULL, *data = NULL;
    int seqlen = 0, batch = 0, windows = 0, load_f32 = 0;
    spq_qcfg q = spq_qcfg_off();
    cli_rotflags rf = {.online = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if ((f = cli_qflag(&q, argc, argv, &i, "ppl")) || (f = cli_rotflag(&rf, argc, argv, &i, "ppl"))) {
            if (f < 0) return 2;
            continue;
        }
        if (!strcmp(a, "--data")) bad = cli_arg_str(&data, argc, argv, &i, "ppl");
        else if (!strcmp(a, "--seqlen")) bad = cli_arg_int(&seqlen, argc, argv, &i, "ppl", 2, 1 << 20);
        else if (!strcmp(a, "--batch")) bad = cli_arg_int(&batch, argc, argv, &i, "ppl", 1, 1024);
        else if (!strcmp(a, "--load-f32")) load_f32 = 1;
        else if (!strcmp(a, "--windows")) bad = cli_arg_int(&windows, argc, argv, &i, "ppl", 1, 1 << 30);
        else if (cli_arg_positional(&model_path, a, "ppl")) return usage();
        if (bad) return 2;
    }
    if (!model_path || !data) return usage();
    pl_pipeline p;
    cli_spec_start(&p, model_path);
    cli_spec_quant(&p.spec, &rf, &q);
    p.spec.eval.ppl[0] = (spq_spec_ppl){spq_strdup(data), seqlen};
    p.spec.eval.n_ppl = 1;
    p.local.seqlen = seqlen;
    p.local.batch = batch;
    p.local.load_f32 = load_f32;
    p.spec.eval.limit = windows; /* 0: all */
    cli_session ses = {.cmd = "ppl"};
    int rc = 2;
    if (cli_spec_check(&ses, &p.spec)) goto done;
    spq_rss_watch *watch = spq_rss_watch_start(10);
    rc = cli_session_status(&ses, &p, cli_session_run(&ses, &p));
    long peak_anon = spq_rss_watch_stop(watch);
    if (rc) goto done;
    const json_t *rep = p.report, *r = json_array_get(json_object_get(rep, "ppl"), 0);
    const char *quant = json_string_value(json_object_get(rep, "quant"));
    char desc[160];
    spq_qcfg_describe(desc, sizeof desc, &q); /* what it was run with when it was not quantized */
    int packed = spq_packed_is_file(model_path);
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:O, s:O, s:O, s:O}", "model", model_path, "data", data,
                            "rotation", packed ? "packed" : rf.rotation ? rf.rotation : "none", "quant",
                            quant ? quant : desc, "seqlen", json_object_get(rep, "seqlen"), "tokens",
                            json_object_get(r, "tokens"), "windows", json_object_get(r, "windows"), "scored",
                            json_object_get(r, "scored"), "nll", json_object_get(r, "nll"), "ppl",
                            json_object_get(r, "ppl"));
    if (spq_par_size() > 1) json_object_set_new(out, "ranks", json_integer(spq_par_size()));
    json_object_set_new(out, "peak_rss_anon_kib", json_integer(peak_anon));
    json_object_set_new(out, "peak_rss_kib", json_integer((json_int_t)(spq_peak_rss() / 1024)));
    char *js = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(8));
    if (spq_par_rank() == 0) printf("%s\n", js); /* every rank has the figures; one prints them */
    free(js);
    json_decref(out);
done:
    pl_pipeline_free(&p);
    return rc;
}
