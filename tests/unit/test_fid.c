/* FID statistics, the Fréchet distance and the feature network (src/model/fid.h, featnet.h).
 *
 * Reference values: tests/data/fid_ref.h5 from tools/make_fid_reference.py (NumPy: np.cov and an
 * independent FID via the eigenvalues of the non-symmetric product Σa·Σb). Run from the
 * repository root. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "io/h5io.h"
#include "model/featnet.h"
#include "model/fid.h"
#include "test_util.h"
#include "test_files.h"

#define REF_FILE "tests/data/fid_ref.h5"

static const char *const CASES[] = {"d8", "d64", "sing"};
enum { NCASES = 3 };

/* One reference case: features a [na,D], b [nb,D] and NumPy's statistics and FID. */
typedef struct ref_case {
    int dim;
    int64_t na, nb;
    float *a, *b;
    double *mu_a, *mu_b, *sigma_a, *sigma_b;
    double fid;
} ref_case;

static void ref_free(ref_case *r) {
    free(r->a);
    free(r->b);
    free(r->mu_a);
    free(r->mu_b);
    free(r->sigma_a);
    free(r->sigma_b);
    memset(r, 0, sizeof *r);
}

static int read_ref(const char *name, ref_case *r, dd2_status *st) {
    memset(r, 0, sizeof *r);
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_open_read(REF_FILE, &h, st));
    char p[64];
    dd2_h5_shape sa, sb;
    int rc;
    snprintf(p, sizeof p, "%s/a", name);
    rc = dd2_h5_get_shape(h, p, &sa, st);
    snprintf(p, sizeof p, "%s/b", name);
    if (rc == DD2_OK) rc = dd2_h5_get_shape(h, p, &sb, st);
    if (rc == DD2_OK) {
        r->dim = (int)sa.dims[1];
        r->na = sa.dims[0];
        r->nb = sb.dims[0];
        size_t D = (size_t)r->dim;
        r->a = malloc((size_t)r->na * D * sizeof(float));
        r->b = malloc((size_t)r->nb * D * sizeof(float));
        r->mu_a = malloc(D * sizeof(double));
        r->mu_b = malloc(D * sizeof(double));
        r->sigma_a = malloc(D * D * sizeof(double));
        r->sigma_b = malloc(D * D * sizeof(double));
        const int64_t dv[1] = {r->dim}, dm[2] = {r->dim, r->dim};
        snprintf(p, sizeof p, "%s/a", name);
        rc = dd2_h5_read_f32(h, p, 2, sa.dims, r->a, st);
        snprintf(p, sizeof p, "%s/b", name);
        if (rc == DD2_OK) rc = dd2_h5_read_f32(h, p, 2, sb.dims, r->b, st);
        snprintf(p, sizeof p, "%s/mu_a", name);
        if (rc == DD2_OK) rc = dd2_h5_read_f64(h, p, 1, dv, r->mu_a, st);
        snprintf(p, sizeof p, "%s/mu_b", name);
        if (rc == DD2_OK) rc = dd2_h5_read_f64(h, p, 1, dv, r->mu_b, st);
        snprintf(p, sizeof p, "%s/sigma_a", name);
        if (rc == DD2_OK) rc = dd2_h5_read_f64(h, p, 2, dm, r->sigma_a, st);
        snprintf(p, sizeof p, "%s/sigma_b", name);
        if (rc == DD2_OK) rc = dd2_h5_read_f64(h, p, 2, dm, r->sigma_b, st);
        snprintf(p, sizeof p, "%s/fid", name);
        if (rc == DD2_OK) rc = dd2_h5_read_f64(h, p, 0, NULL, &r->fid, st);
    }
    dd2_h5_close(h, NULL);
    if (rc != DD2_OK) ref_free(r);
    return rc;
}

/* max |x - y| / max |y| */
static double rel_err(const double *x, const double *y, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs(x[i] - y[i]));
        den = fmax(den, fabs(y[i]));
    }
    return den > 0 ? num / den : num;
}

