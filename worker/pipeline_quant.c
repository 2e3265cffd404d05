/* pipeline_quant.c - the quantize stage: weights fake-quantized with
 * round-to-nearest (weights.method "rtn"; GPTQ when it lands) and the
 * activation and KV quantizers of the forward pass switched on, as the spec's
 * quant section says. The model is already rotated (rotate/learn). */
#include <stdio.h>

#include "common/qmodel.h"
#include "worker/pipeline.h"
#include "worker/qflags.h"

spq_qcfg spq_pipeline_qcfg(const spq_jobspec *s, int w_bits) {
    spq_qcfg q = spq_qcfg_off();
    q.w.bits = w_bits;
    q.w.sym = s->quant.w_sym;
    q.w.groupsize = s->quant.w_groupsize;
    q.w.mse = s->quant.w_clip;
    q.a.bits = s->quant.a_bits;
    q.a.clip = (float)s->quant.a_clip;
    q.kv.bits = s->quant.kv_bits;
    q.kv.clip = (float)s->quant.kv_clip;
    return q;
}

int spq_stage_quantize(spq_pipeline *p) {
    spq_qcfg q = spq_pipeline_qcfg(&p->spec, p->spec.quant.w_bits);
    int rtn = q.w.bits < 16 && p->spec.weights.method == SPQ_WQ_RTN;
    if (spq_qmodel_prepare(&p->model, NULL, &q, rtn, &p->err)) return SPQ_STAGE_FAILED;
    char desc[160], line[256];
    spq_qcfg_describe(desc, sizeof desc, &q);
    snprintf(line, sizeof line, "quantized: %s%s", desc, rtn ? " (weights round-to-nearest)" : "");
    p->rep->log(p->rep->ud, "info", line);
    if (q.w.bits < 16)
        p->rep->log(p->rep->ud, "warn", "the packed low-bit model writer is not available yet: this run's weights "
                                        "are fake-quantized for evaluation only, no packed model artifact");
    return SPQ_STAGE_OK;
}
