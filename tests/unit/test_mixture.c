/* The teacher's closed-form posterior (method.md §3) against brute force in double:
 * score = finite-difference gradient of log p_t(x), μ and Cov against direct sums, the Jacobian
 * against finite differences of μ, across t in [0.02, 0.98]; and the GTS identity
 * E[g(x_t) v_Φ(x_t)] = E[g(x_t) (ε − q)] by Monte Carlo. */
#include <math.h>

#include "core/rng.h"
#include "model/mixture.h"
#include "model/sampling.h"
#include "test_util.h"

enum { V = 9, C = 3 };
static float g_code[V * C], g_p[V];

static void setup(void) {
    dd2_rng r;
    dd2_rng_init(&r, 11, DD2_RNG_TEST, 0, 0);
    dd2_rng_fill_uniform(&r, g_code, V * C, -1.0f, 1.0f);
    double s = 0;
    for (int v = 0; v < V; v++) s += (g_p[v] = (v == 4) ? 0.0f : 0.05f + dd2_rng_uniform_f(&r)); /* code 4: p = 0 */
    for (int v = 0; v < V; v++) g_p[v] = (float)(g_p[v] / s);
}

/* log p_t(x) = log Σ_v p_v N(x; (1−t)c_v, t² I), in double */
static double log_pt(const double *x, double t) {
    double terms[V], mx = -INFINITY;
    for (int v = 0; v < V; v++) {
        if (g_p[v] == 0) {
            terms[v] = -INFINITY;
            continue;
        }
        double d2 = 0;
        for (int c = 0; c < C; c++) {
            double d = x[c] - (1 - t) * g_code[v * C + c];
            d2 += d * d;
        }
        terms[v] = log((double)g_p[v]) - d2 / (2 * t * t) - C * log(t) - 0.5 * C * log(2 * M_PI);
        if (terms[v] > mx) mx = terms[v];
    }
    double s = 0;
    for (int v = 0; v < V; v++) s += exp(terms[v] - mx);
    return mx + log(s);
}

/* posterior mean and covariance by direct sums in double */
static void brute_mu_cov(const double *x, double t, double *mu, double *cov) {
    double a[V], mx = -INFINITY, w[V], s = 0;
    for (int v = 0; v < V; v++) {
        double d2 = 0;
        for (int c = 0; c < C; c++) {
            double d = x[c] - (1 - t) * g_code[v * C + c];
            d2 += d * d;
        }
        a[v] = g_p[v] > 0 ? log((double)g_p[v]) - d2 / (2 * t * t) : -INFINITY;
        if (a[v] > mx) mx = a[v];
    }
    for (int v = 0; v < V; v++) s += (w[v] = exp(a[v] - mx));
    for (int c = 0; c < C; c++) mu[c] = 0;
    for (int v = 0; v < V; v++)
        for (int c = 0; c < C; c++) mu[c] += w[v] / s * g_code[v * C + c];
    for (int i = 0; i < C * C; i++) cov[i] = 0;
    for (int v = 0; v < V; v++)
        for (int c1 = 0; c1 < C; c1++)
            for (int c2 = 0; c2 < C; c2++)
                cov[c1 * C + c2] += w[v] / s * (g_code[v * C + c1] - mu[c1]) * (g_code[v * C + c2] - mu[c2]);
}

static const double T_LIST[] = {0.02, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98};
enum { NT = sizeof T_LIST / sizeof T_LIST[0], NX = 6 };

TEST(posterior_vs_brute_force) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_mixture mx;
    CHECK_OK(dd2_mixture_init(&mx, g_code, V, C, &st), &st);
    float logp[V];
    dd2_mixture_logp(logp, g_p, 1, V);
    CHECK(isinf(logp[4]) && logp[4] < 0);
    dd2_rng r;
    dd2_rng_init(&r, 12, DD2_RNG_TEST, 0, 0);
    double worst_mu = 0, worst_cov = 0, worst_score = 0, worst_jac = 0;
    for (int it = 0; it < NT; it++) {
        const double t = T_LIST[it];
        float x[NX * C], tt[NX], mu[NX * C], cov[NX * C * C], s[NX * C];
        int row[NX] = {0};
        for (int j = 0; j < NX; j++) {
            /* points near the data manifold at this noise level: (1−t)c + t·ε */
            int v = (int)dd2_rng_below(&r, V);
            for (int c = 0; c < C; c++) x[j * C + c] = (float)((1 - t) * g_code[v * C + c] + t * dd2_rng_normal(&r));
            tt[j] = (float)t;
        }
        dd2_mixture_posterior(&mx, logp, row, x, tt, NX, mu, cov);
        dd2_mixture_velocity_score(x, tt, mu, NX, C, NULL, s);
        for (int j = 0; j < NX; j++) {
            double xd[C], bmu[C], bcov[C * C];
            for (int c = 0; c < C; c++) xd[c] = x[j * C + c];
            brute_mu_cov(xd, t, bmu, bcov);
            for (int c = 0; c < C; c++) worst_mu = fmax(worst_mu, fabs(mu[j * C + c] - bmu[c]));
            for (int i = 0; i < C * C; i++) worst_cov = fmax(worst_cov, fabs(cov[j * C * C + i] - bcov[i]));
            /* score vs central differences of log p_t, relative to the score's scale 1/t */
            for (int c = 0; c < C; c++) {
                double h = 1e-5 * t, xp[C], xm[C];
                for (int k = 0; k < C; k++) xp[k] = xm[k] = xd[k];
                xp[c] += h;
                xm[c] -= h;
                double fd = (log_pt(xp, t) - log_pt(xm, t)) / (2 * h);
                worst_score = fmax(worst_score, fabs(s[j * C + c] - fd) * t);
            }
            /* Jacobian: J e_c (from Cov) vs central differences of the brute-force μ */
            for (int c = 0; c < C; c++) {
                float e[C] = {0}, Je[C] = {0};
                e[c] = 1.0f;
                dd2_mixture_jt_apply(cov + j * C * C, tt + j, e, 1, C, Je);
                double h = 1e-6 * t, xp[C], xm[C], mp[C], mm[C], cp[C * C];
                for (int k = 0; k < C; k++) xp[k] = xm[k] = xd[k];
                xp[c] += h;
                xm[c] -= h;
                brute_mu_cov(xp, t, mp, cp);
                brute_mu_cov(xm, t, mm, cp);
                for (int k = 0; k < C; k++) worst_jac = fmax(worst_jac, fabs(Je[k] - (mp[k] - mm[k]) / (2 * h)) * t * t);
            }
        }
    }
    printf("  mixture: max |mu - brute| %.2e, |cov - brute| %.2e, t*|score - fd| %.2e, t^2*|J - fd| %.2e\n",
           worst_mu, worst_cov, worst_score, worst_jac);
    CHECK_MSG(worst_mu < 2e-5, "mu %.3g", worst_mu);
    CHECK_MSG(worst_cov < 2e-5, "cov %.3g", worst_cov);
    CHECK_MSG(worst_score < 2e-4, "score %.3g", worst_score);
    CHECK_MSG(worst_jac < 2e-4, "jacobian %.3g", worst_jac);
    dd2_mixture_free(&mx);
}

