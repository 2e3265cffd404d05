/* qflags.c - see qflags.h. */
#include "worker/qflags.h"

#include <stdio.h>
#include <string.h>

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
    else return 0;
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
