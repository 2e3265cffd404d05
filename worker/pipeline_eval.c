/* pipeline_eval.c - the evaluate stage: perplexity of the model on each
 * eval.ppl dataset (design notes, section 4: the text tokenized once,
 * non-overlapping windows, tail dropped), with progress per window.
 *
 * Windows are independent, so the stage runs spq_ppl_windows over a few
 * windows at a time and sums the NLL: the result equals one call over the
 * whole text, and between calls it reports progress and honours a stop. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ppl.h"
#include "worker/pipeline.h"

enum { WINDOWS_PER_CALL = 4 };

static int eval_ppl(spq_pipeline *p, int idx) {
    const spq_spec_ppl *e = &p->spec.eval.ppl[idx];
    char field[64], key[300];
    snprintf(field, sizeof field, "eval.ppl[%d]", idx);
    int seqlen = e->seqlen ? e->seqlen : (p->model.cfg.seq_len < 2048 ? p->model.cfg.seq_len : 2048);
    if (seqlen > p->model.cfg.seq_len) {
        spq_fail(&p->err, "%s.seqlen: %d is longer than the model's context %d", field, seqlen, p->model.cfg.seq_len);
        return SPQ_STAGE_FAILED;
    }
    char *path = NULL, *text = NULL;
    int *ids = NULL, n_ids = 0, rc = SPQ_STAGE_FAILED;
    size_t len;
    if (spq_resolve_under(&path, p->datasets_dir, e->data, &p->err)) {
        spq_fail_prefix(&p->err, "%s.data", field);
        goto done;
    }
    if (spq_read_file(&text, &len, path, &p->err)) goto done;
    if (spq_tok_encode(p->tok, text, len, 1, &ids, &n_ids, &p->err)) {
        spq_fail_prefix(&p->err, "%s", e->data);
        goto done;
    }
    long nw = n_ids / seqlen;
    if (p->spec.eval.limit > 0 && nw > p->spec.eval.limit) nw = p->spec.eval.limit;
    if (nw < 1) {
        spq_fail(&p->err, "%s: %s has %d tokens, fewer than one window of %d", field, e->data, n_ids, seqlen);
        goto done;
    }
    char line[400];
    snprintf(line, sizeof line, "ppl %s: %d tokens, %ld windows of %d", e->data, n_ids, nw, seqlen);
    p->rep->log(p->rep->ud, "info", line);
    double nll = 0;
    long scored = 0;
    for (long w = 0; w < nw; w += WINDOWS_PER_CALL) {
        if (spq_pipeline_should_stop(p)) {
            rc = SPQ_STAGE_STOPPED;
            goto done;
        }
        long k = nw - w < WINDOWS_PER_CALL ? nw - w : WINDOWS_PER_CALL;
        spq_ppl_result r;
        if (spq_ppl_windows(&r, &p->model, ids + w * seqlen, k * seqlen, seqlen, (int)k, NULL, NULL, &p->err)) {
            spq_fail_prefix(&p->err, "%s", field);
            goto done;
        }
        nll += r.nll_sum;
        scored += r.n_scored;
        p->rep->progress(p->rep->ud, "evaluate", w + k, nw);
    }
    double ppl = exp(nll / (double)scored);
    snprintf(key, sizeof key, "ppl/%s", e->data);
    p->rep->metric(p->rep->ud, key, 0, ppl);
    json_object_set_new(p->results, key, json_real(ppl));
    if (idx == 0) { /* the headline score: what listings sort by */
        p->rep->metric(p->rep->ud, "ppl", 0, ppl);
        json_object_set_new(p->results, "ppl", json_real(ppl));
    }
    snprintf(line, sizeof line, "ppl %s = %.4f over %ld scored tokens", e->data, ppl, scored);
    p->rep->log(p->rep->ud, "info", line);
    rc = SPQ_STAGE_OK;
done:
    free(ids);
    free(text);
    free(path);
    return rc;
}

int spq_stage_evaluate(spq_pipeline *p) {
    for (int i = 0; i < p->spec.eval.n_ppl; i++) {
        int rc = eval_ppl(p, i);
        if (rc != SPQ_STAGE_OK) return rc;
    }
    return SPQ_STAGE_OK;
}
