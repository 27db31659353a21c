/* The pipeline stages: one function per subcommand, each `int dd2_stage_<name>(ctx, st)`,
 * called on every MPI rank with the same config (train/stage.h). A stage returns DD2_OK or a
 * status (st->collective set when every rank failed the same way). The pipeline skips a stage
 * whose final output file exists; the subcommand itself always recomputes. */
#ifndef DD2_TRAIN_STAGES_H
#define DD2_TRAIN_STAGES_H

#include "core/status.h"
#include "train/stage.h"

/* `dd2 vq CONFIG`: the patch tokenizer (docs/vq.md). Trains a k-means codebook over all ranks
 * (or imports vq.codebook) and writes <run_dir>/vq/codebook.h5, vq/recon.png and, last,
 * vq/tokens.h5 (the stage's "finished" marker). Always recomputes. */
int dd2_stage_vq(const dd2_stage_ctx *ctx, dd2_status *st);

/* `dd2 teacher CONFIG`: train the AR teacher data-parallel over all ranks, with checkpoints in
 * <run_dir>/teacher/ (resume: checkpoint.resume); writes <run_dir>/teacher/teacher.h5 last. */
int dd2_stage_teacher(const dd2_stage_ctx *ctx, dd2_status *st);

/* `dd2 sample CONFIG [--model teacher] [--out FILE.png]`: sample.n images with balanced
 * classes: <run_dir>/samples/<model>.h5 (tokens, labels) and a PNG grid, one row per class. */
int dd2_stage_sample(const dd2_stage_ctx *ctx, dd2_status *st);

/* `dd2 teacher-sample CONFIG`: teacher_sample.n teacher sequences (stage 1's training data) in
 * <run_dir>/teacher_samples/samples.h5 (tokens [N,n], labels [N]). */
int dd2_stage_teacher_sample(const dd2_stage_ctx *ctx, dd2_status *st);

/* `dd2 eval CONFIG`: the FID table (docs/pipeline.md) in <run_dir>/eval/. */
int dd2_stage_eval(const dd2_stage_ctx *ctx, dd2_status *st);

/* `dd2 pipeline CONFIG`: vq -> fid-stats -> teacher -> sample -> teacher-sample -> ardiff ->
 * distill -> eval, skipping finished stages. */
int dd2_stage_pipeline(const dd2_stage_ctx *ctx, dd2_status *st);

#endif
