/* safetensors.c - see safetensors.h.
 *
 * Reading: map the file, parse the header with jansson (duplicate keys
 * rejected), turn every entry into an spq_st_tensor pointing into the map,
 * then check the tensors against each other: sorted by begin offset, each
 * non-empty tensor must start at or after the end of the previous one.
 * Nothing is copied until a caller asks for a tensor's values.
 *
 * Writing: sort the entries by element size (stable), give them contiguous
 * offsets, dump the header, pad it, stream header and data to a temporary
 * file in the target directory, fsync and rename. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "half.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads little-endian data in place: a big-endian host needs byte swapping"
#endif

/* the reference implementation refuses headers above 100 MB; so do we, so
 * that a corrupt length cannot make us parse an arbitrary amount of data */
#define MAX_HEADER (100u * 1000u * 1000u)

static const struct {
    const char *name;
    size_t size;
} dtypes[SPQ_ST_NDTYPES] = {
    [SPQ_ST_BOOL] = {"BOOL", 1}, [SPQ_ST_U8] = {"U8", 1},   [SPQ_ST_I8] = {"I8", 1},
    [SPQ_ST_F8_E4M3] = {"F8_E4M3", 1}, [SPQ_ST_F8_E5M2] = {"F8_E5M2", 1},
    [SPQ_ST_I16] = {"I16", 2}, [SPQ_ST_U16] = {"U16", 2}, [SPQ_ST_F16] = {"F16", 2},
    [SPQ_ST_BF16] = {"BF16", 2}, [SPQ_ST_I32] = {"I32", 4}, [SPQ_ST_U32] = {"U32", 4},
    [SPQ_ST_F32] = {"F32", 4}, [SPQ_ST_I64] = {"I64", 8}, [SPQ_ST_U64] = {"U64", 8},
    [SPQ_ST_F64] = {"F64", 8},
};

const char *spq_st_dtype_name(spq_st_dtype t) {
    return (unsigned)t < SPQ_ST_NDTYPES ? dtypes[t].name : "?";
}

size_t spq_st_dtype_size(spq_st_dtype t) {
    return (unsigned)t < SPQ_ST_NDTYPES ? dtypes[t].size : 0;
}

int spq_st_dtype_parse(spq_st_dtype *t, const char *name) {
    for (int i = 0; i < SPQ_ST_NDTYPES; i++)
        if (!strcmp(dtypes[i].name, name)) {
            *t = (spq_st_dtype)i;
            return 0;
        }
    return -1;
}

const char *spq_st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = 0;
    n += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

/* numel of a shape, or -1 when it does not fit a size_t */
static int shape_numel(size_t *out, int ndim, const int64_t *shape, size_t elsize) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] && n > SIZE_MAX / elsize / (size_t)shape[i]) return -1;
        n *= (size_t)shape[i];
    }
    *out = n;
    return 0;
}

/* ---- reading ---- */

static int by_name(const void *a, const void *b) {
    return strcmp(((const spq_st_tensor *)a)->name, ((const spq_st_tensor *)b)->name);
}