/* Statistics of float rows, added in uneven batches of `step` rows (exercises the merges). */
static int stats_of(const float *x, int64_t n, int dim, size_t step, const char *name, uint32_t ck,
                    dd2_fid_stats *out, dd2_status *st) {
    dd2_fid_acc acc;
    DD2_TRY(dd2_fid_acc_init(&acc, dim, st));
    int rc = DD2_OK;
    for (int64_t r = 0; r < n && rc == DD2_OK; r += (int64_t)step) {
        size_t m = (size_t)(n - r) < step ? (size_t)(n - r) : step;
        rc = dd2_fid_acc_add_f32(&acc, x + (size_t)r * (size_t)dim, m, st);
    }
    if (rc == DD2_OK) rc = dd2_fid_acc_finish(&acc, name, ck, out, st);
    dd2_fid_acc_free(&acc);
    return rc;
}

static double worst_mu = 0, worst_sigma = 0, worst_fid = 0;

TEST(stats_match_numpy) {
    dd2_status st;
    dd2_status_clear(&st);
    for (int c = 0; c < NCASES; c++) {
        ref_case r;
        CHECK_OK(read_ref(CASES[c], &r, &st), &st);
        if (!r.a) continue;
        const size_t steps[] = {1u << 20, 37, 1};
        for (int k = 0; k < 3; k++) {
            dd2_fid_stats sa, sb;
            CHECK_OK(stats_of(r.a, r.na, r.dim, steps[k], "x", 1, &sa, &st), &st);
            CHECK_OK(stats_of(r.b, r.nb, r.dim, steps[k], "x", 1, &sb, &st), &st);
            if (!sa.mu || !sb.mu) continue;
            size_t D = (size_t)r.dim;
            double emu = fmax(rel_err(sa.mu, r.mu_a, D), rel_err(sb.mu, r.mu_b, D));
            double esig = fmax(rel_err(sa.sigma, r.sigma_a, D * D), rel_err(sb.sigma, r.sigma_b, D * D));
            CHECK_MSG(emu <= 1e-10, "%s batch %zu: mu relative error %.3g", CASES[c], steps[k], emu);
            CHECK_MSG(esig <= 1e-10, "%s batch %zu: sigma relative error %.3g", CASES[c], steps[k], esig);
            CHECK(sa.n == r.na && sb.n == r.nb && sa.dim == r.dim);
            worst_mu = fmax(worst_mu, emu);
            worst_sigma = fmax(worst_sigma, esig);
            dd2_fid_stats_free(&sa);
            dd2_fid_stats_free(&sb);
        }
        ref_free(&r);
    }
    printf("  stats vs NumPy: max relative error mu %.3g, sigma %.3g\n", worst_mu, worst_sigma);
}

