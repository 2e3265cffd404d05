/* par.c - see par.h. */
#include "par.h"

#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#ifndef SPQ_NO_MPI
#include <mpi.h>
#endif

#define MAX_RUNTIME 300
static int g_rank = 0, g_size = 1;
static char g_runtime[MAX_RUNTIME] = "none";

static int launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}

static int env_int(const char *name) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : 0;
}

#ifndef SPQ_NO_MPI

/* OpenBLAS's own; declared here so that par.h needs no cblas */
void openblas_set_num_threads(int n);

static int g_mpi = 0;

/* ranks sharing this node: the launcher says so (or the node's share of a
 * Slurm step, "2(x3)" style lists start with this node's count) */
static int ranks_on_node(void) {
    int n = env_int("OMPI_COMM_WORLD_LOCAL_SIZE");
    if (n < 1) n = env_int("MPI_LOCALNRANKS");
    if (n < 1) n = env_int("SLURM_NTASKS_PER_NODE");
    if (n < 1) n = env_int("SLURM_STEP_TASKS_PER_NODE");
    return n < 1 ? g_size : n;
}

/* each rank's threads, unless the user chose (SPINQ_THREADS) */
static void share_cpus(void) {
    if (g_size < 2 || getenv("SPINQ_THREADS")) return;
    int threads = env_int("SLURM_CPUS_PER_TASK");
    if (threads < 1) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        cpu_set_t set;
        int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)online;
        /* a launcher that bound us to cores already gave us our share */
        threads = mine < online ? mine : (int)(online / ranks_on_node());
    }
    if (threads < 1) threads = 1;
    char v[16];
    snprintf(v, sizeof v, "%d", threads);
    setenv("SPINQ_THREADS", v, 1);
    openblas_set_num_threads(threads);
}

int spq_par_init(int *argc, char ***argv) {
    if (!launched_by_mpi()) return 0;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "spinq: MPI_Init failed (started by an MPI launcher, but MPI could not start)\n");
        return -1;
    }
    g_mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    int major = 0, minor = 0, len = 0;
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    MPI_Get_version(&major, &minor);
    MPI_Get_library_version(lib, &len);
    lib[strcspn(lib, ",\n")] = 0; /* "Open MPI v4.1.4, package: ..." */
    snprintf(g_runtime, sizeof g_runtime, "%s", lib);
    atexit(spq_par_finalize);
    share_cpus();
    return 0;
}

void spq_par_finalize(void) {
    int fin = 0;
    if (g_mpi && MPI_Finalized(&fin) == MPI_SUCCESS && !fin) MPI_Finalize();
    g_mpi = 0;
}

/* chunked so that rank 0 never holds more than P x 8 MiB of partial sums */
#define SUM_CHUNK_BYTES (8u << 20)

static void sum_ordered(void *buf, size_t n, size_t elem, MPI_Datatype type,
                        void (*add)(void *acc, const void *x, size_t n)) {
    if (g_size < 2) return;
    size_t chunk = SUM_CHUNK_BYTES / elem;
    char *gather = g_rank == 0 ? spq_malloc((size_t)g_size * chunk * elem) : NULL;
    for (size_t off = 0; off < n; off += chunk) {
        size_t m = n - off < chunk ? n - off : chunk;
        char *part = (char *)buf + off * elem;
        MPI_Gather(part, (int)m, type, gather, (int)m, type, 0, MPI_COMM_WORLD);
        if (g_rank == 0) {
            memcpy(part, gather, m * elem);
            for (int r = 1; r < g_size; r++) add(part, gather + (size_t)r * m * elem, m);
        }
        MPI_Bcast(part, (int)m, type, 0, MPI_COMM_WORLD);
    }
    free(gather);
}

static void add_f64(void *acc, const void *x, size_t n) {
    double *a = acc;
    const double *b = x;
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}
static void add_f32(void *acc, const void *x, size_t n) {
    float *a = acc;
    const float *b = x;
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}
static void add_i64(void *acc, const void *x, size_t n) {
    long long *a = acc;
    const long long *b = x;
    for (size_t i = 0; i < n; i++) a[i] += b[i];
}

void spq_par_sum_f64(double *buf, size_t n) { sum_ordered(buf, n, sizeof *buf, MPI_DOUBLE, add_f64); }
void spq_par_sum_f32(float *buf, size_t n) { sum_ordered(buf, n, sizeof *buf, MPI_FLOAT, add_f32); }
void spq_par_sum_i64(long long *buf, size_t n) { sum_ordered(buf, n, sizeof *buf, MPI_LONG_LONG, add_i64); }

void spq_par_bcast(void *buf, size_t bytes, int root) {
    if (g_size < 2) return;
    for (size_t off = 0; off < bytes; off += 1u << 30) {
        size_t m = bytes - off < (1u << 30) ? bytes - off : (1u << 30);
        MPI_Bcast((char *)buf + off, (int)m, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}

int spq_par_any(int flag) {
    if (g_size < 2) return flag != 0;
    int in = flag != 0, out = 0;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD);
    return out;
}

void spq_par_barrier(void) {
    if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
}

void spq_par_abort(int code) {
    if (g_mpi && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

#else /* built without MPI */

int spq_par_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (!launched_by_mpi()) return 0;
    int size = env_int("OMPI_COMM_WORLD_SIZE");
    if (size < 1) size = env_int("PMI_SIZE");
    if (size == 1) return 0;
    fprintf(stderr, "spinq: started by an MPI launcher, but this build has no MPI (install libopenmpi-dev and "
                    "rebuild)\n");
    return -1;
}
void spq_par_finalize(void) {}
void spq_par_sum_f64(double *buf, size_t n) { (void)buf, (void)n; }
void spq_par_sum_f32(float *buf, size_t n) { (void)buf, (void)n; }
void spq_par_sum_i64(long long *buf, size_t n) { (void)buf, (void)n; }
void spq_par_bcast(void *buf, size_t bytes, int root) { (void)buf, (void)bytes, (void)root; }
int spq_par_any(int flag) { return flag != 0; }
void spq_par_barrier(void) {}
void spq_par_abort(int code) { exit(code); }

#endif

int spq_par_rank(void) { return g_rank; }
int spq_par_size(void) { return g_size; }
const char *spq_par_runtime(void) { return g_runtime; }

void spq_par_share(int n, int *lo, int *hi) {
    int base = n / g_size, extra = n % g_size;
    *lo = g_rank * base + (g_rank < extra ? g_rank : extra);
    *hi = *lo + base + (g_rank < extra);
}
