/* `dd2 distill CONFIG`: stage 2 of DD2 (method.md §5, docs/distill.md), conditional score
 * distillation of the frozen teacher into a one-step generator G, with a guidance network ψ that
 * tracks the generator's own per-position conditional scores. G and ψ start as copies of Ψ
 * (<run>/ardiff/ardiff.h5).
 *
 * One iteration = distill.k guidance updates (each on a fresh generator batch: q = G(ε) detached,
 * ψ trained with the diffusion loss on q) then one generator update (a fresh batch: the teacher's
 * p at every prefix of q, the CSD gradient of model/csd.h into q, backpropagated through G), then
 * the EMA of G. Performance alignment (distill.align.after > 0): once, after that many generator
 * updates, G takes the EMA weights and ψ alone trains for distill.align.steps updates.
 *
 * Data parallel over all ranks like the teacher stage: the global batch (distill.batch
 * sequences) of batch number g (counting guidance and generator batches alike) is the set of
 * sample slots g·B .. g·B + B − 1, split into contiguous slices per rank; the noise, classes and
 * per-point draws of a slot come from RNG streams keyed by the slot (model/csd.h), gradients are
 * summed with MPI_Allreduce. So results do not depend on the number of ranks (up to the order of
 * floating-point sums) and a resumed run repeats the uninterrupted one bitwise.
 * Checkpoint "units" = generator updates + alignment updates done; the checkpoint holds G (with
 * Adam moments and the EMA) as net "gen", ψ as net "guid", and every counter.
 * Outputs: checkpoints in <run>/distill/, metrics (stage "distill"), the final EMA generator
 * <run>/distill/generator.h5 (last). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fault.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/progress.h"
#include "dist/collectives.h"
#include "io/ckpt.h"
#include "model/csd.h"
#include "model/gemm_bf16.h"
#include "model/fid.h"
#include "model/optim.h"
#include "train/ardiff_io.h"
#include "train/distill_io.h"
#include "train/fid_stage.h"
#include "train/generate.h"
#include "train/generate_onestep.h"
#include "train/score_roles.h"
#include "train/teacher_io.h"
#include "train/token_data.h"
#include "train/train_loop.h"

#ifndef DD2_GIT_REV
#define DD2_GIT_REV "unknown"
#endif

/* counters saved in the checkpoint */
enum {
    C_GEN_STEP,     /* generator iterations done (updates + skipped) */
    C_GEN_UPDATES,  /* Adam updates applied to G */
    C_GEN_SKIPPED,
    C_GUID_STEPS,   /* guidance iterations done */
    C_GUID_UPDATES, /* Adam updates applied to ψ */
    C_GUID_SKIPPED,
    C_BATCHES,      /* generator batches drawn (the slot counter) */
    C_ALIGN_STEP,   /* guidance-only updates of the alignment phase done */
    C_GEN_BAD_RUN,  /* generator updates skipped in a row up to now (optional on load: older checkpoints) */
    C_GUID_BAD_RUN, /* guidance updates skipped in a row up to now (optional on load) */
    N_COUNTERS
};
static const char *const counter_names[N_COUNTERS] = {
    "distill/gen_step",   "distill/gen_updates", "distill/gen_skipped", "distill/guid_steps",
    "distill/guid_updates", "distill/guid_skipped", "distill/batches",   "distill/align_step",
    "distill/gen_bad_run",  "distill/guid_bad_run"};

typedef struct trainer {
    const dd2_stage_ctx *ctx;    /* ctx->comm: the learners */
    const dd2_config *cfg;
    MPI_Comm comm;               /* the learners (every rank when colocated) */
    int rank, size;              /* in comm */
    dd2_token_data td;
    dd2_teacher t;               /* colocated only: this learner's own teacher-score service */
    float *tparams;
    dd2_score_server srv;
    dd2_score_link link;         /* to the teacher-score service (local or MPI) */
    dd2_score_msg req;           /* the generator batch: q, y, x_t, t (the request in flight) */
    dd2_ardiff gnet, pnet;       /* offsets of G and of ψ: Ψ's architecture grown by
                                    distill.generator.* / distill.guidance.* (Ψ's when those are 0) */
    dd2_ardiff_work gw, gw2, pw, pwg; /* G on the generator batch (kept for its backward), G on the
                                    guidance batches, ψ in the generator loss (m draws), ψ in the
                                    guidance loss when mg != m (mg draws) */
    dd2_ardiff_work *guid_w;     /* ψ's work in the guidance loss: &pwg, or &pw when mg == m */
    dd2_csd_work cw;
    float *gp, *gg, *gm, *gv, *gema; /* G: params, grads, Adam m and v, EMA */
    float *pp, *pg, *pm, *pv;        /* ψ */
    uint8_t *gmask, *pmask;      /* weight-decay masks of G and ψ */
    float *eps, *q, *dq;         /* [bl,n,C] */
    float *gdraw;                /* [bl·n·m, C] the generator batch's draws ε' */
    /* distill.omega_draws = mo > 0: the request carries m + mo draws per token, the extra mo only
     * for ω per position; the loss reads the first m of each token, gathered here (else NULL) */
    float *o_t, *o_eps, *o_x;    /* [bl·n·mo], [bl·n·mo, C] x2: the extra draws and their points */
    float *l_t, *l_x, *l_mu, *l_cov; /* [P], [P,C], [P,C], [P,C,C] the loss's draws (P = bl·n·m) */
    float *omega_tok;            /* [bl·n] ω per position over the m + mo draws */
    int mo;
    int *y;                      /* [bl] */
    float *ode_q, *ode_e;        /* init: ode-pairs: the pairs [N,n,C] (kept during CSD when
                                    distill.ode.reg_weight > 0), NULL otherwise */
    int *ode_y;                  /* [N] their classes */
    int B, lo, hi, bl, m, mg, K; /* global batch, this rank's slice, its size, draws in the generator
                                    and in the guidance loss, guidance updates */
    long steps, total;           /* generator updates; units including the alignment phase */
    int align_on;
    int64_t c[N_COUNTERS];
    dd2_lr_schedule gen_sched;
    dd2_adam_cfg adam;
    dd2_csd_opts opts;
    int eval_on;                 /* periodic FID (rank 0 holds the network and statistics) */
    dd2_featnet featnet;
    dd2_fid_stats ref;
    double last_fid;
    double sec_guid, sec_gen;    /* wall time in guidance / generator updates (this process) */
    long n_guid, n_gen;
} trainer;

static void trainer_free(trainer *tr) {
    dd2_csd_work_free(&tr->cw);
    dd2_ardiff_work_free(&tr->gw);
    dd2_ardiff_work_free(&tr->gw2);
    dd2_ardiff_work_free(&tr->pw);
    dd2_ardiff_work_free(&tr->pwg);
    dd2_ardiff_free(&tr->gnet);
    dd2_ardiff_free(&tr->pnet);
    dd2_score_msg_free(&tr->req);
    dd2_score_msg_free(&tr->link.rep);
    dd2_score_server_free(&tr->srv);
    dd2_teacher_free(&tr->t);
    dd2_token_data_free(&tr->td);
    dd2_featnet_free(&tr->featnet);
    dd2_fid_stats_free(&tr->ref);
    float *bufs[] = {tr->tparams, tr->gp, tr->gg, tr->gm, tr->gv, tr->gema, tr->pp, tr->pg, tr->pm, tr->pv,
                     tr->eps, tr->q, tr->dq, tr->gdraw, tr->ode_q, tr->ode_e, tr->o_t, tr->o_eps,
                     tr->o_x, tr->l_t, tr->l_x, tr->l_mu, tr->l_cov, tr->omega_tok};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(tr->gmask);
    free(tr->pmask);
    free(tr->y);
    free(tr->ode_y);
}

