/* cmd_quantize.c - `spinq quantize`: rotate (optionally), quantize the
 * weights with RTN or GPTQ, and write the packed low-bit model (packed.h)
 * that `spinq generate` and `spinq ppl` run with integer kernels. Progress
 * per layer on stderr, a JSON summary on stdout. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/packed.h"
#include "common/qmodel.h"
#include "worker/args.h"
#include "worker/commands.h"
#include "worker/gptq_cli.h"
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

static int parse_dtype(spq_st_dtype *t, const char *s) {
    if (!strcmp(s, "f32")) *t = SPQ_ST_F32;
    else if (!strcmp(s, "f16")) *t = SPQ_ST_F16;
    else if (!strcmp(s, "bf16")) *t = SPQ_ST_BF16;
    else return -1;
    return 0;
}

int spq_cmd_quantize(int argc, char **argv) {
    const char *model_path = NULL, *out = NULL, *method = "rtn", *edt_s = "f32";
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = 4;
    q.w.mse = 1;
    spq_rotflags rf = {.online = 1};
    spq_gptq_flags gf = spq_gptq_flags_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if ((f = spq_qflag(&q, argc, argv, &i, "quantize")) || (f = spq_rotflag(&rf, argc, argv, &i, "quantize")) ||
            (f = spq_gptqflag(&gf, argc, argv, &i, "quantize"))) {
            if (f < 0) return 2;
            continue;
        }
        if (!strcmp(a, "--out")) bad = spq_arg_str(&out, argc, argv, &i, "quantize");
        else if (!strcmp(a, "--method")) bad = spq_arg_str(&method, argc, argv, &i, "quantize");
        else if (!strcmp(a, "--embedding-dtype")) bad = spq_arg_str(&edt_s, argc, argv, &i, "quantize");
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
    if (use_gptq && !gf.calib) {
        fprintf(stderr, "spinq quantize: --method gptq needs --calib FILE (calibration text)\n");
        return 2;
    }
    if (!use_gptq && gf.given) {
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
    int rc = 1;
    double t0 = spq_now();
    if (spq_packed_is_file(model_path)) {
        fprintf(stderr, "spinq quantize: %s is a packed model already; quantize the full-precision model\n",
                model_path);
        return 1;
    }
    if (spq_load_prepared(&m, model_path, &rf, &q, 0, &err)) {
        fprintf(stderr, "spinq quantize: %s\n", err.msg);
        return 1;
    }
    char desc[160];
    spq_qcfg_describe(desc, sizeof desc, &q);
    fprintf(stderr, "spinq quantize: %s, %s, rotation %s\n", method, desc, rf.rotation ? rf.rotation : "none");
    if (use_gptq ? spq_gptq_run(&wq, &m, model_path, &q.w, &gf, "quantize", &err) : spq_wquant_rtn(&wq, &m, &q.w, &err)) {
        fprintf(stderr, "spinq quantize: %s\n", err.msg);
        goto done;
    }
    char qjson[256];
    spq_qcfg_to_json(qjson, sizeof qjson, &q);
    json_t *info = json_pack("{s:s, s:s, s:s, s:s}", "source", model_path, "method", method, "rotation",
                             rf.rotation ? rf.rotation : "none", "mode", rf.online ? "had" : "no-had");
    if (use_gptq) json_object_set_new(info, "gptq", spq_gptq_flags_json(&gf));
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
    spq_wquant_free(&wq);
    spq_model_free(&pm);
    spq_model_free(&m);
    return rc;
}
