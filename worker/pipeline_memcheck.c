/* pipeline_memcheck.c - the check, right after the model is loaded (mapped,
 * so nothing heavy has happened yet), that this machine can hold what the
 * run will need: the estimate of common/job/memest.h for every stage against
 * the memory available to the process and the free disk of the work dir.
 * A run that cannot fit fails here, naming the stage, the figures and what
 * to change, instead of being killed by the OOM killer an hour later or
 * leaving a truncated file. SPINQ_NO_MEMCHECK=1 reports the estimate but
 * does not refuse (the estimate ignores swap and what other processes may
 * free). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/job/memest.h"
#include "worker/pipeline.h"

static double gib(uint64_t b) { return (double)b / (double)(1ull << 30); }

static spq_memest_opts opts_of(const pl_pipeline *p) {
    const pl_local *L = &p->local;
    return (spq_memest_opts){
        .mapped = p->model.mapped != NULL || p->model.packed != NULL,
        .keep_model = L->keep_model,
        .eval_batch = L->batch,
        .eval_seqlen = L->seqlen,
        .gguf = L->gguf,
        .no_model = (L->skip & PL_ART_MODEL) != 0,
        .emb_bytes = L->emb_dtype ? 2 : 4,
    };
}

static int check_skipped(void) {
    const char *v = getenv("SPINQ_NO_MEMCHECK");
    return v && *v && strcmp(v, "0");
}

int pl_check_resources(pl_pipeline *p) {
    spq_memest e;
    spq_memest_opts o = opts_of(p);
    spq_memest_compute(&e, &p->model.cfg, &p->spec, &o);
    const spq_memest_stage *peak = &e.st[e.peak];
    uint64_t mem = spq_mem_available(), disk = spq_disk_available(p->work_dir);
    int skip = check_skipped();
    pl_log(p, "info", "memory: estimated peak %.2f GiB (%s) of %.2f GiB available; disk: %.2f GiB of %.2f GiB free%s",
           gib(peak->anon), peak->stage, gib(mem), gib(e.disk), disk == UINT64_MAX ? -1.0 : gib(disk),
           skip ? " (SPINQ_NO_MEMCHECK: not enforced)" : "");
    if (skip) return PL_STAGE_OK;
    if (mem > 0 && peak->anon > mem) {
        spq_fail(&p->err, "memory: the %s stage needs an estimated %.2f GiB but %.2f GiB is available: %s "
                          "(SPINQ_NO_MEMCHECK=1 runs it anyway)",
                 peak->stage, gib(peak->anon), gib(mem), peak->hint);
        return PL_STAGE_FAILED;
    }
    if (disk != UINT64_MAX && e.disk > disk) {
        spq_fail(&p->err, "disk: the write stage needs an estimated %.2f GiB in %s but %.2f GiB is free: free some "
                          "space there (SPINQ_NO_MEMCHECK=1 runs it anyway)",
                 gib(e.disk), p->work_dir ? p->work_dir : ".", gib(disk));
        return PL_STAGE_FAILED;
    }
    return PL_STAGE_OK;
}
