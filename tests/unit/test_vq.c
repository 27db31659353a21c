/* The patch tokenizer (model/vq.h): patch layout, nearest code against brute force, encode /
 * decode round trips, k-means (cluster recovery, monotone MSE, determinism, dead-code
 * re-seeding, the k-means++ sampling distribution), codebook files. */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"
#include "io/h5io.h"
#include "io/png_io.h"
#include "model/vq.h"
#include "test_files.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------------------------- */

/* Brute-force nearest: smallest Σ (x−c)² in double (plain loop), lowest index on ties. */
static int brute_nearest(const float *c, int V, int C, const float *x, double *best_d) {
    int best = -1;
    double bd = INFINITY;
    for (int v = 0; v < V; v++) {
        double s = 0;
        for (int j = 0; j < C; j++) {
            double d = (double)x[j] - c[(size_t)v * C + j];
            s += d * d;
        }
        if (s < bd) {
            bd = s;
            best = v;
        }
    }
    if (best_d) *best_d = bd;
    return best;
}

/* K well separated centres in C dims, m noisy points each, in interleaved order; truth [K·m]. */
static float *clustered_data(int K, int m, int C, float noise, uint64_t seed, int32_t *truth, float *centres) {
    dd2_rng r;
    dd2_rng_init(&r, seed, DD2_RNG_TEST, 1, 0);
    for (int k = 0; k < K * C; k++) centres[k] = (float)(3.0 * dd2_rng_normal(&r));
    float *x = malloc((size_t)K * m * C * sizeof(float));
    for (int i = 0; i < K * m; i++) {
        int k = i % K;
        truth[i] = k;
        for (int j = 0; j < C; j++) x[(size_t)i * C + j] = centres[k * C + j] + noise * (float)dd2_rng_normal(&r);
    }
    return x;
}

typedef struct mse_log {
    int n;
    double mse[64];
    int dead[64], reseeded[64];
} mse_log;

static int log_iter(void *ctx, const dd2_kmeans_iter_info *in, dd2_status *st) {
    (void)st;
    mse_log *l = ctx;
    if (l->n < 64) {
        l->mse[l->n] = in->mse;
        l->dead[l->n] = in->dead;
        l->reseeded[l->n] = in->reseeded;
        l->n++;
    }
    return 0;
}

static dd2_kmeans_opts opts_for(int V, int iters, dd2_kmeans_init init, uint64_t seed) {
    dd2_kmeans_opts o = {.codes = V, .iters = iters, .init = init, .seed = seed, .comm = MPI_COMM_NULL};
    return o;
}

/* ---- patch layout -------------------------------------------------------------------------- */

TEST(geometry) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_vq_geom g;
    CHECK_OK(dd2_vq_geom_init(&g, 28, 1, 4, &st), &st);
    CHECK(g.gh == 7 && g.gw == 7 && g.n_tokens == 49 && g.dim == 16);
    CHECK_OK(dd2_vq_geom_init(&g, 28, 3, 7, &st), &st);
    CHECK(g.gh == 4 && g.n_tokens == 16 && g.dim == 147);
    CHECK(dd2_vq_geom_init(&g, 28, 1, 5, &st) == DD2_ERR_INPUT);
    CHECK(strstr(st.msg, "does not divide") != NULL);
    CHECK(dd2_vq_geom_init(&g, 28, 0, 4, &st) == DD2_ERR_INPUT);
}

