/* serve_sample.c - the next token of a served sequence: logit bias and
 * presence/frequency penalties (OpenAI's definition), then greedy at
 * temperature 0, else top-k, softmax at the temperature, min-p, top-p
 * (nucleus) and a draw from the sequence's own seeded generator. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/model/sampler.h"
#include "worker/serve.h"

static int by_desc(const void *a, const void *b, void *p) {
    const float *x = p;
    float xa = x[*(const int *)a], xb = x[*(const int *)b];
    return xa < xb ? 1 : xa > xb ? -1 : (*(const int *)a - *(const int *)b);
}

int srv_sample(srv_seq *q, const srv_sampling *s, float *logits, float *probs, int *idx, int V) {
    for (int i = 0; i < s->n_bias; i++) logits[s->bias_id[i]] += s->bias[i];
    if (q->counts)
        for (int i = 0; i < V; i++)
            if (q->counts[i]) logits[i] -= (float)q->counts[i] * s->frequency + s->presence;
    if (s->temperature <= 0) return spq_argmax(logits, V);
    /* candidates: all, or the top k, sorted by logit */
    int n = V;
    for (int i = 0; i < V; i++) idx[i] = i;
    int k = s->top_k > 0 && s->top_k < V ? s->top_k : V;
    if (k < V || s->top_p < 1 || s->min_p > 0) {
        qsort_r(idx, V, sizeof(int), by_desc, logits);
        n = k;
    }
    float mx = logits[spq_argmax(logits, V)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        probs[i] = expf((logits[idx[i]] - mx) / s->temperature);
        sum += probs[i];
    }
    for (int i = 0; i < n; i++) probs[i] = (float)(probs[i] / sum);
    if (s->min_p > 0) { /* sorted: probs[0] is the largest */
        int m = 1;
        while (m < n && probs[m] >= s->min_p * probs[0]) m++;
        n = m;
    }
    if (s->top_p > 0 && s->top_p < 1) {
        double mass = 0;
        int m = n;
        for (int i = 0; i < n; i++) {
            mass += probs[i];
            if (mass >= s->top_p) {
                m = i + 1;
                break;
            }
        }
        n = m;
    }
    double tot = 0;
    for (int i = 0; i < n; i++) tot += probs[i];
    double r = spq_rng_uniform(&q->rng) * tot, cdf = 0;
    for (int i = 0; i < n; i++) {
        cdf += probs[i];
        if (r < cdf) return idx[i];
    }
    return idx[n - 1];
}

float srv_logprobs(const float *logits, int V, int id, int k, int *top_ids, float *top_lp) {
    float mx = logits[spq_argmax(logits, V)];
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)(logits[i] - mx));
    float lse = mx + (float)log(sum);
    /* top k by insertion (k <= 20) */
    int n = 0;
    for (int i = 0; i < V && k > 0; i++) {
        float v = logits[i];
        if (n == k && v <= logits[top_ids[n - 1]]) continue;
        int j = n < k ? n++ : k - 1;
        while (j > 0 && logits[top_ids[j - 1]] < v) {
            top_ids[j] = top_ids[j - 1];
            j--;
        }
        top_ids[j] = i;
    }
    for (int i = 0; i < n; i++) top_lp[i] = logits[top_ids[i]] - lse;
    return logits[id] - lse;
}
