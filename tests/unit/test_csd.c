/* CSD (model/csd.h) on a tiny case (V = 7 codes in R^3, n = 4 tokens on a 2x2 grid, d = 8,
 * head width 8, depth 2, B = 2 sequences, m = 2 draws), random weights everywhere:
 *   - generator gradient, both modes, against central finite differences in double of the
 *     per-position loss Σ_j ℓ_(b,i,j)(q_i) with the networks frozen (conditions f fixed, same t
 *     and ε', ω and w_i fixed): sid recomputes a = μ_Φ(x_t(q_i)) (brute-force mixture in double)
 *     and b = x_t − t·v_ψ(x_t) (the double head); dmd holds a and b fixed. α = 1 and α = 0.6,
 *     with position weights 3 → 1;
 *   - the loss value and ω against the same double reference;
 *   - sid minus its Jacobian terms (1−t)·gx equals dmd (α = 1 and α = 0.6);
 *   - the guidance loss against a hand-computed value (head reduced to its output bias β, so
 *     v = β) and its gradient with respect to β;
 *   - the generator forward: q = ε − β with the same hand-set head; with random weights q equals
 *     ε − head(ε, 1, backbone(ε)) computed by separate calls, bitwise; the generator backward
 *     against a double directional finite difference of Σ g ⊙ q;
 *   - a generator grown by more blocks (dd2_ardiff_grow) is the same function, with the same
 *     gradients on the shared tensors and nonzero ones on the added output maps;
 *   - the noise and class streams do not depend on the batch split;
 *   - few-step sampling (k = 3, with classifier-free guidance): the first n − k + 1 tokens are the
 *     one-step tokens, and each later token is the categorical draw of its stream from the
 *     teacher's p computed by a full teacher-forced forward of the final sequence (prefix as
 *     code vectors with snap, as the continuous generator outputs without). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/csd.h"
#include "model/logits_head.h"
#include "model/nets_f64.h"
#include "model/teacher.h"
#include "train/generate_onestep.h"
#include "test_util.h"

enum { V = 7, C = 3, GH = 2, GW = 2, N = 4, D = 8, W = 8, DEPTH = 2, K = 3, B = 2, M = 2 };
#define FD_H 1e-6
#define TOL_GRAD 2e-4 /* float analytic vs double finite differences */

typedef struct tiny {
    dd2_vq_codebook cb;
    dd2_ardiff net;
    dd2_mixture mx;
    float *params;  /* ψ (and G) */
    double *params64;
    float q[B * N * C], logp[B * N * V], t[B * N * M], eps[B * N * M * C];
    int y[B];
} tiny;

static void fill_uniform(dd2_rng *r, float *x, size_t n, float lo, float hi) { dd2_rng_fill_uniform(r, x, n, lo, hi); }

static int tiny_init(tiny *tc, uint64_t seed) {
    dd2_status st;
    dd2_status_clear(&st);
    memset(tc, 0, sizeof *tc);
    dd2_rng r;
    dd2_rng_init(&r, seed, DD2_RNG_TEST, 0, 0);
    float codes[V * C];
    fill_uniform(&r, codes, V * C, -1.0f, 1.0f);
    if (dd2_vq_codebook_init(&tc->cb, V, C, codes, &st) != DD2_OK) return 1;
    dd2_backbone_dims bd = {0};
    bd.C = C, bd.d = D, bd.H = 2, bd.L = 1, bd.F = 16, bd.K = K, bd.n = N, bd.gh = GH, bd.gw = GW;
    bd.input_map = DD2_INPUT_LINEAR, bd.rope = DD2_ROPE_2D;
    if (dd2_ardiff_init_dims(&tc->net, &bd, W, DEPTH, &tc->cb, &st) != DD2_OK) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    if (dd2_mixture_init(&tc->mx, tc->cb.c, V, C, &st) != DD2_OK) return 1;
    const size_t np = tc->net.tab.numel;
    tc->params = calloc(np, sizeof(float));
    tc->params64 = calloc(np, sizeof(double));
    fill_uniform(&r, tc->params, np, -0.4f, 0.4f);
    for (size_t k = 0; k < np; k++) tc->params64[k] = tc->params[k];
    dd2_rng_fill_normal(&r, tc->q, B * N * C, 0.0f, 0.7f);
    float p[B * N * V];
    fill_uniform(&r, p, B * N * V, 0.05f, 1.0f);
    for (int row = 0; row < B * N; row++) {
        p[row * V + (row % V)] = 0.0f; /* one excluded code per row (top-k style) */
        double s = 0;
        for (int v = 0; v < V; v++) s += p[row * V + v];
        for (int v = 0; v < V; v++) p[row * V + v] = (float)(p[row * V + v] / s);
    }
    dd2_mixture_logp(tc->logp, p, B * N, V);
    fill_uniform(&r, tc->t, B * N * M, 0.1f, 0.9f);
    dd2_rng_fill_normal(&r, tc->eps, B * N * M * C, 0.0f, 1.0f);
    tc->y[0] = 0, tc->y[1] = 2;
    return 0;
}

static void tiny_free(tiny *tc) {
    dd2_mixture_free(&tc->mx);
    dd2_ardiff_free(&tc->net);
    dd2_vq_codebook_free(&tc->cb);
    free(tc->params);
    free(tc->params64);
}

