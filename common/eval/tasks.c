/* tasks.c - see tasks.h.
 *
 * Moving parts: a loader walks the file line by line (jsonl readers parse
 * each non-blank line with jansson and hand the object to the task's item
 * function; the HellaSwag text and TinyStories readers group lines
 * themselves). An item function either adds an item or explains in `why`
 * what is wrong; the loader turns that into "FILE:LINE: why" and, per the
 * caller's choice, fails or skips the item and keeps the message. Labels
 * files are read up front and indexed by the data line's rank among the
 * non-blank lines. */
#include "tasks.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/pytext.h"

#define MAX_SKIP_LOG 20
#define WHY_CAP 256

typedef struct {
    spq_task *t;
    const char *path;
    int skip_bad;
    spq_err *err;
    char **labels;   /* (n_labels) label lines, or NULL */
    long n_labels;
    char *labels_path;
    long cap;
} loader;

typedef int (*item_fn)(loader *L, json_t *o, long line, long idx, char *why);

/* ---- items ---- */

static spq_task_item *new_item(loader *L, int n, long line) {
    spq_task *t = L->t;
    if (t->n_items == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 256;
        t->items = spq_realloc(t->items, L->cap * sizeof *t->items);
    }
    spq_task_item *it = &t->items[t->n_items++];
    it->n = n;
    it->ctx = spq_calloc(n, sizeof(char *));
    it->cont = spq_calloc(n, sizeof(char *));
    it->chars = spq_calloc(n, sizeof(long));
    it->gold = 0;
    it->line = line;
    return it;
}

static char *cat2(const char *a, size_t la, const char *b, size_t lb) {
    char *s = spq_malloc(la + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    s[la + lb] = 0;
    return s;
}

/* a multiple-choice item: one context, continuation = delim + choice */
static void add_mc(loader *L, long line, const char *ctx, const char *const *choices, int n, const char *delim,
                   int gold) {
    spq_task_item *it = new_item(L, n, line);
    for (int i = 0; i < n; i++) {
        it->ctx[i] = spq_strdup(ctx);
        it->cont[i] = cat2(delim, strlen(delim), choices[i], strlen(choices[i]));
        it->chars[i] = spq_py_len(choices[i], strlen(choices[i]));
    }
    it->gold = gold;
}

static void add_cloze(loader *L, long line, const char *ctx, size_t lc, const char *word, size_t lw) {
    spq_task_item *it = new_item(L, 1, line);
    it->ctx[0] = cat2(ctx, lc, "", 0);
    it->cont[0] = cat2(" ", 1, word, lw);
    it->chars[0] = spq_py_len(word, lw);
    it->gold = 0;
}

static void item_free(spq_task_item *it) {
    for (int i = 0; i < it->n; i++) {
        free(it->ctx[i]);
        free(it->cont[i]);
    }
    free(it->ctx);
    free(it->cont);
    free(it->chars);
}

void spq_task_free(spq_task *t) {
    for (long i = 0; i < t->n_items; i++) item_free(&t->items[i]);
    free(t->items);
    free(t->name);
    free(t->format);
    free(t->path);
    free(t->skipped);
    memset(t, 0, sizeof *t);
}

/* ---- bad items ---- */

/* Reports a bad item: fails (returns -1) or logs and skips (returns 0). */
static int bad(loader *L, long line, const char *why) {
    if (!L->skip_bad) return spq_fail(L->err, "%s:%ld: %s", L->path, line, why);
    spq_task *t = L->t;
    if (t->n_skipped < MAX_SKIP_LOG) {
        char msg[WHY_CAP + 512];
        int k = snprintf(msg, sizeof msg, "%s:%ld: %s\n", L->path, line, why);
        size_t old = t->skipped ? strlen(t->skipped) : 0;
        t->skipped = spq_realloc(t->skipped, old + (size_t)k + 1);
        memcpy(t->skipped + old, msg, (size_t)k + 1);
    }
    t->n_skipped++;
    return 0;
}

static int whyf(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int whyf(char *why, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, WHY_CAP, fmt, ap);
    va_end(ap);
    return 1;
}

/* ---- lines ---- */

typedef struct {
    const char *s;
    size_t n;
    long no;
} line_t;

static int next_line(const char *buf, size_t len, size_t *off, long *no, line_t *ln) {
    if (*off >= len) return 0;
    const char *s = buf + *off, *e = memchr(s, '\n', len - *off);
    size_t n = e ? (size_t)(e - s) : len - *off;
    *off += n + (e ? 1 : 0);
    ln->s = s;
    ln->no = ++*no;
    if (n > 0 && s[n - 1] == '\r') n--;
    ln->n = n;
    return 1;
}

static int is_blank(const line_t *ln) {
    return spq_py_lstrip_off(ln->s, ln->n) == ln->n;
}

/* checks bytes a text line must not have; 1 with why when bad */
static int check_text(const line_t *ln, char *why) {
    if (memchr(ln->s, 0, ln->n)) return whyf(why, "contains a NUL byte");
    if (!spq_utf8_valid(ln->s, ln->n)) return whyf(why, "invalid UTF-8");
    return 0;
}

/* ---- JSON fields ---- */

static const char *get_str(json_t *o, const char *key, char *why) {
    json_t *v = json_object_get(o, key);
    if (!v) return whyf(why, "missing field \"%s\"", key), NULL;
    if (!json_is_string(v)) return whyf(why, "field \"%s\" is not a string", key), NULL;
    return json_string_value(v);
}

/* an integer given as a JSON integer or a string of digits */
static int parse_int_text(const char *s, long *out) {
    while (*s == ' ' || *s == '\t') s++;
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s) return -1;
    while (*end == ' ' || *end == '\t' || *end == '\r') end++;
    if (*end) return -1;
    *out = v;
    return 0;
}

