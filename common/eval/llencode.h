/* llencode.h - lm-evaluation-harness's tokenization of a loglikelihood
 * request (HFLM._encode_pair), with the tokenizer passed in as a function:
 *   - trailing whitespace of the context (Python's str.rstrip) moves to the
 *     front of the continuation;
 *   - whole = enc(context + continuation), ctx = enc(context),
 *     cont = whole[len(ctx):] (the split is by count: a token merged across
 *     the boundary belongs to the continuation);
 *   - an empty context becomes [prefix] (BOS, or EOS when there is none) and
 *     the continuation is encoded alone.
 * enc encodes without special tokens; with bos >= 0 it is put before the
 * context (lm-eval's add_bos_token=True; off by default, as in lm-eval). */
#ifndef SPQ_LLENCODE_H
#define SPQ_LLENCODE_H

#include <stddef.h>

#include "common/base/util.h"

/* Encodes text[0..len) into a malloc'd array of *n ids; 0 or -1 with err. */
typedef int (*spq_encode_fn)(void *ud, const char *text, size_t len, int **ids, int *n, spq_err *err);

int spq_ll_encode(int **ctx, int *n_ctx, int **cont, int *n_cont, spq_encode_fn enc, void *ud, const char *context,
                  const char *continuation, int prefix, int bos, spq_err *err);

#endif
