/* `dd2 ardiff CONFIG`: stage 1 of DD2 (method.md §4, docs/ardiff.md). Trains the AR-diffusion
 * model Ψ (the teacher's backbone, initialised from teacher/teacher.h5, + an MLP diffusion head)
 * on the teacher's own samples (<run>/teacher_samples/samples.h5) with the ground-truth-score
 * loss: the target velocity at every position and noise level is the closed form of the
 * teacher's conditional distribution at that prefix (model/mixture.h), computed from one
 * teacher-forced teacher pass per sequence. ardiff.loss: diffusion uses ε − q instead.
 *
 * Data parallel over all ranks like the teacher stage: the global batch of step s is a fixed set
 * of sequences (a permutation per epoch keyed by (seed, DATA_ORDER, epoch)), split into
 * contiguous slices per rank; noise and timesteps are keyed by (seed, purpose, global slot
 * s·B + k, position·m + draw); gradients are summed with MPI_Allreduce. So results do not depend
 * on the number of ranks (up to the order of floating-point sums) and a resumed run repeats the
 * uninterrupted one bitwise. The first ardiff.head_only_steps steps train the head alone (the
 * backbone gets no backward and no update; its Adam step count starts when it starts training).
 * Outputs: checkpoints in <run>/ardiff/, the final weights <run>/ardiff/ardiff.h5 (last). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fault.h"
#include "core/log.h"
#include "core/signals.h"
#include "dist/collectives.h"
#include "io/ckpt.h"
#include "io/h5io.h"
#include "model/ardiff.h"
#include "model/optim.h"
#include "train/ardiff_io.h"
#include "train/generate.h"
#include "train/score_roles.h"
#include "train/teacher_io.h"
#include "train/token_data.h"
#include "train/train_loop.h"

#ifndef DD2_GIT_REV
#define DD2_GIT_REV "unknown"
#endif

#define EVAL_SEQS 256                 /* sequences of each fixed-noise evaluation set */
#define EVAL_SLOT ((uint64_t)1 << 40) /* its draws: slots EVAL_SLOT + i, apart from training */

typedef struct trainer {
    const dd2_stage_ctx *ctx;    /* ctx->comm: the learners */
    const dd2_config *cfg;
    MPI_Comm comm;
    int rank, size;              /* in comm */
    dd2_token_data td;
    dd2_teacher t;               /* the backbone's initial weights and the code vectors */
    float *tparams;
    dd2_score_server srv;        /* colocated: this learner's own teacher-score service */
    dd2_score_link link;         /* GTS targets: the teacher's posterior at the noised points */
    dd2_score_msg req;
    dd2_ardiff a;
    dd2_ardiff_work w;
    float *params, *grads, *m, *v;
    uint8_t *decay_mask;
    int64_t N;             /* teacher samples */
    int32_t *s_tokens;     /* [N,n] */
    int32_t *s_labels;     /* [N] */
    int32_t *h_tokens;     /* [EVAL_SEQS,n] held-out teacher samples (never trained on) */
    int32_t *h_labels;     /* [EVAL_SEQS] */
    int32_t *tok;          /* [local batch, n] */
    int *y;                /* [local batch] */
    float *q;              /* [local batch, n, C] code vectors */
    uint32_t *perm;        /* [N] order of the current epoch */
    long perm_epoch;
    int B, lo, hi, draws;  /* global batch; this rank's slice [lo, hi); m */
    long steps, steps_per_epoch;
    int64_t step;          /* next step to run */
    int64_t skipped;       /* steps skipped for a non-finite loss or gradient */
    int64_t bad_run;       /* of them, skipped in a row up to now */
    int64_t updates[2];    /* AdamW updates applied to the head, to the backbone */
    dd2_lr_schedule sched;
    dd2_adam_cfg adam;
} trainer;