static int json_int(json_t *v, long *out) {
    if (json_is_integer(v)) return *out = (long)json_integer_value(v), 0;
    if (json_is_string(v)) return parse_int_text(json_string_value(v), out);
    return -1;
}

/* the label of item idx: from field `key` of o if present, else the labels
 * file; 1 with why when missing or malformed */
static int get_label(loader *L, json_t *o, const char *key, long idx, long *out, char *why) {
    json_t *v = key ? json_object_get(o, key) : NULL;
    if (v) {
        if (json_int(v, out)) return whyf(why, "field \"%s\" is not an integer", key);
        return 0;
    }
    if (!L->labels) return whyf(why, "missing field \"%s\" and no labels file", key ? key : "label");
    if (idx >= L->n_labels) return whyf(why, "no label in %s for item %ld", L->labels_path, idx + 1);
    if (parse_int_text(L->labels[idx], out))
        return whyf(why, "%s:%ld: label '%.40s' is not an integer", L->labels_path, idx + 1, L->labels[idx]);
    return 0;
}

static int nonempty_choice(const char *s, int i, char *why) {
    if (!s) return 1;
    if (!*s) return whyf(why, "choice %d is empty", i + 1);
    return 0;
}

/* ---- the tasks ---- */

/* ARC and OpenBookQA: question.stem + question.choices[{text,label}] +
 * answerKey, or HF's flat question/question_stem + choices{text[],label[]} */
