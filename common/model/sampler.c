/* sampler.c - see sampler.h. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void spq_sampler_build(spq_sampler *s, int vocab_size, float temperature, float top_p, uint64_t seed) {
    s->vocab_size = vocab_size;
    s->temperature = temperature;
    s->top_p = top_p;
    spq_rng_seed(&s->rng, seed);
    s->probs = spq_malloc((size_t)vocab_size * sizeof(float));
    s->index = spq_malloc((size_t)vocab_size * sizeof(int));
}

void spq_sampler_free(spq_sampler *s) {
    free(s->probs);
    free(s->index);
    s->probs = NULL;
    s->index = NULL;
}

int spq_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int by_prob_desc(const void *a, const void *b, void *probs) {
    const float *p = probs;
    float pa = p[*(const int *)a], pb = p[*(const int *)b];
    return pa < pb ? 1 : pa > pb ? -1 : (*(const int *)a - *(const int *)b);
}

int spq_sample(spq_sampler *s, const float *logits) {
    int V = s->vocab_size;
    if (s->temperature <= 0) return spq_argmax(logits, V);
    float mx = logits[spq_argmax(logits, V)];
    double sum = 0;
    for (int i = 0; i < V; i++) {
        s->probs[i] = expf((logits[i] - mx) / s->temperature);
        sum += s->probs[i];
    }
    for (int i = 0; i < V; i++) s->probs[i] = (float)(s->probs[i] / sum);
    double r = spq_rng_uniform(&s->rng);
    if (s->top_p <= 0 || s->top_p >= 1) {
        double cdf = 0;
        for (int i = 0; i < V; i++) {
            cdf += s->probs[i];
            if (r < cdf) return i;
        }
        return V - 1;
    }
    /* nucleus: the smallest set of most likely tokens whose mass reaches top_p;
     * candidates below (1-top_p)/(V-1) cannot be in it and are skipped before
     * sorting */
    float cutoff = (1.0f - s->top_p) / (float)(V - 1);
    int n = 0;
    for (int i = 0; i < V; i++)
        if (s->probs[i] >= cutoff) s->index[n++] = i;
    qsort_r(s->index, n, sizeof(int), by_prob_desc, s->probs);
    double mass = 0;
    int last = n - 1;
    for (int i = 0; i < n; i++) {
        mass += s->probs[s->index[i]];
        if (mass >= s->top_p) {
            last = i;
            break;
        }
    }
    double cdf = 0, target = r * mass;
    for (int i = 0; i <= last; i++) {
        cdf += s->probs[s->index[i]];
        if (target < cdf) return s->index[i];
    }
    return s->index[last];
}
