/* One-step and teacher-involved few-step generation (train/generate_onestep.h). */
#include "train/generate_onestep.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "model/csd.h"
#include "model/logits_head.h"
#include "train/generate.h"

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

/* ---- over all ranks ------------------------------------------------------------------------------ */

/* Sequences per generator forward at most (the training-style activations hold the attention
 * probabilities: ~2.5 MB per sequence for the default model), whatever sample.batch says. */
#define GEN_MAX_BATCH 64

static int generate(const dd2_stage_ctx *ctx, const dd2_ardiff *G, const float *gparams, const dd2_teacher *t,
                    const float *tparams, int k, const int32_t *labels, int64_t N, uint64_t seed_offset,
                    int32_t *tokens, float *q, double *seconds, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    const int R = ctx->env->size, r = ctx->env->rank, n = G->n, C = G->C;
    const int batch = cfg->sample.batch < GEN_MAX_BATCH ? cfg->sample.batch : GEN_MAX_BATCH;
    const uint64_t seed = (uint64_t)cfg->run.seed;
    const dd2_sampling s = dd2_sampling_from_config(cfg);
    const int snap = cfg->sample.snap || cfg->teacher.input == DD2_TEACHER_INPUT_QUANTIZED;
    int rc = DD2_OK;
    if (k < 1 || k > n)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "generator: --steps %d is outside [1, %d] (n = %d tokens)", k, n, n);
    else if (k > 1 && (!t || !tparams)) rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "few-step sampling needs the teacher");
    else if (N * (int64_t)n * (q ? C : 1) > 0x7fffffff)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "generator: %lld samples are too many for one call", (long long)N);
    if (rc != DD2_OK) {
        st->collective = 1; /* every rank sees the same arguments */
        return rc;
    }
    int *counts = DD2_MALLOC((size_t)R * sizeof *counts, st), *displs = DD2_MALLOC((size_t)R * sizeof *displs, st);
    int *y = DD2_MALLOC((size_t)batch * sizeof *y, st);
    dd2_ardiff_work w;
    memset(&w, 0, sizeof w);
    rc = (counts && displs && y) ? DD2_OK : DD2_ERR_RUNTIME;
    if (rc == DD2_OK) rc = dd2_ardiff_work_alloc(&w, G, batch, 1, st);
    for (int j = 0; rc == DD2_OK && j < R; j++) {
        const int64_t lo = (int64_t)j * N / R, hi = (int64_t)(j + 1) * N / R;
        counts[j] = (int)((hi - lo) * n);
        displs[j] = (int)(lo * n);
    }
    const int64_t lo = (int64_t)r * N / R, hi = (int64_t)(r + 1) * N / R;
    dd2_progress prog;
    dd2_progress_begin(&prog, k == 1 ? "generator sampling" : "few-step sampling", 0, (long)(hi - lo > 0 ? hi - lo : 1),
                       10.0);
    const double t0 = dd2_now();
    for (int64_t i = lo; rc == DD2_OK && i < hi; i += batch) {
        const int b = (int)(hi - i < batch ? hi - i : batch);
        for (int j = 0; j < b; j++) y[j] = labels[i + j];
        if (k == 1)
            rc = dd2_generator_sample(G, gparams, &w, y, b, seed, seed_offset + (uint64_t)i, tokens + i * n,
                                      q ? q + i * n * C : NULL, st);
        else
            rc = dd2_fewstep_sample(G, gparams, &w, t, tparams, &s, k, snap, y, b, seed, seed_offset + (uint64_t)i,
                                    tokens + i * n, st);
        dd2_progress_update(&prog, (long)(i + b - lo), NULL);
    }
    const double dt = dd2_now() - t0;
    int all = rc;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (all == DD2_OK) {
        dd2_progress_end(&prog, NULL);
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_INT32_T, tokens, counts, displs, MPI_INT32_T, MPI_COMM_WORLD);
        if (q) {
            for (int j = 0; j < R; j++) counts[j] *= C, displs[j] *= C;
            MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, q, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
        }
        MPI_Allreduce(&dt, seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    } else if (rc == DD2_OK) {
        rc = DD2_FAIL(st, all, "generator sampling failed on another rank");
    }
    st->collective = 1;
    dd2_ardiff_work_free(&w);
    free(counts);
    free(displs);
    free(y);
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
