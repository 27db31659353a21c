/* The AR-diffusion model Ψ (model/ardiff.h): the GTS target on hand-computable mixtures, the
 * plain diffusion target, the loss and its gradient (value, dloss/dv, finite differences of the
 * whole Ψ loss w.r.t. head and backbone parameters, head-only mode), rank-independent draws, the
 * teacher's log-probabilities in chunks, the Euler integrator (exact on a point mass), and the
 * KV-cache sampler against a full forward pass (snapped and continuous feedback), batch
 * independence and a constant-velocity head. */
#include <math.h>
#include <stdint.h>

#include "core/rng.h"
#include "model/ardiff.h"
#include "model/logits_head.h"
#include "random_params.h"
#include "test_util.h"

static dd2_rng g_rng;
static double urand(void) { return 2.0 * dd2_rng_uniform(&g_rng) - 1.0; } /* U(-1, 1) */

/* Random weights: matrices U(±sqrt(3/fan_in)), gains 1 ± 0.2, other vectors ± 0.3, cls_emb ± 1. */
static void random_params(const dd2_param_table *tab, float *p) {
    for (int i = 0; i < tab->n; i++) {
        const dd2_tensor_info *t = &tab->t[i];
        for (size_t j = 0; j < t->numel; j++) p[t->offset + j] = random_param_value(t, urand());
    }
}

/* A small Ψ: C 4, d 8, H 2, L 1, F 16, K 3, n 4 (2x2 grid), head W 8 depth 2, V 6 random codes. */
typedef struct fixture {
    dd2_vq_codebook cb;
    dd2_ardiff a;
    float *params;
} fixture;

static int fixture_init(fixture *fx, int input_map, dd2_status *st) {
    enum { V = 6, C = 4 };
    float codes[V * C];
    for (int i = 0; i < V * C; i++) codes[i] = (float)urand();
    memset(fx, 0, sizeof *fx);
    DD2_TRY(dd2_vq_codebook_init(&fx->cb, V, C, codes, st));
    dd2_backbone_dims bd = {C, 8, 2, 1, 16, 3, 4, 2, 2, input_map, DD2_ROPE_2D};
    DD2_TRY(dd2_ardiff_init_dims(&fx->a, &bd, 8, 2, &fx->cb, st));
    fx->params = calloc(fx->a.tab.numel, sizeof(float));
    if (!fx->params) return DD2_FAIL(st, DD2_ERR_RUNTIME, "oom");
    random_params(&fx->a.tab, fx->params);
    return DD2_OK;
}

static void fixture_free(fixture *fx) {
    dd2_ardiff_free(&fx->a);
    dd2_vq_codebook_free(&fx->cb);
    free(fx->params);
}

/* Symmetric two-code mixture c = ±1 (C = 1), p = (1/2, 1/2): μ(x, t) = tanh(x (1−t) / t²). With
 * p = (1/4, 3/4) the log-odds gain log 3. A third code with p = 0 sits exactly at x and must get
 * no weight. */
TEST(gts_target_by_hand) {
    dd2_status st;
    dd2_status_clear(&st);
    const float codes[3] = {-1.0f, 1.0f, 0.0f};
    dd2_mixture mx;
    CHECK_OK(dd2_mixture_init(&mx, codes, 3, 1, &st), &st);
    const float p[6] = {0.5f, 0.5f, 0.0f, 0.25f, 0.75f, 0.0f};
    float logp[6];
    dd2_mixture_logp(logp, p, 2, 3);
    /* points: q = code 1 (+1) for row 0, code 0 (−1) for row 1; eps chosen so that x_t = 0.25 */
    const float q[2] = {1.0f, -1.0f};
    const int row[3] = {0, 1, 0};
    const float t[3] = {0.5f, 0.5f, 0.25f};
    float eps[3];
    const float xt_want[3] = {0.25f, 0.25f, 0.0f};
    for (int k = 0; k < 3; k++) eps[k] = (xt_want[k] - (1.0f - t[k]) * q[row[k]]) / t[k];
    float x_t[3], vstar[3];
    dd2_ardiff_targets(DD2_ARDIFF_LOSS_GTS, &mx, logp, row, q, eps, t, 3, 1, x_t, vstar);
    for (int k = 0; k < 3; k++) CHECK_NEAR(x_t[k], xt_want[k], 1e-6);
    /* point 0: μ = tanh(0.25·0.5/0.25) = tanh(0.5); v* = (0.25 − μ)/0.5 */
    CHECK_NEAR(vstar[0], (0.25 - tanh(0.5)) / 0.5, 2e-6);
    /* point 1: the log-odds of code +1 are 2·0.5 + log 3: μ = tanh(0.5 + log(3)/2) */
    CHECK_NEAR(vstar[1], (0.25 - tanh(0.5 + 0.5 * log(3.0))) / 0.5, 2e-6);
    /* point 2: x = 0 is symmetric: μ = 0, v* = 0 (the p = 0 code at 0 takes no weight) */
    CHECK_NEAR(vstar[2], 0.0, 1e-6);

    /* the loss and its gradient for a given v: Σ (v − v*)² / C, dv = scale·2(v − v*)/C */
    const float v[3] = {0.1f, -0.3f, 0.5f};
    float dv[3];
    double sum = dd2_ardiff_mse(v, vstar, 3, 1, 0.5f, dv);
    double want = 0.0;
    for (int k = 0; k < 3; k++) {
        want += (v[k] - (double)vstar[k]) * (v[k] - (double)vstar[k]);
        CHECK_NEAR(dv[k], 0.5 * 2.0 * (v[k] - (double)vstar[k]), 1e-6);
    }
    CHECK_NEAR(sum, want, 1e-6);
    dd2_mixture_free(&mx);
}

