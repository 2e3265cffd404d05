/* tok_bin.c - llama2.c's tokenizer.bin: int32 max_token_length, then per
 * token float32 score, int32 length, length bytes (little endian). Exported
 * from a SentencePiece model with "▁" written as " " and BOS/EOS as
 * "\n<s>\n" / "\n</s>\n"; ids 0, 1, 2 are unk, BOS, EOS and the byte tokens
 * <0x00>..<0xFF> follow.
 *
 * The file becomes the same tokenizer a LLaMA-2 tokenizer.json describes:
 * " " back to "▁" in the pieces, <unk>/<s>/</s> as special added tokens,
 * normalizer Prepend "▁" + Replace " " -> "▁", byte fallback, BOS added,
 * the LLaMA-2 decoder. Only the merge rule differs, as in llama2.c and
 * SentencePiece: the pair whose merged piece has the highest score. */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

#define SPM_SPACE "\xE2\x96\x81" /* U+2581 "▁" */

static int rd_i32(const char *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static float rd_f32(const char *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* Appends " " -> "▁" converted piece text to a new entry. */
static void set_piece(spq_tokenizer *t, int id, const char *s, int n, float score) {
    int spaces = 0;
    for (int i = 0; i < n; i++) spaces += s[i] == ' ';
    char *buf = spq_malloc(n + 2 * spaces + 1);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] == ' ') memcpy(buf + k, SPM_SPACE, 3), k += 3;
        else buf[k++] = s[i];
    }
    spq_tok_entry *e = spq_tok_set_entry(t, id, buf, k, score);
    e->in_model = 1;
    free(buf);
}

static void set_special(spq_tokenizer *t, int id, const char *content) {
    spq_tok_entry *e = spq_tok_set_entry(t, id, content, (int)strlen(content), 0);
    e->added = e->special = 1;
    e->in_model = 0;
}

int spq_tok_load_bin(spq_tokenizer **out, const char *path, spq_err *err) {
    *out = NULL;
    char *data;
    size_t size;
    if (spq_read_file(&data, &size, path, err)) return -1;
    int rc = spq_tok_load_bin_mem(out, path, data, size, err);
    free(data);
    return rc;
}

int spq_tok_load_bin_mem(spq_tokenizer **out, const char *path, const char *data, size_t size, spq_err *err) {
    *out = NULL;
    if (size < 4) return spq_fail(err, "%s: truncated tokenizer.bin: %zu bytes, the header alone is 4", path, size);
    int max_len = rd_i32(data);
    if (max_len <= 0 || max_len > 1 << 16)
        return spq_fail(err, "%s: not a llama2.c tokenizer.bin: max_token_length is %d", path, max_len);
    spq_tokenizer *t = spq_tok_alloc(path);
    size_t off = 4;
    int id = 0;
    while (off < size) {
        if (size - off < 8) {
            spq_fail(err, "%s: truncated at token %d (byte %zu): score and length need 8 bytes, %zu left", path, id,
                     off, size - off);
            goto fail;
        }
        float score = rd_f32(data + off);
        int len = rd_i32(data + off + 4);
        off += 8;
        if (len < 0 || len > max_len) {
            spq_fail(err, "%s: token %d has length %d, outside 0..max_token_length %d", path, id, len, max_len);
            goto fail;
        }
        if ((size_t)len > size - off) {
            spq_fail(err, "%s: truncated at token %d (byte %zu): %d bytes of text, %zu left", path, id, off, len,
                     size - off);
            goto fail;
        }
        long bad = spq_utf8_check(data + off, len);
        if (bad >= 0) {
            spq_fail(err, "%s: token %d is not valid UTF-8 (byte %ld of its text)", path, id, bad);
            goto fail;
        }
        set_piece(t, id, data + off, len, score);
        off += len;
        id++;
    }
    if (id < 3) {
        spq_fail(err, "%s: %d tokens; a llama2.c tokenizer has at least unk, BOS and EOS", path, id);
        goto fail;
    }
    set_special(t, 0, "<unk>");
    set_special(t, 1, "<s>");
    set_special(t, 2, "</s>");
    t->merge_mode = SPQ_MERGE_SCORE;
    t->byte_fallback = 1;
    t->unk_id = 0;
    t->bos_id = 1;
    t->eos_id = 2;
    t->prefix[t->n_prefix++] = 1;
    spq_tok_spm_pipeline(t);
    if (spq_tok_finish(t, err)) goto fail;
    *out = t;
    return 0;
fail:
    spq_tok_free(t);
    return -1;
}

void spq_tok_spm_pipeline(spq_tokenizer *t) {
    spq_tok_norm *nm = spq_tok_add_norm(t, SPQ_NORM_PREPEND);
    nm->a = spq_tok_memdup(SPM_SPACE, nm->na = 3);
    nm = spq_tok_add_norm(t, SPQ_NORM_REPLACE);
    nm->a = spq_tok_memdup(" ", nm->na = 1);
    nm->b = spq_tok_memdup(SPM_SPACE, nm->nb = 3);

    spq_tok_dec *d = spq_tok_add_dec(t, SPQ_DEC_REPLACE);
    d->a = spq_tok_memdup(SPM_SPACE, d->na = 3);
    d->b = spq_tok_memdup(" ", d->nb = 1);
    spq_tok_add_dec(t, SPQ_DEC_BYTEFALLBACK);
    spq_tok_add_dec(t, SPQ_DEC_FUSE);
    d = spq_tok_add_dec(t, SPQ_DEC_STRIP);
    d->a = spq_tok_memdup(" ", d->na = 1);
    d->start = 1;
}
