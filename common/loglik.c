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

int spq_ll_score(spq_ll_out *out, spq_ll_stats *stats, spq_scorer *sc, const spq_ll_req *req, const long *group,
                 long n_groups, const spq_ll_opts *o, spq_progress_fn progress, void *ud, spq_err *err) {
    spq_ll_stats st = {0};
    int max_len = o->max_len;
    int max_groups = o->max_groups > 0 ? o->max_groups : 1;
    if (max_len < 1) return spq_fail(err, "max_len must be at least 1");
    for (long r = group[0]; r < group[n_groups]; r++) {
        if (req[r].n_ctx < 1 || req[r].n_cont < 1)
            return spq_fail(err, "request %ld: empty %s", r, req[r].n_ctx < 1 ? "context" : "continuation");
        if (req[r].n_cont > max_len)
            return spq_fail(err, "request %ld: continuation of %d tokens does not fit the window of %d", r,
                            req[r].n_cont, max_len);
        for (int i = 0; i < req[r].n_ctx; i++)
            if (req[r].ctx[i] < 0 || req[r].ctx[i] >= sc->vocab_size)
                return spq_fail(err, "request %ld: token id %d out of range", r, req[r].ctx[i]);
        for (int i = 0; i < req[r].n_cont; i++)
            if (req[r].cont[i] < 0 || req[r].cont[i] >= sc->vocab_size)
                return spq_fail(err, "request %ld: token id %d out of range", r, req[r].cont[i]);
    }

    /* plan the prefix of each group */
    group_plan *plan = spq_malloc((n_groups ? n_groups : 1) * sizeof *plan);
    int max_req = 1;
    for (long g = 0; g < n_groups; g++) {
        long r0 = group[g], r1 = group[g + 1];
        if (r1 - r0 > max_req) max_req = (int)(r1 - r0);
        int n0 = input_len(&req[r0], max_len), P = n0 - req[r0].n_cont;
        for (long r = r0 + 1; r < r1; r++) {
            int n = input_len(&req[r], max_len), cap = n - req[r].n_cont, lcp = 0;
            if (cap < P) P = cap;
            while (lcp < P && input_at(&req[r], n, lcp) == input_at(&req[r0], n0, lcp)) lcp++;
            P = lcp;
        }
        int S = 0;
        for (long r = r0; r < r1; r++) {
            int s = input_len(&req[r], max_len) - P;
            S = s > S ? s : S;
            st.rows_naive += input_len(&req[r], max_len);
        }
        plan[g] = (group_plan){g, P, S};
    }
    qsort(plan, n_groups, sizeof *plan, cmp_plan);

    /* step c runs the c-th shortest request of every group: suffixes of
     * similar length share a call, which cuts the padding */
    long *order = spq_malloc((size_t)(group[n_groups] > 0 ? group[n_groups] : 1) * sizeof *order);
    for (long g = 0; g < n_groups; g++)
        for (long r = group[g]; r < group[g + 1]; r++) { /* insertion sort by input length */
            long j = r;
            int n = input_len(&req[r], max_len);
            while (j > group[g] && input_len(&req[order[j - 1]], max_len) > n) order[j] = order[j - 1], j--;
            order[j] = r;
        }

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
    int V = sc->vocab_size;
    sc->reserve(sc, max_groups, max_len, rows_state);
    float *logits = spq_malloc((size_t)rows_logits * V * sizeof(float));
    int *tok = spq_malloc((size_t)rows_state * sizeof(int));
    int *pos = spq_malloc((size_t)max_groups * sizeof(int));
    long done = 0;
    for (long b0 = 0; b0 < n_groups;) {
        /* pack groups b0..b1-1 */
        int maxP = plan[b0].P, maxS = plan[b0].max_suffix;
        long b1 = b0 + 1;
        while (b1 < n_groups && b1 - b0 < max_groups) {
            int S = plan[b1].max_suffix > maxS ? plan[b1].max_suffix : maxS;
            long q = b1 - b0 + 1;
            if (q * maxP > rows_prefix || q * S > rows_suffix || maxP + S > max_len) break;
            maxS = S;
            b1++;
        }
        int q = (int)(b1 - b0);
        if (maxP > 0) {
            for (int i = 0; i < q; i++) {
                const spq_ll_req *r = &req[group[plan[b0 + i].g]];
                int n = input_len(r, max_len), P = plan[b0 + i].P;
                for (int t = 0; t < maxP; t++) tok[i * maxP + t] = input_at(r, n, t < P ? t : (P > 0 ? P - 1 : 0));
                pos[i] = 0;
            }
            sc->forward(sc, logits, tok, pos, q, maxP, SPQ_LOGITS_LAST);
            st.rows_run += (long)q * maxP;
            st.forward_calls++;
        }
        int steps = 0;
        for (int i = 0; i < q; i++) {
            long g = plan[b0 + i].g;
            if (group[g + 1] - group[g] > steps) steps = (int)(group[g + 1] - group[g]);
        }
        for (int c = 0; c < steps; c++) {
            int T = 0;
            for (int i = 0; i < q; i++) {
                long g = plan[b0 + i].g, r = order[group[g] + (c < group[g + 1] - group[g] ? c : group[g + 1] - group[g] - 1)];
                int s = input_len(&req[r], max_len) - plan[b0 + i].P;
                T = s > T ? s : T;
            }
            for (int i = 0; i < q; i++) {
                long g = plan[b0 + i].g, r = order[group[g] + (c < group[g + 1] - group[g] ? c : group[g + 1] - group[g] - 1)];
                int n = input_len(&req[r], max_len), P = plan[b0 + i].P, s = n - P;
                for (int t = 0; t < T; t++) tok[i * T + t] = input_at(&req[r], n, P + (t < s ? t : s - 1));
                pos[i] = P;
            }
            sc->forward(sc, logits, tok, pos, q, T, SPQ_LOGITS_ALL);
            st.rows_run += (long)q * T;
            st.forward_calls++;
            for (int i = 0; i < q; i++) {
                long g = plan[b0 + i].g;
                if (c >= group[g + 1] - group[g]) continue; /* a repeat */
                long r = order[group[g] + c];
                int s = input_len(&req[r], max_len) - plan[b0 + i].P, nc = req[r].n_cont;
                double ll = 0;
                int greedy = 1;
                for (int j = 0; j < nc; j++) {
                    const float *row = logits + ((size_t)i * T + (s - nc + j)) * V;
                    int target = req[r].cont[j];
                    ll -= spq_nll(row, V, target);
                    for (int v = 0; v < V && greedy; v++)
                        if (row[v] > row[target] || (row[v] == row[target] && v < target)) greedy = 0;
                }
                out[r].ll = ll;
                out[r].greedy = greedy;
            }
        }
        done += q;
        if (progress) progress(ud, done, n_groups);
        b0 = b1;
    }
    free(pos);
    free(tok);
    free(logits);
    free(order);
    free(plan);
    if (stats) *stats = st;
    return 0;
}
