/* serve_req.c - a request body turned into sequences: every field checked
 * for its type and range (an unknown field is an error naming it), prompts
 * tokenized or checked against the vocabulary and the context, chat
 * messages rendered with the model's template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/base/util.h"
#include "worker/serve.h"

#define FAIL(...)                                  \
    do {                                           \
        snprintf(msg, cap, __VA_ARGS__);           \
        return 400;                                \
    } while (0)

static const char *const COMMON_FIELDS[] = {"model", "temperature", "top_p", "top_k", "min_p", "seed", "stop",
                                            "presence_penalty", "frequency_penalty", "stream", "user",
                                            "logit_bias", "truncate", "ignore_eos", NULL};
static const char *const COMPLETIONS_FIELDS[] = {"prompt", "max_tokens", "n", "logprobs", "echo", "stream_options",
                                                 "best_of", "suffix", NULL};
static const char *const CHAT_FIELDS[] = {"messages", "max_tokens", "max_completion_tokens", "n", "logprobs",
                                          "top_logprobs", "stream_options", NULL};
static const char *const LLAMA_FIELDS[] = {"prompt", "n_predict", "n_probs", "cache_prompt", "id_slot", "n", NULL};

static int in_list(const char *k, const char *const *l) {
    for (; *l; l++)
        if (!strcmp(k, *l)) return 1;
    return 0;
}

int srv_template_kind(const char *tpl) {
    if (!tpl) return SRV_TPL_NONE;
    if (strstr(tpl, "<|start_header_id|>")) return SRV_TPL_LLAMA3;
    if (strstr(tpl, "<|im_start|>")) return SRV_TPL_CHATML;
    if (strstr(tpl, "[INST]")) return SRV_TPL_LLAMA2;
    return SRV_TPL_NONE;
}

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s) {
    size_t n = strlen(s);
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = spq_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n + 1);
    b->n += n;
}

char *srv_render_chat(json_t *messages, char *msg, size_t cap, const char **param) {
    *param = "messages";
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        snprintf(msg, cap, "messages must be a non-empty array of {role, content}");
        return NULL;
    }
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!json_is_object(m) || !role || !json_is_string(json_object_get(m, "content")) ||
            (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))) {
            snprintf(msg, cap, "messages[%zu] must be {role: system|user|assistant, content: string}", i);
            return NULL;
        }
    }
    sbuf b = {0};
    sb_add(&b, "");
    const char *sys = NULL;
    json_array_foreach(messages, i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        switch (srv.template_kind) {
        case SRV_TPL_LLAMA3:
            sb_add(&b, "<|start_header_id|>");
            sb_add(&b, role);
            sb_add(&b, "<|end_header_id|>\n\n");
            sb_add(&b, content);
            sb_add(&b, "<|eot_id|>");
            break;
        case SRV_TPL_CHATML:
            sb_add(&b, "<|im_start|>");
            sb_add(&b, role);
            sb_add(&b, "\n");
            sb_add(&b, content);
            sb_add(&b, "<|im_end|>\n");
            break;
        default: /* LLaMA 2: [INST] <<SYS>>\nsys\n<</SYS>>\n\nuser [/INST] answer </s><s>[INST] ... */
            if (!strcmp(role, "system")) sys = content;
            else if (!strcmp(role, "user")) {
                sb_add(&b, "[INST] ");
                if (sys) {
                    sb_add(&b, "<<SYS>>\n");
                    sb_add(&b, sys);
                    sb_add(&b, "\n<</SYS>>\n\n");
                    sys = NULL;
                }
                sb_add(&b, content);
                sb_add(&b, " [/INST]");
            } else {
                sb_add(&b, " ");
                sb_add(&b, content);
                sb_add(&b, " </s><s>");
            }
        }
    }
    if (srv.template_kind == SRV_TPL_LLAMA3) sb_add(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    else if (srv.template_kind == SRV_TPL_CHATML) sb_add(&b, "<|im_start|>assistant\n");
    *param = NULL;
    return b.s;
}

static int get_num(json_t *body, const char *k, double lo, double hi, double *out, char *msg, size_t cap,
                   const char **param) {
    json_t *v = json_object_get(body, k);
    if (!v || json_is_null(v)) return 0;
    *param = k;
    if (!json_is_number(v)) FAIL("%s must be a number", k);
    double x = json_number_value(v);
    if (x < lo || x > hi) FAIL("%s must be between %g and %g, got %g", k, lo, hi, x);
    *out = x;
    *param = NULL;
    return 0;
}

