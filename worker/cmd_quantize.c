/* cmd_quantize.c - `spinq quantize`: rotate (optionally), quantize the
 * weights with RTN or GPTQ, and write the packed low-bit model (packed.h)
 * that `spinq generate` and `spinq ppl` run with integer kernels. Progress
 * per layer on stderr, a JSON summary on stdout.
 *
 * The flags become a job spec (rotation, quant, weights) and a few local
 * options (pl_local: GPTQ's own calibration seed, calibration with the
 * activation quantizers on, the embeddings' dtype), and the pipeline does
 * the work (worker/cli_session.c); its model.spq artifact is the output.
 * A Hugging Face model is quantized a layer at a time from its mapped
 * files (quant/qpack.h) unless --load-f32; the summary gives the peak
 * memory (RssAnon, sampled, and RSS).
 *
 * MODEL "random:L" is the LLaMA-3.2-1B shape with L layers of seeded random
 * weights (spq_model_init_random, seed 1234 as bench/lowbit and export-gguf)
 * packed with the tokenizer of --tokenizer: a packed 1B-shape file that
 * `spinq-worker serve` can load, for benchmarks (bench/serve.sh), where no
 * 1B checkpoint is at hand. RTN only and no rotation (nothing to calibrate
 * or learn on); it does not go through the pipeline, which loads a model
 * from a file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base/par.h"
#include "common/base/safetensors.h"
#include "common/io/packed.h"
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
            "         [--embedding-dtype f32|f16|bf16] [--tokenizer DIR|tokenizer.json]\n"
            "         [--load-f32 (every weight in fp32 at load, not mapped and quantized a layer at a time)]\n"
            "  MODEL random:L: the LLaMA-3.2-1B shape with L layers of seeded random weights (needs --tokenizer,\n"
            "  a LLaMA 3 tokenizer.json; RTN, no rotation)\n");
    return 2;
}

static int parse_dtype(int *t, const char *s) {
    if (!strcmp(s, "f32")) *t = 0;
    else if (!strcmp(s, "f16")) *t = SPQ_ST_F16;
    else if (!strcmp(s, "bf16")) *t = SPQ_ST_BF16;
    else return -1;
    return 0;
}

/* the directory of the tokenizer files: DIR itself, or the directory of a
 * tokenizer.json (packed.h embeds a model directory's tokenizer files) */
static char *tokenizer_dir(const char *path) {
    if (spq_is_dir(path)) return spq_strdup(path);
    char *base = spq_path_base(path);
    int ok = !strcmp(base, "tokenizer.json") && spq_file_exists(path);
    free(base);
    if (!ok) return NULL;
    const char *slash = strrchr(path, '/');
    if (!slash) return spq_strdup(".");
    char *dir = spq_strdup(path);
    dir[slash - path] = 0;
    return dir;
}

/* random:L (see the top): RTN with q's settings, packed and saved to out */
static int quantize_random(int layers, const char *tok_dir, const spq_qcfg *q, int emb_dtype, const char *out,
                           spq_err *err) {
    spq_config c = spq_config_llama32_1b(layers);
    spq_model m, pm;
    spq_wquant wq = {0};
    spq_model_init_random(&m, &c, 1234);
    m.q = *q;
    char qjson[256], info[400];
    spq_qcfg_to_json(qjson, sizeof qjson, q);
    snprintf(info, sizeof info, "{\"source\": \"random:%d\", \"method\": \"rtn\", \"quant\": %s}", layers, qjson);
    spq_pack_opts o = {.emb_dtype = emb_dtype, .info = info, .tokenizer_from = tok_dir};
    int rc = spq_wquant_rtn(&wq, &m, &q->w, err);
    if (!rc) rc = spq_packed_build(&pm, &m, &wq, &o, err);
    if (!rc) {
        rc = spq_packed_save(&pm, out, err);
        spq_model_free(&pm);
    }
    spq_wquant_free(&wq);
    spq_model_free(&m);
    return rc;
}

