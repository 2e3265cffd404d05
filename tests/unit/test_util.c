/* test_util.c - the shared utilities: UTF-8 validation, errors, files, the
 * seeded generator. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/json_util.h"
#include "common/base/util.h"

Test(util, utf8_validation_accepts_well_formed_and_rejects_the_rest) {
    cr_expect(spq_utf8_valid("", 0));
    cr_expect(spq_utf8_valid("plain ascii", 11));
    cr_expect(spq_utf8_valid("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", 14));
    cr_expect(!spq_utf8_valid("\xff", 1), "0xff never appears");
    cr_expect(!spq_utf8_valid("\xc3", 1), "truncated sequence");
    cr_expect(!spq_utf8_valid("\xc0\xaf", 2), "overlong /");
    cr_expect(!spq_utf8_valid("\xed\xa0\x80", 3), "surrogate");
    cr_expect(!spq_utf8_valid("\xf4\x90\x80\x80", 4), "above U+10FFFF");
    cr_expect(!spq_utf8_valid("a\x80", 2), "lone continuation byte");
}

Test(util, errors_carry_a_prefix) {
    spq_err e;
    cr_expect_eq(spq_fail(&e, "config.json: %s: missing", "hidden_size"), -1);
    spq_fail_prefix(&e, "model %d", 7);
    cr_expect_str_eq(e.msg, "model 7: config.json: hidden_size: missing");
    cr_expect_eq(spq_fail(NULL, "no crash without a sink"), -1);
}

Test(util, read_file_and_mmap_agree_and_missing_files_are_named) {
    char path[] = "/tmp/spinq-util-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert(write(fd, "hello\0world", 11) == 11);
    close(fd);
    char *buf;
    size_t n;
    spq_err e;
    cr_assert(spq_read_file(&buf, &n, path, &e) == 0);
    cr_expect_eq(n, 11);
    cr_expect(memcmp(buf, "hello\0world", 11) == 0 && buf[11] == 0);
    spq_mmap m;
    cr_assert(spq_mmap_open(&m, path, &e) == 0);
    cr_expect(m.size == 11 && memcmp(m.data, buf, 11) == 0);
    spq_mmap_close(&m);
    free(buf);
    unlink(path);
    cr_expect(spq_read_file(&buf, &n, path, &e) != 0);
    cr_expect(strstr(e.msg, path) != NULL, "%s", e.msg);
    cr_expect(spq_mmap_open(&m, "/", &e) != 0, "a directory is not a file");
}

Test(util, path_join) {
    char *a = spq_path_join("dir", "f"), *b = spq_path_join("dir/", "f");
    cr_expect_str_eq(a, "dir/f");
    cr_expect_str_eq(b, "dir/f");
    free(a);
    free(b);
}

Test(util, rng_is_reproducible_and_roughly_uniform_and_normal) {
    spq_rng a, b;
    spq_rng_seed(&a, 42);
    spq_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) cr_assert_eq(spq_rng_u64(&a), spq_rng_u64(&b));
    spq_rng_seed(&b, 43);
    cr_expect_neq(spq_rng_u64(&a), spq_rng_u64(&b));
    double s = 0, s2 = 0, n = 200000;
    for (int i = 0; i < n; i++) {
        double u = spq_rng_uniform(&a);
        cr_assert(u >= 0 && u < 1);
        s += u;
    }
    cr_expect(fabs(s / n - 0.5) < 0.005);
    s = 0;
    for (int i = 0; i < n; i++) {
        double z = spq_rng_normal(&a);
        s += z;
        s2 += z * z;
    }
    cr_expect(fabs(s / n) < 0.01 && fabs(s2 / n - 1) < 0.02, "mean %g, variance %g", s / n, s2 / n);
}

Test(util, rss_watch_sees_the_peak_of_memory_freed_before_stop) {
    long before = spq_rss_anon_kib();
    cr_assert_gt(before, 0, "RssAnon from /proc/self/status");
    spq_rss_watch *w = spq_rss_watch_start(2);
    size_t n = 64u << 20;
    char *p = malloc(n);
    memset(p, 1, n); /* touched: resident */
    usleep(50 * 1000);
    cr_assert_geq(spq_rss_anon_kib(), before + 60 * 1024);
    free(p);
    usleep(20 * 1000);
    long peak = spq_rss_watch_stop(w);
    cr_assert_geq(peak, before + 60 * 1024, "peak %ld KiB, before %ld KiB", peak, before);
}

Test(util, json_real_f32_writes_the_fewest_digits_that_read_back) {
    const float xs[] = {1e-5f, 0.9f, 500000.0f, 1.0f / 3.0f, 3.4028235e38f, 1.4e-45f, -0.1f};
    const char *want[] = {"1e-5", "0.9", "500000.0", "0.33333334", "3.4028235e38", "1e-45", "-0.1"};
    for (int i = 0; i < 7; i++) {
        json_t *v = spq_json_real_f32(xs[i]);
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(9));
        cr_assert_eq((float)json_real_value(v), xs[i], "%s does not read back as %.9g", s, (double)xs[i]);
        cr_assert_str_eq(s, want[i]);
        free(s);
        json_decref(v);
    }
}
