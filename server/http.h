/* http.h - spinqd's HTTP side: libmicrohttpd with a thread pool, a route
 * table, JSON responses and errors as {"error":{"code","message","field"}}
 * (made by reply.c).
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
 * second daemon on the port fails with "address in use". What a handler
 * sees of a request and how it answers is reply.h. */
#ifndef SPQD_HTTP_H
#define SPQD_HTTP_H

#include "server/config.h"

int http_start(const spqd_config *cfg, spq_err *err);
/* Stops accepting and ends every connection. */
void http_stop(void);

#endif