static int arc_like(loader *L, json_t *o, long line, char *why, int obqa) {
    json_t *q = json_object_get(o, "question"), *ch;
    const char *stem;
    if (json_is_object(q)) {
        if (!(stem = get_str(q, "stem", why))) return 1;
        ch = json_object_get(q, "choices");
    } else {
        if (!(stem = get_str(o, obqa && json_object_get(o, "question_stem") ? "question_stem" : "question", why)))
            return 1;
        ch = json_object_get(o, "choices");
    }
    const char *key = get_str(o, "answerKey", why);
    if (!key) return 1;
    while (spq_py_isspace((unsigned char)*key)) key++; /* answerKey.lstrip() */
    if (!ch) return whyf(why, "missing field \"choices\"");
    json_t *texts = NULL, *labels = NULL;
    size_t n;
    if (json_is_array(ch)) n = json_array_size(ch);
    else if (json_is_object(ch) && json_is_array(texts = json_object_get(ch, "text")) &&
             json_is_array(labels = json_object_get(ch, "label")) && json_array_size(texts) == json_array_size(labels))
        n = json_array_size(texts);
    else return whyf(why, "field \"choices\" is neither a list nor {text: [...], label: [...]}");
    if (n == 0) return whyf(why, "no choices");
    const char **text = spq_malloc(n * sizeof *text);
    int gold = -1, rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *t, *lab;
        if (texts) {
            json_t *a = json_array_get(texts, i), *b = json_array_get(labels, i);
            t = json_is_string(a) ? json_string_value(a) : NULL;
            lab = json_is_string(b) ? json_string_value(b) : NULL;
            if (!t || !lab) rc = whyf(why, "choice %zu: text and label must be strings", i + 1);
        } else {
            json_t *c = json_array_get(ch, i);
            if (!json_is_object(c)) {
                rc = whyf(why, "choice %zu is not an object", i + 1);
                break;
            }
            t = get_str(c, "text", why);
            lab = t ? get_str(c, "label", why) : NULL;
            if (!t || !lab) rc = 1;
        }
        if (!rc) rc = nonempty_choice(t, (int)i, why);
        if (rc) break;
        text[i] = t;
        if (gold < 0 && !strcmp(lab, key)) gold = (int)i;
    }
    if (!rc && gold < 0) rc = whyf(why, "answerKey '%.20s' is not one of the choice labels", key);
    if (!rc) {
        if (obqa) add_mc(L, line, stem, text, (int)n, " ", gold);
        else {
            size_t ls = strlen(stem);
            char *ctx = spq_malloc(ls + 32);
            snprintf(ctx, ls + 32, "Question: %s\nAnswer:", stem);
            add_mc(L, line, ctx, text, (int)n, " ", gold);
            free(ctx);
        }
    }
    free(text);
    return rc;
}

static int arc_item(loader *L, json_t *o, long line, long idx, char *why) {
    (void)idx;
    return arc_like(L, o, line, why, 0);
}

static int obqa_item(loader *L, json_t *o, long line, long idx, char *why) {
    (void)idx;
    return arc_like(L, o, line, why, 1);
}

static int piqa_item(loader *L, json_t *o, long line, long idx, char *why) {
    const char *goal = get_str(o, "goal", why), *s[2];
    if (!goal || !(s[0] = get_str(o, "sol1", why)) || !(s[1] = get_str(o, "sol2", why))) return 1;
    if (nonempty_choice(s[0], 0, why) || nonempty_choice(s[1], 1, why)) return 1;
    long lab;
    if (get_label(L, o, "label", idx, &lab, why)) return 1;
    if (lab < 0 || lab > 1) return whyf(why, "label %ld is not 0 or 1", lab);
    size_t n = strlen(goal) + 32;
    char *ctx = spq_malloc(n);
    snprintf(ctx, n, "Question: %s\nAnswer:", goal);
    add_mc(L, line, ctx, s, 2, " ", (int)lab);
    free(ctx);
    return 0;
}

static int boolq_item(loader *L, json_t *o, long line, long idx, char *why) {
    (void)idx;
    const char *q = get_str(o, "question", why), *p = q ? get_str(o, "passage", why) : NULL;
    if (!q || !p) return 1;
    json_t *v = json_object_get(o, "label");
    if (!v) v = json_object_get(o, "answer");
    int yes;
    if (!v) return whyf(why, "missing field \"label\" (or \"answer\")");
    if (json_is_boolean(v)) yes = json_is_true(v);
    else if (json_is_string(v) && !strcmp(json_string_value(v), "true")) yes = 1;
    else if (json_is_string(v) && !strcmp(json_string_value(v), "false")) yes = 0;
    else if (json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1))
        yes = (int)json_integer_value(v);
    else return whyf(why, "label is not true/false, \"true\"/\"false\" or 0/1");
    size_t n = strlen(q) + strlen(p) + 32;
    char *ctx = spq_malloc(n);
    snprintf(ctx, n, "%s\nQuestion: %s?\nAnswer:", p, q);
    static const char *const yn[2] = {"no", "yes"};
    add_mc(L, line, ctx, yn, 2, " ", yes);
    free(ctx);
    return 0;
}