TEST(patch_layout) {
    dd2_status st;
    dd2_status_clear(&st);
    /* 8x8 image, pixel (r, c) = 8r + c; 4x4 patches: tokens 0 1 / 2 3 */
    dd2_vq_geom g;
    CHECK_OK(dd2_vq_geom_init(&g, 8, 1, 4, &st), &st);
    uint8_t img[64];
    for (int i = 0; i < 64; i++) img[i] = (uint8_t)i;
    float p[4 * 16];
    dd2_vq_patches_from_u8(&g, img, 1, p);
    for (int t = 0; t < 4; t++)
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 4; b++) {
                int row = (t / 2) * 4 + a, col = (t % 2) * 4 + b;
                float want = (float)(8 * row + col) / 127.5f - 1.0f;
                CHECK_MSG(p[t * 16 + a * 4 + b] == want, "token %d elem (%d,%d)", t, a, b);
            }
    /* explicit spot checks: token 1 starts at pixel (0,4); token 2 at (4,0); token 3 ends at (7,7) */
    CHECK(p[1 * 16 + 0] == 4.0f / 127.5f - 1.0f);
    CHECK(p[2 * 16 + 0] == 32.0f / 127.5f - 1.0f);
    CHECK(p[3 * 16 + 15] == 63.0f / 127.5f - 1.0f);
    CHECK(p[0] == -1.0f); /* 0 -> -1 */
    uint8_t white = 255;
    float pw;
    dd2_vq_geom g1;
    CHECK_OK(dd2_vq_geom_init(&g1, 1, 1, 1, &st), &st);
    dd2_vq_patches_from_u8(&g1, &white, 1, &pw);
    CHECK(pw == 1.0f);

    /* inverse */
    float back[64], imgf[64];
    dd2_vq_images_from_patches(&g, p, 1, back);
    for (int i = 0; i < 64; i++) imgf[i] = (float)i / 127.5f - 1.0f;
    CHECK(memcmp(back, imgf, sizeof back) == 0);

    /* two images, two interleaved channels: element (i·p + j)·ch + k */
    dd2_vq_geom g2;
    CHECK_OK(dd2_vq_geom_init(&g2, 4, 2, 2, &st), &st);
    float im2[2 * 4 * 4 * 2], p2[2 * 4 * 8], back2[2 * 4 * 4 * 2];
    for (int i = 0; i < 64; i++) im2[i] = (float)i;
    dd2_vq_patches_from_f32(&g2, im2, 2, p2);
    /* image 1, token 3 (row 1, col 1), element (1,0) channel 1 = pixel (3, 2) channel 1 */
    CHECK(p2[(1 * 4 + 3) * 8 + (1 * 2 + 0) * 2 + 1] == im2[32 + (3 * 4 + 2) * 2 + 1]);
    dd2_vq_images_from_patches(&g2, p2, 2, back2);
    CHECK(memcmp(back2, im2, sizeof im2) == 0);
}

/* ---- nearest code -------------------------------------------------------------------------- */

