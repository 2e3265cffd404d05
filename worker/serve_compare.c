/* serve_compare.c - POST /compare: what the quantization costs on one
 * prompt. The served (quantized) model and the --reference model (its full
 * precision) both continue the prompt greedily; at every position of the
 * served model's continuation the reference reads the same tokens, so the
 * two next-token distributions there can be compared: KL(reference ||
 * served) and whether their top-1 tokens agree, per token (the dashboard
 * colours the text by it) and over the text. The definition of both is the
 * one of the evaluation (eval/kld.h), so a playground figure and a scored
 * run mean the same thing.
 *
 * The comparison runs on the engine thread between two decode steps (the
 * engine owns the model's compute; pool.h and the packed kernels are not
 * reentrant), with its own KV caches, so the slots keep their state; a
 * second comparison waits for the first. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/eval/kld.h"
#include "worker/serve.h"

#define CMP_MAX_TOKENS 512

struct srv_cmp {
    int *prompt, n_prompt, max_tokens;
    json_t *out;
    int done;
};

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static json_t *piece_json(int prev, int id) {
    char piece[256];
    size_t n = spq_tok_piece(srv.tok, prev, id, piece, sizeof piece);
    return srv_json_text(piece, n);
}

/* the reference's own greedy continuation, as text */
static json_t *reference_text(spq_state *s, float *logits, const srv_cmp *c) {
    int pos0 = 0, prev = c->prompt[c->n_prompt - 1];
    spq_forward(logits, s, c->prompt, &pos0, &srv.ref, 1, c->n_prompt, SPQ_LOGITS_LAST);
    json_t *toks = json_array();
    for (int i = 0; i < c->max_tokens; i++) {
        int id = argmax(logits, srv.ref.cfg.vocab_size), pos = c->n_prompt + i;
        if (spq_config_is_eos(&srv.ref.cfg, id)) break;
        json_array_append_new(toks, json_pack("{s:i,s:o}", "id", id, "text", piece_json(prev, id)));
        prev = id;
        if (i + 1 < c->max_tokens) spq_forward(logits, s, &id, &pos, &srv.ref, 1, 1, SPQ_LOGITS_LAST);
    }
    return toks;
}

static void run(srv_cmp *c) {
    const spq_model *q = &srv.m, *f = &srv.ref;
    int V = q->cfg.vocab_size, n = c->n_prompt, ctx = n + c->max_tokens;
    spq_state sq, sf;
    spq_state_build(&sq, &q->cfg, 1, ctx, n);
    spq_state_build(&sf, &f->cfg, 1, ctx, n);
    float *lq = spq_malloc((size_t)V * sizeof(float)), *lf = spq_malloc((size_t)V * sizeof(float));
    int pos0 = 0;
    spq_forward(lq, &sq, c->prompt, &pos0, q, 1, n, SPQ_LOGITS_LAST);
    spq_forward(lf, &sf, c->prompt, &pos0, f, 1, n, SPQ_LOGITS_LAST);
    spq_kld_acc acc;
    spq_kld_acc_init(&acc);
    json_t *toks = json_array();
    int prev = c->prompt[n - 1];
    double kl_max = 0;
    for (int i = 0; i < c->max_tokens; i++) {
        int id = argmax(lq, V), ref_id = argmax(lf, V), pos = n + i;
        spq_kld_add_logits(&acc, lq, lf, V, id);
        double kl = acc.kld[acc.n - 1];
        if (kl > kl_max) kl_max = kl;
        if (spq_config_is_eos(&q->cfg, id)) break;
        json_array_append_new(toks, json_pack("{s:i,s:o,s:f,s:b,s:o}", "id", id, "text", piece_json(prev, id), "kl",
                                              kl, "top1_agree", id == ref_id, "reference_top",
                                              piece_json(prev, ref_id)));
        prev = id;
        if (i + 1 < c->max_tokens) {
            spq_forward(lq, &sq, &id, &pos, q, 1, 1, SPQ_LOGITS_LAST);
            spq_forward(lf, &sf, &id, &pos, f, 1, 1, SPQ_LOGITS_LAST);
        }
    }
    json_t *ref = reference_text(&sf, lf, c);
    c->out = json_pack("{s:s,s:s,s:i,s:{s:o},s:{s:o},s:{s:I,s:f,s:f,s:f}}", "model", srv.alias, "reference",
                       srv.ref_path, "prompt_tokens", n, "quantized", "tokens", toks, "full_precision", "tokens", ref,
                       "summary", "positions", (json_int_t)acc.n, "kl_mean", acc.n ? acc.sum_kld / acc.n : 0.0,
                       "kl_max", kl_max, "top1_agreement", acc.n ? (double)acc.same_top / acc.n : 1.0);
    spq_kld_acc_free(&acc);
    free(lq);
    free(lf);
    spq_state_free(&sq);
    spq_state_free(&sf);
}

