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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/job/memest.h"
#include "common/model/packed_weights.h"
#include "worker/pipeline.h"

/* bytes as "3.58 GiB", or "12.4 MiB" below a GiB (small models would all read 0.00 GiB) */
typedef struct {
    char s[32];
} size_str;

static size_str human(uint64_t b) {
    size_str r;
    if (b >= (1ull << 30)) snprintf(r.s, sizeof r.s, "%.2f GiB", (double)b / (double)(1ull << 30));
    else snprintf(r.s, sizeof r.s, "%.1f MiB", (double)b / (double)(1ull << 20));
    return r;
}

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
        .streamed = pl_quant_streams(p),
        .resident = p->model.packed ? spq_packed_bytes(p->model.packed, &p->model.cfg) : 0,
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
    pl_log(p, "info", "memory: estimated peak %s (%s) of %s available; disk: %s of %s free%s", human(peak->anon).s,
           peak->stage, mem ? human(mem).s : "unknown", human(e.disk).s,
           disk == UINT64_MAX ? "unknown" : human(disk).s, skip ? " (SPINQ_NO_MEMCHECK=1: not enforced)" : "");
    if (skip) return PL_STAGE_OK;
    if (mem > 0 && peak->anon > mem) {
        spq_fail(&p->err, "memory: the %s stage needs an estimated %s but %s is available: %s "
                          "(SPINQ_NO_MEMCHECK=1 runs it anyway)",
                 peak->stage, human(peak->anon).s, human(mem).s, peak->hint);
        return PL_STAGE_FAILED;
    }
    if (disk != UINT64_MAX && e.disk > disk) {
        spq_fail(&p->err, "disk: the write stage needs an estimated %s in %s but %s is free: free some space there "
                          "(SPINQ_NO_MEMCHECK=1 runs it anyway)",
                 human(e.disk).s, p->work_dir ? p->work_dir : ".", human(disk).s);
        return PL_STAGE_FAILED;
    }
    return PL_STAGE_OK;
}
