/* tokenizer.c - the public tokenizer interface (tokenizer.h): choosing and
 * running a loader, building the lookup tables every loader shares, and the
 * encode pipeline:
 *
 *   text --(UTF-8 check)--> sections: added tokens (leftmost-longest match in
 *   the raw text) and the text between them --normalizer--> section text
 *   --pre-tokenizer--> words --BPE (tok_bpe.c)--> ids, framed by the
 *   BOS/EOS ids of the tokenizer's config when add_special is 1.
 *
 * The order of these steps, the per-section normalization and the handling
 * of lstrip/rstrip follow HF tokenizers as transformers.js implements them.
 * Decoding lives in tok_dec.c, the loaders in tok_bin.c and tok_json.c. */
#include "tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <dirent.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_model.h"
#include "packed.h"
#include "tok_internal.h"
#include "tok_pre.h"

/* ---- construction helpers shared by the loaders ---- */

char *spq_tok_memdup(const char *s, size_t n) {
    char *d = spq_malloc(n + 1);
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

spq_tokenizer *spq_tok_alloc(const char *path) {
    spq_tokenizer *t = spq_calloc(1, sizeof *t);
    t->path = spq_strdup(path);
    t->unk_id = t->bos_id = t->eos_id = -1;
    spq_strmap_init(&t->model_map);
    spq_pairmap_init(&t->merges);
    return t;
}

spq_tok_entry *spq_tok_set_entry(spq_tokenizer *t, int id, const char *text, int len, float score) {
    if (id >= t->vocab_cap) {
        int n = t->vocab_cap ? t->vocab_cap : 256;
        while (n <= id) n *= 2;
        t->vocab = spq_realloc(t->vocab, (size_t)n * sizeof *t->vocab);
        memset(t->vocab + t->vocab_cap, 0, (size_t)(n - t->vocab_cap) * sizeof *t->vocab);
        t->vocab_cap = n;
    }
    if (id >= t->n_vocab) t->n_vocab = id + 1;
    spq_tok_entry *e = &t->vocab[id];
    free(e->text);
    e->text = spq_tok_memdup(text, len);
    e->len = len;
    e->score = score;
    return e;
}

#define ADD_STEP(fn, type_t, arr, count)                                   \
    type_t *fn(spq_tokenizer *t, int type) {                               \
        t->arr = spq_realloc(t->arr, (size_t)(t->count + 1) * sizeof(type_t)); \
        type_t *s = &t->arr[t->count++];                                   \
        memset(s, 0, sizeof *s);                                           \
        s->type = type;                                                    \
        return s;                                                          \
    }
ADD_STEP(spq_tok_add_norm, spq_tok_norm, norm, n_norm)
ADD_STEP(spq_tok_add_pre, spq_tok_pre, pre, n_pre)
ADD_STEP(spq_tok_add_dec, spq_tok_dec, dec, n_dec)

static int cmp_added(const void *a, const void *b) {
    const spq_tok_added *x = a, *y = b;
    unsigned char fx = (unsigned char)x->text[0], fy = (unsigned char)y->text[0];
    if (fx != fy) return fx - fy;
    if (x->len != y->len) return y->len - x->len;
    return x->id - y->id;
}

int spq_tok_finish(spq_tokenizer *t, spq_err *err) {
    if (t->n_vocab == 0) return spq_fail(err, "%s: the vocabulary is empty", t->path);
    for (int id = 0; id < t->n_vocab; id++) {
        spq_tok_entry *e = &t->vocab[id];
        if (e->text && e->in_model) spq_strmap_put(&t->model_map, e->text, e->len, id);
    }
    for (int b = 0; b < 256; b++) {
        if (t->bytelevel) {
            char c = (char)b;
            t->byte_ids[b] = spq_strmap_get(&t->model_map, &c, 1);
        } else {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            t->byte_ids[b] = spq_strmap_get(&t->model_map, name, 6);
        }
    }
    t->n_added = 0;
    for (int id = 0; id < t->n_vocab; id++) t->n_added += t->vocab[id].added && t->vocab[id].len > 0;
    t->added = spq_calloc(t->n_added ? t->n_added : 1, sizeof *t->added);
    int k = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        const spq_tok_entry *e = &t->vocab[id];
        if (e->added && e->len > 0)
            t->added[k++] = (spq_tok_added){.id = id, .text = e->text, .len = e->len, .lstrip = e->lstrip,
                                            .rstrip = e->rstrip};
    }
    qsort(t->added, t->n_added, sizeof *t->added, cmp_added);
    memset(t->added_start, 0, sizeof t->added_start);
    for (int i = 0; i < t->n_added; i++) t->added_start[(unsigned char)t->added[i].text[0] + 1]++;
    for (int b = 0; b < 256; b++) t->added_start[b + 1] += t->added_start[b];
    int ids[] = {t->unk_id, t->bos_id, t->eos_id};
    const char *names[] = {"unk", "bos", "eos"};
    for (int i = 0; i < 3; i++)
        if (ids[i] >= t->n_vocab || (ids[i] >= 0 && !t->vocab[ids[i]].text))
            return spq_fail(err, "%s: the %s token id %d is not in the vocabulary", t->path, names[i], ids[i]);
    return 0;
}

