/* Stage 2 of DD2: `dd2 distill CONFIG` (conditional score distillation, method.md §5,
 * docs/distill.md) and its final file <run>/distill/generator.h5 (written last: the stage's
 * "finished" marker):
 *     params/<tensor>   the EMA generator, Ψ's names (model/ardiff.h: backbone unprefixed,
 *                       head "head_mlp.*"), so the file has the layout of ardiff/ardiff.h5
 *     attributes        format = "dd2-generator", V C n gh gw d L H F K input_map rope W depth,
 *                       steps (generator updates), init ("ardiff" / "teacher"), grad ("sid" /
 *                       "dmd"), last_fid (the last periodic FID, NaN when none was measured)
 * plus the loaders used by `dd2 sample --model generator` and `dd2 eval`. */
#ifndef DD2_TRAIN_DISTILL_IO_H
#define DD2_TRAIN_DISTILL_IO_H

#include <stdint.h>

#include "core/status.h"
#include "model/ardiff.h"
#include "train/stage.h"
#include "train/token_data.h"

#define DD2_GENERATOR_FORMAT "dd2-generator"

/* `dd2 distill CONFIG`: trains the one-step generator G and the guidance network ψ, both
 * initialised from Ψ (<run>/ardiff/ardiff.h5; distill.init: teacher takes the teacher's backbone
 * and a fresh head instead), against the frozen teacher (<run>/teacher/teacher.h5), data
 * parallel over all ranks, with checkpoints in <run>/distill/ (nets "gen" with its EMA and
 * "guid"; resume: checkpoint.resume) and, when distill.eval_every > 0 and `dd2 fid-stats` has
 * run, a periodic FID of distill.eval_n one-step EMA samples in metrics.jsonl. Writes
 * <run>/distill/generator.h5 last. distill.init: ode-pairs first regresses G (from Ψ) on
 * distill.ode.pairs (noise, Ψ-ODE sample) pairs for distill.ode.steps steps (docs/distill.md). */
int dd2_stage_distill(const dd2_stage_ctx *ctx, dd2_status *st);

/* What one distill run measured (world rank 0 holds the totals; `dd2 bench distill`). */
typedef struct dd2_distill_stats {
    int learners, workers;
    long iterations;         /* generator updates done in this run */
    double seconds;          /* learner 0's training loop, wall time */
    double learner_wait;     /* mean over learners: fraction of the loop spent waiting for scores */
    double worker_idle;      /* mean over workers: fraction of their time idle (NaN when colocated) */
    double bytes_per_step;   /* score stream: request + reply bytes per iteration, all learners */
} dd2_distill_stats;

/* The distill stage with its directory <run>/<stage_dir> (dd2_stage_distill: "distill"), and,
 * when stats != NULL on every rank, the measurements above (an extra collective at the end). */
int dd2_distill_run(const dd2_stage_ctx *ctx, const char *stage_dir, dd2_distill_stats *stats, dd2_status *st);

/* Write the generator file atomically (rank 0 only). init: enum dd2_distill_init; grad: enum
 * dd2_csd_grad (io/config.h). */
int dd2_generator_save(const char *path, const dd2_ardiff *G, const float *params, int64_t steps, int init, int grad,
                       double last_fid, dd2_status *st);

/* The architectures of stage 2 from the config and the token data (codebook td->cb): G is Ψ's
 * grown by distill.generator.*, ψ Ψ's grown by distill.guidance.* (dd2_ardiff_init_grown). */
int dd2_generator_arch(dd2_ardiff *G, const dd2_config *cfg, const dd2_token_data *td, dd2_status *st);
int dd2_guidance_arch(dd2_ardiff *psi, const dd2_config *cfg, const dd2_token_data *td, dd2_status *st);

/* Build G (dd2_generator_arch), then read
 * <run>/distill/generator.h5 into a new buffer *params (caller frees; G freed with
 * dd2_ardiff_free). A missing file says to run `dd2 distill` first; a model that does not match
 * the config names the tensor. Any rank, no MPI. */
int dd2_generator_load(const dd2_stage_ctx *ctx, const dd2_token_data *td, dd2_ardiff *G, float **params,
                       dd2_status *st);

/* The EMA generator of the newest valid checkpoint in <run>/distill/ (to sample a run in
 * progress); *step = its checkpoint step. No checkpoint is DD2_ERR_INPUT. Collective
 * (dd2_ckpt_load). */
int dd2_generator_load_checkpoint(const dd2_stage_ctx *ctx, const dd2_token_data *td, dd2_ardiff *G, float **params,
                                  int64_t *step, dd2_status *st);

#endif
