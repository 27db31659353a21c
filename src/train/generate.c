#include "train/generate.h"

#include <mpi.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/progress.h"

void dd2_balanced_labels(int32_t *labels, int64_t N, int K) {
    for (int64_t i = 0; i < N; i++) labels[i] = (int32_t)(i * K / N);
}

dd2_sampling dd2_sampling_from_config(const dd2_config *cfg) {
    return (dd2_sampling){(float)cfg->sample.cfg_scale, (float)cfg->sample.temperature, cfg->sample.top_k,
                          (float)cfg->sample.top_p};
}

int dd2_teacher_sample_batch(void *model, const int *y, int B, uint64_t first_index, int32_t *tokens, dd2_status *st) {
    const dd2_teacher_sampler *m = model;
    return dd2_teacher_sample(m->t, m->params, y, B, &m->s, m->seed, first_index, tokens, st);
}

int dd2_teacher_naive_batch(void *model, const int *y, int B, uint64_t first_index, int32_t *tokens, dd2_status *st) {
    const dd2_teacher_sampler *m = model;
    return dd2_teacher_sample_naive(m->t, m->params, y, B, &m->s, m->seed, first_index, tokens, st);
}

int dd2_measure_latency(dd2_sample_batch_fn fn, void *model, int n, int B, int K, int reps, double *seconds,
                        dd2_status *st) {
    int *y = DD2_MALLOC((size_t)B * sizeof *y, st);
    int32_t *tok = DD2_MALLOC((size_t)B * n * sizeof *tok, st);
    int rc = (y && tok) ? DD2_OK : DD2_ERR_RUNTIME;
    for (int b = 0; rc == DD2_OK && b < B; b++) y[b] = b % K;
    double best = 1e30;
    for (int r = 0; rc == DD2_OK && r <= reps; r++) {
        double t0 = dd2_now();
        rc = fn(model, y, B, DD2_SAMPLE_INDEX_LATENCY, tok, st);
        if (r > 0 && dd2_now() - t0 < best) best = dd2_now() - t0; /* run 0 warms up */
    }
    *seconds = best;
    free(y);
    free(tok);
    return rc;
}

int dd2_gather_slices(MPI_Comm comm, void *buf, int64_t N, int per, MPI_Datatype type, dd2_status *st) {
    int R;
    MPI_Comm_size(comm, &R);
    int *counts = DD2_MALLOC((size_t)R * sizeof *counts, st), *displs = DD2_MALLOC((size_t)R * sizeof *displs, st);
    int rc = (counts && displs) ? DD2_OK : DD2_ERR_RUNTIME;
    if (rc == DD2_OK && N * (int64_t)per > 0x7fffffff)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "generation: %lld samples are too many for one call", (long long)N);
    for (int k = 0; rc == DD2_OK && k < R; k++) {
        const int64_t lo = (int64_t)k * N / R, hi = (int64_t)(k + 1) * N / R;
        counts[k] = (int)((hi - lo) * per);
        displs[k] = (int)(lo * per);
    }
    if (rc == DD2_OK && MPI_Allgatherv(MPI_IN_PLACE, 0, type, buf, counts, displs, type, comm) != MPI_SUCCESS)
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "MPI_Allgatherv of the generated samples failed");
    free(counts);
    free(displs);
    return rc;
}

int dd2_generate(const dd2_stage_ctx *ctx, dd2_sample_batch_fn fn, void *model, int n, const int32_t *labels,
                 int64_t N, uint64_t seed_offset, int32_t *tokens, double *seconds, dd2_status *st) {
    const int batch = ctx->cfg->sample.batch;
    int R, r;
    MPI_Comm_size(ctx->comm, &R);
    MPI_Comm_rank(ctx->comm, &r);
    int *y = DD2_MALLOC((size_t)batch * sizeof *y, st);
    if (!y) return DD2_ERR_RUNTIME;
    const int64_t lo = (int64_t)r * N / R, hi = (int64_t)(r + 1) * N / R;
    dd2_progress prog;
    dd2_progress_begin(&prog, "sampling", 0, (long)(hi - lo > 0 ? hi - lo : 1), 10.0);
    double t0 = dd2_now();
    int rc = DD2_OK;
    for (int64_t i = lo; rc == DD2_OK && i < hi; i += batch) {
        int b = (int)(hi - i < batch ? hi - i : batch);
        for (int k = 0; k < b; k++) y[k] = labels[i + k];
        rc = fn(model, y, b, seed_offset + (uint64_t)i, tokens + i * n, st);
        dd2_progress_update(&prog, (long)(i + b - lo), NULL);
    }
    double dt = dd2_now() - t0;
    int all = rc;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MAX, ctx->comm);
    if (all == DD2_OK) {
        dd2_progress_end(&prog, NULL);
        rc = dd2_gather_slices(ctx->comm, tokens, N, n, MPI_INT32_T, st);
        MPI_Allreduce(&dt, seconds, 1, MPI_DOUBLE, MPI_MAX, ctx->comm);
    } else if (rc == DD2_OK) {
        rc = DD2_FAIL(st, all, "sampling failed on another rank");
    }
    st->collective = 1;
    free(y);
    return rc;
}

int dd2_generate_teacher(const dd2_stage_ctx *ctx, const dd2_teacher *t, const float *params, const int32_t *labels,
                         int64_t N, uint64_t seed_offset, int32_t *tokens, double *seconds, dd2_status *st) {
    dd2_teacher_sampler m = {t, params, dd2_sampling_from_config(ctx->cfg), (uint64_t)ctx->cfg->run.seed};
    return dd2_generate(ctx, dd2_teacher_sample_batch, &m, t->n, labels, N, seed_offset, tokens, seconds, st);
}