/* tiny_init(seed) with ψ's work and the loss's work for B sequences, M draws, sid buffers; 1 when
 * the setup failed (reported as a failed check). */
static int tiny_with_work(tiny *tc, uint64_t seed, dd2_ardiff_work *pw, dd2_csd_work *cw) {
    if (tiny_init(tc, seed)) {
        CHECK_MSG(0, "tiny setup failed");
        return 1;
    }
    dd2_status st;
    dd2_status_clear(&st);
    int rc = dd2_ardiff_work_alloc(pw, &tc->net, B, M, &st);
    if (rc == DD2_OK) rc = dd2_csd_work_alloc(cw, B, N, C, M, 1, &st);
    CHECK_MSG(rc == DD2_OK, "work: %s", st.msg);
    return rc != DD2_OK;
}

static void tiny_with_work_free(tiny *tc, dd2_ardiff_work *pw, dd2_csd_work *cw) {
    dd2_csd_work_free(cw);
    dd2_ardiff_work_free(pw);
    tiny_free(tc);
}

/* The loss through the teacher's answer as the score service computes it: x_t, then μ and the
 * covariance from the mixture at row b·n + i. */
static double csd_loss_omega(tiny *tc, dd2_ardiff_work *pw, dd2_csd_work *cw, const dd2_csd_opts *o,
                             const float *omega_in, float scale, float *dq, dd2_csd_stats *stats, float *a_out) {
    enum { P = B * N * M };
    static float xt[P * C], a[P * C], cov[P * C * C];
    int row[P];
    for (int p = 0; p < P; p++) row[p] = p / M;
    dd2_ardiff_noised_points(tc->q, tc->t, tc->eps, B, N, M, C, xt);
    dd2_mixture_posterior(&tc->mx, tc->logp, row, xt, tc->t, P, a, cov);
    if (a_out) memcpy(a_out, a, sizeof a);
    return dd2_csd_generator_loss(&tc->net, tc->params, pw, cw, a, o->grad == DD2_CSD_GRAD_SID ? cov : NULL, tc->q,
                                  tc->y, tc->t, xt, B, M, o, omega_in, scale, dq, stats);
}

static double csd_loss(tiny *tc, dd2_ardiff_work *pw, dd2_csd_work *cw, const dd2_csd_opts *o, float scale,
                       float *dq, dd2_csd_stats *stats) {
    return csd_loss_omega(tc, pw, cw, o, NULL, scale, dq, stats, NULL);
}

/* ---- the double reference --------------------------------------------------------------------- */

/* μ of the mixture at x (brute force, double) for logp row `row`. */
static void ref_mu(const tiny *tc, int row, const double *x, double t, double *mu) {
    double a[V], mx = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) {
        const float lp = tc->logp[row * V + v];
        if (lp == -INFINITY) {
            a[v] = -INFINITY;
            continue;
        }
        double d2 = 0;
        for (int c = 0; c < C; c++) {
            double dd = x[c] - (1 - t) * tc->cb.c[v * C + c];
            d2 += dd * dd;
        }
        a[v] = lp - d2 / (2 * t * t);
        if (a[v] > mx) mx = a[v];
    }
    for (int c = 0; c < C; c++) mu[c] = 0;
    for (int v = 0; v < V; v++) {
        double w = a[v] == -INFINITY ? 0 : exp(a[v] - mx);
        s += w;
        for (int c = 0; c < C; c++) mu[c] += w * tc->cb.c[v * C + c];
    }
    for (int c = 0; c < C; c++) mu[c] /= s;
}

typedef struct ref_ctx {
    const tiny *tc;
    dd2_mlp_head_acts_f64 ha;
    double cond[B * N * D]; /* the guidance backbone's features (from the float run), fixed */
} ref_ctx;

/* bp = x − t·v_ψ(x, t, cond[row]) in double. */
static void ref_b(ref_ctx *rf, int row, const double *x, double t, double *bp) {
    double v[C], tt = t;
    dd2_mlp_head_forward_f64(&rf->tc->net.head, rf->tc->params64, &rf->ha, x, &tt, rf->cond + (size_t)row * D, 1, v);
    for (int c = 0; c < C; c++) bp[c] = x[c] - t * v[c];
}

/* Σ_j ℓ at sequence b, position i with q_i = qi; a and bp recomputed unless fixed_a / fixed_b
 * (arrays [M][C]) are given. */
static double ref_loss_pos(ref_ctx *rf, const float *omega, const dd2_csd_opts *o, int b, int i, const double *qi,
                           const double (*fixed_a)[C], const double (*fixed_b)[C], double (*out_a)[C],
                           double (*out_b)[C]) {
    const tiny *tc = rf->tc;
    const int row = b * N + i;
    double L = 0;
    for (int j = 0; j < M; j++) {
        const int p = row * M + j;
        const double wgt = (double)omega[p] * dd2_csd_pos_weight(o, i, N);
        const double t = tc->t[p];
        double x[C], a[C], bp[C];
        for (int c = 0; c < C; c++) x[c] = (1 - t) * qi[c] + t * tc->eps[p * C + c];
        if (fixed_a) memcpy(a, fixed_a[j], sizeof a); else ref_mu(tc, row, x, t, a);
        if (fixed_b) memcpy(bp, fixed_b[j], sizeof bp); else ref_b(rf, row, x, t, bp);
        if (out_a) memcpy(out_a[j], a, sizeof a);
        if (out_b) memcpy(out_b[j], bp, sizeof bp);
        double dot = 0, sq = 0;
        for (int c = 0; c < C; c++) {
            dot += (a[c] - bp[c]) * (bp[c] - qi[c]);
            sq += (a[c] - bp[c]) * (a[c] - bp[c]);
        }
        L += wgt * (dot + (1 - o->alpha) * sq);
    }
    return L;
}

