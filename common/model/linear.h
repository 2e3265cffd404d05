/* linear.h - naming the seven linear layers of a transformer block, their
 * shapes, and the activation each one reads ("site"), so that weight
 * quantization (RTN, GPTQ), calibration observers and the packed format can
 * loop over them instead of spelling out q, k, v, ... every time.
 *
 *   site QKV:    rmsnorm(x)            -> q_proj, k_proj, v_proj
 *   site O:      attention output      -> o_proj      (per-head quantizer groups)
 *   site GATEUP: rmsnorm(x)            -> gate_proj, up_proj
 *   site DOWN:   R4 (silu(gate) * up)  -> down_proj
 * GPTQ processes the sites in this order within a block. */
#ifndef SPQ_LINEAR_H
#define SPQ_LINEAR_H

#include "model.h"

enum { SPQ_LIN_Q, SPQ_LIN_K, SPQ_LIN_V, SPQ_LIN_O, SPQ_LIN_GATE, SPQ_LIN_UP, SPQ_LIN_DOWN, SPQ_N_LIN };
enum { SPQ_SITE_QKV, SPQ_SITE_O, SPQ_SITE_GATEUP, SPQ_SITE_DOWN, SPQ_N_SITES };

/* "q_proj", "k_proj", ..., "down_proj" (the Hugging Face module names) */
const char *spq_lin_name(int which);
/* the site whose activation the linear reads */
int spq_lin_site(int which);
/* weight shape (rows = out, cols = in) */
void spq_lin_shape(const spq_config *c, int which, int *rows, int *cols);
/* the weight pointer of a layer (an lvalue, so callers can swap it) */
float **spq_lin_weight(spq_layer *L, int which);
/* The activation quantizer of the site's input: q->a, per (token, head) for
 * the o_proj input. */
spq_aq_cfg spq_site_aq(const spq_qcfg *q, int site, int head_dim);

#endif
