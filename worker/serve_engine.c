/* serve_engine.c - continuous batching over srv.n_slots KV cache slots.
 *
 * One thread. Each turn it drops the sequences whose client went away,
 * moves queued sequences into free slots and prefills them (one call per
 * prompt chunk, the state's slot map pointing the call at the slot), then
 * runs one decode step for every active slot together: a single
 * spq_forward with B = the active slots, T = 1, so the weights are read
 * once per step for all of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/util.h"
#include "worker/serve.h"

static pthread_t engine_thread;

void srv_out_append(srv_req *r, const char *s, size_t n) {
    if (r->out_len + n + 1 > r->out_cap) {
        r->out_cap = (r->out_len + n + 1) * 2;
        r->out = spq_realloc(r->out, r->out_cap);
    }
    memcpy(r->out + r->out_len, s, n);
    r->out_len += n;
    r->out[r->out_len] = 0;
    pthread_cond_broadcast(&r->cv);
}

static void unref(srv_req *r) {
    if (--r->refs == 0) srv_req_free(r);
}

void srv_req_release(srv_req *r, int locked) {
    if (!locked) pthread_mutex_lock(&srv.mu);
    r->cancelled = 1;
    pthread_cond_signal(&srv.engine_cv);
    unref(r);
    if (!locked) pthread_mutex_unlock(&srv.mu);
}

int srv_submit(srv_req *r) {
    pthread_mutex_lock(&srv.mu);
    int free_slots = srv.n_slots - srv.n_active;
    int waiting = srv.q_len + r->n_seqs - free_slots;
    if (waiting > srv.queue_max) {
        srv.m_rejected++;
        pthread_mutex_unlock(&srv.mu);
        return -1;
    }
    r->t_start = spq_now();
    for (int i = 0; i < r->n_seqs; i++) {
        srv_seq *q = &r->seqs[i];
        q->qnext = NULL;
        if (srv.q_tail) srv.q_tail->qnext = q;
        else srv.q_head = q;
        srv.q_tail = q;
        srv.q_len++;
        r->refs++;
    }
    srv.m_requests++;
    pthread_cond_signal(&srv.engine_cv);
    pthread_mutex_unlock(&srv.mu);
    return 0;
}

/* mu held: a sequence leaves the engine */
static void seq_release(srv_seq *q) {
    if (q->slot >= 0) {
        srv.slots[q->slot] = NULL;
        srv.n_active--;
        q->slot = -1;
    }
    unref(q->req);
}

