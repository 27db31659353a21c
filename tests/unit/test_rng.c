/* Tests for src/core/rng: Philox known answers, distribution moments, integer ranges,
 * stream keying, save/restore, and independence from the rank count. */
#include "core/rng.h"

#include <stdint.h>

#include "test_util.h"

#define NDRAW 1000000

/* Random123 kat_vectors, "philox4x32 10" lines: ctr[4] key[2] -> expected[4]. */
TEST(philox_known_answers) {
    static const uint32_t kat[3][10] = {
        {0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
         0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int v = 0; v < 3; v++) {
        uint32_t out[4];
        dd2_philox4x32_10(&kat[v][0], &kat[v][4], out);
        for (int i = 0; i < 4; i++)
            CHECK_MSG(out[i] == kat[v][6 + i], "vector %d word %d: got %08x expected %08x", v, i,
                      (unsigned)out[i], (unsigned)kat[v][6 + i]);
        /* out may alias ctr */
        uint32_t io[4] = {kat[v][0], kat[v][1], kat[v][2], kat[v][3]};
        dd2_philox4x32_10(io, &kat[v][4], io);
        CHECK(memcmp(io, out, sizeof out) == 0);
    }
}

/* The documented tuple -> (key, counter) mapping (docs/rng.md). */
TEST(stream_layout) {
    uint64_t seed = UINT64_C(0x0123456789abcdef);
    uint64_t index = (UINT64_C(0xa5) << 32) | 0x11223344u, step = (UINT64_C(0x3c) << 32) | 7u;
    dd2_rng r;
    dd2_rng_init(&r, seed, DD2_RNG_NOISE, index, step);
    uint32_t key[2] = {0x89abcdefu, 0x01234567u};
    for (uint32_t b = 0; b < 3; b++) {
        uint32_t ctr[4] = {b, 0x11223344u, 7u, DD2_RNG_NOISE | (0xa5u << 16) | (0x3cu << 24)};
        uint32_t want[4];
        dd2_philox4x32_10(ctr, key, want);
        for (int i = 0; i < 4; i++) {
            uint32_t got = dd2_rng_u32(&r);
            CHECK_MSG(got == want[i], "block %u word %d: %08x vs %08x", (unsigned)b, i,
                      (unsigned)got, (unsigned)want[i]);
        }
    }
    dd2_rng_init(&r, seed, 5, 9, 11);
    uint64_t w = dd2_rng_u64(&r);
    uint32_t out[4], ctr[4] = {0, 9, 11, 5};
    dd2_philox4x32_10(ctr, key, out);
    CHECK(w == ((uint64_t)out[0] | ((uint64_t)out[1] << 32)));
}

TEST(unit_conversions_never_one) {
    CHECK(dd2_rng_u32_to_unit_f(0) == 0.0f);
    CHECK(dd2_rng_u32_to_unit_f(0xFFFFFFFFu) < 1.0f);
    CHECK(dd2_rng_u32_to_unit_f(0xFFFFFFFFu) == 1.0f - 0x1.0p-24f);
    CHECK(dd2_rng_u64_to_unit(0) == 0.0);
    CHECK(dd2_rng_u64_to_unit(UINT64_MAX) < 1.0);
    CHECK(dd2_rng_u64_to_unit(UINT64_MAX) == 1.0 - 0x1.0p-53);
    dd2_rng r;
    dd2_rng_init(&r, 42, DD2_RNG_TEST, 0, 0);
    int bad = 0;
    for (int i = 0; i < NDRAW; i++) {
        float u = dd2_rng_uniform_f(&r);
        if (!(u >= 0.0f && u < 1.0f)) bad++;
    }
    CHECK_MSG(bad == 0, "%d floats outside [0,1)", bad);
}

TEST(uniform_moments) {
    dd2_rng r;
    dd2_rng_init(&r, 1, DD2_RNG_TEST, 0, 0);
    double sf = 0, sf2 = 0, sd = 0, sd2 = 0, dmin = 1, dmax = 0;
    for (int i = 0; i < NDRAW; i++) {
        double f = dd2_rng_uniform_f(&r) - 0.5, d = dd2_rng_uniform(&r);
        sf += f;
        sf2 += f * f;
        if (d < dmin) dmin = d;
        if (d > dmax) dmax = d;
        d -= 0.5;
        sd += d;
        sd2 += d * d;
    }
    /* standard errors: mean sqrt(1/12/n); E[(u-1/2)^2] has variance 1/80 - 1/144 = 1/180 */
    double se_mean = sqrt(1.0 / 12 / NDRAW), se_var = sqrt(1.0 / 180 / NDRAW);
    CHECK_NEAR(sf / NDRAW, 0.0, 5 * se_mean);
    CHECK_NEAR(sf2 / NDRAW, 1.0 / 12, 5 * se_var);
    CHECK_NEAR(sd / NDRAW, 0.0, 5 * se_mean);
    CHECK_NEAR(sd2 / NDRAW, 1.0 / 12, 5 * se_var);
    CHECK(dmin >= 0.0 && dmin < 1e-4 && dmax < 1.0 && dmax > 1 - 1e-4);
}

TEST(normal_moments) {
    dd2_rng r;
    dd2_rng_init(&r, 2, DD2_RNG_TEST, 0, 0);
    double s1 = 0, s2 = 0, s3 = 0, s4 = 0, amax = 0;
    int nonfinite = 0;
    for (int i = 0; i < NDRAW; i++) {
        double z = dd2_rng_normal(&r);
        if (!isfinite(z)) nonfinite++;
        s1 += z;
        s2 += z * z;
        s3 += z * z * z;
        s4 += z * z * z * z;
        if (fabs(z) > amax) amax = fabs(z);
    }
    double n = NDRAW, mean = s1 / n, m2 = s2 / n;
    CHECK(nonfinite == 0);
    /* standard errors of mean, variance, skewness, kurtosis for N(0,1): 1, sqrt2, sqrt6, sqrt24 over sqrt n */
    CHECK_NEAR(mean, 0.0, 5 * sqrt(1 / n));
    CHECK_NEAR(m2 - mean * mean, 1.0, 5 * sqrt(2 / n));
    CHECK_NEAR(s3 / n, 0.0, 5 * sqrt(6 / n));
    CHECK_NEAR(s4 / n, 3.0, 5 * sqrt(24 / n));
    CHECK_MSG(amax > 4.0 && amax < 8.6, "max |z| = %g", amax);
}

/* fill_normal gives exactly the values of successive dd2_rng_normal calls (the pair cache is
 * shared), and fill_uniform stays in [lo, hi). */
TEST(fill_matches_scalar_draws) {
    enum { N = 1001 };
    static float a[N];
    dd2_rng r1, r2;
    dd2_rng_init(&r1, 3, DD2_RNG_NOISE, 5, 6);
    dd2_rng_init(&r2, 3, DD2_RNG_NOISE, 5, 6);
    (void)dd2_rng_normal(&r1); /* leave a cached value */
    (void)dd2_rng_normal(&r2);
    dd2_rng_fill_normal(&r1, a, N, 0.5f, 2.0f);
    int diff = 0;
    for (int i = 0; i < N; i++)
        if (a[i] != 0.5f + 2.0f * (float)dd2_rng_normal(&r2)) diff++;
    CHECK_MSG(diff == 0, "%d values differ", diff);
    CHECK(dd2_rng_u32(&r1) == dd2_rng_u32(&r2));

    dd2_rng_fill_uniform(&r1, a, N, -1.0f, 1.0f);
    int out = 0;
    for (int i = 0; i < N; i++)
        if (!(a[i] >= -1.0f && a[i] < 1.0f)) out++;
    CHECK(out == 0);
    /* a range so narrow that lo + (hi-lo)*u rounds to hi for most u: still below hi */
    float lo = 1.0f, hi = nextafterf(1.0f, 2.0f);
    dd2_rng_fill_uniform(&r1, a, N, lo, hi);
    out = 0;
    for (int i = 0; i < N; i++)
        if (!(a[i] >= lo && a[i] < hi)) out++;
    CHECK(out == 0);
}

/* Chi-square upper bound at z = 5 sigma (Wilson-Hilferty approximation). */
static double chi2_bound(int df) {
    double k = df, t = 1 - 2 / (9 * k) + 5 * sqrt(2 / (9 * k));
    return k * t * t * t;
}

TEST(below_range_and_unbiased) {
    static const uint32_t ns[3] = {3, 10, 1000};
    static long count[1000];
    dd2_rng r;
    dd2_rng_init(&r, 4, DD2_RNG_TEST, 0, 0);
    for (int t = 0; t < 3; t++) {
        uint32_t n = ns[t];
        long draws = 200L * n < 300000 ? 300000 : 200L * n;
        memset(count, 0, sizeof count);
        int outside = 0;
        for (long i = 0; i < draws; i++) {
            uint32_t x = dd2_rng_below(&r, n);
            if (x >= n) outside++;
            else count[x]++;
        }
        CHECK_MSG(outside == 0, "n=%u: %d draws >= n", (unsigned)n, outside);
        double e = (double)draws / n, chi2 = 0;
        int empty = 0;
        for (uint32_t k = 0; k < n; k++) {
            if (count[k] == 0) empty++;
            chi2 += (count[k] - e) * (count[k] - e) / e;
        }
        CHECK_MSG(empty == 0, "n=%u: %d values never drawn", (unsigned)n, empty);
        CHECK_MSG(chi2 < chi2_bound((int)n - 1), "n=%u: chi2 %.1f >= %.1f", (unsigned)n, chi2,
                  chi2_bound((int)n - 1));
    }
    CHECK(dd2_rng_below(&r, 0) == 0);
    CHECK(dd2_rng_below(&r, 1) == 0);
    /* n = 3*2^30: "x % n" would put half the mass below 2^30 instead of a third */
    uint32_t n = 0xC0000000u;
    long low = 0, draws = 200000;
    for (long i = 0; i < draws; i++) {
        uint32_t x = dd2_rng_below(&r, n);
        CHECK(x < n);
        if (x < 0x40000000u) low++;
    }
    double p = (double)low / draws;
    CHECK_NEAR(p, 1.0 / 3, 5 * sqrt(2.0 / 9 / draws));
}

TEST(permutation) {
    enum { N = 1000 };
    static uint32_t p[N], q[N];
    static int seen[N];
    dd2_rng r;
    dd2_rng_init(&r, 5, DD2_RNG_DATA_ORDER, 0, 0);
    dd2_rng_permutation(&r, p, N);
    int dup = 0, fixed = 0;
    for (int i = 0; i < N; i++) {
        if (p[i] >= N || seen[p[i]]++) dup++;
        if (p[i] == (uint32_t)i) fixed++;
    }
    CHECK(dup == 0);
    CHECK_MSG(fixed < 10, "%d fixed points", fixed); /* Poisson(1) */
    dd2_rng_init(&r, 5, DD2_RNG_DATA_ORDER, 0, 0);
    dd2_rng_permutation(&r, q, N);
    CHECK(memcmp(p, q, sizeof p) == 0);
    dd2_rng_permutation(&r, q, 0);
    dd2_rng_permutation(&r, q, 1);
    CHECK(q[0] == 0);
}

typedef struct {
    uint64_t seed;
    uint32_t purpose;
    uint64_t index, step;
} tuple;

static void first_words(const tuple *t, uint32_t w[8]) {
    dd2_rng r;
    dd2_rng_init(&r, t->seed, t->purpose, t->index, t->step);
    for (int i = 0; i < 8; i++) w[i] = dd2_rng_u32(&r);
}

TEST(streams_differ_and_reproduce) {
    const uint64_t B40 = UINT64_C(1) << 40, B32 = UINT64_C(1) << 32;
    static const tuple ts0[] = {{7, DD2_RNG_NOISE, 0, 0}, {8, DD2_RNG_NOISE, 0, 0},
                                {7, DD2_RNG_INIT, 0, 0},  {7, DD2_RNG_NOISE, 1, 0},
                                {7, DD2_RNG_NOISE, 0, 1}, {7, DD2_RNG_NOISE, 1, 1},
                                {7, DD2_RNG_TIMESTEP, 1, 1}, {7, DD2_RNG_CLASS_DROPOUT, 1, 1},
                                {7, DD2_RNG_SAMPLE, 1, 1}, {7, DD2_RNG_DATA_ORDER, 1, 1},
                                {UINT64_C(7) << 32, DD2_RNG_NOISE, 0, 0}};
    tuple ts[32];
    int n = 0;
    for (size_t i = 0; i < sizeof ts0 / sizeof ts0[0]; i++) ts[n++] = ts0[i];
    /* high bits of index and step: in ctr[3] below 2^40, through the key above */
    ts[n++] = (tuple){7, DD2_RNG_NOISE, B32, 0};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, 0, B32};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, B32 << 7, 0};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, 0, B32 << 7};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, B40, 0};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, 0, B40};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, B40 + 1, 0};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, B40 << 1, 0};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, B40, B40};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, UINT64_MAX, 0};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, 0, UINT64_MAX};
    ts[n++] = (tuple){7, DD2_RNG_NOISE, UINT64_MAX, UINT64_MAX};
    ts[n++] = (tuple){7, DD2_RNG_NOISE + 0x10000u, 0, 0};
    ts[n++] = (tuple){7, DD2_RNG_NOISE + 0x20000u, 0, 0};
    uint32_t w[32][8];
    for (int i = 0; i < n; i++) first_words(&ts[i], w[i]);
    for (int i = 0; i < n; i++) {
        uint32_t again[8];
        first_words(&ts[i], again);
        CHECK_MSG(memcmp(again, w[i], sizeof again) == 0, "tuple %d does not reproduce", i);
        for (int j = 0; j < i; j++) {
            CHECK_MSG(memcmp(w[i], w[j], sizeof w[i]) != 0, "tuples %d and %d give the same stream",
                      i, j);
        }
    }
}