/* the random:L path of cli_cmd_quantize; 2 on bad flags */
static int run_random(const char *model_path, const char *tok_path, const cli_rotflags *rf, int use_gptq,
                      const spq_qcfg *q, int emb_dtype, const char *out) {
    char *end;
    long l = strtol(model_path + 7, &end, 10);
    char *tok_dir = tok_path ? tokenizer_dir(tok_path) : NULL;
    if (*end || l < 1 || l > 64 || !tok_dir || (rf->rotation && strcmp(rf->rotation, "none")) || use_gptq) {
        fprintf(stderr, "spinq quantize: random:L takes 1..64 layers, a --tokenizer (a directory with tokenizer.json, "
                        "or that file), no rotation and no GPTQ\n");
        free(tok_dir);
        return 2;
    }
    double t0 = spq_now();
    spq_err err;
    int rc = 0;
    if (quantize_random((int)l, tok_dir, q, emb_dtype, out, &err)) {
        fprintf(stderr, "spinq quantize: %s\n", err.msg);
        rc = 1;
    } else {
        char qjson[256];
        spq_qcfg_to_json(qjson, sizeof qjson, q);
        struct stat st;
        long long bytes = stat(out, &st) ? -1 : (long long)st.st_size;
        printf("{\"out\": \"%s\", \"method\": \"rtn\", \"quant\": %s, \"bytes\": %lld, \"seconds\": %.2f}\n", out,
               qjson, bytes, spq_now() - t0);
    }
    free(tok_dir);
    return rc;
}

int cli_cmd_quantize(int argc, char **argv) {
    const char *model_path = NULL, *out = NULL, *method = "rtn", *edt_s = "f32", *tok_path = NULL;
    int load_f32 = 0;
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
        else if (!strcmp(a, "--tokenizer")) bad = cli_arg_str(&tok_path, argc, argv, &i, "quantize");
        else if (!strcmp(a, "--load-f32")) load_f32 = 1;
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
    int emb_dtype;
    if (parse_dtype(&emb_dtype, edt_s)) {
        fprintf(stderr, "spinq quantize: --embedding-dtype: expected f32, f16 or bf16, got '%s'\n", edt_s);
        return 2;
    }
    if (!strncmp(model_path, "random:", 7)) return run_random(model_path, tok_path, &rf, use_gptq, &q, emb_dtype, out);
    if (tok_path) {
        fprintf(stderr, "spinq quantize: --tokenizer goes with random:L (a model brings its own)\n");
        return 2;
    }
    pl_pipeline p;
    cli_spec_start(&p, model_path);
    p.local.emb_dtype = emb_dtype;
    p.local.load_f32 = load_f32;
    spq_jobspec *s = &p.spec;
    cli_spec_quant(s, &rf, &q);
    if (use_gptq) cli_spec_gptq(&p, &g);
    p.local.skip &= ~(unsigned)PL_ART_MODEL;
    cli_session ses = {.cmd = "quantize", .dest = {{"model.spq", out}}};
    int rc = 2;
    if (!cli_spec_check(&ses, s)) {
        double t0 = spq_now();
        spq_rss_watch *watch = spq_rss_watch_start(10);
        rc = cli_session_status(&ses, &p, cli_session_run(&ses, &p));
        long peak_anon = spq_rss_watch_stop(watch);
        if (rc == 0 && spq_par_rank() == 0) { /* one line, from the rank that wrote the file */
            char qjson[256];
            spq_qcfg qs = spq_jobspec_qcfg(s, s->quant.w_bits);
            spq_qcfg_to_json(qjson, sizeof qjson, &qs);
            struct stat st;
            long long bytes = stat(out, &st) ? -1 : (long long)st.st_size;
            printf("{\"out\": \"%s\", \"method\": \"%s\", \"quant\": %s, \"bytes\": %lld, \"seconds\": %.2f, "
                   "\"peak_rss_anon_kib\": %ld, \"peak_rss_kib\": %zu}\n", out, method, qjson, bytes, spq_now() - t0,
                   peak_anon, spq_peak_rss() / 1024);
        }
    }
    pl_pipeline_free(&p);
    return rc;
}