/* C = 2, three codes, full 2-d check against a double evaluation of method.md §3, and the loss
 * normalisation by C. */
TEST(gts_target_2d) {
    dd2_status st;
    dd2_status_clear(&st);
    const float codes[6] = {1.0f, 0.0f, 0.0f, 1.0f, -0.5f, -0.5f};
    dd2_mixture mx;
    CHECK_OK(dd2_mixture_init(&mx, codes, 3, 2, &st), &st);
    const float p[3] = {0.2f, 0.5f, 0.3f};
    float logp[3];
    dd2_mixture_logp(logp, p, 1, 3);
    const float q[2] = {0.0f, 1.0f}, eps[2] = {0.7f, -1.2f}, t[1] = {0.6f};
    const int row[1] = {0};
    float x_t[2], vstar[2];
    dd2_ardiff_targets(DD2_ARDIFF_LOSS_GTS, &mx, logp, row, q, eps, t, 1, 2, x_t, vstar);
    double x[2] = {0.4 * 0.0 + 0.6 * 0.7, 0.4 * 1.0 + 0.6 * -1.2}, a[3], mxa = -INFINITY, s = 0, mu[2] = {0, 0};
    for (int j = 0; j < 3; j++) {
        double d0 = x[0] - 0.4 * codes[2 * j], d1 = x[1] - 0.4 * codes[2 * j + 1];
        a[j] = log((double)p[j]) - (d0 * d0 + d1 * d1) / (2 * 0.36);
        mxa = fmax(mxa, a[j]);
    }
    for (int j = 0; j < 3; j++) s += (a[j] = exp(a[j] - mxa));
    for (int j = 0; j < 3; j++)
        for (int c = 0; c < 2; c++) mu[c] += a[j] / s * codes[2 * j + c];
    for (int c = 0; c < 2; c++) {
        CHECK_NEAR(x_t[c], x[c], 1e-6);
        CHECK_NEAR(vstar[c], (x[c] - mu[c]) / 0.6, 2e-6);
    }
    const float v[2] = {0.3f, 0.9f};
    float dv[2];
    double l = dd2_ardiff_mse(v, vstar, 1, 2, 1.0f, dv);
    double e0 = v[0] - (double)vstar[0], e1 = v[1] - (double)vstar[1];
    CHECK_NEAR(l, (e0 * e0 + e1 * e1) / 2, 1e-6);
    CHECK_NEAR(dv[0], e0, 1e-6); /* 2·e/C with C = 2 */
    CHECK_NEAR(dv[1], e1, 1e-6);
    dd2_mixture_free(&mx);
}

/* The diffusion target is ε − q exactly; GTS with a one-code distribution (the true code) gives
 * the same target, since μ = q. */
TEST(diffusion_target) {
    dd2_status st;
    dd2_status_clear(&st);
    enum { V = 4, C = 3, M = 5 };
    float codes[V * C], q[2 * C], eps[M * C], t[M], p[2 * V] = {0}, logp[2 * V];
    for (int i = 0; i < V * C; i++) codes[i] = (float)urand();
    memcpy(q, codes + 1 * C, C * sizeof(float));     /* row 0: code 1 */
    memcpy(q + C, codes + 3 * C, C * sizeof(float)); /* row 1: code 3 */
    p[1] = 1.0f;
    p[V + 3] = 1.0f;
    dd2_mixture_logp(logp, p, 2, V);
    const int row[M] = {0, 1, 1, 0, 1};
    for (int k = 0; k < M; k++) t[k] = 0.1f + 0.2f * k;
    for (int i = 0; i < M * C; i++) eps[i] = (float)(2 * urand());
    dd2_mixture mx;
    CHECK_OK(dd2_mixture_init(&mx, codes, V, C, &st), &st);
    float xa[M * C], va[M * C], xb[M * C], vb[M * C];
    dd2_ardiff_targets(DD2_ARDIFF_LOSS_DIFFUSION, NULL, NULL, row, q, eps, t, M, C, xa, va);
    dd2_ardiff_targets(DD2_ARDIFF_LOSS_GTS, &mx, logp, row, q, eps, t, M, C, xb, vb);
    for (int k = 0; k < M; k++)
        for (int c = 0; c < C; c++) {
            const int i = k * C + c;
            CHECK(va[i] == eps[i] - q[row[k] * C + c]);
            CHECK(xa[i] == xb[i]);
            CHECK_NEAR(xa[i], (1 - t[k]) * q[row[k] * C + c] + t[k] * eps[i], 1e-6);
            CHECK_NEAR(vb[i], va[i], 2e-5);
        }
    dd2_mixture_free(&mx);
}

