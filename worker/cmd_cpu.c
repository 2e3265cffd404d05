/* cmd_cpu.c - `spinq cpu`: what this CPU offers and which kernels we use. */
#include <stdio.h>
#include <string.h>

#include "common/base/cpu.h"
#include "worker/commands.h"

int spq_cmd_cpu(int argc, char **argv) {
    const char *ct = spq_cpu_coretype();
    if (argc > 1 && !strcmp(argv[1], "--coretype")) {
        if (ct) printf("%s\n", ct);
        return 0;
    }
    printf("{\"coretype_choice\": \"%s\", \"openblas_corename\": \"%s\", \"avx2\": %s, \"avx512vnni\": %s}\n",
           ct ? ct : "", spq_cpu_blas_corename(), spq_cpu_has_avx2() ? "true" : "false",
           spq_cpu_has_avx512vnni() ? "true" : "false");
    return 0;
}
