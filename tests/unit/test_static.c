/* test_static.c - the dashboard's URL mapping: page routes answer with
 * index.html, files and vendor files map under their roots, and every path
 * that could step out (.., dot files, empty segments, backslashes, control
 * characters, node_modules outside /vendor) or has no content type maps to
 * nothing. The daemon-level test (tests/integration/dashboard.test.js) sends
 * the same kinds of paths over HTTP. */
#include <criterion/criterion.h>
#include <string.h>

#include "server/static.h"

static static_kind map(const char *url, char *rel, const char **vdir) { return static_map(url, rel, 256, vdir); }

Test(static, page_routes_are_the_index) {
    char rel[256];
    const char *vdir;
    const char *pages[] = {"/", "/index.html", "/runs", "/runs/12", "/sweeps/3", "/compare", "/workers", "/new",
                           "/runs/../../etc/passwd"};
    for (size_t i = 0; i < sizeof pages / sizeof *pages; i++)
        cr_assert_eq(map(pages[i], rel, &vdir), STATIC_INDEX, "%s", pages[i]);
}

Test(static, files_map_under_their_roots) {
    char rel[256];
    const char *vdir;
    cr_assert_eq(map("/style.css", rel, &vdir), STATIC_FILE);
    cr_assert_str_eq(rel, "style.css");
    cr_assert_null(vdir);
    cr_assert_eq(map("/js/pages/run.js", rel, &vdir), STATIC_FILE);
    cr_assert_str_eq(rel, "js/pages/run.js");
    cr_assert_eq(map("/vendor/uplot/uPlot.esm.js", rel, &vdir), STATIC_VENDOR);
    cr_assert_str_eq(rel, "uPlot.esm.js");
    cr_assert_str_eq(vdir, "node_modules/uplot/dist");
}

Test(static, traversal_and_hidden_paths_map_to_nothing) {
    char rel[256];
    const char *vdir;
    const char *bad[] = {"/../README.md",          "/js/../../Makefile",     "/./style.css",
                         "/.git/config",           "/js/.hidden.js",         "//etc/passwd.txt",
                         "/js//app.js",            "/js/",                   "/js\\..\\x.js",
                         "/node_modules/uplot/dist/uPlot.esm.js",           "/vendor/uplot/../../../x.js",
                         "/vendor/uplot/",         "/vendor/other/x.js",     "/vendor/uplot",
                         "/vendor/uplotx/uPlot.esm.js",                     "relative.js",
                         "/js/a\x01.js",           "/package.json",          "/vendor/uplot/uPlot.d.ts",
                         "/server/main.c",         "/style",                 "/runsx/1.txt/.."};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(map(bad[i], rel, &vdir), STATIC_NONE, "%s", bad[i]);
}

Test(static, long_paths_are_refused_not_cut) {
    char url[600], rel[256];
    const char *vdir;
    memset(url, 'a', sizeof url);
    url[0] = '/';
    strcpy(url + 590, ".js");
    cr_assert_eq(map(url, rel, &vdir), STATIC_NONE);
}

Test(static, content_types) {
    cr_assert_str_eq(static_content_type("index.html"), "text/html; charset=utf-8");
    cr_assert_str_eq(static_content_type("js/app.js"), "text/javascript; charset=utf-8");
    cr_assert_str_eq(static_content_type("uPlot.min.css"), "text/css; charset=utf-8");
    cr_assert_null(static_content_type("a.json"));
    cr_assert_null(static_content_type("js.d/noext"));
}

Test(static, api_paths_belong_to_the_router) {
    cr_assert(static_is_api_path("/api"));
    cr_assert(static_is_api_path("/api/runs/1"));
    cr_assert(static_is_api_path("/metrics"));
    cr_assert(!static_is_api_path("/apis.js"));
    cr_assert(!static_is_api_path("/runs/1"));
}
