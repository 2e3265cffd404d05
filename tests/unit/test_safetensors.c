/* test_safetensors.c - fp16/bf16 conversions against independent
 * definitions, the safetensors writer/reader round trip, the real
 * stories260K-hf file, and malformed files (each must fail with a message
 * naming the file and what was wrong, never crash). */
#include <criterion/criterion.h>
#include <ftw.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/half.h"
#include "common/base/safetensors.h"

/* ---- helpers ---- */

static char tmpdir[256];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static void make_tmpdir(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/spq_test_st_XXXXXX");
    cr_assert(mkdtemp(tmpdir), "mkdtemp");
}

static void remove_tmpdir(void) {
    if (tmpdir[0]) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = 0;
}

static char *tmp_path(const char *name) {
    return spq_path_join(tmpdir, name);
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* A raw safetensors file: length prefix, header text as given, data. */
static void write_raw(const char *path, const char *header, const void *data, size_t nd) {
    size_t hl = strlen(header);
    uint8_t *b = spq_malloc(8 + hl + nd);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    if (nd) memcpy(b + 8 + hl, data, nd);
    write_bytes(path, b, 8 + hl + nd);
    free(b);
}

static const char *shared_dir(void) {
    const char *s = getenv("SPINQ_SHARED");
    return s && *s ? s : "../shared";
}

/* Opening must fail with a message containing the path and every fragment. */
static void expect_open_error(const char *path, const char *frag1, const char *frag2) {
    spq_st_file f;
    spq_err err = {{0}};
    int rc = spq_st_open(&f, path, &err);
    cr_assert_eq(rc, -1, "opening %s should fail", path);
    cr_assert(strstr(err.msg, path), "message names the file: %s", err.msg);
    cr_assert(strstr(err.msg, frag1), "message mentions '%s': %s", frag1, err.msg);
    if (frag2) cr_assert(strstr(err.msg, frag2), "message mentions '%s': %s", frag2, err.msg);
}

static uint32_t f32_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static float bits_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static uint16_t f16_bits(_Float16 h) {
    uint16_t b;
    memcpy(&b, &h, 2);
    return b;
}

/* ---- fp16 / bf16 ---- */

/* binary16 from its definition: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m */
static double f16_by_definition(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

Test(half, f16_to_f32_matches_definition_for_all_65536_values) {
    for (uint32_t h = 0; h < 65536; h++) {
        float got = spq_f16_to_f32((uint16_t)h);
        double want = f16_by_definition((uint16_t)h);
        if (isnan(want)) {
            cr_assert(isnan(got), "h=0x%04x", h);
        } else {
            cr_assert_eq((double)got, want, "h=0x%04x: got %a want %a", h, (double)got, want);
            cr_assert_eq(signbit(got) != 0, (h >> 15) != 0, "sign of h=0x%04x", h);
        }
        /* the compiler's own conversion agrees bit for bit (NaN: both NaN) */
        _Float16 c;
        uint16_t hb = (uint16_t)h;
        memcpy(&c, &hb, 2);
        if (!isnan(want)) cr_assert_eq(f32_bits(got), f32_bits((float)c), "h=0x%04x", h);
    }
}

Test(half, f32_to_f16_roundtrips_every_f16_value) {
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 31) == 31 && (h & 1023)) continue;  /* NaN payloads are not preserved exactly */
        cr_assert_eq(spq_f32_to_f16(spq_f16_to_f32((uint16_t)h)), h, "h=0x%04x", h);
    }
}

