/* Generating images with a trained model, spread over all ranks: the shared engine behind
 * `dd2 sample` and `dd2 eval`. Sample i (a global index) has the class labels[i] chosen by the
 * caller and draws keyed by i, so the result depends neither on the number of ranks nor on the
 * batch size. */
#ifndef DD2_TRAIN_GENERATE_H
#define DD2_TRAIN_GENERATE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/teacher.h"
#include "train/stage.h"

/* Sample-index offsets: each consumer of generated samples draws from its own range of indices
 * (seed_offset below), so no two of them ever share draws. One table, so a new one cannot collide. */
#define DD2_SAMPLE_INDEX_SAMPLE ((uint64_t)0)               /* `dd2 sample` */
#define DD2_SAMPLE_INDEX_EVAL ((uint64_t)1 << 40)           /* `dd2 eval`'s FID rows */
#define DD2_SAMPLE_INDEX_TEACHER_SAMPLE ((uint64_t)2 << 40) /* `dd2 teacher-sample` (stage 1's data) */
#define DD2_SAMPLE_INDEX_LATENCY ((uint64_t)3 << 40)        /* dd2_measure_latency */
#define DD2_SAMPLE_INDEX_HELDOUT ((uint64_t)4 << 40)        /* stage 1's held-out evaluation set */

/* Balanced classes: labels[i] = i * K / N (rows of a grid hold one class each when N is a
 * multiple of K). */
void dd2_balanced_labels(int32_t *labels, int64_t N, int K);

/* A model's batch sampler: tokens [B,n] for classes y [B]; sample b uses the draws of global
 * index first_index + b (so the result does not depend on how samples are batched). */
typedef int (*dd2_sample_batch_fn)(void *model, const int *y, int B, uint64_t first_index, int32_t *tokens,
                                   dd2_status *st);

/* Generate N sequences with `fn`, split over the ranks in batches of sample.batch; every rank
 * returns all tokens [N,n] (gathered). *seconds = wall time of the generation (max over ranks).
 * Sample i has class labels[i] and index seed_offset + i. Collective. */
int dd2_generate(const dd2_stage_ctx *ctx, dd2_sample_batch_fn fn, void *model, int n, const int32_t *labels,
                 int64_t N, uint64_t seed_offset, int32_t *tokens, double *seconds, dd2_status *st);

/* Gather each rank's contiguous slice [r·N/R, (r+1)·N/R) of `per` elements per sample of buf
 * [N,per] (MPI datatype `type`) so that every rank holds all of it. Collective. */
int dd2_gather_slices(MPI_Comm comm, void *buf, int64_t N, int per, MPI_Datatype type, dd2_status *st);

/* Latency of one batch of B samples (best of `reps` runs after one warm-up; this rank only). */
int dd2_measure_latency(dd2_sample_batch_fn fn, void *model, int n, int B, int K, int reps, double *seconds,
                        dd2_status *st);

/* The teacher as a batch sampler (model = dd2_teacher_sampler), AR with KV cache, or the naive
 * one-pass baseline. */
typedef struct dd2_teacher_sampler {
    const dd2_teacher *t;
    const float *params;
    dd2_sampling s;
    uint64_t seed;
} dd2_teacher_sampler;
int dd2_teacher_sample_batch(void *model, const int *y, int B, uint64_t first_index, int32_t *tokens, dd2_status *st);
int dd2_teacher_naive_batch(void *model, const int *y, int B, uint64_t first_index, int32_t *tokens, dd2_status *st);

/* Teacher AR sampling of N sequences with the config's sampling settings (sample.*), in batches
 * of sample.batch per rank; every rank returns all tokens [N,n] (gathered). *seconds = wall time
 * of the generation itself (max over ranks). Draws use (run.seed, DD2_RNG_SAMPLE, seed_offset + i). */
int dd2_generate_teacher(const dd2_stage_ctx *ctx, const dd2_teacher *t, const float *params, const int32_t *labels,
                         int64_t N, uint64_t seed_offset, int32_t *tokens, double *seconds, dd2_status *st);

/* The config's teacher sampling settings. */
dd2_sampling dd2_sampling_from_config(const dd2_config *cfg);

#endif