TEST(snap_matches_brute_force) {
    dd2_status st;
    dd2_status_clear(&st);
    const int shapes[][3] = {{300, 16, 2000}, {37, 3, 1000}, {1000, 5, 700}, {1, 4, 10}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int V = shapes[s][0], C = shapes[s][1], N = shapes[s][2];
        dd2_rng r;
        dd2_rng_init(&r, 7, DD2_RNG_TEST, 2, s);
        float *c = malloc((size_t)V * C * sizeof(float)), *x = malloc((size_t)N * C * sizeof(float));
        dd2_rng_fill_uniform(&r, c, (size_t)V * C, -1, 1);
        dd2_rng_fill_uniform(&r, x, (size_t)N * C, -1.2f, 1.2f);
        /* exact copies of codes, midpoints of two codes (near ties), duplicate codes */
        for (int i = 0; i < N / 4; i++) {
            int a = (int)dd2_rng_below(&r, (uint32_t)V), b = (int)dd2_rng_below(&r, (uint32_t)V);
            for (int j = 0; j < C; j++)
                x[(size_t)i * C + j] = i % 2 ? c[(size_t)a * C + j] : 0.5f * (c[(size_t)a * C + j] + c[(size_t)b * C + j]);
        }
        if (V > 10) memcpy(c + 5 * C, c + 9 * C, (size_t)C * sizeof(float)); /* code 9 = code 5 */
        dd2_vq_codebook cb;
        CHECK_OK(dd2_vq_codebook_init(&cb, V, C, c, &st), &st);
        int32_t *idx = malloc((size_t)N * sizeof(int32_t));
        double *d2 = malloc((size_t)N * sizeof(double));
        CHECK_OK(dd2_vq_nearest(&cb, x, (size_t)N, idx, d2, &st), &st);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            double bd;
            int want = brute_nearest(c, V, C, x + (size_t)i * C, &bd);
            /* the same code, or (only for exactly equal codes / distances) an equally near one */
            if (idx[i] != want && fabs(d2[i] - bd) > 0) bad++;
            if (fabs(d2[i] - bd) > 1e-12 * (1 + bd)) bad++;
            if (V > 10 && idx[i] == 9) bad++; /* a duplicate never wins over the lower index */
        }
        CHECK_MSG(bad == 0, "V=%d C=%d: %d rows differ from brute force", V, C, bad);
        /* lookup = the code vectors */
        float *q = malloc((size_t)N * C * sizeof(float));
        CHECK_OK(dd2_vq_lookup(&cb, idx, (size_t)N, q, &st), &st);
        CHECK(memcmp(q, c + (size_t)idx[0] * C, (size_t)C * sizeof(float)) == 0);
        free(q);
        free(c);
        free(x);
        free(idx);
        free(d2);
        dd2_vq_codebook_free(&cb);
    }
    /* a non-finite row is an error naming the row */
    dd2_vq_codebook cb;
    float c2[4] = {0, 0, 1, 1}, xs[6] = {0, 0, 1, 1, NAN, 0};
    int32_t id[3];
    CHECK_OK(dd2_vq_codebook_init(&cb, 2, 2, c2, &st), &st);
    CHECK(dd2_vq_nearest(&cb, xs, 3, id, NULL, &st) == DD2_ERR_RUNTIME);
    CHECK(strstr(st.msg, "row 2") != NULL);
    dd2_vq_codebook_free(&cb);
}

/* ---- encode / decode ----------------------------------------------------------------------- */

