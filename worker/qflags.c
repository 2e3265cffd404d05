/* qflags.c - see qflags.h. */
#include "worker/qflags.h"

#include <stdio.h>
#include <string.h>

#include "common/fuse.h"
#include "common/ggml_quant.h"
#include "common/qmodel.h"
#include "common/rotation.h"
#include "worker/args.h"

int spq_qflag(spq_qcfg *q, int argc, char **argv, int *i, const char *cmd) {
    const char *a = argv[*i];
    int bad;
    if (!strcmp(a, "--w-bits")) bad = spq_arg_int(&q->w.bits, argc, argv, i, cmd, 2, 16);
    else if (!strcmp(a, "--a-bits")) bad = spq_arg_int(&q->a.bits, argc, argv, i, cmd, 2, 16);
    else if (!strcmp(a, "--kv-bits")) bad = spq_arg_int(&q->kv.bits, argc, argv, i, cmd, 2, 16);
    else if (!strcmp(a, "--w-groupsize")) bad = spq_arg_int(&q->w.groupsize, argc, argv, i, cmd, 0, 1 << 20);
    else if (!strcmp(a, "--a-clip")) bad = spq_arg_float(&q->a.clip, argc, argv, i, cmd, 1e-3, 1);
    else if (!strcmp(a, "--kv-clip")) bad = spq_arg_float(&q->kv.clip, argc, argv, i, cmd, 1e-3, 1);
    else if (!strcmp(a, "--w-asym")) { q->w.sym = 0; bad = 0; }
    else if (!strcmp(a, "--w-clip")) { q->w.mse = 1; bad = 0; }
    else if (!strcmp(a, "--no-w-clip")) { q->w.mse = 0; bad = 0; }
    else if (!strcmp(a, "--w-grid")) {
        /* llama.cpp's block grid: the weights as a Q4_0 / Q8_0 GGUF holds them */
        const char *g;
        if (spq_arg_str(&g, argc, argv, i, cmd)) return -1;
        int q4 = !strcmp(g, "q4_0");
        if (!q4 && strcmp(g, "q8_0")) {
            fprintf(stderr, "spinq %s: --w-grid: expected q4_0 or q8_0, got '%s'\n", cmd, g);
            return -1;
        }
        q->w = (spq_wq_cfg){.bits = q4 ? 4 : 8, .sym = 1, .groupsize = SPQ_QK, .grid = q4 ? SPQ_GRID_Q4_0 : SPQ_GRID_Q8_0};
        return 1;
    } else return 0;
    if (bad) return -1;
    if ((q->w.bits > 8 && q->w.bits != 16) || (q->a.bits > 8 && q->a.bits != 16) ||
        (q->kv.bits > 8 && q->kv.bits != 16)) {
        fprintf(stderr, "spinq %s: %s: bits must be 2..8, or 16 (off)\n", cmd, a);
        return -1;
    }
    return 1;
}

void spq_qcfg_describe(char *buf, size_t cap, const spq_qcfg *q) {
    char g[32] = "per channel";
    if (q->w.groupsize > 0) snprintf(g, sizeof g, "groups of %d", q->w.groupsize);
    snprintf(buf, cap, "W%dA%dKV%d (w: %s, %s%s%s; a clip %.2f; kv clip %.2f)", q->w.bits, q->a.bits, q->kv.bits,
             q->w.sym ? "sym" : "asym", g, q->w.mse ? ", clip search" : "",
             q->w.grid ? (q->w.grid == SPQ_GRID_Q4_0 ? ", Q4_0 grid" : ", Q8_0 grid") : "", (double)q->a.clip,
             (double)q->kv.clip);
}

