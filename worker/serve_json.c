/* serve_json.c - what the server answers, in OpenAI's shapes (text
 * completions, chat completions, their streamed chunks) and llama.cpp's
 * (/completion): choices, logprobs, usage and timings. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/util.h"
#include "worker/serve.h"

/* bytes of the well-formed UTF-8 character at s (n bytes left), 0 if none */
static size_t utf8_char(const char *s, size_t n) {
    unsigned char c = (unsigned char)s[0];
    size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    return need && need <= n && spq_utf8_valid(s, need) ? need : 0;
}

json_t *srv_json_text(const char *s, size_t n) {
    if (spq_utf8_valid(s, n)) return json_stringn(s, n);
    char *out = spq_malloc(3 * n + 1);
    size_t o = 0;
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        k = utf8_char(s + i, n - i);
        memcpy(out + o, k ? s + i : "\xEF\xBF\xBD", k ? k : 3);
        o += k ? k : 3;
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

json_t *srv_error_json(const char *message, const char *type, const char *param, const char *code) {
    return json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", message, "type", type, "param",
                     param ? json_string(param) : json_null(), "code", code ? json_string(code) : json_null());
}

json_t *srv_usage_json(const srv_req *r) {
    return json_pack("{s:i,s:i,s:i}", "prompt_tokens", r->prompt_tokens, "completion_tokens", r->completion_tokens,
                     "total_tokens", r->prompt_tokens + r->completion_tokens);
}

json_t *srv_timings_json(const srv_req *r) {
    double pms = r->t_prompt1 > r->t_prompt0 ? (r->t_prompt1 - r->t_prompt0) * 1e3 : 0;
    double gms = r->t_end > r->t_prompt1 ? (r->t_end - r->t_prompt1) * 1e3 : 0;
    return json_pack("{s:i,s:f,s:f,s:i,s:f,s:f}", "prompt_n", r->prompt_tokens, "prompt_ms", pms,
                     "prompt_per_second", pms > 0 ? r->prompt_tokens * 1e3 / pms : 0.0, "predicted_n",
                     r->completion_tokens, "predicted_ms", gms,
                     "predicted_per_second", gms > 0 ? r->completion_tokens * 1e3 / gms : 0.0);
}

/* logprob entries [from, to) of q in the endpoint's shape */
static json_t *logprobs_json(const srv_req *r, const srv_seq *q, size_t from) {
    if (!q->lp) return json_null();
    size_t to = json_array_size(q->lp);
    if (r->kind == SRV_CHAT) {
        json_t *content = json_array();
        for (size_t i = from; i < to; i++) {
            json_t *e = json_array_get(q->lp, i), *top = json_array();
            json_t *t;
            size_t j;
            json_array_foreach(json_object_get(e, "top"), j, t) {
                json_array_append_new(top, json_pack("{s:O,s:O,s:n}", "token", json_object_get(t, "token"),
                                                     "logprob", json_object_get(t, "logprob"), "bytes"));
            }
            json_array_append_new(content, json_pack("{s:O,s:O,s:n,s:o}", "token", json_object_get(e, "token"),
                                                     "logprob", json_object_get(e, "logprob"), "bytes",
                                                     "top_logprobs", top));
        }
        return json_pack("{s:o}", "content", content);
    }
    if (r->kind == SRV_LLAMA) {
        json_t *arr = json_array();
        for (size_t i = from; i < to; i++) {
            json_t *e = json_array_get(q->lp, i), *probs = json_array(), *t;
            size_t j;
            json_array_foreach(json_object_get(e, "top"), j, t) {
                double lp = json_real_value(json_object_get(t, "logprob"));
                json_array_append_new(probs, json_pack("{s:O,s:O,s:f,s:f}", "id", json_object_get(t, "id"),
                                                       "tok_str", json_object_get(t, "token"), "prob", exp(lp),
                                                       "logprob", lp));
            }
            json_array_append_new(arr, json_pack("{s:O,s:O,s:O,s:o}", "id", json_object_get(e, "id"), "content",
                                                 json_object_get(e, "token"), "logprob",
                                                 json_object_get(e, "logprob"), "probs", probs));
        }
        return arr;
    }
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    for (size_t i = from; i < to; i++) {
        json_t *e = json_array_get(q->lp, i), *top = json_object(), *t;
        size_t j;
        json_array_foreach(json_object_get(e, "top"), j, t) {
            json_object_set(top, json_string_value(json_object_get(t, "token")), json_object_get(t, "logprob"));
        }
        json_array_append(tokens, json_object_get(e, "token"));
        json_array_append(lps, json_object_get(e, "logprob"));
        json_array_append_new(tops, top);
        json_array_append(offs, json_object_get(e, "offset"));
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offs);
}

static const char *model_id(void) {
    return srv.alias;
}

static char *sse(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    size_t n = strlen(s);
    char *out = spq_malloc(n + 9);
    memcpy(out, "data: ", 6);
    memcpy(out + 6, s, n);
    memcpy(out + 6 + n, "\n\n", 3);
    free(s);
    return out;
}

