/* logitfile.c - see logitfile.h. Top-k selection is a size-k min-heap over
 * the row (O(V log k)), then a sort of the k survivors. */
#include "logitfile.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_SIZE 64
static const char MAGIC[8] = {'S', 'P', 'Q', 'L', 'O', 'G', 'I', 'T'};

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "logit files are written in host order: little-endian only");

void spq_logit_row_build(spq_logit_row *r, int k) {
    r->k = k;
    r->id = spq_malloc((size_t)(k ? k : 1) * sizeof *r->id);
    r->logp = spq_malloc((size_t)(k ? k : 1) * sizeof *r->logp);
    r->target_logp = r->tail_logp = 0;
}

void spq_logit_row_free(spq_logit_row *r) {
    free(r->id);
    free(r->logp);
    memset(r, 0, sizeof *r);
}

/* a ranks before b: higher logit, ties to the smaller id (argmax's choice) */
static int before(float la, uint32_t ia, float lb, uint32_t ib) {
    return la > lb || (la == lb && ia < ib);
}

/* min-heap on "before": the root is the worst of the kept k */
static void sift_down(float *l, uint32_t *id, int n, int i) {
    for (;;) {
        int c = 2 * i + 1, w = i;
        if (c < n && before(l[w], id[w], l[c], id[c])) w = c;
        if (c + 1 < n && before(l[w], id[w], l[c + 1], id[c + 1])) w = c + 1;
        if (w == i) return;
        float tl = l[i]; l[i] = l[w]; l[w] = tl;
        uint32_t ti = id[i]; id[i] = id[w]; id[w] = ti;
        i = w;
    }
}

void spq_logit_row_from_logits(spq_logit_row *r, const float *x, int V, int target) {
    int k = r->k;
    float *l = r->logp;
    uint32_t *id = r->id;
    for (int i = 0; i < k; i++) l[i] = x[i], id[i] = (uint32_t)i;
    for (int i = k / 2 - 1; i >= 0; i--) sift_down(l, id, k, i);
    for (int i = k; i < V; i++)
        if (k > 0 && before(x[i], (uint32_t)i, l[0], id[0])) {
            l[0] = x[i], id[0] = (uint32_t)i;
            sift_down(l, id, k, 0);
        }
    /* heap-sort: pop the worst to the end -> best first */
    for (int n = k - 1; n > 0; n--) {
        float tl = l[0]; l[0] = l[n]; l[n] = tl;
        uint32_t ti = id[0]; id[0] = id[n]; id[n] = ti;
        sift_down(l, id, n, 0);
    }
    /* log-softmax: lse over all, and the tail = everything ranked after
     * the k-th (ranking is strict, so "after" is well defined) */
    float mx = x[0];
    for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double all = 0, tail = 0;
    for (int i = 0; i < V; i++) {
        double e = exp((double)x[i] - mx);
        all += e;
        if (k == 0 || before(l[k - 1], id[k - 1], x[i], (uint32_t)i)) tail += e;
    }
    double lse = mx + log(all);
    for (int i = 0; i < k; i++) l[i] = (float)((double)l[i] - lse);
    r->tail_logp = tail > 0 ? (float)(mx + log(tail) - lse) : -INFINITY;
    r->target_logp = (float)((double)x[target] - lse);
}