TEST(zero_probability_codes_get_no_weight) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_mixture mx;
    CHECK_OK(dd2_mixture_init(&mx, g_code, V, C, &st), &st);
    float logp[V], x[C], t = 0.02f, mu[C];
    int row = 0;
    dd2_mixture_logp(logp, g_p, 1, V);
    for (int c = 0; c < C; c++) x[c] = (1 - t) * g_code[4 * C + c]; /* exactly at the excluded code */
    dd2_mixture_posterior(&mx, logp, &row, x, &t, 1, mu, NULL);
    double d4 = 0;
    for (int c = 0; c < C; c++) d4 += fabs(mu[c] - g_code[4 * C + c]);
    CHECK_MSG(d4 > 1e-3, "mu collapsed onto a code with p = 0");
    for (int c = 0; c < C; c++) CHECK(isfinite(mu[c]));
    dd2_mixture_free(&mx);
}

/* Law of total expectation: E[g(x_t) v_Φ(x_t)] = E[g(x_t) (ε − q)] for q ~ p, ε ~ N(0, I). */
TEST(gts_target_is_the_expected_plain_target) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_mixture mx;
    CHECK_OK(dd2_mixture_init(&mx, g_code, V, C, &st), &st);
    enum { N = 200000 };
    float *x = malloc(N * C * sizeof(float)), *t = malloc(N * sizeof(float)), *plain = malloc(N * C * sizeof(float));
    float *mu = malloc(N * C * sizeof(float)), *v = malloc(N * C * sizeof(float));
    int *row = calloc(N, sizeof(int));
    float logp[V];
    dd2_mixture_logp(logp, g_p, 1, V);
    dd2_rng r;
    dd2_rng_init(&r, 13, DD2_RNG_TEST, 0, 0);
    for (int j = 0; j < N; j++) {
        t[j] = 0.02f + 0.96f * dd2_rng_uniform_f(&r);
        int q = dd2_sample_categorical(g_p, V, dd2_rng_uniform(&r));
        for (int c = 0; c < C; c++) {
            float e = (float)dd2_rng_normal(&r);
            x[j * C + c] = (1 - t[j]) * g_code[q * C + c] + t[j] * e;
            plain[j * C + c] = e - g_code[q * C + c];
        }
    }
    dd2_mixture_posterior(&mx, logp, row, x, t, N, mu, NULL);
    dd2_mixture_velocity_score(x, t, mu, N, C, v, NULL);
    /* d_j = g(x_j) (v_j − plain_j) has mean 0 for any g; check g = 1 and g = x_k, per component */
    double worst_z = 0;
    for (int g = 0; g <= C; g++)
        for (int c = 0; c < C; c++) {
            double m = 0, m2 = 0;
            for (int j = 0; j < N; j++) {
                double gj = g == 0 ? 1.0 : x[j * C + g - 1];
                double d = gj * ((double)v[j * C + c] - plain[j * C + c]);
                m += d;
                m2 += d * d;
            }
            m /= N;
            double se = sqrt((m2 / N - m * m) / N);
            worst_z = fmax(worst_z, fabs(m) / se);
        }
    printf("  GTS Monte Carlo: worst |mean| / standard error = %.2f over %d draws\n", worst_z, N);
    CHECK_MSG(worst_z < 5.0, "z = %.2f", worst_z);
    dd2_mixture_free(&mx);
    free(x), free(t), free(plain), free(mu), free(v), free(row);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    setup();
    RUN(posterior_vs_brute_force);
    RUN(zero_probability_codes_get_no_weight);
    RUN(gts_target_is_the_expected_plain_target);
    return test_summary();
}