static int get_int(json_t *body, const char *k, long long lo, long long hi, int *out, char *msg, size_t cap,
                   const char **param, const char *what) {
    json_t *v = json_object_get(body, k);
    if (!v || json_is_null(v)) return 0;
    *param = k;
    if (!json_is_integer(v)) FAIL("%s must be an integer", k);
    long long x = json_integer_value(v);
    if (x < lo) FAIL("%s must be at least %lld, got %lld", k, lo, x);
    if (x > hi) FAIL("%s must be at most %lld (%s), got %lld", k, hi, what, x);
    *out = (int)x;
    *param = NULL;
    return 0;
}

static int get_bool(json_t *body, const char *k, int *out, char *msg, size_t cap, const char **param) {
    json_t *v = json_object_get(body, k);
    if (!v || json_is_null(v)) return 0;
    *param = k;
    if (!json_is_boolean(v)) FAIL("%s must be a boolean", k);
    *out = json_is_true(v);
    *param = NULL;
    return 0;
}

/* one prompt: text (tokenized, BOS as the tokenizer says) or token ids */
static int add_prompt(srv_req *r, json_t *p, int truncate, char *msg, size_t cap, const char **param) {
    int V = srv.m.cfg.vocab_size, *ids = NULL, n = 0, k = r->n_prompts;
    char *text = NULL;
    *param = r->kind == SRV_CHAT ? "messages" : "prompt";
    if (json_is_string(p)) {
        const char *s = json_string_value(p);
        size_t len = json_string_length(p);
        if (len > (size_t)srv.ctx * 64 && !truncate)
            FAIL("the prompt has %zu bytes, more than the context of %d tokens can hold (ask for \"truncate\": true "
                 "to keep its end)", len, srv.ctx);
        spq_err err;
        if (spq_tok_encode(srv.tok, s, len, 1, &ids, &n, &err)) FAIL("prompt: %s", err.msg);
        text = spq_strdup(s);
    } else if (json_is_array(p)) {
        n = (int)json_array_size(p);
        ids = spq_malloc(((size_t)n + 1) * sizeof(int));
        size_t i;
        json_t *t;
        json_array_foreach(p, i, t) {
            if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= V) {
                free(ids);
                FAIL("prompt token %zu must be an integer id in [0, %d)", i, V);
            }
            ids[i] = (int)json_integer_value(t);
        }
        text = spq_tok_decode(srv.tok, ids, n, 1);
    } else FAIL("prompt must be a string, an array of token ids, or an array of those");
    if (n == 0) { /* start from BOS */
        free(ids);
        ids = spq_malloc(sizeof(int));
        ids[0] = srv.m.cfg.bos_id >= 0 ? srv.m.cfg.bos_id : 0;
        n = 1;
    }
    if (n >= srv.ctx) {
        if (!truncate) {
            free(ids);
            free(text);
            FAIL("the prompt has %d tokens, the context is %d (ask for \"truncate\": true to keep its end)", n,
                 srv.ctx);
        }
        int keep = srv.ctx / 2, bos = ids[0] == srv.m.cfg.bos_id;
        memmove(ids + bos, ids + n - (keep - bos), (size_t)(keep - bos) * sizeof(int));
        n = keep;
    }
    r->prompts = spq_realloc(r->prompts, (size_t)(k + 1) * sizeof(int *));
    r->n_prompt = spq_realloc(r->n_prompt, (size_t)(k + 1) * sizeof(int));
    r->prompt_text = spq_realloc(r->prompt_text, (size_t)(k + 1) * sizeof(char *));
    r->prompts[k] = ids;
    r->n_prompt[k] = n;
    r->prompt_text[k] = text;
    r->n_prompts++;
    *param = NULL;
    return 0;
}

