/* loglik.c - see loglik.h.
 *
 * Per group g: P_g = the longest common prefix of its requests' inputs,
 * capped so that every output it needs lies after the prefix (P_g <= first
 * scored position). Groups are sorted by P_g (longest first) so that a
 * batch's prefixes have similar lengths, then packed into batches of at
 * most max_groups groups with groups * longest prefix and groups * longest
 * suffix <= max_rows and longest prefix + longest suffix <= max_len (the
 * slot's positions). A batch runs its prefixes in one call (slots 0..q-1,
 * last-position logits only, discarded), then step c runs the c-th
 * shortest request of every group (a group with fewer requests repeats its
 * last one, unused). */
#include "loglik.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long g;
    int P;          /* prefix run once */
    int max_suffix; /* longest request input beyond P */
} group_plan;

/* token i of request r's model input: (ctx + cont) cut to the last n_in
 * tokens before the final one */
static int input_at(const spq_ll_req *r, int n_in, int i) {
    int full = r->n_ctx + r->n_cont;
    int j = full - 1 - n_in + i;
    return j < r->n_ctx ? r->ctx[j] : r->cont[j - r->n_ctx];
}

static int input_len(const spq_ll_req *r, int max_len) {
    int n = r->n_ctx + r->n_cont - 1;
    return n < max_len ? n : max_len;
}

static int cmp_plan(const void *a, const void *b) {
    const group_plan *x = a, *y = b;
    if (x->P != y->P) return x->P > y->P ? -1 : 1;
    return x->g < y->g ? -1 : x->g > y->g;
}

static int check_requests(const spq_ll_req *req, long r0, long r1, int max_len, int V, spq_err *err) {
    for (long r = r0; r < r1; r++) {
        if (req[r].n_ctx < 1 || req[r].n_cont < 1)
            return spq_fail(err, "request %ld: empty %s", r, req[r].n_ctx < 1 ? "context" : "continuation");
        if (req[r].n_cont > max_len)
            return spq_fail(err, "request %ld: continuation of %d tokens does not fit the window of %d", r,
                            req[r].n_cont, max_len);
        for (int i = 0; i < req[r].n_ctx + req[r].n_cont; i++) {
            int t = i < req[r].n_ctx ? req[r].ctx[i] : req[r].cont[i - req[r].n_ctx];
            if (t < 0 || t >= V) return spq_fail(err, "request %ld: token id %d out of range", r, t);
        }
    }
    return 0;
}

/* plan (n_groups), unsorted: each group's shared prefix and longest suffix */
static void plan_groups(group_plan *plan, long *rows_naive, const spq_ll_req *req, const long *group, long n_groups,
                        int max_len) {
    for (long g = 0; g < n_groups; g++) {
        long r0 = group[g], r1 = group[g + 1];
        int n0 = input_len(&req[r0], max_len), P = n0 - req[r0].n_cont;
        for (long r = r0 + 1; r < r1; r++) {
            int n = input_len(&req[r], max_len), cap = n - req[r].n_cont, lcp = 0;
            if (cap < P) P = cap;
            while (lcp < P && input_at(&req[r], n, lcp) == input_at(&req[r0], n0, lcp)) lcp++;
            P = lcp;
        }
        int S = 0;
        for (long r = r0; r < r1; r++) {
            int n = input_len(&req[r], max_len);
            S = n - P > S ? n - P : S;
            *rows_naive += n;
        }
        plan[g] = (group_plan){g, P, S};
    }
}

/* order: each group's requests by input length (insertion sort), so that
 * step c runs the c-th shortest of every group and suffixes of similar
 * length share a call */
static void order_by_length(long *order, const spq_ll_req *req, const long *group, long n_groups, int max_len) {
    for (long g = 0; g < n_groups; g++)
        for (long r = group[g]; r < group[g + 1]; r++) {
            long j = r;
            int n = input_len(&req[r], max_len);
            while (j > group[g] && input_len(&req[order[j - 1]], max_len) > n) order[j] = order[j - 1], j--;
            order[j] = r;
        }
}

typedef struct {
    spq_scorer *sc;
    const spq_ll_req *req;
    const long *group, *order;
    const group_plan *plan; /* the batch's groups */
    int q, max_len;
    float *logits;
    int *tok, *pos;
    spq_ll_stats *st;
} batch_ctx;

/* request of group i at step c (the last one again when it has fewer) */
static long step_request(const batch_ctx *b, int i, int c) {
    long g = b->plan[i].g, n = b->group[g + 1] - b->group[g];
    return b->order[b->group[g] + (c < n ? c : n - 1)];
}

/* the groups' prefixes into slots 0..q-1, padded at the end to the longest */
static void run_prefixes(batch_ctx *b, int maxP) {
    for (int i = 0; i < b->q; i++) {
        const spq_ll_req *r = &b->req[b->group[b->plan[i].g]];
        int n = input_len(r, b->max_len), P = b->plan[i].P;
        for (int t = 0; t < maxP; t++) b->tok[i * maxP + t] = input_at(r, n, t < P ? t : (P > 0 ? P - 1 : 0));
        b->pos[i] = 0;
    }
    b->sc->forward(b->sc, b->logits, b->tok, b->pos, b->q, maxP, SPQ_LOGITS_LAST);
    b->st->rows_run += (long)b->q * maxP;
    b->st->forward_calls++;
}

/* log-likelihood and greedy match of request r's continuation from the T
 * logits rows of its slot, whose input ends at row s-1 */