char *srv_chunk(const srv_req *r, const srv_seq *q, const char *text, size_t n, int final, size_t lp_from) {
    json_t *fin = final ? json_string(q->finish) : json_null();
    /* echo: the first chunk of a completion carries the prompt */
    char *txt = NULL;
    size_t tn = n;
    if (r->echo && q->chunks == 0) {
        const char *p = r->prompt_text[q->index / r->n];
        size_t pl = strlen(p);
        txt = spq_malloc(pl + n + 1);
        memcpy(txt, p, pl);
        memcpy(txt + pl, text, n);
        tn = pl + n;
        txt[tn] = 0;
    }
    json_t *t = srv_json_text(txt ? txt : text, tn);
    free(txt);
    if (r->kind == SRV_LLAMA) {
        json_t *j = json_pack("{s:o,s:i,s:b,s:i}", "content", t, "index", q->index, "stop", 0, "id_slot", q->slot);
        if (q->lp) json_object_set_new(j, "completion_probabilities", logprobs_json(r, q, lp_from));
        return sse(j);
    }
    json_t *choice;
    const char *obj;
    if (r->kind == SRV_CHAT) {
        json_t *delta = json_pack("{s:o}", "content", t);
        if (q->chunks == 0) json_object_set_new(delta, "role", json_string("assistant"));
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", q->index, "delta", delta, "logprobs",
                           logprobs_json(r, q, lp_from), "finish_reason", fin);
        obj = "chat.completion.chunk";
    } else {
        choice = json_pack("{s:i,s:o,s:o,s:o}", "index", q->index, "text", t, "logprobs",
                           logprobs_json(r, q, lp_from), "finish_reason", fin);
        obj = "text_completion";
    }
    return sse(json_pack("{s:s,s:s,s:i,s:s,s:[o]}", "id", r->id, "object", obj, "created", (json_int_t)r->created,
                         "model", model_id(), "choices", choice));
}

char *srv_chunk_usage(const srv_req *r) {
    if (r->kind == SRV_LLAMA)
        return sse(json_pack("{s:s,s:b,s:o,s:o,s:i,s:i}", "content", "", "stop", 1, "timings", srv_timings_json(r),
                             "usage", srv_usage_json(r), "tokens_predicted", r->completion_tokens,
                             "tokens_evaluated", r->prompt_tokens));
    return sse(json_pack("{s:s,s:s,s:i,s:s,s:[],s:o,s:o}", "id", r->id, "object",
                         r->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                         (json_int_t)r->created, "model", model_id(), "choices", "usage", srv_usage_json(r),
                         "timings", srv_timings_json(r)));
}

static json_t *full_text(const srv_req *r, const srv_seq *q) {
    if (!r->echo) return srv_json_text(q->text ? q->text : "", q->text_len);
    const char *p = r->prompt_text[q->index / r->n];
    size_t pl = strlen(p);
    char *t = spq_malloc(pl + q->text_len + 1);
    memcpy(t, p, pl);
    if (q->text_len) memcpy(t + pl, q->text, q->text_len);
    json_t *j = srv_json_text(t, pl + q->text_len);
    free(t);
    return j;
}

json_t *srv_final_json(const srv_req *r) {
    if (r->kind == SRV_LLAMA) {
        const srv_seq *q = &r->seqs[0];
        json_t *j = json_pack("{s:o,s:i,s:b,s:s,s:i,s:i,s:s,s:s,s:b,s:o,s:o}", "content", full_text(r, q), "index", 0,
                              "stop", 1, "model", model_id(), "tokens_predicted", r->completion_tokens,
                              "tokens_evaluated", r->prompt_tokens, "stop_type",
                              q->stop_word ? "word" : !strcmp(q->finish, "stop") ? "eos" : "limit", "stopping_word",
                              q->stop_word ? q->stop_word : "", "truncated", 0, "timings", srv_timings_json(r),
                              "usage", srv_usage_json(r));
        if (q->lp) json_object_set_new(j, "completion_probabilities", logprobs_json(r, q, 0));
        return j;
    }
    json_t *choices = json_array();
    for (int i = 0; i < r->n_seqs; i++) {
        const srv_seq *q = &r->seqs[i];
        json_t *c;
        if (r->kind == SRV_CHAT)
            c = json_pack("{s:i,s:{s:s,s:o},s:o,s:s}", "index", i, "message", "role", "assistant", "content",
                          full_text(r, q), "logprobs", logprobs_json(r, q, 0), "finish_reason", q->finish);
        else
            c = json_pack("{s:i,s:o,s:o,s:s}", "index", i, "text", full_text(r, q), "logprobs",
                          logprobs_json(r, q, 0), "finish_reason", q->finish);
        json_array_append_new(choices, c);
    }
    return json_pack("{s:s,s:s,s:i,s:s,s:o,s:o,s:o}", "id", r->id, "object",
                     r->kind == SRV_CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)r->created,
                     "model", model_id(), "choices", choices, "usage", srv_usage_json(r), "timings",
                     srv_timings_json(r));
}
