/* `dd2 bench <what> [CONFIG]`: speed tables, measured in one run (ratios, not absolute claims).
 *   ops — sgemm GFLOP/s at the model's shapes as % of this core's measured FMA peak, and the
 *         backbone's forward and forward+backward tokens/s, with 1 and 2 BLAS threads.
 *   distill — see below. */
#ifndef DD2_TRAIN_BENCH_H
#define DD2_TRAIN_BENCH_H

#include "core/status.h"
#include "io/config.h"
#include "train/stage.h"

int dd2_bench_ops(const dd2_config *cfg, double seconds_per_case, dd2_status *st);
/* Only the backbone tokens/s part (for tools/bench.sh, which alternates it with PyTorch). */
int dd2_bench_backbone(const dd2_config *cfg, double seconds_per_case, dd2_status *st);
/* distill — step time of `dd2 distill` with the teacher's work overlapped or not, the learners'
 *           wait and the workers' idle fractions, bytes per step on the score stream (collective;
 *           the layout is dist.teacher_ranks; src/train/bench_distill.c). */
int dd2_bench_distill(const dd2_stage_ctx *ctx, int steps, dd2_status *st);

#endif
