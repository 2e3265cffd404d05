/* pytext.h - the few Python string semantics lm-evaluation-harness's text
 * handling depends on, on UTF-8 bytes: str.isspace (which is also what re's
 * \s matches), rstrip/strip, len() in code points, and
 * len(re.split(r"\s+", s)) for word counts. Inputs are valid UTF-8 (the
 * readers check); a stray byte counts as one character. */
#ifndef SPQ_PYTEXT_H
#define SPQ_PYTEXT_H

#include <stddef.h>
#include <stdint.h>

/* Decodes the code point at s[*i] (i < n) and advances *i. */
uint32_t spq_utf8_decode(const char *s, size_t n, size_t *i);

/* Python's str.isspace for one code point. */
int spq_py_isspace(uint32_t cp);

/* Length of s[0..n) after str.rstrip(). */
size_t spq_py_rstrip_len(const char *s, size_t n);
/* Offset of the first character str.lstrip() keeps. */
size_t spq_py_lstrip_off(const char *s, size_t n);

/* len(s) in code points. */
long spq_py_len(const char *s, size_t n);

/* len(re.split(r"\s+", s)): maximal whitespace runs + 1, lm-eval's word
 * count for word perplexity. */
long spq_py_count_words(const char *s, size_t n);

#endif