/* Draws depend on (slot, position, draw) only: a batch of 3 from slot 10 holds the batch of 1 from
 * slot 11 as its middle sequence; t in [t_min, t_max); the noise looks standard normal. */
TEST(draws_rank_independent) {
    enum { n = 5, m = 3, C = 4, P3 = 3 * n * m, P1 = n * m };
    float t3[P3], e3[P3 * C], t1[P1], e1[P1 * C];
    dd2_ardiff_draw(7, 10, 3, n, m, C, 0.02f, 0.98f, false, false, t3, e3);
    dd2_ardiff_draw(7, 11, 1, n, m, C, 0.02f, 0.98f, false, false, t1, e1);
    CHECK(memcmp(t3 + P1, t1, sizeof t1) == 0);
    CHECK(memcmp(e3 + P1 * C, e1, sizeof e1) == 0);
    double s = 0, s2 = 0;
    int in_range = 1, distinct = 1;
    for (int p = 0; p < P3; p++) {
        in_range &= t3[p] >= 0.02f && t3[p] < 0.98f;
        if (p && t3[p] == t3[p - 1]) distinct = 0;
    }
    for (int i = 0; i < P3 * C; i++) s += e3[i], s2 += (double)e3[i] * e3[i];
    CHECK(in_range);
    CHECK(distinct);
    CHECK_MSG(fabs(s / (P3 * C)) < 0.25 && fabs(s2 / (P3 * C) - 1) < 0.35, "mean %g, second moment %g",
              s / (P3 * C), s2 / (P3 * C));
    /* another seed gives other draws */
    dd2_ardiff_draw(8, 11, 1, n, m, C, 0.02f, 0.98f, false, false, t1, e1);
    CHECK(memcmp(e3 + P1 * C, e1, sizeof e1) != 0);
}

/* Stratified timesteps: draw j of every position lies in stratum j of [t_min, t_max), the noise
 * is the unstratified draw's bitwise, and over many positions each stratum's draws spread over
 * their whole stratum (mean near the stratum's middle). */
TEST(draws_stratified) {
    enum { B = 4, n = 50, m = 4, C = 3, P = B * n * m };
    static float ts[P], es[P * C], tu[P], eu[P * C];
    const float lo = 0.02f, hi = 0.98f, w = (hi - lo) / m;
    dd2_ardiff_draw(5, 3, B, n, m, C, lo, hi, true, false, ts, es);
    dd2_ardiff_draw(5, 3, B, n, m, C, lo, hi, false, false, tu, eu);
    CHECK(memcmp(es, eu, sizeof es) == 0);
    double mean[m] = {0};
    int in_stratum = 1, differs = 0;
    for (int p = 0; p < P; p++) {
        const int j = p % m;
        in_stratum &= ts[p] >= lo + w * j - 1e-6f && ts[p] < hi && ts[p] < lo + w * (j + 1) + 1e-6f;
        differs |= ts[p] != tu[p];
        mean[j] += ts[p] / (double)(B * n);
    }
    CHECK(in_stratum);
    CHECK(differs);
    for (int j = 0; j < m; j++)
        CHECK_MSG(fabs(mean[j] - (lo + w * (j + 0.5))) < 0.2 * w, "stratum %d: mean %g", j, mean[j]);
    /* m = 1: one stratum, the same range as unstratified */
    float t1[n], e1[n * C];
    dd2_ardiff_draw(5, 3, 1, n, 1, C, lo, hi, true, false, t1, e1);
    for (int i = 0; i < n; i++) CHECK(t1[i] >= lo && t1[i] < hi);
}

/* Shared timesteps: a token's m draws take draw 0's t, which is the unshared draw 0's; the noise
 * is the unshared draws' bitwise; and the per-token check finds them (not the unshared ones). */
TEST(draws_shared) {
    enum { B = 3, n = 20, m = 4, C = 3, P = B * n * m };
    static float ts[P], es[P * C], tu[P], eu[P * C], tt[B * n];
    dd2_ardiff_draw(5, 3, B, n, m, C, 0.02f, 0.98f, false, true, ts, es);
    dd2_ardiff_draw(5, 3, B, n, m, C, 0.02f, 0.98f, false, false, tu, eu);
    CHECK(memcmp(es, eu, sizeof es) == 0);
    int ok = 1;
    for (int p = 0; p < P; p++) ok &= ts[p] == tu[p - p % m];
    CHECK(ok);
    CHECK(dd2_ardiff_t_per_token(ts, B * n, m, tt) == 1);
    for (int r = 0; r < B * n; r++) ok &= tt[r] == ts[r * m];
    CHECK(ok);
    CHECK(dd2_ardiff_t_per_token(tu, B * n, m, tt) == 0);
    CHECK(dd2_ardiff_t_per_token(ts, B * n, 1, tt) == 0); /* m = 1: nothing to group */
}

