/* jsonw.h - a small JSON text writer for the hot read paths (a page of
 * runs), where building a jansson tree and dumping it costs more than the
 * query. Values are appended in order; the writer inserts the commas.
 * Strings are escaped; jw_raw appends text that already is JSON. */
#ifndef SPQD_JSONW_H
#define SPQD_JSONW_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *p;
    size_t len, cap;
    int need_comma;
} jw;

void jw_free(jw *w);
/* Hands the text over (NUL-terminated); w is empty after. */
char *jw_take(jw *w, size_t *len);
void jw_obj(jw *w);   /* { */
void jw_end(jw *w);   /* } */
void jw_arr(jw *w);   /* [ */
void jw_arr_end(jw *w);
void jw_key(jw *w, const char *k);
void jw_str(jw *w, const char *s); /* NULL writes null */
void jw_int(jw *w, int64_t v);
void jw_num(jw *w, double v, int digits); /* non-finite writes null */
void jw_fixed(jw *w, double v, int decimals); /* "%.*f"; timestamps */
void jw_bool(jw *w, int v);
void jw_null(jw *w);
void jw_raw(jw *w, const char *json, size_t n);

#endif
