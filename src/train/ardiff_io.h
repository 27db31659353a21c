/* The final AR-diffusion file <run>/ardiff/ardiff.h5 (written last by `dd2 ardiff`: the stage's
 * "finished" marker): "params/<tensor>" datasets (docs/model.md names: the backbone unprefixed,
 * the head "head_mlp.*") plus attributes describing the network and the run; its loader; and
 * generation with Ψ spread over all ranks (for `dd2 sample --model ardiff` and `dd2 eval`). */
#ifndef DD2_TRAIN_ARDIFF_IO_H
#define DD2_TRAIN_ARDIFF_IO_H

#include <stdint.h>

#include "core/status.h"
#include "model/ardiff.h"
#include "train/stage.h"
#include "train/token_data.h"

/* `dd2 ardiff CONFIG`: stage 1 (docs/ardiff.md). Trains Ψ on <run>/teacher_samples/samples.h5
 * (from `dd2 teacher-sample`) with the GTS (or plain diffusion) loss, data parallel over all
 * ranks, checkpoints in <run>/ardiff/ (resume: checkpoint.resume), and writes
 * <run>/ardiff/ardiff.h5 last. */
int dd2_stage_ardiff(const dd2_stage_ctx *ctx, dd2_status *st);

/* Write atomically (rank 0 only). loss: enum dd2_ardiff_loss; final_loss: the mean training loss
 * of the last logged window (NaN if none). */
int dd2_ardiff_save(const char *path, const dd2_ardiff *a, const float *params, int loss, int64_t steps,
                    double final_loss, dd2_status *st);

/* Build Ψ from the config and the token data (codebook td->cb), then read <run>/ardiff/ardiff.h5
 * into a new buffer *params (caller frees). A missing file says to run `dd2 ardiff` first; a
 * model that does not match the config names the tensor. */
int dd2_ardiff_load(const dd2_stage_ctx *ctx, const dd2_token_data *td, dd2_ardiff *a, float **params,
                    dd2_status *st);

/* Ψ as a batch sampler for the generation engine (train/generate.h: dd2_generate,
 * dd2_measure_latency; model = dd2_ardiff_sampler): dd2_ardiff_sample with the sampler's settings;
 * sample first_index + b uses the noise streams (seed, DD2_RNG_NOISE, first_index + b, position). */
typedef struct dd2_ardiff_sampler {
    const dd2_ardiff *a;
    const float *params;
    int euler_steps; /* ardiff.euler_steps */
    float t_min;     /* ardiff.t_min: smallest time the head is evaluated at */
    int snap;        /* sample.snap: feed the nearest code (1) or the continuous result (0) back */
    uint64_t seed;   /* run.seed */
} dd2_ardiff_sampler;

dd2_ardiff_sampler dd2_ardiff_sampler_from_config(const dd2_ardiff *a, const float *params, const dd2_config *cfg);
int dd2_ardiff_sample_batch(void *model, const int *y, int B, uint64_t first_index, int32_t *tokens, dd2_status *st);

/* Ψ sampling of N sequences with classes labels [N] over all ranks: dd2_generate with
 * dd2_ardiff_sample_batch and the config's settings (ardiff.euler_steps, ardiff.t_min,
 * sample.snap, run.seed), in batches of sample.batch per rank; every rank returns all tokens
 * [N,n]. Sample i's noise is the stream (run.seed, DD2_RNG_NOISE, seed_offset + i, position), so
 * the result depends neither on the rank count nor on the batch. *seconds = wall time of the
 * generation (max over ranks). Collective. */
int dd2_generate_ardiff(const dd2_stage_ctx *ctx, const dd2_ardiff *a, const float *params, const int32_t *labels,
                        int64_t N, uint64_t seed_offset, int32_t *tokens, double *seconds, dd2_status *st);

#endif
