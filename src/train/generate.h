/* Generating images with a trained model, spread over all ranks: the shared engine behind
 * `dd2 sample` and `dd2 eval`. Sample i (a global index) has the class labels[i] chosen by the
 * caller and draws keyed by i, so the result depends neither on the number of ranks nor on the
 * batch size. */
#ifndef DD2_TRAIN_GENERATE_H
#define DD2_TRAIN_GENERATE_H

#include <stdint.h>

#include "core/status.h"
#include "model/teacher.h"
#include "train/stage.h"

/* Balanced classes: labels[i] = i * K / N (rows of a grid hold one class each when N is a
 * multiple of K). */
void dd2_balanced_labels(int32_t *labels, int64_t N, int K);

/* Teacher AR sampling of N sequences with the config's sampling settings (sample.*), in batches
 * of sample.batch per rank; every rank returns all tokens [N,n] (gathered). *seconds = wall time
 * of the generation itself (max over ranks). Draws use (run.seed, DD2_RNG_SAMPLE, seed_offset + i). */
int dd2_generate_teacher(const dd2_stage_ctx *ctx, const dd2_teacher *t, const float *params, const int32_t *labels,
                         int64_t N, uint64_t seed_offset, int32_t *tokens, double *seconds, dd2_status *st);

/* The config's teacher sampling settings. */
dd2_sampling dd2_sampling_from_config(const dd2_config *cfg);

#endif
