/* Stage 1 of DD2 (method.md §4, docs/ardiff.md): the AR-diffusion model Ψ.
 *
 * Ψ = the teacher's backbone (continuous input, docs/model.md names, unprefixed, so its tensors
 * load directly from the teacher file) + MAR's MLP diffusion head ("head_mlp.", width head.width,
 * depth head.depth, MAR zero-init), in one parameter table of its own. The backbone reads
 * [class, q_0..q_{n-2}] and gives f_i (depends on q_<i); the head maps (x_t, t, f_i) to a
 * velocity v (rectified flow, x_t = (1−t) q + t ε, v = ε − q).
 *
 * Loss (per point = one position i of one sequence and one of m noise draws):
 *     x_t = (1−t) q_i + t ε,    t ~ U[t_min, t_max),  ε ~ N(0, I_C)
 *     v*  = (x_t − μ_Φ(x_t, t)) / t     GTS: μ from the teacher's posterior (model/mixture.h)
 *         = ε − q_i                     plain diffusion (ablation)
 *     ℓ   = ‖v_Ψ(x_t, t, f_i) − v*‖² / C          (mean over the C components)
 * and the training loss is the mean of ℓ over all B·n·m points of the global batch.
 *
 * Points are laid out sequence-major, then position, then draw: point p = (b·n + i)·m + j, and
 * its "row" (index into the [B·n] tables q, logp, f) is p / m = b·n + i.
 *
 * Sampling (evaluation): token after token with the KV cache; for position i, x = ε at t = 1 is
 * integrated by E Euler steps of the velocity field down to t = 0 (t_k = 1 − k/E, x ← x − v/E);
 * the head never sees a time below t_min (clamped; only matters for E > 1/t_min). The result is
 * snapped to the nearest code (or not) and fed back as the next input.
 *
 * Conventions as for the networks: functions write their outputs with `=`, parameter gradients
 * are accumulated (`+=`), work buffers are allocated once for a capacity; library code returns
 * statuses and never exits.
 */
#ifndef DD2_MODEL_ARDIFF_H
#define DD2_MODEL_ARDIFF_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "io/config.h"
#include "model/backbone.h"
#include "model/mixture.h"
#include "model/mlp_head.h"
#include "model/params.h"
#include "model/sampling.h"
#include "model/teacher.h"
#include "model/vq.h"

typedef struct dd2_ardiff {
    dd2_backbone bb;           /* unprefixed names (loads from the teacher file) */
    dd2_mlp_head head;         /* "head_mlp." */
    dd2_param_table tab;
    int V, C, n, K, d;
    const dd2_vq_codebook *cb; /* [V,C] codes, borrowed (lookup and snapping) */
} dd2_ardiff;

/* Register Ψ for the config's model / head sections, on a gh x gw token grid over codebook cb
 * (kept by pointer: it must outlive the struct). */
int dd2_ardiff_init(dd2_ardiff *a, const dd2_config *cfg, const dd2_vq_codebook *cb, int gh, int gw,
                    dd2_status *st);
/* The same from explicit dims (tests): backbone dims (bd->C must equal cb->dim), head width W and
 * depth. */
int dd2_ardiff_init_dims(dd2_ardiff *a, const dd2_backbone_dims *bd, int W, int depth, const dd2_vq_codebook *cb,
                         dd2_status *st);
void dd2_ardiff_free(dd2_ardiff *a);

/* Ψ's architecture (dd2_ardiff_init) with extra_layers more backbone blocks and extra_head_blocks
 * more head residual blocks: the networks of stage 2 (distill.generator.*, distill.guidance.*).
 * The same tensor names, so Ψ's tensors are a subset of the grown network's. */
int dd2_ardiff_init_grown(dd2_ardiff *a, const dd2_config *cfg, const dd2_vq_codebook *cb, int gh, int gw,
                          int extra_layers, int extra_head_blocks, dd2_status *st);

/* Grow a network from a smaller one of the same kind, keeping its function: dst's parameters
 * dparams = the table's initialisation from seed (dd2_ptable_init_params), then every tensor of
 * src copied by name (each must exist in dst with the same shape, else DD2_ERR_INPUT naming it),
 * then the residual outputs of dst's blocks beyond src's zeroed (backbone blocks l >= src L:
 * attn.wo and mlp.w2; head blocks r >= src depth: ada.w and ada.b, so shift = scale = gate = 0).
 * Each added block then adds 0 to the residual stream: dst computes src's function exactly, and
 * its gradients reach the added blocks through those zeroed output maps. dst must have src's
 * dims except L and depth, which may only be larger. With equal dims dparams = sparams. */