static void trainer_free(trainer *tr) {
    dd2_ardiff_work_free(&tr->w);
    dd2_ardiff_free(&tr->a);
    dd2_score_msg_free(&tr->req);
    dd2_score_msg_free(&tr->link.rep);
    dd2_score_server_free(&tr->srv);
    dd2_teacher_free(&tr->t);
    dd2_token_data_free(&tr->td);
    free(tr->tparams);
    free(tr->params);
    free(tr->grads);
    free(tr->m);
    free(tr->v);
    free(tr->decay_mask);
    free(tr->s_tokens);
    free(tr->s_labels);
    free(tr->h_tokens);
    free(tr->h_labels);
    free(tr->tok);
    free(tr->y);
    free(tr->q);
    free(tr->perm);
}

/* <run>/teacher_samples/samples.h5: tokens [N,n] and labels [N], checked against the data. */
static int load_samples(trainer *tr, dd2_status *st) {
    char path[1200];
    DD2_TRY(dd2_stage_path(tr->ctx, "teacher_samples/samples.h5", path, sizeof path, st));
    if (!dd2_file_exists(path))
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s not found: run `dd2 teacher-sample CONFIG` first", path);
    const int n = tr->td.n, V = tr->td.cb.codes, K = tr->cfg->data.n_classes;
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_open_read(path, &h, st));
    dd2_h5_shape sh;
    int rc = dd2_h5_get_shape(h, "tokens", &sh, st);
    if (rc == DD2_OK && (sh.type != DD2_H5_I32 || sh.rank != 2 || sh.dims[1] != n || sh.dims[0] < 1))
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: dataset 'tokens' should be i32 [N, %d] (rerun `dd2 teacher-sample`)",
                      path, n);
    if (rc == DD2_OK) {
        tr->N = sh.dims[0];
        tr->s_tokens = DD2_MALLOC((size_t)tr->N * n * sizeof(int32_t), st);
        tr->s_labels = DD2_MALLOC((size_t)tr->N * sizeof(int32_t), st);
        if (!tr->s_tokens || !tr->s_labels) rc = DD2_ERR_RUNTIME;
    }
    if (rc == DD2_OK) rc = dd2_h5_read_i32(h, "tokens", 2, sh.dims, tr->s_tokens, st);
    if (rc == DD2_OK) rc = dd2_h5_read_i32(h, "labels", 1, sh.dims, tr->s_labels, st);
    dd2_status st2;
    dd2_status_clear(&st2);
    dd2_h5_close(h, &st2);
    DD2_TRY(rc);
    for (int64_t i = 0; i < tr->N * n; i++)
        if (tr->s_tokens[i] < 0 || tr->s_tokens[i] >= V)
            return DD2_FAIL(st, DD2_ERR_INPUT, "%s: token %d of sequence %lld is outside [0, %d) (vq.codes changed? "
                            "rerun `dd2 teacher-sample`)", path, tr->s_tokens[i], (long long)(i / n), V);
    for (int64_t i = 0; i < tr->N; i++)
        if (tr->s_labels[i] < 0 || tr->s_labels[i] >= K)
            return DD2_FAIL(st, DD2_ERR_INPUT, "%s: label %d of sequence %lld is outside [0, %d)", path,
                            tr->s_labels[i], (long long)i, K);
    return DD2_OK;
}

