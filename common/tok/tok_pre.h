/* tok_pre.h - text before BPE: normalizers and pre-tokenizers of a
 * tokenizer.json (the subset LLaMA-family tokenizers use), see tok_pre.c. */
#ifndef SPQ_TOK_PRE_H
#define SPQ_TOK_PRE_H

#include "tok_internal.h"

/* A list of words: spans of one growing byte buffer (offsets, so the buffer
 * may move while steps append rewritten text). */
typedef struct {
    size_t off;
    int len;
} spq_span;

typedef struct {
    char *buf;
    size_t len, cap;
    spq_span *w;
    int n, cap_w;
} spq_words;

void spq_words_free(spq_words *ws);
/* Appends bytes to the buffer; returns their offset. */
size_t spq_words_append(spq_words *ws, const char *s, size_t n);
void spq_words_add(spq_words *ws, size_t off, int len);

/* Applies the normalizer steps to s[0..n); the result is appended to ws->buf
 * and returned as a span. */
spq_span spq_tok_normalize(const spq_tokenizer *t, spq_words *ws, const char *s, size_t n);

/* Runs the pre-tokenizer steps on one normalized section (a span of
 * ws->buf): on return ws->w lists the words. section_index is the index of
 * the section among all sections of the text, added tokens included (the
 * Metaspace "first" prepend scheme needs it). */
int spq_tok_pretokenize(const spq_tokenizer *t, spq_words *ws, spq_span section, int section_index, spq_err *err);

#endif
