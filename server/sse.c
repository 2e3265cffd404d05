/* sse.c - see sse.h. Lock order: the hub lock, then a subscriber's lock.
 * Queued messages are shared between subscribers by reference count. */
#include "server/sse.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/util.h"
#include "server/db.h"
#include "server/store.h"

#define QUEUE_LIMIT (4u << 20) /* bytes queued for one client before it falls back to catch-up */
#define PAGE 256               /* events per catch-up query */

/* The keep-alive comment; sizeof - 1: the text, not its NUL. */
static const char PING[] = ": ping\n\n";

typedef struct msg {
    atomic_int refs;
    int64_t id, run_id;
    char terminal[16]; /* the run's final status when this event ends its story, else "" */
    size_t len;
    char text[];
} msg;

typedef struct sub {
    pthread_mutex_t mu;
    struct MHD_Connection *conn;
    int64_t run_id;   /* 0: every run */
    int64_t last_id;  /* the last event id written out */
    int catching_up;
    msg **q;          /* live messages, in publish order */
    size_t q_head, q_len, q_cap, q_bytes;
    char *out;        /* formatted bytes not yet handed to MHD */
    size_t out_len, out_pos, out_cap;
    int suspended, closed, ping;
    char end_status[16]; /* a run stream's terminal status, once written out: end the stream */
    struct sub *prev, *next;
} sub;

static pthread_mutex_t hub_mu = PTHREAD_MUTEX_INITIALIZER;
static sub *hub;
static atomic_int n_subs;

int sse_clients(void) { return atomic_load(&n_subs); }

static void msg_unref(msg *m) {
    if (atomic_fetch_sub(&m->refs, 1) == 1) free(m);
}

static int final_status(const char *status) {
    return !strcmp(status, "done") || !strcmp(status, "failed") || !strcmp(status, "canceled");
}

/* Fills out (16 bytes) with the run's final status when this event is the
 * last of its story: a status event to done/failed/canceled, or deleted. */
static void terminal_of(const char *type, const char *json, char *out) {
    out[0] = 0;
    if (!strcmp(type, "deleted")) {
        snprintf(out, 16, "deleted");
        return;
    }
    if (strcmp(type, "status")) return;
    json_t *o = json_loads(json, 0, NULL);
    const char *st = json_string_value(json_object_get(o, "status"));
    if (st && final_status(st)) snprintf(out, 16, "%s", st);
    json_decref(o);
}

static msg *msg_new(int64_t id, int64_t run_id, const char *type, const char *json) {
    size_t n = strlen(type) + strlen(json) + 64;
    msg *m = spq_malloc(sizeof *m + n);
    atomic_init(&m->refs, 1);
    m->id = id;
    m->run_id = run_id;
    terminal_of(type, json, m->terminal);
    m->len = (size_t)snprintf(m->text, n, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)id, type, json);
    return m;
}

static void out_append(sub *s, const char *p, size_t n) {
    if (s->out_pos == s->out_len) s->out_pos = s->out_len = 0;
    if (s->out_len + n > s->out_cap) {
        s->out_cap = (s->out_len + n) * 2;
        s->out = spq_realloc(s->out, s->out_cap);
    }
    memcpy(s->out + s->out_len, p, n);
    s->out_len += n;
}

static void queue_clear(sub *s) {
    for (size_t i = 0; i < s->q_len; i++) msg_unref(s->q[(s->q_head + i) % s->q_cap]);
    s->q_head = s->q_len = s->q_bytes = 0;
}

static void queue_push(sub *s, msg *m) {
    if (s->q_len == s->q_cap) {
        size_t cap = s->q_cap ? 2 * s->q_cap : 64;
        msg **q = spq_malloc(cap * sizeof *q);
        for (size_t i = 0; i < s->q_len; i++) q[i] = s->q[(s->q_head + i) % s->q_cap];
        free(s->q);
        s->q = q;
        s->q_cap = cap;
        s->q_head = 0;
    }
    atomic_fetch_add(&m->refs, 1);
    s->q[(s->q_head + s->q_len++) % s->q_cap] = m;
    s->q_bytes += m->len;
}

void sse_publish(int64_t id, int64_t run_id, const char *type, const char *json) {
    msg *m = NULL;
    pthread_mutex_lock(&hub_mu);
    for (sub *s = hub; s; s = s->next) {
        if (s->run_id && s->run_id != run_id) continue;
        if (!m) m = msg_new(id, run_id, type, json);
        pthread_mutex_lock(&s->mu);
        /* queued while catching up too: an event committed after the last
         * catch-up read but before the switch to live would otherwise be
         * lost (duplicates of what the store gave are dropped by id) */
        if (!s->closed) {
            if (s->q_bytes + m->len > QUEUE_LIMIT) { /* too slow: read the rest from the store */
                queue_clear(s);
                s->catching_up = 1;
            } else {
                queue_push(s, m);
            }
        }
        if (s->suspended) {
            s->suspended = 0;
            MHD_resume_connection(s->conn);
        }
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&hub_mu);
    if (m) msg_unref(m);
}