TEST(encode_decode_round_trip) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_vq_geom g;
    CHECK_OK(dd2_vq_geom_init(&g, 28, 1, 4, &st), &st);
    const int V = 64, N = 5, T = g.n_tokens, C = g.dim;
    /* codes with values on the uint8 grid, all distinct */
    dd2_rng r;
    dd2_rng_init(&r, 3, DD2_RNG_TEST, 3, 0);
    uint8_t *cu = malloc((size_t)V * C);
    float *c = malloc((size_t)V * C * sizeof(float));
    for (int i = 0; i < V * C; i++) {
        cu[i] = (uint8_t)dd2_rng_below(&r, 256);
        c[i] = (float)cu[i] / 127.5f - 1.0f;
    }
    dd2_vq_codebook cb;
    CHECK_OK(dd2_vq_codebook_init(&cb, V, C, c, &st), &st);
    int32_t *tok = malloc((size_t)N * T * sizeof(int32_t)), *enc = malloc((size_t)N * T * sizeof(int32_t));
    for (int i = 0; i < N * T; i++) tok[i] = (int32_t)dd2_rng_below(&r, V);
    /* images made of codebook patches: float (decode) and uint8 */
    float *img = malloc((size_t)N * 28 * 28 * sizeof(float)), *img2 = malloc((size_t)N * 28 * 28 * sizeof(float));
    uint8_t *imu = malloc((size_t)N * 28 * 28), *imu2 = malloc((size_t)N * 28 * 28);
    CHECK_OK(dd2_vq_decode_f32(&cb, &g, tok, N, img, &st), &st);
    CHECK_OK(dd2_vq_decode_u8(&cb, &g, tok, N, imu, &st), &st);
    /* the uint8 decoding is the uint8 code values placed in the image */
    int bad = 0;
    for (int i = 0; i < N * 28 * 28; i++) bad += dd2_png_unit_to_u8(img[i]) != imu[i];
    CHECK_MSG(bad == 0, "%d uint8 pixels differ from the float decoding", bad);
    double sse = -1;
    CHECK_OK(dd2_vq_encode_f32(&cb, &g, img, N, enc, &sse, &st), &st);
    CHECK(memcmp(enc, tok, (size_t)N * T * sizeof(int32_t)) == 0);
    CHECK(sse == 0);
    CHECK_OK(dd2_vq_decode_f32(&cb, &g, enc, N, img2, &st), &st);
    CHECK(memcmp(img, img2, (size_t)N * 28 * 28 * sizeof(float)) == 0);
    /* the uint8 path: encode the uint8 image, decode to uint8, get it back exactly */
    memset(enc, 0xff, (size_t)N * T * sizeof(int32_t));
    CHECK_OK(dd2_vq_encode_u8(&cb, &g, imu, N, enc, &sse, &st), &st);
    CHECK(memcmp(enc, tok, (size_t)N * T * sizeof(int32_t)) == 0);
    CHECK(sse == 0);
    CHECK_OK(dd2_vq_decode_u8(&cb, &g, enc, N, imu2, &st), &st);
    CHECK(memcmp(imu, imu2, (size_t)N * 28 * 28) == 0);
    double mse = -1;
    CHECK_OK(dd2_vq_recon_mse_u8(&cb, &g, imu, N, &mse, &st), &st);
    CHECK(mse == 0);
    /* a perturbed image: MSE = mean squared difference to its decoding */
    for (int i = 0; i < N * 28 * 28; i += 7) img[i] += 0.01f;
    CHECK_OK(dd2_vq_encode_f32(&cb, &g, img, N, enc, &sse, &st), &st);
    CHECK_OK(dd2_vq_decode_f32(&cb, &g, enc, N, img2, &st), &st);
    CHECK_NEAR(sse / ((double)N * 28 * 28), dd2_vq_mse(img, img2, (size_t)N * 28 * 28), 1e-12);
    /* bad token, bad geometry */
    tok[3 * T + 5] = V;
    CHECK(dd2_vq_decode_f32(&cb, &g, tok, N, img, &st) == DD2_ERR_INPUT);
    CHECK(strstr(st.msg, "image 3, token 5") != NULL);
    dd2_vq_geom g7;
    CHECK_OK(dd2_vq_geom_init(&g7, 28, 1, 7, &st), &st);
    CHECK(dd2_vq_encode_f32(&cb, &g7, img, N, enc, NULL, &st) == DD2_ERR_INPUT);
    free(cu);
    free(c);
    free(tok);
    free(enc);
    free(img);
    free(img2);
    free(imu);
    free(imu2);
    dd2_vq_codebook_free(&cb);
}

TEST(usage_and_perplexity) {
    int32_t idx[8] = {0, 1, 2, 3, 0, 1, 2, 3};
    int64_t counts[6];
    int used = 0;
    double ppl = 0;
    dd2_vq_usage(idx, 8, 6, counts, &used, &ppl);
    CHECK(used == 4);
    CHECK_NEAR(ppl, 4.0, 1e-12);
    CHECK(counts[0] == 2 && counts[4] == 0);
    int32_t one[3] = {5, 5, 5};
    dd2_vq_usage(one, 3, 6, NULL, &used, &ppl);
    CHECK(used == 1);
    CHECK_NEAR(ppl, 1.0, 1e-12);
}

/* ---- k-means ------------------------------------------------------------------------------- */

