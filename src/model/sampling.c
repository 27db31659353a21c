#include "model/sampling.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int cmp_desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

float dd2_kth_largest(float *a, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) { /* Hoare partition, descending: [lo, j] >= pivot, [i, hi] <= pivot */
        const float pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                const float x = a[i];
                a[i++] = a[j];
                a[j--] = x;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return a[k]; /* between the two parts: equal to the pivot */
    }
    return a[k];
}

/* One row: l [V] holds the tempered logits on entry, p [V] the probabilities on exit. */
static void row_probs(float *p, float *l, int V, const dd2_sampling *s, float *sorted) {
    float kth = -INFINITY;
    if (s->top_k > 0 && s->top_k < V) {
        memcpy(sorted, l, (size_t)V * sizeof *sorted);
        kth = dd2_kth_largest(sorted, V, s->top_k - 1);
    }
    float mx = -INFINITY;
    for (int j = 0; j < V; j++) {
        if (l[j] < kth) l[j] = -INFINITY;
        if (l[j] > mx) mx = l[j];
    }
    double sum = 0.0;
    for (int j = 0; j < V; j++) sum += (p[j] = l[j] == -INFINITY ? 0.0f : (float)exp((double)l[j] - mx));
    for (int j = 0; j < V; j++) p[j] = (float)(p[j] / sum);
    if (s->top_p >= 1.0f) return;
    /* top-p: keep codes whose probability is above the threshold value where the cumulative mass
     * of the more likely codes first exceeds top_p (ties at the threshold are kept) */
    memcpy(sorted, p, (size_t)V * sizeof *sorted);
    qsort(sorted, (size_t)V, sizeof *sorted, cmp_desc);
    double cum = 0.0;
    float cut = 0.0f;
    for (int j = 0; j < V; j++) {
        if (cum > s->top_p) break;
        cut = sorted[j];
        cum += sorted[j];
    }
    sum = 0.0;
    for (int j = 0; j < V; j++) {
        if (p[j] < cut) p[j] = 0.0f;
        sum += p[j];
    }
    for (int j = 0; j < V; j++) p[j] = (float)(p[j] / sum);
}

void dd2_teacher_probs(float *p, const float *lc, const float *lu, size_t N, int V, const dd2_sampling *s,
                       float *scratch) {
    float *l = scratch, *sorted = scratch + V;
    const float inv_t = 1.0f / fmaxf(s->temperature, 1e-5f);
    for (size_t i = 0; i < N; i++) {
        const float *c = lc + i * (size_t)V;
        const float *u = lu ? lu + i * (size_t)V : NULL;
        for (int j = 0; j < V; j++) {
            float g = (u && s->cfg_scale != 1.0f) ? u[j] + s->cfg_scale * (c[j] - u[j]) : c[j];
            l[j] = g * inv_t;
        }
        row_probs(p + i * (size_t)V, l, V, s, sorted);
    }
}

int dd2_sample_categorical(const float *p, int V, double u) {
    double total = 0.0;
    for (int j = 0; j < V; j++) total += p[j];
    double target = u * total, cum = 0.0;
    int last = -1;
    for (int j = 0; j < V; j++) {
        if (p[j] <= 0.0f) continue;
        cum += p[j];
        last = j;
        if (cum > target) return j;
    }
    return last < 0 ? 0 : last; /* u * total at the very top (round-off): the last code with mass */
}
