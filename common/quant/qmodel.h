/* qmodel.h - turning a loaded model into the fake-quantized model that a
 * setting describes: fuse the norms and absorb the rotations (when there
 * are any), quantize the weights with round-to-nearest, and switch on the
 * activation and KV quantizers of the forward pass. Without rotations the
 * norms stay unfused (as the reference's no-rotation baseline). */
#ifndef SPQ_QMODEL_H
#define SPQ_QMODEL_H

#include "common/model/model.h"
#include "common/rot/rotation.h"

/* Fake-quantizes every linear weight but the embedding and lm_head in place
 * (round-to-nearest with w's settings; nothing at 16 bits). */
void spq_rtn_model(spq_model *m, const spq_wq_cfg *w);

/* Checks q against m's shapes (bits, group sizes, clip ratios), naming the
 * setting that is wrong. */
int spq_qcfg_check(const spq_qcfg *q, const spq_config *c, spq_err *err);

/* rot may be NULL. With rtn 0 the weights are left for GPTQ (gptq.h). */
int spq_qmodel_prepare(spq_model *m, const spq_rotation *rot, const spq_qcfg *q, int rtn, spq_err *err);

/* q as a compact JSON object ({"w_bits":4,"w_sym":true,...}), and back
 * (every key required; the message names a missing or mistyped one). */
void spq_qcfg_to_json(char *buf, size_t cap, const spq_qcfg *q);
int spq_qcfg_from_json(spq_qcfg *q, const char *text, spq_err *err);

#endif
