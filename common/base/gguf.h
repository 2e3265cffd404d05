/* gguf.h - the GGUF container (version 3; version 2 is read too), the file
 * format of llama.cpp / ggml.
 *
 * Layout (little endian throughout):
 *   uint32 magic "GGUF", uint32 version, uint64 tensor count, uint64 kv count;
 *   kv count times: string key, uint32 value type, value;
 *   tensor count times: string name, uint32 n_dims, uint64 ne[n_dims]
 *     (ne[0] the fastest-varying, i.e. the row length), uint32 ggml type,
 *     uint64 offset (from the start of the data section, a multiple of the
 *     alignment);
 *   padding to the alignment (general.alignment, 32 when absent), then the
 *   data section.
 * A string is a uint64 byte length and the bytes (no NUL). An array value is
 * a uint32 element type, a uint64 count and the elements.
 *
 * Reading maps the file (or takes a buffer) and validates everything up
 * front: every length against the bytes left, key and tensor names unique,
 * types known, a tensor's dimensions and byte size (for the ggml types whose
 * block layout is known here) inside the data section. Messages name the file
 * and the key or tensor that was wrong.
 *
 * Writing collects key/values and tensors and writes the file atomically
 * (temporary file, fsync, rename). */
#ifndef SPQ_GGUF_H
#define SPQ_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/util.h"

/* value types */
enum {
    SPQ_GGUF_U8, SPQ_GGUF_I8, SPQ_GGUF_U16, SPQ_GGUF_I16, SPQ_GGUF_U32, SPQ_GGUF_I32, SPQ_GGUF_F32, SPQ_GGUF_BOOL,
    SPQ_GGUF_STR, SPQ_GGUF_ARR, SPQ_GGUF_U64, SPQ_GGUF_I64, SPQ_GGUF_F64, SPQ_GGUF_NTYPES
};

/* ggml tensor types (the numbers are ggml's) */
enum {
    SPQ_GGML_F32 = 0, SPQ_GGML_F16 = 1, SPQ_GGML_Q4_0 = 2, SPQ_GGML_Q4_1 = 3, SPQ_GGML_Q5_0 = 6, SPQ_GGML_Q5_1 = 7,
    SPQ_GGML_Q8_0 = 8, SPQ_GGML_Q8_1 = 9, SPQ_GGML_Q2_K = 10, SPQ_GGML_Q3_K = 11, SPQ_GGML_Q4_K = 12,
    SPQ_GGML_Q5_K = 13, SPQ_GGML_Q6_K = 14, SPQ_GGML_Q8_K = 15, SPQ_GGML_IQ4_NL = 20, SPQ_GGML_I8 = 24,
    SPQ_GGML_I16 = 25, SPQ_GGML_I32 = 26, SPQ_GGML_I64 = 27, SPQ_GGML_F64 = 28, SPQ_GGML_BF16 = 30
};

/* "F32", "Q4_0", ... ("type 17" style for the others; static storage for
 * known ones, else a thread-local buffer) */
const char *spq_ggml_type_name(uint32_t type);
/* Elements per block and bytes per block; 0 when this file does not know
 * the layout of the type. */
int spq_ggml_block_size(uint32_t type);
size_t spq_ggml_type_size(uint32_t type);

#define SPQ_GGUF_MAX_DIMS 4
#define SPQ_GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    const char *s;  /* inside the file: not NUL-terminated */
    size_t len;
} spq_gguf_str;

typedef struct {
    char *key;
    uint32_t type;
    uint32_t arr_type;    /* SPQ_GGUF_ARR: the element type */
    uint64_t n;           /* SPQ_GGUF_ARR: the element count; 1 for scalars */
    const uint8_t *data;  /* the value (fixed-size types), or the first element */
    spq_gguf_str *strs;   /* SPQ_GGUF_STR: 1, an array of strings: n (owned) */
} spq_gguf_kv;

typedef struct {
    char *name;
    uint32_t n_dims;
    int64_t ne[SPQ_GGUF_MAX_DIMS];  /* 1 beyond n_dims */
    uint32_t type;
    uint64_t offset;
    const uint8_t *data;  /* inside the data section */
    size_t nbytes;        /* 0 when the type's layout is unknown */
} spq_gguf_tensor;