static int by_offset(const void *a, const void *b) {
    const spq_st_tensor *x = *(const spq_st_tensor *const *)a, *y = *(const spq_st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

static int parse_metadata(spq_st_file *f, json_t *meta, spq_err *err) {
    if (!json_is_object(meta))
        return spq_fail(err, "%s: __metadata__: expected an object of strings, got %s", f->path,
                        json_is_array(meta) ? "an array" : "a non-object");
    size_t n = json_object_size(meta);
    f->meta_keys = spq_calloc(n, sizeof(char *));
    f->meta_vals = spq_calloc(n, sizeof(char *));
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v) {
        if (!json_is_string(v)) return spq_fail(err, "%s: __metadata__: value of \"%s\" is not a string", f->path, k);
        f->meta_keys[f->n_meta] = spq_strdup(k);
        f->meta_vals[f->n_meta] = spq_strdup(json_string_value(v));
        f->n_meta++;
    }
    return 0;
}

/* Fills t from one header entry; data_size is the size of the data area. */
static int parse_tensor(spq_st_tensor *t, const spq_st_file *f, const char *name, json_t *e,
                        const uint8_t *data, size_t data_size, spq_err *err) {
    const char *p = f->path;
    if (!json_is_object(e)) return spq_fail(err, "%s: tensor \"%s\": expected an object", p, name);
    json_t *jd = json_object_get(e, "dtype"), *js = json_object_get(e, "shape"),
           *jo = json_object_get(e, "data_offsets");
    if (!json_is_string(jd)) return spq_fail(err, "%s: tensor \"%s\": dtype: missing or not a string", p, name);
    if (spq_st_dtype_parse(&t->dtype, json_string_value(jd)))
        return spq_fail(err, "%s: tensor \"%s\": unknown dtype \"%s\"", p, name, json_string_value(jd));
    if (!json_is_array(js)) return spq_fail(err, "%s: tensor \"%s\": shape: missing or not an array", p, name);
    if (json_array_size(js) > SPQ_ST_MAX_DIMS)
        return spq_fail(err, "%s: tensor \"%s\": shape: %zu dimensions, at most %d supported", p, name,
                        json_array_size(js), SPQ_ST_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    for (int i = 0; i < t->ndim; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return spq_fail(err, "%s: tensor \"%s\": shape[%d]: expected a non-negative integer", p, name, i);
        t->shape[i] = json_integer_value(d);
    }
    size_t es = spq_st_dtype_size(t->dtype);
    if (shape_numel(&t->numel, t->ndim, t->shape, es))
        return spq_fail(err, "%s: tensor \"%s\": shape is too large", p, name);
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return spq_fail(err, "%s: tensor \"%s\": data_offsets: expected [begin, end] integers", p, name);
    json_int_t b = json_integer_value(json_array_get(jo, 0)), en = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || en < b)
        return spq_fail(err, "%s: tensor \"%s\": data_offsets: [%lld, %lld] is not a range 0 <= begin <= end", p,
                        name, (long long)b, (long long)en);
    if ((unsigned long long)en > data_size)
        return spq_fail(err, "%s: tensor \"%s\": data_offsets: end %lld is past the end of the data (%zu bytes; "
                        "the file is truncated or the header is wrong)", p, name, (long long)en, data_size);
    t->nbytes = (size_t)(en - b);
    if (t->nbytes != t->numel * es) {
        char s[160];
        return spq_fail(err, "%s: tensor \"%s\": data_offsets give %zu bytes, but %s shape %s needs %zu", p, name,
                        t->nbytes, dtypes[t->dtype].name, spq_st_shape_str(s, sizeof s, t->ndim, t->shape),
                        t->numel * es);
    }
    t->data = data + b;
    return 0;
}

static int check_overlaps(const spq_st_file *f, spq_err *err) {
    int n = f->n_tensors;
    const spq_st_tensor **order = spq_malloc((size_t)(n ? n : 1) * sizeof *order);
    for (int i = 0; i < n; i++) order[i] = &f->tensors[i];
    qsort(order, n, sizeof *order, by_offset);
    const spq_st_tensor *prev = NULL;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const spq_st_tensor *t = order[i];
        if (!t->nbytes) continue;
        if (prev && t->data < prev->data + prev->nbytes)
            rc = spq_fail(err, "%s: tensors \"%s\" and \"%s\" overlap in the data area", f->path, prev->name,
                          t->name);
        prev = t;
    }
    free(order);
    return rc;
}

static int parse_header(spq_st_file *f, spq_err *err) {
    const uint8_t *d = f->map.data;
    size_t size = f->map.size;
    if (size < 8)
        return spq_fail(err, "%s: truncated: %zu bytes, but a safetensors file starts with an 8-byte header length",
                        f->path, size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | d[i];
    if (hl > size - 8)
        return spq_fail(err, "%s: header length %llu runs past the end of the file (%zu bytes; truncated or not "
                        "a safetensors file)", f->path, (unsigned long long)hl, size);
    if (hl > MAX_HEADER)
        return spq_fail(err, "%s: header length %llu exceeds the %u-byte limit", f->path, (unsigned long long)hl,
                        MAX_HEADER);
    json_error_t je;
    json_t *h = json_loadb((const char *)d + 8, hl, JSON_REJECT_DUPLICATES, &je);
    if (!h) return spq_fail(err, "%s: header is not valid JSON: %s (at byte %d)", f->path, je.text, je.position);
    int rc = 0;
    if (!json_is_object(h)) {
        rc = spq_fail(err, "%s: header is not a JSON object", f->path);
        goto done;
    }
    const uint8_t *data = d + 8 + hl;
    size_t data_size = size - 8 - hl;
    f->tensors = spq_calloc(json_object_size(h) + 1, sizeof(spq_st_tensor));
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v) {
        if (!strcmp(k, "__metadata__")) {
            if ((rc = parse_metadata(f, v, err))) goto done;
            continue;
        }
        spq_st_tensor *t = &f->tensors[f->n_tensors];
        t->name = spq_strdup(k);
        f->n_tensors++;
        if ((rc = parse_tensor(t, f, k, v, data, data_size, err))) goto done;
    }
    if ((rc = check_overlaps(f, err))) goto done;
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, by_name);
done:
    json_decref(h);
    return rc;
}

