/* AdamW, clipping, LR schedules and EMA against direct double-precision formulas. */
#include <math.h>

#include "model/optim.h"
#include "test_util.h"

/* Textbook AdamW (PyTorch's torch.optim.AdamW algorithm) in double, one parameter. */
static double ref_adamw(double p, const double *g, int steps, double lr, double b1, double b2, double eps,
                        double wd) {
    double m = 0, v = 0;
    for (int t = 1; t <= steps; t++) {
        p *= 1 - lr * wd;
        m = b1 * m + (1 - b1) * g[t - 1];
        v = b2 * v + (1 - b2) * g[t - 1] * g[t - 1];
        double mhat = m / (1 - pow(b1, t)), vhat = v / (1 - pow(b2, t));
        p -= lr * mhat / (sqrt(vhat) + eps);
    }
    return p;
}

TEST(adamw_matches_reference) {
    enum { N = 4, STEPS = 7 };
    float p[N] = {0.5f, -1.0f, 2.0f, 0.0f}, m[N] = {0}, v[N] = {0};
    const uint8_t mask[N] = {1, 1, 0, 1};
    double grads[N][STEPS];
    for (int i = 0; i < N; i++)
        for (int t = 0; t < STEPS; t++) grads[i][t] = sin(1.3 * i + 0.7 * t) * (i + 1) * 0.1;
    dd2_adam_cfg cfg = {0.9f, 0.95f, 1e-8f, 0.1f};
    for (int t = 1; t <= STEPS; t++) {
        float g[N];
        for (int i = 0; i < N; i++) g[i] = (float)grads[i][t - 1];
        dd2_adamw_step(p, g, m, v, mask, N, 1e-2f, &cfg, t);
    }
    const double p0[N] = {0.5, -1.0, 2.0, 0.0};
    for (int i = 0; i < N; i++) {
        double want = ref_adamw(p0[i], grads[i], STEPS, 1e-2, 0.9, 0.95, 1e-8, mask[i] ? 0.1 : 0.0);
        CHECK_NEAR(p[i], want, 1e-6);
    }
}

TEST(adam_first_step_is_sign_step) {
    float p[2] = {1.0f, 1.0f}, m[2] = {0}, v[2] = {0}, g[2] = {3.0f, -0.01f};
    dd2_adam_cfg cfg = {0.9f, 0.999f, 1e-12f, 0.0f};
    dd2_adamw_step(p, g, m, v, NULL, 2, 0.1f, &cfg, 1);
    CHECK_NEAR(p[0], 0.9, 1e-6);
    CHECK_NEAR(p[1], 1.1, 1e-6);
}

TEST(clip_scale) {
    float g[3] = {3.0f, 4.0f, 0.0f};
    double norm = sqrt(dd2_sum_squares(g, 3));
    CHECK_NEAR(norm, 5.0, 1e-12);
    CHECK_NEAR(dd2_clip_scale(norm, 1.0f), 0.2, 1e-6);
    CHECK(dd2_clip_scale(norm, 10.0f) == 1.0f);
    CHECK(dd2_clip_scale(norm, 0.0f) == 1.0f);
    dd2_scale(g, 3, 0.5f);
    CHECK(g[0] == 1.5f && g[1] == 2.0f);
    CHECK(dd2_clip_scale(NAN, 1.0f) == 1.0f); /* a NaN norm is caught by the finiteness check */
}

TEST(all_finite) {
    float x[3] = {1, 2, 3};
    CHECK(dd2_all_finite(x, 3));
    x[1] = NAN;
    CHECK(!dd2_all_finite(x, 3));
    x[1] = INFINITY;
    CHECK(!dd2_all_finite(x, 3));
}

