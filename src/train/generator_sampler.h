/* The distilled generator as a batch sampler for the generation engine (train/generate.h):
 * k = 1 is the one-step generator, k > 1 the teacher-involved few-step sampler (method.md §6).
 * Used by `dd2 sample --model generator [--steps k]` and by the eval rows. */
#ifndef DD2_TRAIN_GENERATOR_SAMPLER_H
#define DD2_TRAIN_GENERATOR_SAMPLER_H

#include "model/ardiff.h"
#include "model/teacher.h"
#include "train/generate.h"

typedef struct dd2_generator_sampler {
    const dd2_ardiff *G;
    const float *gparams;    /* normally the EMA weights (distill/generator.h5) */
    const dd2_teacher *t;    /* k > 1 only */
    const float *tparams;
    dd2_sampling s;          /* the teacher's settings (sample.*) */
    int k, snap;
    uint64_t seed;
    int cap;                 /* batch capacity of w */
    dd2_ardiff_work w;
    float *q;                /* optional (k = 1): continuous outputs [N,n,C] of sample index i - q_first */
    uint64_t q_first;
} dd2_generator_sampler;

/* Work space for batches of up to `cap` samples; the teacher may be NULL when k == 1. */
int dd2_generator_sampler_init(dd2_generator_sampler *g, const dd2_ardiff *G, const float *gparams, const dd2_teacher *t,
                               const float *tparams, const dd2_config *cfg, int k, int cap, dd2_status *st);
void dd2_generator_sampler_free(dd2_generator_sampler *g);
int dd2_generator_sample_batch(void *model, const int *y, int B, uint64_t first_index, int32_t *tokens, dd2_status *st);

#endif
