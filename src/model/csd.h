/* Stage 2 of DD2 (method.md §5, docs/distill.md): conditional score distillation (CSD).
 *
 * Pure model code (no files, no MPI): the one-step generator G, the guidance ("fake score")
 * loss of ψ and the CSD generator loss with its gradient in both modes. G and ψ have Ψ's
 * architecture (model/ardiff.h: backbone + MLP head, one parameter table); this file only reads
 * a dd2_ardiff for the offsets, so one dd2_ardiff serves both (their flat buffers differ).
 *
 * Generator (one Euler step from t = 1 to t = 0), for B sequences of classes y:
 *     f     = backbone(ε, y)               reads [class, ε_0..ε_{n-2}]: f_i depends on ε_<i
 *     v_i   = head(ε_i, t = 1, f_i)
 *     q_i   = ε_i − v_i
 *
 * Guidance loss (paper Eq. 5) on detached generator samples q: Ψ's plain diffusion loss,
 *     L_ψ = mean over points of ‖v_ψ(x_t, t | q_<i) − (ε' − q_i)‖² / C,  x_t = (1−t) q_i + t ε'
 * (dd2_ardiff_loss with DD2_ARDIFF_LOSS_DIFFUSION: the same normalisation as stage 1).
 *
 * Generator loss (SiD per position, conditions detached). For a point p = (b·n + i)·m + j
 * (sequence b, position i, draw j; Ψ's layout) with t = t[p], ε' = eps[p]:
 *     x_t  = (1−t) q_i + t ε'
 *     a    = μ_Φ(x_t, t | q_<i)                  teacher x0-prediction (model/mixture.h, logp row b·n+i)
 *     bp   = x_t − t·v_ψ(x_t, t | q_<i)          guidance x0-prediction, ψ frozen
 *     ω_b  = 1 / max(mean over the n·m·C elements of sequence b of |q_i − a|, 1e-5)   (no gradient)
 *            (DD2_CSD_OMEGA_POSITION: ω_bi, the mean over the m·C elements of position i alone;
 *             DD2_CSD_OMEGA_POINT: ω_p, over the C elements of point p alone)
 *     w_i  = pos_start + (pos_end − pos_start)·i/(n−1)                 (pos_start when n = 1)
 *     ℓ_p  = ω_b w_i [ (a − bp)ᵀ(bp − q_i) + (1 − α)‖a − bp‖² ]
 * The loss is Σ_p ℓ_p (the caller scales, e.g. by 1/(B·n·m) for the mean). Gradient into q_i
 * (summed over its m draws), conditions q_<i held fixed:
 *     DD2_CSD_GRAD_DMD:  w_i ω_b (bp − a)                                     (a, bp detached)
 *     DD2_CSD_GRAD_SID:  w_i [ −ω_b (a − bp) + (1−t)(J_Φᵀ A + J_ψᵀ Bg) ]      (exact ∂ℓ/∂q_i)
 *         A  = ∂ℓ/∂a  = ω_b (bp − q_i) + 2(1−α) ω_b (a − bp)
 *         Bg = ∂ℓ/∂bp = ω_b (a − 2 bp + q_i) − 2(1−α) ω_b (a − bp)
 *         J_Φᵀ A  = ((1−t)/t²) Cov_w[c] A           (dd2_mixture_jt_apply; J_Φ is symmetric)
 *         J_ψᵀ Bg = Bg − t (∂v_ψ/∂x_t)ᵀ Bg          (the head's backward w.r.t. x_t, dv = −t·Bg)
 * With the Jacobian terms removed, sid is dmd (tests/unit/test_csd.c checks it through gx).
 *
 * Conventions: outputs written with `=` unless stated; parameter gradients accumulate (`+=`);
 * work buffers are allocated once for a capacity (B sequences, m draws) and any batch up to it
 * may be used; no allocation in the compute functions; statuses, never exits.
 */
#ifndef DD2_MODEL_CSD_H
#define DD2_MODEL_CSD_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/ardiff.h"
#include "model/mixture.h"

