/* serve_http.c - the served model's HTTP side (libmicrohttpd, a thread per
 * connection): the routes, request bodies (at most 8 MB, JSON objects),
 * OpenAI-shaped errors, and responses: a whole JSON body once every
 * sequence is done, or Server-Sent Events read from the request's output
 * buffer as the engine fills it. A streamed client that goes away is
 * noticed on the next write; its request is cancelled and the engine frees
 * its slots before the next step. */
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/util.h"
#include "worker/serve.h"

#define MAX_BODY (8u << 20)

typedef struct {
    char *body;
    size_t len;
    int too_big;
} conn_ctx;

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg, const char *param) {
    const char *type = status == 503 ? "server_error" : status == 404 ? "not_found_error" : "invalid_request_error";
    const char *code = status == 503 ? "unavailable" : status == 413 ? "too_large" : status == 404 ? "not_found"
                       : status == 405 ? "method_not_allowed" : "invalid_request";
    return send_json(c, status, srv_error_json(msg, type, param, code));
}

/* ---- GET routes ---- */

static json_t *model_json(void) {
    return json_pack("{s:s,s:s,s:i,s:s,s:{s:s,s:I,s:I,s:s,s:s,s:s,s:i,s:i,s:s,s:o}}", "id", srv.alias, "object",
                     "model", "created", 0, "owned_by", "spinq", "meta", "path", srv.model_path, "size",
                     (json_int_t)srv.file_size, "parameters", (json_int_t)srv.n_params, "quantization", srv.quant_desc,
                     "rotation", srv.rotation, "sha256", srv.sha256, "n_ctx", srv.ctx, "n_vocab",
                     srv.m.cfg.vocab_size, "format", srv.m.packed ? "packed" : srv.m.format, "chat_template",
                     srv.chat_template ? json_string(srv.chat_template) : json_null());
}

static json_t *slots_json(void) {
    json_t *a = json_array();
    pthread_mutex_lock(&srv.mu);
    for (int i = 0; i < srv.n_slots; i++) {
        srv_seq *q = srv.slots[i];
        json_array_append_new(a, json_pack("{s:i,s:i,s:b,s:s,s:i,s:i,s:i}", "id", i, "n_ctx", srv.ctx,
                                           "is_processing", q != NULL, "state", q ? "processing" : "idle",
                                           "n_prompt_tokens", q ? q->n_prompt : 0, "n_decoded", q ? q->n_gen : 0,
                                           "n_past", q ? q->pos : 0));
    }
    pthread_mutex_unlock(&srv.mu);
    return a;
}

static char *metrics_text(void) {
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    pthread_mutex_lock(&srv.mu);
    int busy = srv.n_active;
#define M(name, type, help, fmt, val) \
    fprintf(f, "# HELP spinq_%s %s\n# TYPE spinq_%s %s\nspinq_%s " fmt "\n", name, help, name, type, name, val)
    M("prompt_tokens_total", "counter", "Prompt tokens processed.", "%lld", srv.m_prompt_tokens);
    M("tokens_predicted_total", "counter", "Tokens generated.", "%lld", srv.m_gen_tokens);
    M("prompt_seconds_total", "counter", "Time spent on prompts.", "%.6f", srv.m_prompt_seconds);
    M("tokens_predicted_seconds_total", "counter", "Time spent generating.", "%.6f", srv.m_gen_seconds);
    M("requests_total", "counter", "Requests accepted.", "%lld", srv.m_requests);
    M("requests_rejected_total", "counter", "Requests refused with 503 (queue full).", "%lld", srv.m_rejected);
    M("requests_processing", "gauge", "Slots in use.", "%d", busy);
    M("requests_deferred", "gauge", "Sequences waiting in the queue.", "%d", srv.q_len);
    M("decode_steps_total", "counter", "Batched decode steps.", "%lld", srv.m_steps);
    M("decode_rows_total", "counter", "Sequences decoded over all steps (rows / steps: the mean batch).", "%lld", srv.m_rows);
    M("decode_batch_max", "gauge", "The largest batch of a decode step.", "%d", srv.m_max_batch);
    M("slots_total", "gauge", "Slots.", "%d", srv.n_slots);
    M("kv_cache_usage_ratio", "gauge", "Slots in use over slots.", "%.4f", (double)busy / srv.n_slots);
#undef M
    pthread_mutex_unlock(&srv.mu);
    fclose(f);
    return s;
}