Test(half, f32_to_f16_rounds_like_the_compiler_including_ties_and_subnormals) {
    /* exact midpoints between neighbouring f16 values: ties go to even */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double a = f16_by_definition((uint16_t)h), b = f16_by_definition((uint16_t)(h + 1));
        float mid = (float)((a + b) / 2);  /* exact: f16 midpoints fit in f32 */
        cr_assert_eq((double)mid, (a + b) / 2);
        cr_assert_eq(spq_f32_to_f16(mid), f16_bits((_Float16)mid), "midpoint after 0x%04x", h);
        cr_assert_eq(spq_f32_to_f16(-mid), f16_bits((_Float16)-mid), "-midpoint after 0x%04x", h);
        cr_assert_eq(spq_f32_to_f16(nextafterf(mid, 0)), f16_bits((_Float16)nextafterf(mid, 0)));
        cr_assert_eq(spq_f32_to_f16(nextafterf(mid, INFINITY)), f16_bits((_Float16)nextafterf(mid, INFINITY)));
    }
    /* random bit patterns over the whole f32 range */
    spq_rng r;
    spq_rng_seed(&r, 7);
    for (int i = 0; i < 2000000; i++) {
        float x = bits_f32((uint32_t)spq_rng_u64(&r));
        if (isnan(x)) {
            cr_assert(isnan(spq_f16_to_f32(spq_f32_to_f16(x))));
            continue;
        }
        cr_assert_eq(spq_f32_to_f16(x), f16_bits((_Float16)x), "x=%a", (double)x);
    }
    /* edges */
    float edges[] = {65504.0f, 65519.99f, 65520.0f, 1e9f, INFINITY, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f,
                     0x1p-26f, 0x1.8p-24f, 0x1p-14f, 0x1.ffcp-15f, 0.0f, 1e-45f};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        cr_assert_eq(spq_f32_to_f16(edges[i]), f16_bits((_Float16)edges[i]), "x=%a", (double)edges[i]);
        cr_assert_eq(spq_f32_to_f16(-edges[i]), f16_bits((_Float16)-edges[i]), "x=-%a", (double)edges[i]);
    }
}

/* the value of a bf16 pattern as a double; the all-ones exponent counts as
 * 2^128 so that rounding up past the largest finite value gives inf */
static double bf16_value(uint16_t b) {
    int e = (b >> 7) & 255, m = b & 127;
    double v = e == 255 ? ldexp(1, 128) : e == 0 ? ldexp(m, -133) : ldexp(128 + m, e - 134);
    return (b >> 15) ? -v : v;
}

Test(half, f32_to_bf16_is_round_to_nearest_even) {
    spq_rng r;
    spq_rng_seed(&r, 11);
    for (int i = 0; i < 2000000; i++) {
        uint32_t x = (uint32_t)spq_rng_u64(&r);
        if (i % 4 == 0) x = (x & 0xffff0000u) | 0x8000u;  /* force exact ties */
        float f = bits_f32(x);
        uint16_t got = spq_f32_to_bf16(f);
        if (isnan(f)) {
            cr_assert(isnan(spq_bf16_to_f32(got)), "NaN stays NaN");
            continue;
        }
        if (isinf(f)) {
            cr_assert_eq(got, x >> 16);
            continue;
        }
        /* the two candidates: truncation and the next pattern away from zero */
        uint16_t lo = (uint16_t)(x >> 16), hi = (uint16_t)(lo + 1);
        double dlo = fabs((double)f - bf16_value(lo)), dhi = fabs(bf16_value(hi) - (double)f);
        uint16_t want = dlo < dhi ? lo : dhi < dlo ? hi : (lo & 1) ? hi : lo;
        cr_assert_eq(got, want, "x=0x%08x", x);
        /* widening is exact: the bits move up */
        cr_assert_eq(f32_bits(spq_bf16_to_f32(got)), (uint32_t)got << 16);
    }
    cr_assert_eq(spq_f32_to_bf16(3.4028235e38f), 0x7f80, "largest float rounds to inf");
}

/* ---- writer/reader round trip ---- */

