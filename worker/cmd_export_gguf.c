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

#include "common/ggml_quant.h"
#include "common/gguf_model.h"
#include "common/json_util.h"
#include "common/tokenizer.h"
#include "worker/args.h"
#include "worker/commands.h"
#include "worker/gptq_cli.h"
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

/* the chat template of the model at path: tokenizer_config.json's
 * chat_template (a string) for a Hugging Face directory, the key of a GGUF
 * file; NULL when none */
static char *chat_template_of(const char *path) {
    char *tpl = NULL;
    spq_err err;
    if (spq_is_dir(path)) {
        char *cfg = spq_path_join(path, "tokenizer_config.json");
        json_t *j = spq_file_exists(cfg) ? spq_json_load_object(cfg, &err) : NULL;
        json_t *t = json_object_get(j, "chat_template");
        if (json_is_string(t)) tpl = spq_strdup(json_string_value(t));
        json_decref(j);
        free(cfg);
    } else if (spq_gguf_is_file(path)) {
        spq_gguf_file f;
        if (!spq_gguf_open(&f, path, &err)) {
            spq_gguf_get_str(&f, "tokenizer.chat_template", &tpl, 0, &err);
            spq_gguf_close(&f);
        }
    }
    return tpl;
}

static const char *base_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *s = path + n;
    while (s > path && s[-1] != '/') s--;
    return s;
}

