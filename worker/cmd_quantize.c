/* cmd_quantize.c - `spinq quantize`: rotate (optionally), quantize the
 * weights with RTN or GPTQ, and write the packed low-bit model (packed.h)
 * that `spinq generate` and `spinq ppl` run with integer kernels. Progress
 * per layer on stderr, a JSON summary on stdout. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/io/load.h"
#include "common/io/packed.h"
#include "common/quant/gptq.h"
#include "common/quant/qmodel.h"
#include "common/tok/tokenizer.h"
#include "worker/args.h"
#include "worker/commands.h"
#include "worker/qflags.h"

static int usage(void) {
    fprintf(stderr,
            "usage: spinq quantize MODEL --out MODEL.spq [--method rtn|gptq]\n"
            "         [--rotation FILE|hadamard|random|none] [--mode had|no-had] [--seed S]\n"
            "         [--w-bits 4 --w-groupsize G --w-asym --w-clip|--no-w-clip --a-bits B --a-clip R\n"
            "          --kv-bits B --kv-clip R]   (W4A16KV16 with the clip search by default)\n"
            "         [--calib FILE --nsamples 128 --seqlen N --damp 0.01 --act-order --calib-seed S\n"
            "          --calib-act-quant]   (GPTQ)\n"
            "         [--embedding-dtype f32|f16|bf16]\n");
    return 2;
}

static int on_layer(void *ud, int layer, int n_layers, const spq_gptq_stat *st, double seconds) {
    (void)ud;
    fprintf(stderr, "spinq quantize: gptq layer %d/%d (%.2f s) relative output error gptq/rtn:", layer + 1, n_layers,
            seconds);
    for (int w = 0; w < SPQ_N_LIN; w++)
        fprintf(stderr, " %s %.4f/%.4f", spq_lin_name(w), st[w].err_gptq, st[w].err_rtn);
    fprintf(stderr, "\n");
    return 0;
}

static int parse_dtype(spq_st_dtype *t, const char *s) {
    if (!strcmp(s, "f32")) *t = SPQ_ST_F32;
    else if (!strcmp(s, "f16")) *t = SPQ_ST_F16;
    else if (!strcmp(s, "bf16")) *t = SPQ_ST_BF16;
    else return -1;
    return 0;
}

int cli_cmd_quantize(int argc, char **argv) {
    const char *model_path = NULL, *out = NULL, *method = "rtn", *calib = NULL, *edt_s = "f32";
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = 4;
    q.w.mse = 1;
    cli_rotflags rf = {.online = 1};
    spq_gptq_cfg g = spq_gptq_defaults();
    g.seqlen = 0;
    int gptq_flags = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if ((f = cli_qflag(&q, argc, argv, &i, "quantize")) || (f = cli_rotflag(&rf, argc, argv, &i, "quantize"))) {
            if (f < 0) return 2;
            continue;
        }
        if (!strcmp(a, "--out")) bad = cli_arg_str(&out, argc, argv, &i, "quantize");
        else if (!strcmp(a, "--method")) bad = cli_arg_str(&method, argc, argv, &i, "quantize");
        else if (!strcmp(a, "--calib")) bad = cli_arg_str(&calib, argc, argv, &i, "quantize"), gptq_flags = 1;
        else if (!strcmp(a, "--nsamples"))
            bad = cli_arg_int(&g.nsamples, argc, argv, &i, "quantize", 1, 1 << 20), gptq_flags = 1;
        else if (!strcmp(a, "--seqlen"))
            bad = cli_arg_int(&g.seqlen, argc, argv, &i, "quantize", 2, 1 << 20), gptq_flags = 1;
        else if (!strcmp(a, "--damp")) {
            float d;
            bad = cli_arg_float(&d, argc, argv, &i, "quantize", 1e-9, 10);
            g.damp = d;
            gptq_flags = 1;
        } else if (!strcmp(a, "--calib-seed")) bad = cli_arg_u64(&g.seed, argc, argv, &i, "quantize"), gptq_flags = 1;
        else if (!strcmp(a, "--act-order")) g.act_order = 1, gptq_flags = 1;
        else if (!strcmp(a, "--calib-act-quant")) g.calib_aq = 1, gptq_flags = 1;
        else if (!strcmp(a, "--embedding-dtype")) bad = cli_arg_str(&edt_s, argc, argv, &i, "quantize");
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "spinq quantize: unknown flag %s\n", a);
            return usage();
        } else if (!model_path) model_path = a;
        else return usage();
        if (bad) return 2;
    }
    if (!model_path || !out) return usage();
    int use_gptq = !strcmp(method, "gptq");
    if (!use_gptq && strcmp(method, "rtn")) {
        fprintf(stderr, "spinq quantize: --method: expected rtn or gptq, got '%s'\n", method);
        return 2;
    }
    if (use_gptq && !calib) {
        fprintf(stderr, "spinq quantize: --method gptq needs --calib FILE (calibration text)\n");
        return 2;
    }
    if (!use_gptq && gptq_flags) {
        fprintf(stderr, "spinq quantize: --calib, --nsamples, --seqlen, --damp, --act-order, --calib-seed and "
                        "--calib-act-quant are GPTQ settings (add --method gptq)\n");
        return 2;
    }
    if (q.w.bits < 2 || q.w.bits > 4) {
        fprintf(stderr, "spinq quantize: --w-bits: packed weights are 2..4 bits, got %d\n", q.w.bits);
        return 2;
    }
    spq_st_dtype edt;
    if (parse_dtype(&edt, edt_s)) {
        fprintf(stderr, "spinq quantize: --embedding-dtype: expected f32, f16 or bf16, got '%s'\n", edt_s);
        return 2;
    }

    spq_err err;
    spq_model m, pm = {0};
    spq_wquant wq = {0};
    spq_tokenizer *tok = NULL;
    char *text = NULL;
    int *ids = NULL, n_ids = 0, rc = 1;
    size_t len;
    double t0 = spq_now();
    if (spq_packed_is_file(model_path)) {
        fprintf(stderr, "spinq quantize: %s is a packed model already; quantize the full-precision model\n",
                model_path);
        return 1;
    }
    if (cli_load_prepared(&m, model_path, &rf, &q, 0, &err)) {
        fprintf(stderr, "spinq quantize: %s\n", err.msg);
        return 1;
    }
    char desc[160];
    spq_qcfg_describe(desc, sizeof desc, &q);
    fprintf(stderr, "spinq quantize: %s, %s, rotation %s\n", method, desc, rf.rotation ? rf.rotation : "none");
    if (use_gptq) {
        if (g.seqlen == 0) g.seqlen = m.cfg.seq_len < 2048 ? m.cfg.seq_len : 2048;
        if (spq_gptq_check(&g, &m.cfg, &err)) {
            fprintf(stderr, "spinq quantize: %s\n", err.msg);
            goto done;
        }
        if (spq_tok_load_for_model(&tok, model_path, &err) || spq_read_file(&text, &len, calib, &err)) {
            fprintf(stderr, "spinq quantize: %s\n", err.msg);
            goto done;
        }
        if (spq_tok_encode(tok, text, len, 1, &ids, &n_ids, &err)) {
            fprintf(stderr, "spinq quantize: %s: %s\n", calib, err.msg);
            goto done;
        }
        fprintf(stderr, "spinq quantize: gptq on %d windows of %d tokens from %s (%d tokens), damp %g%s\n",
                g.nsamples, g.seqlen, calib, n_ids, g.damp, g.act_order ? ", act-order" : "");
        spq_gptq_stat *stats = spq_calloc((size_t)m.cfg.n_layers * SPQ_N_LIN, sizeof *stats);
        int bad = spq_gptq_model(&wq, stats, &m, &q.w, ids, n_ids, &g, on_layer, NULL, &err);
        if (!bad) {
            /* the layer-output errors of the whole model, for the summary */
            double sg = 0, sr = 0;
            int better = 0;
            for (int i = 0; i < m.cfg.n_layers * SPQ_N_LIN; i++) {
                sg += stats[i].err_gptq;
                sr += stats[i].err_rtn;
                better += stats[i].err_gptq < stats[i].err_rtn;
            }
            fprintf(stderr, "spinq quantize: gptq: mean relative output error %.5f (rtn %.5f), lower on %d of %d "
                            "linears\n", sg / (m.cfg.n_layers * SPQ_N_LIN), sr / (m.cfg.n_layers * SPQ_N_LIN), better,
                    m.cfg.n_layers * SPQ_N_LIN);
        }
        free(stats);
        if (bad) {
            fprintf(stderr, "spinq quantize: %s: %s\n", calib, err.msg);
            goto done;
        }
    } else if (spq_wquant_rtn(&wq, &m, &q.w, &err)) {
        fprintf(stderr, "spinq quantize: %s\n", err.msg);
        goto done;
    }
    char qjson[256];
    spq_qcfg_to_json(qjson, sizeof qjson, &q);
    json_t *info = json_pack("{s:s, s:s, s:s, s:s}", "source", model_path, "method", method, "rotation",
                             rf.rotation ? rf.rotation : "none", "mode", rf.online ? "had" : "no-had");
    if (use_gptq)
        json_object_set_new(info, "gptq", json_pack("{s:s, s:i, s:i, s:I, s:f, s:b, s:b}", "calib", calib, "nsamples",
                                                    g.nsamples, "seqlen", g.seqlen, "seed", (json_int_t)g.seed,
                                                    "damp", g.damp, "act_order", g.act_order, "calib_act_quant",
                                                    g.calib_aq));
    char *info_s = json_dumps(info, JSON_COMPACT);
    json_decref(info);
    spq_pack_opts po = {.emb_dtype = edt, .info = info_s, .tokenizer_from = model_path};
    int bad = spq_packed_build(&pm, &m, &wq, &po, &err) || spq_packed_save(&pm, out, &err);
    free(info_s);
    if (bad) {
        fprintf(stderr, "spinq quantize: %s\n", err.msg);
        goto done;
    }
    struct stat st;
    long long bytes = stat(out, &st) ? -1 : (long long)st.st_size;
    printf("{\"out\": \"%s\", \"method\": \"%s\", \"quant\": %s, \"bytes\": %lld, \"seconds\": %.2f}\n", out,
           method, qjson, bytes, spq_now() - t0);
    rc = 0;
done:
    free(ids);
    free(text);
    if (tok) spq_tok_free(tok);
    spq_wquant_free(&wq);
    spq_model_free(&pm);
    spq_model_free(&m);
    return rc;
}