/* The f64 entry point and accumulator merging give the same statistics. */
TEST(acc_f64_and_merge) {
    dd2_status st;
    dd2_status_clear(&st);
    ref_case r;
    CHECK_OK(read_ref("d64", &r, &st), &st);
    if (!r.a) return;
    const size_t D = (size_t)r.dim, n = (size_t)r.na;
    double *x = malloc(n * D * sizeof(double));
    for (size_t i = 0; i < n * D; i++) x[i] = r.a[i];
    dd2_fid_acc a1, a2, whole;
    CHECK_OK(dd2_fid_acc_init(&a1, r.dim, &st), &st);
    CHECK_OK(dd2_fid_acc_init(&a2, r.dim, &st), &st);
    CHECK_OK(dd2_fid_acc_init(&whole, r.dim, &st), &st);
    CHECK_OK(dd2_fid_acc_add_f64(&a1, x, 70, &st), &st);
    CHECK_OK(dd2_fid_acc_add_f64(&a2, x + 70 * D, n - 70, &st), &st);
    CHECK_OK(dd2_fid_acc_merge(&a1, &a2, &st), &st);
    CHECK_OK(dd2_fid_acc_add_f64(&whole, x, n, &st), &st);
    dd2_fid_stats s1, s2;
    CHECK_OK(dd2_fid_acc_finish(&a1, "m", 7, &s1, &st), &st);
    CHECK_OK(dd2_fid_acc_finish(&whole, "w", 7, &s2, &st), &st);
    CHECK(s1.n == (int64_t)n);
    CHECK(rel_err(s1.mu, r.mu_a, D) <= 1e-10);
    CHECK(rel_err(s1.sigma, r.sigma_a, D * D) <= 1e-10);
    CHECK(rel_err(s2.sigma, r.sigma_a, D * D) <= 1e-10);
    CHECK(s1.extractor_checksum == 7 && strcmp(s1.extractor, "m") == 0);
    /* merging into an empty accumulator copies */
    dd2_fid_acc e;
    CHECK_OK(dd2_fid_acc_init(&e, r.dim, &st), &st);
    CHECK_OK(dd2_fid_acc_merge(&e, &whole, &st), &st);
    CHECK(e.n == whole.n && memcmp(e.mean, whole.mean, D * sizeof(double)) == 0);
    /* fewer than 2 samples, non-finite features, mismatched dimensions */
    dd2_fid_acc one;
    dd2_fid_stats s3;
    CHECK_OK(dd2_fid_acc_init(&one, r.dim, &st), &st);
    CHECK_OK(dd2_fid_acc_add_f64(&one, x, 1, &st), &st);
    CHECK(dd2_fid_acc_finish(&one, "o", 0, &s3, &st) == DD2_ERR_INPUT);
    x[5] = NAN;
    CHECK(dd2_fid_acc_add_f64(&one, x, 1, &st) != DD2_OK);
    dd2_fid_acc other;
    CHECK_OK(dd2_fid_acc_init(&other, r.dim + 1, &st), &st);
    CHECK(dd2_fid_acc_merge(&one, &other, &st) != DD2_OK);
    dd2_fid_acc_free(&other);
    dd2_fid_acc_free(&one);
    dd2_fid_acc_free(&e);
    dd2_fid_acc_free(&a1);
    dd2_fid_acc_free(&a2);
    dd2_fid_acc_free(&whole);
    dd2_fid_stats_free(&s1);
    dd2_fid_stats_free(&s2);
    free(x);
    ref_free(&r);
}

TEST(fid_matches_numpy) {
    dd2_status st;
    dd2_status_clear(&st);
    for (int c = 0; c < NCASES; c++) {
        ref_case r;
        CHECK_OK(read_ref(CASES[c], &r, &st), &st);
        if (!r.a) continue;
        /* from NumPy's statistics */
        double f = -1;
        CHECK_OK(dd2_fid_frechet(r.mu_a, r.sigma_a, r.mu_b, r.sigma_b, r.dim, &f, &st), &st);
        double e1 = fabs(f - r.fid) / r.fid;
        CHECK_MSG(e1 <= 1e-6, "%s: FID %.12g vs NumPy %.12g (relative %.3g)", CASES[c], f, r.fid, e1);
        /* from our statistics, through dd2_fid_distance */
        dd2_fid_stats sa, sb;
        CHECK_OK(stats_of(r.a, r.na, r.dim, 64, "x", 42, &sa, &st), &st);
        CHECK_OK(stats_of(r.b, r.nb, r.dim, 64, "x", 42, &sb, &st), &st);
        double g = -1;
        CHECK_OK(dd2_fid_distance(&sa, &sb, &g, &st), &st);
        double e2 = fabs(g - r.fid) / r.fid;
        CHECK_MSG(e2 <= 1e-6, "%s: FID of our statistics %.12g vs NumPy %.12g (relative %.3g)", CASES[c], g, r.fid,
                  e2);
        printf("  %s (D=%d): FID %.12g, NumPy %.12g, relative errors %.3g / %.3g\n", CASES[c], r.dim, f, r.fid, e1,
               e2);
        worst_fid = fmax(worst_fid, fmax(e1, e2));
        dd2_fid_stats_free(&sa);
        dd2_fid_stats_free(&sb);
        ref_free(&r);
    }
}

