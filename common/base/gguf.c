/* gguf.c - see gguf.h. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" little endian */

static const char *vtype_names[SPQ_GGUF_NTYPES] = {"uint8", "int8",  "uint16", "int16",  "uint32", "int32", "float32",
                                                   "bool",  "string", "array", "uint64", "int64",  "float64"};
static const size_t vtype_sizes[SPQ_GGUF_NTYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static const char *vtype_name(uint32_t t) { return t < SPQ_GGUF_NTYPES ? vtype_names[t] : "unknown"; }

/* ---- ggml types ---- */

typedef struct {
    uint32_t type;
    const char *name;
    int blck;
    size_t size;
} type_info;

static const type_info ggml_types[] = {
    {SPQ_GGML_F32, "F32", 1, 4},       {SPQ_GGML_F16, "F16", 1, 2},       {SPQ_GGML_Q4_0, "Q4_0", 32, 18},
    {SPQ_GGML_Q4_1, "Q4_1", 32, 20},   {SPQ_GGML_Q5_0, "Q5_0", 32, 22},   {SPQ_GGML_Q5_1, "Q5_1", 32, 24},
    {SPQ_GGML_Q8_0, "Q8_0", 32, 34},   {SPQ_GGML_Q8_1, "Q8_1", 32, 36},   {SPQ_GGML_Q2_K, "Q2_K", 256, 84},
    {SPQ_GGML_Q3_K, "Q3_K", 256, 110}, {SPQ_GGML_Q4_K, "Q4_K", 256, 144}, {SPQ_GGML_Q5_K, "Q5_K", 256, 176},
    {SPQ_GGML_Q6_K, "Q6_K", 256, 210}, {SPQ_GGML_Q8_K, "Q8_K", 256, 292}, {SPQ_GGML_IQ4_NL, "IQ4_NL", 32, 18},
    {SPQ_GGML_I8, "I8", 1, 1},         {SPQ_GGML_I16, "I16", 1, 2},       {SPQ_GGML_I32, "I32", 1, 4},
    {SPQ_GGML_I64, "I64", 1, 8},       {SPQ_GGML_F64, "F64", 1, 8},       {SPQ_GGML_BF16, "BF16", 1, 2},
};

static const type_info *find_type(uint32_t type) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof *ggml_types; i++)
        if (ggml_types[i].type == type) return &ggml_types[i];
    return NULL;
}

const char *spq_ggml_type_name(uint32_t type) {
    const type_info *t = find_type(type);
    if (t) return t->name;
    static __thread char buf[24];
    snprintf(buf, sizeof buf, "type %u", type);
    return buf;
}

int spq_ggml_block_size(uint32_t type) {
    const type_info *t = find_type(type);
    return t ? t->blck : 0;
}

size_t spq_ggml_type_size(uint32_t type) {
    const type_info *t = find_type(type);
    return t ? t->size : 0;
}

/* bytes of a tensor of this type and shape, or 0 when unknown or it does
 * not fit in size_t (the caller has checked ne[0] against the block size) */
static size_t tensor_bytes(uint32_t type, const int64_t *ne) {
    const type_info *t = find_type(type);
    if (!t) return 0;
    unsigned __int128 n = (unsigned __int128)((uint64_t)ne[0] / (uint64_t)t->blck) * t->size;
    for (int d = 1; d < SPQ_GGUF_MAX_DIMS; d++) {
        n *= (uint64_t)ne[d];
        if (n > SIZE_MAX / 2) return 0;
    }
    return (size_t)n;
}

/* ---- reading ---- */

typedef struct {
    const uint8_t *p;
    size_t size, off;
    const char *name;
    spq_err *err;
} reader;

static int need(reader *r, size_t n, const char *what) {
    if (r->size - r->off < n)
        return spq_fail(r->err, "%s: truncated at byte %zu: %s needs %zu bytes, %zu left", r->name, r->off, what, n,
                        r->size - r->off);
    return 0;
}

static int rd_u32(reader *r, uint32_t *v, const char *what) {
    if (need(r, 4, what)) return -1;
    memcpy(v, r->p + r->off, 4);
    r->off += 4;
    return 0;
}

