/* cmd_export_gguf.c - `spinq export-gguf MODEL --type T --out FILE`: the
 * model (optionally fused and rotated with a no-had rotation, optionally
 * with its linears quantized by spinq's RTN or GPTQ on llama.cpp's Q4_0 /
 * Q8_0 block grid) as a GGUF file that llama.cpp runs (gguf_model.h).
 *
 * The weight quantizer is spinq's (quant.h) with the block grid: groups of
 * 32, the block's fp16 scale, codes in [-8, 7] / [-128, 127]; GPTQ's error
 * compensation therefore lands on the values the blocks decode to. Linears
 * whose rows are not whole blocks (stories260K's down_proj, 172 columns)
 * stay F16, as llama.cpp's converter does; token_embd and output are
 * written as --embedding-type (F16 by default for the block types: spinq
 * keeps the embedding and classifier in full precision).
 *
 * MODEL "random:L" is the LLaMA-3.2-1B shape with L layers and seeded random
 * weights (spq_model_init_random, seed 1234 as bench/lowbit), for benchmarks;
 * it needs --tokenizer (a 128256-token LLaMA 3 tokenizer.json). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/base/par.h"
#include "common/io/gguf_model.h"
#include "common/io/load.h"
#include "common/kernels/ggml_quant.h"
#include "worker/args.h"
#include "worker/cli_session.h"
#include "worker/commands.h"
#include "worker/qflags.h"

static int usage(void) {
    fprintf(stderr,
            "usage: spinq export-gguf MODEL --out FILE.gguf [--type f32|f16|q8_0|q4_0] [--embedding-type T]\n"
            "         [--rotation FILE|hadamard|random|none --mode no-had --seed S]\n"
            "         [--method rtn|gptq --calib FILE --nsamples N --seqlen N --damp D --act-order --calib-seed S]\n"
            "         [--name NAME] [--tokenizer FILE] [--vocab-only]\n"
            "  MODEL random:L: the LLaMA-3.2-1B shape with L layers of seeded random weights (needs --tokenizer)\n"
            "  --type: the linears (f16 by default); q8_0/q4_0 quantize them on llama.cpp's block grid\n"
            "  --embedding-type: token_embd and output (f16 for q8_0/q4_0, else --type)\n");
    return 2;
}

static int parse_type(uint32_t *t, const char *s) {
    static const struct {
        const char *name;
        uint32_t type;
    } types[] = {{"f32", SPQ_GGML_F32}, {"f16", SPQ_GGML_F16}, {"q8_0", SPQ_GGML_Q8_0}, {"q4_0", SPQ_GGML_Q4_0}};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(s, types[i].name)) {
            *t = types[i].type;
            return 0;
        }
    return -1;
}

/* random:L - the LLaMA-3.2-1B shape with L layers of seeded random weights,
 * for benchmarks; no rotation or GPTQ (nothing to calibrate on) */
static int export_random(int layers, const char *tok_path, uint32_t lin_type, uint32_t emb_type, int vocab_only,
                         const char *name, const char *out, spq_err *err) {
    spq_model m;
    spq_wquant wq = {0};
    spq_tokenizer *tok = NULL;
    spq_config c = spq_config_llama32_1b(layers);
    int grid = spq_ggml_grid_of(lin_type);
    if (vocab_only) { /* the shape and the tokenizer: no weights */
        memset(&m, 0, sizeof m);
        m.cfg = c;
    } else {
        spq_model_init_random(&m, &c, 1234);
    }
    int rc = spq_tok_load_file(&tok, tok_path, err);
    if (!rc && vocab_only) m.cfg.vocab_size = spq_tok_vocab_size(tok);
    spq_wq_cfg w = spq_wq_grid_cfg(grid);
    if (!rc && grid && !vocab_only) rc = spq_wquant_rtn(&wq, &m, &w, err);
    spq_gguf_save_opts o = {.lin_type = lin_type, .emb_type = emb_type, .wq = grid ? &wq : NULL, .tok = tok,
                            .name = name ? name : "random", .vocab_only = vocab_only};
    if (!rc) rc = spq_gguf_save_model(&m, &o, out, err);
    if (tok) spq_tok_free(tok);
    spq_wquant_free(&wq);
    spq_model_free(&m);
    return rc;
}

/* the linears whose rows are not whole blocks stay F16: a note for each,
 * and the number of such tensors */
static int note_fallback(const char *model_path, int grid) {
    spq_model m;
    spq_err err;
    if (!grid || spq_model_load(&m, model_path, &err)) return 0; /* the pipeline reports a bad model */
    int n = 0;
    spq_wq_cfg w = spq_wq_grid_cfg(grid);
    for (int which = 0; which < SPQ_N_LIN; which++) {
        int rows, cols;
        spq_lin_shape(&m.cfg, which, &rows, &cols);
        if (!spq_wq_fits(&w, cols) && (n += m.cfg.n_layers))
            fprintf(stderr, "spinq export-gguf: %s has rows of %d weights, not whole blocks of %d: written as F16 in "
                            "every layer\n", spq_lin_name(which), cols, SPQ_QK);
    }
    spq_model_free(&m);
    return n;
}