TEST(fid_self_zero_and_symmetric) {
    dd2_status st;
    dd2_status_clear(&st);
    for (int c = 0; c < NCASES; c++) {
        ref_case r;
        CHECK_OK(read_ref(CASES[c], &r, &st), &st);
        if (!r.a) continue;
        double faa = -1, fbb = -1, fab = -1, fba = -1;
        CHECK_OK(dd2_fid_frechet(r.mu_a, r.sigma_a, r.mu_a, r.sigma_a, r.dim, &faa, &st), &st);
        CHECK_OK(dd2_fid_frechet(r.mu_b, r.sigma_b, r.mu_b, r.sigma_b, r.dim, &fbb, &st), &st);
        CHECK_MSG(faa >= 0 && faa <= 1e-9, "%s: FID(a,a) = %.3g", CASES[c], faa);
        CHECK_MSG(fbb >= 0 && fbb <= 1e-9, "%s: FID(b,b) = %.3g", CASES[c], fbb);
        CHECK_OK(dd2_fid_frechet(r.mu_a, r.sigma_a, r.mu_b, r.sigma_b, r.dim, &fab, &st), &st);
        CHECK_OK(dd2_fid_frechet(r.mu_b, r.sigma_b, r.mu_a, r.sigma_a, r.dim, &fba, &st), &st);
        /* well-conditioned cases agree to round-off; the nearly singular one (eigenvalues ~1e-11
         * and exact zeros, whose square roots carry ~sqrt(eps) errors) to ~1e-9 */
        const double tol = strcmp(CASES[c], "sing") == 0 ? 1e-7 : 1e-12;
        CHECK_MSG(fabs(fab - fba) <= tol * fab, "%s: FID(a,b) %.15g vs FID(b,a) %.15g", CASES[c], fab, fba);
        printf("  %s: FID(a,a) %.3g, FID(b,b) %.3g, |FID(a,b) - FID(b,a)| / FID %.3g\n", CASES[c], faa, fbb,
               fabs(fab - fba) / fab);
        ref_free(&r);
    }
}