int spq_st_open(spq_st_file *f, const char *path, spq_err *err) {
    memset(f, 0, sizeof *f);
    if (spq_mmap_open(&f->map, path, err)) return -1;
    f->path = spq_strdup(path);
    if (parse_header(f, err)) {
        spq_st_close(f);
        return -1;
    }
    return 0;
}

void spq_st_close(spq_st_file *f) {
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    spq_mmap_close(&f->map);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const spq_st_tensor *spq_st_find(const spq_st_file *f, const char *name) {
    if (!f->n_tensors) return NULL;
    spq_st_tensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, f->n_tensors, sizeof key, by_name);
}

const char *spq_st_meta(const spq_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

int spq_st_check_shape(const spq_st_file *f, const spq_st_tensor *t, int ndim, const int64_t *shape,
                       spq_err *err) {
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (same) return 0;
    char a[160], b[160];
    return spq_fail(err, "%s: tensor \"%s\": expected shape %s, got %s", f->path, t->name,
                    spq_st_shape_str(a, sizeof a, ndim, shape), spq_st_shape_str(b, sizeof b, t->ndim, t->shape));
}

int spq_st_tensor_f32(float *out, const spq_st_file *f, const spq_st_tensor *t, spq_err *err) {
    switch (t->dtype) {
    case SPQ_ST_F32: memcpy(out, t->data, t->nbytes); return 0;
    case SPQ_ST_F16: spq_f16_to_f32_array(out, t->data, t->numel); return 0;
    case SPQ_ST_BF16: spq_bf16_to_f32_array(out, t->data, t->numel); return 0;
    case SPQ_ST_F64:
        for (size_t i = 0; i < t->numel; i++) {
            double x;
            memcpy(&x, t->data + 8 * i, 8);
            out[i] = (float)x;
        }
        return 0;
    default:
        return spq_fail(err, "%s: tensor \"%s\": dtype %s cannot be read as floating point (expected F32, F16, "
                        "BF16 or F64)", f->path, t->name, spq_st_dtype_name(t->dtype));
    }
}

int spq_st_read_f32(float *out, const spq_st_file *f, const char *name, int ndim, const int64_t *shape,
                    spq_err *err) {
    const spq_st_tensor *t = spq_st_find(f, name);
    if (!t) return spq_fail(err, "%s: tensor \"%s\" is missing", f->path, name);
    if (spq_st_check_shape(f, t, ndim, shape, err)) return -1;
    return spq_st_tensor_f32(out, f, t, err);
}

/* ---- writing ---- */

void spq_st_writer_init(spq_st_writer *w) {
    memset(w, 0, sizeof *w);
}

void spq_st_writer_free(spq_st_writer *w) {
    for (int i = 0; i < w->n; i++) {
        free(w->entries[i].name);
        free(w->entries[i].owned);
    }
    free(w->entries);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_vals[i]);
    }
    free(w->meta_keys);
    free(w->meta_vals);
    memset(w, 0, sizeof *w);
}

