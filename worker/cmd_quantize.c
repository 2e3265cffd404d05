/* cmd_quantize.c - `spinq quantize`: rotate (optionally), quantize the
 * weights with RTN or GPTQ, and write the packed low-bit model (packed.h)
 * that `spinq generate` and `spinq ppl` run with integer kernels. Progress
 * per layer on stderr, a JSON summary on stdout.
 *
 * The flags become a job spec (rotation, quant, weights) and a few local
 * options (pl_local: GPTQ's own calibration seed, calibration with the
 * activation quantizers on, the embeddings' dtype), and the pipeline does
 * the work (worker/cli_session.c); its model.spq artifact is the output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base/safetensors.h"
#include "common/quant/qmodel.h"
#include "worker/args.h"
#include "worker/cli_session.h"
#include "worker/commands.h"
#include "worker/qflags.h"

static int usage(void) {
    fprintf(stderr,
            "usage: spinq quantize MODEL --out MODEL.spq [--method rtn|gptq]\n"
            "         [--rotation FILE|hadamard|random|none] [--mode had|no-had] [--seed S]\n"
            "         [--w-bits 4 --w-groupsize G --w-asym --w-clip|--no-w-clip --a-bits B --a-clip R\n"
            "          --kv-bits B --kv-clip R]   (W4A16KV16 with the clip search by default)\n"
            "         [--calib FILE --nsamples 128 --seqlen 512 --damp 0.01 --act-order --calib-seed S\n"
            "          --calib-act-quant]   (GPTQ; the window is at most the model's context)\n"
            "         [--embedding-dtype f32|f16|bf16]\n");
    return 2;
}

static int parse_dtype(int *t, const char *s) {
    if (!strcmp(s, "f32")) *t = 0;
    else if (!strcmp(s, "f16")) *t = SPQ_ST_F16;
    else if (!strcmp(s, "bf16")) *t = SPQ_ST_BF16;
    else return -1;
    return 0;
}

int cli_cmd_quantize(int argc, char **argv) {
    const char *model_path = NULL, *out = NULL, *method = "rtn", *edt_s = "f32";
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = 4;
    q.w.mse = 1;
    cli_rotflags rf = {.online = 1};
    cli_gptqflags g = cli_gptqflags_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if ((f = cli_qflag(&q, argc, argv, &i, "quantize")) || (f = cli_rotflag(&rf, argc, argv, &i, "quantize")) ||
            (f = cli_gptqflag(&g, argc, argv, &i, "quantize"))) {
            if (f < 0) return 2;
            continue;
        }
        if (!strcmp(a, "--out")) bad = cli_arg_str(&out, argc, argv, &i, "quantize");
        else if (!strcmp(a, "--method")) bad = cli_arg_str(&method, argc, argv, &i, "quantize");
        else if (!strcmp(a, "--embedding-dtype")) bad = cli_arg_str(&edt_s, argc, argv, &i, "quantize");
        else if (cli_arg_positional(&model_path, a, "quantize")) return usage();
        if (bad) return 2;
    }
    if (!model_path || !out) return usage();
    int use_gptq;
    if (cli_gptq_method(&use_gptq, method, &g, "quantize")) return 2;
    if (q.w.bits < 2 || q.w.bits > 4) {
        fprintf(stderr, "spinq quantize: --w-bits: packed weights are 2..4 bits, got %d\n", q.w.bits);
        return 2;
    }
    pl_pipeline p;
    cli_spec_start(&p, model_path);
    if (parse_dtype(&p.local.emb_dtype, edt_s)) {
        fprintf(stderr, "spinq quantize: --embedding-dtype: expected f32, f16 or bf16, got '%s'\n", edt_s);
        pl_pipeline_free(&p);
        return 2;
    }
    spq_jobspec *s = &p.spec;
    cli_spec_quant(s, &rf, &q);
    if (use_gptq) cli_spec_gptq(&p, &g);
    p.local.skip &= ~(unsigned)PL_ART_MODEL;
    cli_session ses = {.cmd = "quantize", .dest = {{"model.spq", out}}};
    int rc = 2;
    if (!cli_spec_check(&ses, s)) {
        double t0 = spq_now();
        rc = cli_session_status(&ses, &p, cli_session_run(&ses, &p));
        if (rc == 0) {
            char qjson[256];
            spq_qcfg qs = spq_jobspec_qcfg(s, s->quant.w_bits);
            spq_qcfg_to_json(qjson, sizeof qjson, &qs);
            struct stat st;
            long long bytes = stat(out, &st) ? -1 : (long long)st.st_size;
            printf("{\"out\": \"%s\", \"method\": \"%s\", \"quant\": %s, \"bytes\": %lld, \"seconds\": %.2f}\n", out,
                   method, qjson, bytes, spq_now() - t0);
        }
    }
    pl_pipeline_free(&p);
    return rc;
}
