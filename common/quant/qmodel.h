/* qmodel.h - turning a loaded model into the fake-quantized model that a
 * setting describes: fuse the norms and absorb the rotations (when there
 * are any), quantize the weights with round-to-nearest, and switch on the
 * activation and KV quantizers of the forward pass. Without rotations the
 * norms stay unfused (as the reference's no-rotation baseline). */
#ifndef SPQ_QMODEL_H
#define SPQ_QMODEL_H

#include "common/model/model.h"
#include "common/rot/rotation.h"

struct json_t;

/* Fake-quantizes every linear weight but the embedding and lm_head in place
 * (round-to-nearest with w's settings; nothing at 16 bits). */
void spq_rtn_model(spq_model *m, const spq_wq_cfg *w);

/* Checks q against m's shapes (bits, group sizes, clip ratios), naming the
 * setting that is wrong. */
int spq_qcfg_check(const spq_qcfg *q, const spq_config *c, spq_err *err);

/* rot may be NULL. With rtn 0 the weights are left for GPTQ (gptq.h). */
int spq_qmodel_prepare(spq_model *m, const spq_rotation *rot, const spq_qcfg *q, int rtn, spq_err *err);

/* The quantizer settings as a JSON object, the one way they are written
 * (a job spec's quant section, rotation files, packed models): "w_bits",
 * "w_sym", "w_groupsize", "w_clip", "a_bits", "a_clip", "kv_bits",
 * "kv_clip" - the keys of a job spec - and with `full` also "a_sym",
 * "a_groupsize" and "kv_sym" (what a packed model carries). Clip ratios are
 * written as the shortest decimal that reads back as the same float. */
struct json_t *spq_qcfg_to_value(const spq_qcfg *q, int full);
/* And back: every key of the set is required and bits are 2..8 or 16; the
 * message names the key after `src`. What else a reader needs (packed
 * weights are 2..4 bits, shapes) is its own check. */
int spq_qcfg_from_value(spq_qcfg *q, const struct json_t *o, int full, const char *src, spq_err *err);
/* spq_qcfg_to_value(q, 0) as compact text, and back (rotation files keep it
 * in their metadata). */
void spq_qcfg_to_json(char *buf, size_t cap, const spq_qcfg *q);
int spq_qcfg_from_json(spq_qcfg *q, const char *text, spq_err *err);

/* A one-line description like "W4A4KV4 (w: sym, per channel, clip search;
 * a clip 1.00; kv clip 1.00)". */
void spq_qcfg_describe(char *buf, size_t cap, const spq_qcfg *q);

#endif