TEST(lr_schedules) {
    dd2_lr_schedule s = {DD2_LR_COSINE, 1e-3, 1e-5, 0.0, 10, 110, 0};
    CHECK_NEAR(dd2_lr_at(&s, 0), 0.0, 1e-15);
    CHECK_NEAR(dd2_lr_at(&s, 5), 5e-4, 1e-15);
    CHECK_NEAR(dd2_lr_at(&s, 10), 1e-3, 1e-15);
    CHECK_NEAR(dd2_lr_at(&s, 60), 1e-5 + 0.5 * (1e-3 - 1e-5), 1e-15);
    CHECK_NEAR(dd2_lr_at(&s, 110), 1e-5, 1e-15);
    CHECK_NEAR(dd2_lr_at(&s, 500), 1e-5, 1e-15);
    dd2_lr_schedule w = {DD2_LR_CONSTANT, 2e-4, 0, 1e-6, 100, 1000, 0};
    CHECK_NEAR(dd2_lr_at(&w, 0), 1e-6, 1e-18);
    CHECK_NEAR(dd2_lr_at(&w, 50), 1e-6 + 0.5 * (2e-4 - 1e-6), 1e-15);
    CHECK_NEAR(dd2_lr_at(&w, 100), 2e-4, 1e-15);
    CHECK_NEAR(dd2_lr_at(&w, 999), 2e-4, 1e-15);
    dd2_lr_schedule l = {DD2_LR_LINEAR, 1.0, 0.0, 0.0, 0, 10, 0};
    CHECK_NEAR(dd2_lr_at(&l, 5), 0.5, 1e-15);
}

/* warmup-stable-decay: warm-up, constant, then the decay over the last decay_steps steps only */
TEST(lr_decay_steps) {
    dd2_lr_schedule l = {DD2_LR_LINEAR, 1e-4, 0.0, 1e-6, 100, 1000, 400};
    CHECK_NEAR(dd2_lr_at(&l, 50), 1e-6 + 0.5 * (1e-4 - 1e-6), 1e-15);
    CHECK_NEAR(dd2_lr_at(&l, 100), 1e-4, 1e-15);
    CHECK_NEAR(dd2_lr_at(&l, 599), 1e-4, 1e-15);
    CHECK_NEAR(dd2_lr_at(&l, 600), 1e-4, 1e-15);
    CHECK_NEAR(dd2_lr_at(&l, 700), 0.75e-4, 1e-15);
    CHECK_NEAR(dd2_lr_at(&l, 999), 0.0025e-4, 1e-15);
    CHECK_NEAR(dd2_lr_at(&l, 1000), 0.0, 1e-15);
    dd2_lr_schedule c = {DD2_LR_COSINE, 1.0, 0.0, 0.0, 0, 10, 4};
    CHECK_NEAR(dd2_lr_at(&c, 5), 1.0, 1e-15);
    CHECK_NEAR(dd2_lr_at(&c, 8), 0.5, 1e-15);
    /* a decay longer than the run after warm-up starts at the end of the warm-up, as 0 does */
    dd2_lr_schedule a = {DD2_LR_LINEAR, 1.0, 0.0, 0.0, 2, 10, 50}, b = a;
    b.decay_steps = 0;
    for (long k = 0; k <= 10; k++) CHECK_NEAR(dd2_lr_at(&a, k), dd2_lr_at(&b, k), 0.0);
}

TEST(ema) {
    CHECK_NEAR(dd2_ema_rate(0.9999, 0, 10), 0.1, 1e-15);
    CHECK_NEAR(dd2_ema_rate(0.9999, 90, 10), 91.0 / 100.0, 1e-15);
    CHECK_NEAR(dd2_ema_rate(0.99, 100000, 10), 0.99, 1e-15);
    CHECK_NEAR(dd2_ema_rate(0.9999, 97, 3), 98.0 / 100.0, 1e-15);
    float e[2] = {1.0f, 0.0f}, p[2] = {0.0f, 1.0f};
    dd2_ema_update(e, p, 2, 0.75);
    CHECK_NEAR(e[0], 0.75, 1e-7);
    CHECK_NEAR(e[1], 0.25, 1e-7);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(adamw_matches_reference);
    RUN(adam_first_step_is_sign_step);
    RUN(clip_scale);
    RUN(all_finite);
    RUN(lr_schedules);
    RUN(lr_decay_steps);
    RUN(ema);
    return test_summary();
}
