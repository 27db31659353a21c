/* The teacher's conditional score in closed form (method.md §3).
 *
 * At a position whose teacher distribution over the V codes is p (p_v > 0 only for the codes that
 * survive top-k / top-p), the noised token x_t = (1-t) c + t ε has the Gaussian-mixture density
 * p_t(x) = Σ_v p_v N(x; (1-t) c_v, t² I). For a point x at time t:
 *
 *     a_v  = log p_v − ‖x − (1−t) c_v‖² / (2t²)          (codes with p_v > 0 only)
 *     w    = softmax(a)                                  posterior over the codes
 *     μ    = Σ_v w_v c_v                                 x0-prediction
 *     Cov  = Σ_v w_v (c_v − μ)(c_v − μ)ᵀ                 [C,C], symmetric
 *     v    = (x − μ) / t                                 velocity (ε − x0 parameterisation)
 *     s    = −(x − (1−t) μ) / t²                         score ∇_x log p_t(x)
 *     J    = ∂μ/∂x = ((1−t)/t²) Cov                      Jacobian (symmetric)
 *
 * Computed for M points at once, each point j attached to a distribution row `row[j]` of a
 * log-probability table logp [R,V] (one row per sequence position; several noise draws share a
 * row). Numerics: ‖x − (1−t)c_v‖² is expanded as ‖x‖² − 2(1−t) x·c_v + (1−t)²‖c_v‖² and the
 * ‖x‖² term, constant over v, is dropped before the softmax; x·c_v for all points and codes is one
 * GEMM [M,C]x[C,V] (in blocks of DD2_MIXTURE_BLOCK points), the softmax subtracts the row
 * maximum in double, and μ is a second GEMM [M,V]x[V,C]. Codes with p_v = 0 (logp = -inf) get
 * w_v = 0 exactly. t must be in (0, 1].
 */
#ifndef DD2_MODEL_MIXTURE_H
#define DD2_MODEL_MIXTURE_H

#include <stddef.h>

#include "core/status.h"

#define DD2_MIXTURE_BLOCK 256 /* points per GEMM block */

typedef struct dd2_mixture {
    int V, C;
    const float *codebook; /* [V,C], borrowed */
    float *cnorm2;         /* [V] ‖c_v‖² */
    float *scratch;        /* [DD2_MIXTURE_BLOCK, V] scores / weights */
} dd2_mixture;

/* Prepare for a codebook [V,C] (kept by pointer: it must outlive the struct). */
int dd2_mixture_init(dd2_mixture *mx, const float *codebook, int V, int C, dd2_status *st);
void dd2_mixture_free(dd2_mixture *mx);

/* logp [R,V] = log(p) with -INFINITY where p == 0 (p [R,V] probabilities; may alias logp). */
void dd2_mixture_logp(float *logp, const float *p, size_t R, int V);

/* For points j < M: x [M,C], t [M] in (0,1], row [M] indices into logp [R,V]:
 *   mu  [M,C]   = posterior mean (x0-prediction)                (written with =)
 *   cov [M,C,C] = posterior covariance (may be NULL)            (written with =) */
void dd2_mixture_posterior(const dd2_mixture *mx, const float *logp, const int *row, const float *x, const float *t,
                           size_t M, float *mu, float *cov);

/* Teacher velocity v [M,C] = (x − μ)/t and score s [M,C] = −(x − (1−t)μ)/t² from μ (either output
 * may be NULL). */
void dd2_mixture_velocity_score(const float *x, const float *t, const float *mu, size_t M, int C, float *v,
                                float *s);

/* out [M,C] += Jᵀ a = ((1−t)/t²) Cov a for each point (J is symmetric): the chain rule through μ. */
void dd2_mixture_jt_apply(const float *cov, const float *t, const float *a, size_t M, int C, float *out);

#endif
