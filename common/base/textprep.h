/* textprep.h - how a perplexity text is put together before tokenizing.
 *
 * A file is used as it is, except for the reference WikiText-2 protocol
 * (GPTQ, QuaRot, SpinQuant): the Hugging Face dataset's rows joined with
 * "\n\n". The HF rows of wikitext-*-raw are the raw file's lines, each with
 * its newline, and "" for a line that is blank (only white space), so
 * spq_text_join_rows turns the raw file into exactly the string those
 * papers tokenize. */
#ifndef SPQ_TEXTPREP_H
#define SPQ_TEXTPREP_H

#include <stddef.h>

/* "\n\n".join(rows) of text's lines as HF rows; returns a malloc'd
 * NUL-terminated string and its length in *out_len. */
char *spq_text_join_rows(const char *text, size_t len, size_t *out_len);

/* Number of rows (lines; a last line without newline counts). */
long spq_text_count_rows(const char *text, size_t len);

#endif
