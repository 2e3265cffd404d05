/* pipeline_quant.c - the quantize stage: the weights quantized as the spec's
 * weights section says - round-to-nearest ("rtn") or GPTQ ("gptq", on
 * windows of weights.calib, gptq.h) - with their parameters kept in p->wq for
 * the packed model that write produces, and the activation and KV
 * quantizers of the forward pass switched on as the quant section says. The
 * model is already rotated (rotate/learn). GPTQ reports progress per layer,
 * its layer-output errors against RTN as metrics (gptq/err, gptq/err_rtn at
 * step = layer, the mean over the layer's linears), and stops between layers
 * when asked (a resumed run starts GPTQ over). A mapped model is quantized
 * streamed when its settings allow (see pl_quant_streams below). */
#include <stdio.h>
#include <stdlib.h>

#include "common/base/half.h"
#include "common/base/par.h"
#include "common/model/mapped.h"
#include "common/quant/gptq.h"
#include "common/quant/qmodel.h"
#include "common/quant/qpack.h"
#include "worker/pipeline.h"

static int on_layer(void *ud, int layer, int n_layers, const spq_gptq_stat *st, double seconds) {
    pl_pipeline *p = ud;
    double g = 0, r = 0;
    for (int w = 0; w < SPQ_N_LIN; w++) {
        g += st[w].err_gptq / SPQ_N_LIN;
        r += st[w].err_rtn / SPQ_N_LIN;
    }
    char line[512];
    int n = snprintf(line, sizeof line, "gptq layer %d/%d (%.1f s), relative output error gptq/rtn:", layer + 1,
                     n_layers, seconds);
    for (int w = 0; w < SPQ_N_LIN && n < (int)sizeof line; w++)
        n += snprintf(line + n, sizeof line - n, " %s %.4f/%.4f", spq_lin_name(w), st[w].err_gptq, st[w].err_rtn);
    p->rep->log(p->rep->ud, "info", line);
    p->rep->metric(p->rep->ud, "gptq/err", layer, g);
    p->rep->metric(p->rep->ud, "gptq/err_rtn", layer, r);
    p->rep->progress(p->rep->ud, "quantize", layer + 1, n_layers);
    return pl_pipeline_should_stop(p);
}

static void on_rtn_layer(void *ud, long done, long total) {
    pl_pipeline *p = ud;
    p->rep->progress(p->rep->ud, "quantize", done, total);
}

/* GPTQ on weights.calib, tokenized with the model's tokenizer */
static int run_gptq(pl_pipeline *p, const spq_wq_cfg *w) {
    const spq_jobspec *s = &p->spec;
    char *path = NULL, *text = NULL;
    int *ids = NULL, n_ids = 0, rc = PL_STAGE_FAILED;
    size_t len;
    spq_gptq_cfg g = spq_gptq_defaults();
    g.nsamples = s->weights.nsamples;
    g.seqlen = s->weights.seqlen < p->model.cfg.seq_len ? s->weights.seqlen : p->model.cfg.seq_len; /* as learn */
    g.damp = s->weights.damp;
    g.act_order = s->weights.act_order;
    g.blocksize = s->weights.blocksize;
    g.seed = p->local.calib_seed_set ? p->local.calib_seed : s->seed;
    g.calib_aq = p->local.calib_act_quant;
    if (spq_gptq_check(&g, &p->model.cfg, &p->err)) {
        spq_fail_prefix(&p->err, "weights");
        return PL_STAGE_FAILED;
    }
    if (pl_dataset_path(p, &path, s->weights.calib, "weights.calib")) goto setup_failed;
    if (spq_read_file(&text, &len, path, &p->err) || spq_tok_encode(p->tok, text, len, 1, &ids, &n_ids, &p->err)) {
        spq_fail_prefix(&p->err, "weights.calib");
        goto setup_failed;
    }
    if (spq_par_any(0)) { /* every rank read the text: the Hessian sums can start */
        spq_fail(&p->err, "another rank failed");
        goto done;
    }
    pl_log(p, "info", "gptq on %d windows of %d tokens from %s (%d tokens), damp %g%s", g.nsamples, g.seqlen,
           s->weights.calib, n_ids, g.damp, g.act_order ? ", act-order" : "");
    int n_lin = p->model.cfg.n_layers * SPQ_N_LIN;
    /* the bar's clock starts now, not when the first layer is done (minutes at 8B) */
    p->rep->progress(p->rep->ud, "quantize", 0, p->model.cfg.n_layers);
    spq_gptq_stat *stats = spq_calloc((size_t)n_lin, sizeof *stats);
    int r = spq_gptq_model(&p->wq, stats, &p->model, w, ids, n_ids, &g, on_layer, p, &p->err);
    if (r == 0) { /* the layer-output errors of the whole model */
        double sg = 0, sr = 0;
        int better = 0;
        for (int i = 0; i < n_lin; i++) {
            sg += stats[i].err_gptq;
            sr += stats[i].err_rtn;
            better += stats[i].err_gptq < stats[i].err_rtn;
        }
        pl_log(p, "info", "gptq: mean relative output error %.5f (rtn %.5f), lower on %d of %d linears", sg / n_lin,
               sr / n_lin, better, n_lin);
    }
    free(stats);
    if (r < 0) spq_fail_prefix(&p->err, "weights.calib %s", s->weights.calib);
    rc = r < 0 ? PL_STAGE_FAILED : r > 0 ? PL_STAGE_STOPPED : PL_STAGE_OK;
    p->have_wq = r == 0;
    goto done;
setup_failed:
    spq_par_any(1); /* the other ranks' agreement above */
done:
    free(ids);
    free(text);
    free(path);
    return rc;
}