int spq_st_writer_add(spq_st_writer *w, const char *name, spq_st_dtype dtype, int ndim, const int64_t *shape,
                      const void *data, spq_err *err) {
    if (!name[0] || !strcmp(name, "__metadata__"))
        return spq_fail(err, "safetensors writer: invalid tensor name \"%s\"", name);
    if ((unsigned)dtype >= SPQ_ST_NDTYPES)
        return spq_fail(err, "safetensors writer: tensor \"%s\": invalid dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > SPQ_ST_MAX_DIMS)
        return spq_fail(err, "safetensors writer: tensor \"%s\": %d dimensions (at most %d)", name, ndim,
                        SPQ_ST_MAX_DIMS);
    size_t numel;
    if (shape_numel(&numel, ndim, shape, spq_st_dtype_size(dtype)))
        return spq_fail(err, "safetensors writer: tensor \"%s\": negative or too large shape", name);
    if (numel && !data) return spq_fail(err, "safetensors writer: tensor \"%s\": no data", name);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->entries[i].name, name))
            return spq_fail(err, "safetensors writer: tensor \"%s\" added twice", name);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->entries = spq_realloc(w->entries, (size_t)w->cap * sizeof *w->entries);
    }
    spq_st_entry *e = &w->entries[w->n++];
    memset(e, 0, sizeof *e);
    e->name = spq_strdup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->data = data;
    return 0;
}

int spq_st_writer_add_f32(spq_st_writer *w, const char *name, spq_st_dtype dtype, int ndim, const int64_t *shape,
                          const float *data, spq_err *err) {
    if (dtype != SPQ_ST_F32 && dtype != SPQ_ST_F16 && dtype != SPQ_ST_BF16)
        return spq_fail(err, "safetensors writer: tensor \"%s\": fp32 data can be stored as F32, F16 or BF16, not %s",
                        name, spq_st_dtype_name(dtype));
    if (spq_st_writer_add(w, name, dtype, ndim, shape, data, err)) return -1;
    if (dtype == SPQ_ST_F32) return 0;
    spq_st_entry *e = &w->entries[w->n - 1];
    size_t numel = 0;
    shape_numel(&numel, ndim, shape, 2);  /* checked by spq_st_writer_add */
    uint16_t *c = spq_malloc(numel * 2);
    if (dtype == SPQ_ST_F16) spq_f32_to_f16_array(c, data, numel);
    else spq_f32_to_bf16_array(c, data, numel);
    e->owned = c;
    e->data = c;
    return 0;
}

int spq_st_writer_add_fill(spq_st_writer *w, const char *name, spq_st_dtype dtype, int ndim, const int64_t *shape,
                           spq_st_fill_fn fill, void *ud, spq_err *err) {
    static const uint8_t placeholder; /* spq_st_writer_add wants data for a non-empty tensor */
    if (spq_st_writer_add(w, name, dtype, ndim, shape, &placeholder, err)) return -1;
    spq_st_entry *e = &w->entries[w->n - 1];
    e->data = NULL;
    e->fill = fill;
    e->fill_ud = ud;
    return 0;
}

void spq_st_writer_meta(spq_st_writer *w, const char *key, const char *value) {
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta_keys[i], key)) {
            free(w->meta_vals[i]);
            w->meta_vals[i] = spq_strdup(value);
            return;
        }
    if (w->n_meta == w->cap_meta) {
        w->cap_meta = w->cap_meta ? 2 * w->cap_meta : 8;
        w->meta_keys = spq_realloc(w->meta_keys, (size_t)w->cap_meta * sizeof(char *));
        w->meta_vals = spq_realloc(w->meta_vals, (size_t)w->cap_meta * sizeof(char *));
    }
    w->meta_keys[w->n_meta] = spq_strdup(key);
    w->meta_vals[w->n_meta] = spq_strdup(value);
    w->n_meta++;
}

static size_t entry_bytes(const spq_st_entry *e) {
    size_t n = 0;
    shape_numel(&n, e->ndim, e->shape, spq_st_dtype_size(e->dtype));  /* checked when added */
    return n * spq_st_dtype_size(e->dtype);
}