int dd2_ardiff_grow(const dd2_ardiff *dst, float *dparams, const dd2_ardiff *src, const float *sparams, uint64_t seed,
                    dd2_status *st);

/* Copy tensors by name: for every entry k in [first, first + count) of dst_tab whose name is
 * dst_prefix + X, dst[entry] = the tensor src_prefix + X of src_tab (prefixes may be NULL = "").
 * A missing source tensor or a different shape is DD2_ERR_INPUT naming it. Example: the backbone
 * of Ψ from the teacher: (&a->tab, params, NULL, a->bb.first, a->bb.count, &t->tab, tparams, NULL). */
int dd2_ardiff_copy_tensors(const dd2_param_table *dst_tab, float *dst, const char *dst_prefix, int first, int count,
                            const dd2_param_table *src_tab, const float *src, const char *src_prefix, dd2_status *st);

/* ---- the training loss ------------------------------------------------------------------- */

/* Noise and timesteps for B sequences in global sample slots first_slot .. first_slot+B−1:
 * point p = (b·n + i)·m + j takes
 *     t[p]          from the stream (seed, DD2_RNG_TIMESTEP, first_slot + b, i·m + j): one
 *                   dd2_rng_fill_uniform value in [t_min, t_max), or with `stratified` one
 *                   value u in [0, 1) placed in stratum j of m: t_min + (t_max − t_min)(j + u)/m
 *                   (each position's m draws then cover the whole range once: lower variance)
 *                   With `shared`, draws j > 0 take draw 0's t (one timestep per token, m noises:
 *                   distill.t_shared; the head's condition path then runs once per token, see
 *                   dd2_ardiff_t_per_token); `shared` with `stratified` stratifies nothing
 *                   (draw 0 lies in stratum 0) and is refused by the config.
 *     eps[p·C ..]   from the stream (seed, DD2_RNG_NOISE,    first_slot + b, i·m + j): C normals
 * so a point's draws depend only on its slot, position and draw (not on batch or rank split). */
void dd2_ardiff_draw(uint64_t seed, uint64_t first_slot, int B, int n, int m, int C, float t_min, float t_max,
                     bool stratified, bool shared, float *t, float *eps);

/* 1 when m ≥ 2 and each of the R tokens' m draws t [R·m] share one timestep; then t_tok [R] = those
 * timesteps. dd2_ardiff_head_forward (so both losses) checks this and then runs the head grouped
 * (dd2_mlp_head_forward_grouped, group m: equal in exact arithmetic, about 2-3x fewer FLOPs). */
int dd2_ardiff_t_per_token(const float *t, size_t R, int m, float *t_tok);

/* The noised points of B sequences with m draws per position: x_t [P,C] = (1 − t) q_i + t ε for
 * the P = B·n·m points p = (b·n + i)·m + j, from q [B,n,C], t [P], eps [P,C] (the point layout of
 * dd2_ardiff_draw; the teacher-score requests carry these points). */
void dd2_ardiff_noised_points(const float *q, const float *t, const float *eps, int B, int n, int m, int C,
                              float *x_t);

/* Targets for M points: row[p] indexes the clean token table q [R,C] (and, for GTS, the
 * teacher log-probability table logp [R,V] of model/mixture.h); eps [M,C], t [M] in (0,1]:
 *     x_t[p]   = (1 − t) q[row] + t eps
 *     vstar[p] = DD2_ARDIFF_LOSS_GTS:       (x_t − μ)/t, μ = dd2_mixture_posterior(mx, logp, row, x_t, t)
 *                DD2_ARDIFF_LOSS_DIFFUSION: eps − q[row]        (mx, logp unused, may be NULL)
 * (loss: enum dd2_ardiff_loss of io/config.h). Both outputs written with =. */
void dd2_ardiff_targets(int loss, const dd2_mixture *mx, const float *logp, const int *row, const float *q,
                        const float *eps, const float *t, size_t M, int C, float *x_t, float *vstar);

/* Σ_p ‖v_p − vstar_p‖² / C over M points (double accumulation); dv (may be NULL) [M,C] =
 * scale · 2 (v − vstar) / C, the gradient of scale × that sum (written with =). */
double dd2_ardiff_mse(const float *v, const float *vstar, size_t M, int C, float scale, float *dv);

/* Work buffers for up to B sequences and m draws (P = B·n·m points). */
typedef struct dd2_ardiff_work {
    int B, m, P;
    dd2_backbone_acts bacts;
    dd2_mlp_head_acts hacts;
    float *f, *df;             /* [B·n, d] backbone features and their gradient */
    float *cond, *dc;          /* [P, d] head conditions (f replicated over the draws), gradient */
    float *t, *eps;            /* [P], [P,C] the caller's draws (dd2_ardiff_draw fills them) */
    float *x_t, *vstar, *v, *dv; /* [P,C] */
    int *row;                  /* [P] p / m */
    float *t_tok;              /* [B·n] one timestep per token (grouped head) */
} dd2_ardiff_work;