/* Hand-computable cases: for commuting covariances FID = |Δμ|² + Σ (sqrt(a_i) - sqrt(b_i))². */
TEST(fid_hand_cases) {
    dd2_status st;
    dd2_status_clear(&st);
    /* 1-D: N(0, 4) vs N(3, 1): 9 + (2 - 1)² = 10 */
    double m1 = 0, s1 = 4, m2 = 3, s2 = 1, f = -1;
    CHECK_OK(dd2_fid_frechet(&m1, &s1, &m2, &s2, 1, &f, &st), &st);
    CHECK_NEAR(f, 10.0, 1e-12);
    /* diagonal, D = 3: 1 + 0 + 4 + 1 + 1 + 6.25 = 13.25 */
    double mu1[3] = {0, 1, 2}, mu2[3] = {1, 1, 0};
    double S1[9] = {1, 0, 0, 0, 4, 0, 0, 0, 9}, S2[9] = {4, 0, 0, 0, 1, 0, 0, 0, 0.25};
    CHECK_OK(dd2_fid_frechet(mu1, S1, mu2, S2, 3, &f, &st), &st);
    CHECK_NEAR(f, 13.25, 1e-12);
    /* the same rotated by an orthogonal Q (Q S Qᵀ, Q μ): FID is invariant */
    const double c = cos(0.7), s = sin(0.7), c2 = cos(-1.3), s2r = sin(-1.3);
    double R1[9] = {c, -s, 0, s, c, 0, 0, 0, 1}, R2[9] = {1, 0, 0, 0, c2, -s2r, 0, s2r, c2}, Q[9] = {0};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 3; k++) Q[i * 3 + j] += R1[i * 3 + k] * R2[k * 3 + j];
    double T1[9] = {0}, T2[9] = {0}, q1[3] = {0}, q2[3] = {0};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            q1[i] += Q[i * 3 + j] * mu1[j];
            q2[i] += Q[i * 3 + j] * mu2[j];
            for (int k = 0; k < 3; k++)
                for (int l = 0; l < 3; l++) {
                    T1[i * 3 + j] += Q[i * 3 + k] * S1[k * 3 + l] * Q[j * 3 + l];
                    T2[i * 3 + j] += Q[i * 3 + k] * S2[k * 3 + l] * Q[j * 3 + l];
                }
        }
    for (int i = 0; i < 3; i++) /* make exactly symmetric */
        for (int j = i + 1; j < 3; j++) {
            T1[j * 3 + i] = T1[i * 3 + j];
            T2[j * 3 + i] = T2[i * 3 + j];
        }
    CHECK_OK(dd2_fid_frechet(q1, T1, q2, T2, 3, &f, &st), &st);
    CHECK_NEAR(f, 13.25, 1e-11);
    /* a zero covariance on one side: FID = |Δμ|² + Tr(Σ) */
    double Z[9] = {0};
    CHECK_OK(dd2_fid_frechet(mu1, Z, mu1, S1, 3, &f, &st), &st);
    CHECK_NEAR(f, 14.0, 1e-12);
    CHECK_OK(dd2_fid_frechet(mu1, S1, mu1, Z, 3, &f, &st), &st);
    CHECK_NEAR(f, 14.0, 1e-12);
    /* a slightly negative eigenvalue (round-off) of sigma1 is clamped to 0: sigma1^1/2 = diag(1, 0),
     * M = diag(1, 0), FID = Tr(S1) + Tr(S2) - 2 = 1 - 1e-6 (sqrt(|λ|) would give 1 - 1e-6 - 2e-3) */
    double zm[2] = {0, 0}, N1[4] = {1, 0, 0, -1e-6}, I2[4] = {1, 0, 0, 1};
    CHECK_OK(dd2_fid_frechet(zm, N1, zm, I2, 2, &f, &st), &st);
    CHECK_NEAR(f, 1.0 - 1e-6, 1e-12);
    /* clearly indefinite input gives a negative FID: an error, not a clamped 0 */
    double N2[4] = {1, 0, 0, -5};
    f = 123;
    CHECK(dd2_fid_frechet(zm, N2, zm, I2, 2, &f, &st) == DD2_ERR_INPUT);
    CHECK(f == 123);
    /* non-finite input is an error */
    double bad = NAN;
    CHECK(dd2_fid_frechet(&bad, &s1, &m2, &s2, 1, &f, &st) == DD2_ERR_INPUT);
}

static int make_stats(int dim, const char *name, uint32_t ck, dd2_fid_stats *s, dd2_status *st) {
    DD2_TRY(dd2_fid_stats_alloc(s, dim, st));
    for (int i = 0; i < dim; i++) {
        s->mu[i] = 0.25 * i - 1.0 / 3.0;
        for (int j = 0; j < dim; j++) s->sigma[i * dim + j] = (i == j ? 2.0 : 0.0) + 1.0 / (1.0 + i + j);
    }
    s->n = 1234;
    snprintf(s->extractor, sizeof s->extractor, "%s", name);
    s->extractor_checksum = ck;
    return DD2_OK;
}

TEST(extractor_checksum_mismatch) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_fid_stats a, b, c;
    CHECK_OK(make_stats(4, "netA", 0x11111111u, &a, &st), &st);
    CHECK_OK(make_stats(4, "netB", 0x22222222u, &b, &st), &st);
    CHECK_OK(make_stats(5, "netA", 0x11111111u, &c, &st), &st);
    double f = 123;
    int rc = dd2_fid_distance(&a, &b, &f, &st);
    CHECK(rc == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "different feature extractors") && strstr(st.msg, "netA") && strstr(st.msg, "0x22222222"),
              "message: %s", st.msg);
    CHECK(f == 123);
    CHECK(dd2_fid_distance(&a, &c, &f, &st) == DD2_ERR_INPUT);
    CHECK_OK(dd2_fid_distance(&a, &a, &f, &st), &st);
    CHECK(f >= 0 && f <= 1e-12);
    dd2_fid_stats_free(&a);
    dd2_fid_stats_free(&b);
    dd2_fid_stats_free(&c);
}

