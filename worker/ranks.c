/* ranks.c - see ranks.h. */
#include "worker/ranks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/par.h"
#include "worker/pipeline.h"
#include "worker/workdir.h"

int wk_ranks_bcast_int(int v) {
    spq_par_bcast(&v, sizeof v, 0);
    return v;
}

/* length first, then the bytes (rank 0's stay where they are) */
static void bcast_blob(uint8_t **p, size_t *len) {
    uint64_t n = *len;
    spq_par_bcast(&n, sizeof n, 0);
    if (spq_par_rank() != 0) {
        *len = (size_t)n;
        *p = spq_malloc(n ? n : 1);
    }
    if (n) spq_par_bcast(*p, (size_t)n, 0);
}

char *wk_ranks_bcast_str(const char *s) {
    uint8_t *p = (uint8_t *)s;
    size_t n = spq_par_rank() == 0 ? strlen(s) + 1 : 0;
    bcast_blob(&p, &n);
    if (spq_par_rank() == 0) return spq_strdup(s);
    p[n ? n - 1 : 0] = 0;
    return (char *)p;
}

void wk_ranks_bcast_job(wk_rank_job *j) {
    struct {
        int32_t have;
        uint32_t attempt;
        uint64_t run;
        int64_t ckpt_step;
    } h = {j->have, j->attempt, j->run, j->ckpt_step};
    spq_par_bcast(&h, sizeof h, 0);
    if (spq_par_rank() != 0) {
        memset(j, 0, sizeof *j);
        j->have = h.have;
        j->attempt = h.attempt;
        j->run = h.run;
        j->ckpt_step = h.ckpt_step;
    }
    if (!h.have) return;
    size_t n = spq_par_rank() == 0 ? strlen(j->spec) + 1 : 0;
    uint8_t *spec = (uint8_t *)j->spec;
    bcast_blob(&spec, &n);
    j->spec = (char *)spec;
    j->spec[n ? n - 1 : 0] = 0;
    bcast_blob(&j->ckpt, &j->ckpt_len);
}

int wk_ranks_agree_stop(int mine) {
    if (spq_par_size() < 2) return mine;
    return wk_ranks_bcast_int(mine);
}

/* ---- the other ranks ---- */

static int stop_of_rank0(void *ud) { return wk_ranks_agree_stop(PL_STOP_NONE); }

int wk_follow_rank0(void) {
    wk_rank_job j = {0};
    wk_ranks_bcast_job(&j);
    if (!j.have) return 0;
    int go = wk_ranks_bcast_int(0);
    if (go) {
        char *models = wk_ranks_bcast_str(""), *datasets = wk_ranks_bcast_str("");
        pl_reporter rep = pl_reporter_quiet(stop_of_rank0, NULL);
        pl_pipeline p;
        memset(&p, 0, sizeof p);
        p.models_dir = models;
        p.datasets_dir = datasets;
        p.resume_step = j.ckpt_step;
        p.resume_ckpt = j.ckpt;
        p.resume_len = j.ckpt_len;
        p.rep = &rep;
        char dir[4096];
        /* rank 0 parsed the same spec, so a failure here is this rank's own: all must stop */
        if (spq_jobspec_parse(&p.spec, j.spec, strlen(j.spec), NULL, &p.err) || wk_workdir_make(dir, sizeof dir)) {
            fprintf(stderr, "spinq-worker rank %d: %s\n", spq_par_rank(),
                    p.err.msg[0] ? p.err.msg : strerror(errno));
            spq_par_abort(1);
        }
        p.work_dir = dir;
        int st = pl_pipeline_run(&p);
        if (st == PL_STAGE_FAILED) {
            /* rank 0 may have failed at the same point (then it reports and
             * ends the job itself), or may be waiting in a collective this
             * rank will never join: give it time to report, then end them all */
            fprintf(stderr, "spinq-worker rank %d: run %llu: %s\n", spq_par_rank(), (unsigned long long)j.run,
                    p.err.msg);
            sleep(10);
            spq_par_abort(1);
        }
        pl_pipeline_free(&p);
        wk_workdir_remove(dir);
        free(models);
        free(datasets);
    }
    free(j.spec);
    free(j.ckpt);
    return 0;
}
