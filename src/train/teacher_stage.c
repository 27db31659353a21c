/* `dd2 teacher CONFIG`: train the class-conditional AR teacher (backbone + logits head) on the
 * tokenized training set with cross-entropy, class dropout (null class for CFG), AdamW, warm-up +
 * cosine LR and gradient clipping. Data parallel over all ranks: the global batch of step s is a
 * fixed set of sequences (a permutation per epoch, keyed by the seed), split into contiguous
 * slices per rank; gradients are summed with MPI_Allreduce. Everything random is keyed by
 * (seed, step, global sample slot), so results do not depend on the number of ranks (up to the
 * order of the floating-point sums) and a resumed run repeats the uninterrupted one bitwise.
 * Outputs: checkpoints in <run>/teacher/, the final weights <run>/teacher/teacher.h5. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fault.h"
#include "core/log.h"
#include "core/rng.h"
#include "dist/collectives.h"
#include "io/ckpt.h"
#include "io/h5io.h"
#include "model/ops.h"
#include "model/optim.h"
#include "model/params_io.h"
#include "model/teacher.h"
#include "core/signals.h"
#include "train/stages.h"
#include "train/teacher_io.h"
#include "train/train_loop.h"
#include "train/token_data.h"

#ifndef DD2_GIT_REV
#define DD2_GIT_REV "unknown"
#endif

typedef struct trainer {
    const dd2_stage_ctx *ctx;
    const dd2_config *cfg;
    dd2_token_data data;
    dd2_teacher t;
    dd2_teacher_work w;
    float *params, *grads, *m, *v;
    uint8_t *decay_mask;
    int32_t *tokens; /* [local batch, n] */
    int *y;          /* [local batch] */
    uint32_t *perm;  /* [N] order of the current epoch */
    long perm_epoch;
    int B, lo, hi;   /* global batch; this rank's slice [lo, hi) of it */
    long steps, steps_per_epoch;
    int64_t step;    /* next step to run */
    int64_t skipped; /* steps skipped for a non-finite loss or gradient */
    int64_t bad_run; /* of them, skipped in a row up to now */
    dd2_lr_schedule sched;
    dd2_adam_cfg adam;
} trainer;

static void trainer_free(trainer *tr) {
    dd2_teacher_work_free(&tr->w);
    dd2_teacher_free(&tr->t);
    dd2_token_data_free(&tr->data);
    free(tr->params);
    free(tr->grads);
    free(tr->m);
    free(tr->v);
    free(tr->decay_mask);
    free(tr->tokens);
    free(tr->y);
    free(tr->perm);
}