uint64_t spq_token_hash(const int *tokens, long n) {
    uint64_t h = 1469598103934665603ULL;
    for (long i = 0; i < n; i++) {
        uint32_t t = (uint32_t)tokens[i];
        for (int b = 0; b < 4; b++) {
            h ^= (t >> (8 * b)) & 0xFF;
            h *= 1099511628211ULL;
        }
    }
    return h;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static void header_pack(uint8_t *h, const spq_logit_file *lf) {
    memset(h, 0, HEADER_SIZE);
    memcpy(h, MAGIC, 8);
    put32(h + 8, 1);
    put32(h + 12, lf->vocab);
    put32(h + 16, lf->k);
    put32(h + 20, lf->seqlen);
    put64(h + 24, lf->n_tokens);
    put64(h + 32, lf->n_records);
    put64(h + 40, lf->hash);
}

int spq_logit_file_create(spq_logit_file *lf, const char *path, int vocab, int k, int seqlen, const int *tokens,
                          long n_tokens, spq_err *err) {
    memset(lf, 0, sizeof *lf);
    if (k < 1 || k > vocab) return spq_fail(err, "%s: top-k must be in [1, %d] (got %d)", path, vocab, k);
    lf->f = fopen(path, "wb");
    if (!lf->f) return spq_fail(err, "%s: cannot create: %s", path, strerror(errno));
    lf->path = spq_strdup(path);
    lf->writing = 1;
    lf->vocab = (uint32_t)vocab;
    lf->k = (uint32_t)k;
    lf->seqlen = (uint32_t)seqlen;
    lf->n_tokens = (uint64_t)n_tokens;
    lf->hash = spq_token_hash(tokens, n_tokens);
    uint8_t h[HEADER_SIZE];
    header_pack(h, lf); /* n_records 0 until closed */
    if (fwrite(h, 1, HEADER_SIZE, lf->f) != HEADER_SIZE) {
        spq_fail(err, "%s: write failed: %s", path, strerror(errno));
        fclose(lf->f);
        free(lf->path);
        memset(lf, 0, sizeof *lf);
        return -1;
    }
    return 0;
}

int spq_logit_file_write(spq_logit_file *lf, const spq_logit_row *r, spq_err *err) {
    if (r->k != (int)lf->k) return spq_fail(err, "%s: record has k=%d, file has k=%u", lf->path, r->k, lf->k);
    float head[2] = {r->target_logp, r->tail_logp};
    if (fwrite(head, 4, 2, lf->f) != 2 || fwrite(r->id, 4, lf->k, lf->f) != lf->k ||
        fwrite(r->logp, 4, lf->k, lf->f) != lf->k)
        return spq_fail(err, "%s: write failed: %s", lf->path, strerror(errno));
    lf->done++;
    return 0;
}

int spq_logit_file_open(spq_logit_file *lf, const char *path, spq_err *err) {
    memset(lf, 0, sizeof *lf);
    FILE *f = fopen(path, "rb");
    if (!f) return spq_fail(err, "%s: cannot open: %s", path, strerror(errno));
    uint8_t h[HEADER_SIZE];
    const char *bad = NULL;
    if (fread(h, 1, HEADER_SIZE, f) != HEADER_SIZE) bad = "shorter than its 64-byte header";
    else if (memcmp(h, MAGIC, 8)) bad = "not a spinq logits file (bad magic)";
    else if (get32(h + 8) != 1) bad = "unsupported version";
    if (!bad) {
        lf->vocab = get32(h + 12);
        lf->k = get32(h + 16);
        lf->seqlen = get32(h + 20);
        lf->n_tokens = get64(h + 24);
        lf->n_records = get64(h + 32);
        lf->hash = get64(h + 40);
        if (lf->vocab == 0 || lf->k == 0 || lf->k > lf->vocab) bad = "bad vocab size or k in the header";
        else if (lf->n_records == 0) bad = "incomplete (no record count: the run that wrote it did not finish)";
        else {
            /* the size must be exactly header + records */
            if (fseek(f, 0, SEEK_END) == 0) {
                long sz = ftell(f);
                uint64_t want = HEADER_SIZE + lf->n_records * (8 + 8ULL * lf->k);
                if (sz < 0 || (uint64_t)sz != want) bad = "size does not match its header (truncated?)";
            }
            fseek(f, HEADER_SIZE, SEEK_SET);
        }
    }
    if (bad) {
        fclose(f);
        memset(lf, 0, sizeof *lf);
        return spq_fail(err, "%s: %s", path, bad);
    }
    lf->f = f;
    lf->path = spq_strdup(path);
    return 0;
}

int spq_logit_file_match(const spq_logit_file *lf, int vocab, int seqlen, const int *tokens, long n_tokens,
                         spq_err *err) {
    if ((int)lf->vocab != vocab)
        return spq_fail(err, "%s: saved with vocab size %u, the model has %d", lf->path, lf->vocab, vocab);
    if ((int)lf->seqlen != seqlen)
        return spq_fail(err, "%s: saved with seqlen %u, this run uses %d", lf->path, lf->seqlen, seqlen);
    if (lf->n_tokens != (uint64_t)n_tokens || lf->hash != spq_token_hash(tokens, n_tokens))
        return spq_fail(err, "%s: saved from a different text or tokenization (%llu tokens, this run has %ld)",
                        lf->path, (unsigned long long)lf->n_tokens, n_tokens);
    uint64_t want = (uint64_t)(n_tokens / seqlen) * (uint64_t)(seqlen - 1);
    if (lf->n_records != want)
        return spq_fail(err, "%s: has %llu positions, this run scores %llu", lf->path,
                        (unsigned long long)lf->n_records, (unsigned long long)want);
    return 0;
}

int spq_logit_file_read(spq_logit_file *lf, spq_logit_row *r, spq_err *err) {
    if (r->k != (int)lf->k) return spq_fail(err, "%s: reader built for k=%d, file has k=%u", lf->path, r->k, lf->k);
    if (lf->done >= lf->n_records) return spq_fail(err, "%s: read past the last record", lf->path);
    float head[2];
    if (fread(head, 4, 2, lf->f) != 2 || fread(r->id, 4, lf->k, lf->f) != lf->k ||
        fread(r->logp, 4, lf->k, lf->f) != lf->k)
        return spq_fail(err, "%s: record %llu: short read", lf->path, (unsigned long long)lf->done);
    r->target_logp = head[0];
    r->tail_logp = head[1];
    for (uint32_t i = 0; i < lf->k; i++)
        if (r->id[i] >= lf->vocab)
            return spq_fail(err, "%s: record %llu: token id %u out of range", lf->path,
                            (unsigned long long)lf->done, r->id[i]);
    lf->done++;
    return 0;
}

int spq_logit_file_close(spq_logit_file *lf, spq_err *err) {
    int rc = 0;
    if (!lf->f) return 0;
    if (lf->writing) {
        lf->n_records = lf->done;
        uint8_t h[HEADER_SIZE];
        header_pack(h, lf);
        if (fflush(lf->f) || fseek(lf->f, 0, SEEK_SET) || fwrite(h, 1, HEADER_SIZE, lf->f) != HEADER_SIZE)
            rc = spq_fail(err, "%s: write failed: %s", lf->path, strerror(errno));
    }
    if (fclose(lf->f) && !rc && lf->writing) rc = spq_fail(err, "%s: close failed: %s", lf->path, strerror(errno));
    free(lf->path);
    memset(lf, 0, sizeof *lf);
    return rc;
}
