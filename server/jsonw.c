/* jsonw.c - see jsonw.h. */
#include "server/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/util.h"

static void put(jw *w, const char *s, size_t n) {
    if (w->len + n + 1 > w->cap) {
        w->cap = (w->len + n + 1) * 2 + 4096;
        w->p = spq_realloc(w->p, w->cap);
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = 0;
}

static void sep(jw *w) {
    if (w->need_comma) put(w, ",", 1);
    w->need_comma = 1;
}

void jw_free(jw *w) {
    free(w->p);
    memset(w, 0, sizeof *w);
}

char *jw_take(jw *w, size_t *len) {
    if (!w->p) put(w, "", 0);
    char *p = w->p;
    if (len) *len = w->len;
    memset(w, 0, sizeof *w);
    return p;
}

void jw_obj(jw *w) {
    sep(w);
    put(w, "{", 1);
    w->need_comma = 0;
}

void jw_end(jw *w) {
    put(w, "}", 1);
    w->need_comma = 1;
}

void jw_arr(jw *w) {
    sep(w);
    put(w, "[", 1);
    w->need_comma = 0;
}

void jw_arr_end(jw *w) {
    put(w, "]", 1);
    w->need_comma = 1;
}

static void str_body(jw *w, const char *s) {
    put(w, "\"", 1);
    const char *run = s;
    for (const char *c = s; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (u >= 0x20 && u != '"' && u != '\\') continue;
        put(w, run, (size_t)(c - run));
        char esc[8];
        if (u == '"') put(w, "\\\"", 2);
        else if (u == '\\') put(w, "\\\\", 2);
        else if (u == '\n') put(w, "\\n", 2);
        else if (u == '\t') put(w, "\\t", 2);
        else {
            snprintf(esc, sizeof esc, "\\u%04x", u);
            put(w, esc, 6);
        }
        run = c + 1;
    }
    put(w, run, strlen(run));
    put(w, "\"", 1);
}

void jw_key(jw *w, const char *k) {
    sep(w);
    str_body(w, k);
    put(w, ":", 1);
    w->need_comma = 0;
}

void jw_str(jw *w, const char *s) {
    if (!s) {
        jw_null(w);
        return;
    }
    sep(w);
    str_body(w, s);
}

void jw_int(jw *w, int64_t v) {
    char b[32];
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    sep(w);
    put(w, b, (size_t)n);
}

void jw_num(jw *w, double v, int digits) {
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    char b[40];
    int n = snprintf(b, sizeof b, "%.*g", digits, v);
    sep(w);
    put(w, b, (size_t)n);
    if (!strpbrk(b, ".eE")) put(w, ".0", 2); /* stays a real for readers that care */
}

void jw_fixed(jw *w, double v, int decimals) {
    if (!isfinite(v)) {
        jw_null(w);
        return;
    }
    char b[64];
    int n;
    double scale = 1;
    for (int i = 0; i < decimals; i++) scale *= 10;
    if (decimals >= 0 && decimals <= 9 && fabs(v) * scale < 9e15) {
        /* integer arithmetic: printf's exact float formatting is the slow part of a listing */
        long long x = llround(fabs(v) * scale), p10 = (long long)scale;
        n = snprintf(b, sizeof b, "%s%lld", v < 0 ? "-" : "", x / p10);
        if (decimals) {
            b[n++] = '.';
            long long frac = x % p10;
            for (int i = decimals - 1; i >= 0; i--) {
                b[n + i] = (char)('0' + frac % 10);
                frac /= 10;
            }
            n += decimals;
        }
    } else {
        n = snprintf(b, sizeof b, "%.*f", decimals, v);
    }
    sep(w);
    put(w, b, (size_t)n);
}

void jw_bool(jw *w, int v) {
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(jw *w) {
    sep(w);
    put(w, "null", 4);
}

void jw_raw(jw *w, const char *json, size_t n) {
    sep(w);
    put(w, json, n);
}
