/* textprep.c - see textprep.h. */
#include "textprep.h"

#include <string.h>

#include "pytext.h"
#include "util.h"

long spq_text_count_rows(const char *text, size_t len) {
    long n = 0;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    return n + (len > 0 && text[len - 1] != '\n');
}

char *spq_text_join_rows(const char *text, size_t len, size_t *out_len) {
    long rows = spq_text_count_rows(text, len);
    char *out = spq_malloc(len + 2 * (size_t)(rows > 0 ? rows : 0) + 1), *o = out;
    size_t i = 0;
    for (long r = 0; r < rows; r++) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) + 1 : len; /* the row keeps its newline */
        if (r > 0) *o++ = '\n', *o++ = '\n';
        if (spq_py_lstrip_off(text + i, end - i) < end - i) {
            memcpy(o, text + i, end - i);
            o += end - i;
        }
        i = end;
    }
    *o = 0;
    *out_len = (size_t)(o - out);
    return out;
}