/* The whole Ψ loss (backbone + replicated conditions + GTS targets + head + mean) against central
 * finite differences in float, on the largest-gradient element of several head and backbone
 * tensors; gradient buffers start non-zero (the loss must accumulate). Then head-only mode: no
 * backbone gradient, the head's equal bitwise. */
static void loss_fd_case(int input_map, int loss, bool t_shared) {
    dd2_status st;
    dd2_status_clear(&st);
    fixture fx;
    CHECK_OK(fixture_init(&fx, input_map, &st), &st);
    const dd2_ardiff *a = &fx.a;
    enum { B = 2, m = 2 };
    const int n = a->n, C = a->C, V = a->V, P = B * n * m;
    const size_t numel = a->tab.numel;
    dd2_ardiff_work w;
    CHECK_OK(dd2_ardiff_work_alloc(&w, a, B, m, &st), &st);
    dd2_mixture mx;
    CHECK_OK(dd2_mixture_init(&mx, fx.cb.c, V, C, &st), &st);
    /* data: tokens, classes, teacher distributions with one dropped code per row */
    int32_t tok[B * 4];
    int y[B] = {2, 0};
    float *q = malloc((size_t)B * n * C * sizeof(float)), *logp = malloc((size_t)B * n * V * sizeof(float));
    for (int i = 0; i < B * n; i++) {
        tok[i] = (int32_t)((i * 5 + 1) % V);
        memcpy(q + (size_t)i * C, fx.cb.c + (size_t)tok[i] * C, C * sizeof(float));
        double s = 0;
        for (int v = 0; v < V; v++) s += (logp[i * V + v] = (float)(0.2 + fabs(urand())));
        for (int v = 0; v < V; v++) logp[i * V + v] = (float)log(logp[i * V + v] / s);
        logp[i * V + (tok[i] + 1) % V] = -INFINITY;
    }
    dd2_ardiff_draw(3, 0, B, n, m, C, 0.2f, 0.9f, false, t_shared, w.t, w.eps);
    {   /* shared timesteps take the grouped head (one condition row per token) */
        float tt[B * 4 * 8];
        CHECK((size_t)B * n <= sizeof tt / sizeof tt[0]);
        CHECK(dd2_ardiff_t_per_token(w.t, (size_t)B * n, m, tt) == (int)t_shared);
    }
    /* the teacher's answer at the noised points, as the score service computes it (GTS only) */
    float *xall = malloc((size_t)P * C * sizeof(float)), *muall = malloc((size_t)P * C * sizeof(float));
    int *rows = malloc((size_t)P * sizeof(int));
    for (int p = 0; p < P; p++) rows[p] = p / m;
    dd2_ardiff_noised_points(q, w.t, w.eps, B, n, m, C, xall);
    dd2_mixture_posterior(&mx, logp, rows, xall, w.t, (size_t)P, muall, NULL);
    const float *mu_in = loss == DD2_ARDIFF_LOSS_GTS ? muall : NULL;
    const float scale = 1.0f / (float)P;
    float *g = malloc(numel * sizeof(float)), *g0 = malloc(numel * sizeof(float));
    for (size_t i = 0; i < numel; i++) g0[i] = g[i] = (float)urand();
    const double L = dd2_ardiff_loss(a, fx.params, g, 1, &w, mu_in, q, y, w.t, w.eps, B, m, scale);
    CHECK(isfinite(L) && L > 0);
    for (size_t i = 0; i < numel; i++) g[i] -= g0[i];
    {   /* the value, assembled point by point: point p = (b·n + i)·m + j reads row b·n + i */
        dd2_backbone_acts ba;
        dd2_mlp_head_acts ha;
        CHECK_OK(dd2_backbone_acts_alloc(&ba, &a->bb, B, &st), &st);
        CHECK_OK(dd2_mlp_head_acts_alloc(&ha, &a->head, 1, &st), &st);
        float *f = malloc((size_t)B * n * a->d * sizeof(float));
        dd2_backbone_forward(&a->bb, fx.params, &ba, q, y, B, f);
        double ref = 0;
        for (int p = 0; p < P; p++) {
            const int r = p / m;
            float xt[4], vs[4], mu[4], v[4];
            for (int c = 0; c < C; c++)
                xt[c] = (1 - w.t[p]) * q[r * C + c] + w.t[p] * w.eps[p * C + c];
            dd2_mixture_posterior(&mx, logp, &r, xt, &w.t[p], 1, mu, NULL);
            for (int c = 0; c < C; c++)
                vs[c] = loss == DD2_ARDIFF_LOSS_GTS ? (xt[c] - mu[c]) / w.t[p] : w.eps[p * C + c] - q[r * C + c];
            dd2_mlp_head_forward(&a->head, fx.params, &ha, xt, &w.t[p], f + (size_t)r * a->d, 1, v);
            for (int c = 0; c < C; c++) ref += (double)(v[c] - vs[c]) * (v[c] - vs[c]) / C;
        }
        CHECK_MSG(fabs(ref - L) <= 1e-5 * L, "loss %.8g, assembled %.8g", L, ref);
        free(f);
        dd2_backbone_acts_free(&ba);
        dd2_mlp_head_acts_free(&ha);
    }
    const char *names[] = {"head_mlp.final.w",  "head_mlp.final.b", "head_mlp.res.1.fc1.w", "head_mlp.res.0.ada.w",
                           "head_mlp.cond.w",   "head_mlp.time.w1", "head_mlp.in.w",        "blocks.0.attn.wqkv",
                           "blocks.0.mlp.w2",   "blocks.0.attn.wo", "cls_emb",              "final_norm.w",
                           input_map == DD2_INPUT_MLP ? "in_proj.w1" : "in_proj.w"};
    double worst = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        int ti = dd2_ptable_find(&a->tab, names[k]);
        CHECK_MSG(ti >= 0, "%s", names[k]);
        if (ti < 0) continue;
        const dd2_tensor_info *ten = &a->tab.t[ti];
        size_t best = ten->offset;
        for (size_t j = ten->offset; j < ten->offset + ten->numel; j++)
            if (fabsf(g[j]) > fabsf(g[best])) best = j;
        const float save = fx.params[best], h = 3e-3f;
        fx.params[best] = save + h;
        double lp = dd2_ardiff_loss(a, fx.params, NULL, 1, &w, mu_in, q, y, w.t, w.eps, B, m, scale);
        fx.params[best] = save - h;
        double lm = dd2_ardiff_loss(a, fx.params, NULL, 1, &w, mu_in, q, y, w.t, w.eps, B, m, scale);
        fx.params[best] = save;
        const double fd = (lp - lm) * scale / (2 * h), an = g[best];
        const double err = fabs(fd - an) / fmax(fabs(an), 1e-2);
        if (err > worst) worst = err;
        CHECK_MSG(fabs(an) > 1e-4, "%s: gradient %g is too small to check", names[k], an);
        CHECK_MSG(err < 1e-2, "%s[%zu]: analytic %.6g, finite difference %.6g", names[k], best - ten->offset, an, fd);
    }
    printf("  loss %s, input map %s%s: loss %.4f, worst relative error %.2e\n",
           loss == DD2_ARDIFF_LOSS_GTS ? "gts" : "diffusion", input_map == DD2_INPUT_MLP ? "mlp" : "linear",
           t_shared ? ", t shared (grouped head)" : "", L * scale, worst);
    /* head only: the backbone gradient stays untouched, the head's is bitwise the full one */
    float *h = malloc(numel * sizeof(float));
    memcpy(h, g0, numel * sizeof(float));
    double L2 = dd2_ardiff_loss(a, fx.params, h, 0, &w, mu_in, q, y, w.t, w.eps, B, m, scale);
    CHECK(L2 == L);
    int bb_same = 1, head_same = 1;
    for (size_t i = a->bb.off_begin; i < a->bb.off_end; i++) bb_same &= h[i] == g0[i];
    for (size_t i = a->head.off_begin; i < a->head.off_end; i++) head_same &= h[i] - g0[i] == g[i];
    CHECK(bb_same);
    CHECK(head_same);
    free(h);
    free(xall);
    free(muall);
    free(rows);
    free(g);
    free(g0);
    free(q);
    free(logp);
    dd2_mixture_free(&mx);
    dd2_ardiff_work_free(&w);
    fixture_free(&fx);
}

