/* cmd_ppl.c - `spinq ppl MODEL --data FILE [--seqlen N] [--batch B]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/model.h"
#include "common/ppl.h"
#include "common/tokenizer.h"
#include "worker/args.h"
#include "worker/commands.h"
#include "worker/qflags.h"

static int usage(void) {
    fprintf(stderr, "usage: spinq ppl MODEL --data FILE [--seqlen N] [--batch B] [--windows N (the first N only)]\n"
                    "         [--rotation FILE|hadamard|random] [--mode had|no-had] [--seed S]\n"
                    "         [--w-bits B --w-asym --w-groupsize G --w-clip --a-bits B --a-clip R --kv-bits B --kv-clip R]\n");
    return 2;
}

static void show_progress(void *ud, long done, long total) {
    spq_progress *p = ud;
    (void)total;
    spq_progress_update(p, done, NULL);
}

int spq_cmd_ppl(int argc, char **argv) {
    const char *model_path = NULL, *data = NULL;
    int seqlen = 0, batch = 4, max_windows = 0;
    spq_qcfg q = spq_qcfg_off();
    spq_rotflags rf = {.online = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if ((f = spq_qflag(&q, argc, argv, &i, "ppl")) || (f = spq_rotflag(&rf, argc, argv, &i, "ppl"))) {
            if (f < 0) return 2;
            continue;
        }
        if (!strcmp(a, "--data")) bad = spq_arg_str(&data, argc, argv, &i, "ppl");
        else if (!strcmp(a, "--seqlen")) bad = spq_arg_int(&seqlen, argc, argv, &i, "ppl", 2, 1 << 20);
        else if (!strcmp(a, "--batch")) bad = spq_arg_int(&batch, argc, argv, &i, "ppl", 1, 1024);
        else if (!strcmp(a, "--windows")) bad = spq_arg_int(&max_windows, argc, argv, &i, "ppl", 1, 1 << 30);
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "spinq ppl: unknown flag %s\n", a);
            return usage();
        } else if (!model_path) model_path = a;
        else return usage();
        if (bad) return 2;
    }
    if (!model_path || !data) return usage();

    spq_err err;
    spq_model m;
    if (spq_load_quantized(&m, model_path, &rf, &q, &err)) {
        fprintf(stderr, "spinq ppl: %s\n", err.msg);
        return 1;
    }
    if (seqlen == 0) seqlen = m.cfg.seq_len < 2048 ? m.cfg.seq_len : 2048;
    if (seqlen > m.cfg.seq_len) {
        fprintf(stderr, "spinq ppl: --seqlen %d is longer than the model's context %d\n", seqlen, m.cfg.seq_len);
        spq_model_free(&m);
        return 2;
    }
    spq_tokenizer *tok = NULL;
    char *text = NULL;
    int *ids = NULL, n_ids = 0, rc = 1;
    size_t len;
    if (spq_tok_load_for_model(&tok, model_path, &err) || spq_read_file(&text, &len, data, &err)) {
        fprintf(stderr, "spinq ppl: %s\n", err.msg);
        goto done;
    }
    if (spq_tok_encode(tok, text, len, 1, &ids, &n_ids, &err)) {
        fprintf(stderr, "spinq ppl: %s: %s\n", data, err.msg);
        goto done;
    }
    if (max_windows && (long)max_windows * seqlen < n_ids) n_ids = max_windows * seqlen;
    spq_progress bar;
    spq_progress_start(&bar, "ppl", n_ids / seqlen);
    spq_ppl_result r;
    if (spq_ppl_windows(&r, &m, ids, n_ids, seqlen, batch, show_progress, &bar, &err)) {
        fprintf(stderr, "spinq ppl: %s: %s\n", data, err.msg);
        goto done;
    }
    spq_progress_finish(&bar, NULL);
    char desc[160];
    spq_qcfg_describe(desc, sizeof desc, &m.q);
    const char *rot = m.packed ? "packed" : rf.rotation ? rf.rotation : "none";
    json_t *out = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:I, s:f, s:f}", "model", model_path, "data", data,
                            "rotation", rot, "quant", desc, "seqlen", seqlen,
                            "tokens", n_ids, "windows", r.n_windows, "scored", (json_int_t)r.n_scored, "nll",
                            r.nll_sum / r.n_scored, "ppl", r.ppl);
    char *js = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(8));
    printf("%s\n", js);
    free(js);
    json_decref(out);
    rc = 0;
done:
    free(ids);
    free(text);
    if (tok) spq_tok_free(tok);
    spq_model_free(&m);
    return rc;
}