static int siqa_item(loader *L, json_t *o, long line, long idx, char *why) {
    const char *c = get_str(o, "context", why), *q = c ? get_str(o, "question", why) : NULL, *a[3];
    if (!c || !q || !(a[0] = get_str(o, "answerA", why)) || !(a[1] = get_str(o, "answerB", why)) ||
        !(a[2] = get_str(o, "answerC", why)))
        return 1;
    for (int i = 0; i < 3; i++)
        if (nonempty_choice(a[i], i, why)) return 1;
    long lab;
    if (get_label(L, o, "label", idx, &lab, why)) return 1;
    if (lab < 1 || lab > 3) return whyf(why, "label %ld is not 1, 2 or 3", lab);
    size_t n = strlen(c) + strlen(q) + 16;
    char *ctx = spq_malloc(n);
    snprintf(ctx, n, "Q: %s %s\nA:", c, q);
    add_mc(L, line, ctx, a, 3, " ", (int)lab - 1);
    free(ctx);
    return 0;
}

static int winogrande_item(loader *L, json_t *o, long line, long idx, char *why) {
    const char *s = get_str(o, "sentence", why), *opt[2];
    if (!s || !(opt[0] = get_str(o, "option1", why)) || !(opt[1] = get_str(o, "option2", why))) return 1;
    for (int i = 0; i < 2; i++)
        if (nonempty_choice(opt[i], i, why)) return 1;
    const char *blank = strchr(s, '_');
    if (!blank) return whyf(why, "the sentence has no blank '_'");
    long lab;
    if (get_label(L, o, "answer", idx, &lab, why)) return 1;
    if (lab < 1 || lab > 2) return whyf(why, "answer %ld is not 1 or 2", lab);
    /* continuation: " " + sentence[blank+1:].strip() */
    const char *rest = blank + 1;
    size_t lr = strlen(rest), off = spq_py_lstrip_off(rest, lr);
    size_t end = spq_py_rstrip_len(rest, lr);
    if (end <= off) return whyf(why, "nothing after the blank to score");
    spq_task_item *it = new_item(L, 2, line);
    for (int i = 0; i < 2; i++) {
        it->ctx[i] = cat2(s, (size_t)(blank - s), opt[i], strlen(opt[i]));
        it->cont[i] = cat2(" ", 1, rest + off, end - off);
        it->chars[i] = spq_py_len(rest + off, end - off);
    }
    it->gold = (int)lab - 1;
    return 0;
}

static int lambada_item(loader *L, json_t *o, long line, long idx, char *why) {
    (void)idx;
    const char *text = get_str(o, "text", why);
    if (!text) return 1;
    const char *sp = strrchr(text, ' ');
    if (!sp) return whyf(why, "the text has no space before a last word");
    if (!sp[1]) return whyf(why, "the last word is empty (text ends with a space)");
    if (sp == text) return whyf(why, "the context before the last word is empty");
    add_cloze(L, line, text, (size_t)(sp - text), sp + 1, strlen(sp + 1));
    return 0;
}

static int jsonl_item(loader *L, json_t *o, long line, long idx, char *why) {
    (void)idx;
    const char *ctx = get_str(o, "context", why);
    if (!ctx) return 1;
    json_t *ch = json_object_get(o, "choices"), *d = json_object_get(o, "delimiter");
    if (!json_is_array(ch)) return whyf(why, ch ? "field \"choices\" is not a list" : "missing field \"choices\"");
    size_t n = json_array_size(ch);
    if (n == 0) return whyf(why, "no choices");
    if (d && !json_is_string(d)) return whyf(why, "field \"delimiter\" is not a string");
    long gold;
    json_t *g = json_object_get(o, "gold");
    if (!g) return whyf(why, "missing field \"gold\"");
    if (json_int(g, &gold)) return whyf(why, "field \"gold\" is not an integer");
    if (gold < 0 || (size_t)gold >= n) return whyf(why, "gold %ld is out of range for %zu choices", gold, n);
    const char **text = spq_malloc(n * sizeof *text);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *c = json_array_get(ch, i);
        if (!json_is_string(c)) rc = whyf(why, "choice %zu is not a string", i + 1);
        else rc = nonempty_choice(text[i] = json_string_value(c), (int)i, why);
    }
    if (!rc) add_mc(L, line, ctx, text, (int)n, d ? json_string_value(d) : " ", (int)gold);
    free(text);
    return rc;
}

