/* sgemm.c - the sgemm peak alone: GFLOP/s of a 2048^3 sgemm (median of 7)
 * with the kernels OpenBLAS runs in this process. bench/sgemm_kernels.sh
 * runs it once per core type for the table of kernels in the README. */
#include <stdio.h>

#include "bench/bench.h"

extern int openblas_get_num_threads(void);

int main(int argc, char **argv) {
    spq_cpu_ensure_coretype(argv);
    double peak = spq_bench_sgemm_gflops(2048, 7);
    printf("{\"bench\": \"sgemm\", %s, \"threads\": %d, \"sgemm_2048_gflops\": %.1f}\n", spq_bench_platform(),
           openblas_get_num_threads(), peak);
    return 0;
}