static const char *omega_name(int omega) {
    return omega == DD2_CSD_OMEGA_POINT ? "point" : omega == DD2_CSD_OMEGA_POSITION ? "position" : "sequence";
}

static const char *init_name(int init) {
    return init == DD2_DISTILL_INIT_TEACHER ? "teacher" : init == DD2_DISTILL_INIT_ODE_PAIRS ? "ode-pairs" : "ardiff";
}

/* The initial weights: a source network S of Ψ's architecture from distill.init (Ψ itself, or
 * the teacher's backbone with a fresh head), then ψ and G grown from S (dd2_ardiff_grow: the same
 * function as S, an exact copy when distill.guidance.* / distill.generator.* add nothing). The
 * EMA starts as a copy of G. */
static int init_networks(trainer *tr, dd2_status *st) {
    const dd2_config *cfg = tr->cfg;
    const uint64_t seed = (uint64_t)cfg->run.seed;
    dd2_ardiff src;
    float *sp = NULL;
    int rc;
    switch (cfg->distill.init) {
    case DD2_DISTILL_INIT_ARDIFF:
    case DD2_DISTILL_INIT_ODE_PAIRS: /* ode-pairs: Ψ, then the regression phase (ode_regression) */
        rc = dd2_ardiff_load(tr->ctx, &tr->td, &src, &sp, st);
        break;
    case DD2_DISTILL_INIT_TEACHER:
        rc = dd2_ardiff_init(&src, cfg, &tr->td.cb, tr->td.gh, tr->td.gw, st);
        if (rc == DD2_OK) sp = DD2_MALLOC(src.tab.numel * sizeof(float), st);
        if (rc == DD2_OK && !sp) rc = DD2_ERR_RUNTIME;
        if (rc == DD2_OK) rc = dd2_ptable_init_params(&src.tab, sp, seed, st);
        if (rc == DD2_OK) {
            rc = dd2_ardiff_copy_tensors(&src.tab, sp, NULL, src.bb.first, src.bb.count, &tr->t.tab, tr->tparams, NULL,
                                         st);
            if (rc != DD2_OK) dd2_status_prefix(st, "distill: initialising the backbone from the teacher");
        }
        break;
    default:
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "distill.init: unknown value %d", cfg->distill.init);
    }
    if (rc == DD2_OK) {
        rc = dd2_ardiff_grow(&tr->pnet, tr->pp, &src, sp, seed, st);
        if (rc != DD2_OK) dd2_status_prefix(st, "distill: the guidance network from %s", init_name(cfg->distill.init));
    }
    if (rc == DD2_OK) {
        rc = dd2_ardiff_grow(&tr->gnet, tr->gp, &src, sp, seed, st);
        if (rc != DD2_OK) dd2_status_prefix(st, "distill: the generator from %s", init_name(cfg->distill.init));
    }
    if (rc == DD2_OK) memcpy(tr->gema, tr->gp, tr->gnet.tab.numel * sizeof(float));
    dd2_ardiff_free(&src);
    free(sp);
    return rc;
}

/* Periodic FID: needs `dd2 fid-stats`; a missing or mismatched network only turns it off.
 * Collective (rank 0 decides). */
static void setup_eval(trainer *tr) {
    const dd2_config *cfg = tr->cfg;
    int on = cfg->distill.eval_every > 0;
    if (on && tr->rank == 0) {
        char path[1100], why[1300] = "";
        dd2_status st2;
        dd2_status_clear(&st2);
        int rc = dd2_fid_ref_stats_path(tr->ctx, path, sizeof path, &st2);
        if (rc == DD2_OK && !dd2_file_exists(path)) {
            snprintf(why, sizeof why, "%s is missing", path);
            rc = DD2_ERR_INPUT;
        }
        if (rc == DD2_OK) rc = dd2_fid_load_featnet(tr->ctx, &tr->featnet, &st2);
        if (rc == DD2_OK) rc = dd2_fid_stats_load(path, &tr->ref, &st2);
        if (rc == DD2_OK && tr->ref.extractor_checksum != tr->featnet.checksum) {
            snprintf(why, sizeof why, "%s was made with another feature network", path);
            rc = DD2_ERR_INPUT;
        }
        if (rc != DD2_OK) {
            dd2_warn("distill: periodic FID off: %s (run `dd2 fid-stats CONFIG` first, or set distill.eval_every=0)",
                     why[0] ? why : st2.msg);
            on = 0;
        }
    }
    MPI_Bcast(&on, 1, MPI_INT, 0, tr->comm); /* rank 0 decides */
    tr->eval_on = on;
}

/* A learner's setup. ctx->comm is the learners' communicator; roles->worker is the world rank of
 * its teacher-score worker, or −1 for the colocated service. */