static double maxabs(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

/* ω per position given from outside (distill.omega_draws): dd2_csd_omega_positions over the
 * loss's own m draws reproduces the loss's ω bitwise (same loss, same gradient); another ω is
 * used as given, position by position; the other modes ignore it. */
TEST(omega_in_positions) {
    tiny tc;
    dd2_ardiff_work pw;
    dd2_csd_work cw;
    if (tiny_with_work(&tc, 9, &pw, &cw)) return;
    const dd2_csd_opts o = {DD2_CSD_GRAD_SID, 1.3f, 1.0f, 1.0f, DD2_CSD_OMEGA_POSITION};
    static float a[B * N * M * C];
    float dq0[B * N * C], dq1[B * N * C], dq2[B * N * C], om[B * N], om0[B * N * M];
    const double l0 = csd_loss_omega(&tc, &pw, &cw, &o, NULL, 0.5f, dq0, NULL, a);
    memcpy(om0, cw.omega, sizeof om0);
    dd2_csd_omega_positions(tc.q, a, B, N, M, C, om);
    int same = 1;
    for (int p = 0; p < B * N * M; p++) same &= om[p / M] == om0[p];
    CHECK(same);
    const double l1 = csd_loss_omega(&tc, &pw, &cw, &o, om, 0.5f, dq1, NULL, NULL);
    CHECK(l1 == l0 && memcmp(dq0, dq1, sizeof dq0) == 0);
    for (int r = 0; r < B * N; r++) om[r] *= 1.0f + 0.25f * (float)(r % 3);
    const double l2 = csd_loss_omega(&tc, &pw, &cw, &o, om, 0.5f, dq2, NULL, NULL);
    same = 1;
    for (int p = 0; p < B * N * M; p++) same &= cw.omega[p] == om[p / M];
    CHECK(same);
    CHECK(l2 != l0 && memcmp(dq0, dq2, sizeof dq0) != 0);
    const dd2_csd_opts os = {DD2_CSD_GRAD_SID, 1.3f, 1.0f, 1.0f, DD2_CSD_OMEGA_SEQUENCE};
    const double ls0 = csd_loss_omega(&tc, &pw, &cw, &os, NULL, 0.5f, dq0, NULL, NULL);
    const double ls1 = csd_loss_omega(&tc, &pw, &cw, &os, om, 0.5f, dq1, NULL, NULL);
    CHECK(ls0 == ls1 && memcmp(dq0, dq1, sizeof dq0) == 0);
    tiny_with_work_free(&tc, &pw, &cw);
}

/* Run the float generator loss in `mode` (normaliser `omega`) and check it against the double
 * reference (a plain per-point head). t_shared: every token's M draws take draw 0's timestep, so
 * the loss runs ψ's head grouped (distill.t_shared). */
static void check_mode(int mode, float alpha, int omega, int t_shared) {
    tiny tc;
    if (tiny_init(&tc, 5)) {
        CHECK_MSG(0, "tiny setup failed");
        return;
    }
    if (t_shared) {
        for (int p = 0; p < B * N * M; p++) tc.t[p] = tc.t[p - p % M];
        float tt[B * N];
        CHECK(dd2_ardiff_t_per_token(tc.t, B * N, M, tt) == 1);
    }
    dd2_status st;
    dd2_status_clear(&st);
    dd2_ardiff_work pw;
    dd2_csd_work cw;
    CHECK_OK(dd2_ardiff_work_alloc(&pw, &tc.net, B + 1, M, &st), &st); /* capacity above the batch */
    CHECK_OK(dd2_csd_work_alloc(&cw, B + 1, N, C, M, 1, &st), &st);
    const dd2_csd_opts o = {mode, alpha, 3.0f, 1.0f, omega};
    const float scale = 0.37f;
    float dq[B * N * C];
    dd2_csd_stats stats;
    const double loss = csd_loss(&tc, &pw, &cw, &o, scale, dq, &stats);
    ref_ctx rf;
    memset(&rf, 0, sizeof rf);
    rf.tc = &tc;
    CHECK_OK(dd2_mlp_head_acts_alloc_f64(&rf.ha, &tc.net.head, 1, &st), &st);
    for (int k = 0; k < B * N * D; k++) rf.cond[k] = pw.f[k];

    /* ω (per sequence, position or point, from direct sums) and the loss value */
    double ref_total = 0, num[B * N * C], ana[B * N * C], err = 0, ref_omega_sum = 0;
    for (int b = 0; b < B; b++) {
        double s = 0, s_pos[N] = {0}, s_pt[N][M] = {{0}};
        for (int i = 0; i < N; i++)
            for (int j = 0; j < M; j++) {
                const int p = (b * N + i) * M + j;
                double x[C], mu[C];
                for (int c = 0; c < C; c++)
                    x[c] = (1 - (double)tc.t[p]) * tc.q[(b * N + i) * C + c] + tc.t[p] * tc.eps[p * C + c];
                ref_mu(&tc, b * N + i, x, tc.t[p], mu);
                for (int c = 0; c < C; c++) s_pt[i][j] += fabs(tc.q[(b * N + i) * C + c] - mu[c]);
                s_pos[i] += s_pt[i][j];
                s += s_pt[i][j];
            }
        for (int i = 0; i < N; i++)
            for (int j = 0; j < M; j++) {
                const double om = omega == DD2_CSD_OMEGA_POINT      ? 1.0 / (s_pt[i][j] / C)
                                  : omega == DD2_CSD_OMEGA_POSITION ? 1.0 / (s_pos[i] / (M * C))
                                                                    : 1.0 / (s / (N * M * C));
                const float got = cw.omega[(b * N + i) * M + j];
                CHECK_MSG(fabs(got - om) <= 1e-5 * om, "omega[%d,%d,%d] %.9g vs %.9g", b, i, j, got, om);
                ref_omega_sum += om / (N * M);
            }
    }
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++) {
            double qi[C], a0[M][C], b0[M][C];
            for (int c = 0; c < C; c++) qi[c] = tc.q[(b * N + i) * C + c];
            ref_total += ref_loss_pos(&rf, cw.omega, &o, b, i, qi, NULL, NULL, a0, b0);
            for (int c = 0; c < C; c++) {
                double qp[C], qm[C];
                memcpy(qp, qi, sizeof qp);
                memcpy(qm, qi, sizeof qm);
                qp[c] += FD_H;
                qm[c] -= FD_H;
                const int dmd = mode == DD2_CSD_GRAD_DMD;
                double lp = ref_loss_pos(&rf, cw.omega, &o, b, i, qp, dmd ? (const double(*)[C])a0 : NULL,
                                         dmd ? (const double(*)[C])b0 : NULL, NULL, NULL);
                double lm = ref_loss_pos(&rf, cw.omega, &o, b, i, qm, dmd ? (const double(*)[C])a0 : NULL,
                                         dmd ? (const double(*)[C])b0 : NULL, NULL, NULL);
                const int k = (b * N + i) * C + c;
                num[k] = (lp - lm) / (2 * FD_H);
                ana[k] = dq[k] / scale;
            }
        }
    for (int k = 0; k < B * N * C; k++) err = fmax(err, fabs(num[k] - ana[k]));
    const double rel = err / maxabs(num, B * N * C);
    printf("  %s alpha %.1f omega per %s%s: gradient vs finite differences rel %.2e (max |grad| %.3g); loss %.9g vs "
           "%.9g\n", mode == DD2_CSD_GRAD_SID ? "sid" : "dmd", alpha, omega == DD2_CSD_OMEGA_POINT ? "point" : omega == DD2_CSD_OMEGA_POSITION ? "position" : "sequence",
           t_shared ? ", t shared (grouped head)" : "", rel, maxabs(num, B * N * C), loss, ref_total);
    CHECK_MSG(rel <= TOL_GRAD, "rel %.3g", rel);
    CHECK_MSG(fabs(loss - ref_total) <= 1e-5 * fmax(1.0, fabs(ref_total)), "loss %.9g vs %.9g", loss, ref_total);
    CHECK_NEAR(stats.loss, loss, 0);
    CHECK_NEAR(stats.omega, ref_omega_sum, 1e-5 * ref_omega_sum);
    dd2_mlp_head_acts_free_f64(&rf.ha);
    dd2_csd_work_free(&cw);
    dd2_ardiff_work_free(&pw);
    tiny_free(&tc);
}