static int parse(srv_req *r, json_t *body, char *msg, size_t cap, const char **param) {
    int kind = r->kind;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (!in_list(key, COMMON_FIELDS) &&
            !in_list(key, kind == SRV_CHAT ? CHAT_FIELDS : kind == SRV_LLAMA ? LLAMA_FIELDS : COMPLETIONS_FIELDS)) {
            *param = key;
            FAIL("unknown field \"%s\"", key);
        }
    }
    int rc, truncate = 0, stream = 0;
    double d;
    if ((rc = get_bool(body, "stream", &stream, msg, cap, param))) return rc;
    if ((rc = get_bool(body, "truncate", &truncate, msg, cap, param))) return rc;
    if ((rc = get_bool(body, "ignore_eos", &r->ignore_eos, msg, cap, param))) return rc;
    if ((rc = get_bool(body, "echo", &r->echo, msg, cap, param))) return rc;
    r->stream = stream;
    srv_sampling *s = &r->s;
    s->temperature = 1;
    s->top_p = 1;
    s->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)r;
    d = 1;
    if ((rc = get_num(body, "temperature", 0, 2, &d, msg, cap, param))) return rc;
    s->temperature = (float)d;
    d = 1;
    if ((rc = get_num(body, "top_p", 0, 1, &d, msg, cap, param))) return rc;
    s->top_p = (float)d;
    d = 0;
    if ((rc = get_num(body, "min_p", 0, 1, &d, msg, cap, param))) return rc;
    s->min_p = (float)d;
    if ((rc = get_int(body, "top_k", 0, 1 << 30, &s->top_k, msg, cap, param, "the vocabulary"))) return rc;
    d = 0;
    if ((rc = get_num(body, "presence_penalty", -2, 2, &d, msg, cap, param))) return rc;
    s->presence = (float)d;
    d = 0;
    if ((rc = get_num(body, "frequency_penalty", -2, 2, &d, msg, cap, param))) return rc;
    s->frequency = (float)d;
    json_t *seed = json_object_get(body, "seed");
    if (seed && !json_is_null(seed)) {
        *param = "seed";
        if (!json_is_integer(seed)) FAIL("seed must be an integer");
        s->seed = (uint64_t)json_integer_value(seed);
        *param = NULL;
    }
    json_t *lb = json_object_get(body, "logit_bias");
    if (lb && !json_is_null(lb)) {
        *param = "logit_bias";
        if (!json_is_object(lb)) FAIL("logit_bias must be an object of token id -> bias");
        s->bias_id = spq_malloc((json_object_size(lb) + 1) * sizeof(int));
        s->bias = spq_malloc((json_object_size(lb) + 1) * sizeof(float));
        json_object_foreach(lb, key, v) {
            char *end;
            long id = strtol(key, &end, 10);
            if (*end || end == key || id < 0 || id >= srv.m.cfg.vocab_size || !json_is_number(v) ||
                json_number_value(v) < -100 || json_number_value(v) > 100)
                FAIL("logit_bias: \"%s\" must be a token id in [0, %d) with a bias in [-100, 100]", key,
                     srv.m.cfg.vocab_size);
            s->bias_id[s->n_bias] = (int)id;
            s->bias[s->n_bias++] = (float)json_number_value(v);
        }
        *param = NULL;
    }
    json_t *stop = json_object_get(body, "stop");
    if (stop && !json_is_null(stop)) {
        *param = "stop";
        if (json_is_string(stop)) {
            if (!json_string_length(stop)) FAIL("stop must not be empty");
            r->stop = spq_malloc(sizeof(char *));
            r->stop[r->n_stop++] = spq_strdup(json_string_value(stop));
        } else if (json_is_array(stop) && json_array_size(stop) <= 4) {
            r->stop = spq_malloc((json_array_size(stop) + 1) * sizeof(char *));
            size_t i;
            json_array_foreach(stop, i, v) {
                if (!json_is_string(v) || !json_string_length(v) || json_string_length(v) > 256)
                    FAIL("stop[%zu] must be a string of 1 to 256 bytes", i);
                r->stop[r->n_stop++] = spq_strdup(json_string_value(v));
            }
        } else FAIL("stop must be a string or an array of up to 4 strings");
        *param = NULL;
    }
    int max_sequences = srv.n_slots + srv.queue_max;
    r->n = 1;
    if ((rc = get_int(body, "n", 1, srv.n_slots, &r->n, msg, cap, param, "the server's slots"))) return rc;
    const char *max_key = kind == SRV_LLAMA ? "n_predict" : "max_tokens";
    r->max_tokens = kind == SRV_COMPLETIONS ? 16 : srv.ctx;
    if (kind == SRV_LLAMA) {
        json_t *np = json_object_get(body, "n_predict");
        if (json_is_integer(np) && json_integer_value(np) == -1) json_object_del(body, "n_predict");
    }
    if (kind == SRV_CHAT && json_object_get(body, "max_completion_tokens")) max_key = "max_completion_tokens";
    if ((rc = get_int(body, max_key, 0, srv.ctx, &r->max_tokens, msg, cap, param, "the context"))) return rc;
    r->logprobs = -1;
    if (kind == SRV_CHAT) {
        int want = 0, top = 0;
        if ((rc = get_bool(body, "logprobs", &want, msg, cap, param))) return rc;
        if ((rc = get_int(body, "top_logprobs", 0, 20, &top, msg, cap, param, "OpenAI's limit"))) return rc;
        if (want) r->logprobs = top;
    } else if ((rc = get_int(body, kind == SRV_LLAMA ? "n_probs" : "logprobs", 0, kind == SRV_LLAMA ? 20 : 5,
                             &r->logprobs, msg, cap, param, "OpenAI's limit")))
        return rc;
    json_t *so = json_object_get(body, "stream_options");
    if (so && !json_is_null(so)) {
        *param = "stream_options";
        if (!json_is_object(so)) FAIL("stream_options must be an object");
        *param = NULL;
    }
    json_t *bo = json_object_get(body, "best_of");
    if (bo && !json_is_null(bo) && (!json_is_integer(bo) || json_integer_value(bo) != r->n)) {
        *param = "best_of";
        FAIL("best_of is not supported other than equal to n");
    }
    json_t *sx = json_object_get(body, "suffix");
    if (sx && !json_is_null(sx) && !(json_is_string(sx) && !json_string_length(sx))) {
        *param = "suffix";
        FAIL("suffix (insertion) is not supported");
    }
    /* prompts */
    if (kind == SRV_CHAT) {
        if (srv.template_kind == SRV_TPL_NONE) {
            *param = "messages";
            snprintf(msg, cap,
                     "the model %s has no chat template (tokenizer_config.json has no LLaMA-2, LLaMA-3 or ChatML "
                     "chat_template); use /v1/completions",
                     srv.alias);
            return 400;
        }
        char *text = srv_render_chat(json_object_get(body, "messages"), msg, cap, param);
        if (!text) return 400;
        json_t *t = json_string(text);
        free(text);
        if (!t) {
            *param = "messages";
            FAIL("messages must be valid UTF-8");
        }
        rc = add_prompt(r, t, truncate, msg, cap, param);
        json_decref(t);
        if (rc) return rc;
        r->echo = 0;
    } else {
        json_t *p = json_object_get(body, "prompt");
        if (!p) {
            *param = "prompt";
            FAIL("prompt is required");
        }
        if (json_is_array(p) && json_array_size(p) > 0 &&
            (json_is_string(json_array_get(p, 0)) || json_is_array(json_array_get(p, 0)))) {
            if (kind == SRV_LLAMA) {
                *param = "prompt";
                FAIL("prompt must be one string or one array of token ids");
            }
            size_t i;
            json_array_foreach(p, i, v) {
                if (!json_is_string(v) && !json_is_array(v)) {
                    *param = "prompt";
                    FAIL("prompt[%zu] must be a string or an array of token ids", i);
                }
                if ((rc = add_prompt(r, v, truncate, msg, cap, param))) return rc;
            }
        } else if ((rc = add_prompt(r, p, truncate, msg, cap, param))) return rc;
    }
    r->n_seqs = r->n_prompts * r->n;
    if (r->n_seqs > max_sequences) {
        *param = "prompt";
        FAIL("%d prompts x n %d = %d sequences, more than the server's %d slots and %d queue places", r->n_prompts,
             r->n, r->n_seqs, srv.n_slots, srv.queue_max);
    }
    for (int k = 0; k < r->n_prompts; k++)
        if (r->n_prompt[k] + (r->max_tokens > 0) > srv.ctx && !truncate) {
            *param = max_key;
            FAIL("the prompt has %d tokens, the context is %d", r->n_prompt[k], srv.ctx);
        }
    r->seqs = spq_calloc((size_t)r->n_seqs, sizeof(srv_seq));
    int V = srv.m.cfg.vocab_size;
    for (int i = 0; i < r->n_seqs; i++) {
        srv_seq *q = &r->seqs[i];
        q->req = r;
        q->index = i;
        q->slot = -1;
        q->prompt = r->prompts[i / r->n];
        q->n_prompt = r->n_prompt[i / r->n];
        spq_rng_seed(&q->rng, s->seed + (uint64_t)i);
        if (s->presence != 0 || s->frequency != 0) q->counts = spq_calloc((size_t)V, sizeof(int));
        if (r->logprobs >= 0) q->lp = json_array();
    }
    return 0;
}