static int trainer_setup(trainer *tr, const dd2_stage_ctx *ctx, const dd2_roles *roles, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    tr->ctx = ctx;
    tr->cfg = cfg;
    tr->comm = ctx->comm;
    MPI_Comm_rank(tr->comm, &tr->rank);
    MPI_Comm_size(tr->comm, &tr->size);
    DD2_TRY(dd2_token_data_load(ctx, &tr->td, st));
    const dd2_token_data *d = &tr->td;
    const int need_teacher = roles->worker < 0 || cfg->distill.init == DD2_DISTILL_INIT_TEACHER;
    if (need_teacher) DD2_TRY(dd2_teacher_load(ctx, d, &tr->t, &tr->tparams, st));
    DD2_TRY(dd2_guidance_arch(&tr->pnet, cfg, d, st));
    DD2_TRY(dd2_generator_arch(&tr->gnet, cfg, d, st));
    const int R = tr->size, r = tr->rank;
    tr->B = cfg->distill.batch;
    tr->m = cfg->distill.m;
    tr->mg = dd2_distill_guid_draws(cfg);
    tr->mo = cfg->distill.omega_draws;
    tr->K = cfg->distill.k;
    if (tr->B < R)
        return DD2_FAIL(st, DD2_ERR_INPUT, "distill.batch = %d is smaller than the number of learners (%d)", tr->B, R);
    if (cfg->distill.ode.reg_weight > 0 && cfg->distill.init != DD2_DISTILL_INIT_ODE_PAIRS)
        return DD2_FAIL(st, DD2_ERR_INPUT, "distill.ode.reg_weight = %g needs distill.init: ode-pairs (it is %s)",
                        cfg->distill.ode.reg_weight, init_name(cfg->distill.init));
    tr->lo = (int)((int64_t)r * tr->B / R);
    tr->hi = (int)((int64_t)(r + 1) * tr->B / R);
    tr->bl = tr->hi - tr->lo;
    tr->steps = cfg->distill.steps;
    tr->align_on = cfg->distill.align.after > 0 && cfg->distill.align.after < tr->steps && cfg->distill.align.steps > 0;
    tr->total = tr->steps + (tr->align_on ? cfg->distill.align.steps : 0);
    const int bl = tr->bl, n = d->n, C = d->cb.dim;
    const size_t gnumel = tr->gnet.tab.numel, pnumel = tr->pnet.tab.numel, seq = (size_t)bl * n * C;
    tr->gp = DD2_MALLOC(gnumel * sizeof(float), st);
    tr->gema = DD2_MALLOC(gnumel * sizeof(float), st);
    tr->pp = DD2_MALLOC(pnumel * sizeof(float), st);
    tr->gg = DD2_CALLOC(gnumel, sizeof(float), st);
    tr->gm = DD2_CALLOC(gnumel, sizeof(float), st);
    tr->gv = DD2_CALLOC(gnumel, sizeof(float), st);
    tr->pg = DD2_CALLOC(pnumel, sizeof(float), st);
    tr->pm = DD2_CALLOC(pnumel, sizeof(float), st);
    tr->pv = DD2_CALLOC(pnumel, sizeof(float), st);
    tr->gmask = dd2_ptable_decay_mask(&tr->gnet.tab, st);
    tr->pmask = dd2_ptable_decay_mask(&tr->pnet.tab, st);
    tr->eps = DD2_MALLOC(seq * sizeof(float), st);
    tr->q = DD2_MALLOC(seq * sizeof(float), st);
    tr->dq = DD2_MALLOC(seq * sizeof(float), st);
    tr->gdraw = DD2_MALLOC(seq * (size_t)tr->m * sizeof(float), st);
    tr->y = DD2_MALLOC((size_t)bl * sizeof(int), st);
    if (!tr->gp || !tr->gema || !tr->pp || !tr->gg || !tr->gm || !tr->gv || !tr->pg || !tr->pm || !tr->pv ||
        !tr->gmask || !tr->pmask || !tr->eps || !tr->q || !tr->dq || !tr->gdraw || !tr->y)
        return DD2_ERR_RUNTIME;
    if (tr->mo > 0) {
        const size_t P = (size_t)bl * n * tr->m, Po = (size_t)bl * n * tr->mo;
        tr->o_t = DD2_MALLOC(Po * sizeof(float), st);
        tr->o_eps = DD2_MALLOC(Po * C * sizeof(float), st);
        tr->o_x = DD2_MALLOC(Po * C * sizeof(float), st);
        tr->l_t = DD2_MALLOC(P * sizeof(float), st);
        tr->l_x = DD2_MALLOC(P * C * sizeof(float), st);
        tr->l_mu = DD2_MALLOC(P * C * sizeof(float), st);
        tr->l_cov = DD2_MALLOC(P * C * C * sizeof(float), st);
        tr->omega_tok = DD2_MALLOC((size_t)bl * n * sizeof(float), st);
        if (!tr->o_t || !tr->o_eps || !tr->o_x || !tr->l_t || !tr->l_x || !tr->l_mu || !tr->l_cov || !tr->omega_tok)
            return DD2_ERR_RUNTIME;
    }
    DD2_TRY(dd2_ardiff_work_alloc(&tr->gw, &tr->gnet, bl, 1, st));
    DD2_TRY(dd2_ardiff_work_alloc(&tr->gw2, &tr->gnet, bl, 1, st));
    DD2_TRY(dd2_ardiff_work_alloc(&tr->pw, &tr->pnet, bl, tr->m, st));
    tr->guid_w = &tr->pw;
    if (tr->mg != tr->m) {
        DD2_TRY(dd2_ardiff_work_alloc(&tr->pwg, &tr->pnet, bl, tr->mg, st));
        tr->guid_w = &tr->pwg;
    }
    DD2_TRY(dd2_csd_work_alloc(&tr->cw, bl, n, C, tr->m, cfg->distill.csd.grad == DD2_CSD_GRAD_SID, st));
    DD2_TRY(init_networks(tr, st));
    DD2_TRY(dd2_score_learner_link(cfg, roles, &tr->t, tr->tparams, &d->cb, &tr->srv, &tr->link, st));
    if (roles->worker >= 0 && tr->tparams) { /* init: teacher needed it only for the weights */
        dd2_teacher_free(&tr->t);
        free(tr->tparams);
        tr->tparams = NULL;
    }
    tr->gen_sched = (dd2_lr_schedule){dd2_train_lr_kind(cfg->distill.gen_schedule),
                                      cfg->distill.lr_gen, 0.0, cfg->distill.gen_warmup_from,
                                      cfg->distill.gen_warmup, tr->steps, cfg->distill.gen_decay_steps};
    tr->adam = (dd2_adam_cfg){(float)cfg->distill.betas.v[0], (float)cfg->distill.betas.v[1], 1e-8f,
                              (float)cfg->distill.weight_decay};
    tr->opts = (dd2_csd_opts){cfg->distill.csd.grad, (float)cfg->distill.csd.alpha,
                              (float)cfg->distill.pos_weight.start, (float)cfg->distill.pos_weight.end,
                              cfg->distill.csd.omega};
    return DD2_OK;
}

/* The per-point draws t [bl·n·m], eps [bl·n·m, C] (m per position) of this rank's slice of global
 * batch number g, from the slots slot_base + s (DD2_CSD_DRAW_SLOT for the losses' draws,
 * DD2_CSD_OMEGA_SLOT for distill.omega_draws' extra ones: streams no other draw uses). */
static void point_draws(trainer *tr, int64_t g, uint64_t slot_base, int m, float *t, float *eps) {
    const dd2_config *cfg = tr->cfg;
    const uint64_t slot0 = (uint64_t)g * tr->B + (uint64_t)tr->lo;
    dd2_ardiff_draw((uint64_t)cfg->run.seed, slot_base + slot0, tr->bl, tr->td.n, m, tr->td.cb.dim,
                    (float)cfg->distill.t_min, (float)cfg->distill.t_max, cfg->distill.t_stratified,
                    cfg->distill.t_shared, t, eps);
}

/* Noise eps [bl,n,C], classes y [bl] and per-point draws t [bl·n·m], epsd [bl·n·m, C] (m draws per
 * position) of this rank's slice of global batch number g. */
static void draw_batch(trainer *tr, int64_t g, int m, float *eps, int *y, float *t, float *epsd) {
    const dd2_config *cfg = tr->cfg;
    const uint64_t seed = (uint64_t)cfg->run.seed, slot0 = (uint64_t)g * tr->B + (uint64_t)tr->lo;
    const int n = tr->td.n, C = tr->td.cb.dim;
    dd2_csd_noise(seed, slot0, tr->bl, n, C, eps);
    dd2_csd_classes(seed, slot0, tr->bl, n, cfg->data.n_classes, y);
    point_draws(tr, g, DD2_CSD_DRAW_SLOT, m, t, epsd);
}

/* Append `"name": value` to a JSON field list (", " between fields); null when not finite. */
static void jnum(char *buf, size_t n, const char *name, double v) {
    size_t k = strlen(buf);
    if (k >= n) return;
    if (isfinite(v))
        snprintf(buf + k, n - k, "%s\"%s\": %.7g", k ? ", " : "", name, v);
    else
        snprintf(buf + k, n - k, "%s\"%s\": null", k ? ", " : "", name);
}

/* Clip, check and apply an Adam step to one network; *skipped when the loss or the gradient is
 * not finite (the same decision on every rank, after the sums). */
static void apply_update(trainer *tr, const dd2_ardiff *net, float *p, float *g, float *m, float *v, double loss,
                         float lr, int64_t *updates, int64_t *skipped_count, int64_t *bad_run, double *gnorm,
                         int *skipped) {
    const size_t numel = net->tab.numel;
    *gnorm = sqrt(dd2_sum_squares(g, numel));
    *skipped = !isfinite(loss) || !isfinite(*gnorm);
    if (*skipped) {
        (*skipped_count)++;
        (*bad_run)++;
        return;
    }
    *bad_run = 0;
    dd2_scale(g, numel, dd2_clip_scale(*gnorm, (float)tr->cfg->distill.grad_clip));
    dd2_adamw_step(p, g, m, v, net == &tr->gnet ? tr->gmask : tr->pmask, numel, lr, &tr->adam, (long)*updates + 1);
    (*updates)++;
}

/* One guidance update on a fresh generator batch with mg draws per position; *loss = mean over the
 * global batch's points of ‖v_ψ − (ε' − q)‖² / C. */
