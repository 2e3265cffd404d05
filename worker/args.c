/* args.c - see args.h. */
#include "worker/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int cli_arg_str(const char **out, int argc, char **argv, int *i, const char *cmd) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "spinq %s: %s needs a value\n", cmd, argv[*i]);
        return -1;
    }
    *out = argv[++*i];
    return 0;
}

int cli_arg_int(int *out, int argc, char **argv, int *i, const char *cmd, long lo, long hi) {
    const char *flag = argv[*i], *v;
    if (cli_arg_str(&v, argc, argv, i, cmd)) return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "spinq %s: %s: expected an integer in [%ld, %ld], got '%s'\n", cmd, flag, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int cli_arg_u64(uint64_t *out, int argc, char **argv, int *i, const char *cmd) {
    const char *flag = argv[*i], *v;
    if (cli_arg_str(&v, argc, argv, i, cmd)) return -1;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-') {
        fprintf(stderr, "spinq %s: %s: expected a non-negative integer, got '%s'\n", cmd, flag, v);
        return -1;
    }
    *out = x;
    return 0;
}

int cli_arg_float(float *out, int argc, char **argv, int *i, const char *cmd, double lo, double hi) {
    const char *flag = argv[*i], *v;
    if (cli_arg_str(&v, argc, argv, i, cmd)) return -1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "spinq %s: %s: expected a number in [%g, %g], got '%s'\n", cmd, flag, lo, hi, v);
        return -1;
    }
    *out = (float)x;
    return 0;
}

int cli_arg_positional(const char **out, const char *arg, const char *cmd) {
    if (arg[0] == '-' && arg[1]) {
        fprintf(stderr, "spinq %s: unknown flag %s\n", cmd, arg);
        return -1;
    }
    if (*out) return -1;
    *out = arg;
    return 0;
}