TEST(sid_gradient_alpha1) { check_mode(DD2_CSD_GRAD_SID, 1.0f, DD2_CSD_OMEGA_SEQUENCE, 0); }
TEST(sid_gradient_alpha06) { check_mode(DD2_CSD_GRAD_SID, 0.6f, DD2_CSD_OMEGA_SEQUENCE, 0); }
TEST(dmd_gradient_alpha1) { check_mode(DD2_CSD_GRAD_DMD, 1.0f, DD2_CSD_OMEGA_SEQUENCE, 0); }
TEST(dmd_gradient_alpha06) { check_mode(DD2_CSD_GRAD_DMD, 0.6f, DD2_CSD_OMEGA_SEQUENCE, 0); }
TEST(sid_gradient_omega_per_position) { check_mode(DD2_CSD_GRAD_SID, 1.3f, DD2_CSD_OMEGA_POSITION, 0); }
TEST(dmd_gradient_omega_per_position) { check_mode(DD2_CSD_GRAD_DMD, 1.3f, DD2_CSD_OMEGA_POSITION, 0); }
TEST(sid_gradient_omega_per_point) { check_mode(DD2_CSD_GRAD_SID, 1.3f, DD2_CSD_OMEGA_POINT, 0); }
TEST(dmd_gradient_omega_per_point) { check_mode(DD2_CSD_GRAD_DMD, 1.3f, DD2_CSD_OMEGA_POINT, 0); }
TEST(sid_gradient_t_shared) { check_mode(DD2_CSD_GRAD_SID, 1.3f, DD2_CSD_OMEGA_POSITION, 1); }