typedef struct {
    char *path;
    spq_mmap map;           /* when opened from a file */
    const uint8_t *buf;     /* the bytes (the map or a caller's buffer) */
    size_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t n_kv, n_tensors;
    spq_gguf_kv *kv;
    spq_gguf_tensor *tensors;
    size_t data_offset;     /* start of the data section */
} spq_gguf_file;

/* 1 when path is a regular file starting with the GGUF magic. */
int spq_gguf_is_file(const char *path);

int spq_gguf_open(spq_gguf_file *f, const char *path, spq_err *err);
/* Parses a buffer the caller keeps alive until spq_gguf_close; name stands
 * for it in messages. */
int spq_gguf_parse(spq_gguf_file *f, const char *name, const void *data, size_t size, spq_err *err);
void spq_gguf_close(spq_gguf_file *f);

const spq_gguf_kv *spq_gguf_find(const spq_gguf_file *f, const char *key);
const spq_gguf_tensor *spq_gguf_find_tensor(const spq_gguf_file *f, const char *name);

/* Typed getters. Each returns 0 with the value, 1 when the key is absent and
 * not required (*out untouched), -1 with a message naming the key when it is
 * required and absent or has the wrong type or range. Integers accept any
 * integer value type whose value fits. */
int spq_gguf_get_int(const spq_gguf_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out, int required,
                     spq_err *err);
int spq_gguf_get_float(const spq_gguf_file *f, const char *key, double *out, int required, spq_err *err);
int spq_gguf_get_bool(const spq_gguf_file *f, const char *key, int *out, int required, spq_err *err);
/* out: a malloc'd NUL-terminated copy; a string holding a NUL is an error */
int spq_gguf_get_str(const spq_gguf_file *f, const char *key, char **out, int required, spq_err *err);
/* An array of elem_type (SPQ_GGUF_STR: use kv->strs) */
int spq_gguf_get_arr(const spq_gguf_file *f, const char *key, uint32_t elem_type, const spq_gguf_kv **out,
                     int required, spq_err *err);

/* ---- writing ---- */

typedef struct {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[SPQ_GGUF_MAX_DIMS];
    void *data;  /* owned */
    size_t nbytes;
} spq_gguf_wtensor;

typedef struct {
    uint8_t *kv;      /* the serialized key/values */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    char **keys;      /* for the duplicate check */
    int n_tensors, cap_tensors;
    spq_gguf_wtensor *tensors;
    uint32_t alignment;
} spq_gguf_writer;

void spq_gguf_writer_init(spq_gguf_writer *w);
void spq_gguf_writer_free(spq_gguf_writer *w);
/* Key/values (a repeated key aborts: it is a programming error). */
void spq_gguf_set_u32(spq_gguf_writer *w, const char *key, uint32_t v);
void spq_gguf_set_i32(spq_gguf_writer *w, const char *key, int32_t v);
void spq_gguf_set_f32(spq_gguf_writer *w, const char *key, float v);
void spq_gguf_set_bool(spq_gguf_writer *w, const char *key, int v);
void spq_gguf_set_str(spq_gguf_writer *w, const char *key, const char *s);
/* lens may be NULL (strlen) */
void spq_gguf_set_str_arr(spq_gguf_writer *w, const char *key, const char *const *s, const int *lens, size_t n);
void spq_gguf_set_f32_arr(spq_gguf_writer *w, const char *key, const float *v, size_t n);
void spq_gguf_set_i32_arr(spq_gguf_writer *w, const char *key, const int32_t *v, size_t n);
/* Adds a tensor; takes ownership of data (malloc'd, nbytes as the type and
 * shape imply). Fails on a duplicate name or a size that does not match. */
int spq_gguf_add_tensor(spq_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                        void *data, size_t nbytes, spq_err *err);
int spq_gguf_writer_save(const spq_gguf_writer *w, const char *path, spq_err *err);

#endif