TEST(stats_save_load) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_fid_stats a, b;
    CHECK_OK(make_stats(6, "mlp784-512-128-10-gelu", 0xdeadbeefu, &a, &st), &st);
    snprintf(a.source, sizeof a.source, "test: somewhere (1234 images)");
    const char *p = tf_path("stats.h5");
    CHECK_OK(dd2_fid_stats_save(p, &a, &st), &st);
    CHECK_OK(dd2_fid_stats_load(p, &b, &st), &st);
    CHECK(b.dim == 6 && b.n == 1234 && b.extractor_checksum == 0xdeadbeefu);
    CHECK_STREQ(b.extractor, "mlp784-512-128-10-gelu");
    CHECK_STREQ(b.source, "test: somewhere (1234 images)");
    CHECK(b.mu && memcmp(a.mu, b.mu, 6 * sizeof(double)) == 0);
    CHECK(b.sigma && memcmp(a.sigma, b.sigma, 36 * sizeof(double)) == 0);
    double f = -1;
    CHECK_OK(dd2_fid_distance(&a, &b, &f, &st), &st);
    CHECK(f >= 0 && f <= 1e-12);
    dd2_fid_stats_free(&b);
    /* a missing file, and a file that is not statistics */
    CHECK(dd2_fid_stats_load(tf_path("missing.h5"), &b, &st) == DD2_ERR_INPUT);
    CHECK(b.mu == NULL);
    CHECK(dd2_fid_stats_load(REF_FILE, &b, &st) == DD2_ERR_INPUT);
    CHECK(b.mu == NULL);
    dd2_fid_stats_free(&a);
}

/* Gaussian blobs in `in` dimensions: class 0 around -0.4·u, class 1 around +0.4·u, u = ±1. */
static void blobs(float *x, uint8_t *y, size_t n, int in, uint64_t index) {
    dd2_rng r, ru;
    dd2_rng_init(&ru, 5, DD2_RNG_TEST, 0, 0);
    float u[64];
    for (int k = 0; k < in; k++) u[k] = (dd2_rng_u32(&ru) & 1) ? 1.0f : -1.0f;
    dd2_rng_init(&r, 5, DD2_RNG_TEST, index, 1);
    for (size_t i = 0; i < n; i++) {
        y[i] = (uint8_t)(dd2_rng_u32(&r) & 1);
        for (int k = 0; k < in; k++)
            x[i * in + k] = (y[i] ? 0.4f : -0.4f) * u[k] + 0.5f * (float)dd2_rng_normal(&r);
    }
}

TEST(featnet_trains_two_classes) {
    dd2_status st;
    dd2_status_clear(&st);
    enum { IN = 16, NTR = 1024, NTE = 512 };
    float *xtr = malloc(NTR * IN * sizeof(float)), *xte = malloc(NTE * IN * sizeof(float));
    uint8_t ytr[NTR], yte[NTE];
    blobs(xtr, ytr, NTR, IN, 1);
    blobs(xte, yte, NTE, IN, 2);
    dd2_featnet net, net2;
    CHECK_OK(dd2_featnet_init(&net, IN, 32, 8, 2, 3, &st), &st);
    CHECK_OK(dd2_featnet_init(&net2, IN, 32, 8, 2, 3, &st), &st);
    CHECK(net.checksum == net2.checksum && net.checksum == dd2_featnet_compute_checksum(&net));
    dd2_featnet_data tr = {NULL, xtr, ytr, NTR}, te = {NULL, xte, yte, NTE};
    double acc0 = 0, acc = 0, loss = 0;
    CHECK_OK(dd2_featnet_accuracy(&net, &te, &acc0, &st), &st);
    dd2_featnet_train_opts o = {.epochs = 2, .batch = 32, .lr = 3e-3, .weight_decay = 1e-4, .seed = 9, .quiet = 1};
    CHECK_OK(dd2_featnet_train(&net, &tr, &o, &loss, &st), &st);
    CHECK_OK(dd2_featnet_accuracy(&net, &te, &acc, &st), &st);
    printf("  2-class blobs: test accuracy %.2f%% before, %.2f%% after 64 steps (loss %.4f)\n", 100 * acc0, 100 * acc,
           loss);
    CHECK_MSG(acc > 0.95, "accuracy %.4f", acc);
    CHECK(loss < 0.2);
    CHECK(net.train_n == NTR && net.train_epochs == 2 && net.train_batch == 32);
    /* deterministic: the same training gives bit-identical weights */
    CHECK_OK(dd2_featnet_train(&net2, &tr, &o, NULL, &st), &st);
    CHECK(net.checksum == net2.checksum && net.checksum == dd2_featnet_compute_checksum(&net));
    CHECK(memcmp(net.params, net2.params, net.tab.numel * sizeof(float)) == 0);
    /* a bad label is an input error */
    uint8_t bad[4] = {0, 1, 2, 0};
    dd2_featnet_data bd = {NULL, xtr, bad, 4};
    CHECK(dd2_featnet_accuracy(&net, &bd, &acc, &st) == DD2_ERR_INPUT);
    dd2_featnet_free(&net);
    dd2_featnet_free(&net2);
    free(xtr);
    free(xte);
}