/* the longest suffix of text[0..n) that is a proper prefix of a stop string */
static size_t stop_hold(const srv_req *r, const char *text, size_t n) {
    size_t hold = 0;
    for (int i = 0; i < r->n_stop; i++) {
        size_t L = strlen(r->stop[i]);
        for (size_t k = L - 1; k > hold && k > 0; k--)
            if (k <= n && !memcmp(text + n - k, r->stop[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* bytes at the end of text that start an unfinished UTF-8 character */
static size_t utf8_hold(const char *t, size_t n) {
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        unsigned char c = (unsigned char)t[n - back];
        if ((c & 0xC0) == 0x80) continue;
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? back : 0;
    }
    return 0;
}

static void text_add(srv_seq *q, const char *s, size_t n) {
    if (q->text_len + n + 1 > q->text_cap) {
        q->text_cap = (q->text_len + n + 1) * 2 + 64;
        q->text = spq_realloc(q->text, q->text_cap);
    }
    memcpy(q->text + q->text_len, s, n);
    q->text_len += n;
    q->text[q->text_len] = 0;
}

/* mu held: sends a streamed event; a finished sequence leaves its slot, and
 * the request's last one closes the stream with usage and [DONE] */
static void emit_locked(srv_seq *q, const char *ev) {
    srv_req *r = q->req;
    if (ev) srv_out_append(r, ev, strlen(ev));
    if (!q->done) return;
    if (++r->n_done == r->n_seqs) {
        r->t_end = spq_now();
        srv.m_gen_seconds += r->t_end - r->t_prompt1;
        if (r->stream) {
            char *u = srv_chunk_usage(r);
            srv_out_append(r, u, strlen(u));
            free(u);
            srv_out_append(r, "data: [DONE]\n\n", 14);
        }
        r->closed = 1;
        pthread_cond_broadcast(&r->cv);
    }
    seq_release(q);
}

/* A sampled token: its logprobs, the end conditions, the text, and for a
 * stream the new text that is safe to send (not a possible start of a stop
 * string, no half character). Called without mu; takes it to emit. */
static void on_token(srv_seq *q, int id, const float *logits) {
    srv_req *r = q->req;
    const spq_config *c = &srv.m.cfg;
    int V = c->vocab_size;
    size_t lp_from = q->lp ? json_array_size(q->lp) : 0;
    int prev = q->last;
    char piece[512];
    size_t pn = spq_tok_piece(srv.tok, prev, id, piece, sizeof piece);
    int end = (!r->ignore_eos && spq_config_is_eos(c, id)) || (c->bos_id >= 0 && id == c->bos_id);
    if (end) {
        q->done = 1;
        q->finish = "stop";
    } else {
        if (q->lp) {
            int k = r->logprobs, top[20];
            float tlp[20];
            float lp = srv_logprobs(logits, V, id, k, top, tlp);
            json_t *e = json_object();
            json_object_set_new(e, "id", json_integer(id));
            json_object_set_new(e, "token", srv_json_text(piece, pn));
            json_object_set_new(e, "logprob", json_real(lp));
            json_object_set_new(e, "offset", json_integer((json_int_t)q->text_len));
            json_t *tl = json_array();
            for (int i = 0; i < k; i++) {
                char p2[512];
                size_t n2 = spq_tok_piece(srv.tok, prev, top[i], p2, sizeof p2);
                json_t *t = json_object();
                json_object_set_new(t, "id", json_integer(top[i]));
                json_object_set_new(t, "token", srv_json_text(p2, n2));
                json_object_set_new(t, "logprob", json_real(tlp[i]));
                json_array_append_new(tl, t);
            }
            json_object_set_new(e, "top", tl);
            json_array_append_new(q->lp, e);
        }
        if (q->counts) q->counts[id]++;
        size_t before = q->text_len;
        text_add(q, piece, pn);
        q->n_gen++;
        q->last = id;
        for (int i = 0; i < r->n_stop; i++) {
            size_t L = strlen(r->stop[i]);
            size_t from = before >= L ? before - L + 1 : 0;
            char *hit = memmem(q->text + from, q->text_len - from, r->stop[i], L);
            if (hit) {
                q->text_len = (size_t)(hit - q->text);
                q->text[q->text_len] = 0;
                q->done = 1;
                q->finish = "stop";
                q->stop_word = r->stop[i];
                break;
            }
        }
        if (!q->done && (q->n_gen >= r->max_tokens || q->pos >= srv.ctx)) {
            q->done = 1;
            q->finish = "length";
        }
    }
    size_t safe = q->text_len;
    if (!q->done) safe -= stop_hold(r, q->text, safe) > 0 ? stop_hold(r, q->text, safe) : utf8_hold(q->text, safe);
    char *ev = NULL;
    if (r->stream && (safe > q->emitted || q->done))
        ev = srv_chunk(r, q, q->text + q->emitted, safe - q->emitted, q->done, lp_from);
    if (ev) q->chunks++;
    pthread_mutex_lock(&srv.mu);
    if (!end) srv.m_gen_tokens++;
    if (!end) r->completion_tokens++;
    q->emitted = safe;
    emit_locked(q, ev);
    pthread_mutex_unlock(&srv.mu);
    free(ev);
}

typedef struct {
    float *logits, *probs;
    int *idx, *tokens, *pos, *slot_of;
    srv_seq **batch;
} engine_buf;

static void prefill(srv_seq *q, engine_buf *b) {
    srv_req *r = q->req;
    int V = srv.m.cfg.vocab_size;
    pthread_mutex_lock(&srv.mu);
    if (!r->t_prompt0) r->t_prompt0 = spq_now();
    pthread_mutex_unlock(&srv.mu);
    int slot = q->slot;
    srv.st.slot_of = &slot;
    for (int p0 = 0; p0 < q->n_prompt; p0 += srv.chunk) {
        int T = q->n_prompt - p0 < srv.chunk ? q->n_prompt - p0 : srv.chunk;
        spq_forward(b->logits, &srv.st, q->prompt + p0, &p0, &srv.m, 1, T, SPQ_LOGITS_LAST);
    }
    srv.st.slot_of = NULL;
    q->last = q->prompt[q->n_prompt - 1];
    q->pos = q->n_prompt;
    pthread_mutex_lock(&srv.mu);
    srv.m_prompt_tokens += q->n_prompt;
    r->prompt_tokens += q->n_prompt;
    r->t_prompt1 = spq_now();
    srv.m_prompt_seconds += r->t_prompt1 - r->t_prompt0;
    pthread_mutex_unlock(&srv.mu);
    memcpy(b->probs + V, b->logits, (size_t)V * sizeof(float)); /* raw logits for logprobs */
    if (r->max_tokens == 0) { /* the prompt alone (echo, usage) */
        char *ev = r->stream ? srv_chunk(r, q, "", 0, 1, 0) : NULL;
        pthread_mutex_lock(&srv.mu);
        q->done = 1;
        q->finish = "length";
        emit_locked(q, ev);
        pthread_mutex_unlock(&srv.mu);
        free(ev);
        return;
    }
    int id = srv_sample(q, &r->s, b->logits, b->probs, b->idx, V);
    on_token(q, id, b->probs + V);
}

static void *engine_main(void *arg) {
    (void)arg;
    int V = srv.m.cfg.vocab_size, S = srv.n_slots;
    engine_buf b;
    b.logits = spq_malloc((size_t)S * V * sizeof(float));
    b.probs = spq_malloc((size_t)2 * V * sizeof(float));
    b.idx = spq_malloc((size_t)V * sizeof(int));
    b.tokens = spq_malloc((size_t)S * sizeof(int));
    b.pos = spq_malloc((size_t)S * sizeof(int));
    b.slot_of = spq_malloc((size_t)S * sizeof(int));
    b.batch = spq_malloc((size_t)S * sizeof(srv_seq *));
    srv_seq **fresh = spq_malloc((size_t)S * sizeof(srv_seq *));
    for (;;) {
        pthread_mutex_lock(&srv.mu);
        while (!srv.stop && srv.n_active == 0 && !srv.q_head && !srv.cmp) pthread_cond_wait(&srv.engine_cv, &srv.mu);
        if (srv.stop) {
            pthread_mutex_unlock(&srv.mu);
            break;
        }
        if (srv.cmp) { /* between two steps: the slots keep their caches */
            pthread_mutex_unlock(&srv.mu);
            srv_compare_pending();
            continue;
        }
        for (int i = 0; i < S; i++)
            if (srv.slots[i] && srv.slots[i]->req->cancelled) seq_release(srv.slots[i]);
        int n_fresh = 0;
        while (srv.q_head && srv.n_active < S) {
            srv_seq *q = srv.q_head;
            srv.q_head = q->qnext;
            if (!srv.q_head) srv.q_tail = NULL;
            srv.q_len--;
            if (q->req->cancelled) {
                seq_release(q);
                continue;
            }
            int s = 0;
            while (srv.slots[s]) s++;
            srv.slots[s] = q;
            q->slot = s;
            srv.n_active++;
            fresh[n_fresh++] = q;
        }
        pthread_mutex_unlock(&srv.mu);
        for (int i = 0; i < n_fresh; i++) prefill(fresh[i], &b);
        /* one decode step for every active slot (the fresh ones included) */
        int B = 0;
        pthread_mutex_lock(&srv.mu);
        for (int i = 0; i < S; i++) {
            srv_seq *q = srv.slots[i];
            if (!q || q->done || q->req->cancelled) continue;
            b.batch[B] = q;
            b.tokens[B] = q->last;
            b.pos[B] = q->pos;
            b.slot_of[B] = i;
            B++;
        }
        if (B) {
            srv.m_steps++;
            srv.m_rows += B;
            if (B > srv.m_max_batch) srv.m_max_batch = B;
        }
        pthread_mutex_unlock(&srv.mu);
        if (!B) continue;
        srv.st.slot_of = b.slot_of;
        spq_forward(b.logits, &srv.st, b.tokens, b.pos, &srv.m, B, 1, SPQ_LOGITS_LAST);
        srv.st.slot_of = NULL;
        for (int i = 0; i < B; i++) {
            srv_seq *q = b.batch[i];
            q->pos++;
            float *lg = b.logits + (size_t)i * V;
            memcpy(b.probs + V, lg, (size_t)V * sizeof(float));
            int id = srv_sample(q, &q->req->s, lg, b.probs, b.idx, V);
            on_token(q, id, b.probs + V);
        }
    }
    free(b.logits);
    free(b.probs);
    free(b.idx);
    free(b.tokens);
    free(b.pos);
    free(b.slot_of);
    free(b.batch);
    free(fresh);
    return NULL;
}

void srv_engine_start(void) {
    srv.slots = spq_calloc((size_t)srv.n_slots, sizeof(srv_seq *));
    int maxtok = srv.chunk > srv.n_slots ? srv.chunk : srv.n_slots;
    spq_state_build(&srv.st, &srv.m.cfg, srv.n_slots, srv.ctx, maxtok);
    pthread_create(&engine_thread, NULL, engine_main, NULL);
}

void srv_engine_stop(void) {
    pthread_mutex_lock(&srv.mu);
    srv.stop = 1;
    pthread_cond_signal(&srv.engine_cv);
    pthread_mutex_unlock(&srv.mu);
    pthread_join(engine_thread, NULL);
    spq_state_free(&srv.st);
    free(srv.slots);
}