static int rd_u64(reader *r, uint64_t *v, const char *what) {
    if (need(r, 8, what)) return -1;
    memcpy(v, r->p + r->off, 8);
    r->off += 8;
    return 0;
}

static int rd_str(reader *r, spq_gguf_str *s, const char *what) {
    uint64_t len;
    if (rd_u64(r, &len, what)) return -1;
    if (len > r->size - r->off)
        return spq_fail(r->err, "%s: truncated at byte %zu: %s is a string of %llu bytes, %zu left", r->name, r->off,
                        what, (unsigned long long)len, r->size - r->off);
    s->s = (const char *)r->p + r->off;
    s->len = (size_t)len;
    r->off += (size_t)len;
    return 0;
}

/* a malloc'd NUL-terminated copy of a key or name; NUL inside is refused */
static char *name_copy(reader *r, const spq_gguf_str *s, const char *what, uint64_t index) {
    if (memchr(s->s, 0, s->len)) {
        spq_fail(r->err, "%s: %s %llu contains a NUL byte", r->name, what, (unsigned long long)index);
        return NULL;
    }
    char *c = spq_malloc(s->len + 1);
    memcpy(c, s->s, s->len);
    c[s->len] = 0;
    return c;
}

static int read_value(reader *r, spq_gguf_kv *kv) {
    char what[320];
    snprintf(what, sizeof what, "the value of \"%.256s\"", kv->key);
    if (kv->type >= SPQ_GGUF_NTYPES)
        return spq_fail(r->err, "%s: key \"%s\": unknown value type %u", r->name, kv->key, kv->type);
    kv->n = 1;
    if (kv->type == SPQ_GGUF_STR) {
        kv->strs = spq_malloc(sizeof *kv->strs);
        kv->data = r->p + r->off;
        return rd_str(r, kv->strs, what);
    }
    if (kv->type != SPQ_GGUF_ARR) {
        if (need(r, vtype_sizes[kv->type], what)) return -1;
        kv->data = r->p + r->off;
        r->off += vtype_sizes[kv->type];
        return 0;
    }
    if (rd_u32(r, &kv->arr_type, what) || rd_u64(r, &kv->n, what)) return -1;
    if (kv->arr_type == SPQ_GGUF_ARR)
        return spq_fail(r->err, "%s: key \"%s\": arrays of arrays are not supported", r->name, kv->key);
    if (kv->arr_type >= SPQ_GGUF_NTYPES)
        return spq_fail(r->err, "%s: key \"%s\": unknown array element type %u", r->name, kv->key, kv->arr_type);
    kv->data = r->p + r->off;
    if (kv->arr_type == SPQ_GGUF_STR) {
        /* each string takes at least its 8-byte length */
        if (kv->n > (r->size - r->off) / 8)
            return spq_fail(r->err, "%s: truncated: key \"%s\" promises %llu strings, the file has %zu bytes left",
                            r->name, kv->key, (unsigned long long)kv->n, r->size - r->off);
        kv->strs = spq_malloc((size_t)(kv->n ? kv->n : 1) * sizeof *kv->strs);
        for (uint64_t i = 0; i < kv->n; i++) {
            snprintf(what, sizeof what, "\"%.256s\"[%llu]", kv->key, (unsigned long long)i);
            if (rd_str(r, &kv->strs[i], what)) return -1;
        }
        return 0;
    }
    size_t es = vtype_sizes[kv->arr_type];
    if (kv->n > (r->size - r->off) / es)
        return spq_fail(r->err, "%s: truncated: key \"%s\" promises %llu %s values, the file has %zu bytes left",
                        r->name, kv->key, (unsigned long long)kv->n, vtype_name(kv->arr_type), r->size - r->off);
    r->off += (size_t)kv->n * es;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* names must be unique: sort copies and compare neighbours */
static int check_unique(spq_gguf_file *f, int tensors, spq_err *err) {
    uint64_t n = tensors ? f->n_tensors : f->n_kv;
    if (n < 2) return 0;
    char **names = spq_malloc((size_t)n * sizeof *names);
    for (uint64_t i = 0; i < n; i++) names[i] = tensors ? f->tensors[i].name : f->kv[i].key;
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int rc = 0;
    for (uint64_t i = 1; i < n && !rc; i++)
        if (!strcmp(names[i - 1], names[i]))
            rc = spq_fail(err, "%s: %s \"%s\" appears twice", f->path, tensors ? "tensor" : "key", names[i]);
    free(names);
    return rc;
}

static int read_tensor_info(reader *r, spq_gguf_file *f, uint64_t i) {
    spq_gguf_tensor *t = &f->tensors[i];
    spq_gguf_str s;
    char what[64];
    snprintf(what, sizeof what, "the name of tensor %llu", (unsigned long long)i);
    if (rd_str(r, &s, what) || !(t->name = name_copy(r, &s, "the name of tensor", i))) return -1;
    if (rd_u32(r, &t->n_dims, "a tensor's n_dims")) return -1;
    if (t->n_dims < 1 || t->n_dims > SPQ_GGUF_MAX_DIMS)
        return spq_fail(r->err, "%s: tensor \"%s\": n_dims %u is outside 1..%d", r->name, t->name, t->n_dims,
                        SPQ_GGUF_MAX_DIMS);
    for (int d = 0; d < SPQ_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v;
        if (rd_u64(r, &v, "a tensor's dimension")) return -1;
        if (v == 0 || v > INT64_MAX)
            return spq_fail(r->err, "%s: tensor \"%s\": dimension %u is %llu (must be 1..2^63-1)", r->name, t->name,
                            d, (unsigned long long)v);
        t->ne[d] = (int64_t)v;
    }
    if (rd_u32(r, &t->type, "a tensor's type") || rd_u64(r, &t->offset, "a tensor's offset")) return -1;
    int blck = spq_ggml_block_size(t->type);
    if (blck && t->ne[0] % blck)
        return spq_fail(r->err, "%s: tensor \"%s\": row length %lld is not a multiple of %s's block of %d", r->name,
                        t->name, (long long)t->ne[0], spq_ggml_type_name(t->type), blck);
    return 0;
}

/* f is zeroed but for its map */
static int parse(spq_gguf_file *f, const char *name, const void *data, size_t size, spq_err *err) {
    f->path = spq_strdup(name);
    f->buf = data;
    f->size = size;
    f->alignment = SPQ_GGUF_DEFAULT_ALIGNMENT;
    reader r = {.p = data, .size = size, .name = name, .err = err};
    uint32_t magic;
    if (rd_u32(&r, &magic, "the magic")) goto fail;
    if (magic != GGUF_MAGIC) {
        spq_fail(err, "%s: not a GGUF file (the first 4 bytes are not \"GGUF\")", name);
        goto fail;
    }
    if (rd_u32(&r, &f->version, "the version")) goto fail;
    if (f->version != 2 && f->version != 3) {
        spq_fail(err, "%s: GGUF version %u is not supported (2 or 3)", name, f->version);
        goto fail;
    }
    if (rd_u64(&r, &f->n_tensors, "the tensor count") || rd_u64(&r, &f->n_kv, "the key/value count")) goto fail;
    /* a key/value takes at least 12 bytes, a tensor info at least 28 */
    if (f->n_kv > (size - r.off) / 12 || f->n_tensors > (size - r.off) / 28) {
        spq_fail(err, "%s: truncated: the header promises %llu key/values and %llu tensors in %zu bytes", name,
                 (unsigned long long)f->n_kv, (unsigned long long)f->n_tensors, size);
        goto fail;
    }
    f->kv = spq_calloc(f->n_kv ? f->n_kv : 1, sizeof *f->kv);
    for (uint64_t i = 0; i < f->n_kv; i++) {
        spq_gguf_kv *kv = &f->kv[i];
        spq_gguf_str s;
        char what[64];
        snprintf(what, sizeof what, "key %llu", (unsigned long long)i);
        if (rd_str(&r, &s, what) || !(kv->key = name_copy(&r, &s, "key", i))) goto fail;
        if (rd_u32(&r, &kv->type, "a value type") || read_value(&r, kv)) goto fail;
    }
    if (check_unique(f, 0, err)) goto fail;
    int64_t align;
    int has = spq_gguf_get_int(f, "general.alignment", 1, 1 << 30, &align, 0, err);
    if (has < 0) goto fail;
    if (has == 0) {
        if (align & (align - 1)) {
            spq_fail(err, "%s: general.alignment %lld is not a power of two", name, (long long)align);
            goto fail;
        }
        f->alignment = (uint64_t)align;
    }
    f->tensors = spq_calloc(f->n_tensors ? f->n_tensors : 1, sizeof *f->tensors);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (read_tensor_info(&r, f, i)) goto fail;
    if (check_unique(f, 1, err)) goto fail;
    size_t pad = (size_t)((f->alignment - r.off % f->alignment) % f->alignment);
    f->data_offset = r.off + pad <= size ? r.off + pad : size;
    size_t avail = size - f->data_offset;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        spq_gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment) {
            spq_fail(err, "%s: tensor \"%s\": offset %llu is not a multiple of the alignment %llu", name, t->name,
                     (unsigned long long)t->offset, (unsigned long long)f->alignment);
            goto fail;
        }
        if (t->offset > avail) {
            spq_fail(err, "%s: truncated: tensor \"%s\" starts at offset %llu of a data section of %zu bytes", name,
                     t->name, (unsigned long long)t->offset, avail);
            goto fail;
        }
        t->data = f->buf + f->data_offset + t->offset;
        if (!find_type(t->type)) continue; /* unknown layout: only a loader that needs it refuses it */
        t->nbytes = tensor_bytes(t->type, t->ne);
        if (!t->nbytes || t->nbytes > avail - t->offset) {
            spq_fail(err, "%s: truncated: tensor \"%s\" (%s, %lld x %lld x %lld x %lld) needs %zu bytes at offset "
                          "%llu, the data section has %zu",
                     name, t->name, spq_ggml_type_name(t->type), (long long)t->ne[0], (long long)t->ne[1],
                     (long long)t->ne[2], (long long)t->ne[3], t->nbytes, (unsigned long long)t->offset, avail);
            goto fail;
        }
    }
    return 0;
