/* cpu.c - see cpu.h. */
#include "cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char *openblas_get_corename(void);

const char *spq_cpu_coretype(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16")) return "Cooperlake";
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

void spq_cpu_ensure_coretype(char **argv) {
    if (getenv("OPENBLAS_CORETYPE")) return;
    const char *ct = spq_cpu_coretype();
    if (!ct) return;
    setenv("OPENBLAS_CORETYPE", ct, 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with whatever kernels OpenBLAS picked */
    fprintf(stderr, "spinq: warning: could not re-exec with OPENBLAS_CORETYPE=%s\n", ct);
}

const char *spq_cpu_blas_corename(void) {
    const char *n = openblas_get_corename();
    return n ? n : "unknown";
}

int spq_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int spq_cpu_has_avx512vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