/* Save/load of the network; statistics of images through it; checksum tampering. */
TEST(featnet_files_and_image_stats) {
    dd2_status st;
    dd2_status_clear(&st);
    enum { IN = 20, N = 300 };
    dd2_featnet net, back, other;
    CHECK_OK(dd2_featnet_init(&net, IN, 24, 6, 3, 11, &st), &st);
    CHECK_OK(dd2_featnet_init(&other, IN, 24, 6, 3, 12, &st), &st);
    CHECK(net.checksum != other.checksum);
    net.test_accuracy = 0.875;
    const char *p = tf_path("featnet.h5");
    CHECK_OK(dd2_featnet_save(&net, p, &st), &st);
    CHECK_OK(dd2_featnet_load(p, &back, &st), &st);
    CHECK(back.in_dim == IN && back.hidden == 24 && back.dim == 6 && back.classes == 3);
    CHECK(back.checksum == net.checksum && back.test_accuracy == 0.875);
    CHECK_STREQ(back.name, "mlp20-24-6-3-gelu");
    CHECK(back.params && memcmp(back.params, net.params, net.tab.numel * sizeof(float)) == 0);

    /* images: uint8 and the equivalent floats give the same statistics */
    uint8_t *img = malloc(N * IN);
    float *x = malloc(N * IN * sizeof(float));
    dd2_rng r;
    dd2_rng_init(&r, 1, DD2_RNG_TEST, 3, 0);
    for (size_t i = 0; i < (size_t)N * IN; i++) {
        img[i] = (uint8_t)dd2_rng_below(&r, 256);
        x[i] = dd2_featnet_pixel(img[i]);
    }
    CHECK(dd2_featnet_pixel(0) == -1.0f && dd2_featnet_pixel(255) == 1.0f);
    dd2_fid_stats su, sf, so;
    CHECK_OK(dd2_fid_stats_images_u8(&back, img, N, 7, &su, &st), &st);
    CHECK_OK(dd2_fid_stats_images_f32(&net, x, N, 0, &sf, &st), &st);
    CHECK(su.n == N && su.dim == 6 && su.extractor_checksum == net.checksum);
    CHECK_STREQ(su.extractor, net.name);
    /* float32 features: BLAS kernels may round differently for different batch shapes */
    if (su.mu && sf.mu) {
        CHECK(rel_err(su.mu, sf.mu, 6) <= 1e-5);
        CHECK(rel_err(su.sigma, sf.sigma, 36) <= 1e-5);
    }
    /* the streaming entry point agrees */
    dd2_fid_acc acc;
    dd2_fid_stats sa;
    CHECK_OK(dd2_fid_acc_init(&acc, 6, &st), &st);
    CHECK_OK(dd2_fid_acc_add_images_u8(&acc, &net, img, 100, &st), &st);
    CHECK_OK(dd2_fid_acc_add_images_f32(&acc, &net, x + 100 * IN, N - 100, &st), &st);
    CHECK_OK(dd2_fid_acc_finish(&acc, net.name, net.checksum, &sa, &st), &st);
    if (sa.mu && sf.mu) CHECK(rel_err(sa.sigma, sf.sigma, 36) <= 1e-5);
    double f = -1;
    CHECK_OK(dd2_fid_distance(&su, &sf, &f, &st), &st);
    CHECK(f >= 0 && f <= 1e-9);
    /* statistics from another network cannot be compared */
    CHECK_OK(dd2_fid_stats_images_u8(&other, img, N, 0, &so, &st), &st);
    CHECK(dd2_fid_distance(&su, &so, &f, &st) == DD2_ERR_INPUT);

    /* a file whose weights do not match its feature_extractor_checksum */
    dd2_h5 *h = NULL;
    const char *q = tf_path("tampered.h5");
    CHECK_OK(dd2_featnet_save(&net, q, &st), &st);
    CHECK_OK(dd2_h5_create(tf_path("t2.h5"), &h, &st), &st);
    if (h) {
        net.params[net.tab.t[0].offset] += 1.0f; /* change one weight, keep the old checksum */
        int64_t ck = (int64_t)net.checksum;
        for (int i = 0; i < net.tab.n; i++) {
            char name[128];
            snprintf(name, sizeof name, "params/%s", net.tab.t[i].name);
            CHECK_OK(dd2_h5_write_f32(h, name, net.tab.t[i].ndim, net.tab.t[i].shape,
                                      net.params + net.tab.t[i].offset, &st), &st);
        }
        dd2_h5_attr_set_str(h, NULL, "format", DD2_FEATNET_FORMAT, &st);
        dd2_h5_attr_set_i64(h, NULL, "in_dim", IN, &st);
        dd2_h5_attr_set_i64(h, NULL, "hidden", 24, &st);
        dd2_h5_attr_set_i64(h, NULL, "dim", 6, &st);
        dd2_h5_attr_set_i64(h, NULL, "classes", 3, &st);
        dd2_h5_attr_set_i64(h, NULL, "feature_extractor_checksum", ck, &st);
        CHECK_OK(dd2_h5_close(h, &st), &st);
        dd2_featnet bad;
        CHECK(dd2_featnet_load(tf_path("t2.h5"), &bad, &st) == DD2_ERR_INPUT);
        CHECK_MSG(strstr(st.msg, "checksum mismatch") != NULL, "message: %s", st.msg);
        CHECK(bad.params == NULL);
    }
    /* a stats file is not a network */
    CHECK_OK(dd2_fid_stats_save(tf_path("s.h5"), &su, &st), &st);
    dd2_featnet bad2;
    CHECK(dd2_featnet_load(tf_path("s.h5"), &bad2, &st) == DD2_ERR_INPUT);

    dd2_fid_acc_free(&acc);
    dd2_fid_stats_free(&sa);
    dd2_fid_stats_free(&su);
    dd2_fid_stats_free(&sf);
    dd2_fid_stats_free(&so);
    dd2_featnet_free(&net);
    dd2_featnet_free(&back);
    dd2_featnet_free(&other);
    free(img);
    free(x);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    tf_make_tmpdir("fid");
    RUN(stats_match_numpy);
    RUN(acc_f64_and_merge);
    RUN(fid_matches_numpy);
    RUN(fid_self_zero_and_symmetric);
    RUN(fid_hand_cases);
    RUN(extractor_checksum_mismatch);
    RUN(stats_save_load);
    RUN(featnet_trains_two_classes);
    RUN(featnet_files_and_image_stats);
    printf("  summary: stats vs NumPy max relative error mu %.3g, sigma %.3g; FID %.3g\n", worst_mu, worst_sigma,
           worst_fid);
    tf_remove_tmpdir();
    return test_summary();
}