fail:
    spq_gguf_close(f);
    return -1;
}

int spq_gguf_open(spq_gguf_file *f, const char *path, spq_err *err) {
    memset(f, 0, sizeof *f);
    if (spq_mmap_open(&f->map, path, err)) return -1;
    if (!f->map.data) {
        spq_fail(err, "%s: empty file (not GGUF)", path);
        return -1;
    }
    return parse(f, path, f->map.data, f->map.size, err);
}

int spq_gguf_parse(spq_gguf_file *f, const char *name, const void *data, size_t size, spq_err *err) {
    memset(f, 0, sizeof *f);
    return parse(f, name, data, size, err);
}

void spq_gguf_close(spq_gguf_file *f) {
    if (f->kv)
        for (uint64_t i = 0; i < f->n_kv; i++) {
            free(f->kv[i].key);
            free(f->kv[i].strs);
        }
    if (f->tensors)
        for (uint64_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->kv);
    free(f->tensors);
    free(f->path);
    if (f->map.data) spq_mmap_close(&f->map);
    memset(f, 0, sizeof *f);
}

int spq_gguf_is_file(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    struct stat st;
    uint32_t magic = 0;
    int ok = !fstat(fd, &st) && S_ISREG(st.st_mode) && read(fd, &magic, 4) == 4 && magic == GGUF_MAGIC;
    close(fd);
    return ok;
}

