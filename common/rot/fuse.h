/* fuse.h - folding RMSNorm weights into the linears they feed.
 *
 * RMSNorm(x) * w followed by a linear W is the same as RMSNorm(x) followed
 * by W diag(w). After fusion every norm weight is 1, so the residual stream
 * can be rotated by an orthogonal R1 without changing the network (RMS is
 * rotation invariant, elementwise scaling is not). The classifier is untied
 * first: the embedding is not scaled, the classifier is. */
#ifndef SPQ_FUSE_H
#define SPQ_FUSE_H

#include "common/model/model.h"

/* input norm -> q, k, v; post-attention norm -> gate, up; final norm ->
 * lm_head. Products are formed in fp64 and rounded once. A mapped model's
 * layers are fused as they are converted (a layer transform, mapped.h), to
 * the same values. */
void spq_fuse_norms(spq_model *m);

/* 1 if every norm weight is exactly 1 (the model is fused). */
int spq_model_is_fused(const spq_model *m);

#endif
