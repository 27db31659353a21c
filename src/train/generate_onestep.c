/* One-step and teacher-involved few-step generation (train/generate_onestep.h). */
#include "train/generate_onestep.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "model/csd.h"
#include "model/logits_head.h"
#include "train/generate.h"
#include "train/generator_sampler.h"

/* ---- one batch ---------------------------------------------------------------------------------- */

/* q [B,n,C] = G(ε) for the batch's noise (w->eps holds ε), then the nearest codes. */
static int generator_pass(const dd2_ardiff *G, const float *params, dd2_ardiff_work *w, const int *y, int B,
                          uint64_t seed, uint64_t first_index, int32_t *tokens, float *q, dd2_status *st) {
    const size_t rows = (size_t)B * G->n;
    dd2_csd_noise(seed, first_index, B, G->n, G->C, w->eps);
    dd2_csd_generator_forward(G, params, w, w->eps, y, B, q);
    int rc = dd2_vq_nearest(G->cb, q, rows, tokens, NULL, st);
    if (rc != DD2_OK) dd2_status_prefix(st, "generator sampling (samples %llu..)", (unsigned long long)first_index);
    return rc;
}

int dd2_generator_sample(const dd2_ardiff *G, const float *params, dd2_ardiff_work *w, const int *y, int B,
                         uint64_t seed, uint64_t first_index, int32_t *tokens, float *q, dd2_status *st) {
    if (B > w->B) return DD2_FAIL(st, DD2_ERR_RUNTIME, "generator sampling: batch %d above the capacity %d", B, w->B);
    float *qq = q ? q : w->x_t; /* x_t has room for B·n·m >= B·n rows */
    return generator_pass(G, params, w, y, B, seed, first_index, tokens, qq, st);
}

int dd2_fewstep_sample(const dd2_ardiff *G, const float *gparams, dd2_ardiff_work *w, const dd2_teacher *t,
                       const float *tparams, const dd2_sampling *s, int k, int snap, const int *y, int B,
                       uint64_t seed, uint64_t first_index, int32_t *tokens, dd2_status *st) {
    const int n = G->n, C = G->C;
    if (k < 1 || k > n) return DD2_FAIL(st, DD2_ERR_INPUT, "few-step sampling: %d steps is outside [1, %d]", k, n);
    if (B > w->B) return DD2_FAIL(st, DD2_ERR_RUNTIME, "few-step sampling: batch %d above the capacity %d", B, w->B);
    float *q = w->x_t;
    DD2_TRY(generator_pass(G, gparams, w, y, B, seed, first_index, tokens, q, st));
    if (k == 1) return DD2_OK;
    const int P0 = n - k + 1; /* generator tokens kept: positions [0, P0) */
    /* the teacher reads the kept prefix as code vectors (snap) or as the continuous outputs */
    float *prefix = snap ? DD2_MALLOC((size_t)B * P0 * C * sizeof(float), st) : NULL;
    if (snap && !prefix) return DD2_ERR_RUNTIME;
    for (int b = 0; snap && b < B; b++)
        for (int i = 0; i < P0; i++)
            memcpy(prefix + ((size_t)b * P0 + i) * C, t->codebook + (size_t)tokens[(size_t)b * n + i] * C,
                   (size_t)C * sizeof(float));
    if (!snap) { /* q [B,n,C]: the first P0 rows of each sequence, contiguous per sequence */
        for (int b = 0; b < B; b++)
            memmove(q + (size_t)b * P0 * C, q + (size_t)b * n * C, (size_t)P0 * C * sizeof(float));
        prefix = q;
    }
    int rc = dd2_teacher_continue(t, tparams, y, B, s, seed, first_index, prefix, P0, tokens, st);
    if (snap) free(prefix);
    return rc;
}

/* ---- over all ranks: the generation engine (train/generate.h) with the generator sampler ---- */

/* Sequences per generator forward at most (the training-style activations hold the attention
 * probabilities: ~2.5 MB per sequence for the default model), whatever sample.batch says. */
#define GEN_MAX_BATCH 64

static int generate(const dd2_stage_ctx *ctx, const dd2_ardiff *G, const float *gparams, const dd2_teacher *t,
                    const float *tparams, int k, const int32_t *labels, int64_t N, uint64_t seed_offset,
                    int32_t *tokens, float *q, double *seconds, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    const int cap = cfg->sample.batch < GEN_MAX_BATCH ? cfg->sample.batch : GEN_MAX_BATCH;
    dd2_generator_sampler gs;
    int rc = dd2_generator_sampler_init(&gs, G, gparams, t, tparams, cfg, k, cap, st);
    if (rc != DD2_OK) {
        st->collective = 1; /* every rank sees the same arguments */
        return rc;
    }
    gs.q = q;
    gs.q_first = seed_offset;
    rc = dd2_generate(ctx, dd2_generator_sample_batch, &gs, G->n, labels, N, seed_offset, tokens, seconds, st);
    if (rc == DD2_OK && q) rc = dd2_gather_slices(ctx->comm, q, N, G->n * G->C, MPI_FLOAT, st);
    st->collective = 1;
    dd2_generator_sampler_free(&gs);
    return rc;
}

int dd2_generate_onestep(const dd2_stage_ctx *ctx, const dd2_ardiff *G, const float *params, const int32_t *labels,
                         int64_t N, uint64_t seed_offset, int32_t *tokens, float *q, double *seconds,
                         dd2_status *st) {
    return generate(ctx, G, params, NULL, NULL, 1, labels, N, seed_offset, tokens, q, seconds, st);
}

int dd2_generate_fewstep(const dd2_stage_ctx *ctx, const dd2_ardiff *G, const float *gparams, const dd2_teacher *t,
                         const float *tparams, int k, const int32_t *labels, int64_t N, uint64_t seed_offset,
                         int32_t *tokens, double *seconds, dd2_status *st) {
    return generate(ctx, G, gparams, t, tparams, k, labels, N, seed_offset, tokens, NULL, seconds, st);
}