static int guidance_step(trainer *tr, double *loss, double *gnorm, int *skipped, dd2_status *st) {
    const size_t numel = tr->pnet.tab.numel;
    const double points = (double)tr->B * tr->td.n * tr->mg, t0 = dd2_now();
    dd2_ardiff_work *w = tr->guid_w;
    draw_batch(tr, tr->c[C_BATCHES]++, tr->mg, tr->eps, tr->y, w->t, w->eps);
    dd2_csd_generator_forward(&tr->gnet, tr->gp, &tr->gw2, tr->eps, tr->y, tr->bl, tr->q);
    memset(tr->pg, 0, numel * sizeof(float));
    double sum = dd2_csd_guidance_loss(&tr->pnet, tr->pp, tr->pg, w, tr->q, tr->y, w->t, w->eps, tr->bl, tr->mg,
                                       (float)(1.0 / points));
    DD2_TRY(dd2_allreduce_sum_f32(tr->pg, numel, tr->comm, st));
    DD2_TRY(dd2_allreduce_sum_f64(&sum, 1, tr->comm, st));
    *loss = sum / points;
    apply_update(tr, &tr->pnet, tr->pp, tr->pg, tr->pm, tr->pv, *loss, (float)tr->cfg->distill.lr_guid, &tr->c[C_GUID_UPDATES],
                 &tr->c[C_GUID_SKIPPED], &tr->c[C_GUID_BAD_RUN], gnorm, skipped);
    tr->c[C_GUID_STEPS]++;
    tr->sec_guid += dd2_now() - t0;
    tr->n_guid++;
    return DD2_OK;
}

/* The generator update is split around the guidance updates so the teacher's work overlaps them
 * (docs/distributed.md): generator_post draws global batch number g (the one after the
 * iteration's guidance batches), runs G on it (its activations stay in gw for the backward:
 * the guidance updates do not change G) and posts the score request; generator_finish waits for
 * the teacher's answer, takes the CSD gradient with ψ as it is then, and updates G and its EMA.
 * The result does not depend on when the request is answered. */
static int generator_post(trainer *tr, int64_t g, dd2_status *st) {
    const double t0 = dd2_now();
    const int n = tr->td.n, C = tr->td.cb.dim, sid = tr->cfg->distill.csd.grad == DD2_CSD_GRAD_SID;
    const int m = tr->m, mo = tr->mo;
    DD2_TRY(dd2_score_msg_begin(&tr->req, DD2_SCORE_REQ, sid ? DD2_SCORE_WANT_COV : 0, tr->bl, n, C, m + mo, 0, st));
    const dd2_score_req_view r = dd2_score_req_of(&tr->req);
    draw_batch(tr, g, m, tr->eps, r.y, mo ? tr->l_t : r.t, tr->gdraw);
    dd2_csd_generator_forward(&tr->gnet, tr->gp, &tr->gw, tr->eps, r.y, tr->bl, r.q);
    if (!mo) {
        dd2_ardiff_noised_points(r.q, r.t, tr->gdraw, tr->bl, n, m, C, r.x);
    } else { /* token by token: its m loss draws, then its mo extra draws (own streams) */
        point_draws(tr, g, DD2_CSD_OMEGA_SLOT, mo, tr->o_t, tr->o_eps);
        dd2_ardiff_noised_points(r.q, tr->l_t, tr->gdraw, tr->bl, n, m, C, tr->l_x);
        dd2_ardiff_noised_points(r.q, tr->o_t, tr->o_eps, tr->bl, n, mo, C, tr->o_x);
        for (size_t k = 0; k < (size_t)tr->bl * n; k++) {
            const size_t d0 = k * (size_t)(m + mo);
            memcpy(r.t + d0, tr->l_t + k * m, (size_t)m * sizeof(float));
            memcpy(r.t + d0 + m, tr->o_t + k * mo, (size_t)mo * sizeof(float));
            memcpy(r.x + d0 * C, tr->l_x + k * m * C, (size_t)m * C * sizeof(float));
            memcpy(r.x + (d0 + m) * C, tr->o_x + k * mo * C, (size_t)mo * C * sizeof(float));
        }
    }
    DD2_TRY(dd2_score_link_post(&tr->link, &tr->req, st));
    tr->sec_gen += dd2_now() - t0;
    return DD2_OK;
}

static double ode_reg_grad(trainer *tr, int64_t s, double weight);

/* out[0] = mean loss per point, out[1] = mean ω, out[2] = mean |q − a| (over the global batch),
 * out[3] = the regression term's mean ‖G(ε) − q‖² / C (distill.ode.reg_weight > 0; else 0). */
static int generator_finish(trainer *tr, double out[4], double *gnorm, int *skipped, dd2_status *st) {
    const dd2_config *cfg = tr->cfg;
    const size_t numel = tr->gnet.tab.numel;
    const double points = (double)tr->B * tr->td.n * tr->m, t0 = dd2_now();
    const dd2_score_msg *rep;
    DD2_TRY(dd2_score_link_wait(&tr->link, DD2_SCORE_REP, &rep, st));
    const dd2_score_req_view r = dd2_score_req_of(&tr->req);
    const dd2_score_rep_view a = dd2_score_rep_of(rep);
    dd2_csd_stats s;
    const float *mu = a.mu, *cov = a.cov, *lt = r.t, *lx = r.x, *omega_in = NULL;
    if (tr->mo) { /* ω over all m + mo draws; the loss's m draws gathered */
        const int n = tr->td.n, C = tr->td.cb.dim, m = tr->m, mt = m + tr->mo;
        dd2_csd_omega_positions(r.q, a.mu, tr->bl, n, mt, C, tr->omega_tok);
        for (size_t k = 0; k < (size_t)tr->bl * n; k++) {
            memcpy(tr->l_mu + k * m * C, a.mu + k * mt * C, (size_t)m * C * sizeof(float));
            if (a.cov)
                memcpy(tr->l_cov + k * m * C * C, a.cov + k * mt * C * C, (size_t)m * C * C * sizeof(float));
        }
        mu = tr->l_mu, cov = a.cov ? tr->l_cov : NULL, lt = tr->l_t, lx = tr->l_x, omega_in = tr->omega_tok;
    }
    dd2_csd_generator_loss(&tr->pnet, tr->pp, &tr->pw, &tr->cw, mu, cov, r.q, r.y, lt, lx, tr->bl, tr->m,
                           &tr->opts, omega_in, (float)(1.0 / points), tr->dq, &s);
    memset(tr->gg, 0, numel * sizeof(float));
    dd2_csd_generator_backward(&tr->gnet, tr->gp, tr->gg, &tr->gw, tr->dq, tr->bl);
    dd2_fault_poison("distill", (long)tr->c[C_GEN_STEP], tr->gg);
    DD2_TRY(dd2_fault_fail("distill", (long)tr->c[C_GEN_STEP], st));
    const double reg_w = cfg->distill.ode.reg_weight;
    double sums[4] = {s.loss, s.omega, s.absdiff, 0.0};
    if (tr->ode_q) /* after G's CSD backward: gw is free again */
        sums[3] = ode_reg_grad(tr, cfg->distill.ode.steps + tr->c[C_GEN_STEP], reg_w);
    DD2_TRY(dd2_allreduce_sum_f32(tr->gg, numel, tr->comm, st));
    DD2_TRY(dd2_allreduce_sum_f64(sums, 4, tr->comm, st));
    out[0] = sums[0] / points;
    out[1] = sums[1] / tr->B;
    out[2] = sums[2] / tr->B;
    out[3] = sums[3] / ((double)tr->B * tr->td.n * tr->td.cb.dim);
    const long it = (long)tr->c[C_GEN_STEP];
    apply_update(tr, &tr->gnet, tr->gp, tr->gg, tr->gm, tr->gv, out[0] + reg_w * out[3],
                 (float)dd2_lr_at(&tr->gen_sched, it),
                 &tr->c[C_GEN_UPDATES], &tr->c[C_GEN_SKIPPED], &tr->c[C_GEN_BAD_RUN], gnorm, skipped);
    if (!*skipped) dd2_ema_update(tr->gema, tr->gp, numel, dd2_ema_rate(cfg->distill.ema_decay, it, cfg->distill.ema_ramp));
    tr->c[C_GEN_STEP]++;
    tr->c[C_BATCHES]++;
    tr->sec_gen += dd2_now() - t0;
    tr->n_gen++;
    return DD2_OK;
}

