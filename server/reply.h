/* reply.h - a request as a handler sees it, and the responses handlers
 * build: JSON, errors as {"error":{"code","message","field"}}, a 405 with
 * its Allow header, bytes and files.
 *
 * The router (http.c), the dashboard's files (static.c) and the API's
 * handlers (api.h) all speak this; none of them needs another's header for
 * it. The names keep their http_ prefix: they are the HTTP vocabulary of
 * every handler, while http.h is the server itself (start, stop). */
#ifndef SPQD_REPLY_H
#define SPQD_REPLY_H

#include <jansson.h>
#include <microhttpd.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "server/auth.h"
#include "server/config.h"

typedef struct {
    struct MHD_Connection *conn;
    const char *method, *url;
    char *body;
    size_t body_len;
    identity who;
    sqlite3 *db;
    int64_t id;       /* the {id} of the path */
    const char *arg;  /* the segment after it ({step}, {name}), NULL when none */
    const spqd_config *cfg;
} http_req;

typedef struct {
    unsigned status;
    struct MHD_Response *resp;
} http_res;

http_res http_json(unsigned status, json_t *body); /* steals body */
http_res http_json_text(unsigned status, char *text); /* steals malloc'd JSON text */
http_res http_err(unsigned status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 405: method is not one of allow ("GET, HEAD"), which the Allow header lists. */
http_res http_not_allowed(const char *method, const char *allow);
/* len malloc'd bytes (stolen) of content type type. */
http_res http_bytes(unsigned status, void *data, size_t len, const char *type);
/* 200 with size bytes of the open file fd, of content type type; the fd is
 * the response's (closed with it, or here when no response can be made:
 * then the answer is a 500 saying it cannot send what). */
http_res http_file(int fd, uint64_t size, const char *type, const char *what);
/* Makes a response a download: Content-Disposition: attachment with filename. */
void http_attachment(http_res res, const char *filename);

/* A query parameter or NULL. */
const char *http_query(const http_req *r, const char *key);
/* Integer query parameter in [lo, hi]; *ok = 0 and *res set when malformed. */
int64_t http_query_int(const http_req *r, const char *key, int64_t dflt, int64_t lo, int64_t hi, int *ok,
                       http_res *res);

#endif