/* sid − scale·Σ_j (1−t)·gx == dmd; and the Jacobian terms are not negligible here. */
static void check_decomposition(float alpha) {
    tiny tc;
    dd2_ardiff_work pw;
    dd2_csd_work cw;
    if (tiny_with_work(&tc, 9, &pw, &cw)) return;
    const float scale = 1.0f / (B * N * M);
    float dq_sid[B * N * C], dq_dmd[B * N * C];
    dd2_csd_opts o = {DD2_CSD_GRAD_SID, alpha, 1.0f, 1.0f, DD2_CSD_OMEGA_SEQUENCE};
    const double l_sid =
        csd_loss(&tc, &pw, &cw, &o, scale, dq_sid, NULL);
    double expl[B * N * C], jac = 0, diff = 0, ref = 0;
    for (int k = 0; k < B * N * C; k++) expl[k] = dq_sid[k];
    for (int p = 0; p < B * N * M; p++)
        for (int c = 0; c < C; c++) {
            const double jt = (double)scale * (1.0 - tc.t[p]) * cw.gx[p * C + c];
            expl[(p / M) * C + c] -= jt;
            jac = fmax(jac, fabs(jt));
        }
    o.grad = DD2_CSD_GRAD_DMD;
    const double l_dmd =
        csd_loss(&tc, &pw, &cw, &o, scale, dq_dmd, NULL);
    for (int k = 0; k < B * N * C; k++) {
        diff = fmax(diff, fabs(expl[k] - dq_dmd[k]));
        ref = fmax(ref, fabs(dq_dmd[k]));
    }
    printf("  alpha %.1f: |sid - jacobian terms - dmd| / |dmd| = %.2e (jacobian terms up to %.3g, dmd up to %.3g)\n",
           alpha, diff / ref, jac, ref);
    CHECK_MSG(diff <= 1e-5 * ref, "%.3g vs %.3g", diff, ref);
    CHECK_MSG(jac > 1e-3 * ref, "the Jacobian terms vanish (%.3g): the check would be vacuous", jac);
    CHECK_NEAR(l_sid, l_dmd, 0);
    tiny_with_work_free(&tc, &pw, &cw);
}

TEST(dmd_is_sid_without_jacobians_alpha1) { check_decomposition(1.0f); }
TEST(dmd_is_sid_without_jacobians_alpha06) { check_decomposition(0.6f); }

/* Zero the head except final.b = beta: v = beta at every point. */
static void hand_set_head(tiny *tc, const float *beta) {
    const dd2_mlp_head *h = &tc->net.head;
    memset(tc->params + h->off_begin, 0, (h->off_end - h->off_begin) * sizeof(float));
    memcpy(tc->params + h->final_b, beta, C * sizeof(float));
}

TEST(guidance_loss_hand_computed) {
    tiny tc;
    if (tiny_init(&tc, 3)) {
        CHECK_MSG(0, "tiny setup failed");
        return;
    }
    dd2_status st;
    dd2_status_clear(&st);
    const float beta[C] = {0.5f, -0.25f, 1.0f};
    hand_set_head(&tc, beta);
    dd2_ardiff_work pw;
    CHECK_OK(dd2_ardiff_work_alloc(&pw, &tc.net, B, M, &st), &st);
    float *grads = calloc(tc.net.tab.numel, sizeof(float));
    const float scale = 0.5f;
    const double L = dd2_csd_guidance_loss(&tc.net, tc.params, grads, &pw, tc.q, tc.y, tc.t, tc.eps, B, M, scale);
    double want = 0, gb[C] = {0};
    for (int p = 0; p < B * N * M; p++)
        for (int c = 0; c < C; c++) {
            const double e = beta[c] - ((double)tc.eps[p * C + c] - tc.q[(p / M) * C + c]);
            want += e * e / C;
            gb[c] += scale * 2 * e / C;
        }
    printf("  guidance loss %.9g, hand-computed %.9g\n", L, want);
    CHECK_MSG(fabs(L - want) <= 1e-6 * want, "%.9g vs %.9g", L, want);
    for (int c = 0; c < C; c++)
        CHECK_MSG(fabs(grads[tc.net.head.final_b + c] - gb[c]) <= 1e-5 * fmax(1.0, fabs(gb[c])), "dβ[%d] %.9g vs %.9g",
                  c, grads[tc.net.head.final_b + c], gb[c]);
    free(grads);
    dd2_ardiff_work_free(&pw);
    tiny_free(&tc);
}

TEST(generator_forward_hand_set) {
    tiny tc;
    if (tiny_init(&tc, 4)) {
        CHECK_MSG(0, "tiny setup failed");
        return;
    }
    dd2_status st;
    dd2_status_clear(&st);
    const float beta[C] = {0.25f, -1.5f, 0.75f};
    hand_set_head(&tc, beta);
    dd2_ardiff_work gw;
    CHECK_OK(dd2_ardiff_work_alloc(&gw, &tc.net, B, 1, &st), &st);
    float eps[B * N * C], q[B * N * C];
    dd2_csd_noise(11, 100, B, N, C, eps);
    dd2_csd_generator_forward(&tc.net, tc.params, &gw, eps, tc.y, B, q);
    int bad = 0;
    for (int k = 0; k < B * N * C; k++) bad += q[k] != eps[k] - beta[k % C];
    CHECK_MSG(bad == 0, "%d of %d values differ from eps - beta", bad, B * N * C);
    dd2_ardiff_work_free(&gw);
    tiny_free(&tc);
}

