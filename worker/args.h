/* args.h - small helpers for the spinq tool's flags: values are checked and
 * a bad one is reported naming the flag. */
#ifndef CLI_ARGS_H
#define CLI_ARGS_H

#include <stdint.h>

/* Each returns 0 and stores the value, or prints "spinq CMD: FLAG: ..." and
 * returns -1. `i` points at the flag; its value is argv[*i+1] and *i is
 * advanced past it. */
int cli_arg_str(const char **out, int argc, char **argv, int *i, const char *cmd);
int cli_arg_int(int *out, int argc, char **argv, int *i, const char *cmd, long lo, long hi);
int cli_arg_u64(uint64_t *out, int argc, char **argv, int *i, const char *cmd);
int cli_arg_float(float *out, int argc, char **argv, int *i, const char *cmd, double lo, double hi);
/* The last branch of a flag loop: an argument that is no known flag is the
 * positional one (*out, stored when it is still NULL). Returns -1 for a
 * second positional argument or an unknown flag (said on stderr); the
 * caller then prints its usage. */
int cli_arg_positional(const char **out, const char *arg, const char *cmd);

#endif