TEST(kmeans_recovers_clusters) {
    dd2_status st;
    dd2_status_clear(&st);
    const int K = 8, m = 500, C = 16, N = K * m;
    int32_t *truth = malloc((size_t)N * sizeof(int32_t)), *a = malloc((size_t)N * sizeof(int32_t));
    float centres[8 * 16];
    float *x = clustered_data(K, m, C, 0.1f, 11, truth, centres);
    for (int init = 0; init < 2; init++) {
        dd2_vq_codebook cb;
        CHECK_OK(dd2_vq_codebook_init(&cb, K, C, NULL, &st), &st);
        mse_log lg = {0};
        dd2_kmeans_opts o = opts_for(K, 10, init ? DD2_KMEANS_INIT_RANDOM : DD2_KMEANS_INIT_PP, 5);
        o.on_iter = log_iter;
        o.on_iter_ctx = &lg;
        dd2_kmeans_result res;
        CHECK_OK(dd2_kmeans(x, N, &o, &cb, a, &res, &st), &st);
        /* purity: every true cluster maps to one code, distinct clusters to distinct codes */
        int map[8], pure = 0, distinct = 1;
        for (int k = 0; k < K; k++) map[k] = -1;
        for (int i = 0; i < N; i++) {
            if (map[truth[i]] < 0) map[truth[i]] = a[i];
            pure += a[i] == map[truth[i]];
        }
        for (int k = 0; k < K; k++)
            for (int q = 0; q < k; q++) distinct &= map[k] != map[q];
        double purity = (double)pure / N;
        if (init == 0) {
            /* k-means++ finds them all */
            CHECK_MSG(purity == 1.0 && distinct, "purity %.4f, distinct %d", purity, distinct);
            CHECK_NEAR(res.mse, 0.01, 0.002); /* noise variance 0.1^2 per element */
            CHECK(res.used == K);
            CHECK(res.perplexity > K - 0.1);
        } else {
            CHECK_MSG(purity >= 0.99 || !distinct, "purity %.4f", purity);
        }
        /* MSE never increases (up to rounding of the float codes) */
        CHECK(lg.n == 10);
        for (int i = 1; i < lg.n; i++)
            CHECK_MSG(lg.mse[i] <= lg.mse[i - 1] * (1 + 1e-9) + 1e-15, "iter %d: %.12g > %.12g", i + 1, lg.mse[i],
                      lg.mse[i - 1]);
        CHECK(res.mse <= lg.mse[lg.n - 1] * (1 + 1e-9));
        CHECK_NEAR(res.mse_init, lg.mse[0], 0);
        /* the final assignment is the nearest code of every row */
        int bad = 0;
        for (int i = 0; i < N; i++) bad += a[i] != brute_nearest(cb.c, K, C, x + (size_t)i * C, NULL);
        CHECK(bad == 0);
        dd2_vq_codebook_free(&cb);
    }
    free(x);
    free(truth);
    free(a);
}

TEST(kmeans_deterministic) {
    dd2_status st;
    dd2_status_clear(&st);
    const int K = 6, m = 700, C = 16, N = K * m, V = 40;
    int32_t *truth = malloc((size_t)N * sizeof(int32_t));
    float centres[6 * 16];
    float *x = clustered_data(K, m, C, 0.5f, 12, truth, centres);
    dd2_vq_codebook cb[4];
    dd2_kmeans_result res[4];
    for (int run = 0; run < 4; run++) {
        CHECK_OK(dd2_vq_codebook_init(&cb[run], V, C, NULL, &st), &st);
        /* runs 0-2: seed 9 (run 1 through MPI_COMM_WORLD with one rank, run 2 with a sample);
         * run 3: seed 10 */
        dd2_kmeans_opts o = opts_for(V, 6, DD2_KMEANS_INIT_PP, run == 3 ? 10 : 9);
        if (run == 1) o.comm = MPI_COMM_WORLD;
        if (run == 2) o.sample = 1000;
        CHECK_OK(dd2_kmeans(x, N, &o, &cb[run], NULL, &res[run], &st), &st);
    }
    size_t bytes = (size_t)V * C * sizeof(float);
    CHECK_MSG(memcmp(cb[0].c, cb[1].c, bytes) == 0, "same seed, MPI_COMM_WORLD: codebooks differ");
    CHECK(res[0].mse == res[1].mse);
    CHECK_MSG(memcmp(cb[0].c, cb[2].c, bytes) != 0, "a sampled initialisation gave the same codebook");
    CHECK_MSG(memcmp(cb[0].c, cb[3].c, bytes) != 0, "another seed gave the same codebook");
    /* and again: bitwise the same as the first run */
    dd2_vq_codebook again;
    dd2_kmeans_result r2;
    CHECK_OK(dd2_vq_codebook_init(&again, V, C, NULL, &st), &st);
    dd2_kmeans_opts o = opts_for(V, 6, DD2_KMEANS_INIT_PP, 9);
    CHECK_OK(dd2_kmeans(x, N, &o, &again, NULL, &r2, &st), &st);
    CHECK(memcmp(cb[0].c, again.c, bytes) == 0);
    o.sample = 1000;
    CHECK_OK(dd2_kmeans(x, N, &o, &again, NULL, &r2, &st), &st);
    CHECK(memcmp(cb[2].c, again.c, bytes) == 0);
    dd2_vq_codebook_free(&again);
    for (int run = 0; run < 4; run++) dd2_vq_codebook_free(&cb[run]);
    free(x);
    free(truth);
}