/* ---- init: ode-pairs (method.md §8, our extension) --------------------------------------------
 * distill.ode.pairs pairs (ε, q) from Ψ's sampler (ardiff.euler_steps Euler steps per token,
 * sample.snap for the prefix it feeds back): pair j has the class and noise of slot
 * ODE_SLOT + j (the generator's own noise stream for that slot, so G(ε) and the pair's ε agree);
 * the pairs are sampled split over the ranks and gathered (ode_pairs_sample). Then
 * distill.ode.steps Adam updates (lr distill.ode.lr, fresh moments, reset afterwards) of G on the
 * mean ‖G(ε) − q‖² / C over global batches of distill.batch pairs, batch s taking pairs
 * (s·B + k) mod N (ode_regression). The regression runs only when no checkpoint was found; its
 * result is in every later checkpoint. With distill.ode.reg_weight > 0 the pairs stay and every
 * generator update adds that weight times the same regression loss on batch ode.steps + its step
 * (ode_reg_grad, DMD's regression term); a resumed run samples the same pairs again (a pure
 * function of Ψ and the seed) instead of storing them. */
#define ODE_SLOT ((uint64_t)1 << 41)

static int ode_pairs_sample(trainer *tr, dd2_status *st) {
    const dd2_config *cfg = tr->cfg;
    const int64_t N = cfg->distill.ode.pairs;
    const int n = tr->td.n, R = tr->size, r = tr->rank;
    const int batch = cfg->sample.batch;
    const uint64_t seed = (uint64_t)cfg->run.seed;
    const size_t seqf = (size_t)n * tr->td.cb.dim;
    if (N * (int64_t)seqf > 0x7fffffff)
        return DD2_FAIL(st, DD2_ERR_INPUT, "distill.ode.pairs = %lld is too many", (long long)N);
    float *pq = tr->ode_q = DD2_MALLOC((size_t)N * seqf * sizeof(float), st);
    float *pe = tr->ode_e = DD2_MALLOC((size_t)N * seqf * sizeof(float), st);
    int *py = tr->ode_y = DD2_MALLOC((size_t)N * sizeof(int), st), *counts = DD2_MALLOC((size_t)R * sizeof(int), st);
    int *displs = DD2_MALLOC((size_t)R * sizeof(int), st);
    int32_t *tok = DD2_MALLOC((size_t)batch * n * sizeof(int32_t), st);
    int rc = pq && pe && py && counts && displs && tok ? DD2_OK : DD2_ERR_RUNTIME;
    /* Ψ from its file, not ψ: on resume ψ has trained (at the start it is Ψ's function, bitwise) */
    dd2_ardiff psi;
    float *psi_p = NULL;
    memset(&psi, 0, sizeof psi);
    if (rc == DD2_OK) rc = dd2_ardiff_load(tr->ctx, &tr->td, &psi, &psi_p, st);
    const int64_t lo = (int64_t)r * N / R, hi = (int64_t)(r + 1) * N / R;
    const double t0 = dd2_now();
    dd2_progress prog;
    dd2_progress_begin(&prog, "ode pairs", 0, (long)(hi - lo > 0 ? hi - lo : 1), 10.0);
    for (int64_t i = lo; rc == DD2_OK && i < hi; i += batch) {
        const int b = (int)(hi - i < batch ? hi - i : batch);
        dd2_csd_classes(seed, ODE_SLOT + (uint64_t)i, b, n, cfg->data.n_classes, py + i);
        rc = dd2_ardiff_sample(&psi, psi_p, py + i, b, cfg->ardiff.euler_steps, (float)cfg->ardiff.t_min,
                               cfg->sample.snap, seed, ODE_SLOT + (uint64_t)i, tok, pq + i * seqf, pe + i * seqf, st);
        dd2_progress_update(&prog, (long)(i + b - lo), NULL);
    }
    rc = dd2_agree_in(tr->comm, rc, "distill: ode-pair sampling", st);
    if (rc == DD2_OK) {
        dd2_progress_end(&prog, NULL);
        for (int k = 0; k < R; k++) {
            const int64_t a = (int64_t)k * N / R, z = (int64_t)(k + 1) * N / R;
            counts[k] = (int)(z - a), displs[k] = (int)a;
        }
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_INT, py, counts, displs, MPI_INT, tr->comm);
        for (int k = 0; k < R; k++) counts[k] *= (int)seqf, displs[k] *= (int)seqf;
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, pq, counts, displs, MPI_FLOAT, tr->comm);
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, pe, counts, displs, MPI_FLOAT, tr->comm);
        dd2_info0("distill: %lld ODE pairs from the AR-diffusion model in %.1fs", (long long)N, dd2_now() - t0);
    }
    dd2_ardiff_free(&psi);
    free(psi_p);
    free(counts);
    free(displs);
    free(tok);
    return rc;
}

static void ode_pairs_free(trainer *tr) {
    free(tr->ode_q);
    free(tr->ode_e);
    free(tr->ode_y);
    tr->ode_q = tr->ode_e = NULL;
    tr->ode_y = NULL;
}

/* G forward on this rank's slice of pair batch s and backward of weight · (the mean ‖G(ε) − q‖² / C
 * over the global batch) into tr->gg (accumulated). Returns this rank's Σ ‖G(ε) − q‖² (not
 * scaled). Uses tr->gw, tr->eps, tr->q, tr->y and tr->dq as scratch. */
static double ode_reg_grad(trainer *tr, int64_t s, double weight) {
    const int n = tr->td.n, C = tr->td.cb.dim;
    const int64_t N = tr->cfg->distill.ode.pairs;
    const size_t seqf = (size_t)n * C;
    const double elems = (double)tr->B * n * C;
    for (int k = tr->lo; k < tr->hi; k++) {
        const int64_t j = (s * tr->B + k) % N;
        memcpy(tr->eps + (size_t)(k - tr->lo) * seqf, tr->ode_e + j * seqf, seqf * sizeof(float));
        tr->y[k - tr->lo] = tr->ode_y[j];
    }
    dd2_csd_generator_forward(&tr->gnet, tr->gp, &tr->gw, tr->eps, tr->y, tr->bl, tr->q);
    double sum = 0.0;
    for (int k = tr->lo; k < tr->hi; k++) {
        const float *target = tr->ode_q + ((s * tr->B + k) % N) * seqf;
        const size_t row = (size_t)(k - tr->lo) * seqf;
        for (size_t e = 0; e < seqf; e++) {
            const float d = tr->q[row + e] - target[e];
            sum += (double)d * d;
            tr->dq[row + e] = (float)(weight * 2.0 * d / elems);
        }
    }
    dd2_csd_generator_backward(&tr->gnet, tr->gp, tr->gg, &tr->gw, tr->dq, tr->bl);
    return sum;
}