TEST(loss_grad_fd_gts) { loss_fd_case(DD2_INPUT_LINEAR, DD2_ARDIFF_LOSS_GTS, false); }
TEST(loss_grad_fd_gts_mlp_input) { loss_fd_case(DD2_INPUT_MLP, DD2_ARDIFF_LOSS_GTS, false); }
TEST(loss_grad_fd_diffusion) { loss_fd_case(DD2_INPUT_LINEAR, DD2_ARDIFF_LOSS_DIFFUSION, false); }
/* the guidance loss's case with distill.t_shared: the grouped head under the same checks */
TEST(loss_grad_fd_diffusion_t_shared) { loss_fd_case(DD2_INPUT_LINEAR, DD2_ARDIFF_LOSS_DIFFUSION, true); }

/* The teacher's log-probabilities: chunked (one sequence per chunk) equals one pass; with CFG
 * the result is dd2_teacher_probs of the two teacher-forced passes; top-k drops give -inf. */
TEST(teacher_logp_chunks) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_config cfg;
    CHECK_OK(dd2_config_defaults(&cfg), &st);
    cfg.model.d_model = 8, cfg.model.n_heads = 2, cfg.model.n_layers = 1, cfg.model.mlp_hidden = 16;
    cfg.data.n_classes = 3;
    enum { V = 6, C = 4, B = 3, n = 4 };
    float codes[V * C];
    for (int i = 0; i < V * C; i++) codes[i] = (float)urand();
    dd2_teacher t;
    CHECK_OK(dd2_teacher_init(&t, &cfg, codes, V, C, 2, 2, &st), &st);
    float *tp = malloc(t.tab.numel * sizeof(float));
    random_params(&t.tab, tp);
    float x[B * n * C];
    for (int i = 0; i < B * n * C; i++) x[i] = (float)urand();
    const int y[B] = {0, 2, 1};
    const dd2_sampling s = {2.0f, 1.0f, 4, 1.0f};
    dd2_teacher_work small, big;
    CHECK_OK(dd2_teacher_work_alloc(&small, &t, 2, &st), &st);
    CHECK_OK(dd2_teacher_work_alloc(&big, &t, 2 * B, &st), &st);
    float l1[B * n * V], l2[B * n * V];
    CHECK_OK(dd2_ardiff_teacher_logp(&t, tp, &small, &s, x, y, B, l1, &st), &st);
    CHECK_OK(dd2_ardiff_teacher_logp(&t, tp, &big, &s, x, y, B, l2, &st), &st);
    int same = 1, dropped = 0;
    for (int i = 0; i < B * n * V; i++) {
        same &= (l1[i] == l2[i]) || fabsf(l1[i] - l2[i]) < 1e-5f;
        dropped += l1[i] == -INFINITY;
    }
    CHECK(same);
    CHECK_MSG(dropped == B * n * (V - 4), "%d codes dropped, expected %d", dropped, B * n * (V - 4));
    /* reference: the conditional and null-class passes over all sequences at once */
    int yy[2 * B];
    float xx[2 * B * n * C];
    for (int b = 0; b < B; b++) yy[b] = y[b], yy[B + b] = t.K;
    memcpy(xx, x, sizeof x);
    memcpy(xx + B * n * C, x, sizeof x);
    dd2_backbone_forward(&t.bb, tp, &big.acts, xx, yy, 2 * B, big.f);
    dd2_logits_forward(&t.head, tp, big.f, 2 * B * n, big.logits);
    float p[B * n * V], scratch[DD2_SAMPLING_SCRATCH(V)];
    dd2_teacher_probs(p, big.logits, big.logits + B * n * V, B * n, V, &s, scratch);
    double err = 0;
    for (int i = 0; i < B * n * V; i++)
        if (p[i] > 0) err = fmax(err, fabs(exp(l1[i]) - p[i]));
        else CHECK(l1[i] == -INFINITY);
    CHECK_MSG(err < 1e-6, "max |exp(logp) - p| = %g", err);
    dd2_teacher_work_free(&small);
    dd2_teacher_work_free(&big);
    dd2_teacher_free(&t);
    free(tp);
}

