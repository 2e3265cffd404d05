/* cpu.c - see cpu.h. */
#include "cpu.h"

#include <cpuid.h>
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

const char *spq_cpu_model(void) {
    static char name[49];
    if (name[0]) return name;
    unsigned r[12] = {0}, top = __get_cpuid_max(0x80000000u, NULL);
    if (top < 0x80000004u) return strcpy(name, "unknown");
    for (unsigned i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
    memcpy(name, r, 48);
    name[48] = 0;
    char *s = name;  /* vendors pad the string with spaces on either side */
    while (*s == ' ') s++;
    memmove(name, s, strlen(s) + 1);
    for (size_t n = strlen(name); n && name[n - 1] == ' '; n--) name[n - 1] = 0;
    if (!name[0]) strcpy(name, "unknown");
    return name;
}

int spq_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int spq_cpu_has_avxvnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avxvnni");
}

int spq_cpu_has_avx512vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}