const spq_gguf_kv *spq_gguf_find(const spq_gguf_file *f, const char *key) {
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (f->kv[i].key && !strcmp(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const spq_gguf_tensor *spq_gguf_find_tensor(const spq_gguf_file *f, const char *name) {
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].name && !strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

/* the kv, 1 when absent and optional, -1 when absent and required */
static int lookup(const spq_gguf_kv **kv, const spq_gguf_file *f, const char *key, int required, spq_err *err) {
    *kv = spq_gguf_find(f, key);
    if (*kv) return 0;
    return required ? spq_fail(err, "%s: key \"%s\" is missing", f->path, key) : 1;
}

static int wrong_type(const spq_gguf_file *f, const spq_gguf_kv *kv, const char *want, spq_err *err) {
    if (kv->type == SPQ_GGUF_ARR)
        return spq_fail(err, "%s: key \"%s\": expected %s, found an array of %s", f->path, kv->key, want,
                        vtype_name(kv->arr_type));
    return spq_fail(err, "%s: key \"%s\": expected %s, found %s", f->path, kv->key, want, vtype_name(kv->type));
}

int spq_gguf_get_int(const spq_gguf_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out, int required,
                     spq_err *err) {
    const spq_gguf_kv *kv;
    int rc = lookup(&kv, f, key, required, err);
    if (rc) return rc;
    const uint8_t *p = kv->data;
    int64_t v;
    uint64_t u;
    switch (kv->type) {
    case SPQ_GGUF_U8: v = p[0]; break;
    case SPQ_GGUF_I8: v = (int8_t)p[0]; break;
    case SPQ_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); v = x; break; }
    case SPQ_GGUF_I16: { int16_t x; memcpy(&x, p, 2); v = x; break; }
    case SPQ_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); v = x; break; }
    case SPQ_GGUF_I32: { int32_t x; memcpy(&x, p, 4); v = x; break; }
    case SPQ_GGUF_I64: memcpy(&v, p, 8); break;
    case SPQ_GGUF_U64:
        memcpy(&u, p, 8);
        if (u > INT64_MAX) return spq_fail(err, "%s: key \"%s\": %llu is out of range", f->path, key, (unsigned long long)u);
        v = (int64_t)u;
        break;
    default: return wrong_type(f, kv, "an integer", err);
    }
    if (v < lo || v > hi)
        return spq_fail(err, "%s: key \"%s\": %lld is outside %lld..%lld", f->path, key, (long long)v, (long long)lo,
                        (long long)hi);
    *out = v;
    return 0;
}