void spq_tok_free(spq_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) free(t->vocab[i].text);
    free(t->vocab);
    spq_strmap_free(&t->model_map);
    spq_pairmap_free(&t->merges);
    free(t->added);
    for (int i = 0; i < t->n_norm; i++) free(t->norm[i].a), free(t->norm[i].b);
    for (int i = 0; i < t->n_pre; i++) {
        pcre2_code_free(t->pre[i].re);
        free(t->pre[i].repl);
        free(t->pre[i].src);
    }
    for (int i = 0; i < t->n_dec; i++) free(t->dec[i].a), free(t->dec[i].b);
    free(t->norm);
    free(t->pre);
    free(t->dec);
    free(t->path);
    free(t);
}

/* ---- loading ---- */

int spq_tok_load(spq_tokenizer **t, const char *path, spq_err *err) {
    *t = NULL;
    if (spq_is_dir(path)) {
        char *json = spq_path_join(path, "tokenizer.json");
        int rc = spq_file_exists(json) ? spq_tok_load(t, json, err)
                                       : spq_fail(err, "%s: no tokenizer.json in this directory", path);
        free(json);
        return rc;
    }
    if (spq_gguf_is_file(path)) return spq_gguf_tokenizer(t, path, err);
    FILE *f = fopen(path, "rb");
    if (!f) return spq_fail(err, "%s: cannot open the tokenizer file", path);
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\r' || c == '\t') {}
    fclose(f);
    if (c != '{') return spq_tok_load_bin(t, path, err);
    /* tokenizer.json: its tokenizer_config.json, if any, sits beside it */
    char *dir = spq_strdup(path), *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0;
    else strcpy(dir, ".");
    char *cfg = spq_path_join(dir, "tokenizer_config.json");
    int rc = spq_tok_load_json(t, path, spq_file_exists(cfg) ? cfg : NULL, err);
    free(cfg);
    free(dir);
    return rc;
}

/* A llama2.c checkpoint's tokenizer: tokenizer.bin beside it, else the one
 * tok*.bin there. */
static int find_bin_tokenizer(char **out, const char *model_path, spq_err *err) {
    char *dir = spq_strdup(model_path), *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else strcpy(dir, ".");
    char *p = spq_path_join(dir, "tokenizer.bin");
    if (spq_file_exists(p)) {
        *out = p;
        free(dir);
        return 0;
    }
    free(p);
    DIR *d = opendir(dir);
    if (!d) {
        spq_fail(err, "%s: cannot list the directory to find the tokenizer", dir);
        free(dir);
        return -1;
    }
    char *found = NULL;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len > 7 && !strncmp(e->d_name, "tok", 3) && !strcmp(e->d_name + len - 4, ".bin")) {
            n++;
            if (!found) found = spq_path_join(dir, e->d_name);
        }
    }
    closedir(d);
    int rc = 0;
    if (n == 1) *out = found;
    else {
        rc = n == 0 ? spq_fail(err, "%s: no tokenizer.bin or tok*.bin beside the checkpoint", dir)
                    : spq_fail(err, "%s: %d tok*.bin files and no tokenizer.bin: which tokenizer is meant is unclear", dir, n);
        free(found);
    }
    free(dir);
    return rc;
}

int spq_tok_files_for_model(char **tok_path, char **cfg_path, const char *model_path, spq_err *err) {
    *tok_path = *cfg_path = NULL;
    if (spq_is_dir(model_path)) {
        char *json = spq_path_join(model_path, "tokenizer.json"), *cfg = spq_path_join(model_path, "tokenizer_config.json");
        if (!spq_file_exists(json)) {
            free(json);
            free(cfg);
            return spq_fail(err, "%s: no tokenizer.json in this directory", model_path);
        }
        *tok_path = json;
        if (spq_file_exists(cfg)) *cfg_path = cfg;
        else free(cfg);
        return 0;
    }
    return find_bin_tokenizer(tok_path, model_path, err);
}

int spq_tok_load_for_model(spq_tokenizer **t, const char *model_path, spq_err *err) {
    *t = NULL;
    if (spq_is_dir(model_path)) return spq_tok_load(t, model_path, err);
    if (spq_gguf_is_file(model_path)) return spq_gguf_tokenizer(t, model_path, err);
    if (spq_packed_is_file(model_path)) return spq_packed_tokenizer(t, model_path, err);
    char *bin = NULL;
    if (find_bin_tokenizer(&bin, model_path, err)) return -1;
    int rc = spq_tok_load(t, bin, err);
    free(bin);
    return rc;
}

int spq_tok_load_mem(spq_tokenizer **t, const char *name, const char *data, size_t len, const char *cfg_name,
                     const char *cfg, size_t cfg_len, spq_err *err) {
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
    if (i < len && data[i] == '{') return spq_tok_load_json_mem(t, name, data, len, cfg_name, cfg, cfg_len, err);
    return spq_tok_load_bin_mem(t, name, data, len, err);
}