static void score_rows(spq_ll_out *o, const float *rows, int s, int V, const spq_ll_req *r) {
    double ll = 0;
    int greedy = 1, nc = r->n_cont;
    for (int j = 0; j < nc; j++) {
        const float *row = rows + (size_t)(s - nc + j) * V;
        int target = r->cont[j];
        ll -= spq_nll(row, V, target);
        for (int v = 0; v < V && greedy; v++)
            if (row[v] > row[target] || (row[v] == row[target] && v < target)) greedy = 0;
    }
    o->ll = ll;
    o->greedy = greedy;
}

/* step c: request c of every group after its prefix (pos = P) */
static void run_step(batch_ctx *b, spq_ll_out *out, int c) {
    int T = 0, V = b->sc->vocab_size;
    for (int i = 0; i < b->q; i++) {
        int s = input_len(&b->req[step_request(b, i, c)], b->max_len) - b->plan[i].P;
        T = s > T ? s : T;
    }
    for (int i = 0; i < b->q; i++) {
        const spq_ll_req *r = &b->req[step_request(b, i, c)];
        int n = input_len(r, b->max_len), P = b->plan[i].P, s = n - P;
        for (int t = 0; t < T; t++) b->tok[i * T + t] = input_at(r, n, P + (t < s ? t : s - 1));
        b->pos[i] = P;
    }
    b->sc->forward(b->sc, b->logits, b->tok, b->pos, b->q, T, SPQ_LOGITS_ALL);
    b->st->rows_run += (long)b->q * T;
    b->st->forward_calls++;
    for (int i = 0; i < b->q; i++) {
        long g = b->plan[i].g;
        if (c >= b->group[g + 1] - b->group[g]) continue; /* a repeat */
        long r = step_request(b, i, c);
        int s = input_len(&b->req[r], b->max_len) - b->plan[i].P;
        score_rows(&out[r], b->logits + (size_t)i * T * V, s, V, &b->req[r]);
    }
}

int spq_ll_score(spq_ll_out *out, spq_ll_stats *stats, spq_scorer *sc, const spq_ll_req *req, const long *group,
                 long n_groups, const spq_ll_opts *o, spq_progress_fn progress, void *ud, spq_err *err) {
    spq_ll_stats st = {0};
    int max_len = o->max_len;
    int max_groups = o->max_groups > 0 ? o->max_groups : 1;
    if (max_len < 1) return spq_fail(err, "max_len must be at least 1");
    if (check_requests(req, group[0], group[n_groups], max_len, sc->vocab_size, err)) return -1;
    group_plan *plan = spq_malloc((n_groups ? n_groups : 1) * sizeof *plan);
    plan_groups(plan, &st.rows_naive, req, group, n_groups, max_len);
    qsort(plan, n_groups, sizeof *plan, cmp_plan);
    long *order = spq_malloc((size_t)(group[n_groups] > 0 ? group[n_groups] : 1) * sizeof *order);
    order_by_length(order, req, group, n_groups, max_len);

    /* row budgets: the suffix phase needs logits for every row (its budget
     * sizes the logits buffer), the prefix phase only the state's scratch;
     * each must fit the longest single group */
    int longest_P = 0, longest_S = 0;
    for (long g = 0; g < n_groups; g++) {
        longest_P = plan[g].P > longest_P ? plan[g].P : longest_P;
        longest_S = plan[g].max_suffix > longest_S ? plan[g].max_suffix : longest_S;
    }
    int rows_suffix = o->max_rows > longest_S ? o->max_rows : longest_S;
    int rows_prefix = o->max_rows > longest_P ? o->max_rows : longest_P;
    int rows_state = rows_suffix > rows_prefix ? rows_suffix : rows_prefix;
    int rows_logits = rows_suffix > max_groups ? rows_suffix : max_groups;
    sc->reserve(sc, max_groups, max_len, rows_state);
    batch_ctx b = {.sc = sc, .req = req, .group = group, .order = order, .max_len = max_len, .st = &st};
    b.logits = spq_malloc((size_t)rows_logits * sc->vocab_size * sizeof(float));
    b.tok = spq_malloc((size_t)rows_state * sizeof(int));
    b.pos = spq_malloc((size_t)max_groups * sizeof(int));
    for (long b0 = 0; b0 < n_groups;) {
        /* pack groups b0..b1-1 */
        int maxP = plan[b0].P, maxS = plan[b0].max_suffix, steps = 0;
        long b1 = b0 + 1;
        while (b1 < n_groups && b1 - b0 < max_groups) {
            int S = plan[b1].max_suffix > maxS ? plan[b1].max_suffix : maxS;
            long q = b1 - b0 + 1;
            if (q * maxP > rows_prefix || q * S > rows_suffix || maxP + S > max_len) break;
            maxS = S;
            b1++;
        }
        b.plan = plan + b0;
        b.q = (int)(b1 - b0);
        for (int i = 0; i < b.q; i++) {
            long g = b.plan[i].g;
            if (group[g + 1] - group[g] > steps) steps = (int)(group[g + 1] - group[g]);
        }
        if (maxP > 0) run_prefixes(&b, maxP);
        for (int c = 0; c < steps; c++) run_step(&b, out, c);
        if (progress) progress(ud, b1, n_groups);
        b0 = b1;
    }
    free(b.pos);
    free(b.tok);
    free(b.logits);
    free(order);
    free(plan);
    if (stats) *stats = st;
    return 0;
}