int srv_req_parse(srv_req **out, int kind, json_t *body, char *msg, size_t cap, const char **param) {
    srv_req *r = spq_calloc(1, sizeof *r);
    r->kind = kind;
    pthread_cond_init(&r->cv, NULL);
    r->refs = 1;
    r->created = (long)time(NULL);
    static unsigned long counter;
    snprintf(r->id, sizeof r->id, "%s-%lx%lx", kind == SRV_CHAT ? "chatcmpl" : "cmpl", (unsigned long)r->created,
             __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    *param = NULL;
    int rc = json_is_object(body) ? parse(r, body, msg, cap, param) : (snprintf(msg, cap, "the body must be a JSON object"), 400);
    if (rc) {
        srv_req_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void srv_req_free(srv_req *r) {
    for (int i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i]);
        free(r->prompt_text[i]);
    }
    free(r->prompts);
    free(r->n_prompt);
    free(r->prompt_text);
    for (int i = 0; r->seqs && i < r->n_seqs; i++) {
        free(r->seqs[i].counts);
        free(r->seqs[i].text);
        json_decref(r->seqs[i].lp);
    }
    free(r->seqs);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->stop);
    free(r->s.bias_id);
    free(r->s.bias);
    free(r->out);
    pthread_cond_destroy(&r->cv);
    free(r);
}
