/* tok_utf8.c - the UTF-8 rules the tokenizer needs: character length,
 * validation with the offset of the first bad byte (encode rejects invalid
 * text), and the WHATWG TextDecoder replacement of ill-formed sequences by
 * U+FFFD (decode always returns valid UTF-8, as the JS reference does). */
#include <string.h>

#include "tok_internal.h"

int spq_utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

/* Length of the well-formed character at s[0..n), or 0 when ill-formed.
 * *bad gets the length of the maximal ill-formed subpart (>= 1). */
static int utf8_char(const unsigned char *s, size_t n, int *bad) {
    unsigned c = s[0];
    int need;
    unsigned lo = 0x80, hi = 0xBF;
    *bad = 1;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c == 0xED) need = 2, hi = 0x9F;  /* no surrogates */
    else if (c >= 0xE1 && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;  /* no overlong 4-byte forms */
    else if (c == 0xF4) need = 3, hi = 0x8F;  /* nothing above U+10FFFF */
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else return 0;
    size_t j = 1;
    for (int k = 0; k < need; k++, j++) {
        if (j >= n || s[j] < lo || s[j] > hi) {
            *bad = (int)j;
            return 0;
        }
        lo = 0x80, hi = 0xBF;
    }
    return need + 1;
}

long spq_utf8_check(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        int bad, k = utf8_char(s + i, n - i, &bad);
        if (!k) return (long)i;
        i += k;
    }
    return -1;
}

static void append(char **out, size_t *len, size_t *cap, const void *s, size_t n) {
    if (*len + n + 1 > *cap) {
        while (*len + n + 1 > *cap) *cap = *cap ? *cap * 2 : 64;
        *out = spq_realloc(*out, *cap);
    }
    memcpy(*out + *len, s, n);
    *len += n;
    (*out)[*len] = 0;
}

void spq_utf8_sanitize_append(char **out, size_t *len, size_t *cap, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;  /* s[run..i) is valid and not yet copied */
    while (i < n) {
        int bad, k = utf8_char(s + i, n - i, &bad);
        if (k) {
            i += k;
            continue;
        }
        append(out, len, cap, s + run, i - run);
        append(out, len, cap, "\xEF\xBF\xBD", 3);
        i += bad;
        run = i;
    }
    append(out, len, cap, s + run, n - run);
}