int spq_tok_vocab_size(const spq_tokenizer *t) { return t->n_vocab; }
int spq_tok_bos(const spq_tokenizer *t) { return t->bos_id; }
int spq_tok_eos(const spq_tokenizer *t) { return t->eos_id; }

/* ---- encoding ---- */

/* White space as JavaScript's trim() sees it (for lstrip / rstrip). */
static int js_space(unsigned cp) {
    return (cp >= 9 && cp <= 13) || cp == 32 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static unsigned decode_cp(const unsigned char *s, int len) {
    static const unsigned mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    unsigned cp = s[0] & mask[len];
    for (int i = 1; i < len; i++) cp = (cp << 6) | (s[i] & 0x3F);
    return cp;
}

typedef struct {
    size_t off, len;
    int added; /* id of the added token, or -1 for text */
} section;

/* Splits text into added tokens and the text between them. */
static int split_added(const spq_tokenizer *t, const char *text, size_t len, section **out) {
    int n = 0, cap = 16;
    section *s = spq_malloc(cap * sizeof *s);
    size_t start = 0, i = 0;
    while (i < len) {
        unsigned char b = (unsigned char)text[i];
        int match = -1;
        for (int k = t->added_start[b]; k < t->added_start[b + 1]; k++) {
            const spq_tok_added *a = &t->added[k];
            if ((size_t)a->len <= len - i && !memcmp(text + i, a->text, a->len)) {
                match = k;  /* longest first */
                break;
            }
        }
        if (match < 0) {
            i++;
            continue;
        }
        if (n + 2 > cap) s = spq_realloc(s, (cap *= 2) * sizeof *s);
        if (i > start) s[n++] = (section){start, i - start, -1};
        s[n++] = (section){i, t->added[match].len, match};
        i += t->added[match].len;
        start = i;
    }
    if (n + 1 > cap) s = spq_realloc(s, (cap += 1) * sizeof *s);
    if (len > start) s[n++] = (section){start, len - start, -1};
    *out = s;
    return n;
}

static void trim_start(const char *text, section *s) {
    while (s->len > 0) {
        const unsigned char *p = (const unsigned char *)text + s->off;
        int l = spq_utf8_len(p[0]);
        if (!js_space(decode_cp(p, l))) break;
        s->off += l;
        s->len -= l;
    }
}

static void trim_end(const char *text, section *s) {
    while (s->len > 0) {
        size_t j = s->off + s->len - 1;
        while (j > s->off && ((unsigned char)text[j] & 0xC0) == 0x80) j--;
        int l = (int)(s->off + s->len - j);
        if (!js_space(decode_cp((const unsigned char *)text + j, l))) break;
        s->len -= l;
    }
}

int spq_tok_encode(const spq_tokenizer *t, const char *text, size_t len, int add_special, int **ids_out, int *n_ids,
                   spq_err *err) {
    *ids_out = NULL;
    *n_ids = 0;
    long bad = spq_utf8_check(text, len);
    if (bad >= 0) return spq_fail(err, "invalid UTF-8 at byte %ld of the text", bad);
    spq_ivec ids = {0};
    if (add_special)
        for (int i = 0; i < t->n_prefix; i++) spq_ivec_push(&ids, t->prefix[i]);

    section *sec;
    int n_sec = split_added(t, text, len, &sec);
    for (int i = 0; i < n_sec; i++) {
        if (sec[i].added < 0) continue;
        const spq_tok_added *a = &t->added[sec[i].added];
        if (a->lstrip && i > 0 && sec[i - 1].added < 0) trim_end(text, &sec[i - 1]);
        if (a->rstrip && i + 1 < n_sec && sec[i + 1].added < 0) trim_start(text, &sec[i + 1]);
    }
    spq_words ws = {0};
    int rc = 0;
    for (int i = 0; i < n_sec && rc == 0; i++) {
        if (sec[i].added >= 0) {
            spq_ivec_push(&ids, t->added[sec[i].added].id);
            continue;
        }
        if (sec[i].len == 0) continue;
        ws.len = 0;
        spq_span norm = spq_tok_normalize(t, &ws, text + sec[i].off, sec[i].len);
        if (norm.len == 0) continue;
        rc = spq_tok_pretokenize(t, &ws, norm, i, err);
        for (int w = 0; w < ws.n && rc == 0; w++) rc = spq_bpe_word(t, ws.buf + ws.w[w].off, ws.w[w].len, &ids, err);
    }
    spq_words_free(&ws);
    free(sec);
    if (rc) {
        free(ids.v);
        return -1;
    }
    if (add_special)
        for (int i = 0; i < t->n_suffix; i++) spq_ivec_push(&ids, t->suffix[i]);
    if (!ids.v) ids.v = spq_malloc(sizeof(int));
    *ids_out = ids.v;
    *n_ids = ids.n;
    return 0;
}