/* Gradient modes: the config's enum dd2_csd_grad (DD2_CSD_GRAD_SID, DD2_CSD_GRAD_DMD of
 * io/config.h). */
#define DD2_CSD_OMEGA_FLOOR 1e-5 /* ω = 1 / max(mean |q − a|, this) */

/* ---- random inputs ---------------------------------------------------------------------------
 * Generator noise and classes of B sequences in global sample slots first_slot .. first_slot+B−1:
 *     eps [B,n,C]: position i of sequence b: C normals from (seed, DD2_RNG_NOISE, first_slot+b, i)
 *                  (the same stream as Ψ's sampler, dd2_ardiff_sample, for sample index slot)
 *     y [B]      : dd2_rng_below(K) from (seed, DD2_RNG_NOISE, first_slot+b, n)  (a step no
 *                  position uses)
 * so a sequence's inputs depend only on its slot (not on the batch or the rank split). */
void dd2_csd_noise(uint64_t seed, uint64_t first_slot, int B, int n, int C, float *eps);
void dd2_csd_classes(uint64_t seed, uint64_t first_slot, int B, int n, int K, int *y);

/* Slot offset of the per-point draws (t, ε') of training sequence slot s: dd2_ardiff_draw is
 * called with first_slot = DD2_CSD_DRAW_SLOT + s, so the draws never share a stream with the
 * generator noise of any slot (both use DD2_RNG_NOISE with a position-like step). */
#define DD2_CSD_DRAW_SLOT ((uint64_t)1 << 40)
/* The same for the extra draws of distill.omega_draws (ω only): slots DD2_CSD_OMEGA_SLOT + s. */
#define DD2_CSD_OMEGA_SLOT ((uint64_t)3 << 39)

/* ---- the generator ---------------------------------------------------------------------------
 * w: a Ψ work struct (dd2_ardiff_work_alloc(w, G, Bcap, 1)): the generator uses its backbone and
 * head activations (B·n points), f, df, t, v and dv. */

/* q [B,n,C] = G(eps [B,n,C], y [B]) (see the top). Saves what the backward needs in w. q may not
 * alias eps. */
void dd2_csd_generator_forward(const dd2_ardiff *G, const float *params, dd2_ardiff_work *w, const float *eps,
                               const int *y, int B, float *q);

/* Backward of the last dd2_csd_generator_forward on w (same B): grads += (∂q/∂params)ᵀ dq for
 * dq [B,n,C] (through v = ε − q: dv = −dq, head backward with dc, backbone backward). */
void dd2_csd_generator_backward(const dd2_ardiff *G, const float *params, float *grads, dd2_ardiff_work *w,
                                const float *dq, int B);

/* ---- the guidance loss -----------------------------------------------------------------------
 * Σ over the B·n·m points of ‖v_ψ(x_t, t | q_<i) − (eps − q_i)‖² / C for detached samples q
 * [B,n,C], classes y [B], draws t [B·n·m], eps [B·n·m, C] (dd2_ardiff_draw layout). grads != NULL:
 * grads += ∂(scale · that sum)/∂params (backbone and head). w: dd2_ardiff_work_alloc(w, psi, Bcap, m). */
double dd2_csd_guidance_loss(const dd2_ardiff *psi, const float *params, float *grads, dd2_ardiff_work *w,
                             const float *q, const int *y, const float *t, const float *eps, int B, int m,
                             float scale);

/* ---- the generator loss ----------------------------------------------------------------------- */

typedef struct dd2_csd_opts {
    int grad;                   /* DD2_CSD_GRAD_DMD or DD2_CSD_GRAD_SID (io/config.h) */
    float alpha;                /* SiD's α (1 in the paper) */
    float pos_start, pos_end;   /* position weights w_i, linear over positions */
    int omega;                  /* DD2_CSD_OMEGA_SEQUENCE (per sequence), _POSITION or _POINT */
} dd2_csd_opts;