TEST(dead_codes_are_reseeded) {
    dd2_status st;
    dd2_status_clear(&st);
    const int K = 8, m = 50, C = 4, N = K * m, V = 16;
    int32_t *truth = malloc((size_t)N * sizeof(int32_t)), *a = malloc((size_t)N * sizeof(int32_t));
    float centres[8 * 4];
    float *x = clustered_data(K, m, C, 0.2f, 13, truth, centres);
    /* every code starts at the same point: all rows go to code 0, 15 codes are dead */
    float *c = malloc((size_t)V * C * sizeof(float));
    for (int v = 0; v < V; v++) memcpy(c + v * C, x, (size_t)C * sizeof(float));
    dd2_vq_codebook cb;
    CHECK_OK(dd2_vq_codebook_init(&cb, V, C, c, &st), &st);
    mse_log lg = {0};
    dd2_kmeans_opts o = opts_for(V, 8, DD2_KMEANS_INIT_GIVEN, 1);
    o.on_iter = log_iter;
    o.on_iter_ctx = &lg;
    dd2_kmeans_result res;
    CHECK_OK(dd2_kmeans(x, N, &o, &cb, a, &res, &st), &st);
    CHECK_MSG(lg.dead[0] == V - 1 && lg.reseeded[0] == V - 1, "iteration 1: %d dead, %d re-seeded", lg.dead[0],
              lg.reseeded[0]);
    CHECK(res.reseeded >= V - 1);
    CHECK_MSG(res.used == V, "%d of %d codes used at the end", res.used, V);
    for (int i = 1; i < lg.n; i++) CHECK(lg.mse[i] <= lg.mse[i - 1] * (1 + 1e-9) + 1e-15);
    CHECK_MSG(res.mse < lg.mse[0] / 10, "MSE %.4g after re-seeding vs %.4g with one live code", res.mse, lg.mse[0]);
    /* the random initialisation with many duplicate rows (half the rows are one point) */
    for (int i = 0; i < N / 2; i++) memcpy(x + (size_t)i * C, x, (size_t)C * sizeof(float));
    dd2_kmeans_opts o2 = opts_for(V, 8, DD2_KMEANS_INIT_RANDOM, 2);
    CHECK_OK(dd2_kmeans(x, N, &o2, &cb, a, &res, &st), &st);
    CHECK_MSG(res.used == V, "random init with duplicates: %d of %d codes used", res.used, V);
    /* fewer distinct rows than codes: no failure, as many codes used as rows */
    dd2_kmeans_opts o3 = opts_for(V, 3, DD2_KMEANS_INIT_PP, 3);
    CHECK_OK(dd2_kmeans(x + (size_t)(N / 2 - 2) * C, 7, &o3, &cb, a, &res, &st), &st);
    CHECK_MSG(res.used == 6 && res.mse == 0, "7 rows (6 distinct): %d codes used, mse %g", res.used, res.mse);
    free(c);
    free(x);
    free(truth);
    free(a);
    dd2_vq_codebook_free(&cb);
}