Test(safetensors, roundtrip_every_dtype_shape_and_metadata, .init = make_tmpdir, .fini = remove_tmpdir) {
    /* odd sizes so that a naive layout would misalign the wider types */
    uint8_t u8[3] = {1, 2, 255};
    int8_t i8[5] = {-128, -1, 0, 1, 127};
    uint16_t h16[6] = {0x3c00, 0xbc00, 0x0001, 0x7bff, 0x7c00, 0x8000};
    int32_t i32[2][3] = {{1, -2, 3}, {INT32_MAX, INT32_MIN, 0}};
    double f64[3] = {1.5, -2.25, 1e300};
    float f32[4] = {0.5f, -1.0f, 3.25f, 1e-30f};
    int64_t i64[1] = {-(1LL << 60)};
    float scalar = 42.0f;

    spq_st_writer w;
    spq_st_writer_init(&w);
    spq_err err = {{0}};
    int64_t s3[] = {3}, s5[] = {5}, s6[] = {2, 3}, s23[] = {2, 3}, s4[] = {2, 2}, s1[] = {1, 1, 1}, s0[] = {0, 7};
    cr_assert_eq(spq_st_writer_add(&w, "u8", SPQ_ST_U8, 1, s3, u8, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "i8", SPQ_ST_I8, 1, s5, i8, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "h16", SPQ_ST_F16, 2, s6, h16, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "i32", SPQ_ST_I32, 2, s23, i32, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "f64", SPQ_ST_F64, 1, s3, f64, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "f32", SPQ_ST_F32, 2, s4, f32, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "i64", SPQ_ST_I64, 3, s1, i64, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "scalar", SPQ_ST_F32, 0, NULL, &scalar, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "empty", SPQ_ST_BF16, 2, s0, NULL, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "u8", SPQ_ST_U8, 1, s3, u8, &err), -1, "duplicate name refused");
    cr_assert(strstr(err.msg, "\"u8\" added twice"), "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "__metadata__", SPQ_ST_U8, 1, s3, u8, &err), -1);
    spq_st_writer_meta(&w, "format", "pt");
    spq_st_writer_meta(&w, "note", "quote \" and ünïcode");
    spq_st_writer_meta(&w, "format", "spinq");  /* replaces */
    char *path = tmp_path("rt.safetensors");
    cr_assert_eq(spq_st_writer_save(&w, path, &err), 0, "%s", err.msg);
    spq_st_writer_free(&w);

    spq_st_file f;
    cr_assert_eq(spq_st_open(&f, path, &err), 0, "%s", err.msg);
    cr_assert_eq(f.n_tensors, 9);
    cr_assert_eq(f.n_meta, 2);
    cr_assert_str_eq(spq_st_meta(&f, "format"), "spinq");
    cr_assert_str_eq(spq_st_meta(&f, "note"), "quote \" and ünïcode");
    cr_assert_null(spq_st_meta(&f, "absent"));

    /* the header is padded so the data area starts 8-byte aligned, and each
     * tensor sits at a multiple of its element size (the map is page aligned) */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | f.map.data[i];
    cr_assert_eq((8 + hl) % 8, 0);
    size_t total = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const spq_st_tensor *t = &f.tensors[i];
        cr_assert_eq((size_t)(t->data - f.map.data) % spq_st_dtype_size(t->dtype), 0, "%s aligned", t->name);
        total += t->nbytes;
    }
    /* contiguous: no gaps, nothing after the last tensor */
    cr_assert_eq(f.map.size, 8 + hl + total);

    struct { const char *name; spq_st_dtype dt; int ndim; const int64_t *shape; const void *data; size_t nb; } want[] = {
        {"u8", SPQ_ST_U8, 1, s3, u8, sizeof u8},       {"i8", SPQ_ST_I8, 1, s5, i8, sizeof i8},
        {"h16", SPQ_ST_F16, 2, s6, h16, sizeof h16},   {"i32", SPQ_ST_I32, 2, s23, i32, sizeof i32},
        {"f64", SPQ_ST_F64, 1, s3, f64, sizeof f64},   {"f32", SPQ_ST_F32, 2, s4, f32, sizeof f32},
        {"i64", SPQ_ST_I64, 3, s1, i64, sizeof i64},   {"scalar", SPQ_ST_F32, 0, NULL, &scalar, 4},
        {"empty", SPQ_ST_BF16, 2, s0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const spq_st_tensor *t = spq_st_find(&f, want[i].name);
        cr_assert_not_null(t, "%s", want[i].name);
        cr_assert_eq(t->dtype, want[i].dt, "%s", want[i].name);
        cr_assert_eq(t->ndim, want[i].ndim, "%s", want[i].name);
        for (int d = 0; d < t->ndim; d++) cr_assert_eq(t->shape[d], want[i].shape[d]);
        cr_assert_eq(t->nbytes, want[i].nb, "%s", want[i].name);
        if (want[i].nb) cr_assert_eq(memcmp(t->data, want[i].data, want[i].nb), 0, "%s bytes", want[i].name);
    }
    cr_assert_null(spq_st_find(&f, "nope"));

    /* fp32 views */
    float out[6];
    cr_assert_eq(spq_st_read_f32(out, &f, "h16", 2, s6, &err), 0, "%s", err.msg);
    float h16_want[6] = {1.0f, -1.0f, 0x1p-24f, 65504.0f, INFINITY, -0.0f};
    for (int i = 0; i < 6; i++) cr_assert_eq(f32_bits(out[i]), f32_bits(h16_want[i]), "h16[%d]", i);
    cr_assert_eq(spq_st_read_f32(out, &f, "f64", 1, s3, &err), 0, "%s", err.msg);
    cr_assert(out[0] == 1.5f && out[1] == -2.25f && isinf(out[2]));
    cr_assert_eq(spq_st_read_f32(out, &f, "f32", 2, s4, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(out, f32, sizeof f32), 0);

    /* shape, type and presence are checked, naming file and tensor */
    int64_t wrong[] = {4};
    cr_assert_eq(spq_st_read_f32(out, &f, "f32", 1, wrong, &err), -1);
    cr_assert(strstr(err.msg, path) && strstr(err.msg, "\"f32\"") && strstr(err.msg, "expected shape [4], got [2, 2]"),
              "%s", err.msg);
    cr_assert_eq(spq_st_read_f32(out, &f, "i8", 1, s5, &err), -1);
    cr_assert(strstr(err.msg, "\"i8\"") && strstr(err.msg, "I8 cannot be read as floating point"), "%s", err.msg);
    cr_assert_eq(spq_st_read_f32(out, &f, "missing", 1, s5, &err), -1);
    cr_assert(strstr(err.msg, path) && strstr(err.msg, "\"missing\" is missing"), "%s", err.msg);
    spq_st_close(&f);

    /* no temporary file is left behind */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp", tmpdir);
    FILE *p = popen(cmd, "r");
    int leftover = -1;
    cr_assert_eq(fscanf(p, "%d", &leftover), 1);
    pclose(p);
    cr_assert_eq(leftover, 0);
    free(path);
}

Test(safetensors, writer_converts_f32_to_f16_and_bf16, .init = make_tmpdir, .fini = remove_tmpdir) {
    float x[5] = {1.0f / 3, -65520.0f, 1e-8f, 0x1.0101p0f, 100.0f};
    int64_t s[] = {5};
    spq_st_writer w;
    spq_st_writer_init(&w);
    spq_err err = {{0}};
    cr_assert_eq(spq_st_writer_add_f32(&w, "h", SPQ_ST_F16, 1, s, x, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add_f32(&w, "b", SPQ_ST_BF16, 1, s, x, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add_f32(&w, "f", SPQ_ST_F32, 1, s, x, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add_f32(&w, "i", SPQ_ST_I8, 1, s, x, &err), -1);
    char *path = tmp_path("conv.safetensors");
    cr_assert_eq(spq_st_writer_save(&w, path, &err), 0, "%s", err.msg);
    spq_st_writer_free(&w);
    spq_st_file f;
    cr_assert_eq(spq_st_open(&f, path, &err), 0, "%s", err.msg);
    float h[5], b[5], ff[5];
    cr_assert_eq(spq_st_read_f32(h, &f, "h", 1, s, &err), 0);
    cr_assert_eq(spq_st_read_f32(b, &f, "b", 1, s, &err), 0);
    cr_assert_eq(spq_st_read_f32(ff, &f, "f", 1, s, &err), 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(f32_bits(h[i]), f32_bits((float)(_Float16)x[i]), "f16[%d]", i);
        cr_assert_eq(f32_bits(b[i]), f32_bits(spq_bf16_to_f32(spq_f32_to_bf16(x[i]))), "bf16[%d]", i);
        cr_assert_eq(f32_bits(ff[i]), f32_bits(x[i]));
    }
    cr_assert_eq(b[3], 0x1.02p0f, "bf16 keeps 8 significant bits, ties to even");
    spq_st_close(&f);
    free(path);
}

/* rows of a (rows, 1000) F32 tensor whose element (r, c) is r + c/1000,
 * checking that the saver asks for them in order */
typedef struct {
    int64_t next;
    int calls;
} fill_state;

static int fill_rows(void *ud, void *dst, int64_t row0, int64_t nrows, spq_err *err) {
    fill_state *st = ud;
    if (row0 != st->next) return spq_fail(err, "rows asked for out of order");
    float *x = dst;
    for (int64_t r = 0; r < nrows; r++)
        for (int c = 0; c < 1000; c++) x[r * 1000 + c] = (float)(row0 + r) + (float)c / 1000;
    st->next = row0 + nrows;
    st->calls++;
    return 0;
}

static int fill_fails(void *ud, void *dst, int64_t row0, int64_t nrows, spq_err *err) {
    (void)ud; (void)dst; (void)row0; (void)nrows;
    return spq_fail(err, "no data today");
}

Test(safetensors, filled_tensors_are_written_in_pieces_as_if_added_whole, .init = make_tmpdir,
     .fini = remove_tmpdir) {
    /* 20 MB: more than one 16 MiB piece */
    int64_t s[] = {5000, 1000}, s2[] = {3};
    fill_state st = {0};
    float small[3] = {1, 2, 3};
    spq_st_writer w;
    spq_st_writer_init(&w);
    spq_err err = {{0}};
    cr_assert_eq(spq_st_writer_add_fill(&w, "big", SPQ_ST_F32, 2, s, fill_rows, &st, &err), 0, "%s", err.msg);
    cr_assert_eq(spq_st_writer_add(&w, "small", SPQ_ST_F32, 1, s2, small, &err), 0, "%s", err.msg);
    char *path = tmp_path("filled.safetensors");
    cr_assert_eq(spq_st_writer_save(&w, path, &err), 0, "%s", err.msg);
    spq_st_writer_free(&w);
    cr_assert_eq(st.next, 5000);
    cr_assert_gt(st.calls, 1, "asked in pieces");
    spq_st_file f;
    cr_assert_eq(spq_st_open(&f, path, &err), 0, "%s", err.msg);
    const spq_st_tensor *t = spq_st_find(&f, "big");
    cr_assert(t && t->nbytes == 5000 * 1000 * 4);
    float x;
    for (int64_t r = 0; r < 5000; r += 1237) {
        memcpy(&x, t->data + (r * 1000 + 999) * 4, 4);
        cr_assert_eq(x, (float)r + 0.999f, "row %ld", (long)r);
    }
    memcpy(&x, spq_st_find(&f, "small")->data + 8, 4);
    cr_assert_eq(x, 3.0f);
    spq_st_close(&f);

    /* a failing fill fails the save with the tensor named, and leaves no file */
    spq_st_writer_init(&w);
    cr_assert_eq(spq_st_writer_add_fill(&w, "nope", SPQ_ST_BF16, 1, s2, fill_fails, NULL, &err), 0);
    char *bad = tmp_path("bad.safetensors");
    cr_assert_eq(spq_st_writer_save(&w, bad, &err), -1);
    cr_assert(strstr(err.msg, "\"nope\"") && strstr(err.msg, "no data today"), "%s", err.msg);
    cr_assert_eq(access(bad, F_OK), -1);
    spq_st_writer_free(&w);
    free(bad);
    free(path);
}

Test(safetensors, save_into_missing_directory_fails_cleanly) {
    spq_st_writer w;
    spq_st_writer_init(&w);
    spq_err err = {{0}};
    cr_assert_eq(spq_st_writer_save(&w, "/nonexistent-dir/x.safetensors", &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent-dir/x.safetensors") && strstr(err.msg, "temporary file"), "%s",
              err.msg);
    spq_st_writer_free(&w);
}

/* ---- the real file ---- */

Test(safetensors, reads_the_real_stories260K_file) {
    char *path = spq_path_join(shared_dir(), "models/stories260K-hf/model.safetensors");
    spq_st_file f;
    spq_err err = {{0}};
    cr_assert_eq(spq_st_open(&f, path, &err), 0, "%s", err.msg);
    /* embedding, final norm, 9 per layer x 5 layers */
    cr_assert_eq(f.n_tensors, 2 + 9 * 5);
    cr_assert_str_eq(spq_st_meta(&f, "format"), "pt");
    const spq_st_tensor *t = spq_st_find(&f, "model.layers.3.self_attn.k_proj.weight");
    cr_assert_not_null(t);
    cr_assert(t->dtype == SPQ_ST_F32 && t->ndim == 2 && t->shape[0] == 32 && t->shape[1] == 64);
    t = spq_st_find(&f, "model.layers.4.mlp.down_proj.weight");
    cr_assert(t && t->shape[0] == 64 && t->shape[1] == 172);
    /* the RMSNorm weights of a trained model are O(1) and not all equal */
    float norm[64];
    int64_t s[] = {64};
    cr_assert_eq(spq_st_read_f32(norm, &f, "model.norm.weight", 1, s, &err), 0, "%s", err.msg);
    float mn = norm[0], mx = norm[0];
    for (int i = 0; i < 64; i++) {
        cr_assert(isfinite(norm[i]));
        mn = fminf(mn, norm[i]);
        mx = fmaxf(mx, norm[i]);
    }
    cr_assert(mx > mn && mx > 0.1f && mx < 100.0f, "norm range [%g, %g]", mn, mx);
    spq_st_close(&f);
    free(path);
}

/* ---- malformed files ---- */

static uint8_t *real_bytes(size_t *n) {
    char *path = spq_path_join(shared_dir(), "models/stories260K-hf/model.safetensors");
    char *buf;
    spq_err err;
    cr_assert_eq(spq_read_file(&buf, n, path, &err), 0, "%s", err.msg);
    free(path);
    return (uint8_t *)buf;
}

Test(safetensors_bad, truncated_at_many_points, .init = make_tmpdir, .fini = remove_tmpdir) {
    size_t n;
    uint8_t *b = real_bytes(&n);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    struct { size_t cut; const char *frag; } cuts[] = {
        {0, "truncated: 0 bytes"},
        {3, "truncated: 3 bytes"},
        {7, "truncated: 7 bytes"},
        {8, "runs past the end of the file"},
        {8 + 100, "runs past the end of the file"},
        {8 + hl - 1, "runs past the end of the file"},
        {8 + hl, "past the end of the data"},
        {8 + hl + 1000, "past the end of the data"},
        {n - 1, "past the end of the data"},
    };
    char *path = tmp_path("cut.safetensors");
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(path, b, cuts[i].cut);
        expect_open_error(path, cuts[i].frag, NULL);
    }
    free(path);
    free(b);
}

Test(safetensors_bad, header_length_past_end_of_file, .init = make_tmpdir, .fini = remove_tmpdir) {
    size_t n;
    uint8_t *b = real_bytes(&n);
    b[7] = 0x7f;  /* 2^62-ish */
    char *path = tmp_path("len.safetensors");
    write_bytes(path, b, n);
    expect_open_error(path, "header length", "runs past the end of the file");
    free(path);
    free(b);
}

Test(safetensors_bad, header_not_json_or_not_an_object, .init = make_tmpdir, .fini = remove_tmpdir) {
    char *path = tmp_path("bad.safetensors");
    write_raw(path, "{\"a\": {\"dtype\": \"F32\", ", NULL, 0);
    expect_open_error(path, "header is not valid JSON", NULL);
    write_raw(path, "\x01\x02garbage", NULL, 0);
    expect_open_error(path, "header is not valid JSON", NULL);
    write_raw(path, "[1, 2, 3]", NULL, 0);
    expect_open_error(path, "header is not a JSON object", NULL);
    write_raw(path, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                    " \"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", "abcd", 4);
    expect_open_error(path, "header is not valid JSON", "duplicate");
    free(path);
}

Test(safetensors_bad, field_errors_name_the_tensor_and_field, .init = make_tmpdir, .fini = remove_tmpdir) {
    char *path = tmp_path("bad.safetensors");
    uint8_t data[64] = {0};
    struct { const char *header; const char *f1, *f2; } cases[] = {
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 100]}}", "\"w\"",
         "end 100 is past the end of the data (64 bytes"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
         " \"v\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [8, 24]}}", "\"w\" and \"v\" overlap", NULL},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [3, 4], \"data_offsets\": [0, 16]}}", "\"w\"",
         "data_offsets give 16 bytes, but F32 shape [3, 4] needs 48"},
        {"{\"w\": {\"dtype\": \"F4\", \"shape\": [4], \"data_offsets\": [0, 2]}}", "\"w\"", "unknown dtype \"F4\""},
        {"{\"w\": {\"shape\": [4], \"data_offsets\": [0, 16]}}", "\"w\"", "dtype: missing"},
        {"{\"w\": {\"dtype\": 3, \"shape\": [4], \"data_offsets\": [0, 16]}}", "\"w\"", "dtype: missing or not a string"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [-4], \"data_offsets\": [0, 16]}}", "\"w\"",
         "shape[0]: expected a non-negative integer"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [2.0], \"data_offsets\": [0, 8]}}", "\"w\"", "shape[0]"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": \"4\", \"data_offsets\": [0, 16]}}", "\"w\"", "shape: missing"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [16, 0]}}", "\"w\"", "not a range"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [-16, 0]}}", "\"w\"", "not a range"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0]}}", "\"w\"", "data_offsets: expected"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [4]}}", "\"w\"", "data_offsets: expected"},
        {"{\"w\": [1, 2]}", "\"w\"", "expected an object"},
        {"{\"w\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296, 4294967296], \"data_offsets\": [0, 16]}}",
         "\"w\"", "too large"},
        {"{\"w\": {\"dtype\": \"U8\", \"shape\": [1,1,1,1,1,1,1,1,1], \"data_offsets\": [0, 1]}}", "\"w\"",
         "9 dimensions"},
        {"{\"__metadata__\": {\"format\": 1}}", "__metadata__", "\"format\" is not a string"},
        {"{\"__metadata__\": [\"pt\"]}", "__metadata__", "expected an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_raw(path, cases[i].header, data, sizeof data);
        expect_open_error(path, cases[i].f1, cases[i].f2);
    }
    /* adjacent tensors and empty ones anywhere do not count as overlapping */
    write_raw(path, "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                    " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 8]},"
                    " \"v\": {\"dtype\": \"I8\", \"shape\": [2, 8], \"data_offsets\": [16, 32]}}", data, sizeof data);
    spq_st_file f;
    spq_err err;
    cr_assert_eq(spq_st_open(&f, path, &err), 0, "%s", err.msg);
    cr_assert_eq(f.n_tensors, 3);
    spq_st_close(&f);
    free(path);
}

