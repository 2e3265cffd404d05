/* sampler.h - picking the next token from logits: greedy (temperature 0),
 * temperature, nucleus (top-p); seeded. */
#ifndef SPQ_SAMPLER_H
#define SPQ_SAMPLER_H

#include "common/base/util.h"

typedef struct {
    int vocab_size;
    float temperature;  /* 0: greedy */
    float top_p;        /* 1: off */
    spq_rng rng;
    float *probs;       /* (vocab_size) scratch */
    int *index;         /* (vocab_size) scratch */
} spq_sampler;

void spq_sampler_build(spq_sampler *s, int vocab_size, float temperature, float top_p, uint64_t seed);
void spq_sampler_free(spq_sampler *s);
/* logits (vocab_size) are left unchanged. */
int spq_sample(spq_sampler *s, const float *logits);
/* Index of the largest value (the first one on ties). */
int spq_argmax(const float *x, int n);

#endif