int spq_gguf_get_float(const spq_gguf_file *f, const char *key, double *out, int required, spq_err *err) {
    const spq_gguf_kv *kv;
    int rc = lookup(&kv, f, key, required, err);
    if (rc) return rc;
    if (kv->type == SPQ_GGUF_F32) {
        float x;
        memcpy(&x, kv->data, 4);
        *out = x;
    } else if (kv->type == SPQ_GGUF_F64) {
        memcpy(out, kv->data, 8);
    } else {
        int64_t v;
        if (kv->type == SPQ_GGUF_STR || kv->type == SPQ_GGUF_ARR || kv->type == SPQ_GGUF_BOOL)
            return wrong_type(f, kv, "a number", err);
        if (spq_gguf_get_int(f, key, INT64_MIN, INT64_MAX, &v, 1, err)) return -1;
        *out = (double)v;
    }
    return 0;
}

int spq_gguf_get_bool(const spq_gguf_file *f, const char *key, int *out, int required, spq_err *err) {
    const spq_gguf_kv *kv;
    int rc = lookup(&kv, f, key, required, err);
    if (rc) return rc;
    if (kv->type != SPQ_GGUF_BOOL) return wrong_type(f, kv, "a bool", err);
    if (kv->data[0] > 1) return spq_fail(err, "%s: key \"%s\": bool byte %u is not 0 or 1", f->path, key, kv->data[0]);
    *out = kv->data[0];
    return 0;
}

int spq_gguf_get_str(const spq_gguf_file *f, const char *key, char **out, int required, spq_err *err) {
    const spq_gguf_kv *kv;
    int rc = lookup(&kv, f, key, required, err);
    if (rc) return rc;
    if (kv->type != SPQ_GGUF_STR) return wrong_type(f, kv, "a string", err);
    if (memchr(kv->strs[0].s, 0, kv->strs[0].len))
        return spq_fail(err, "%s: key \"%s\": the string contains a NUL byte", f->path, key);
    char *s = spq_malloc(kv->strs[0].len + 1);
    memcpy(s, kv->strs[0].s, kv->strs[0].len);
    s[kv->strs[0].len] = 0;
    *out = s;
    return 0;
}