Test(safetensors_bad, missing_file_and_directory) {
    spq_st_file f;
    spq_err err;
    cr_assert_eq(spq_st_open(&f, "/nonexistent/x.safetensors", &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent/x.safetensors: cannot open"), "%s", err.msg);
    cr_assert_eq(spq_st_open(&f, "/tmp", &err), -1);
    cr_assert(strstr(err.msg, "/tmp: not a regular file"), "%s", err.msg);
}

/* Random byte corruptions of a small valid file, anywhere in it: opening
 * either succeeds (then every float tensor reads) or fails with a message
 * naming the file. Under ASan this checks that no input reads out of bounds. */
Test(safetensors_bad, random_corruptions_never_crash, .init = make_tmpdir, .fini = remove_tmpdir) {
    float a[12];
    uint16_t b[5];
    int8_t c[7];
    for (int i = 0; i < 12; i++) a[i] = (float)i - 3.5f;
    for (int i = 0; i < 5; i++) b[i] = (uint16_t)(0x3c00 + i);
    for (int i = 0; i < 7; i++) c[i] = (int8_t)(i * 9);
    int64_t sa[] = {3, 4}, sb[] = {5}, sc[] = {7};
    spq_st_writer w;
    spq_st_writer_init(&w);
    spq_err err = {{0}};
    cr_assert_eq(spq_st_writer_add(&w, "a", SPQ_ST_F32, 2, sa, a, &err), 0);
    cr_assert_eq(spq_st_writer_add(&w, "b", SPQ_ST_BF16, 1, sb, b, &err), 0);
    cr_assert_eq(spq_st_writer_add(&w, "c", SPQ_ST_I8, 1, sc, c, &err), 0);
    spq_st_writer_meta(&w, "k", "v");
    char *good = tmp_path("good.safetensors"), *bad = tmp_path("bad.safetensors");
    cr_assert_eq(spq_st_writer_save(&w, good, &err), 0, "%s", err.msg);
    spq_st_writer_free(&w);
    char *buf;
    size_t n;
    cr_assert_eq(spq_read_file(&buf, &n, good, &err), 0);
    /* JSON-ish characters make structural damage likelier than random bytes */
    const char pool[] = "{}[]\",:0123456789-e.FUIB \x00\xff";
    spq_rng r;
    spq_rng_seed(&r, 3);
    int opened = 0, failed = 0;
    for (int trial = 0; trial < 1500; trial++) {
        char *m = spq_malloc(n);
        memcpy(m, buf, n);
        int flips = 1 + (int)(spq_rng_u64(&r) % 3);
        for (int k = 0; k < flips; k++) {
            size_t pos = spq_rng_u64(&r) % n;
            m[pos] = (spq_rng_u64(&r) & 1) ? pool[spq_rng_u64(&r) % (sizeof pool - 1)] : (char)spq_rng_u64(&r);
        }
        size_t len = (spq_rng_u64(&r) % 4 == 0) ? spq_rng_u64(&r) % (n + 1) : n;
        write_bytes(bad, m, len);
        spq_st_file f;
        if (spq_st_open(&f, bad, &err) == 0) {
            opened++;
            for (int i = 0; i < f.n_tensors; i++) {
                const spq_st_tensor *t = &f.tensors[i];
                float *out = spq_malloc((t->numel ? t->numel : 1) * sizeof(float));
                if (spq_st_tensor_f32(out, &f, t, &err)) cr_assert(strstr(err.msg, bad));
                free(out);
            }
            spq_st_close(&f);
        } else {
            failed++;
            cr_assert(strstr(err.msg, bad), "message names the file: %s", err.msg);
        }
        free(m);
    }
    cr_log_info("corruptions: %d opened, %d refused", opened, failed);
    cr_assert_gt(failed, 500);
    free(buf);
    free(good);
    free(bad);
}
