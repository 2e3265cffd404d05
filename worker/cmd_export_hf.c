/* cmd_export_hf.c - `spinq export-hf MODEL --rotation R --out DIR`: the
 * fused and rotated full-precision model as a Hugging Face directory, so that
 * other tools (llama.cpp's converter, for one) can quantize a
 * SpinQuant-rotated model.
 *
 * Only a "no-had" rotation (R1 and R2, merged into the weights) gives a plain
 * LLaMA that computes exactly what the rotated model computes. In "had" mode
 * the online Hadamards R3 (on Q and K after RoPE) and R4 (on the down_proj
 * input) are part of the network: R3 cancels in q k^T and could be dropped,
 * but R4^T is folded into down_proj, so without the online R4 the exported
 * model would compute something else. We refuse instead of writing a model
 * that is silently not equivalent. */
#include <stdio.h>
#include <string.h>

#include "common/io/hf.h"
#include "common/io/load.h"
#include "common/rot/fuse.h"
#include "common/rot/rotation.h"
#include "worker/args.h"
#include "worker/commands.h"
#include "worker/qflags.h"

static int usage(void) {
    fprintf(stderr, "usage: spinq export-hf MODEL --rotation FILE|hadamard|random --out DIR [--mode no-had] [--seed S]\n"
                    "         [--dtype f32|f16|bf16]   (bf16 by default)\n");
    return 2;
}

int cli_cmd_export_hf(int argc, char **argv) {
    const char *model_path = NULL, *out = NULL, *dt = "bf16";
    cli_rotflags rf = {.online = 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int bad = 0, f;
        if ((f = cli_rotflag(&rf, argc, argv, &i, "export-hf"))) {
            if (f < 0) return 2;
            continue;
        }
        if (!strcmp(a, "--out")) bad = cli_arg_str(&out, argc, argv, &i, "export-hf");
        else if (!strcmp(a, "--dtype")) bad = cli_arg_str(&dt, argc, argv, &i, "export-hf");
        else if (cli_arg_positional(&model_path, a, "export-hf")) return usage();
        if (bad) return 2;
    }
    if (!model_path || !out || !rf.rotation) return usage();
    spq_st_dtype dtype = !strcmp(dt, "f32") ? SPQ_ST_F32 : !strcmp(dt, "f16") ? SPQ_ST_F16 : SPQ_ST_BF16;
    if (strcmp(dt, "f32") && strcmp(dt, "f16") && strcmp(dt, "bf16")) {
        fprintf(stderr, "spinq export-hf: --dtype: expected f32, f16 or bf16, got '%s'\n", dt);
        return 2;
    }
    spq_err err;
    spq_model m;
    if (spq_model_load(&m, model_path, &err)) {
        fprintf(stderr, "spinq export-hf: %s\n", err.msg);
        return 1;
    }
    int rc = 1;
    spq_rotation rot = {0};
    if (m.packed) {
        fprintf(stderr, "spinq export-hf: %s is a packed model; export the full-precision model\n", model_path);
        goto done;
    }
    const char *rs = rf.rotation;
    if (!strcmp(rs, "none")) {
        fprintf(stderr, "spinq export-hf: --rotation none: nothing to export (the model is its own HF export)\n");
        goto done;
    }
    if (cli_rotation(&rot, &rf, &m.cfg, &err)) {
        fprintf(stderr, "spinq export-hf: %s\n", err.msg);
        goto done;
    }
    if (spq_rotation_plain_only(&rot, rs, &err)) {
        fprintf(stderr, "spinq export-hf: %s\n", err.msg);
        goto done;
    }
    spq_fuse_norms(&m);
    if (spq_rotation_apply(&m, &rot, &err) || spq_model_save_hf(&m, out, dtype, &err) ||
        spq_hf_copy_tokenizer(model_path, out, &err)) {
        fprintf(stderr, "spinq export-hf: %s\n", err.msg);
        goto done;
    }
    if (!spq_is_dir(model_path))
        fprintf(stderr, "spinq export-hf: note: %s is a llama2.c checkpoint; its tokenizer.bin was copied as is "
                        "(Hugging Face tools expect a tokenizer.json)\n", model_path);
    printf("{\"out\": \"%s\", \"rotation\": \"%s\", \"dtype\": \"%s\"}\n", out, rs, spq_st_dtype_name(dtype));
    rc = 0;
done:
    if (rot.R1) spq_rotation_free(&rot);
    spq_model_free(&m);
    return rc;
}