/* Euler on the exact velocity of a point mass at c, v = (x − c)/t, lands on c from any start. */
typedef struct point_mass {
    const float *c;
    int C;
} point_mass;

static void point_mass_velocity(void *vctx, const float *x, const float *t, int B, float *v) {
    const point_mass *pm = vctx;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < pm->C; c++) v[b * pm->C + c] = (x[b * pm->C + c] - pm->c[b * pm->C + c]) / t[b];
}

TEST(euler_point_mass) {
    enum { B = 3, C = 2 };
    const float target[B * C] = {0.5f, -1.0f, 2.0f, 0.0f, -0.25f, 0.75f};
    point_mass pm = {target, C};
    const int Es[] = {1, 2, 10, 7};
    for (size_t k = 0; k < sizeof Es / sizeof Es[0]; k++) {
        float x[B * C] = {1.3f, -0.2f, -0.7f, 0.4f, 2.2f, -1.9f}, tb[B], v[B * C];
        dd2_ardiff_euler(x, B, C, Es[k], 0.02f, point_mass_velocity, &pm, tb, v);
        for (int i = 0; i < B * C; i++) CHECK_MSG(fabsf(x[i] - target[i]) < 2e-6f, "E = %d: %g vs %g", Es[k], x[i], target[i]);
    }
    /* the field sees t in {1, 0.5} for E = 2, and t_min for E > 1/t_min */
    float x[1] = {0}, tb[1], v[1];
    const float c0[1] = {0};
    point_mass z = {c0, 1};
    dd2_ardiff_euler(x, 1, 1, 100, 0.05f, point_mass_velocity, &z, tb, v);
    CHECK(tb[0] == 0.05f);
}

