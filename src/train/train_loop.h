/* The loop skeleton shared by the training stages (teacher, ardiff, distill): the progress
 * reporter and the running loss average between metrics lines, the handling of a step with a
 * non-finite loss or gradient (warn, count, stop after dist.max_bad_steps), the metrics cadence
 * (log.every, and the last step), the periodic checkpoint cadence (checkpoint.every, never at
 * the last step: the stage saves that one itself), and the "agree across ranks" failure check. */
#ifndef DD2_TRAIN_TRAIN_LOOP_H
#define DD2_TRAIN_TRAIN_LOOP_H

#include <stdint.h>

#include "core/progress.h"
#include "train/stage.h"

typedef struct dd2_train_log {
    const dd2_stage_ctx *ctx;
    const char *stage; /* the metrics stage name and message prefix, e.g. "teacher" */
    dd2_progress prog;
    int every;         /* metrics line every this many steps (log.every, 50 when unset) */
    double loss_acc;   /* running sum of the finite losses since the last metrics line */
    int loss_n;
    int64_t *bad_run;  /* skipped steps in a row: the stage's counter (saved in its checkpoints, so a
                        * resume continues the run of skips), or own_bad_run */
    int64_t own_bad_run;
} dd2_train_log;

/* log.every, or 50 when it is not positive. */
int dd2_train_log_every(const dd2_config *cfg);

/* The dd2_lr_schedule kind (DD2_LR_*) of a config schedule key's value (enum dd2_cfg_schedule:
 * teacher.schedule, distill.gen_schedule). */
int dd2_train_lr_kind(int cfg_schedule);

/* Start the progress reporter (label = stage, resuming at `start` of `total`) and an empty window.
 * bad_run: the stage's counter of skipped steps in a row (restored from its checkpoint; updated by
 * dd2_train_check_skip), or NULL for a counter of the log's own that starts at 0. */
void dd2_train_log_begin(dd2_train_log *lg, const dd2_stage_ctx *ctx, const char *stage, long start, long total,
                         int64_t *bad_run);
void dd2_train_log_end(dd2_train_log *lg);

/* Whether step `u` (1-based count done) of `total` ends a metrics window. */
int dd2_train_log_due(const dd2_train_log *lg, long u, long total);

/* Whether a periodic checkpoint is due after `u` of `total` units (not at the last). */
int dd2_train_ckpt_due(const dd2_config *cfg, long u, long total);

/* After optimizer step number `step` (0-based): a finite step adds `loss` to the window; a
 * skipped one warns "<stage> step N: non-finite ..." and fails once `skipped_total` reaches
 * dist.max_bad_steps. */
int dd2_train_check_skip(dd2_train_log *lg, int skipped, double loss, int64_t step, int64_t skipped_total,
                         dd2_status *st);

/* Fail with "<stage>: N <unit> with a non-finite loss or gradient (dist.max_bad_steps = M);
 * lower <hint>?" when max_bad > 0 and bad >= max_bad. */
int dd2_train_bad_limit(const char *stage, const char *unit, int64_t bad, int max_bad, const char *hint,
                        dd2_status *st);

/* After step `u` of `total`: progress line "loss L lr R<progress_suffix>" and, when due, the
 * metrics line {"loss", "grad_norm", "lr"<metrics_suffix>} for the window, which then restarts.
 * *window_mean (may be NULL) gets the window's mean loss when a line is written over a non-empty
 * window. */
int dd2_train_log_step(dd2_train_log *lg, long u, long total, double gnorm, double lr, const char *progress_suffix,
                       const char *metrics_suffix, double *window_mean, dd2_status *st);

/* perm [N] = the data order of epoch `epoch`: a permutation keyed by (seed, DD2_RNG_DATA_ORDER,
 * epoch) (docs/pipeline.md); computed only when *cached_epoch != epoch, which it then becomes. */
void dd2_train_epoch_order(uint64_t seed, long epoch, uint32_t *perm, uint32_t N, long *cached_epoch);

/* Collective: the worst rc over all ranks; a rank that succeeded while another failed gets
 * "<what>: another rank failed"; on a failure st->collective = 1 (every rank fails here). */
int dd2_agree(int rc, const char *what, dd2_status *st);
/* The same over the ranks of comm (e.g. the learners). */
int dd2_agree_in(MPI_Comm comm, int rc, const char *what, dd2_status *st);

/* At a step boundary: *sig = the stop signal if ANY rank of comm received one (MPI_Allreduce MAX
 * over comm, so every rank decides the same), else 0 (core/signals.h). */
int dd2_train_stop_agreed(MPI_Comm comm, int *sig, dd2_status *st);

/* After the checkpoint of a stop: log it and mark the run stopped (the stage returns DD2_OK and
 * writes no final file; the pipeline stops; the driver exits 0). */
void dd2_train_stopped(const char *stage, int sig, long step);

/* The end of training step u of total (collective): the periodic checkpoint when due
 * (dd2_train_ckpt_due), then the agreed stop check; on a stop (before the last step) a checkpoint
 * is saved if none was just saved, the stop is logged and marked, and *stop = 1 (the caller
 * ends its loop and returns DD2_OK). save(trainer, dir, st) saves the stage's checkpoint. */
typedef int (*dd2_train_save_fn)(void *trainer, const char *dir, dd2_status *st);
int dd2_train_boundary(const dd2_config *cfg, MPI_Comm comm, const char *stage, long u, long total, dd2_train_save_fn save,
                       void *trainer, const char *dir, int *stop, dd2_status *st);

#endif
