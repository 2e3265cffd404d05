/* safetensors.h - reading and writing safetensors files.
 *
 * The format: an 8-byte little-endian header length N, N bytes of JSON (an
 * object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" string -> string map), then the data area;
 * offsets are relative to the start of the data area.
 *
 * Reading maps the file and validates the whole header up front (lengths,
 * types, offsets inside the data area, byte size = numel x dtype size, no
 * overlapping tensors), so later accesses need no checks. Every message
 * names the file and the tensor or field that was wrong.
 *
 * Writing collects (name, dtype, shape, data pointer) entries and metadata,
 * then writes the file atomically (temporary file + fsync + rename). Like
 * the reference implementation, the header is padded with spaces so the data
 * area starts 8-byte aligned, and tensors are laid out contiguously by
 * descending element size, so each one is aligned to its element size. */
#ifndef SPQ_SAFETENSORS_H
#define SPQ_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef enum {
    SPQ_ST_BOOL, SPQ_ST_U8, SPQ_ST_I8, SPQ_ST_F8_E4M3, SPQ_ST_F8_E5M2,
    SPQ_ST_I16, SPQ_ST_U16, SPQ_ST_F16, SPQ_ST_BF16,
    SPQ_ST_I32, SPQ_ST_U32, SPQ_ST_F32,
    SPQ_ST_I64, SPQ_ST_U64, SPQ_ST_F64,
    SPQ_ST_NDTYPES
} spq_st_dtype;

/* "F32", "BF16", ... as in the file. */
const char *spq_st_dtype_name(spq_st_dtype t);
/* Bytes per element. */
size_t spq_st_dtype_size(spq_st_dtype t);
/* Returns 0 and sets *t for a known name, -1 otherwise. */
int spq_st_dtype_parse(spq_st_dtype *t, const char *name);

#define SPQ_ST_MAX_DIMS 8

typedef struct {
    char *name;
    spq_st_dtype dtype;
    int ndim;
    int64_t shape[SPQ_ST_MAX_DIMS];
    size_t numel;
    size_t nbytes;
    const uint8_t *data;  /* inside the map; aligned only as the writer aligned it */
} spq_st_tensor;

typedef struct {
    char *path;
    spq_mmap map;
    int n_tensors;
    spq_st_tensor *tensors;  /* (n_tensors) sorted by name */
    int n_meta;
    char **meta_keys;        /* (n_meta) */
    char **meta_vals;        /* (n_meta) */
} spq_st_file;

int spq_st_open(spq_st_file *f, const char *path, spq_err *err);
void spq_st_close(spq_st_file *f);

/* The tensor of that name, or NULL. */
const spq_st_tensor *spq_st_find(const spq_st_file *f, const char *name);
/* The metadata value of that key, or NULL. */
const char *spq_st_meta(const spq_st_file *f, const char *key);

/* Checks that t has shape (ndim, shape); the message names file and tensor. */
int spq_st_check_shape(const spq_st_file *f, const spq_st_tensor *t, int ndim, const int64_t *shape,
                       spq_err *err);

/* out (numel) = tensor `name` converted to fp32 (from F32, F16, BF16 or F64),
 * after checking that it exists and has shape (ndim, shape). */
int spq_st_read_f32(float *out, const spq_st_file *f, const char *name, int ndim, const int64_t *shape,
                    spq_err *err);
/* The same from a tensor already found. */
int spq_st_tensor_f32(float *out, const spq_st_file *f, const spq_st_tensor *t, spq_err *err);

/* Formats a shape as "[a, b, c]" into buf (for messages). */
const char *spq_st_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

/* ---- writing ---- */

typedef struct {
    char *name;
    spq_st_dtype dtype;
    int ndim;
    int64_t shape[SPQ_ST_MAX_DIMS];
    const void *data;  /* numel x dtype size bytes, owned by the caller until save */
    void *owned;       /* a converted copy the writer frees, or NULL */
    /* instead of data: asked for the bytes of rows [row0, row0 + nrows) of
     * the first dimension while the file is written (spq_st_writer_add_fill) */
    int (*fill)(void *ud, void *dst, int64_t row0, int64_t nrows, spq_err *err);
    void *fill_ud;
} spq_st_entry;

typedef struct {
    int n, cap;
    spq_st_entry *entries;
    int n_meta, cap_meta;
    char **meta_keys, **meta_vals;
} spq_st_writer;

void spq_st_writer_init(spq_st_writer *w);
void spq_st_writer_free(spq_st_writer *w);
/* Adds a tensor; the data is not copied. Fails on a duplicate or reserved
 * name, a negative dimension or too many dimensions. */
int spq_st_writer_add(spq_st_writer *w, const char *name, spq_st_dtype dtype, int ndim, const int64_t *shape,
                      const void *data, spq_err *err);
/* Adds fp32 data stored as F32, F16 or BF16 (rounded to nearest even); the
 * writer keeps its own converted copy. */
int spq_st_writer_add_f32(spq_st_writer *w, const char *name, spq_st_dtype dtype, int ndim, const int64_t *shape,
                          const float *data, spq_err *err);
/* Adds a tensor whose bytes are produced while the file is written, so a
 * file larger than memory can be written: save asks fill for the rows of
 * the first dimension in order, a few MiB at a time, tensors in layout
 * order (by descending element size, then order of addition). */
typedef int (*spq_st_fill_fn)(void *ud, void *dst, int64_t row0, int64_t nrows, spq_err *err);
int spq_st_writer_add_fill(spq_st_writer *w, const char *name, spq_st_dtype dtype, int ndim, const int64_t *shape,
                           spq_st_fill_fn fill, void *ud, spq_err *err);
/* Adds or replaces a metadata entry. */
void spq_st_writer_meta(spq_st_writer *w, const char *key, const char *value);
/* Writes the file atomically: path's directory gets a temporary file that is
 * renamed over path once complete. */
int spq_st_writer_save(const spq_st_writer *w, const char *path, spq_err *err);

#endif