static int ode_regression(trainer *tr, dd2_status *st) {
    const dd2_config *cfg = tr->cfg;
    const int n = tr->td.n, C = tr->td.cb.dim;
    const size_t numel = tr->gnet.tab.numel;
    const double elems = (double)tr->B * n * C;
    const int every = dd2_train_log_every(cfg);
    double acc = 0.0, first = NAN;
    int acc_n = 0, rc = DD2_OK;
    int64_t updates = 0, skipped_n = 0, bad_run = 0;
    const double t0 = dd2_now();
    dd2_progress prog;
    dd2_progress_begin(&prog, "ode regression", 0, cfg->distill.ode.steps > 0 ? cfg->distill.ode.steps : 1, 30.0);
    for (int s = 0; rc == DD2_OK && s < cfg->distill.ode.steps; s++) {
        memset(tr->gg, 0, numel * sizeof(float));
        double sum = ode_reg_grad(tr, s, 1.0);
        rc = dd2_allreduce_sum_f32(tr->gg, numel, tr->comm, st);
        if (rc == DD2_OK) rc = dd2_allreduce_sum_f64(&sum, 1, tr->comm, st);
        if (rc != DD2_OK) break;
        const double loss = sum / elems;
        double gnorm;
        int skipped;
        apply_update(tr, &tr->gnet, tr->gp, tr->gg, tr->gm, tr->gv, loss, (float)cfg->distill.ode.lr, &updates, &skipped_n,
                     &bad_run, &gnorm, &skipped);
        if (rc == DD2_OK && bad_run >= cfg->dist.max_bad_steps)
            rc = dd2_train_bad_limit("distill (ODE-pair regression)", "steps", bad_run, cfg->dist.max_bad_steps,
                                     "distill.ode.lr", st);
        if (!skipped) acc += loss, acc_n++;
        if (s == 0) first = loss;
        char extra[48];
        snprintf(extra, sizeof extra, "loss %.5f", loss);
        dd2_progress_update(&prog, s + 1, extra);
        if ((s + 1) % every == 0 || s + 1 == cfg->distill.ode.steps) {
            char fields[200] = "";
            jnum(fields, sizeof fields, "ode_loss", acc_n ? acc / acc_n : NAN);
            jnum(fields, sizeof fields, "grad_norm", gnorm);
            rc = dd2_metrics_append(tr->ctx, "distill-ode", s + 1, fields, st);
            if (s + 1 == cfg->distill.ode.steps) {
                dd2_progress_end(&prog, NULL);
                dd2_info0("distill: ODE-pair regression: %d steps in %.1fs, loss %.5f -> %.5f "
                          "(mean |G(eps) - q|^2 / C)",
                          cfg->distill.ode.steps, dd2_now() - t0, first, acc_n ? acc / acc_n : NAN);
            }
            acc = 0.0, acc_n = 0;
        }
    }
    /* CSD starts with fresh generator moments and its EMA at the regressed weights */
    memset(tr->gm, 0, numel * sizeof(float));
    memset(tr->gv, 0, numel * sizeof(float));
    memcpy(tr->gema, tr->gp, numel * sizeof(float));
    return rc;
}

static long units(const trainer *tr) { return (long)(tr->c[C_GEN_STEP] + tr->c[C_ALIGN_STEP]); }

static void make_spec(trainer *tr, dd2_ckpt_net nets[2], dd2_ckpt_state states[N_COUNTERS], dd2_ckpt_spec *spec,
                      char *config_text) {
    nets[0] = (dd2_ckpt_net){"gen", &tr->gnet.tab, tr->gp, tr->gm, tr->gv, tr->gema};
    nets[1] = (dd2_ckpt_net){"guid", &tr->pnet.tab, tr->pp, tr->pm, tr->pv, NULL};
    for (int i = 0; i < N_COUNTERS; i++)
        states[i] = (dd2_ckpt_state){counter_names[i], DD2_CKPT_I64, 1, &tr->c[i], i >= C_GEN_BAD_RUN, 0};
    *spec = (dd2_ckpt_spec){nets, 2, states, N_COUNTERS, config_text, DD2_GIT_REV};
}

static int save_checkpoint(trainer *tr, const char *dir, dd2_status *st) {
    char *text = NULL;
    size_t len = 0;
    DD2_TRY(dd2_config_to_yaml(tr->cfg, &text, &len, st));
    dd2_ckpt_net nets[2];
    dd2_ckpt_state states[N_COUNTERS];
    dd2_ckpt_spec spec;
    make_spec(tr, nets, states, &spec, text);
    int rc = dd2_ckpt_save(tr->comm, dir, units(tr), tr->cfg->checkpoint.keep, &spec, st);
    free(text);
    return rc;
}

static int resume(trainer *tr, const char *dir, int *found, dd2_status *st) {
    dd2_ckpt_net nets[2];
    dd2_ckpt_state states[N_COUNTERS];
    dd2_ckpt_spec spec;
    make_spec(tr, nets, states, &spec, NULL);
    dd2_ckpt_result res = {0};
    int rc = dd2_ckpt_resume(tr->comm, dir, tr->cfg->checkpoint.resume, &spec, &res, st);
    *found = rc == DD2_OK && res.found;
    if (*found) {
        const char *diff = NULL;
        dd2_status st2;
        dd2_status_clear(&st2);
        if (dd2_ckpt_config_diff(res.config_text, tr->cfg, &diff, &st2) == DD2_OK && diff)
            dd2_warn0("resuming %s with a different config (first difference: %s)", res.dir, diff);
        dd2_info0("resumed from %s (generator step %lld of %ld, saved by %d rank%s)", res.dir,
                  (long long)tr->c[C_GEN_STEP], tr->steps, res.saved_learners, res.saved_learners == 1 ? "" : "s");
    }
    dd2_ckpt_result_free(&res);
    return rc;
}

/* FID of distill.eval_n one-step samples of the EMA generator (balanced classes, the noise of
 * sample indices 0..eval_n−1), logged to metrics.jsonl. Collective. */
static int periodic_fid(trainer *tr, dd2_status *st) {
    const dd2_config *cfg = tr->cfg;
    const int64_t N = cfg->distill.eval_n;
    const int n = tr->td.n, C = tr->td.cb.dim, raw = !cfg->sample.snap;
    const dd2_vq_geom *g = &tr->td.geom;
    int32_t *labels = DD2_MALLOC((size_t)N * sizeof *labels, st);
    int32_t *tokens = DD2_MALLOC((size_t)N * n * sizeof *tokens, st);
    float *q = raw ? DD2_MALLOC((size_t)N * n * C * sizeof(float), st) : NULL;
    int rc = labels && tokens && (!raw || q) ? DD2_OK : DD2_ERR_RUNTIME;
    double secs = 0.0, fid = NAN;
    if (rc == DD2_OK) {
        dd2_balanced_labels(labels, N, cfg->data.n_classes);
        rc = dd2_generate_onestep(tr->ctx, &tr->gnet, tr->gema, labels, N, 0, tokens, q, &secs, st);
    }
    int rc0 = DD2_OK;
    if (rc == DD2_OK && tr->rank == 0) {
        float *img = DD2_MALLOC((size_t)N * g->image_size * g->image_size * g->channels * sizeof(float), st);
        dd2_fid_stats s;
        memset(&s, 0, sizeof s);
        rc0 = img ? DD2_OK : DD2_ERR_RUNTIME;
        if (rc0 == DD2_OK && raw) dd2_vq_images_from_patches(g, q, (size_t)N, img);
        else if (rc0 == DD2_OK) rc0 = dd2_vq_decode_f32(&tr->td.cb, g, tokens, (size_t)N, img, st);
        if (rc0 == DD2_OK) rc0 = dd2_fid_stats_images_f32(&tr->featnet, img, (size_t)N, 0, &s, st);
        if (rc0 == DD2_OK) rc0 = dd2_fid_distance(&s, &tr->ref, &fid, st);
        dd2_fid_stats_free(&s);
        free(img);
    }
    if (rc == DD2_OK) rc = dd2_agree_in(tr->comm, rc0, "distill: the FID (on rank 0)", st);
    if (rc == DD2_OK) {
        MPI_Bcast(&fid, 1, MPI_DOUBLE, 0, tr->comm);
        tr->last_fid = fid;
        dd2_info0("distill: generator step %lld: FID %.2f (%lld one-step EMA samples in %.2fs)",
                  (long long)tr->c[C_GEN_STEP], fid, (long long)N, secs);
        char fields[160] = "";
        jnum(fields, sizeof fields, "fid", fid);
        jnum(fields, sizeof fields, "fid_n", (double)N);
        jnum(fields, sizeof fields, "sample_seconds", secs);
        rc = dd2_metrics_append(tr->ctx, "distill", (long)tr->c[C_GEN_STEP], fields, st);
    }
    free(labels);
    free(tokens);
    free(q);
    return rc;
}

