/* http.h - spinqd's HTTP side: libmicrohttpd with a thread pool, a route
 * table, JSON responses and errors as {"error":{"code","message","field"}}.
 *
 * A request is handled in one pool thread from the first call of the access
 * handler to the response: the body is collected (up to max_body; more is
 * read and dropped, then answered 413), the route found, the caller
 * identified (auth.h) and checked against the route's role, the query
 * parameters checked against the route's list, and the handler called with
 * the thread's SQLite connection. A path that no route matches and that is
 * not under /api or /metrics is one of the dashboard's files (static.h),
 * public like the page itself: the data it shows come through the API.
 *
 * Before routing, the head is checked in its raw (undecoded) form: a URL
 * over 8 KiB is a 414, headers over 16 KiB a 431, a control character in
 * the path (%00 would end the decoded name) a 400 naming `path`, one in a
 * query value a 400 naming the parameter. Heads that libmicrohttpd refuses
 * by itself get the same JSON envelope where they can be told apart (see
 * http.c). The listening socket is made here, without SO_REUSEPORT: a
 * second daemon on the port fails with "address in use". */
#ifndef SPQD_HTTP_H
#define SPQD_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <sqlite3.h>
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
/* A query parameter or NULL. */
const char *http_query(const http_req *r, const char *key);
/* Integer query parameter in [lo, hi]; *ok = 0 and *res set when malformed. */
int64_t http_query_int(const http_req *r, const char *key, int64_t dflt, int64_t lo, int64_t hi, int *ok,
                       http_res *res);

int http_start(const spqd_config *cfg, spq_err *err);
/* Stops accepting and ends every connection. */
void http_stop(void);

#endif