int spq_gguf_get_arr(const spq_gguf_file *f, const char *key, uint32_t elem_type, const spq_gguf_kv **out,
                     int required, spq_err *err) {
    const spq_gguf_kv *kv;
    int rc = lookup(&kv, f, key, required, err);
    if (rc) return rc;
    if (kv->type != SPQ_GGUF_ARR || kv->arr_type != elem_type) {
        char want[48];
        snprintf(want, sizeof want, "an array of %s", vtype_name(elem_type));
        return wrong_type(f, kv, want, err);
    }
    *out = kv;
    return 0;
}

/* ---- writing ---- */

void spq_gguf_writer_init(spq_gguf_writer *w) {
    memset(w, 0, sizeof *w);
    w->alignment = SPQ_GGUF_DEFAULT_ALIGNMENT;
}

void spq_gguf_writer_free(spq_gguf_writer *w) {
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    for (int i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    free(w->keys);
    free(w->kv);
    free(w->tensors);
    memset(w, 0, sizeof *w);
}

static void put(spq_gguf_writer *w, const void *p, size_t n) {
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = w->kv_cap ? w->kv_cap : 4096;
        while (cap < w->kv_len + n) cap *= 2;
        w->kv = spq_realloc(w->kv, cap);
        w->kv_cap = cap;
    }
    if (n) memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}

static void put_u32(spq_gguf_writer *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(spq_gguf_writer *w, uint64_t v) { put(w, &v, 8); }
static void put_str(spq_gguf_writer *w, const char *s, size_t n) {
    put_u64(w, n);
    put(w, s, n);
}

static void key(spq_gguf_writer *w, const char *k, uint32_t type) {
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], k)) {
            fprintf(stderr, "spq_gguf: key \"%s\" set twice\n", k);
            abort();
        }
    w->keys = spq_realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *w->keys);
    w->keys[w->n_kv++] = spq_strdup(k);
    put_str(w, k, strlen(k));
    put_u32(w, type);
}

void spq_gguf_set_u32(spq_gguf_writer *w, const char *k, uint32_t v) {
    key(w, k, SPQ_GGUF_U32);
    put_u32(w, v);
}

void spq_gguf_set_i32(spq_gguf_writer *w, const char *k, int32_t v) {
    key(w, k, SPQ_GGUF_I32);
    put(w, &v, 4);
}

void spq_gguf_set_f32(spq_gguf_writer *w, const char *k, float v) {
    key(w, k, SPQ_GGUF_F32);
    put(w, &v, 4);
}

void spq_gguf_set_bool(spq_gguf_writer *w, const char *k, int v) {
    uint8_t b = v != 0;
    key(w, k, SPQ_GGUF_BOOL);
    put(w, &b, 1);
}

void spq_gguf_set_str(spq_gguf_writer *w, const char *k, const char *s) {
    key(w, k, SPQ_GGUF_STR);
    put_str(w, s, strlen(s));
}

static void arr_head(spq_gguf_writer *w, const char *k, uint32_t elem, size_t n) {
    key(w, k, SPQ_GGUF_ARR);
    put_u32(w, elem);
    put_u64(w, n);
}

void spq_gguf_set_str_arr(spq_gguf_writer *w, const char *k, const char *const *s, const int *lens, size_t n) {
    arr_head(w, k, SPQ_GGUF_STR, n);
    for (size_t i = 0; i < n; i++) put_str(w, s[i], lens ? (size_t)lens[i] : strlen(s[i]));
}

void spq_gguf_set_f32_arr(spq_gguf_writer *w, const char *k, const float *v, size_t n) {
    arr_head(w, k, SPQ_GGUF_F32, n);
    put(w, v, n * 4);
}

void spq_gguf_set_i32_arr(spq_gguf_writer *w, const char *k, const int32_t *v, size_t n) {
    arr_head(w, k, SPQ_GGUF_I32, n);
    put(w, v, n * 4);
}

