/* Generating with the distilled generator (method.md §6, docs/distill.md "Sampling"):
 *
 *   one step:  q = G(ε, y) in one forward pass (model/csd.h), tokens = the nearest codes of q
 *              (dd2_vq_nearest: the "snap" that sample.snap applies before decoding);
 *   few-step (paper Alg. 4) with k steps: one generator pass, then the teacher re-samples the
 *              last k − 1 tokens autoregressively (KV cache, classifier-free guidance, the
 *              teacher sampling settings sample.*) given the generator's first n − k + 1 tokens,
 *              fed to the teacher as code vectors (snap) or as the continuous q (no snap).
 *
 * Sample i (a global index) has the class labels[i] chosen by the caller; its generator noise is
 * the stream (run.seed, DD2_RNG_NOISE, seed_offset + i, position) (dd2_csd_noise: the same noise
 * as Ψ's sampler for that index) and the teacher's categorical draws (few-step) the streams
 * (run.seed, DD2_RNG_SAMPLE, seed_offset + i, position) as in dd2_teacher_sample, so results
 * depend neither on the number of ranks nor on the batch size. The generator's parameters are
 * normally the EMA weights (distill/generator.h5, train/distill_io.h). */
#ifndef DD2_TRAIN_GENERATE_ONESTEP_H
#define DD2_TRAIN_GENERATE_ONESTEP_H

#include <stdint.h>

#include "core/status.h"
#include "model/ardiff.h"
#include "model/sampling.h"
#include "model/teacher.h"
#include "train/stage.h"

/* ---- one batch (no MPI) ------------------------------------------------------------------------
 * w: dd2_ardiff_work_alloc(w, G, Bcap, 1) with Bcap >= B. Outputs tokens [B,n] (nearest codes of
 * q) and, when q != NULL, the continuous q [B,n,C]. A non-finite q is DD2_ERR_RUNTIME. */
int dd2_generator_sample(const dd2_ardiff *G, const float *params, dd2_ardiff_work *w, const int *y, int B,
                         uint64_t seed, uint64_t first_index, int32_t *tokens, float *q, dd2_status *st);

/* Few-step sampling of one batch: k in [1, n] (k = 1 is dd2_generator_sample). The teacher t
 * (params tparams, settings s) re-samples positions n−k+1 .. n−1; snap: the teacher reads the
 * prefix as code vectors (else the continuous generator outputs). tokens [B,n]. */
int dd2_fewstep_sample(const dd2_ardiff *G, const float *gparams, dd2_ardiff_work *w, const dd2_teacher *t,
                       const float *tparams, const dd2_sampling *s, int k, int snap, const int *y, int B,
                       uint64_t seed, uint64_t first_index, int32_t *tokens, dd2_status *st);

/* ---- over all ranks (collective) ---------------------------------------------------------------
 * N samples in batches of min(sample.batch, 64) per rank (contiguous slices of [0,N) per rank); every rank
 * returns all tokens [N,n] (gathered) and, for the one-step version with q != NULL, all
 * continuous outputs q [N,n,C] (to decode without snapping: dd2_vq_images_from_patches).
 * *seconds = wall time of the generation itself (max over ranks). Seeds from run.seed. */
int dd2_generate_onestep(const dd2_stage_ctx *ctx, const dd2_ardiff *G, const float *params, const int32_t *labels,
                         int64_t N, uint64_t seed_offset, int32_t *tokens, float *q, double *seconds,
                         dd2_status *st);

/* Few-step with k steps (`dd2 sample --model generator --steps k`); k = 1 is the one-step
 * generator (t and tparams may then be NULL). The teacher reads code vectors when sample.snap
 * is set or teacher.input is quantized. k outside [1, n] is DD2_ERR_INPUT. */
int dd2_generate_fewstep(const dd2_stage_ctx *ctx, const dd2_ardiff *G, const float *gparams, const dd2_teacher *t,
                         const float *tparams, int k, const int32_t *labels, int64_t N, uint64_t seed_offset,
                         int32_t *tokens, double *seconds, dd2_status *st);

#endif