static int trainer_setup(trainer *tr, const dd2_stage_ctx *ctx, const dd2_roles *roles, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    tr->ctx = ctx;
    tr->cfg = cfg;
    tr->comm = ctx->comm;
    MPI_Comm_rank(tr->comm, &tr->rank);
    MPI_Comm_size(tr->comm, &tr->size);
    DD2_TRY(dd2_token_data_load(ctx, &tr->td, st));
    const dd2_token_data *d = &tr->td;
    DD2_TRY(load_samples(tr, st));
    DD2_TRY(dd2_teacher_load(ctx, d, &tr->t, &tr->tparams, st));
    DD2_TRY(dd2_ardiff_init(&tr->a, cfg, &d->cb, d->gh, d->gw, st));
    const int R = tr->size, r = tr->rank;
    tr->B = cfg->ardiff.batch;
    tr->draws = cfg->ardiff.m;
    if (tr->B > tr->N)
        return DD2_FAIL(st, DD2_ERR_INPUT, "ardiff.batch = %d is larger than the teacher samples (%lld sequences; "
                        "teacher_sample.n)", tr->B, (long long)tr->N);
    if (tr->B < R)
        return DD2_FAIL(st, DD2_ERR_INPUT, "ardiff.batch = %d is smaller than the number of learners (%d)", tr->B, R);
    tr->lo = (int)((int64_t)r * tr->B / R);
    tr->hi = (int)((int64_t)(r + 1) * tr->B / R);
    tr->steps_per_epoch = (long)(tr->N / tr->B);
    tr->steps = cfg->ardiff.steps;
    tr->perm_epoch = -1;
    const int bl = tr->hi - tr->lo, n = d->n, C = d->cb.dim;
    const size_t numel = tr->a.tab.numel;
    tr->params = DD2_MALLOC(numel * sizeof(float), st);
    tr->grads = DD2_CALLOC(numel, sizeof(float), st);
    tr->m = DD2_CALLOC(numel, sizeof(float), st);
    tr->v = DD2_CALLOC(numel, sizeof(float), st);
    tr->decay_mask = dd2_ptable_decay_mask(&tr->a.tab, st);
    tr->tok = DD2_MALLOC((size_t)bl * n * sizeof *tr->tok, st);
    tr->y = DD2_MALLOC((size_t)bl * sizeof *tr->y, st);
    tr->q = DD2_MALLOC((size_t)bl * n * C * sizeof *tr->q, st);
    tr->perm = DD2_MALLOC((size_t)tr->N * sizeof *tr->perm, st);
    if (!tr->params || !tr->grads || !tr->m || !tr->v || !tr->decay_mask || !tr->tok || !tr->y || !tr->q ||
        !tr->perm)
        return DD2_ERR_RUNTIME;
    DD2_TRY(dd2_ardiff_work_alloc(&tr->w, &tr->a, bl, tr->draws, st));
    DD2_TRY(dd2_score_learner_link(cfg, roles, &tr->t, tr->tparams, &d->cb, &tr->srv, &tr->link, st));
    /* head: MAR initialisation; backbone: the teacher's weights */
    DD2_TRY(dd2_ptable_init_params(&tr->a.tab, tr->params, (uint64_t)cfg->run.seed, st));
    DD2_TRY_CTX(dd2_ardiff_copy_tensors(&tr->a.tab, tr->params, NULL, tr->a.bb.first, tr->a.bb.count, &tr->t.tab,
                                        tr->tparams, NULL, st),
                st, "ardiff: initialising the backbone from the teacher");
    tr->sched = (dd2_lr_schedule){DD2_LR_CONSTANT, cfg->ardiff.lr, 0.0, 0.0, cfg->ardiff.warmup, tr->steps, 0};
    tr->adam = (dd2_adam_cfg){(float)cfg->ardiff.betas.v[0], (float)cfg->ardiff.betas.v[1], 1e-8f,
                              (float)cfg->ardiff.weight_decay};
    return DD2_OK;
}

/* The sequences and classes of this rank's slice of global step `step`, as code vectors. */
static void fill_batch(trainer *tr, int64_t step) {
    const int n = tr->td.n;
    long epoch = (long)(step / tr->steps_per_epoch), j = (long)(step % tr->steps_per_epoch);
    dd2_train_epoch_order((uint64_t)tr->cfg->run.seed, epoch, tr->perm, (uint32_t)tr->N, &tr->perm_epoch);
    for (int k = tr->lo; k < tr->hi; k++) {
        uint32_t idx = tr->perm[(size_t)j * tr->B + k];
        memcpy(tr->tok + (size_t)(k - tr->lo) * n, tr->s_tokens + (size_t)idx * n, (size_t)n * sizeof(int32_t));
        tr->y[k - tr->lo] = tr->s_labels[idx];
    }
    dd2_teacher_embed_tokens(&tr->t, tr->tok, tr->hi - tr->lo, tr->q);
}

