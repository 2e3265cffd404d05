/* static.c - see static.h. Two steps keep the checks easy to read and to
 * test: static_map() decides from the URL alone which file may answer it
 * (the segment rules refuse traversal before any path exists), then
 * static_serve() resolves that file and makes sure its real path is still
 * inside its root (a symlink that leads out is refused too). */
#include "server/static.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/log.h"

/* First path segments the page routes itself (web/js/app.js has the same list). */
static const char *const app_routes[] = {"runs", "sweeps", "compare", "workers", "new", NULL};

static const struct {
    const char *name; /* /vendor/NAME/... */
    const char *dir;  /* relative to the web dir */
} vendors[] = {{"uplot", "node_modules/uplot/dist"}};

static const struct {
    const char *ext, *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"ico", "image/x-icon"},
    {"woff2", "font/woff2"},
    {"txt", "text/plain; charset=utf-8"},
};

const char *static_content_type(const char *name) {
    const char *slash = strrchr(name, '/'), *dot = strrchr(name, '.');
    if (!dot || (slash && dot < slash)) return NULL;
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(dot + 1, types[i].ext)) return types[i].type;
    return NULL;
}

int static_is_api_path(const char *url) {
    return !strcmp(url, "/api") || !strncmp(url, "/api/", 5) || !strcmp(url, "/metrics") ||
           !strncmp(url, "/metrics/", 9);
}

/* Copies p to rel when every segment is a plain name; 0 or -1. */
static int plain_path(const char *p, char *rel, size_t cap, int top_level) {
    size_t len = strlen(p);
    if (!len || len >= cap) return -1;
    for (const char *s = p; *s;) {
        size_t n = strcspn(s, "/");
        if (n == 0 || s[0] == '.') return -1; /* "//", ".", "..", dot files */
        if (top_level && n == 12 && !strncmp(s, "node_modules", 12)) return -1;
        for (size_t i = 0; i < n; i++)
            if (s[i] == '\\' || (unsigned char)s[i] < 0x20 || s[i] == 0x7f) return -1;
        s += n;
        if (*s == '/') {
            s++;
            if (!*s) return -1; /* a directory */
        }
    }
    if (!static_content_type(p)) return -1;
    memcpy(rel, p, len + 1);
    return 0;
}

static_kind static_map(const char *url, char *rel, size_t cap, const char **vendor_dir) {
    *vendor_dir = NULL;
    if (url[0] != '/') return STATIC_NONE;
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) return STATIC_INDEX;
    const char *p = url + 1;
    size_t n = strcspn(p, "/");
    for (int i = 0; app_routes[i]; i++)
        if (n == strlen(app_routes[i]) && !strncmp(p, app_routes[i], n)) return STATIC_INDEX;
    if (n == 6 && !strncmp(p, "vendor", 6) && p[6] == '/') {
        p += 7;
        n = strcspn(p, "/");
        for (size_t i = 0; i < sizeof vendors / sizeof *vendors; i++)
            if (n == strlen(vendors[i].name) && !strncmp(p, vendors[i].name, n) && p[n] == '/') {
                if (plain_path(p + n + 1, rel, cap, 0)) return STATIC_NONE;
                *vendor_dir = vendors[i].dir;
                return STATIC_VENDOR;
            }
        return STATIC_NONE;
    }
    return plain_path(p, rel, cap, 1) ? STATIC_NONE : STATIC_FILE;
}

void static_report(const char *web_dir) {
    if (!web_dir[0]) {
        log_info("dashboard: off (no web dir found; --web-dir DIR)");
        return;
    }
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/index.html", web_dir);
    if (access(path, R_OK)) {
        log_warn("dashboard: %s has no index.html; / answers 404", web_dir);
        return;
    }
    snprintf(path, sizeof path, "%s/%s/uPlot.esm.js", web_dir, vendors[0].dir);
    if (access(path, R_OK)) log_warn("dashboard: %s lacks uPlot (npm ci in web/, or make deps): no charts", web_dir);
    else log_info("dashboard: %s", web_dir);
}

static http_res not_found(const char *url) {
    return http_err(404, "not_found", NULL, "no such file: %.200s", url);
}

/* Opens root/rel when its real path lies inside root's; the fd or -1. */
static int open_inside(const char *root, const char *rel, struct stat *st) {
    char rroot[PATH_MAX], path[PATH_MAX + 64], rpath[PATH_MAX];
    if (!realpath(root, rroot)) return -1;
    if (snprintf(path, sizeof path, "%s/%s", rroot, rel) >= (int)sizeof path) return -1;
    if (!realpath(path, rpath)) return -1;
    size_t n = strlen(rroot);
    if (strncmp(rpath, rroot, n) || rpath[n] != '/') return -1;
    int fd = open(rpath, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (fstat(fd, st) || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void common_headers(struct MHD_Response *resp, const char *etag) {
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "ETag", etag);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
}

http_res static_serve(struct MHD_Connection *conn, const char *web_dir, const char *method, const char *url) {
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        return http_not_allowed(method, "GET, HEAD");
    }
    if (!web_dir[0])
        return http_err(404, "not_found", NULL, "no dashboard here: spinqd runs without a web dir (--web-dir DIR)");
    char rel[1024], root[PATH_MAX];
    const char *vendor_dir;
    static_kind kind = static_map(url, rel, sizeof rel, &vendor_dir);
    if (kind == STATIC_NONE) return not_found(url);
    if (kind == STATIC_INDEX) snprintf(rel, sizeof rel, "index.html");
    if (snprintf(root, sizeof root, "%s%s%s", web_dir, vendor_dir ? "/" : "", vendor_dir ? vendor_dir : "") >=
        (int)sizeof root)
        return not_found(url);
    struct stat st;
    int fd = open_inside(root, rel, &st);
    if (fd < 0) {
        if (kind == STATIC_INDEX)
            return http_err(404, "not_found", NULL, "the dashboard's index.html is missing from %s", web_dir);
        return not_found(url);
    }
    char etag[96];
    snprintf(etag, sizeof etag, "\"%llx-%lx-%llx\"", (unsigned long long)st.st_mtim.tv_sec,
             (unsigned long)st.st_mtim.tv_nsec, (unsigned long long)st.st_size);
    const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
    if (inm && (strstr(inm, etag) || !strcmp(inm, "*"))) {
        close(fd);
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        common_headers(resp, etag);
        return (http_res){304, resp};
    }
    http_res res = http_file(fd, (uint64_t)st.st_size, static_content_type(rel), url);
    if (res.status != 200) return res;
    struct MHD_Response *resp = res.resp;
    common_headers(resp, etag);
    if (kind == STATIC_INDEX) {
        /* the page's own files only; no inline script or style, no framing */
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'");
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    return res;
}