static int too_many_bad(const trainer *tr, dd2_status *st) {
    const int64_t bad_gen = tr->c[C_GEN_BAD_RUN], bad_guid = tr->c[C_GUID_BAD_RUN];
    const int gen = bad_gen >= bad_guid;
    return dd2_train_bad_limit("distill", gen ? "generator updates" : "guidance updates",
                               gen ? bad_gen : bad_guid, tr->cfg->dist.max_bad_steps,
                               "distill.lr_gen / distill.lr_guid", st);
}

typedef struct window { /* metric averages since the last log line */
    double guid_loss, gen_loss, omega, absdiff, reg, guid_gnorm, gen_gnorm;
    int n_guid, n_gen;
} window;

static int save_cb(void *tr, const char *dir, dd2_status *st) { return save_checkpoint(tr, dir, st); }

static int run_training(trainer *tr, const char *dir, dd2_status *st) {
    const dd2_config *cfg = tr->cfg;
    const size_t numel = tr->gnet.tab.numel;
    DD2_TRY(dd2_check_replicas(tr->gp, numel, "initial generator weights", tr->comm, st));
    int found = 0;
    DD2_TRY(resume(tr, dir, &found, st));
    const int ode = cfg->distill.init == DD2_DISTILL_INIT_ODE_PAIRS, reg = ode && cfg->distill.ode.reg_weight > 0;
    if (ode && (!found || reg)) {
        if (found) dd2_info0("distill: sampling the ODE pairs again for the regression term (distill.ode.reg_weight)");
        DD2_TRY(ode_pairs_sample(tr, st));
        if (!found) DD2_TRY(ode_regression(tr, st));
        if (!reg) ode_pairs_free(tr);
    }
    char omega_note[64] = "";
    if (tr->mo) snprintf(omega_note, sizeof omega_note, "; omega over %d + %d extra draws", tr->m, tr->mo);
    dd2_info0("distill: G %.2fM parameters (%d layers, head depth %d), guidance %.2fM (%d layers, head depth %d), "
              "init %s, csd.grad %s (alpha %g, omega per %s), %ld generator updates x %d guidance updates, global batch %d x %d "
              "draws (guidance: %d; t %s%s) over %d learner%s%s",
              (double)numel / 1e6, tr->gnet.bb.dims.L, tr->gnet.head.dims.depth, (double)tr->pnet.tab.numel / 1e6,
              tr->pnet.bb.dims.L, tr->pnet.head.dims.depth, init_name(cfg->distill.init),
              cfg->distill.csd.grad == DD2_CSD_GRAD_SID ? "sid" : "dmd", cfg->distill.csd.alpha,
              omega_name(cfg->distill.csd.omega), tr->steps, tr->K,
              tr->B, tr->m, tr->mg, cfg->distill.t_shared ? "shared per token" : cfg->distill.t_stratified ? "stratified" : "per draw",
              omega_note,
              tr->size, tr->size == 1 ? "" : "s",
              tr->align_on ? " (with performance alignment)" : "");
    const int eval_every = cfg->distill.eval_every;
    if (tr->eval_on && units(tr) == 0) DD2_TRY(periodic_fid(tr, st)); /* the initialisation's FID */
    dd2_train_log lg;
    dd2_train_log_begin(&lg, tr->ctx, "distill", units(tr), tr->total > 0 ? tr->total : 1, NULL);
    window w;
    memset(&w, 0, sizeof w);
    while (units(tr) < tr->total) {
        double loss, gnorm;
        int skipped, gen_done = 0;
        const int aligning = tr->align_on && tr->c[C_GEN_STEP] == cfg->distill.align.after &&
                             tr->c[C_ALIGN_STEP] < cfg->distill.align.steps;
        if (aligning) {
            if (tr->c[C_ALIGN_STEP] == 0) {
                memcpy(tr->gp, tr->gema, numel * sizeof(float));
                dd2_info0("distill: performance alignment: generator <- EMA, %d guidance-only updates",
                          cfg->distill.align.steps);
            }
            DD2_TRY(guidance_step(tr, &loss, &gnorm, &skipped, st));
            if (!skipped) w.guid_loss += loss, w.guid_gnorm = gnorm, w.n_guid++;
            tr->c[C_ALIGN_STEP]++;
        } else {
            /* overlap: the teacher scores the generator batch while ψ trains (same results either way) */
            const int overlap = cfg->dist.overlap;
            if (overlap) DD2_TRY(generator_post(tr, tr->c[C_BATCHES] + tr->K, st));
            for (int k = 0; k < tr->K; k++) {
                DD2_TRY(guidance_step(tr, &loss, &gnorm, &skipped, st));
                dd2_score_link_progress(&tr->link);
                if (!skipped) w.guid_loss += loss, w.guid_gnorm = gnorm, w.n_guid++;
                DD2_TRY(too_many_bad(tr, st));
            }
            if (!overlap) DD2_TRY(generator_post(tr, tr->c[C_BATCHES], st));
            double out[4];
            DD2_TRY(generator_finish(tr, out, &gnorm, &skipped, st));
            if (!skipped)
                w.gen_loss += out[0], w.omega += out[1], w.absdiff += out[2], w.reg += out[3], w.gen_gnorm = gnorm, w.n_gen++;
            gen_done = 1;
        }
        if (skipped) dd2_warn0("distill: non-finite loss or gradient at unit %ld; update skipped", units(tr) - 1);
        DD2_TRY(too_many_bad(tr, st));
        const long u = units(tr);
        const double lr = dd2_lr_at(&tr->gen_sched, (long)tr->c[C_GEN_STEP] - 1);
        char extra[200];
        snprintf(extra, sizeof extra, "guid %.4f gen %.4g omega %.3g lr %.2e%s",
                 w.n_guid ? w.guid_loss / w.n_guid : NAN, w.n_gen ? w.gen_loss / w.n_gen : NAN,
                 w.n_gen ? w.omega / w.n_gen : NAN, lr, gen_done ? "" : " (alignment)");
        dd2_progress_update(&lg.prog, u, extra);
        if (dd2_train_log_due(&lg, u, tr->total)) {
            char fields[512] = "";
            jnum(fields, sizeof fields, "guid_loss", w.n_guid ? w.guid_loss / w.n_guid : NAN);
            jnum(fields, sizeof fields, "gen_loss", w.n_gen ? w.gen_loss / w.n_gen : NAN);
            jnum(fields, sizeof fields, "omega", w.n_gen ? w.omega / w.n_gen : NAN);
            jnum(fields, sizeof fields, "abs_q_minus_a", w.n_gen ? w.absdiff / w.n_gen : NAN);
            if (reg) jnum(fields, sizeof fields, "ode_reg_loss", w.n_gen ? w.reg / w.n_gen : NAN);
            jnum(fields, sizeof fields, "gen_grad_norm", w.n_gen ? w.gen_gnorm : NAN);
            jnum(fields, sizeof fields, "guid_grad_norm", w.n_guid ? w.guid_gnorm : NAN);
            jnum(fields, sizeof fields, "lr_gen", lr);
            jnum(fields, sizeof fields, "gen_step", (double)tr->c[C_GEN_STEP]);
            jnum(fields, sizeof fields, "guid_steps", (double)tr->c[C_GUID_STEPS]);
            jnum(fields, sizeof fields, "align", !gen_done);
            DD2_TRY(dd2_metrics_append(tr->ctx, "distill", u, fields, st));
            memset(&w, 0, sizeof w);
        }
        if (gen_done && tr->eval_on && tr->c[C_GEN_STEP] % eval_every == 0) DD2_TRY(periodic_fid(tr, st));
        int stop;
        DD2_TRY(dd2_train_boundary(cfg, tr->comm, "distill", u, tr->total, save_cb, tr, dir, &stop, st));
        if (stop) {
            dd2_train_log_end(&lg);
            return DD2_OK;
        }
    }
    dd2_train_log_end(&lg);
    if (tr->eval_on && (tr->c[C_GEN_STEP] % eval_every != 0 || isnan(tr->last_fid))) DD2_TRY(periodic_fid(tr, st));
    return save_checkpoint(tr, dir, st);
}

