/* llencode.c - see llencode.h. */
#include "llencode.h"

#include <stdlib.h>
#include <string.h>

#include "common/base/pytext.h"

int spq_ll_encode(int **ctx, int *n_ctx, int **cont, int *n_cont, spq_encode_fn enc, void *ud, const char *context,
                  const char *continuation, int prefix, int bos, spq_err *err) {
    *ctx = *cont = NULL;
    *n_ctx = *n_cont = 0;
    size_t lc = strlen(context), lk = strlen(continuation);
    if (lc == 0) {
        if (prefix < 0) return spq_fail(err, "empty context and no BOS/EOS token to start from");
        if (enc(ud, continuation, lk, cont, n_cont, err)) return -1;
        *ctx = spq_malloc(sizeof(int));
        (*ctx)[0] = prefix;
        *n_ctx = 1;
    } else {
        size_t keep = spq_py_rstrip_len(context, lc);
        /* whole text: context + continuation (unchanged bytes); the split
         * point moves left past the trailing whitespace */
        char *whole = spq_malloc(lc + lk + 1);
        memcpy(whole, context, lc);
        memcpy(whole + lc, continuation, lk + 1);
        int *w = NULL, nw = 0, *c = NULL, nc = 0;
        if (enc(ud, whole, lc + lk, &w, &nw, err) || enc(ud, context, keep, &c, &nc, err)) {
            free(whole);
            free(w);
            free(c);
            return -1;
        }
        free(whole);
        int nb = bos >= 0 ? 1 : 0;
        int split = nc < nw ? nc : nw;
        *n_ctx = nb + nc;
        *ctx = spq_malloc((size_t)(*n_ctx ? *n_ctx : 1) * sizeof(int));
        if (nb) (*ctx)[0] = bos;
        memcpy(*ctx + nb, c, (size_t)nc * sizeof(int));
        *n_cont = nw - split;
        *cont = spq_malloc((size_t)(*n_cont ? *n_cont : 1) * sizeof(int));
        memcpy(*cont, w + split, (size_t)*n_cont * sizeof(int));
        free(w);
        free(c);
        if (*n_ctx == 0) {
            /* the context was only whitespace: start from the prefix */
            if (prefix < 0) return spq_fail(err, "blank context and no BOS/EOS token to start from");
            (*ctx)[0] = prefix;
            *n_ctx = 1;
        }
    }
    if (*n_cont == 0) {
        free(*ctx);
        free(*cont);
        *ctx = *cont = NULL;
        *n_ctx = 0;
        return spq_fail(err, "the continuation '%.60s' encodes to no tokens after the context", continuation);
    }
    return 0;
}
