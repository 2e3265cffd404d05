/* pytext.c - see pytext.h. */
#include "pytext.h"

uint32_t spq_utf8_decode(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[*i];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || *i + len > n) {
        (*i)++;
        return c;
    }
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k < len; k++) {
        if ((u[*i + k] & 0xC0) != 0x80) {
            (*i)++;
            return c;
        }
        cp = (cp << 6) | (u[*i + k] & 0x3F);
    }
    *i += len;
    return cp;
}

int spq_py_isspace(uint32_t cp) {
    if (cp <= 0x7F) return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* start of the code point that ends at s[end-1] */
static size_t prev_start(const char *s, size_t end) {
    size_t i = end - 1;
    int k = 0;
    while (i > 0 && k < 3 && ((unsigned char)s[i] & 0xC0) == 0x80) i--, k++;
    return i;
}

size_t spq_py_rstrip_len(const char *s, size_t n) {
    while (n > 0) {
        size_t st = prev_start(s, n), j = st;
        uint32_t cp = spq_utf8_decode(s, n, &j);
        if (j != n) st = n - 1, cp = (unsigned char)s[n - 1]; /* not a whole character: a stray byte */
        if (!spq_py_isspace(cp)) break;
        n = st;
    }
    return n;
}

size_t spq_py_lstrip_off(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        if (!spq_py_isspace(spq_utf8_decode(s, n, &j))) break;
        i = j;
    }
    return i;
}

long spq_py_len(const char *s, size_t n) {
    long k = 0;
    for (size_t i = 0; i < n; k++) spq_utf8_decode(s, n, &i);
    return k;
}

long spq_py_count_words(const char *s, size_t n) {
    long runs = 0;
    int in_space = 0;
    for (size_t i = 0; i < n;) {
        int sp = spq_py_isspace(spq_utf8_decode(s, n, &i));
        if (sp && !in_space) runs++;
        in_space = sp;
    }
    return runs + 1;
}