/* ---- HellaSwag ---- */

char *spq_hellaswag_preprocess(const char *text, size_t len) {
    size_t a = spq_py_lstrip_off(text, len), b = spq_py_rstrip_len(text, len);
    if (b < a) b = a;
    const char *s = text + a;
    size_t n = b - a;
    /* " [title]" -> ". " */
    char *t1 = spq_malloc(2 * n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (i + 8 <= n && !memcmp(s + i, " [title]", 8)) {
            t1[k++] = '.', t1[k++] = ' ';
            i += 8;
        } else t1[k++] = s[i++];
    }
    /* re.sub("\[.*?\]", "", ...): '[' up to the first ']' after it (no
     * newlines in a line, so '.' matches everything here) */
    char *t2 = spq_malloc(k + 1);
    size_t m = 0;
    for (size_t i = 0; i < k;) {
        if (t1[i] == '[') {
            const char *close = memchr(t1 + i + 1, ']', k - i - 1);
            if (close) {
                i = (size_t)(close - t1) + 1;
                continue;
            }
        }
        t2[m++] = t1[i++];
    }
    /* "  " -> " ", non-overlapping, left to right */
    size_t w = 0;
    for (size_t i = 0; i < m;) {
        if (i + 1 < m && t2[i] == ' ' && t2[i + 1] == ' ') {
            t1[w++] = ' ';
            i += 2;
        } else t1[w++] = t2[i++];
    }
    t1[w] = 0;
    free(t2);
    return t1;
}

/* capitalize a trailing unfinished sentence starting lowercase (ctx_b) */
static void hellaswag_capitalize_tail(char *s) {
    const char *colon = strstr(s, ": ");
    size_t start = colon ? (size_t)(colon - s) + 2 : 0, n = strlen(s);
    for (size_t i = start; i + 1 < n; i++)
        if ((s[i] == '.' || s[i] == '!' || s[i] == '?') && s[i + 1] == ' ') start = i + 2;
    if (start >= n || s[start] < 'a' || s[start] > 'z') return;
    if (strpbrk(s + start, ".!?")) return;
    s[start] = (char)(s[start] - 'a' + 'A');
    for (size_t i = start + 1; i < n; i++)
        if (s[i] >= 'A' && s[i] <= 'Z') s[i] = (char)(s[i] - 'A' + 'a');
}