static int trainer_setup(trainer *tr, const dd2_stage_ctx *ctx, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    tr->ctx = ctx;
    tr->cfg = cfg;
    DD2_TRY(dd2_token_data_load(ctx, &tr->data, st));
    const dd2_token_data *d = &tr->data;
    DD2_TRY(dd2_teacher_init(&tr->t, cfg, d->cb.c, d->cb.codes, d->cb.dim, d->gh, d->gw, st));
    const int R = ctx->env->size, r = ctx->env->rank;
    tr->B = cfg->teacher.batch;
    if (tr->B > d->train.N)
        return DD2_FAIL(st, DD2_ERR_INPUT, "teacher.batch = %d is larger than the training set (%lld sequences)", tr->B,
                        (long long)d->train.N);
    if (tr->B < R)
        return DD2_FAIL(st, DD2_ERR_INPUT, "teacher.batch = %d is smaller than the number of ranks (%d)", tr->B, R);
    tr->lo = (int)((int64_t)r * tr->B / R);
    tr->hi = (int)((int64_t)(r + 1) * tr->B / R);
    tr->steps_per_epoch = (long)(d->train.N / tr->B);
    tr->steps = cfg->teacher.steps ? cfg->teacher.steps : (long)cfg->teacher.epochs * tr->steps_per_epoch;
    tr->perm_epoch = -1;
    const size_t numel = tr->t.tab.numel;
    tr->params = DD2_MALLOC(numel * sizeof(float), st);
    tr->grads = DD2_CALLOC(numel, sizeof(float), st);
    tr->m = DD2_CALLOC(numel, sizeof(float), st);
    tr->v = DD2_CALLOC(numel, sizeof(float), st);
    tr->decay_mask = dd2_ptable_decay_mask(&tr->t.tab, st);
    tr->tokens = DD2_MALLOC((size_t)(tr->hi - tr->lo + 1) * (size_t)d->n * sizeof *tr->tokens, st);
    tr->y = DD2_MALLOC((size_t)(tr->hi - tr->lo + 1) * sizeof *tr->y, st);
    tr->perm = DD2_MALLOC((size_t)d->train.N * sizeof *tr->perm, st);
    if (!tr->params || !tr->grads || !tr->m || !tr->v || !tr->decay_mask || !tr->tokens || !tr->y || !tr->perm)
        return DD2_ERR_RUNTIME;
    DD2_TRY(dd2_teacher_work_alloc(&tr->w, &tr->t, tr->hi - tr->lo, st));
    DD2_TRY(dd2_ptable_init_params(&tr->t.tab, tr->params, (uint64_t)cfg->run.seed, st));
    tr->sched = (dd2_lr_schedule){dd2_train_lr_kind(cfg->teacher.schedule),
                                  cfg->teacher.lr, 0.0, 0.0, cfg->teacher.warmup, tr->steps, 0};
    tr->adam = (dd2_adam_cfg){(float)cfg->teacher.betas.v[0], (float)cfg->teacher.betas.v[1], 1e-8f,
                              (float)cfg->teacher.weight_decay};
    return DD2_OK;
}

/* The sequences and classes of this rank's slice of global step `step`. */
static void fill_batch(trainer *tr, int64_t step) {
    const dd2_token_split *s = &tr->data.train;
    const int n = tr->data.n;
    long epoch = (long)(step / tr->steps_per_epoch), j = (long)(step % tr->steps_per_epoch);
    dd2_train_epoch_order((uint64_t)tr->cfg->run.seed, epoch, tr->perm, (uint32_t)s->N, &tr->perm_epoch);
    for (int k = tr->lo; k < tr->hi; k++) {
        uint32_t idx = tr->perm[(size_t)j * tr->B + k];
        memcpy(tr->tokens + (size_t)(k - tr->lo) * n, s->tokens + (size_t)idx * n, (size_t)n * sizeof(int32_t));
        dd2_rng r;
        dd2_rng_init(&r, (uint64_t)tr->cfg->run.seed, DD2_RNG_CLASS_DROPOUT, (uint64_t)step * tr->B + k, 0);
        int drop = dd2_rng_uniform(&r) < tr->cfg->teacher.class_dropout;
        tr->y[k - tr->lo] = drop ? tr->t.K : s->labels[idx];
    }
}

/* One optimizer step; *loss = mean cross-entropy (nats/token) over the global batch. */
static int train_step(trainer *tr, double *loss, double *gnorm, int *skipped, dd2_status *st) {
    const size_t numel = tr->t.tab.numel;
    const double tokens = (double)tr->B * tr->data.n;
    fill_batch(tr, tr->step);
    memset(tr->grads, 0, numel * sizeof(float));
    double sum = dd2_teacher_loss(&tr->t, tr->params, tr->grads, &tr->w, tr->tokens, tr->y, tr->hi - tr->lo,
                                  (float)(1.0 / tokens));
    dd2_fault_poison("teacher", (long)tr->step, tr->grads);
    DD2_TRY(dd2_allreduce_sum_f32(tr->grads, numel, MPI_COMM_WORLD, st));
    DD2_TRY(dd2_allreduce_sum_f64(&sum, 1, MPI_COMM_WORLD, st));
    *loss = sum / tokens;
    *gnorm = sqrt(dd2_sum_squares(tr->grads, numel));
    *skipped = !isfinite(*loss) || !isfinite(*gnorm); /* identical on every rank after the sums */
    if (!*skipped) {
        dd2_scale(tr->grads, numel, dd2_clip_scale(*gnorm, (float)tr->cfg->teacher.grad_clip));
        float lr = (float)dd2_lr_at(&tr->sched, (long)tr->step);
        dd2_adamw_step(tr->params, tr->grads, tr->m, tr->v, tr->decay_mask, numel, lr, &tr->adam,
                       (long)(tr->step - tr->skipped) + 1);
    } else {
        tr->skipped++;
    }
    tr->step++;
    return DD2_OK;
}