/* k-means++ picks row i with probability D²_i / Σ D²: 4 groups of identical rows (so each group
 * is picked at most once), V = 3, many seeds; compare how often each group is left out with
 * the exact probabilities. The groups span several row blocks, so the lazy block updates and the
 * rejection step are exercised. */
TEST(kmeanspp_distribution) {
    dd2_status st;
    dd2_status_clear(&st);
    const int G = 4, C = 2, V = 3;
    const int cnt[4] = {400, 300, 200, 100};
    const float pos[4][2] = {{0, 0}, {1, 0}, {0, 3}, {5, 5}};
    int N = 0;
    for (int g = 0; g < G; g++) N += cnt[g];
    float *x = malloc((size_t)N * C * sizeof(float));
    int *grp = malloc((size_t)N * sizeof(int));
    for (int g = 0, i = 0; g < G; g++)
        for (int k = 0; k < cnt[g]; k++, i++) {
            x[i * C] = pos[g][0];
            x[i * C + 1] = pos[g][1];
            grp[i] = g;
        }
    double d2[4][4];
    for (int a = 0; a < G; a++)
        for (int b = 0; b < G; b++) {
            double dx = pos[a][0] - pos[b][0], dy = pos[a][1] - pos[b][1];
            d2[a][b] = dx * dx + dy * dy;
        }
    /* exact probability that group `miss` is not picked */
    double p_miss[4] = {0};
    for (int g1 = 0; g1 < G; g1++)
        for (int g2 = 0; g2 < G; g2++) {
            if (g2 == g1) continue;
            double z2 = 0;
            for (int h = 0; h < G; h++) z2 += cnt[h] * d2[g1][h];
            double p12 = (double)cnt[g1] / N * cnt[g2] * d2[g1][g2] / z2;
            double z3 = 0;
            for (int h = 0; h < G; h++) z3 += cnt[h] * fmin(d2[g1][h], d2[g2][h]);
            for (int g3 = 0; g3 < G; g3++) {
                if (g3 == g1 || g3 == g2) continue;
                double p = p12 * cnt[g3] * fmin(d2[g1][g3], d2[g2][g3]) / z3;
                p_miss[6 - g1 - g2 - g3] += p;
            }
        }
    const int runs = 3000;
    int miss[4] = {0}, bad = 0;
    dd2_vq_codebook cb;
    CHECK_OK(dd2_vq_codebook_init(&cb, V, C, NULL, &st), &st);
    for (int s = 0; s < runs; s++) {
        dd2_kmeans_opts o = opts_for(V, 0, DD2_KMEANS_INIT_PP, (uint64_t)s + 100);
        dd2_kmeans_result res;
        if (dd2_kmeans(x, (size_t)N, &o, &cb, NULL, &res, &st) != DD2_OK) {
            bad++;
            continue;
        }
        int seen[4] = {0};
        for (int v = 0; v < V; v++)
            for (int g = 0; g < G; g++)
                if (cb.c[v * C] == pos[g][0] && cb.c[v * C + 1] == pos[g][1]) seen[g]++;
        int total = seen[0] + seen[1] + seen[2] + seen[3];
        if (total != 3 || seen[0] > 1 || seen[1] > 1 || seen[2] > 1 || seen[3] > 1) {
            bad++;
            continue;
        }
        for (int g = 0; g < G; g++) miss[g] += !seen[g];
    }
    CHECK_MSG(bad == 0, "%d runs failed or picked a group twice", bad);
    for (int g = 0; g < G; g++) {
        double f = (double)miss[g] / runs, sd = sqrt(p_miss[g] * (1 - p_miss[g]) / runs);
        CHECK_MSG(fabs(f - p_miss[g]) <= 4.5 * sd + 1e-9, "group %d left out %.4f of the time, expected %.4f (sd %.4f)",
                  g, f, p_miss[g], sd);
    }
    dd2_vq_codebook_free(&cb);
    free(x);
    free(grp);
}