TEST(generator_forward_backward_random) {
    tiny tc;
    if (tiny_init(&tc, 6)) {
        CHECK_MSG(0, "tiny setup failed");
        return;
    }
    dd2_status st;
    dd2_status_clear(&st);
    dd2_ardiff_work gw;
    CHECK_OK(dd2_ardiff_work_alloc(&gw, &tc.net, B, 1, &st), &st);
    float eps[B * N * C], q[B * N * C], f[B * N * D], v[B * N * C], ones[B * N];
    dd2_csd_noise(11, 100, B, N, C, eps);
    dd2_csd_generator_forward(&tc.net, tc.params, &gw, eps, tc.y, B, q);
    /* the same by separate calls */
    dd2_backbone_acts ba;
    dd2_mlp_head_acts ha;
    CHECK_OK(dd2_backbone_acts_alloc(&ba, &tc.net.bb, B, &st), &st);
    CHECK_OK(dd2_mlp_head_acts_alloc(&ha, &tc.net.head, B * N, &st), &st);
    dd2_backbone_forward(&tc.net.bb, tc.params, &ba, eps, tc.y, B, f);
    for (int k = 0; k < B * N; k++) ones[k] = 1.0f;
    dd2_mlp_head_forward(&tc.net.head, tc.params, &ha, eps, ones, f, B * N, v);
    int bad = 0;
    for (int k = 0; k < B * N * C; k++) bad += q[k] != eps[k] - v[k];
    CHECK_MSG(bad == 0, "%d values differ from eps - head(eps, 1, backbone(eps))", bad);
    /* backward: d/dθ Σ g ⊙ q along a random direction u, against double finite differences */
    const size_t np = tc.net.tab.numel;
    float g[B * N * C], *grads = calloc(np, sizeof(float));
    double *u = calloc(np, sizeof(double)), *pp = calloc(np, sizeof(double));
    dd2_rng r;
    dd2_rng_init(&r, 21, DD2_RNG_TEST, 1, 0);
    dd2_rng_fill_normal(&r, g, B * N * C, 0.0f, 1.0f);
    for (size_t k = 0; k < np; k++) u[k] = dd2_rng_normal(&r);
    dd2_csd_generator_backward(&tc.net, tc.params, grads, &gw, g, B);
    double ana = 0;
    for (size_t k = 0; k < np; k++) ana += grads[k] * u[k];
    dd2_backbone_acts_f64 ba64;
    dd2_mlp_head_acts_f64 ha64;
    CHECK_OK(dd2_backbone_acts_alloc_f64(&ba64, &tc.net.bb, B, &st), &st);
    CHECK_OK(dd2_mlp_head_acts_alloc_f64(&ha64, &tc.net.head, B * N, &st), &st);
    double e64[B * N * C], f64[B * N * D], v64[B * N * C], t64[B * N], L[2];
    for (int k = 0; k < B * N * C; k++) e64[k] = eps[k];
    for (int k = 0; k < B * N; k++) t64[k] = 1.0;
    for (int s = 0; s < 2; s++) {
        const double h = s ? -1e-6 : 1e-6;
        for (size_t k = 0; k < np; k++) pp[k] = tc.params64[k] + h * u[k];
        dd2_backbone_forward_f64(&tc.net.bb, pp, &ba64, e64, tc.y, B, f64);
        dd2_mlp_head_forward_f64(&tc.net.head, pp, &ha64, e64, t64, f64, B * N, v64);
        L[s] = 0;
        for (int k = 0; k < B * N * C; k++) L[s] += g[k] * (e64[k] - v64[k]);
    }
    const double num = (L[0] - L[1]) / 2e-6;
    printf("  generator backward: directional derivative %.9g, finite differences %.9g\n", ana, num);
    CHECK_MSG(fabs(ana - num) <= 1e-4 * fabs(num), "%.9g vs %.9g", ana, num);
    dd2_backbone_acts_free_f64(&ba64);
    dd2_mlp_head_acts_free_f64(&ha64);
    dd2_backbone_acts_free(&ba);
    dd2_mlp_head_acts_free(&ha);
    free(grads);
    free(u);
    free(pp);
    dd2_ardiff_work_free(&gw);
    tiny_free(&tc);
}

/* A generator grown from ψ (dd2_ardiff_grow: 2 more backbone blocks, 1 more head block) computes
 * the same q bitwise, its gradients on the shared tensors equal the small network's, the added
 * blocks' zeroed output maps get a gradient (so they can learn), and growing into another width
 * is an input error. */
