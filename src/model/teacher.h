/* The AR teacher: backbone (continuous input) + logits head, over a VQ codebook.
 *
 * Inputs are token indices [B,n] into the codebook [V,C]; the backbone reads the code vectors
 * (teacher.input: continuous), so the same network later accepts the generator's continuous
 * outputs. Holds dims and tensor offsets only; parameters live in a flat buffer laid out by
 * `tab` (src/model/params.h). */
#ifndef DD2_MODEL_TEACHER_H
#define DD2_MODEL_TEACHER_H

#include <stdint.h>

#include "core/status.h"
#include "io/config.h"
#include "model/backbone.h"
#include "model/logits_head.h"
#include "model/params.h"
#include "model/sampling.h"

typedef struct dd2_teacher {
    dd2_backbone bb;
    dd2_logits_head head;
    dd2_param_table tab;
    int V, C, n, K;
    const float *codebook; /* [V,C], borrowed */
} dd2_teacher;

/* Backbone dims from the config's model section for tokens of dimension C on a gh x gw grid. */
void dd2_backbone_dims_from_config(dd2_backbone_dims *dims, const dd2_config *cfg, int C, int gh, int gw);

/* Register the teacher's tensors (backbone names unprefixed, "head.w"), as in docs/model.md. */
int dd2_teacher_init(dd2_teacher *t, const dd2_config *cfg, const float *codebook, int V, int C, int gh, int gw,
                     dd2_status *st);
void dd2_teacher_free(dd2_teacher *t);

/* Work buffers for a batch of up to B sequences. */
typedef struct dd2_teacher_work {
    int B;
    dd2_backbone_acts acts;
    float *x;      /* [B,n,C] code vectors */
    float *f;      /* [B,n,d] features */
    float *logits; /* [B,n,V], then probabilities (cross-entropy cache) */
    float *losses; /* [B,n] */
    float *dlogits, *df, *dlosses;
} dd2_teacher_work;

int dd2_teacher_work_alloc(dd2_teacher_work *w, const dd2_teacher *t, int B, dd2_status *st);
void dd2_teacher_work_free(dd2_teacher_work *w);

/* Gather code vectors: x [B,n,C] = codebook[tokens [B,n]]. */
void dd2_teacher_embed_tokens(const dd2_teacher *t, const int32_t *tokens, int B, float *x);

/* Cross-entropy of tokens [B,n] given classes y [B]; returns the SUM over the B·n tokens (nats).
 * With grads != NULL, accumulates (+=) the gradient of `scale` x that sum into grads. */
double dd2_teacher_loss(const dd2_teacher *t, const float *params, float *grads, dd2_teacher_work *w,
                        const int32_t *tokens, const int *y, int B, float scale);

/* AR sampling with the KV cache: tokens [B,n] for classes y [B], with the sampling settings s
 * (classifier-free guidance runs the null class alongside). Draws for sequence b use the RNG stream
 * (seed, DD2_RNG_SAMPLE, first_index + b, position), so a sequence does not depend on its batch. */
int dd2_teacher_sample(const dd2_teacher *t, const float *params, const int *y, int B, const dd2_sampling *s,
                       uint64_t seed, uint64_t first_index, int32_t *tokens, dd2_status *st);

/* AR sampling that continues given prefixes: positions [0, P0) of each sequence are the
 * continuous vectors prefix [B,P0,C] (code vectors or a generator's outputs; NULL when P0 = 0),
 * and the teacher samples positions P0..n-1 into tokens [B,n] (entries [0, P0) untouched) with
 * the draws of dd2_teacher_sample. P0 = 0 is dd2_teacher_sample; the few-step sampler
 * (method.md §6) uses P0 = n - k + 1. */
int dd2_teacher_continue(const dd2_teacher *t, const float *params, const int *y, int B, const dd2_sampling *s,
                         uint64_t seed, uint64_t first_index, const float *prefix, int P0, int32_t *tokens,
                         dd2_status *st);

/* The naive one-pass baseline (method.md §8): the teacher reads [class, ε_1..ε_{n-1}] with
 * ε ~ N(0, I_C) in place of the previous tokens, gives p at every position from that single
 * forward pass (CFG as configured), and every token is drawn independently. Noise and draws are
 * keyed by (seed, DD2_RNG_NOISE / DD2_RNG_SAMPLE, first_index + b, position). */
int dd2_teacher_sample_naive(const dd2_teacher *t, const float *params, const int *y, int B, const dd2_sampling *s,
                             uint64_t seed, uint64_t first_index, int32_t *tokens, dd2_status *st);

#endif
