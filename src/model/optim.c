#include "model/optim.h"

#include <math.h>

void dd2_adamw_step(float *params, const float *grads, float *m, float *v, const uint8_t *decay_mask,
                    size_t n, float lr, const dd2_adam_cfg *cfg, long t) {
    const double b1 = cfg->beta1, b2 = cfg->beta2;
    const double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
    const float decay = 1.0f - lr * cfg->weight_decay;
    const float step = (float)(lr / bc1);
    const float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = (float)b1 * m[i] + (float)(1.0 - b1) * g;
        v[i] = (float)b2 * v[i] + (float)(1.0 - b2) * g * g;
        if (!decay_mask || decay_mask[i]) params[i] *= decay;
        params[i] -= step * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + cfg->eps);
    }
}

double dd2_sum_squares(const float *g, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    return s;
}

float dd2_clip_scale(double global_norm, float max_norm) {
    if (max_norm <= 0.0f || !(global_norm > max_norm)) return 1.0f;
    return (float)(max_norm / (global_norm + 1e-6));
}

void dd2_scale(float *x, size_t n, float s) {
    if (s == 1.0f) return;
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

int dd2_all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

double dd2_lr_at(const dd2_lr_schedule *s, long step) {
    if (step < s->warmup_steps)
        return s->warmup_start + (s->lr - s->warmup_start) * (double)step / (double)s->warmup_steps;
    if (s->kind == DD2_LR_CONSTANT) return s->lr;
    long start = s->warmup_steps;
    if (s->decay_steps > 0 && s->total_steps - s->decay_steps > start) start = s->total_steps - s->decay_steps;
    if (step < start) return s->lr;
    long span = s->total_steps - start;
    if (span <= 0) return s->lr;
    double frac = (double)(step - start) / (double)span;
    if (frac > 1.0) frac = 1.0;
    if (s->kind == DD2_LR_COSINE) return s->min_lr + 0.5 * (s->lr - s->min_lr) * (1.0 + cos(M_PI * frac));
    return s->lr + (s->min_lr - s->lr) * frac; /* DD2_LR_LINEAR */
}

double dd2_ema_rate(double decay, long it, int ramp) {
    double progressive = (double)(it + 1) / (double)(it + ramp);
    return progressive < decay ? progressive : decay;
}

void dd2_ema_update(float *ema, const float *params, size_t n, double rate) {
    const float r = (float)rate, one_minus = (float)(1.0 - rate);
    for (size_t i = 0; i < n; i++) ema[i] = r * ema[i] + one_minus * params[i];
}
