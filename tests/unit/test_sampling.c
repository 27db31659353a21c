/* The teacher's sampling distribution (CFG, temperature, top-k, top-p) and categorical draws. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/sampling.h"
#include "test_util.h"

static void softmax_ref(const double *l, double *p, int V) {
    double mx = -INFINITY, s = 0;
    for (int j = 0; j < V; j++) mx = fmax(mx, l[j]);
    for (int j = 0; j < V; j++) s += (p[j] = isinf(l[j]) ? 0 : exp(l[j] - mx));
    for (int j = 0; j < V; j++) p[j] /= s;
}

TEST(cfg_and_temperature) {
    enum { V = 5 };
    const float lc[V] = {1.0f, 2.0f, 0.5f, -1.0f, 0.0f}, lu[V] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    float p[V], scratch[DD2_SAMPLING_SCRATCH(V)];
    dd2_sampling s = {2.0f, 0.5f, 0, 1.0f};
    dd2_teacher_probs(p, lc, lu, 1, V, &s, scratch);
    double l[V], q[V];
    for (int j = 0; j < V; j++) l[j] = (lu[j] + 2.0 * (lc[j] - lu[j])) / 0.5;
    softmax_ref(l, q, V);
    for (int j = 0; j < V; j++) CHECK_NEAR(p[j], q[j], 1e-6);
    /* cfg 1 ignores lu (may be NULL) */
    dd2_sampling s1 = {1.0f, 1.0f, 0, 1.0f};
    dd2_teacher_probs(p, lc, NULL, 1, V, &s1, scratch);
    for (int j = 0; j < V; j++) l[j] = lc[j];
    softmax_ref(l, q, V);
    for (int j = 0; j < V; j++) CHECK_NEAR(p[j], q[j], 1e-6);
}

TEST(top_k_and_top_p) {
    enum { V = 6 };
    const float lc[2 * V] = {3, 1, 2, 0, 2, -5, /* row 2 */ 0, 0, 0, 0, 0, 0};
    float p[2 * V], scratch[DD2_SAMPLING_SCRATCH(V)];
    dd2_sampling s = {1.0f, 1.0f, 2, 1.0f};
    dd2_teacher_probs(p, lc, NULL, 2, V, &s, scratch);
    /* row 1: k-th largest = 2, ties kept: codes 0, 2, 4 */
    double l[V] = {3, -INFINITY, 2, -INFINITY, 2, -INFINITY}, q[V];
    softmax_ref(l, q, V);
    for (int j = 0; j < V; j++) CHECK_NEAR(p[j], q[j], 1e-6);
    CHECK(p[1] == 0.0f && p[3] == 0.0f && p[5] == 0.0f);
    /* row 2: all tied: all kept */
    for (int j = 0; j < V; j++) CHECK_NEAR(p[V + j], 1.0 / V, 1e-7);
    /* top-p: probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 (logits = log p) */
    const float lp[5] = {logf(0.5f), logf(0.25f), logf(0.125f), logf(0.0625f), logf(0.0625f)};
    float pp[5], sc[DD2_SAMPLING_SCRATCH(5)];
    dd2_sampling sp = {1.0f, 1.0f, 0, 0.7f}; /* cumulative before: 0, .5, .75 > .7 -> keep 2 */
    dd2_teacher_probs(pp, lp, NULL, 1, 5, &sp, sc);
    CHECK_NEAR(pp[0], 2.0 / 3.0, 1e-6);
    CHECK_NEAR(pp[1], 1.0 / 3.0, 1e-6);
    CHECK(pp[2] == 0.0f && pp[3] == 0.0f && pp[4] == 0.0f);
    dd2_sampling tiny = {1.0f, 1.0f, 0, 0.01f}; /* the most likely code is always kept */
    dd2_teacher_probs(pp, lp, NULL, 1, 5, &tiny, sc);
    CHECK(pp[0] == 1.0f && pp[1] == 0.0f);
}

TEST(categorical) {
    const float p[4] = {0.0f, 0.25f, 0.0f, 0.75f};
    CHECK(dd2_sample_categorical(p, 4, 0.0) == 1);
    CHECK(dd2_sample_categorical(p, 4, 0.2499) == 1);
    CHECK(dd2_sample_categorical(p, 4, 0.25) == 3);
    CHECK(dd2_sample_categorical(p, 4, 0.999999) == 3);
    CHECK(dd2_sample_categorical(p, 4, 1.0) == 3); /* never a zero-probability code */
    /* frequencies over a grid of u match p */
    int counts[4] = {0};
    for (int i = 0; i < 10000; i++) counts[dd2_sample_categorical(p, 4, (i + 0.5) / 10000.0)]++;
    CHECK(counts[0] == 0 && counts[2] == 0 && counts[1] == 2500 && counts[3] == 7500);
}

static int cmp_desc_ref(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* The selection equals qsort's k-th element for every k, with and without ties (values drawn
 * from a few levels), for sizes 1..40 and 512. */
TEST(kth_largest_matches_sort) {
    uint64_t state = 12345;
    float a[512], sorted[512], work[512];
    int wrong = 0;
    for (int trial = 0; trial < 400; trial++) {
        const int n = trial < 390 ? 1 + trial % 40 : 512, levels = trial % 3 == 0 ? 3 : 0;
        for (int i = 0; i < n; i++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            const double u = (double)(state >> 11) / 9007199254740992.0;
            a[i] = levels ? (float)(int)(u * levels) : (float)(u * 20.0 - 10.0);
        }
        memcpy(sorted, a, (size_t)n * sizeof *a);
        qsort(sorted, (size_t)n, sizeof *sorted, cmp_desc_ref);
        for (int k = 0; k < n; k++) {
            memcpy(work, a, (size_t)n * sizeof *a);
            wrong += dd2_kth_largest(work, n, k) != sorted[k];
        }
    }
    CHECK(wrong == 0);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(cfg_and_temperature);
    RUN(top_k_and_top_p);
    RUN(kth_largest_matches_sort);
    RUN(categorical);
    return test_summary();
}
