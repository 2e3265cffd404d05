/* util.h - errors, files, timing and the terminal progress bar shared by
 * every part of spinq.
 *
 * Errors: functions that can fail take a `spq_err *` last and return 0 on
 * success, -1 on failure after writing a message that names the file and the
 * field that was wrong. Callers pass the message up unchanged or prefix it. */
#ifndef SPQ_UTIL_H
#define SPQ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char msg[1024];
} spq_err;

/* Writes a printf-style message into err (if err is not NULL); returns -1 so
 * that `return spq_fail(err, ...)` reads naturally. */
int spq_fail(spq_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefixes err->msg with a printf-style context; returns -1. */
int spq_fail_prefix(spq_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* malloc/calloc that abort with a message on exhaustion: an allocation failure
 * in the numerical core cannot be recovered meaningfully. */
void *spq_malloc(size_t n);
void *spq_calloc(size_t count, size_t size);
void *spq_realloc(void *p, size_t n);
char *spq_strdup(const char *s);
/* A malloc'd copy of src[0..n), or NULL when src is NULL. */
void *spq_memdup(const void *src, size_t n);

/* Reads a whole file into a NUL-terminated buffer. */
int spq_read_file(char **out, size_t *len, const char *path, spq_err *err);

/* A read-only memory map of a whole file. */
typedef struct {
    const uint8_t *data;
    size_t size;
} spq_mmap;
int spq_mmap_open(spq_mmap *m, const char *path, spq_err *err);
void spq_mmap_close(spq_mmap *m);

/* Path helpers. */
int spq_is_dir(const char *path);
int spq_file_exists(const char *path);
/* Joins dir and name into a malloc'd string. */
char *spq_path_join(const char *dir, const char *name);
/* The last component of path, without trailing slashes (malloc'd). */
char *spq_path_base(const char *path);

/* Monotonic seconds. */
double spq_now(void);

/* Peak resident set size of this process in bytes (from getrusage). */
size_t spq_peak_rss(void);

/* RssAnon of this process in KiB (/proc/self/status): its own memory,
 * without the page cache of mapped files. -1 where unavailable. */
long spq_rss_anon_kib(void);
/* The peak of RssAnon, which the kernel does not keep (its peak, VmHWM or
 * ru_maxrss, counts mapped files' pages too): a thread samples RssAnon every
 * interval_ms from start to stop, which returns the peak (KiB) and frees. */
typedef struct spq_rss_watch spq_rss_watch;
spq_rss_watch *spq_rss_watch_start(int interval_ms);
long spq_rss_watch_stop(spq_rss_watch *w);

/* UTF-8 validation: returns 1 when s[0..n) is well-formed UTF-8. */
int spq_utf8_valid(const char *s, size_t n);

/* A terminal progress bar on stderr. Redraws at most ~10 times a second, and
 * only when stderr is a terminal (otherwise prints a line every ~10%). */
typedef struct {
    const char *label;
    long total;
    long done;
    double t_start;
    double t_last;
    int last_decile;
    int tty;
} spq_progress;
void spq_progress_start(spq_progress *p, const char *label, long total);
/* `extra` is appended after the bar (e.g. "loss 2.31"); may be NULL. */
void spq_progress_update(spq_progress *p, long done, const char *extra);
void spq_progress_finish(spq_progress *p, const char *extra);

/* Seeded random numbers: xorshift64* (reproducible across machines). */
typedef struct {
    uint64_t s;
} spq_rng;
void spq_rng_seed(spq_rng *r, uint64_t seed);
uint64_t spq_rng_u64(spq_rng *r);
/* Uniform in [0, 1). */
double spq_rng_uniform(spq_rng *r);
/* Standard normal (Box-Muller). */
double spq_rng_normal(spq_rng *r);

#endif