/* A head that outputs the constant b (all weights 0, final.b = b): every token is ε − b, so the
 * sampler's noise streams, the output buffers and the snap are visible. */
TEST(sample_constant_head) {
    dd2_status st;
    dd2_status_clear(&st);
    fixture fx;
    CHECK_OK(fixture_init(&fx, DD2_INPUT_LINEAR, &st), &st);
    const dd2_ardiff *a = &fx.a;
    enum { B = 2 };
    const int n = a->n, C = a->C;
    for (size_t i = a->head.off_begin; i < a->head.off_end; i++) fx.params[i] = 0.0f;
    const float bvec[4] = {0.5f, -0.25f, 1.0f, 0.0f};
    memcpy(fx.params + a->head.final_b, bvec, sizeof bvec);
    const int y[B] = {1, 2};
    int32_t tok[B * 4], idx[B * 4];
    float q[B * 4 * 4], eps[B * 4 * 4];
    CHECK_OK(dd2_ardiff_sample(a, fx.params, y, B, 10, 0.02f, 1, 11, 100, tok, q, eps, &st), &st);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n; i++) {
            float e[4];
            dd2_rng r;
            dd2_rng_init(&r, 11, DD2_RNG_NOISE, 100 + (uint64_t)b, (uint64_t)i);
            dd2_rng_fill_normal(&r, e, (size_t)C, 0.0f, 1.0f);
            for (int c = 0; c < C; c++) {
                const size_t k = ((size_t)b * n + i) * C + c;
                CHECK(eps[k] == e[c]);
                CHECK_NEAR(q[k], e[c] - bvec[c], 1e-5);
            }
        }
    CHECK_OK(dd2_vq_nearest(&fx.cb, q, (size_t)B * n, idx, NULL, &st), &st);
    CHECK(memcmp(idx, tok, sizeof tok) == 0);
    fixture_free(&fx);
}

/* The KV-cache sampler against a full forward: with the sampled sequence as input (snapped codes,
 * or the continuous results with snap off), the full backbone's features and the same Euler
 * integration reproduce every token; a sequence sampled alone equals its row of a batch. */
static void sample_vs_full(int snap) {
    dd2_status st;
    dd2_status_clear(&st);
    fixture fx;
    CHECK_OK(fixture_init(&fx, DD2_INPUT_MLP, &st), &st);
    const dd2_ardiff *a = &fx.a;
    enum { B = 3, E = 6 };
    const int n = a->n, C = a->C, d = a->d;
    const int y[B] = {2, 0, 3}; /* 3 = the null class */
    int32_t tok[B * 4];
    float q[B * 4 * 4], eps[B * 4 * 4];
    CHECK_OK(dd2_ardiff_sample(a, fx.params, y, B, E, 0.02f, snap, 5, 40, tok, q, eps, &st), &st);
    /* the full forward on the fed-back inputs */
    float xin[B * 4 * 4], f[B * 4 * 8];
    for (int i = 0; i < B * n; i++)
        memcpy(xin + i * C, snap ? fx.cb.c + (size_t)tok[i] * C : q + i * C, (size_t)C * sizeof(float));
    dd2_backbone_acts acts;
    CHECK_OK(dd2_backbone_acts_alloc(&acts, &a->bb, B, &st), &st);
    dd2_backbone_forward(&a->bb, fx.params, &acts, xin, y, B, f);
    dd2_mlp_head_acts hacts;
    CHECK_OK(dd2_mlp_head_acts_alloc(&hacts, &a->head, B * n, &st), &st);
    float x[B * 4 * 4], tb[B * 4], v[B * 4 * 4];
    memcpy(x, eps, sizeof x);
    const float dt = 1.0f / E;
    for (int k = 0; k < E; k++) {
        for (int p = 0; p < B * n; p++) tb[p] = (float)(1.0 - (double)k / E);
        dd2_mlp_head_forward(&a->head, fx.params, &hacts, x, tb, f, B * n, v);
        for (int i = 0; i < B * n * C; i++) x[i] -= dt * v[i];
    }
    double err = 0, ref = 0;
    for (int i = 0; i < B * n * C; i++) err = fmax(err, fabs(x[i] - q[i])), ref = fmax(ref, fabs(q[i]));
    CHECK_MSG(err <= 1e-5 * ref, "snap %d: max |full − cache| = %g (max |q| %g)", snap, err, ref);
    int32_t idx[B * 4];
    CHECK_OK(dd2_vq_nearest(&fx.cb, q, (size_t)B * n, idx, NULL, &st), &st);
    CHECK(memcmp(idx, tok, sizeof tok) == 0);
    /* sequence 1 alone (first index 41) equals row 1 of the batch */
    int32_t tok1[4];
    float q1[16];
    CHECK_OK(dd2_ardiff_sample(a, fx.params, y + 1, 1, E, 0.02f, snap, 5, 41, tok1, q1, NULL, &st), &st);
    CHECK(memcmp(tok1, tok + n, sizeof tok1) == 0);
    double e1 = 0;
    for (int i = 0; i < n * C; i++) e1 = fmax(e1, fabs(q1[i] - q[n * C + i]));
    CHECK_MSG(e1 <= 1e-5 * ref, "batch of 1 vs batch of 3: %g", e1);
    (void)d;
    dd2_backbone_acts_free(&acts);
    dd2_mlp_head_acts_free(&hacts);
    fixture_free(&fx);
}