#define N_STATES 3 /* the checkpoint's state arrays */

static void make_spec(trainer *tr, dd2_ckpt_net *net, dd2_ckpt_state *states, dd2_ckpt_spec *spec, char *config_text) {
    *net = (dd2_ckpt_net){"teacher", &tr->t.tab, tr->params, tr->m, tr->v, NULL};
    states[0] = (dd2_ckpt_state){"train/step", DD2_CKPT_I64, 1, &tr->step, 0, 0};
    states[1] = (dd2_ckpt_state){"train/skipped", DD2_CKPT_I64, 1, &tr->skipped, 0, 0};
    states[2] = (dd2_ckpt_state){"train/bad_run", DD2_CKPT_I64, 1, &tr->bad_run, 1, 0}; /* optional: older checkpoints */
    *spec = (dd2_ckpt_spec){net, 1, states, N_STATES, config_text, DD2_GIT_REV};
}

static int save_checkpoint(trainer *tr, const char *dir, dd2_status *st) {
    char *text = NULL;
    size_t len = 0;
    DD2_TRY(dd2_config_to_yaml(tr->cfg, &text, &len, st));
    dd2_ckpt_net net;
    dd2_ckpt_state states[N_STATES];
    dd2_ckpt_spec spec;
    make_spec(tr, &net, states, &spec, text);
    int rc = dd2_ckpt_save(MPI_COMM_WORLD, dir, tr->step, tr->cfg->checkpoint.keep, &spec, st);
    free(text);
    return rc;
}

static int resume(trainer *tr, const char *dir, dd2_status *st) {
    dd2_ckpt_net net;
    dd2_ckpt_state states[N_STATES];
    dd2_ckpt_spec spec;
    make_spec(tr, &net, states, &spec, NULL);
    dd2_ckpt_result res = {0};
    int rc = dd2_ckpt_resume(MPI_COMM_WORLD, dir, tr->cfg->checkpoint.resume, &spec, &res, st);
    if (rc == DD2_OK && res.found) {
        const char *diff = NULL;
        dd2_status st2;
        dd2_status_clear(&st2);
        if (dd2_ckpt_config_diff(res.config_text, tr->cfg, &diff, &st2) == DD2_OK && diff)
            dd2_warn0("resuming %s with a different config (first difference: %s)", res.dir, diff);
        dd2_info0("resumed from %s (step %lld of %ld, saved by %d rank%s)", res.dir, (long long)tr->step, tr->steps,
                  res.saved_learners, res.saved_learners == 1 ? "" : "s");
    }
    dd2_ckpt_result_free(&res);
    return rc;
}

/* Mean test-set negative log-likelihood in bits per token (true classes, no dropout). */
static int test_nll_bits(trainer *tr, double *bits, dd2_status *st) {
    const dd2_token_split *s = &tr->data.test;
    const int R = tr->ctx->env->size, r = tr->ctx->env->rank, n = tr->data.n, cap = tr->hi - tr->lo;
    int64_t lo = (int64_t)r * s->N / R, hi = (int64_t)(r + 1) * s->N / R;
    double sum = 0.0;
    for (int64_t i = lo; i < hi; i += cap) {
        int b = (int)(hi - i < cap ? hi - i : cap);
        memcpy(tr->y, s->labels + i, (size_t)b * sizeof(int));
        sum += dd2_teacher_loss(&tr->t, tr->params, NULL, &tr->w, s->tokens + i * n, tr->y, b, 0.0f);
    }
    DD2_TRY(dd2_allreduce_sum_f64(&sum, 1, MPI_COMM_WORLD, st));
    *bits = sum / ((double)s->N * n) / log(2.0);
    return DD2_OK;
}