int cli_cmd_export_gguf(int argc, char **argv) {
    const char *model_path = NULL, *out = NULL, *type_s = "f16", *emb_s = NULL, *method = NULL, *name = NULL,
               *tok_path = NULL;
    int vocab_only = 0;
    cli_rotflags rf = {.online = 0};
    cli_gptqflags gf = cli_gptqflags_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if ((f = cli_rotflag(&rf, argc, argv, &i, "export-gguf")) ||
            (f = cli_gptqflag(&gf, argc, argv, &i, "export-gguf"))) {
            if (f < 0) return 2;
            continue;
        }
        if (!strcmp(a, "--out")) bad = cli_arg_str(&out, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--type")) bad = cli_arg_str(&type_s, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--embedding-type")) bad = cli_arg_str(&emb_s, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--method")) bad = cli_arg_str(&method, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--name")) bad = cli_arg_str(&name, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--tokenizer")) bad = cli_arg_str(&tok_path, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--vocab-only")) vocab_only = 1;
        else if (cli_arg_positional(&model_path, a, "export-gguf")) return usage();
        if (bad) return 2;
    }
    if (!model_path || !out) return usage();
    uint32_t lin_type, emb_type;
    if (parse_type(&lin_type, type_s)) {
        fprintf(stderr, "spinq export-gguf: --type: expected f32, f16, q8_0 or q4_0, got '%s'\n", type_s);
        return 2;
    }
    int grid = spq_ggml_grid_of(lin_type);
    if (parse_type(&emb_type, emb_s ? emb_s : grid ? "f16" : type_s)) {
        fprintf(stderr, "spinq export-gguf: --embedding-type: expected f32, f16, q8_0 or q4_0, got '%s'\n", emb_s);
        return 2;
    }
    if (!method) method = grid ? "rtn" : "none";
    int use_gptq = !strcmp(method, "gptq");
    if (!grid && (strcmp(method, "none") || gf.given)) {
        fprintf(stderr, "spinq export-gguf: --method and the GPTQ flags quantize the linears: they need --type q8_0 "
                        "or q4_0\n");
        return 2;
    }
    if (grid && cli_gptq_method(&use_gptq, method, &gf, "export-gguf")) return 2;
    int random_layers = 0;
    if (!strncmp(model_path, "random:", 7)) {
        char *end;
        long l = strtol(model_path + 7, &end, 10);
        if (*end || l < 1 || l > 64 || !tok_path || (rf.rotation && strcmp(rf.rotation, "none")) || use_gptq) {
            fprintf(stderr, "spinq export-gguf: random:L takes 1..64 layers, a --tokenizer, no rotation and no GPTQ\n");
            return 2;
        }
        random_layers = (int)l;
    } else if (vocab_only) {
        fprintf(stderr, "spinq export-gguf: --vocab-only goes with random:L (a shape and a --tokenizer)\n");
        return 2;
    } else if (tok_path) {
        fprintf(stderr, "spinq export-gguf: --tokenizer goes with random:L (a model brings its own)\n");
        return 2;
    }
    double t0 = spq_now();
    json_t *info = json_pack("{s:s, s:s, s:s, s:s, s:s}", "source", model_path, "type", type_s, "method", method,
                             "rotation", rf.rotation ? rf.rotation : "none", "mode", "no-had");
    int rc = 1, fallback = 0;
    if (random_layers) {
        spq_err err;
        if (export_random(random_layers, tok_path, lin_type, emb_type, vocab_only, name, out, &err)) {
            fprintf(stderr, "spinq export-gguf: %s\n", err.msg);
            goto done;
        }
        rc = 0;
    } else {
        pl_pipeline p;
        cli_spec_start(&p, model_path);
        spq_qcfg q = spq_qcfg_off();
        if (grid) q.w = spq_wq_grid_cfg(grid);
        cli_spec_quant(&p.spec, &rf, &q);
        if (use_gptq) {
            cli_spec_gptq(&p, &gf);
            json_object_set_new(info, "gptq", json_pack("{s:s, s:i, s:i, s:f, s:b, s:I}", "calib", gf.calib,
                                                        "nsamples", gf.nsamples, "seqlen", gf.seqlen, "damp",
                                                        (double)gf.damp, "act_order", gf.act_order, "seed",
                                                        (json_int_t)gf.calib_seed));
        }
        char *info_s = json_dumps(info, JSON_COMPACT);
        p.local.gguf = 1;
        p.local.gguf_type = lin_type;
        p.local.gguf_emb_type = emb_type;
        p.local.gguf_name = name;
        p.local.gguf_info = info_s;
        cli_session ses = {.cmd = "export-gguf", .dest = {{"model.gguf", out}}};
        if (!cli_spec_check(&ses, &p.spec)) {
            fallback = note_fallback(model_path, grid);
            rc = cli_session_status(&ses, &p, cli_session_run(&ses, &p));
        } else {
            rc = 2;
        }
        free(info_s);
        pl_pipeline_free(&p);
        if (rc) goto done;
    }
    if (spq_par_rank() > 0) goto done; /* rank 0 wrote the file and describes it */
    struct stat st;
    long long bytes = stat(out, &st) ? -1 : (long long)st.st_size;
    spq_err err;
    json_t *file = spq_gguf_describe(out, &err); /* what was written, read back */
    if (!file) file = json_pack("{s:n, s:n}", "tied", "chat_template");
    json_t *res = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:O, s:O, s:I, s:f}", "out", out, "type", type_s,
                            "embedding_type", spq_ggml_type_name(emb_type), "method", method, "rotation",
                            rf.rotation ? rf.rotation : "none", "f16_fallback_tensors", fallback, "tied",
                            json_object_get(file, "tied"), "chat_template", json_object_get(file, "chat_template"),
                            "bytes", (json_int_t)bytes, "seconds", spq_now() - t0);
    json_decref(file);
    char *s = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(4));
    printf("%s\n", s);
    free(s);
    json_decref(res);
done:
    json_decref(info);
    return rc;
}