/* Draw a mix of everything; used to move a stream to an arbitrary state. */
static void draw_mixed(dd2_rng *r, int k, double *acc) {
    for (int i = 0; i < k; i++) {
        switch (i % 5) {
        case 0: *acc += dd2_rng_u32(r); break;
        case 1: *acc += dd2_rng_normal(r); break;
        case 2: *acc += dd2_rng_below(r, 7); break;
        case 3: *acc += dd2_rng_uniform_f(r); break;
        default: *acc += (double)dd2_rng_u64(r); break;
        }
    }
}

TEST(save_restore_continues_identically) {
    dd2_status st;
    dd2_status_clear(&st);
    /* every reachable state, pos 1..4 x has_normal 0/1, is reached by some prefix length
     * (pos 0 never persists: a refill is always followed by a read) */
    int seen_state[5][2] = {{0}};
    for (int prefix = 0; prefix < 40; prefix++) {
        dd2_rng a, b;
        dd2_rng_init(&a, 11, DD2_RNG_NOISE, 3, (uint64_t)prefix);
        double acc = 0;
        draw_mixed(&a, prefix, &acc);
        uint32_t s[DD2_RNG_STATE_WORDS], s2[DD2_RNG_STATE_WORDS];
        dd2_rng_save(&a, s);
        seen_state[s[7]][s[8]] = 1;
        dd2_rng_init(&b, 999, DD2_RNG_INIT, 0, 0);
        (void)dd2_rng_normal(&b);
        CHECK_OK(dd2_rng_restore(&b, s, &st), &st);
        dd2_rng_save(&b, s2);
        CHECK(memcmp(s, s2, sizeof s) == 0);
        double x = 0, y = 0;
        draw_mixed(&a, 23, &x);
        draw_mixed(&b, 23, &y);
        CHECK_MSG(x == y, "prefix %d: continuation differs", prefix);
        CHECK(dd2_rng_u32(&a) == dd2_rng_u32(&b));
    }
    int all = 1;
    for (int p = 1; p < 5; p++)
        for (int h = 0; h < 2; h++) all &= seen_state[p][h];
    CHECK_MSG(all, "not every (pos, has_normal) state was exercised");

    dd2_rng r;
    dd2_rng_init(&r, 1, 1, 1, 1);
    uint32_t s[DD2_RNG_STATE_WORDS];
    dd2_rng_save(&r, s);
    uint32_t bad[DD2_RNG_STATE_WORDS];
    memcpy(bad, s, sizeof s);
    bad[0] ^= 1;
    CHECK(dd2_rng_restore(&r, bad, &st) == DD2_ERR_INPUT && strstr(st.msg, "tag"));
    memcpy(bad, s, sizeof s);
    bad[7] = 5;
    CHECK(dd2_rng_restore(&r, bad, &st) == DD2_ERR_INPUT);
    memcpy(bad, s, sizeof s);
    bad[8] = 2;
    CHECK(dd2_rng_restore(&r, bad, &st) == DD2_ERR_INPUT);
    memcpy(bad, s, sizeof s);
    bad[8] = 1;
    bad[10] = 0x7ff80000u; /* NaN */
    CHECK(dd2_rng_restore(&r, bad, &st) == DD2_ERR_INPUT);
}

