/* gptq_cli.c - see gptq_cli.h. */
#include "worker/gptq_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/tokenizer.h"
#include "worker/args.h"

spq_gptq_flags spq_gptq_flags_default(void) {
    spq_gptq_flags f = {.g = spq_gptq_defaults()};
    f.g.seqlen = 0;
    return f;
}

int spq_gptqflag(spq_gptq_flags *f, int argc, char **argv, int *i, const char *cmd) {
    const char *a = argv[*i];
    int bad = 0;
    if (!strcmp(a, "--calib")) bad = spq_arg_str(&f->calib, argc, argv, i, cmd);
    else if (!strcmp(a, "--nsamples")) bad = spq_arg_int(&f->g.nsamples, argc, argv, i, cmd, 1, 1 << 20);
    else if (!strcmp(a, "--seqlen")) bad = spq_arg_int(&f->g.seqlen, argc, argv, i, cmd, 2, 1 << 20);
    else if (!strcmp(a, "--damp")) {
        float d;
        bad = spq_arg_float(&d, argc, argv, i, cmd, 1e-9, 10);
        f->g.damp = d;
    } else if (!strcmp(a, "--calib-seed")) bad = spq_arg_u64(&f->g.seed, argc, argv, i, cmd);
    else if (!strcmp(a, "--act-order")) f->g.act_order = 1;
    else if (!strcmp(a, "--calib-act-quant")) f->g.calib_aq = 1;
    else return 0;
    f->given = 1;
    return bad ? -1 : 1;
}

json_t *spq_gptq_flags_json(const spq_gptq_flags *f) {
    const spq_gptq_cfg *g = &f->g;
    return json_pack("{s:s, s:i, s:i, s:I, s:f, s:b, s:b}", "calib", f->calib ? f->calib : "", "nsamples", g->nsamples,
                     "seqlen", g->seqlen, "seed", (json_int_t)g->seed, "damp", g->damp, "act_order", g->act_order,
                     "calib_act_quant", g->calib_aq);
}

typedef struct {
    const char *cmd;
} progress_ctx;

static int on_layer(void *ud, int layer, int n_layers, const spq_gptq_stat *st, double seconds) {
    const progress_ctx *p = ud;
    fprintf(stderr, "spinq %s: gptq layer %d/%d (%.2f s) relative output error gptq/rtn:", p->cmd, layer + 1, n_layers,
            seconds);
    for (int w = 0; w < SPQ_N_LIN; w++)
        if (st[w].err_rtn > 0) fprintf(stderr, " %s %.4f/%.4f", spq_lin_name(w), st[w].err_gptq, st[w].err_rtn);
    fprintf(stderr, "\n");
    return 0;
}

int spq_gptq_run(spq_wquant *wq, spq_model *m, const char *model_path, const spq_wq_cfg *w, spq_gptq_flags *f,
                 const char *cmd, spq_err *err) {
    spq_gptq_cfg *g = &f->g;
    if (g->seqlen == 0) g->seqlen = m->cfg.seq_len < 2048 ? m->cfg.seq_len : 2048;
    if (spq_gptq_check(g, &m->cfg, err)) return -1;
    spq_tokenizer *tok = NULL;
    char *text = NULL;
    int *ids = NULL, n_ids = 0, rc = -1;
    size_t len;
    if (spq_tok_load_for_model(&tok, model_path, err) || spq_read_file(&text, &len, f->calib, err)) goto done;
    if (spq_tok_encode(tok, text, len, 1, &ids, &n_ids, err)) {
        spq_fail_prefix(err, "%s", f->calib);
        goto done;
    }
    fprintf(stderr, "spinq %s: gptq on %d windows of %d tokens from %s (%d tokens), damp %g%s\n", cmd, g->nsamples,
            g->seqlen, f->calib, n_ids, g->damp, g->act_order ? ", act-order" : "");
    int n = m->cfg.n_layers * SPQ_N_LIN;
    spq_gptq_stat *stats = spq_calloc((size_t)n, sizeof *stats);
    progress_ctx pc = {cmd};
    if (spq_gptq_model(wq, stats, m, w, ids, n_ids, g, on_layer, &pc, err)) {
        spq_fail_prefix(err, "%s", f->calib);
    } else {
        /* the layer-output errors of the whole model (linears GPTQ quantized) */
        double sg = 0, sr = 0;
        int better = 0, k = 0;
        for (int i = 0; i < n; i++) {
            if (!(stats[i].err_rtn > 0)) continue;
            sg += stats[i].err_gptq;
            sr += stats[i].err_rtn;
            better += stats[i].err_gptq < stats[i].err_rtn;
            k++;
        }
        fprintf(stderr, "spinq %s: gptq: mean relative output error %.5f (rtn %.5f), lower on %d of %d linears\n",
                cmd, k ? sg / k : 0, k ? sr / k : 0, better, k);
        rc = 0;
    }
    free(stats);
done:
    free(ids);
    free(text);
    if (tok) spq_tok_free(tok);
    return rc;
}