/* Work for up to B sequences and m draws (P = B·n·m points). All arrays are exposed for tests
 * and logging; after dd2_csd_generator_loss they hold that call's values. */
typedef struct dd2_csd_work {
    int B, m, P, n, C, sid; /* capacity; sid: the Jacobian buffers are allocated */
    float *v;     /* [P,C] guidance velocity v_ψ */
    float *bp;    /* [P,C] guidance x0-prediction x_t − t v_ψ */
    float *gB;    /* [P,C] Bg = ∂ℓ/∂bp (sid), then the head's dv = −t·Bg */
    float *gx;    /* [P,C] J_Φᵀ A + J_ψᵀ Bg (sid): ∂ℓ/∂x_t; dq_i gets (1−t)·gx on top of the
                     explicit term */
    float *gA;    /* [P,C] A = ∂ℓ/∂a (sid) */
    float *omega; /* [P] ω of each point (shared by a sequence's or a position's points in
                     those modes) */
    double *absdiff; /* [B] mean |q − a| per sequence */
} dd2_csd_work;

int dd2_csd_work_alloc(dd2_csd_work *w, int B, int n, int C, int m, int sid, dd2_status *st);
void dd2_csd_work_free(dd2_csd_work *w);

/* Sums over the batch, for logging (add across ranks, divide by the global counts). */
typedef struct dd2_csd_stats {
    double loss;    /* Σ_p ℓ_p */
    double omega;   /* Σ_b of the mean of ω over sequence b's points (= Σ_b ω_b per sequence) */
    double absdiff; /* Σ_b mean |q − a| of sequence b */
} dd2_csd_stats;

/* The CSD generator loss of B sequences (see the top). Inputs: q [B,n,C] generator samples,
 * y [B] classes, draws t [P] in (0,1] and the noised points x_t [P,C] (dd2_ardiff_noised_points),
 * the teacher's answer for them (the score service, dist/score_service.h): a [P,C] = μ_Φ(x_t,
 * t | q_<i) and, for sid, cov [P,C,C] its posterior covariance (NULL for dmd).
 * psi/pparams: the guidance network (read only); pw: its work (dd2_ardiff_work_alloc(pw, psi,
 * Bcap, m); backbone and head activations, f and cond are overwritten). w: dd2_csd_work (sid
 * must be set for the sid mode). omega_in [B·n] (NULL: computed from the m draws as above):
 * with DD2_CSD_OMEGA_POSITION, position (b,i)'s ω is taken from it (dd2_csd_omega_positions over
 * more draws); ignored in the other modes.
 * Outputs: dq [B,n,C] = scale · (the gradient of Σ_p ℓ_p into q of the chosen mode), written
 * with =; *stats (may be NULL) = the sums above. Returns Σ_p ℓ_p (not scaled). */
double dd2_csd_generator_loss(const dd2_ardiff *psi, const float *pparams, dd2_ardiff_work *pw, dd2_csd_work *w,
                              const float *a, const float *cov, const float *q, const int *y, const float *t,
                              const float *x_t, int B, int m, const dd2_csd_opts *o, const float *omega_in,
                              float scale, float *dq, dd2_csd_stats *stats);

/* ω per position from M draws per token: omega [B·n] = 1 / max(mean over the M·C elements of
 * position (b,i) of |q_i − a|, DD2_CSD_OMEGA_FLOOR), q [B,n,C], a [B·n·M, C] (the teacher's
 * x0-predictions, Ψ's point layout). With M = m and the loss's own a, exactly the ω that
 * DD2_CSD_OMEGA_POSITION computes; the trainer passes M = m + distill.omega_draws (extra draws
 * that only steady the normaliser) as the loss's omega_in. */
void dd2_csd_omega_positions(const float *q, const float *a, int B, int n, int M, int C, float *omega);

/* The position weight w_i for position i of n. */
static inline float dd2_csd_pos_weight(const dd2_csd_opts *o, int i, int n) {
    return n > 1 ? o->pos_start + (o->pos_end - o->pos_start) * (float)i / (float)(n - 1) : o->pos_start;
}

#endif
