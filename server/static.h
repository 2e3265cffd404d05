/* static.h - the dashboard's files (web/), served beside the API.
 *
 * Every path that is not the API's (/api/..., /metrics) is the dashboard's:
 *
 *   /, /runs[/...], /sweeps[/...], /compare, /workers, /new  -> index.html
 *       (the page routes itself from location.pathname)
 *   /vendor/uplot/FILE   -> WEB_DIR/node_modules/uplot/dist/FILE (npm ci in web/)
 *   /FILE                -> WEB_DIR/FILE
 *
 * A file is served only when every segment of its path is a plain name (no
 * "", ".", "..", dot files, backslashes, no node_modules outside /vendor),
 * its extension has a known content type, and its real path (symlinks
 * resolved) lies inside the directory it was mapped under; anything else is
 * a 404. Responses carry ETag and Cache-Control: no-cache (browsers
 * revalidate, a deploy is seen at once, an unchanged file costs a 304). */
#ifndef SPQD_STATIC_H
#define SPQD_STATIC_H

#include <stddef.h>

#include "server/reply.h"

typedef enum { STATIC_NONE, STATIC_INDEX, STATIC_FILE, STATIC_VENDOR } static_kind;

/* Maps a decoded URL path to what serves it: STATIC_INDEX, or STATIC_FILE /
 * STATIC_VENDOR with rel (cap bytes) the path relative to the web dir or
 * the vendor dir (*vendor_dir: that dir relative to the web dir); STATIC_NONE
 * when the path is refused or has no content type. Pure: no file access. */
static_kind static_map(const char *url, char *rel, size_t cap, const char **vendor_dir);
/* The content type for a file name, NULL when it is not served. */
const char *static_content_type(const char *name);
/* 1 when url belongs to the API (the router answers it), else 0. */
int static_is_api_path(const char *url);
/* GET/HEAD of a dashboard path; web_dir "" (none configured) answers 404
 * with a hint. */
/* Logs at start where the dashboard comes from and what it lacks. */
void static_report(const char *web_dir);
http_res static_serve(struct MHD_Connection *conn, const char *web_dir, const char *method, const char *url);

#endif