int dd2_ardiff_work_alloc(dd2_ardiff_work *w, const dd2_ardiff *a, int B, int m, dd2_status *st);

/* The head on the P = B·n·m points of B sequences whose backbone features are in w->f [B·n, d]:
 * v [P,C] = head(x_t [P,C], t [P], the feature of each point's token). When every token's m draws
 * share t (dd2_ardiff_t_per_token) the head runs grouped on w->f and w->t_tok; otherwise the
 * features are replicated into w->cond. Returns the group (m or 1) for the backward. */
int dd2_ardiff_head_forward(const dd2_ardiff *a, const float *params, dd2_ardiff_work *w, const float *x_t,
                            const float *t, int B, int m, float *v);

/* Backward of that forward (same B, m, group): grads += (NULL: none), dx_t [P,C] += (NULL: none);
 * want_df: w->df [B·n, d] = the gradient into the features, summed over each token's draws. */
void dd2_ardiff_head_backward(const dd2_ardiff *a, const float *params, float *grads, dd2_ardiff_work *w,
                              const float *dv, float *dx_t, int want_df, int B, int m, int group);
void dd2_ardiff_work_free(dd2_ardiff_work *w);

/* The Ψ loss of B sequences: q [B,n,C] clean continuous tokens (code vectors), y [B] classes,
 * t [B·n·m] and eps [B·n·m, C] the draws (layout above; w->t / w->eps may be passed), mu [B·n·m, C]
 * the teacher's posterior mean at the noised points (GTS: the teacher-score service's answer for
 * dd2_ardiff_noised_points of the same draws, v* = (x_t − μ)/t; NULL for the diffusion loss,
 * v* = ε − q). Returns Σ over the B·n·m points of ‖v_Ψ − v*‖²/C.
 * grads != NULL: grads += ∂(scale · that sum)/∂params for the head, and for the backbone too when
 * train_backbone (otherwise the backbone's backward is skipped and its gradients untouched). */
double dd2_ardiff_loss(const dd2_ardiff *a, const float *params, float *grads, int train_backbone, dd2_ardiff_work *w,
                       const float *mu, const float *q, const int *y, const float *t, const float *eps, int B, int m,
                       float scale);

/* The teacher's log-probabilities logp [B·n, V] (dd2_mixture_logp of dd2_teacher_probs with the
 * sampling settings s) at every position of the continuous sequences x [B,n,C] with classes y [B]:
 * one teacher-forced forward pass with the classes and, when s->cfg_scale != 1, one with the null
 * class. Runs in chunks that fit tw (tw->B sequences of rows: tw->B/2 sequences per chunk with
 * guidance, so tw->B >= 2 then). The teacher's parameters are only read. */
int dd2_ardiff_teacher_logp(const dd2_teacher *t, const float *tparams, dd2_teacher_work *tw, const dd2_sampling *s,
                            const float *x, const int *y, int B, float *logp, dd2_status *st);

/* ---- sampling ---------------------------------------------------------------------------- */

/* A velocity field: v [B,C] = field(x [B,C], t [B]). */
typedef void (*dd2_velocity_fn)(void *ctx, const float *x, const float *t, int B, float *v);

/* E Euler steps from t = 1 to t = 0 on x [B,C] in place: for k = 0..E−1, t_k = 1 − k/E (the
 * field is evaluated at max(t_k, t_min)), x ← x − (1/E)·v(x, t). tbuf [B], v [B,C]: scratch. */
void dd2_ardiff_euler(float *x, int B, int C, int E, float t_min, dd2_velocity_fn fn, void *ctx, float *tbuf, float *v);

/* Sample B sequences of classes y [B] token after token (KV cache): position i's initial noise
 * x = ε comes from the stream (seed, DD2_RNG_NOISE, first_index + b, i) (C normals), then
 * dd2_ardiff_euler with E = euler_steps through the head conditioned on f_i. Outputs:
 * tokens [B,n] = nearest code of the result (dd2_vq_nearest); the next input is that code's
 * vector when snap, else the continuous result. q [B,n,C] (may be NULL) = the continuous results,
 * eps [B,n,C] (may be NULL) = the initial noises (ODE pairs). A non-finite result is
 * DD2_ERR_RUNTIME. */
int dd2_ardiff_sample(const dd2_ardiff *a, const float *params, const int *y, int B, int euler_steps, float t_min,
                      int snap, uint64_t seed, uint64_t first_index, int32_t *tokens, float *q, float *eps,
                      dd2_status *st);

#endif
