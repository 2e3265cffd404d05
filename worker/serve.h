/* serve.h - `spinq-worker serve MODEL`: an OpenAI- and llama.cpp-compatible
 * completion server over one loaded model, with continuous batching.
 *
 * One file per job:
 *   serve_main.c    flags, loading the model (in the background: /health
 *                   answers 503 until it is in), start and stop
 *   serve_http.c    libmicrohttpd: routes, bodies, SSE responses, errors
 *   serve_req.c     a request's JSON turned into sequences (validation,
 *                   prompts, chat templates)
 *   serve_engine.c  the slots and the queue: one thread decodes every
 *                   active slot together, one batched spq_forward per token;
 *                   new sequences join between steps
 *   serve_sample.c  penalties, top-k, min-p, top-p, temperature; logprobs
 *   serve_json.c    the response shapes (OpenAI completions and chat,
 *                   llama.cpp /completion), streamed chunks and final bodies
 *   serve_compare.c /compare: the served model against --reference, token
 *                   by token (KL divergence, top-1 agreement)
 *
 * Locking: one mutex (srv.mu) guards the queue, the slots and every
 * request's output buffer and flags; the engine computes without it. */
#ifndef SPQ_SERVE_H
#define SPQ_SERVE_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/model/forward.h"
#include "common/model/model.h"
#include "common/tok/tokenizer.h"

enum { SRV_COMPLETIONS, SRV_CHAT, SRV_LLAMA };

typedef struct {
    float temperature, top_p, min_p;
    int top_k;
    float presence, frequency;
    uint64_t seed;
    int n_bias;
    int *bias_id;
    float *bias;
} srv_sampling;

typedef struct srv_req srv_req;
typedef struct srv_cmp srv_cmp;

typedef struct srv_seq {
    srv_req *req;
    int index;            /* the choice index */
    const int *prompt;    /* (n_prompt), owned by the request */
    int n_prompt;
    int slot;             /* -1 while queued */
    spq_rng rng;
    int *counts;          /* (vocab) generated-token counts, for penalties; NULL when off */
    int last, pos;        /* the token to feed next and its position */
    int n_gen;
    char *text;           /* generated text (bytes) */
    size_t text_len, text_cap, emitted;
    json_t *lp;           /* logprob entries (json array) or NULL */
    int done, chunks;     /* chunks: streamed events so far */
    const char *finish;   /* "stop" or "length" */
    const char *stop_word;
    struct srv_seq *qnext;
} srv_seq;

struct srv_req {
    int kind, stream;
    char id[48];
    long created;
    int **prompts;       /* (n_prompts) token ids */
    int *n_prompt;
    char **prompt_text;  /* for echo: the text of each prompt */
    int n_prompts, n;    /* choices: n_prompts * n sequences */
    int n_seqs;
    srv_seq *seqs;
    int max_tokens, logprobs, echo, ignore_eos, include_usage;
    srv_sampling s;
    char **stop;
    int n_stop;
    /* under srv.mu */
    char *out;
    size_t out_len, out_cap, out_off;
    int n_done, closed, cancelled, refs;
    pthread_cond_t cv;
    double t_start, t_prompt0, t_prompt1, t_end;
    int prompt_tokens, completion_tokens;
};

typedef struct {
    /* settings */
    const char *model_path, *listen, *alias;
    const char *ref_path;  /* --reference: the full-precision model /compare measures against */
    int n_slots, ctx, queue_max, chunk;
    /* the model, once loaded */
    int loaded, load_failed;
    char load_error[1024];
    spq_model m;
    spq_tokenizer *tok;
    spq_model ref;        /* the reference, once loaded (have_ref) */
    int have_ref;
    char *chat_template;  /* from tokenizer_config.json, or NULL */
    int template_kind;    /* SRV_TPL_* */
    char sha256[65];
    long long file_size;
    char quant_desc[128], rotation[256];
    long long n_params;
    /* engine */
    pthread_mutex_t mu;
    pthread_cond_t engine_cv;
    int stop;
    srv_seq *q_head, *q_tail;
    int q_len;
    srv_seq **slots;      /* (n_slots) */
    int n_active;
    spq_state st;
    srv_cmp *cmp;         /* a comparison for the engine to run (serve_compare.c) */
    pthread_cond_t cmp_cv;
    /* metrics, under mu */
    long long m_prompt_tokens, m_gen_tokens, m_requests, m_rejected, m_steps, m_rows;
    int m_max_batch;
    double m_prompt_seconds, m_gen_seconds;
} srv_t;

extern srv_t srv;

enum { SRV_TPL_NONE, SRV_TPL_LLAMA2, SRV_TPL_LLAMA3, SRV_TPL_CHATML };

/* serve_main.c */
int srv_main(int argc, char **argv);

/* serve_http.c */
struct MHD_Daemon;
struct MHD_Daemon *srv_http_start(const char *listen, char *err, size_t cap);

/* serve_req.c: parses a request body of `kind` into *out (allocated).
 * Returns 0, or an HTTP status with the message in msg and the field in *param. */
int srv_req_parse(srv_req **out, int kind, json_t *body, char *msg, size_t cap, const char **param);
void srv_req_free(srv_req *r);
int srv_template_kind(const char *tpl);
/* Renders chat messages with the model's template into malloc'd text. */
char *srv_render_chat(json_t *messages, char *msg, size_t cap, const char **param);

/* serve_engine.c */
void srv_engine_start(void);
void srv_engine_stop(void);
/* Queues every sequence of r; 0, or -1 when the queue is full (nothing queued). */
int srv_submit(srv_req *r);
/* Drops the HTTP side's reference (mu held by the caller when locked == 1). */
void srv_req_release(srv_req *r, int locked);
/* Appends to r's output (mu held). */
void srv_out_append(srv_req *r, const char *s, size_t n);

/* serve_compare.c: POST /compare; 0 with *out, or an HTTP status with the
 * message in msg and the field in *param. */
int srv_compare(json_t **out, json_t *body, char *msg, size_t cap, const char **param);
/* The engine's side: runs the pending comparison, if any (mu not held). */
void srv_compare_pending(void);

/* serve_sample.c */
int srv_sample(srv_seq *q, const srv_sampling *s, float *logits, float *scratch, int *iscratch, int V);
/* logprobs: fills the top-k (ids, logprobs) of logits' log-softmax and returns the logprob of id. */
float srv_logprobs(const float *logits, int V, int id, int k, int *top_ids, float *top_lp);

/* serve_json.c */
/* Generated text as a JSON string. Sampled byte tokens need not form UTF-8
 * (a model with random weights emits such bytes within a few tokens), and
 * jansson refuses those (json_stringn gives NULL, which crashed the stream
 * path): every byte that does not start a well-formed character becomes
 * U+FFFD, as a lossy decode does. Valid text is passed as it is. */
json_t *srv_json_text(const char *s, size_t n);
json_t *srv_error_json(const char *message, const char *type, const char *param, const char *code);
/* a streamed event for sequence q with new text [from, to) (and its logprob entries since lp_from) */
char *srv_chunk(const srv_req *r, const srv_seq *q, const char *text, size_t n, int final, size_t lp_from);
/* the last streamed event: usage and timings */
char *srv_chunk_usage(const srv_req *r);
/* the whole non-streamed body */
json_t *srv_final_json(const srv_req *r);
json_t *srv_usage_json(const srv_req *r);
json_t *srv_timings_json(const srv_req *r);

#endif