TEST(grown_generator_same_function) {
    dd2_status st;
    dd2_status_clear(&st);
    tiny tc;
    CHECK(tiny_init(&tc, 31) == 0);
    dd2_backbone_dims bd = tc.net.bb.dims;
    bd.L += 2;
    dd2_ardiff big;
    CHECK_OK(dd2_ardiff_init_dims(&big, &bd, W, DEPTH + 1, &tc.cb, &st), &st);
    const size_t ns = tc.net.tab.numel, nb = big.tab.numel;
    float *pb = calloc(nb, sizeof(float)), *gs = calloc(ns, sizeof(float)), *gb = calloc(nb, sizeof(float));
    CHECK_OK(dd2_ardiff_grow(&big, pb, &tc.net, tc.params, 5, &st), &st);
    dd2_ardiff_work ws, wb;
    CHECK_OK(dd2_ardiff_work_alloc(&ws, &tc.net, B, 1, &st), &st);
    CHECK_OK(dd2_ardiff_work_alloc(&wb, &big, B, 1, &st), &st);
    float eps[B * N * C], qs[B * N * C], qb[B * N * C], dq[B * N * C];
    dd2_csd_noise(3, 0, B, N, C, eps);
    dd2_csd_generator_forward(&tc.net, tc.params, &ws, eps, tc.y, B, qs);
    dd2_csd_generator_forward(&big, pb, &wb, eps, tc.y, B, qb);
    CHECK(memcmp(qs, qb, sizeof qs) == 0);
    for (int k = 0; k < B * N * C; k++) dq[k] = 0.1f * (float)(k % 7) - 0.3f;
    dd2_csd_generator_backward(&tc.net, tc.params, gs, &ws, dq, B);
    dd2_csd_generator_backward(&big, pb, gb, &wb, dq, B);
    double worst = 0.0, scale = 0.0;
    for (int k = 0; k < tc.net.tab.n; k++) {
        const dd2_tensor_info *t = &tc.net.tab.t[k];
        const dd2_tensor_info *u = &big.tab.t[dd2_ptable_find(&big.tab, t->name)];
        for (size_t e = 0; e < t->numel; e++) {
            worst = fmax(worst, fabs((double)gs[t->offset + e] - gb[u->offset + e]));
            scale = fmax(scale, fabs((double)gs[t->offset + e]));
        }
    }
    printf("  shared tensors: max |grad difference| %.3g (max |grad| %.3g)\n", worst, scale);
    CHECK(scale > 0 && worst <= 1e-6 * scale);
    const dd2_backbone_layer ly = dd2_backbone_layer_at(&big.bb, bd.L - 1);
    const dd2_mlp_head_block hb = dd2_mlp_head_block_at(&big.head, DEPTH);
    double wo = 0.0, w2 = 0.0, ada = 0.0, wo_init = 0.0;
    for (int e = 0; e < D * D; e++) wo += fabs(gb[ly.wo + e]), wo_init += fabs(pb[ly.wo + e]);
    CHECK(wo_init == 0.0);
    for (int e = 0; e < D * bd.F; e++) w2 += fabs(gb[ly.w2 + e]);
    for (int e = 0; e < 3 * W * W; e++) ada += fabs(gb[hb.ada_w + e]);
    CHECK_MSG(wo > 0 && w2 > 0 && ada > 0, "added blocks' gradients: wo %g, w2 %g, ada %g", wo, w2, ada);
    dd2_ardiff wide;
    CHECK_OK(dd2_ardiff_init_dims(&wide, &bd, 2 * W, DEPTH, &tc.cb, &st), &st);
    float *pw = calloc(wide.tab.numel, sizeof(float));
    CHECK(dd2_ardiff_grow(&wide, pw, &tc.net, tc.params, 5, &st) == DD2_ERR_INPUT);
    printf("  into another width: %s\n", st.msg);
    free(pw);
    dd2_ardiff_free(&wide);
    dd2_ardiff_work_free(&ws);
    dd2_ardiff_work_free(&wb);
    dd2_ardiff_free(&big);
    free(pb);
    free(gs);
    free(gb);
    tiny_free(&tc);
}

TEST(noise_and_classes_independent_of_split) {
    float a[5 * N * C], b[5 * N * C];
    int ya[5], yb[5];
    dd2_csd_noise(7, 40, 5, N, C, a);
    dd2_csd_noise(7, 40, 2, N, C, b);
    dd2_csd_noise(7, 42, 3, N, C, b + 2 * N * C);
    CHECK(memcmp(a, b, sizeof a) == 0);
    dd2_csd_classes(7, 40, 5, N, K, ya);
    dd2_csd_classes(7, 40, 1, N, K, yb);
    dd2_csd_classes(7, 41, 4, N, K, yb + 1);
    CHECK(memcmp(ya, yb, sizeof ya) == 0);
    int in_range = 1;
    for (int k = 0; k < 5; k++) in_range &= ya[k] >= 0 && ya[k] < K;
    CHECK(in_range);
    /* the draws of a training slot use other streams than its generator noise */
    float t[N * M], e2[N * M * C];
    dd2_ardiff_draw(7, DD2_CSD_DRAW_SLOT + 40, 1, N, M, C, 0.02f, 0.98f, false, false, t, e2);
    CHECK(memcmp(e2, a, C * sizeof(float)) != 0);
}