int spq_cmd_export_gguf(int argc, char **argv) {
    const char *model_path = NULL, *out = NULL, *type_s = "f16", *emb_s = NULL, *method = NULL, *name = NULL,
               *tok_path = NULL;
    int vocab_only = 0;
    spq_rotflags rf = {.online = 0};
    spq_gptq_flags gf = spq_gptq_flags_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if ((f = spq_rotflag(&rf, argc, argv, &i, "export-gguf")) ||
            (f = spq_gptqflag(&gf, argc, argv, &i, "export-gguf"))) {
            if (f < 0) return 2;
            continue;
        }
        if (!strcmp(a, "--out")) bad = spq_arg_str(&out, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--type")) bad = spq_arg_str(&type_s, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--embedding-type")) bad = spq_arg_str(&emb_s, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--method")) bad = spq_arg_str(&method, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--name")) bad = spq_arg_str(&name, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--tokenizer")) bad = spq_arg_str(&tok_path, argc, argv, &i, "export-gguf");
        else if (!strcmp(a, "--vocab-only")) vocab_only = 1;
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "spinq export-gguf: unknown flag %s\n", a);
            return usage();
        } else if (!model_path) model_path = a;
        else return usage();
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
    if (grid && !use_gptq && strcmp(method, "rtn")) {
        fprintf(stderr, "spinq export-gguf: --method: expected rtn or gptq, got '%s'\n", method);
        return 2;
    }
    if (use_gptq && !gf.calib) {
        fprintf(stderr, "spinq export-gguf: --method gptq needs --calib FILE (calibration text)\n");
        return 2;
    }
    if (grid && !use_gptq && gf.given) {
        fprintf(stderr, "spinq export-gguf: --calib, --nsamples, --seqlen, --damp, --act-order, --calib-seed and "
                        "--calib-act-quant are GPTQ settings (add --method gptq)\n");
        return 2;
    }

    double t0 = spq_now();
    spq_err err;
    spq_model m;
    spq_wquant wq = {0};
    spq_tokenizer *tok = NULL;
    char *tpl = NULL, *info_s = NULL;
    int rc = 1;
    int random_layers = 0;
    if (!strncmp(model_path, "random:", 7)) {
        char *end;
        long l = strtol(model_path + 7, &end, 10);
        if (*end || l < 1 || l > 64 || !tok_path || (rf.rotation && strcmp(rf.rotation, "none")) || use_gptq) {
            fprintf(stderr, "spinq export-gguf: random:L takes 1..64 layers, a --tokenizer, no rotation and no GPTQ\n");
            return 2;
        }
        random_layers = (int)l;
        spq_config c = spq_config_llama32_1b(random_layers);
        if (vocab_only) { /* the shape and the tokenizer: no weights */
            memset(&m, 0, sizeof m);
            m.cfg = c;
        } else {
            spq_model_init_random(&m, &c, 1234);
        }
    } else if (spq_load_plain_rotated(&m, model_path, &rf, &err)) {
        fprintf(stderr, "spinq export-gguf: %s\n", err.msg);
        return 1;
    }
    if (tok_path ? spq_tok_load(&tok, tok_path, &err) : spq_tok_load_for_model(&tok, model_path, &err)) {
        fprintf(stderr, "spinq export-gguf: tokenizer: %s\n", err.msg);
        goto done;
    }
    if (vocab_only) m.cfg.vocab_size = spq_tok_vocab_size(tok);
    spq_wq_cfg w = {.bits = grid == SPQ_GRID_Q4_0 ? 4 : 8, .sym = 1, .groupsize = SPQ_QK, .grid = grid};
    int fallback = 0;
    if (grid && !vocab_only) {
        for (int which = 0; which < SPQ_N_LIN; which++) {
            int rows, cols;
            spq_lin_shape(&m.cfg, which, &rows, &cols);
            if (!spq_wq_fits(&w, cols)) {
                fallback += m.cfg.n_layers;
                fprintf(stderr, "spinq export-gguf: %s has rows of %d weights, not whole blocks of %d: written as "
                                "F16 in every layer\n", spq_lin_name(which), cols, SPQ_QK);
            }
        }
        fprintf(stderr, "spinq export-gguf: %s on the %s grid, rotation %s\n", method, type_s,
                rf.rotation ? rf.rotation : "none");
        if (use_gptq ? spq_gptq_run(&wq, &m, model_path, &w, &gf, "export-gguf", &err)
                     : spq_wquant_rtn(&wq, &m, &w, &err)) {
            fprintf(stderr, "spinq export-gguf: %s\n", err.msg);
            goto done;
        }
    }
    tpl = random_layers ? NULL : chat_template_of(model_path);
    json_t *info = json_pack("{s:s, s:s, s:s, s:s, s:s}", "source", model_path, "type", type_s, "method", method,
                             "rotation", rf.rotation ? rf.rotation : "none", "mode", "no-had");
    if (use_gptq) json_object_set_new(info, "gptq", spq_gptq_flags_json(&gf));
    info_s = json_dumps(info, JSON_COMPACT);
    json_decref(info);
    spq_gguf_save_opts o = {.lin_type = lin_type, .emb_type = emb_type, .wq = grid ? &wq : NULL, .tok = tok,
                            .chat_template = tpl, .name = name ? name : base_name(model_path), .source_info = info_s,
                            .vocab_only = vocab_only};
    if (spq_gguf_save_model(&m, &o, out, &err)) {
        fprintf(stderr, "spinq export-gguf: %s\n", err.msg);
        goto done;
    }
    struct stat st;
    long long bytes = stat(out, &st) ? -1 : (long long)st.st_size;
    json_t *res = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:I, s:f}", "out", out, "type", type_s,
                            "embedding_type", spq_ggml_type_name(emb_type), "method", method, "rotation",
                            rf.rotation ? rf.rotation : "none", "f16_fallback_tensors", fallback, "tied",
                            m.lm_head == m.tok_emb, "chat_template", tpl != NULL, "bytes", (json_int_t)bytes,
                            "seconds", spq_now() - t0);
    char *s = json_dumps(res, JSON_COMPACT | JSON_REAL_PRECISION(4));
    printf("%s\n", s);
    free(s);
    json_decref(res);
    rc = 0;
done:
    free(tpl);
    free(info_s);
    if (tok) spq_tok_free(tok);
    spq_wquant_free(&wq);
    spq_model_free(&m);
    return rc;
}
