/* cpu.h - choosing OpenBLAS kernels and SIMD paths from cpuid.
 *
 * Debian's OpenBLAS (DYNAMIC_ARCH) misdetects some CPUs and falls back to slow
 * generic kernels. It reads OPENBLAS_CORETYPE once, when the library loads, so
 * the variable must be in a process's environment before it starts. Every
 * program of ours calls spq_cpu_ensure_coretype() first thing in main(): when
 * the variable is unset it sets it from cpuid and re-executes itself; a value
 * the user set is never overridden. Children inherit the variable. */
#ifndef SPQ_CPU_H
#define SPQ_CPU_H

/* The OpenBLAS core type that suits this CPU ("Cooperlake", "SkylakeX",
 * "Haswell", or NULL when no better choice than OpenBLAS's own is known). */
const char *spq_cpu_coretype(void);

/* Sets OPENBLAS_CORETYPE if unset and re-execs /proc/self/exe with argv.
 * Returns only if no re-exec was needed (or it failed, which is not fatal). */
void spq_cpu_ensure_coretype(char **argv);

/* The kernel set OpenBLAS is using (openblas_get_corename()). */
const char *spq_cpu_blas_corename(void);

/* The processor's name from cpuid's brand string ("AMD EPYC 9B45 ...", or
 * "unknown"), for logs and benchmark reports. */
const char *spq_cpu_model(void);

/* Instruction-set levels for our own kernels. */
int spq_cpu_has_avx2(void);
int spq_cpu_has_avxvnni(void);
int spq_cpu_has_avx512vnni(void);

#endif