/* Loss (sum over points, and gradients when grads) of b sequences already in tr->q / tr->y, with
 * draws for global slots first_slot.. */
static int batch_loss(trainer *tr, int loss, int b, uint64_t first_slot, float *grads, int train_backbone,
                      float scale, double *sum, dd2_status *st) {
    const dd2_config *cfg = tr->cfg;
    const int n = tr->td.n, C = tr->td.cb.dim, m = tr->draws;
    dd2_ardiff_draw((uint64_t)cfg->run.seed, first_slot, b, n, m, C, (float)cfg->ardiff.t_min,
                    (float)cfg->ardiff.t_max, false, false, tr->w.t, tr->w.eps);
    const float *mu = NULL;
    if (loss == DD2_ARDIFF_LOSS_GTS) { /* the teacher's posterior mean at the noised points */
        DD2_TRY(dd2_score_msg_begin(&tr->req, DD2_SCORE_REQ, 0, b, n, C, m, 0, st));
        const dd2_score_req_view r = dd2_score_req_of(&tr->req);
        memcpy(r.q, tr->q, (size_t)b * n * C * sizeof(float));
        memcpy(r.y, tr->y, (size_t)b * sizeof(int32_t));
        memcpy(r.t, tr->w.t, (size_t)b * n * m * sizeof(float));
        dd2_ardiff_noised_points(tr->q, tr->w.t, tr->w.eps, b, n, m, C, r.x);
        const dd2_score_msg *rep;
        DD2_TRY(dd2_score_link_post(&tr->link, &tr->req, st));
        DD2_TRY(dd2_score_link_wait(&tr->link, DD2_SCORE_REP, &rep, st));
        mu = dd2_score_rep_of(rep).mu;
    }
    *sum = dd2_ardiff_loss(&tr->a, tr->params, grads, train_backbone, &tr->w, mu, tr->q, tr->y, tr->w.t, tr->w.eps, b,
                           m, scale);
    return DD2_OK;
}

/* One optimizer step; *loss = mean over the global batch's points of ‖v_Ψ − v*‖²/C. */
static int train_step(trainer *tr, double *loss, double *gnorm, int *skipped, dd2_status *st) {
    const dd2_config *cfg = tr->cfg;
    const size_t numel = tr->a.tab.numel;
    const double points = (double)tr->B * tr->td.n * tr->draws;
    const int train_bb = tr->step >= cfg->ardiff.head_only_steps;
    fill_batch(tr, tr->step);
    memset(tr->grads, 0, numel * sizeof(float));
    double sum = 0.0;
    DD2_TRY(batch_loss(tr, cfg->ardiff.loss, tr->hi - tr->lo, (uint64_t)tr->step * tr->B + (uint64_t)tr->lo,
                       tr->grads, train_bb, (float)(1.0 / points), &sum, st));
    dd2_fault_poison("ardiff", (long)tr->step, tr->grads);
    if (train_bb) {
        DD2_TRY(dd2_allreduce_sum_f32(tr->grads, numel, tr->comm, st));
    } else {
        const dd2_mlp_head *h = &tr->a.head;
        DD2_TRY(dd2_allreduce_sum_f32(tr->grads + h->off_begin, h->off_end - h->off_begin, tr->comm, st));
    }
    DD2_TRY(dd2_allreduce_sum_f64(&sum, 1, tr->comm, st));
    *loss = sum / points;
    *gnorm = sqrt(dd2_sum_squares(tr->grads, numel));
    *skipped = !isfinite(*loss) || !isfinite(*gnorm); /* identical on every rank after the sums */
    if (!*skipped) {
        dd2_scale(tr->grads, numel, dd2_clip_scale(*gnorm, (float)cfg->ardiff.grad_clip));
        const float lr = (float)dd2_lr_at(&tr->sched, (long)tr->step);
        const size_t ranges[2][2] = {{tr->a.head.off_begin, tr->a.head.off_end}, {tr->a.bb.off_begin, tr->a.bb.off_end}};
        for (int k = 0; k < 1 + train_bb; k++) {
            const size_t o = ranges[k][0], len = ranges[k][1] - ranges[k][0];
            dd2_adamw_step(tr->params + o, tr->grads + o, tr->m + o, tr->v + o, tr->decay_mask + o, len, lr,
                           &tr->adam, (long)tr->updates[k] + 1);
            tr->updates[k]++;
        }
    } else {
        tr->skipped++;
    }
    tr->step++;
    return DD2_OK;
}