static void replay_one(void *ud, int64_t id, int64_t run_id, const char *type, const char *json) {
    sub *s = ud;
    char head[96];
    int n = snprintf(head, sizeof head, "id: %lld\nevent: %s\ndata: ", (long long)id, type);
    out_append(s, head, (size_t)n);
    out_append(s, json, strlen(json));
    out_append(s, "\n\n", 2);
    s->last_id = id;
    if (s->run_id && !s->end_status[0]) terminal_of(type, json, s->end_status);
}

/* The run's status when it is final ("deleted" when the run is gone), else
 * "" (also on a store error: the stream then just stays open). */
static void run_final(sqlite3 *db, int64_t run_id, char *out) {
    char owner[64], status[16];
    out[0] = 0;
    store_rc rc = db ? store_run_owner(db, run_id, owner, sizeof owner, status) : STORE_ERROR;
    if (rc == STORE_NOT_FOUND) snprintf(out, 16, "deleted");
    else if (rc == STORE_OK && final_status(status)) snprintf(out, 16, "%s", status);
}

static void append_end(sub *s) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, "event: end\ndata: {\"run_id\":%lld,\"status\":\"%s\"}\n\n",
                     (long long)s->run_id, s->end_status);
    out_append(s, buf, (size_t)n);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max) {
    sub *s = cls;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->out_pos < s->out_len) {
            size_t n = s->out_len - s->out_pos < max ? s->out_len - s->out_pos : max;
            memcpy(buf, s->out + s->out_pos, n);
            s->out_pos += n;
            pthread_mutex_unlock(&s->mu);
            return (ssize_t)n;
        }
        if (s->closed) {
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (s->end_status[0]) { /* a run's story is over: say so and close */
            append_end(s);
            s->closed = 1;
            continue;
        }
        if (s->catching_up) {
            /* the store is read without the lock: publishers may queue meanwhile */
            pthread_mutex_unlock(&s->mu);
            sqlite3 *db = db_get();
            /* the run's state first: if it is final now, its last event is
             * already in the store and this catch-up will read it */
            char final[16] = "";
            if (s->run_id) run_final(db, s->run_id, final);
            sub tmp = {.last_id = s->last_id, .run_id = s->run_id};
            int n = db ? store_events_after(db, s->run_id, tmp.last_id, PAGE, replay_one, &tmp) : -1;
            pthread_mutex_lock(&s->mu);
            if (n < 0) {
                free(tmp.out);
                s->closed = 1;
                continue;
            }
            out_append(s, tmp.out ? tmp.out : "", tmp.out_len);
            free(tmp.out);
            s->last_id = tmp.last_id;
            if (tmp.end_status[0]) memcpy(s->end_status, tmp.end_status, sizeof s->end_status);
            if (n < PAGE) {
                s->catching_up = 0;
                if (!s->end_status[0] && final[0]) memcpy(s->end_status, final, sizeof s->end_status);
            }
            continue;
        }
        int moved = 0;
        while (s->q_len) {
            msg *m = s->q[s->q_head];
            s->q_head = (s->q_head + 1) % s->q_cap;
            s->q_len--;
            s->q_bytes -= m->len;
            if (m->id > s->last_id && !s->end_status[0]) {
                out_append(s, m->text, m->len);
                s->last_id = m->id;
                moved = 1;
                if (s->run_id && m->terminal[0]) memcpy(s->end_status, m->terminal, sizeof s->end_status);
            }
            msg_unref(m);
        }
        if (moved) continue;
        if (s->ping) {
            s->ping = 0;
            out_append(s, PING, sizeof PING - 1);
            continue;
        }
        s->suspended = 1;
        MHD_suspend_connection(s->conn);
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
}

static void sub_free(void *cls) {
    sub *s = cls;
    pthread_mutex_lock(&hub_mu);
    if (s->prev) s->prev->next = s->next;
    else hub = s->next;
    if (s->next) s->next->prev = s->prev;
    pthread_mutex_unlock(&hub_mu);
    atomic_fetch_sub(&n_subs, 1);
    queue_clear(s);
    free(s->q);
    free(s->out);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

struct MHD_Response *sse_response(struct MHD_Connection *conn, int64_t run_id, int64_t last_id) {
    sub *s = spq_calloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->conn = conn;
    s->run_id = run_id;
    s->last_id = last_id;
    s->catching_up = 1;
    static const char retry[] = "retry: 2000\n\n";
    out_append(s, retry, sizeof retry - 1);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, reader, s, sub_free);
    if (!r) {
        free(s->out);
        free(s);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    pthread_mutex_lock(&hub_mu);
    s->next = hub;
    if (hub) hub->prev = s;
    hub = s;
    pthread_mutex_unlock(&hub_mu);
    atomic_fetch_add(&n_subs, 1);
    return r;
}

static void poke_all(int close) {
    pthread_mutex_lock(&hub_mu);
    for (sub *s = hub; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        if (close) s->closed = 1;
        else s->ping = 1;
        if (s->suspended) {
            s->suspended = 0;
            MHD_resume_connection(s->conn);
        }
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&hub_mu);
}

void sse_ping_all(void) { poke_all(0); }

void sse_close_all(void) {
    poke_all(1);
    for (int i = 0; i < 200 && atomic_load(&n_subs) > 0; i++) usleep(10000);
}
