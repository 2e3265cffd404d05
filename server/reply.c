/* reply.c - see reply.h. Every response is made here from a buffer or a
 * file descriptor with its Content-Type; handlers add what is theirs
 * (ETag, X-Sha256, ...) to the response they get back. */
#include "server/reply.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/util.h"

http_res http_bytes(unsigned status, void *data, size_t len, const char *type) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", type);
    return (http_res){status, resp};
}

http_res http_json(unsigned status, json_t *body) {
    char *s = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(body);
    if (!s) s = spq_strdup("{\"error\":{\"code\":\"internal\",\"message\":\"cannot encode the response\"}}");
    return http_json_text(status, s);
}

http_res http_json_text(unsigned status, char *text) {
    return http_bytes(status, text, strlen(text), "application/json");
}

http_res http_err(unsigned status, const char *code, const char *field, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:s,s:s,s:o}", "code", code, "message", msg, "field", field ? json_string(field) : json_null());
    if (!e) /* a message that is not UTF-8 (cannot happen with our texts, but never crash) */
        e = json_pack("{s:s,s:s,s:n}", "code", code, "message", "(unprintable message)", "field");
    return http_json(status, json_pack("{s:o}", "error", e));
}

http_res http_not_allowed(const char *method, const char *allow) {
    http_res res = http_err(405, "method_not_allowed", NULL, "%s is not allowed here; allowed: %s", method, allow);
    MHD_add_response_header(res.resp, "Allow", allow);
    return res;
}

http_res http_file(int fd, uint64_t size, const char *type, const char *what) {
    struct MHD_Response *resp = MHD_create_response_from_fd(size, fd);
    if (!resp) {
        close(fd);
        return http_err(500, "internal", NULL, "cannot send %.200s", what);
    }
    MHD_add_response_header(resp, "Content-Type", type);
    return (http_res){200, resp};
}

void http_attachment(http_res res, const char *filename) {
    char hdr[320];
    snprintf(hdr, sizeof hdr, "attachment; filename=\"%s\"", filename);
    MHD_add_response_header(res.resp, "Content-Disposition", hdr);
}

const char *http_query(const http_req *r, const char *key) {
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

int64_t http_query_int(const http_req *r, const char *key, int64_t dflt, int64_t lo, int64_t hi, int *ok,
                       http_res *res) {
    const char *v = http_query(r, key);
    if (!v) return dflt;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || errno || *end || x < lo || x > hi) {
        *ok = 0;
        *res = http_err(400, "invalid_parameter", key, "%s: expected an integer in [%lld, %lld]", key, (long long)lo,
                        (long long)hi);
        return dflt;
    }
    return x;
}
