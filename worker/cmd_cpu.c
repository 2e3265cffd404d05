/* cmd_cpu.c - `spinq cpu`: what this CPU offers and which kernels run:
 * OpenBLAS's core type (chosen from cpuid unless preset) and the path of our
 * integer kernels. `--coretype` prints only the OpenBLAS choice (for
 * scripts that set OPENBLAS_CORETYPE once for child processes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cpu.h"
#include "common/kernels/qgemm.h"
#include "worker/commands.h"

static const char *yes(int b) { return b ? "true" : "false"; }

int cli_cmd_cpu(int argc, char **argv) {
    const char *ct = spq_cpu_coretype();
    if (argc > 1 && !strcmp(argv[1], "--coretype")) {
        if (ct) printf("%s\n", ct);
        return 0;
    }
    const char *env = getenv("OPENBLAS_CORETYPE");
    printf("{\"cpu_model\": \"%s\", \"coretype_choice\": \"%s\", \"openblas_coretype_env\": \"%s\", "
           "\"openblas_corename\": \"%s\", \"qgemm_path\": \"%s\", \"avx2\": %s, \"avxvnni\": %s, \"avx512vnni\": %s}\n",
           spq_cpu_model(), ct ? ct : "", env ? env : "", spq_cpu_blas_corename(), spq_isa_name(spq_qgemm_isa()),
           yes(spq_cpu_has_avx2()), yes(spq_cpu_has_avxvnni()), yes(spq_cpu_has_avx512vnni()));
    return 0;
}