void srv_compare_pending(void) {
    pthread_mutex_lock(&srv.mu);
    srv_cmp *c = srv.cmp;
    pthread_mutex_unlock(&srv.mu);
    if (!c) return;
    run(c);
    pthread_mutex_lock(&srv.mu);
    c->done = 1;
    srv.cmp = NULL;
    pthread_cond_broadcast(&srv.cmp_cv);
    pthread_mutex_unlock(&srv.mu);
}

int srv_compare(json_t **out, json_t *body, char *msg, size_t cap, const char **param) {
    *param = NULL;
    if (!srv.have_ref) {
        snprintf(msg, cap, "this server has no reference model to compare with (start it with --reference MODEL)");
        return 400;
    }
    json_t *p = json_object_get(body, "prompt"), *mt = json_object_get(body, "max_tokens");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "prompt") && strcmp(key, "max_tokens")) {
            *param = key;
            snprintf(msg, cap, "unknown field '%s' (expected prompt, max_tokens)", key);
            return 400;
        }
    }
    if (!json_is_string(p) || !json_string_length(p)) {
        *param = "prompt";
        snprintf(msg, cap, "prompt: expected a non-empty string");
        return 400;
    }
    int limit = srv.ctx < srv.ref.cfg.seq_len ? srv.ctx : srv.ref.cfg.seq_len;
    if (limit > CMP_MAX_TOKENS + 1) limit = CMP_MAX_TOKENS + 1;
    srv_cmp c = {.max_tokens = 64};
    if (mt) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 1 || json_integer_value(mt) > CMP_MAX_TOKENS) {
            *param = "max_tokens";
            snprintf(msg, cap, "max_tokens: expected an integer in 1..%d", CMP_MAX_TOKENS);
            return 400;
        }
        c.max_tokens = (int)json_integer_value(mt);
    }
    spq_err err;
    if (spq_tok_encode(srv.tok, json_string_value(p), json_string_length(p), 1, &c.prompt, &c.n_prompt, &err)) {
        *param = "prompt";
        snprintf(msg, cap, "prompt: %s", err.msg);
        return 400;
    }
    if (c.n_prompt >= limit) {
        *param = "prompt";
        snprintf(msg, cap, "prompt: %d tokens; the comparison's context is %d", c.n_prompt, limit);
        free(c.prompt);
        return 400;
    }
    if (c.n_prompt + c.max_tokens > limit) c.max_tokens = limit - c.n_prompt;
    pthread_mutex_lock(&srv.mu);
    while (srv.cmp) pthread_cond_wait(&srv.cmp_cv, &srv.mu);
    srv.cmp = &c;
    pthread_cond_signal(&srv.engine_cv);
    while (!c.done) pthread_cond_wait(&srv.cmp_cv, &srv.mu);
    pthread_mutex_unlock(&srv.mu);
    free(c.prompt);
    *out = c.out;
    return 0;
}