/* ---- streaming ---- */

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_req *r = cls;
    pthread_mutex_lock(&srv.mu);
    while (r->out_off == r->out_len && !r->closed) pthread_cond_wait(&r->cv, &srv.mu);
    ssize_t n;
    if (r->out_off == r->out_len) n = MHD_CONTENT_READER_END_OF_STREAM;
    else {
        n = (ssize_t)(r->out_len - r->out_off < max ? r->out_len - r->out_off : max);
        memcpy(buf, r->out + r->out_off, (size_t)n);
        r->out_off += (size_t)n;
    }
    pthread_mutex_unlock(&srv.mu);
    return n;
}

static void stream_free(void *cls) {
    srv_req_release(cls, 0);
}

static enum MHD_Result generate(struct MHD_Connection *c, int kind, json_t *body) {
    char msg[512];
    const char *param = NULL;
    srv_req *r;
    int rc = srv_req_parse(&r, kind, body, msg, sizeof msg, &param);
    if (rc) return send_error(c, (unsigned)rc, msg, param);
    if (srv_submit(r)) {
        srv_req_free(r);
        snprintf(msg, sizeof msg, "the server is busy: %d slots and %d queue places are taken; retry later",
                 srv.n_slots, srv.queue_max);
        return send_error(c, 503, msg, NULL);
    }
    if (r->stream) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_reader, r,
                                                                      stream_free);
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        MHD_add_response_header(resp, "X-Accel-Buffering", "no");
        enum MHD_Result ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    pthread_mutex_lock(&srv.mu);
    while (!r->closed) pthread_cond_wait(&r->cv, &srv.mu);
    pthread_mutex_unlock(&srv.mu);
    json_t *j = srv_final_json(r);
    srv_req_release(r, 0);
    return send_json(c, 200, j);
}

static enum MHD_Result compare(struct MHD_Connection *c, json_t *body) {
    char msg[512];
    const char *param = NULL;
    json_t *out;
    int rc = srv_compare(&out, body, msg, sizeof msg, &param);
    return rc ? send_error(c, (unsigned)rc, msg, param) : send_json(c, 200, out);
}

static enum MHD_Result tokenize(struct MHD_Connection *c, json_t *body) {
    json_t *content = json_object_get(body, "content");
    if (!json_is_string(content)) return send_error(c, 400, "content must be a string", "content");
    json_t *as = json_object_get(body, "add_special");
    if (as && !json_is_boolean(as)) return send_error(c, 400, "add_special must be a boolean", "add_special");
    int *ids = NULL, n = 0;
    spq_err err;
    if (spq_tok_encode(srv.tok, json_string_value(content), json_string_length(content), json_is_true(as), &ids, &n,
                       &err))
        return send_error(c, 400, err.msg, "content");
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
    free(ids);
    return send_json(c, 200, json_pack("{s:o}", "tokens", a));
}