static int write_all(int fd, const void *buf, size_t n) {
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The header JSON for entries in layout order, padded with spaces to a
 * multiple of 8 bytes. */
static char *build_header(const spq_st_writer *w, const spq_st_entry *const *order, size_t *len) {
    json_t *h = json_object();
    if (w->n_meta) {
        json_t *m = json_object();
        for (int i = 0; i < w->n_meta; i++) json_object_set_new(m, w->meta_keys[i], json_string(w->meta_vals[i]));
        json_object_set_new(h, "__metadata__", m);
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const spq_st_entry *e = order[i];
        json_t *t = json_object(), *shape = json_array();
        for (int d = 0; d < e->ndim; d++) json_array_append_new(shape, json_integer(e->shape[d]));
        size_t nb = entry_bytes(e);
        json_object_set_new(t, "dtype", json_string(spq_st_dtype_name(e->dtype)));
        json_object_set_new(t, "shape", shape);
        json_object_set_new(t, "data_offsets",
                            json_pack("[II]", (json_int_t)off, (json_int_t)(off + nb)));
        json_object_set_new(h, e->name, t);
        off += nb;
    }
    char *s = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    if (!s) return NULL;  /* only on invalid UTF-8 in a name or value */
    size_t n = strlen(s), padded = (n + 7) & ~(size_t)7;
    s = spq_realloc(s, padded + 1);
    memset(s + n, ' ', padded - n);
    s[padded] = 0;
    *len = padded;
    return s;
}

/* A filled entry's bytes, asked for in pieces of about 16 MiB of whole rows
 * through one buffer. */
static int write_filled(int fd, const spq_st_entry *e, const char *path, spq_err *err) {
    size_t nb = entry_bytes(e);
    if (!nb) return 0;
    int64_t rows = e->ndim ? e->shape[0] : 1;
    size_t row_bytes = nb / (size_t)rows, per = (16u << 20) / row_bytes;
    if (per < 1) per = 1;
    if (per > (size_t)rows) per = (size_t)rows;
    uint8_t *buf = spq_malloc(per * row_bytes);
    int rc = 0;
    for (int64_t r0 = 0; r0 < rows && !rc; r0 += (int64_t)per) {
        int64_t n = rows - r0 < (int64_t)per ? rows - r0 : (int64_t)per;
        if (e->fill(e->fill_ud, buf, r0, n, err)) rc = spq_fail_prefix(err, "%s: tensor \"%s\"", path, e->name);
        else if (write_all(fd, buf, (size_t)n * row_bytes))
            rc = spq_fail(err, "%s: write failed: %s", path, strerror(errno));
    }
    free(buf);
    return rc;
}

static int by_elsize_desc(const void *a, const void *b) {
    const spq_st_entry *x = *(const spq_st_entry *const *)a, *y = *(const spq_st_entry *const *)b;
    size_t sx = spq_st_dtype_size(x->dtype), sy = spq_st_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return x < y ? -1 : x > y;  /* stable: keep the order of addition */
}

int spq_st_writer_save(const spq_st_writer *w, const char *path, spq_err *err) {
    const spq_st_entry **order = spq_malloc((size_t)(w->n ? w->n : 1) * sizeof *order);
    for (int i = 0; i < w->n; i++) order[i] = &w->entries[i];
    qsort(order, w->n, sizeof *order, by_elsize_desc);
    size_t hlen = 0;
    char *header = build_header(w, order, &hlen);
    if (!header) {
        free(order);
        return spq_fail(err, "%s: cannot encode the header (a name or metadata value is not valid UTF-8)", path);
    }
    char *tmp = spq_malloc(strlen(path) + 16);
    sprintf(tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp), rc = 0;
    if (fd < 0) {
        rc = spq_fail(err, "%s: cannot create a temporary file: %s", path, strerror(errno));
        goto done;
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int bad = fchmod(fd, 0644) || write_all(fd, lenb, 8) || write_all(fd, header, hlen), filled = 0;
    for (int i = 0; i < w->n && !bad && !filled; i++) {
        if (order[i]->fill) filled = write_filled(fd, order[i], tmp, err);
        else bad = write_all(fd, order[i]->data, entry_bytes(order[i]));
    }
    if (filled || bad || fsync(fd)) {
        if (!filled) rc = spq_fail(err, "%s: write failed: %s", tmp, strerror(errno));
        else rc = -1;
        close(fd);
        unlink(tmp);
        goto done;
    }
    if (close(fd)) {
        rc = spq_fail(err, "%s: write failed: %s", tmp, strerror(errno));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path)) {
        rc = spq_fail(err, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
        unlink(tmp);
    }
done:
    free(tmp);
    free(header);
    free(order);
    return rc;
}
