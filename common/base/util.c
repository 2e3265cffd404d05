/* util.c - see util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int spq_fail(spq_err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int spq_fail_prefix(spq_err *err, const char *fmt, ...) {
    if (err) {
        char prefix[512], old[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        /* prefix, ": ", old message, truncated to fit */
        size_t n = 0, cap = sizeof err->msg - 1;
        for (const char *parts[3] = {prefix, ": ", old}, **q = parts; q < parts + 3; q++)
            for (const char *c = *q; *c && n < cap; c++) err->msg[n++] = *c;
        err->msg[n] = 0;
    }
    return -1;
}

static void die_oom(size_t n) {
    fprintf(stderr, "spinq: out of memory allocating %zu bytes\n", n);
    abort();
}

void *spq_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die_oom(n);
    return p;
}

void *spq_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die_oom(count * size);
    return p;
}

void *spq_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) die_oom(n);
    return q;
}

char *spq_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = spq_malloc(n);
    memcpy(d, s, n);
    return d;
}

void *spq_memdup(const void *src, size_t n) {
    if (!src) return NULL;
    void *d = spq_malloc(n ? n : 1);
    memcpy(d, src, n);
    return d;
}

int spq_read_file(char **out, size_t *len, const char *path, spq_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return spq_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = spq_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = spq_realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return spq_fail(err, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}

int spq_mmap_open(spq_mmap *m, const char *path, spq_err *err) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return spq_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return spq_fail(err, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return spq_fail(err, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {  /* mmap of length 0 fails; an empty map is valid */
        close(fd);
        return 0;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return spq_fail(err, "%s: cannot mmap: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    return 0;
}

void spq_mmap_close(spq_mmap *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int spq_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int spq_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *spq_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = spq_malloc(a + b + 2);
    memcpy(p, dir, a);
    if (slash) p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

char *spq_path_base(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t a = n;
    while (a > 0 && path[a - 1] != '/') a--;
    char *b = spq_malloc(n - a + 1);
    memcpy(b, path + a, n - a);
    b[n - a] = 0;
    return b;
}

double spq_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t spq_peak_rss(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss * 1024;
}

long spq_rss_anon_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (kib < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, "RssAnon:", 8)) kib = strtol(line + 8, NULL, 10);
    fclose(f);
    return kib;
}

struct spq_rss_watch {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, interval_ms;
    long peak;
};

static void *rss_watch_main(void *arg) {
    spq_rss_watch *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        long k = spq_rss_anon_kib();
        if (k > w->peak) w->peak = k;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)w->interval_ms * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&w->cv, &w->mu, &until);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

spq_rss_watch *spq_rss_watch_start(int interval_ms) {
    spq_rss_watch *w = spq_calloc(1, sizeof *w);
    w->interval_ms = interval_ms > 0 ? interval_ms : 10;
    w->peak = spq_rss_anon_kib();
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, rss_watch_main, w)) w->stop = -1; /* no thread: the start value only */
    return w;
}

long spq_rss_watch_stop(spq_rss_watch *w) {
    if (w->stop == 0) {
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    long k = spq_rss_anon_kib(), peak = k > w->peak ? k : w->peak;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    return peak;
}

int spq_utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { len = 2; min = 0x80; c &= 0x1F; }
        else if ((c & 0xF0) == 0xE0) { len = 3; min = 0x800; c &= 0x0F; }
        else if ((c & 0xF8) == 0xF0) { len = 4; min = 0x10000; c &= 0x07; }
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            c = (c << 6) | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

/* ---- progress bar ---- */

void spq_progress_start(spq_progress *p, const char *label, long total) {
    p->label = label;
    p->total = total > 0 ? total : 1;
    p->done = 0;
    p->t_start = p->t_last = spq_now();
    p->last_decile = -1;
    p->tty = isatty(2);
}

static void fmt_secs(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

static void progress_draw(spq_progress *p, const char *extra, int final) {
    double el = spq_now() - p->t_start;
    double frac = (double)p->done / (double)p->total;
    if (frac > 1) frac = 1;
    double eta = p->done > 0 ? el * (1 - frac) / frac : 0;
    char e1[32], e2[32];
    fmt_secs(e1, sizeof e1, el);
    fmt_secs(e2, sizeof e2, eta);
    if (p->tty) {
        char bar[31];
        int w = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < w ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r\033[K%s [%s] %ld/%ld %s<%s%s%s%s", p->label, bar, p->done, p->total, e1,
                e2, extra ? "  " : "", extra ? extra : "", final ? "\n" : "");
    } else {
        fprintf(stderr, "%s %ld/%ld (%3.0f%%) %s elapsed, eta %s%s%s\n", p->label, p->done, p->total,
                100 * frac, e1, e2, extra ? "  " : "", extra ? extra : "");
    }
    fflush(stderr);
}

void spq_progress_update(spq_progress *p, long done, const char *extra) {
    p->done = done;
    double now = spq_now();
    if (p->tty) {
        if (now - p->t_last < 0.1) return;
        p->t_last = now;
        progress_draw(p, extra, 0);
    } else {
        int decile = (int)(10 * done / p->total);
        if (decile == p->last_decile) return;
        p->last_decile = decile;
        progress_draw(p, extra, 0);
    }
}

void spq_progress_finish(spq_progress *p, const char *extra) {
    p->done = p->total;
    if (p->tty || p->last_decile != 10) progress_draw(p, extra, 1);
}

/* ---- rng ---- */

void spq_rng_seed(spq_rng *r, uint64_t seed) {
    /* splitmix64 of the seed so that nearby seeds give unrelated streams and
     * seed 0 is valid */
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    r->s = (z ^ (z >> 31)) | 1;
}

uint64_t spq_rng_u64(spq_rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

double spq_rng_uniform(spq_rng *r) {
    return (double)(spq_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double spq_rng_normal(spq_rng *r) {
    double u1 = spq_rng_uniform(r), u2 = spq_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}