#define N_STATES 4

static void make_spec(trainer *tr, dd2_ckpt_net *net, dd2_ckpt_state *states, dd2_ckpt_spec *spec, char *config_text) {
    *net = (dd2_ckpt_net){"ardiff", &tr->a.tab, tr->params, tr->m, tr->v, NULL};
    states[0] = (dd2_ckpt_state){"train/step", DD2_CKPT_I64, 1, &tr->step, 0, 0};
    states[1] = (dd2_ckpt_state){"train/skipped", DD2_CKPT_I64, 1, &tr->skipped, 0, 0};
    states[2] = (dd2_ckpt_state){"train/updates", DD2_CKPT_I64, 2, tr->updates, 0, 0};
    states[3] = (dd2_ckpt_state){"train/bad_run", DD2_CKPT_I64, 1, &tr->bad_run, 1, 0}; /* optional: older checkpoints */
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
    int rc = dd2_ckpt_save(tr->comm, dir, tr->step, tr->cfg->checkpoint.keep, &spec, st);
    free(text);
    return rc;
}

static int resume(trainer *tr, const char *dir, dd2_status *st) {
    dd2_ckpt_net net;
    dd2_ckpt_state states[N_STATES];
    dd2_ckpt_spec spec;
    make_spec(tr, &net, states, &spec, NULL);
    dd2_ckpt_result res = {0};
    int rc = dd2_ckpt_resume(tr->comm, dir, tr->cfg->checkpoint.resume, &spec, &res, st);
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

/* Fixed-noise evaluation of E sequences (tokens [E,n], labels [E]; draws from slots EVAL_SLOT + i):
 * out[0] = the mean per-point loss against the GTS target, out[1] against the plain diffusion
 * target. The GTS value measures how well Ψ matches the teacher's conditionals whichever loss
 * trained it. Leaves no state behind that training reads (the batch buffers are refilled by every
 * step), so evaluating does not change the training run. Collective over the learners. */
static int eval_set(trainer *tr, const int32_t *tokens, const int32_t *labels, int64_t E, double out[2],
                    dd2_status *st) {
    const int R = tr->size, r = tr->rank, n = tr->td.n, cap = tr->hi - tr->lo;
    const int64_t lo = (int64_t)r * E / R, hi = (int64_t)(r + 1) * E / R;
    double sums[2] = {0.0, 0.0};
    for (int64_t i = lo; i < hi; i += cap) {
        const int b = (int)(hi - i < cap ? hi - i : cap);
        memcpy(tr->tok, tokens + i * n, (size_t)b * n * sizeof(int32_t));
        for (int k = 0; k < b; k++) tr->y[k] = labels[i + k];
        dd2_teacher_embed_tokens(&tr->t, tr->tok, b, tr->q);
        for (int k = 0; k < 2; k++) {
            double s = 0.0;
            DD2_TRY(batch_loss(tr, k == 0 ? DD2_ARDIFF_LOSS_GTS : DD2_ARDIFF_LOSS_DIFFUSION, b,
                               EVAL_SLOT + (uint64_t)i, NULL, 0, 0.0f, &s, st));
            sums[k] += s;
        }
    }
    DD2_TRY(dd2_allreduce_sum_f64(sums, 2, tr->comm, st));
    const double points = (double)E * n * tr->draws;
    out[0] = sums[0] / points;
    out[1] = sums[1] / points;
    return DD2_OK;
}

/* EVAL_SEQS fresh teacher samples (balanced classes, sampling settings sample.*): the held-out set.
 * Collective over the learners. */
static int make_heldout(trainer *tr, dd2_status *st) {
    const int n = tr->td.n;
    tr->h_tokens = DD2_MALLOC((size_t)EVAL_SEQS * n * sizeof *tr->h_tokens, st);
    tr->h_labels = DD2_MALLOC((size_t)EVAL_SEQS * sizeof *tr->h_labels, st);
    if (!tr->h_tokens || !tr->h_labels) return DD2_ERR_RUNTIME;
    dd2_balanced_labels(tr->h_labels, EVAL_SEQS, tr->cfg->data.n_classes);
    double seconds = 0.0;
    DD2_TRY_CTX(dd2_generate_teacher(tr->ctx, &tr->t, tr->tparams, tr->h_labels, EVAL_SEQS, DD2_SAMPLE_INDEX_HELDOUT,
                                     tr->h_tokens, &seconds, st),
                st, "ardiff: sampling the held-out evaluation set");
    dd2_info0("ardiff: held-out evaluation set: %d fresh teacher samples (%.1fs)", EVAL_SEQS, seconds);
    return DD2_OK;
}

/* Evaluates both sets (GTS and diffusion loss on the first EVAL_SEQS training samples, then on
 * the held-out set) and appends one metrics line at the current step (`extra`: more JSON fields
 * or ""). */
static int eval_and_log(trainer *tr, const char *extra, dd2_status *st) {
    double loss[4];
    const int64_t E = tr->N < EVAL_SEQS ? tr->N : EVAL_SEQS;
    DD2_TRY(eval_set(tr, tr->s_tokens, tr->s_labels, E, loss, st));
    DD2_TRY(eval_set(tr, tr->h_tokens, tr->h_labels, EVAL_SEQS, loss + 2, st));
    dd2_info0("ardiff: step %lld: fixed-noise eval loss (mean ||v - v*||^2 / C) against the GTS target %.5f on "
              "training samples, %.5f held out; against the diffusion target %.5f, %.5f",
              (long long)tr->step, loss[0], loss[2], loss[1], loss[3]);
    char fields[256];
    snprintf(fields, sizeof fields,
             "\"eval_gts_loss\": %.6f, \"eval_diffusion_loss\": %.6f, \"heldout_gts_loss\": %.6f, "
             "\"heldout_diffusion_loss\": %.6f%s",
             loss[0], loss[1], loss[2], loss[3], extra);
    return dd2_metrics_append(tr->ctx, "ardiff", (long)tr->step, fields, st);
}

static int save_cb(void *tr, const char *dir, dd2_status *st) { return save_checkpoint(tr, dir, st); }

static int run_training(trainer *tr, const char *dir, double *final_loss, dd2_status *st) {
    const dd2_config *cfg = tr->cfg;
    DD2_TRY(dd2_check_replicas(tr->params, tr->a.tab.numel, "initial ardiff weights", tr->comm, st));
    DD2_TRY(resume(tr, dir, st));
    DD2_TRY(make_heldout(tr, st));
    dd2_info0("ardiff: %.2fM parameters (head %.2fM), loss %s, %ld steps (%ld per epoch of %lld teacher samples), "
              "global batch %d x %d draws over %d learner%s%s",
              (double)tr->a.tab.numel / 1e6, (double)(tr->a.head.off_end - tr->a.head.off_begin) / 1e6,
              cfg->ardiff.loss == DD2_ARDIFF_LOSS_GTS ? "gts" : "diffusion", tr->steps, tr->steps_per_epoch,
              (long long)tr->N, tr->B, tr->draws, tr->size, tr->size == 1 ? "" : "s",
              cfg->ardiff.head_only_steps > 0 ? " (head only first)" : "");
    dd2_train_log lg;
    dd2_train_log_begin(&lg, tr->ctx, "ardiff", (long)tr->step, tr->steps, &tr->bad_run);
    *final_loss = NAN;
    while (tr->step < tr->steps) {
        double loss, gnorm;
        int skipped;
        DD2_TRY(train_step(tr, &loss, &gnorm, &skipped, st));
        DD2_TRY(dd2_train_check_skip(&lg, skipped, loss, tr->step - 1, tr->skipped, st));
        const int head_only = tr->step - 1 < cfg->ardiff.head_only_steps;
        char head_field[32];
        snprintf(head_field, sizeof head_field, ", \"head_only\": %d", head_only);
        DD2_TRY(dd2_train_log_step(&lg, (long)tr->step, tr->steps, gnorm, dd2_lr_at(&tr->sched, (long)tr->step - 1),
                                   head_only ? " (head only)" : "", head_field, final_loss, st));
        const int every = cfg->ardiff.eval_every;
        if (every > 0 && tr->step % every == 0 && tr->step < tr->steps) DD2_TRY(eval_and_log(tr, "", st));
        int stop;
        DD2_TRY(dd2_train_boundary(cfg, tr->comm, "ardiff", (long)tr->step, tr->steps, save_cb, tr, dir, &stop, st));
        if (stop) {
            dd2_train_log_end(&lg);
            return DD2_OK;
        }
    }
    dd2_train_log_end(&lg);
    return save_checkpoint(tr, dir, st);
}

/* A learner: setup, training, the evaluation, the final file; the link is closed on every path. */
static int run_learner(trainer *tr, const dd2_stage_ctx *lctx, const dd2_roles *roles, const char *dir,
                       const char *final_path, dd2_status *st) {
    int rc = trainer_setup(tr, lctx, roles, st);
    /* every rank reads the same files and config, so a setup failure is normally shared; agree */
    rc = dd2_agree(rc, "ardiff", st);
    const int serving = rc == DD2_OK; /* the workers serve only after this agreement */
    double t0 = dd2_now(), final_loss = NAN;
    if (rc == DD2_OK) rc = run_training(tr, dir, &final_loss, st);
    const int stopped = rc == DD2_OK && dd2_stopped(); /* on a signal: the checkpoint is the output */
    const double train_s = dd2_now() - t0;
    if (rc == DD2_OK && !stopped) {
        dd2_info0("ardiff: trained in %.1fs", train_s);
        char extra[64];
        snprintf(extra, sizeof extra, ", \"seconds\": %.1f", train_s);
        rc = eval_and_log(tr, extra, st);
    }
    rc = dd2_score_learner_done(&tr->link, serving, rc, st);
    if (rc != DD2_OK && !st->collective) return rc; /* only some learners failed: the driver aborts */
    if (rc == DD2_OK && !stopped && tr->rank == 0)
        rc = dd2_ardiff_save(final_path, &tr->a, tr->params, lctx->cfg->ardiff.loss, tr->step, final_loss, st);
    rc = dd2_stage_end_agree(rc, "ardiff", st);
    if (rc == DD2_OK && !stopped) dd2_info0("ardiff: wrote %s", final_path);
    return rc;
}

int dd2_stage_ardiff(const dd2_stage_ctx *ctx, dd2_status *st) {
    char dir[1100], final_path[1200];
    dd2_roles roles;
    int rc = dd2_stage_files(ctx, "ardiff", "ardiff.h5", dir, sizeof dir, final_path, sizeof final_path, st);
    if (rc == DD2_OK) rc = dd2_stage_roles(ctx, "ardiff", &roles, st);
    if (rc != DD2_OK) {
        st->collective = 1;
        return rc;
    }
    if (roles.is_worker) {
        rc = dd2_score_worker_stage(ctx, &roles, "ardiff", NULL, st);
    } else {
        trainer tr;
        memset(&tr, 0, sizeof tr);
        dd2_stage_ctx lctx = *ctx;
        lctx.comm = roles.learners;
        rc = run_learner(&tr, &lctx, &roles, dir, final_path, st);
        trainer_free(&tr);
    }
    dd2_roles_free(&roles);
    return rc;
}