/* A mapped model whose weights are quantized to a packed form is quantized
 * a layer at a time (quant/qpack.h), the layers packed as they are done;
 * otherwise (no weight quantization, 5..8 bits, a GGUF grid, a GGUF export,
 * a model kept for serving) it is converted to fp32 first. */
int pl_quant_streams(const pl_pipeline *p) {
    spq_qcfg q = spq_jobspec_qcfg(&p->spec, p->spec.quant.w_bits);
    return q.w.bits < 16 && !p->local.gguf && !p->local.keep_model && spq_qpack_streams(&p->model, &q);
}

/* fp32 table t (n) <- its values rounded to the 16-bit dtype dt */
static void round_table(float *t, size_t n, int dt) {
    enum { CHUNK = 4096 };
    uint16_t h[CHUNK];
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        spq_f32_to_half_array(h, t + i, k, dt == SPQ_ST_BF16);
        spq_half_to_f32_array(t + i, h, k, dt == SPQ_ST_BF16);
    }
}

/* When the packed file will hold the embedding and classifier in 16 bits
 * (--embedding-dtype), they take those values before quantizing, so that
 * GPTQ calibrates on and evaluation measures what the file gives; a
 * streamed model then keeps them in 16 bits (quantizing at 8B needs 2 GB
 * less), an fp32 one rounds them in place: both compute the same. */
static void ends_as_written(pl_pipeline *p, const spq_qcfg *q, int streams) {
    int dt = p->local.emb_dtype;
    if ((dt != SPQ_ST_BF16 && dt != SPQ_ST_F16) || q->w.bits > 4 || p->local.gguf || (p->local.skip & PL_ART_MODEL))
        return;
    spq_model *m = &p->model;
    if (streams) {
        spq_mapped_ends_16(m, (spq_st_dtype)dt);
        return;
    }
    size_t n = (size_t)m->cfg.vocab_size * m->cfg.dim;
    if (m->tok_emb) round_table(m->tok_emb, n, dt);
    if (m->lm_head && m->lm_head != m->tok_emb) round_table(m->lm_head, n, dt);
}

int pl_stage_quantize(pl_pipeline *p) {
    spq_qcfg q = spq_jobspec_qcfg(&p->spec, p->spec.quant.w_bits);
    /* settings checked and switched on; weights left for the method below */
    if (spq_qmodel_prepare(&p->model, NULL, &q, 0, &p->err)) return PL_STAGE_FAILED;
    int streams = pl_quant_streams(p);
    if (streams) pl_log(p, "info", "quantizing a layer at a time from the mapped weights, each layer packed once done");
    else if (q.w.bits < 16) pl_materialize(p); /* activations alone change no weight */
    ends_as_written(p, &q, streams);
    int gptq = q.w.bits < 16 && p->spec.weights.method == SPQ_WQ_GPTQ;
    if (q.w.bits < 16 && !gptq) {
        on_rtn_layer(p, 0, p->model.cfg.n_layers);
        if (spq_wquant_rtn_progress(&p->wq, &p->model, &q.w, on_rtn_layer, p, &p->err)) return PL_STAGE_FAILED;
        p->have_wq = 1;
    } else if (gptq) {
        int rc = run_gptq(p, &q.w);
        if (rc != PL_STAGE_OK) return rc;
    }
    char desc[160];
    spq_qcfg_describe(desc, sizeof desc, &q);
    pl_log(p, "info", "quantized: %s%s", desc, gptq ? " (weights GPTQ)" : q.w.bits < 16 ? " (weights round-to-nearest)" : "");
    return PL_STAGE_OK;
}