/* ---- codebook files ------------------------------------------------------------------------ */

TEST(codebook_file) {
    dd2_status st;
    dd2_status_clear(&st);
    tf_make_tmpdir("vq");
    float c[6 * 4];
    for (int i = 0; i < 24; i++) c[i] = (float)i * 0.125f - 1;
    dd2_h5 *h = NULL;
    int64_t dims[2] = {6, 4};
    CHECK_OK(dd2_h5_create(tf_path("cb.h5"), &h, &st), &st);
    CHECK_OK(dd2_h5_write_f32(h, "codebook", 2, dims, c, &st), &st);
    CHECK_OK(dd2_h5_close(h, &st), &st);
    dd2_vq_codebook cb;
    CHECK_OK(dd2_vq_codebook_read(tf_path("cb.h5"), 6, 4, &cb, &st), &st);
    CHECK(cb.codes == 6 && cb.dim == 4 && memcmp(cb.c, c, sizeof c) == 0);
    double n1 = 0;
    for (int j = 4; j < 8; j++) n1 += (double)c[j] * c[j];
    CHECK(cb.norm2[1] == (float)n1); /* derived arrays filled */
    CHECK(cb.neg2c[5] == -2 * c[5]);
    dd2_vq_codebook_free(&cb);
    CHECK_OK(dd2_vq_codebook_read(tf_path("cb.h5"), 0, 0, &cb, &st), &st); /* any shape */
    CHECK(cb.codes == 6 && cb.dim == 4);
    dd2_vq_codebook_free(&cb);
    CHECK(dd2_vq_codebook_read(tf_path("cb.h5"), 512, 16, &cb, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "shape mismatch") && strstr(st.msg, "[512, 16]") && strstr(st.msg, "[6, 4]"), "%s",
              st.msg);
    CHECK(cb.c == NULL);
    CHECK(dd2_vq_codebook_read(tf_path("missing.h5"), 6, 4, &cb, &st) == DD2_ERR_INPUT);
    /* a file without the dataset, and one with a wrong type */
    CHECK_OK(dd2_h5_create(tf_path("other.h5"), &h, &st), &st);
    int32_t ic[24] = {0};
    CHECK_OK(dd2_h5_write_i32(h, "codebook", 2, dims, ic, &st), &st);
    CHECK_OK(dd2_h5_close(h, &st), &st);
    CHECK(dd2_vq_codebook_read(tf_path("other.h5"), 6, 4, &cb, &st) == DD2_ERR_INPUT);
    CHECK_OK(dd2_h5_create(tf_path("empty.h5"), &h, &st), &st);
    CHECK_OK(dd2_h5_close(h, &st), &st);
    CHECK(dd2_vq_codebook_read(tf_path("empty.h5"), 6, 4, &cb, &st) == DD2_ERR_INPUT);
    CHECK(strstr(st.msg, "codebook") != NULL);
    tf_remove_tmpdir();
}

int main(int argc, char **argv) {
    test_init(argv[0]);
    MPI_Init(&argc, &argv);
    RUN(geometry);
    RUN(patch_layout);
    RUN(snap_matches_brute_force);
    RUN(encode_decode_round_trip);
    RUN(usage_and_perplexity);
    RUN(kmeans_recovers_clusters);
    RUN(kmeans_deterministic);
    RUN(dead_codes_are_reseeded);
    RUN(kmeanspp_distribution);
    RUN(codebook_file);
    MPI_Finalize();
    return test_summary();
}
