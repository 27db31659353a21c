/* Optimizer pieces over flat float buffers: AdamW, global-norm gradient clipping, learning-rate
 * schedules and the progressive EMA. All state lives in caller-owned flat arrays of `n` floats
 * (parameters, gradients, Adam m and v, EMA copy), matching the one-flat-buffer layout of
 * src/model/params.h, so the same code serves every network and every shard (ZeRO slices).
 */
#ifndef DD2_MODEL_OPTIM_H
#define DD2_MODEL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef struct dd2_adam_cfg {
    float beta1, beta2, eps;
    float weight_decay; /* decoupled (AdamW): p -= lr * wd * p, only where decay_mask[i] != 0 */
} dd2_adam_cfg;

/* One AdamW step on n parameters (PyTorch's AdamW: bias-corrected moments, decoupled decay).
 * `t` is the 1-based step count used for bias correction. decay_mask may be NULL (decay
 * everywhere) or hold one byte per parameter. params, m, v updated in place; grads read only. */
void dd2_adamw_step(float *params, const float *grads, float *m, float *v, const uint8_t *decay_mask,
                    size_t n, float lr, const dd2_adam_cfg *cfg, long t);

/* Sum of squares of g[0..n) in double (for the global norm; combine across ranks by adding). */
double dd2_sum_squares(const float *g, size_t n);

/* Scale factor for global-norm clipping: min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0. */
float dd2_clip_scale(double global_norm, float max_norm);

/* x[i] *= s */
void dd2_scale(float *x, size_t n, float s);

/* 1 if every value is finite. */
int dd2_all_finite(const float *x, size_t n);

enum { DD2_LR_CONSTANT = 0, DD2_LR_COSINE = 1, DD2_LR_LINEAR = 2 };

typedef struct dd2_lr_schedule {
    int kind;          /* DD2_LR_CONSTANT, DD2_LR_COSINE (decay to min_lr), DD2_LR_LINEAR (decay to min_lr) */
    double lr;         /* peak learning rate, reached at the end of warm-up */
    double min_lr;     /* final learning rate of cosine / linear decay */
    double warmup_start; /* learning rate at step 0 of the warm-up (e.g. 1e-6; 0 for the usual ramp) */
    long warmup_steps; /* linear warm-up from warmup_start to lr over these steps */
    long total_steps;  /* length of the run (decay ends here) */
    long decay_steps;  /* > 0: cosine / linear decay over the last decay_steps steps only, lr constant
                        * from the end of warm-up until then (warmup-stable-decay); 0: decay from the
                        * end of warm-up */
} dd2_lr_schedule;

/* Learning rate at 0-based step `step`. Pure function of (schedule, step): resume needs no state. */
double dd2_lr_at(const dd2_lr_schedule *s, long step);

/* Progressive EMA rate min(decay, (it+1)/(it+ramp)) for 0-based iteration `it`, ramp ≥ 2 (10 in
 * the config's default): while decay does not bind, the EMA after T updates is the mean of the
 * iterates s = 0..T−1 weighted ∝ (s+2)(s+3)…(s+ramp−1) ~ s^(ramp−2) — ramp 2 is the plain
 * running mean, 10 about EDM2's power EMA with γ = 8 (centre of mass 0.9 T, spread 0.09 T), and
 * a smaller ramp averages over more of the run. */
double dd2_ema_rate(double decay, long it, int ramp);

/* ema = r * ema + (1 - r) * params */
void dd2_ema_update(float *ema, const float *params, size_t n, double rate);

#endif
