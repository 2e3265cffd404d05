/* qflags.c - see qflags.h. */
#include "worker/qflags.h"

#include <stdio.h>
#include <string.h>

#include "common/job/jobspec.h"
#include "common/rot/rotation.h"
#include "worker/args.h"

int cli_qflag(spq_qcfg *q, int argc, char **argv, int *i, const char *cmd) {
    const char *a = argv[*i];
    int bad;
    if (!strcmp(a, "--w-bits")) bad = cli_arg_int(&q->w.bits, argc, argv, i, cmd, 2, 16);
    else if (!strcmp(a, "--a-bits")) bad = cli_arg_int(&q->a.bits, argc, argv, i, cmd, 2, 16);
    else if (!strcmp(a, "--kv-bits")) bad = cli_arg_int(&q->kv.bits, argc, argv, i, cmd, 2, 16);
    else if (!strcmp(a, "--w-groupsize")) bad = cli_arg_int(&q->w.groupsize, argc, argv, i, cmd, 0, 1 << 20);
    else if (!strcmp(a, "--a-clip")) bad = cli_arg_float(&q->a.clip, argc, argv, i, cmd, 1e-3, 1);
    else if (!strcmp(a, "--kv-clip")) bad = cli_arg_float(&q->kv.clip, argc, argv, i, cmd, 1e-3, 1);
    else if (!strcmp(a, "--w-asym")) { q->w.sym = 0; bad = 0; }
    else if (!strcmp(a, "--w-clip")) { q->w.mse = 1; bad = 0; }
    else if (!strcmp(a, "--no-w-clip")) { q->w.mse = 0; bad = 0; }
    else if (!strcmp(a, "--w-grid")) {
        /* llama.cpp's block grid: the weights as a Q4_0 / Q8_0 GGUF holds them */
        const char *g;
        if (cli_arg_str(&g, argc, argv, i, cmd)) return -1;
        int grid = spq_wq_grid_of(g);
        if (grid <= 0) {
            fprintf(stderr, "spinq %s: --w-grid: expected q4_0 or q8_0, got '%s'\n", cmd, g);
            return -1;
        }
        q->w = spq_wq_grid_cfg(grid);
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

int cli_rotflag(cli_rotflags *r, int argc, char **argv, int *i, const char *cmd) {
    const char *a = argv[*i];
    if (!strcmp(a, "--rotation")) return cli_arg_str(&r->rotation, argc, argv, i, cmd) ? -1 : 1;
    if (!strcmp(a, "--seed")) return cli_arg_u64(&r->seed, argc, argv, i, cmd) ? -1 : 1;
    if (!strcmp(a, "--mode")) {
        const char *v;
        if (cli_arg_str(&v, argc, argv, i, cmd)) return -1;
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

int cli_rotation(spq_rotation *rot, const cli_rotflags *r, const spq_config *c, spq_err *err) {
    const char *rs = r->rotation;
    int init = !strcmp(rs, "hadamard") ? SPQ_INIT_HADAMARD : !strcmp(rs, "random") ? SPQ_INIT_RANDOM : -1;
    if (init >= 0) return spq_rotation_build(rot, c, r->online, init, r->seed, err);
    if (spq_rotation_load(rot, NULL, rs, err)) return spq_fail_prefix(err, "%s", rs);
    if (spq_rotation_check(rot, c, err)) {
        spq_rotation_free(rot);
        return spq_fail_prefix(err, "%s", rs);
    }
    return 0;
}

cli_gptqflags cli_gptqflags_default(void) {
    spq_jobspec d;
    spq_jobspec_defaults(&d); /* GPTQ's defaults are the job spec's */
    cli_gptqflags g = {.nsamples = d.weights.nsamples, .seqlen = d.weights.seqlen, .damp = (float)d.weights.damp};
    spq_jobspec_free(&d);
    return g;
}

int cli_gptqflag(cli_gptqflags *g, int argc, char **argv, int *i, const char *cmd) {
    const char *a = argv[*i];
    int bad;
    if (!strcmp(a, "--calib")) bad = cli_arg_str(&g->calib, argc, argv, i, cmd);
    else if (!strcmp(a, "--nsamples")) bad = cli_arg_int(&g->nsamples, argc, argv, i, cmd, 1, 1 << 20);
    else if (!strcmp(a, "--seqlen")) bad = cli_arg_int(&g->seqlen, argc, argv, i, cmd, 2, 1 << 20);
    else if (!strcmp(a, "--damp")) bad = cli_arg_float(&g->damp, argc, argv, i, cmd, 1e-9, 10);
    else if (!strcmp(a, "--calib-seed")) bad = cli_arg_u64(&g->calib_seed, argc, argv, i, cmd);
    else if (!strcmp(a, "--act-order")) g->act_order = 1, bad = 0;
    else if (!strcmp(a, "--calib-act-quant")) g->calib_act_quant = 1, bad = 0;
    else return 0;
    g->given = 1;
    return bad ? -1 : 1;
}

int cli_gptq_method(int *use_gptq, const char *method, const cli_gptqflags *g, const char *cmd) {
    *use_gptq = !strcmp(method, "gptq");
    if (!*use_gptq && strcmp(method, "rtn")) {
        fprintf(stderr, "spinq %s: --method: expected rtn or gptq, got '%s'\n", cmd, method);
        return -1;
    }
    if (*use_gptq && !g->calib) {
        fprintf(stderr, "spinq %s: --method gptq needs --calib FILE (calibration text)\n", cmd);
        return -1;
    }
    if (!*use_gptq && g->given) {
        fprintf(stderr, "spinq %s: --calib, --nsamples, --seqlen, --damp, --act-order, --calib-seed and "
                        "--calib-act-quant are GPTQ settings (add --method gptq)\n", cmd);
        return -1;
    }
    return 0;
}