int spq_rotflag(spq_rotflags *r, int argc, char **argv, int *i, const char *cmd) {
    const char *a = argv[*i];
    if (!strcmp(a, "--rotation")) return spq_arg_str(&r->rotation, argc, argv, i, cmd) ? -1 : 1;
    if (!strcmp(a, "--seed")) return spq_arg_u64(&r->seed, argc, argv, i, cmd) ? -1 : 1;
    if (!strcmp(a, "--mode")) {
        const char *v;
        if (spq_arg_str(&v, argc, argv, i, cmd)) return -1;
        if (!strcmp(v, "had")) r->online = 1;
        else if (!strcmp(v, "no-had")) r->online = 0;
        else {
            fprintf(stderr, "spinq %s: --mode: expected had or no-had, got '%s'\n", cmd, v);
            return -1;
        }
        return 1;
    }
    return 0;
}

int spq_load_quantized(spq_model *m, const char *model_path, const spq_rotflags *r, const spq_qcfg *q,
                       spq_err *err) {
    return spq_load_prepared(m, model_path, r, q, 1, err);
}

int spq_load_prepared(spq_model *m, const char *model_path, const spq_rotflags *r, const spq_qcfg *q, int rtn,
                      spq_err *err) {
    if (spq_model_load(m, model_path, err)) return -1;
    if (m->packed) {
        int rot = r->rotation && strcmp(r->rotation, "none");
        if (rot || q->w.bits != SPQ_QUANT_OFF || q->a.bits != SPQ_QUANT_OFF || q->kv.bits != SPQ_QUANT_OFF) {
            spq_model_free(m);
            return spq_fail(err, "%s is a packed model: it carries its own rotations and quantization settings "
                                 "(drop --rotation and the --w/--a/--kv flags)", model_path);
        }
        return 0;
    }
    spq_rotation rot;
    int have_rot = 0;
    const char *rs = r->rotation;
    if (rs && strcmp(rs, "none")) {
        int init = !strcmp(rs, "hadamard") ? SPQ_INIT_HADAMARD : !strcmp(rs, "random") ? SPQ_INIT_RANDOM : -1;
        int rc = init >= 0 ? spq_rotation_build(&rot, &m->cfg, r->online, init, r->seed, err)
                           : spq_rotation_load(&rot, NULL, rs, err);
        if (rc == 0 && init < 0 && spq_rotation_check(&rot, &m->cfg, err)) {
            spq_fail_prefix(err, "%s", rs);
            spq_rotation_free(&rot);
            rc = -1;
        }
        if (rc) {
            spq_model_free(m);
            return -1;
        }
        have_rot = 1;
    }
    int rc = spq_qmodel_prepare(m, have_rot ? &rot : NULL, q, rtn, err);
    if (have_rot) spq_rotation_free(&rot);
    if (rc) spq_model_free(m);
    return rc;
}

int spq_load_plain_rotated(spq_model *m, const char *model_path, const spq_rotflags *r, spq_err *err) {
    if (spq_model_load(m, model_path, err)) return -1;
    if (m->packed) {
        spq_model_free(m);
        return spq_fail(err, "%s is a packed model; export the full-precision model", model_path);
    }
    const char *rs = r->rotation;
    if (!rs || !strcmp(rs, "none")) return 0;
    spq_rotation rot = {0};
    int init = !strcmp(rs, "hadamard") ? SPQ_INIT_HADAMARD : !strcmp(rs, "random") ? SPQ_INIT_RANDOM : -1;
    int rc = init >= 0 ? spq_rotation_build(&rot, &m->cfg, r->online, init, r->seed, err)
                       : spq_rotation_load(&rot, NULL, rs, err);
    if (!rc && init < 0) rc = spq_rotation_check(&rot, &m->cfg, err);
    if (rc) spq_fail_prefix(err, "%s", rs);
    else if (rot.online)
        rc = spq_fail(err, "%s is a \"had\" rotation: its online Hadamards (R3 on Q/K, R4 on the down_proj input, "
                           "whose transpose is folded into down_proj) cannot be expressed in a plain LLaMA, so the "
                           "export would not be equivalent. Use a no-had rotation (spinq rotate --mode no-had, or "
                           "--mode no-had with hadamard/random)", rs);
    if (!rc) {
        spq_fuse_norms(m);
        rc = spq_rotation_apply(m, &rot, err);
    }
    if (rot.R1) spq_rotation_free(&rot);
    if (rc) spq_model_free(m);
    return rc;
}