static void check_fewstep(int snap) {
    enum { NB = 24 }; /* sequences */
    tiny tc;
    if (tiny_init(&tc, 8)) {
        CHECK_MSG(0, "tiny setup failed");
        return;
    }
    dd2_status st;
    dd2_status_clear(&st);
    dd2_teacher t;
    memset(&t, 0, sizeof t);
    dd2_ptable_init(&t.tab);
    CHECK_OK(dd2_backbone_register(&t.bb, &tc.net.bb.dims, NULL, &t.tab, &st), &st);
    CHECK_OK(dd2_logits_head_register(&t.head, V, D, NULL, &t.tab, &st), &st);
    t.V = V, t.C = C, t.n = N, t.K = K, t.codebook = tc.cb.c;
    float *tp = calloc(t.tab.numel, sizeof(float));
    dd2_rng r;
    dd2_rng_init(&r, 31, DD2_RNG_TEST, 2, 0);
    dd2_rng_fill_uniform(&r, tp, t.tab.numel, -0.8f, 0.8f);
    const dd2_sampling s = {2.0f, 1.0f, 0, 1.0f};
    const int k = 3, P0 = N - k + 1;
    const uint64_t seed = 5, first = 17;
    dd2_ardiff_work gw;
    CHECK_OK(dd2_ardiff_work_alloc(&gw, &tc.net, NB, 1, &st), &st);
    int32_t one[NB * N], few[NB * N], again[NB * N];
    float q[NB * N * C];
    int ys[NB];
    for (int b = 0; b < NB; b++) ys[b] = b % K;
    CHECK_OK(dd2_generator_sample(&tc.net, tc.params, &gw, ys, NB, seed, first, one, q, &st), &st);
    CHECK_OK(dd2_fewstep_sample(&tc.net, tc.params, &gw, &t, tp, &s, k, snap, ys, NB, seed, first, few, &st), &st);
    /* full teacher-forced forward of the final sequences, cond rows then null-class rows */
    dd2_backbone_acts ba;
    CHECK_OK(dd2_backbone_acts_alloc(&ba, &t.bb, 2 * NB, &st), &st);
    static float x[2 * NB * N * C], f[2 * NB * N * D], logits[2 * NB * N * V], p[NB * N * V];
    float scratch[DD2_SAMPLING_SCRATCH(V)];
    int yy[2 * NB];
    for (int b = 0; b < NB; b++) {
        yy[b] = ys[b], yy[NB + b] = K;
        for (int i = 0; i < N; i++) {
            const float *src = (i < P0 && !snap) ? q + (b * N + i) * C : tc.cb.c + few[b * N + i] * C;
            memcpy(x + (b * N + i) * C, src, C * sizeof(float));
            memcpy(x + ((NB + b) * N + i) * C, src, C * sizeof(float));
        }
    }
    dd2_backbone_forward(&t.bb, tp, &ba, x, yy, 2 * NB, f);
    dd2_logits_forward(&t.head, tp, f, 2 * NB * N, logits);
    dd2_teacher_probs(p, logits, logits + NB * N * V, NB * N, V, &s, scratch);
    int prefix_bad = 0, drawn_bad = 0, differs_from_one = 0;
    for (int b = 0; b < NB; b++)
        for (int i = 0; i < N; i++) {
            if (i < P0) {
                prefix_bad += few[b * N + i] != one[b * N + i];
                continue;
            }
            dd2_rng rr;
            dd2_rng_init(&rr, seed, DD2_RNG_SAMPLE, first + b, (uint64_t)i);
            drawn_bad += few[b * N + i] != dd2_sample_categorical(p + (b * N + i) * V, V, dd2_rng_uniform(&rr));
            differs_from_one += few[b * N + i] != one[b * N + i];
        }
    printf("  few-step (snap %d): %d of %d teacher tokens differ from the one-step ones\n", snap, differs_from_one,
           NB * (k - 1));
    CHECK_MSG(prefix_bad == 0, "%d prefix tokens differ from the one-step tokens", prefix_bad);
    CHECK_MSG(drawn_bad == 0, "%d teacher tokens are not the draws from the teacher's p", drawn_bad);
    CHECK(dd2_fewstep_sample(&tc.net, tc.params, &gw, &t, tp, &s, N + 1, snap, ys, NB, seed, first, again, &st) ==
          DD2_ERR_INPUT);
    dd2_backbone_acts_free(&ba);
    dd2_ardiff_work_free(&gw);
    dd2_teacher_free(&t);
    free(tp);
    tiny_free(&tc);
}

TEST(fewstep_snap) { check_fewstep(1); }
TEST(fewstep_continuous_prefix) { check_fewstep(0); }

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(sid_gradient_alpha1);
    RUN(sid_gradient_alpha06);
    RUN(dmd_gradient_alpha1);
    RUN(dmd_gradient_alpha06);
    RUN(sid_gradient_omega_per_position);
    RUN(dmd_gradient_omega_per_position);
    RUN(sid_gradient_omega_per_point);
    RUN(dmd_gradient_omega_per_point);
    RUN(sid_gradient_t_shared);
    RUN(omega_in_positions);
    RUN(dmd_is_sid_without_jacobians_alpha1);
    RUN(dmd_is_sid_without_jacobians_alpha06);
    RUN(guidance_loss_hand_computed);
    RUN(generator_forward_hand_set);
    RUN(generator_forward_backward_random);
    RUN(grown_generator_same_function);
    RUN(noise_and_classes_independent_of_split);
    RUN(fewstep_snap);
    RUN(fewstep_continuous_prefix);
    return test_summary();
}