/* A learner: train; the link to the teacher-score service is closed on every path (the worker
 * serves until each of its learners says stop). */
static int run_learner(trainer *tr, const dd2_stage_ctx *lctx, const dd2_roles *roles, const char *dir,
                       const char *final_path, double *loop_s, dd2_status *st) {
    int rc = trainer_setup(tr, lctx, roles, st);
    /* every rank reads the same files and config, so a setup failure is normally shared; agree */
    rc = dd2_agree(rc, "distill", st);
    const int serving = rc == DD2_OK; /* the workers serve only after this agreement */
    tr->last_fid = NAN;
    if (rc == DD2_OK) setup_eval(tr);
    const double t0 = dd2_now();
    if (rc == DD2_OK) rc = run_training(tr, dir, st);
    *loop_s = dd2_now() - t0;
    const double wait_s = tr->link.wait_s;
    rc = dd2_score_learner_done(&tr->link, serving, rc, st);
    if (rc != DD2_OK && !st->collective) return rc; /* only some learners failed: the driver aborts */
    const int stopped = rc == DD2_OK && dd2_stopped(); /* on a signal: the checkpoint is the output */
    if (rc == DD2_OK && !stopped) {
        const double secs = dd2_now() - t0;
        const double sg = tr->n_guid ? tr->sec_guid / tr->n_guid : NAN, sG = tr->n_gen ? tr->sec_gen / tr->n_gen : NAN;
        if (tr->n_gen > 0)
            dd2_info0("distill: %lld generator updates (%lld skipped), %lld guidance updates (%lld skipped) in %.1fs; "
                      "per update: guidance %.3fs, generator %.3fs (one iteration %.3fs; %.1fs waiting for teacher "
                      "scores)",
                      (long long)tr->c[C_GEN_UPDATES], (long long)tr->c[C_GEN_SKIPPED],
                      (long long)tr->c[C_GUID_UPDATES], (long long)tr->c[C_GUID_SKIPPED], secs, sg, sG,
                      tr->K * sg + sG, wait_s);
        else /* nothing left to do (distill.steps reached, or 0 with only the ODE-pair phase) */
            dd2_info0("distill: no CSD iteration in this run (%.1fs); generator step %lld of %ld", secs,
                      (long long)tr->c[C_GEN_STEP], tr->steps);
        char fields[240] = "";
        jnum(fields, sizeof fields, "seconds", secs);
        jnum(fields, sizeof fields, "guid_update_s", sg);
        jnum(fields, sizeof fields, "gen_update_s", sG);
        jnum(fields, sizeof fields, "score_wait_s", wait_s);
        jnum(fields, sizeof fields, "final", 1);
        rc = dd2_metrics_append(lctx, "distill", units(tr), fields, st);
    }
    if (rc == DD2_OK && !stopped && tr->rank == 0)
        rc = dd2_generator_save(final_path, &tr->gnet, tr->gema, tr->c[C_GEN_STEP], lctx->cfg->distill.init,
                                lctx->cfg->distill.csd.grad, tr->last_fid, st);
    rc = dd2_stage_end_agree(rc, "distill", st);
    if (rc == DD2_OK && !stopped) dd2_info0("distill: wrote %s", final_path);
    return rc;
}

/* Totals of the run on world rank 0 (collective over the world). */
static void gather_stats(const dd2_roles *roles, const trainer *tr, const dd2_worker_stats *ws, double loop_s,
                         dd2_distill_stats *out) {
    double v[5] = {0, 0, 0, 0, 0}; /* learner wait fraction, worker idle fraction, bytes, iterations, seconds */
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (roles->is_worker) {
        v[1] = ws->total_s > 0 ? ws->idle_s / ws->total_s : 0.0;
    } else {
        v[0] = loop_s > 0 ? (tr->link.kind == DD2_LINK_MPI ? tr->link.wait_s / loop_s : 0.0) : 0.0;
        v[2] = (double)(tr->link.bytes_sent + tr->link.bytes_recv);
        if (rank == 0) v[3] = (double)tr->n_gen, v[4] = loop_s;
    }
    double sum[5];
    MPI_Reduce(v, sum, 5, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank != 0) return;
    *out = (dd2_distill_stats){roles->L, roles->T, (long)sum[3], sum[4], sum[0] / roles->L,
                               roles->T ? sum[1] / roles->T : NAN, sum[3] > 0 ? sum[2] / sum[3] : NAN};
}

static int distill_run(const dd2_stage_ctx *ctx, const char *stage_dir, dd2_distill_stats *stats, dd2_status *st) {
    char dir[1100], final_path[1200];
    dd2_roles roles;
    int rc = dd2_stage_files(ctx, stage_dir, "generator.h5", dir, sizeof dir, final_path, sizeof final_path, st);
    if (rc == DD2_OK) rc = dd2_stage_roles(ctx, "distill", &roles, st);
    if (rc != DD2_OK) {
        st->collective = 1;
        return rc;
    }
    dd2_worker_stats ws;
    memset(&ws, 0, sizeof ws);
    trainer tr;
    memset(&tr, 0, sizeof tr);
    double loop_s = 0.0;
    if (roles.is_worker) {
        rc = dd2_score_worker_stage(ctx, &roles, "distill", &ws, st);
    } else {
        dd2_stage_ctx lctx = *ctx;
        lctx.comm = roles.learners;
        rc = run_learner(&tr, &lctx, &roles, dir, final_path, &loop_s, st);
    }
    if (stats && (rc == DD2_OK || st->collective)) gather_stats(&roles, &tr, &ws, loop_s, stats);
    trainer_free(&tr);
    dd2_roles_free(&roles);
    return rc;
}

/* distill.matmul holds for this stage only: on at its start, off whichever way it ends, so the
 * stages after it (dd2 pipeline) run in f32. */
int dd2_distill_run(const dd2_stage_ctx *ctx, const char *stage_dir, dd2_distill_stats *stats, dd2_status *st) {
    DD2_TRY(dd2_stage_set_matmul(ctx->cfg->distill.matmul, "distill.matmul", st));
    int rc = distill_run(ctx, stage_dir, stats, st);
    dd2_status ignore;
    dd2_gemm_bf16_enable(0, &ignore);
    return rc;
}

int dd2_stage_distill(const dd2_stage_ctx *ctx, dd2_status *st) { return dd2_distill_run(ctx, "distill", NULL, st); }