static int save_cb(void *tr, const char *dir, dd2_status *st) { return save_checkpoint(tr, dir, st); }

static int run_training(trainer *tr, const char *dir, dd2_status *st) {
    const dd2_config *cfg = tr->cfg;
    DD2_TRY(dd2_check_replicas(tr->params, tr->t.tab.numel, "initial teacher weights", MPI_COMM_WORLD, st));
    DD2_TRY(resume(tr, dir, st));
    dd2_info0("teacher: %.2fM parameters, %ld steps (%ld per epoch), global batch %d over %d rank%s", 
              (double)tr->t.tab.numel / 1e6, tr->steps, tr->steps_per_epoch, tr->B, tr->ctx->env->size,
              tr->ctx->env->size == 1 ? "" : "s");
    dd2_train_log lg;
    dd2_train_log_begin(&lg, tr->ctx, "teacher", (long)tr->step, tr->steps, &tr->bad_run);
    while (tr->step < tr->steps) {
        double loss, gnorm;
        int skipped;
        DD2_TRY(train_step(tr, &loss, &gnorm, &skipped, st));
        DD2_TRY(dd2_train_check_skip(&lg, skipped, loss, tr->step - 1, tr->skipped, st));
        DD2_TRY(dd2_train_log_step(&lg, (long)tr->step, tr->steps, gnorm, dd2_lr_at(&tr->sched, (long)tr->step - 1),
                                   NULL, NULL, NULL, st));
        int stop;
        DD2_TRY(dd2_train_boundary(cfg, MPI_COMM_WORLD, "teacher", (long)tr->step, tr->steps, save_cb, tr, dir, &stop, st));
        if (stop) {
            dd2_train_log_end(&lg);
            return DD2_OK;
        }
    }
    dd2_train_log_end(&lg);
    return save_checkpoint(tr, dir, st);
}

int dd2_stage_teacher(const dd2_stage_ctx *ctx, dd2_status *st) {
    trainer tr;
    memset(&tr, 0, sizeof tr);
    char dir[1100], final_path[1200];
    int rc = dd2_stage_files(ctx, "teacher", "teacher.h5", dir, sizeof dir, final_path, sizeof final_path, st);
    if (rc == DD2_OK) rc = trainer_setup(&tr, ctx, st);
    double t0 = dd2_now();
    if (rc == DD2_OK) rc = run_training(&tr, dir, st);
    double bits = NAN;
    if (rc == DD2_OK && dd2_stopped()) { /* stopped on a signal: the checkpoint is the output */
        trainer_free(&tr);
        return DD2_OK;
    }
    if (rc == DD2_OK) rc = test_nll_bits(&tr, &bits, st);
    if (rc == DD2_OK) {
        dd2_info0("teacher: test NLL %.4f bits/token (%.1f bits/image); trained in %.1fs", bits, bits * tr.data.n,
                  dd2_now() - t0);
        char fields[96];
        snprintf(fields, sizeof fields, "\"test_nll_bits\": %.6f", bits);
        rc = dd2_metrics_append(ctx, "teacher", (long)tr.step, fields, st);
    }
    if (rc == DD2_OK && ctx->env->rank == 0) rc = dd2_teacher_save(final_path, &tr.t, tr.params, bits, st);
    rc = dd2_agree(rc, "teacher", st);
    if (rc == DD2_OK) dd2_info0("teacher: wrote %s", final_path);
    st->collective = 1;
    trainer_free(&tr);
    return rc;
}