int spq_gguf_add_tensor(spq_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                        void *data, size_t nbytes, spq_err *err) {
    int rc = 0;
    int64_t full[SPQ_GGUF_MAX_DIMS] = {1, 1, 1, 1};
    for (int i = 0; i < w->n_tensors && !rc; i++)
        if (!strcmp(w->tensors[i].name, name)) rc = spq_fail(err, "GGUF writer: tensor \"%s\" added twice", name);
    if (!rc && (n_dims < 1 || n_dims > SPQ_GGUF_MAX_DIMS || !find_type(type)))
        rc = spq_fail(err, "GGUF writer: tensor \"%s\": bad n_dims %u or type %u", name, n_dims, type);
    for (uint32_t d = 0; !rc && d < n_dims; d++) {
        if (ne[d] < 1) rc = spq_fail(err, "GGUF writer: tensor \"%s\": dimension %u is %lld", name, d, (long long)ne[d]);
        full[d] = ne[d];
    }
    if (!rc && full[0] % spq_ggml_block_size(type))
        rc = spq_fail(err, "GGUF writer: tensor \"%s\": row length %lld is not a multiple of %s's block", name,
                      (long long)full[0], spq_ggml_type_name(type));
    if (!rc && tensor_bytes(type, full) != nbytes)
        rc = spq_fail(err, "GGUF writer: tensor \"%s\": %zu bytes given, the shape needs %zu", name, nbytes,
                      tensor_bytes(type, full));
    if (rc) {
        free(data);
        return -1;
    }
    if (w->n_tensors == w->cap_tensors) {
        w->cap_tensors = w->cap_tensors ? 2 * w->cap_tensors : 64;
        w->tensors = spq_realloc(w->tensors, (size_t)w->cap_tensors * sizeof *w->tensors);
    }
    spq_gguf_wtensor *t = &w->tensors[w->n_tensors++];
    t->name = spq_strdup(name);
    t->type = type;
    t->n_dims = n_dims;
    memcpy(t->ne, full, sizeof full);
    t->data = data;
    t->nbytes = nbytes;
    return 0;
}

static size_t pad_to(size_t n, size_t a) { return (a - n % a) % a; }

int spq_gguf_writer_save(const spq_gguf_writer *w, const char *path, spq_err *err) {
    char *tmp = spq_malloc(strlen(path) + 16);
    sprintf(tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp), rc = 0;
    FILE *fp = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!fp) {
        rc = spq_fail(err, "%s: cannot create a temporary file: %s", path, strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        free(tmp);
        return rc;
    }
    static const uint8_t zeros[64];
    uint32_t head32[2] = {GGUF_MAGIC, 3};
    uint64_t head64[2] = {(uint64_t)w->n_tensors, w->n_kv};
    int bad = fchmod(fd, 0644) || fwrite(head32, 4, 2, fp) != 2 || fwrite(head64, 8, 2, fp) != 2 ||
              fwrite(w->kv, 1, w->kv_len, fp) != w->kv_len;
    size_t off = 0, pos = 24 + w->kv_len;
    for (int i = 0; i < w->n_tensors && !bad; i++) {
        const spq_gguf_wtensor *t = &w->tensors[i];
        uint64_t nl = strlen(t->name), ne[SPQ_GGUF_MAX_DIMS], o = off;
        for (uint32_t d = 0; d < t->n_dims; d++) ne[d] = (uint64_t)t->ne[d];
        bad = fwrite(&nl, 8, 1, fp) != 1 || fwrite(t->name, 1, nl, fp) != nl || fwrite(&t->n_dims, 4, 1, fp) != 1 ||
              fwrite(ne, 8, t->n_dims, fp) != t->n_dims || fwrite(&t->type, 4, 1, fp) != 1 || fwrite(&o, 8, 1, fp) != 1;
        pos += 8 + nl + 4 + 8 * t->n_dims + 4 + 8;
        off += t->nbytes + pad_to(t->nbytes, w->alignment);
    }
    if (!bad) bad = fwrite(zeros, 1, pad_to(pos, w->alignment), fp) != pad_to(pos, w->alignment);
    for (int i = 0; i < w->n_tensors && !bad; i++) {
        const spq_gguf_wtensor *t = &w->tensors[i];
        size_t p = pad_to(t->nbytes, w->alignment);
        bad = fwrite(t->data, 1, t->nbytes, fp) != t->nbytes || fwrite(zeros, 1, p, fp) != p;
    }
    if (!bad) bad = fflush(fp) || fsync(fd);
    if (fclose(fp) || bad) rc = spq_fail(err, "%s: write failed: %s", tmp, strerror(errno));
    else if (rename(tmp, path)) rc = spq_fail(err, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}