/* Sample i's noise at step s is the same whatever the number of ranks and however samples are
 * split among them (contiguous blocks or round robin). */
TEST(independent_of_rank_count) {
    enum { NS = 37, D = 50, STEPS = 3 };
    static float ref[STEPS][NS][D], got[STEPS][NS][D];
    const uint64_t seed = 2024;
    for (int s = 0; s < STEPS; s++)
        for (int i = 0; i < NS; i++) {
            dd2_rng r;
            dd2_rng_init(&r, seed, DD2_RNG_NOISE, (uint64_t)i, (uint64_t)s);
            dd2_rng_fill_normal(&r, ref[s][i], D, 0.0f, 1.0f);
        }
    for (int ranks = 1; ranks <= 5; ranks++)
        for (int strided = 0; strided < 2; strided++) {
            memset(got, 0, sizeof got);
            for (int rank = ranks - 1; rank >= 0; rank--) { /* any rank order */
                int per = (NS + ranks - 1) / ranks;
                for (int s = 0; s < STEPS; s++)
                    for (int k = 0; k < NS; k++) {
                        int i = strided ? rank + k * ranks : rank * per + k;
                        if (i >= NS || (!strided && k >= per)) break;
                        dd2_rng r;
                        dd2_rng_init(&r, seed, DD2_RNG_NOISE, (uint64_t)i, (uint64_t)s);
                        dd2_rng_fill_normal(&r, got[s][i], D, 0.0f, 1.0f);
                    }
            }
            CHECK_MSG(memcmp(ref, got, sizeof ref) == 0, "ranks=%d strided=%d differs", ranks,
                      strided);
        }
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(philox_known_answers);
    RUN(stream_layout);
    RUN(unit_conversions_never_one);
    RUN(uniform_moments);
    RUN(normal_moments);
    RUN(fill_matches_scalar_draws);
    RUN(below_range_and_unbiased);
    RUN(permutation);
    RUN(streams_differ_and_reproduce);
    RUN(save_restore_continues_identically);
    RUN(independent_of_rank_count);
    return test_summary();
}