TEST(sample_matches_full_forward_snap) { sample_vs_full(1); }
TEST(sample_matches_full_forward_continuous) { sample_vs_full(0); }

/* Copying the backbone from a teacher table by name: every backbone tensor equal, the head
 * untouched; a shape mismatch is an input error naming the tensor. */
TEST(copy_backbone_from_teacher) {
    dd2_status st;
    dd2_status_clear(&st);
    fixture fx;
    CHECK_OK(fixture_init(&fx, DD2_INPUT_LINEAR, &st), &st);
    const dd2_ardiff *a = &fx.a;
    dd2_param_table tt;
    dd2_ptable_init(&tt);
    dd2_backbone tbb;
    dd2_logits_head lh;
    CHECK_OK(dd2_backbone_register(&tbb, &a->bb.dims, NULL, &tt, &st), &st);
    CHECK_OK(dd2_logits_head_register(&lh, a->V, a->d, NULL, &tt, &st), &st);
    float *tp = malloc(tt.numel * sizeof(float)), *before = malloc(a->tab.numel * sizeof(float));
    random_params(&tt, tp);
    memcpy(before, fx.params, a->tab.numel * sizeof(float));
    CHECK_OK(dd2_ardiff_copy_tensors(&a->tab, fx.params, NULL, a->bb.first, a->bb.count, &tt, tp, NULL, &st), &st);
    int ok = 1;
    for (int k = a->bb.first; k < a->bb.first + a->bb.count; k++) {
        const dd2_tensor_info *d = &a->tab.t[k], *s = &tt.t[dd2_ptable_find(&tt, d->name)];
        ok &= memcmp(fx.params + d->offset, tp + s->offset, d->numel * sizeof(float)) == 0;
    }
    CHECK(ok);
    CHECK(memcmp(fx.params + a->head.off_begin, before + a->head.off_begin,
                 (a->head.off_end - a->head.off_begin) * sizeof(float)) == 0);
    /* into a prefixed copy ("gen.") of the whole Ψ */
    dd2_param_table gt;
    dd2_ptable_init(&gt);
    dd2_backbone gbb;
    dd2_mlp_head gh;
    CHECK_OK(dd2_backbone_register(&gbb, &a->bb.dims, "gen.", &gt, &st), &st);
    CHECK_OK(dd2_mlp_head_register(&gh, &a->head.dims, "gen.head_mlp.", &gt, &st), &st);
    float *gp = calloc(gt.numel, sizeof(float));
    CHECK_OK(dd2_ardiff_copy_tensors(&gt, gp, "gen.", 0, gt.n, &a->tab, fx.params, NULL, &st), &st);
    CHECK(memcmp(gp + gh.final_w, fx.params + a->head.final_w, (size_t)a->C * 8 * sizeof(float)) == 0);
    /* mismatch */
    dd2_param_table bad;
    dd2_ptable_init(&bad);
    dd2_backbone bbb;
    dd2_backbone_dims dims = a->bb.dims;
    dims.F = 32;
    CHECK_OK(dd2_backbone_register(&bbb, &dims, NULL, &bad, &st), &st);
    float *bp = calloc(bad.numel, sizeof(float));
    int rc = dd2_ardiff_copy_tensors(&a->tab, fx.params, NULL, a->bb.first, a->bb.count, &bad, bp, NULL, &st);
    CHECK(rc == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "mlp.w1") != NULL, "%s", st.msg);
    free(bp);
    free(gp);
    free(tp);
    free(before);
    dd2_ptable_free(&bad);
    dd2_ptable_free(&gt);
    dd2_ptable_free(&tt);
    fixture_free(&fx);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    dd2_rng_init(&g_rng, 1, DD2_RNG_TEST, 0, 0);
    RUN(gts_target_by_hand);
    RUN(gts_target_2d);
    RUN(diffusion_target);
    RUN(draws_rank_independent);
    RUN(draws_stratified);
    RUN(draws_shared);
    RUN(loss_grad_fd_gts);
    RUN(loss_grad_fd_gts_mlp_input);
    RUN(loss_grad_fd_diffusion);
    RUN(loss_grad_fd_diffusion_t_shared);
    RUN(teacher_logp_chunks);
    RUN(euler_point_mass);
    RUN(sample_constant_head);
    RUN(sample_matches_full_forward_snap);
    RUN(sample_matches_full_forward_continuous);
    RUN(copy_backbone_from_teacher);
    return test_summary();
}