static enum MHD_Result detokenize(struct MHD_Connection *c, json_t *body) {
    json_t *t = json_object_get(body, "tokens"), *v;
    if (!json_is_array(t)) return send_error(c, 400, "tokens must be an array of token ids", "tokens");
    int n = (int)json_array_size(t), *ids = spq_malloc(((size_t)n + 1) * sizeof(int));
    size_t i;
    json_array_foreach(t, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= srv.m.cfg.vocab_size) {
            free(ids);
            return send_error(c, 400, "tokens must be token ids within the vocabulary", "tokens");
        }
        ids[i] = (int)json_integer_value(v);
    }
    size_t len;
    char *s = spq_tok_decode_len(srv.tok, ids, n, 1, &len);
    free(ids);
    json_t *str = json_stringn(s, len);
    free(s);
    if (!str) str = json_string(""); /* not valid UTF-8 on its own */
    return send_json(c, 200, json_pack("{s:o}", "content", str));
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    conn_ctx *cc = *con_cls;
    if (!cc) {
        cc = spq_calloc(1, sizeof *cc);
        *con_cls = cc;
        return MHD_YES;
    }
    if (*upload_size) {
        if (cc->len + *upload_size > MAX_BODY) cc->too_big = 1;
        else {
            cc->body = spq_realloc(cc->body, cc->len + *upload_size + 1);
            memcpy(cc->body + cc->len, upload, *upload_size);
            cc->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) {
        if (!get) return send_error(c, 405, "use GET", NULL);
        if (srv.load_failed) return send_json(c, 500, json_pack("{s:s,s:s}", "status", "error", "error", srv.load_error));
        if (!srv.loaded)
            return send_json(c, 503, json_pack("{s:s,s:o}", "status", "loading model", "error",
                                               json_pack("{s:s,s:s,s:i}", "message", "loading model", "type",
                                                         "unavailable_error", "code", 503)));
        return send_json(c, 200, json_pack("{s:s}", "status", "ok"));
    }
    static const char *const GETS[] = {"/v1/models", "/props", "/slots", "/metrics", NULL};
    static const char *const POSTS[] = {"/v1/completions", "/v1/chat/completions", "/completion", "/completions",
                                        "/tokenize", "/detokenize", "/compare", NULL};
    int is_get = 0, is_post = 0;
    for (int i = 0; GETS[i]; i++) is_get |= !strcmp(url, GETS[i]);
    for (int i = 0; POSTS[i]; i++) is_post |= !strcmp(url, POSTS[i]);
    if (!is_get && !is_post) return send_error(c, 404, "no such endpoint", NULL);
    if ((is_get && !get) || (is_post && !post)) return send_error(c, 405, is_get ? "use GET" : "use POST", NULL);
    if (!srv.loaded) return send_error(c, 503, srv.load_failed ? srv.load_error : "loading model", NULL);
    if (!strcmp(url, "/v1/models"))
        return send_json(c, 200, json_pack("{s:s,s:[o]}", "object", "list", "data", model_json()));
    if (!strcmp(url, "/slots")) return send_json(c, 200, slots_json());
    if (!strcmp(url, "/props"))
        return send_json(c, 200, json_pack("{s:{s:i,s:f,s:f,s:i},s:i,s:s,s:o,s:o}", "default_generation_settings",
                                           "n_ctx", srv.ctx, "temperature", 1.0, "top_p", 1.0, "n_predict", -1,
                                           "total_slots", srv.n_slots, "model_path", srv.model_path, "chat_template",
                                           srv.chat_template ? json_string(srv.chat_template) : json_string(""),
                                           "model", model_json()));
    if (!strcmp(url, "/metrics")) {
        char *s = metrics_text();
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (cc->too_big) return send_error(c, 413, "the body is larger than 8 MB", NULL);
    json_error_t je;
    json_t *body = cc->body ? json_loadb(cc->body, cc->len, JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!body) {
        char msg[300];
        snprintf(msg, sizeof msg, "the body is not valid JSON%s%s", cc->body ? ": " : " (empty)",
                 cc->body ? je.text : "");
        return send_error(c, 400, msg, NULL);
    }
    enum MHD_Result ret;
    if (!json_is_object(body)) ret = send_error(c, 400, "the body must be a JSON object", NULL);
    else if (!strcmp(url, "/tokenize")) ret = tokenize(c, body);
    else if (!strcmp(url, "/detokenize")) ret = detokenize(c, body);
    else if (!strcmp(url, "/compare")) ret = compare(c, body);
    else ret = generate(c, !strcmp(url, "/v1/chat/completions") ? SRV_CHAT : !strcmp(url, "/v1/completions") ? SRV_COMPLETIONS : SRV_LLAMA, body);
    json_decref(body);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    conn_ctx *cc = *con_cls;
    if (!cc) return;
    free(cc->body);
    free(cc);
    *con_cls = NULL;
}

struct MHD_Daemon *srv_http_start(const char *listen, char *err, size_t cap) {
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        snprintf(err, cap, "--listen %s: expected HOST:PORT", listen);
        return NULL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE, .ai_family = AF_INET}, *res;
    if (getaddrinfo(host, colon + 1, &hints, &res)) {
        snprintf(err, cap, "--listen %s: cannot resolve", listen);
        return NULL;
    }
    struct sockaddr_storage ss;
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 1024u,
        MHD_OPTION_CONNECTION_TIMEOUT, 600u, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_NOTIFY_COMPLETED,
        completed, NULL, MHD_OPTION_END);
    if (!d) snprintf(err, cap, "cannot listen on %s", listen);
    return d;
}
