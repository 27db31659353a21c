/* The shared training-loop pieces; see train_loop.h. */
#include "train/train_loop.h"

#include "core/signals.h"

#include <math.h>
#include <mpi.h>
#include <stdio.h>

#include "core/log.h"
#include "core/rng.h"
#include "model/optim.h"

int dd2_train_log_every(const dd2_config *cfg) { return cfg->log.every > 0 ? cfg->log.every : 50; }

int dd2_train_lr_kind(int cfg_schedule) {
    return cfg_schedule == DD2_SCHEDULE_COSINE ? DD2_LR_COSINE
         : cfg_schedule == DD2_SCHEDULE_LINEAR ? DD2_LR_LINEAR
                                               : DD2_LR_CONSTANT;
}

void dd2_train_log_begin(dd2_train_log *lg, const dd2_stage_ctx *ctx, const char *stage, long start, long total,
                         int64_t *bad_run) {
    lg->ctx = ctx;
    lg->stage = stage;
    lg->every = dd2_train_log_every(ctx->cfg);
    lg->loss_acc = 0.0;
    lg->loss_n = 0;
    lg->own_bad_run = 0;
    lg->bad_run = bad_run ? bad_run : &lg->own_bad_run;
    dd2_progress_begin(&lg->prog, stage, start, total, 10.0);
}

void dd2_train_log_end(dd2_train_log *lg) { dd2_progress_end(&lg->prog, NULL); }

int dd2_train_log_due(const dd2_train_log *lg, long u, long total) { return u % lg->every == 0 || u == total; }

int dd2_train_ckpt_due(const dd2_config *cfg, long u, long total) {
    return cfg->checkpoint.every > 0 && u % cfg->checkpoint.every == 0 && u < total;
}

int dd2_train_bad_limit(const char *stage, const char *unit, int64_t bad, int max_bad, const char *hint,
                        dd2_status *st) {
    if (max_bad > 0 && bad >= max_bad) {
        DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: %lld %s in a row with a non-finite loss or gradient "
                 "(dist.max_bad_steps = %d); lower %s?", stage, (long long)bad, unit, max_bad, hint);
        st->collective = 1; /* the count comes from all-reduced sums: the same on every rank */
        return st->code;
    }
    return DD2_OK;
}

int dd2_train_check_skip(dd2_train_log *lg, int skipped, double loss, int64_t step, int64_t skipped_total,
                         dd2_status *st) {
    if (!skipped) {
        lg->loss_acc += loss;
        lg->loss_n++;
        *lg->bad_run = 0;
        return DD2_OK;
    }
    (*lg->bad_run)++;
    dd2_warn0("%s step %lld: non-finite loss or gradient on some rank; step skipped on all ranks (%lld so far, %lld "
              "in a row)", lg->stage, (long long)step, (long long)skipped_total, (long long)*lg->bad_run);
    char hint[80];
    snprintf(hint, sizeof hint, "%s.lr", lg->stage);
    return dd2_train_bad_limit(lg->stage, "steps", *lg->bad_run, lg->ctx->cfg->dist.max_bad_steps, hint, st);
}

int dd2_train_log_step(dd2_train_log *lg, long u, long total, double gnorm, double lr, const char *progress_suffix,
                       const char *metrics_suffix, double *window_mean, dd2_status *st) {
    const double mean = lg->loss_n ? lg->loss_acc / lg->loss_n : NAN;
    char extra[160];
    snprintf(extra, sizeof extra, "loss %.4f lr %.2e%s", mean, lr, progress_suffix ? progress_suffix : "");
    dd2_progress_update(&lg->prog, u, extra);
    if (!dd2_train_log_due(lg, u, total)) return DD2_OK;
    char fields[200];
    snprintf(fields, sizeof fields, "\"loss\": %.6f, \"grad_norm\": %.4f, \"lr\": %.6g%s", mean, gnorm, lr,
             metrics_suffix ? metrics_suffix : "");
    DD2_TRY(dd2_metrics_append(lg->ctx, lg->stage, u, fields, st));
    if (lg->loss_n && window_mean) *window_mean = mean;
    lg->loss_acc = 0.0;
    lg->loss_n = 0;
    return DD2_OK;
}

void dd2_train_epoch_order(uint64_t seed, long epoch, uint32_t *perm, uint32_t N, long *cached_epoch) {
    if (epoch == *cached_epoch) return;
    dd2_rng r;
    dd2_rng_init(&r, seed, DD2_RNG_DATA_ORDER, (uint64_t)epoch, 0);
    dd2_rng_permutation(&r, perm, N);
    *cached_epoch = epoch;
}

int dd2_agree(int rc, const char *what, dd2_status *st) { return dd2_agree_in(MPI_COMM_WORLD, rc, what, st); }

int dd2_agree_in(MPI_Comm comm, int rc, const char *what, dd2_status *st) {
    int all = rc;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MAX, comm);
    if (all != DD2_OK && rc == DD2_OK) rc = DD2_FAIL(st, all, "%s: another rank failed", what);
    if (all != DD2_OK) st->collective = 1; /* every rank returns a failure here */
    return rc;
}

int dd2_train_stop_agreed(MPI_Comm comm, int *sig, dd2_status *st) {
    int v = dd2_stop_signal();
    if (MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "MPI_Allreduce failed while checking for stop signals");
    *sig = v;
    return DD2_OK;
}

void dd2_train_stopped(const char *stage, int sig, long step) {
    dd2_info0("%s: stopping on %s at step %ld: checkpoint saved; run the same command again to resume", stage,
              dd2_signal_name(sig), step);
    dd2_mark_stopped();
}

int dd2_train_boundary(const dd2_config *cfg, MPI_Comm comm, const char *stage, long u, long total, dd2_train_save_fn save,
                       void *trainer, const char *dir, int *stop, dd2_status *st) {
    *stop = 0;
    const int due = dd2_train_ckpt_due(cfg, u, total);
    if (due) DD2_TRY(save(trainer, dir, st));
    int sig;
    DD2_TRY(dd2_train_stop_agreed(comm, &sig, st));
    if (!sig || u >= total) return DD2_OK;
    if (!due) DD2_TRY(save(trainer, dir, st));
    dd2_train_stopped(stage, sig, u);
    *stop = 1;
    return DD2_OK;
}