static int hellaswag_json_item(loader *L, json_t *o, long line, long idx, char *why) {
    const char *act = get_str(o, "activity_label", why), *ca = act ? get_str(o, "ctx_a", why) : NULL,
               *cb = ca ? get_str(o, "ctx_b", why) : NULL;
    if (!act || !ca || !cb) return 1;
    json_t *e = json_object_get(o, "endings");
    if (!json_is_array(e)) return whyf(why, e ? "field \"endings\" is not a list" : "missing field \"endings\"");
    size_t n = json_array_size(e);
    if (n == 0) return whyf(why, "no endings");
    long lab;
    if (get_label(L, o, "label", idx, &lab, why)) return 1;
    if (lab < 0 || (size_t)lab >= n) return whyf(why, "label %ld is out of range for %zu endings", lab, n);
    /* ctx_b.capitalize(): first character upper, the rest lower (ASCII) */
    char *cap = spq_strdup(cb);
    for (char *p = cap; *p; p++) {
        if (p == cap && *p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
        else if (p != cap && *p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    }
    size_t lq = strlen(act) + strlen(ca) + strlen(cap) + 8;
    char *q = spq_malloc(lq);
    int lqn = snprintf(q, lq, "%s: %s %s", act, ca, cap);
    char *ctx = spq_hellaswag_preprocess(q, (size_t)lqn);
    free(q);
    free(cap);
    char **end = spq_calloc(n, sizeof *end);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *x = json_array_get(e, i);
        if (!json_is_string(x)) rc = whyf(why, "ending %zu is not a string", i + 1);
        else {
            end[i] = spq_hellaswag_preprocess(json_string_value(x), strlen(json_string_value(x)));
            rc = nonempty_choice(end[i], (int)i, why);
        }
    }
    if (!rc) add_mc(L, line, ctx, (const char *const *)end, (int)n, " ", (int)lab);
    for (size_t i = 0; i < n; i++) free(end[i]);
    free(end);
    free(ctx);
    return rc;
}

static int read_hellaswag_text(loader *L, const char *buf, size_t len) {
    /* drop trailing blank lines, then 6 lines per item */
    line_t *lines = NULL;
    long n = 0, cap = 0, no = 0;
    size_t off = 0;
    line_t ln;
    while (next_line(buf, len, &off, &no, &ln)) {
        if (n == cap) lines = spq_realloc(lines, (cap = cap ? 2 * cap : 1024) * sizeof *lines);
        lines[n++] = ln;
    }
    while (n > 0 && is_blank(&lines[n - 1])) n--;
    int rc = 0;
    char why[WHY_CAP];
    for (long i = 0; i < n && !rc; i += 6) {
        long line = lines[i].no;
        int bad_item = 0;
        if (n - i < 6) bad_item = whyf(why, "incomplete item: %ld of 6 lines (context, label, 4 endings)", n - i);
        for (long j = i; j < i + 6 && j < n && !bad_item; j++)
            if (check_text(&lines[j], why)) {
                line = lines[j].no;
                bad_item = 1;
            }
        long lab = -1;
        if (!bad_item) {
            char lb[32];
            size_t k = lines[i + 1].n < sizeof lb - 1 ? lines[i + 1].n : sizeof lb - 1;
            memcpy(lb, lines[i + 1].s, k);
            lb[k] = 0;
            if (parse_int_text(lb, &lab) || lab < 0 || lab > 3) {
                line = lines[i + 1].no;
                bad_item = whyf(why, "label '%.20s' is not 0-3", lb);
            }
        }
        char *ctx = NULL, *end[4] = {0};
        if (!bad_item) {
            ctx = spq_hellaswag_preprocess(lines[i].s, lines[i].n);
            hellaswag_capitalize_tail(ctx);
            if (!*ctx) bad_item = whyf(why, "empty context");
            for (int e = 0; e < 4 && !bad_item; e++) {
                end[e] = spq_hellaswag_preprocess(lines[i + 2 + e].s, lines[i + 2 + e].n);
                if (!*end[e]) {
                    line = lines[i + 2 + e].no;
                    bad_item = whyf(why, "ending %d is empty", e + 1);
                }
            }
        }
        if (bad_item) rc = bad(L, line, why);
        else add_mc(L, line, ctx, (const char *const *)end, 4, " ", (int)lab);
        free(ctx);
        for (int e = 0; e < 4; e++) free(end[e]);
    }
    free(lines);
    return rc;
}

/* ---- TinyStories cloze ---- */

static int is_trailing_punct(const char *s, size_t end, size_t *start) {
    unsigned char c = (unsigned char)s[end - 1];
    if (strchr(".,!?;:'\")]}", c) && c) {
        *start = end - 1;
        return 1;
    }
    /* ” (U+201D) and ’ (U+2019) */
    if (end >= 3 && (unsigned char)s[end - 3] == 0xE2 && (unsigned char)s[end - 2] == 0x80 &&
        (c == 0x9D || c == 0x99)) {
        *start = end - 3;
        return 1;
    }
    return 0;
}

static void tinystories_paragraph(loader *L, const char *p, size_t n, long line) {
    n = spq_py_rstrip_len(p, n);
    size_t a = spq_py_lstrip_off(p, n);
    if (spq_py_count_words(p + a, n - a) < 10) return;
    /* the last word: after the last whitespace */
    size_t ws = n;
    while (ws > a) {
        size_t j = ws - 1;
        if (spq_py_isspace((unsigned char)p[j])) break;
        ws = j;
    }
    size_t w0 = ws, w1 = n, st;
    while (w1 > w0 && is_trailing_punct(p, w1, &st)) w1 = st;
    if (w1 == w0) return;
    for (size_t i = w0; i < w1; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z'))) return;
    /* context: up to the whitespace run before the word */
    size_t ce = spq_py_rstrip_len(p + a, ws - a) + a;
    if (ce <= a) return;
    add_cloze(L, line, p + a, ce - a, p + w0, w1 - w0);
}

static int read_tinystories(loader *L, const char *buf, size_t len) {
    size_t off = 0;
    long no = 0, p_line = 0;
    line_t ln;
    const char *p_start = NULL;
    size_t p_end = 0;
    int p_bad = 0;
    char why[WHY_CAP];
    for (;;) {
        int more = next_line(buf, len, &off, &no, &ln);
        if (!more || is_blank(&ln)) {
            if (p_start && !p_bad) tinystories_paragraph(L, p_start, p_end, p_line);
            p_start = NULL;
            p_bad = 0;
            if (!more) break;
            continue;
        }
        if (check_text(&ln, why)) {
            if (bad(L, ln.no, why)) return -1;
            p_bad = 1;
        }
        if (!p_start) {
            p_start = ln.s;
            p_line = ln.no;
        }
        p_end = (size_t)(ln.s + ln.n - p_start);
    }
    return 0;
}

/* ---- jsonl driver ---- */

static int read_jsonl(loader *L, const char *buf, size_t len, item_fn fn) {
    size_t off = 0;
    long no = 0, idx = 0;
    line_t ln;
    char why[WHY_CAP];
    while (next_line(buf, len, &off, &no, &ln)) {
        if (is_blank(&ln)) continue;
        long my = idx++;
        if (check_text(&ln, why)) {
            if (bad(L, ln.no, why)) return -1;
            continue;
        }
        json_error_t je;
        json_t *o = json_loadb(ln.s, ln.n, 0, &je);
        if (!o || !json_is_object(o)) {
            if (o) whyf(why, "not a JSON object");
            else whyf(why, "malformed JSON: %s (column %d)", je.text, je.column);
            json_decref(o);
            if (bad(L, ln.no, why)) return -1;
            continue;
        }
        int r = fn(L, o, ln.no, my, why);
        json_decref(o);
        if (r && bad(L, ln.no, why)) return -1;
    }
    if (L->labels && L->n_labels != idx)
        return spq_fail(L->err, "%s: %ld labels for the %ld items of %s", L->labels_path, L->n_labels, idx, L->path);
    return 0;
}

/* ---- the table ---- */

typedef struct {
    const char *format;
    item_fn fn;         /* jsonl item function, or NULL for a text reader */
    int (*text)(loader *L, const char *buf, size_t len);
    spq_task_kind kind;
    int acc_norm;
    int labels;         /* looks for STEM-labels.lst */
} task_def;

static const task_def defs[] = {
    {"arc_easy", arc_item, NULL, SPQ_TASK_CHOICE, 1, 0},
    {"arc_challenge", arc_item, NULL, SPQ_TASK_CHOICE, 1, 0},
    {"piqa", piqa_item, NULL, SPQ_TASK_CHOICE, 1, 1},
    {"hellaswag", hellaswag_json_item, read_hellaswag_text, SPQ_TASK_CHOICE, 1, 0},
    {"winogrande", winogrande_item, NULL, SPQ_TASK_CHOICE, 0, 1},
    {"boolq", boolq_item, NULL, SPQ_TASK_CHOICE, 0, 0},
    {"openbookqa", obqa_item, NULL, SPQ_TASK_CHOICE, 1, 0},
    {"siqa", siqa_item, NULL, SPQ_TASK_CHOICE, 0, 1},
    {"lambada", lambada_item, NULL, SPQ_TASK_CLOZE, 0, 0},
    {"tinystories_cloze", NULL, read_tinystories, SPQ_TASK_CLOZE, 0, 0},
    {"jsonl", jsonl_item, NULL, SPQ_TASK_CHOICE, 1, 0},
};

const char *const spq_task_formats[] = {"arc_easy", "arc_challenge", "piqa",   "hellaswag",         "winogrande",
                                        "boolq",    "openbookqa",    "siqa",   "lambada",           "tinystories_cloze",
                                        "jsonl",    NULL};

static const task_def *find_def(const char *format) {
    for (size_t i = 0; i < sizeof defs / sizeof *defs; i++)
        if (!strcmp(defs[i].format, format)) return &defs[i];
    return NULL;
}

int spq_task_known(const char *format) {
    return find_def(format) != NULL;
}

/* STEM-labels.lst beside path (dev.jsonl -> dev-labels.lst) */
static char *labels_beside(const char *path) {
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - path) : strlen(path);
    char *s = spq_malloc(stem + 16);
    memcpy(s, path, stem);
    strcpy(s + stem, "-labels.lst");
    return s;
}

static int load_labels(loader *L, const char *path) {
    char *buf;
    size_t len;
    if (spq_read_file(&buf, &len, path, L->err)) return -1;
    size_t off = 0;
    long no = 0, cap = 0;
    line_t ln;
    while (next_line(buf, len, &off, &no, &ln)) {
        if (L->n_labels == cap) L->labels = spq_realloc(L->labels, (cap = cap ? 2 * cap : 1024) * sizeof(char *));
        char *s = spq_malloc(ln.n + 1);
        memcpy(s, ln.s, ln.n);
        s[ln.n] = 0;
        L->labels[L->n_labels++] = s;
    }
    while (L->n_labels > 0 && !L->labels[L->n_labels - 1][0]) free(L->labels[--L->n_labels]);
    free(buf);
    L->labels_path = spq_strdup(path);
    return 0;
}

int spq_task_load(spq_task *t, const char *name, const char *format, const char *path, const char *labels,
                  int skip_bad, spq_err *err) {
    memset(t, 0, sizeof *t);
    const task_def *d = find_def(format);
    if (!d) return spq_fail(err, "unknown task format '%s'", format);
    char *buf;
    size_t len;
    if (spq_read_file(&buf, &len, path, err)) return -1;
    t->name = spq_strdup(name ? name : format);
    t->format = spq_strdup(format);
    t->path = spq_strdup(path);
    t->kind = d->kind;
    t->has_acc_norm = d->acc_norm;
    loader L = {.t = t, .path = path, .skip_bad = skip_bad, .err = err};
    int rc = 0;
    if (labels) rc = load_labels(&L, labels);
    else if (d->labels) {
        char *lp = labels_beside(path);
        if (spq_file_exists(lp)) rc = load_labels(&L, lp);
        free(lp);
    }
    if (!rc) {
        /* a text reader unless the file is jsonl (HellaSwag has both) */
        size_t first = spq_py_lstrip_off(buf, len);
        int jsonl = d->fn && (!d->text || (first < len && buf[first] == '{'));
        rc = jsonl ? read_jsonl(&L, buf, len, d->fn) : d->text(&L, buf, len);
    }
    if (!rc && t->n_items == 0 && t->n_skipped) /* the skip log goes with the task: say why here */
        rc = spq_fail(err, "%s: no items: all %ld were bad, the first: %.*s", path, t->n_skipped,
                      (int)strcspn(t->skipped, "\n"), t->skipped);
    else if (!rc && t->n_items == 0) rc = spq_fail(err, "%s: no items", path);
    for (long i = 0; i < L.n_labels; i++) free(L.labels[i]);
    free(L.labels);
    free(L.labels_path);
    free(buf);
    if (rc) spq_task_free(t);
    return rc;
}
