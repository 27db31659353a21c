/* The teacher's sampling distribution p (method.md §1), as LlamaGen forms it:
 *     l = l_u + s·(l_c − l_u)          classifier-free guidance (s = cfg_scale; s = 1: l = l_c)
 *     l = l / max(temperature, 1e-5)
 *     top-k: drop codes whose logit is below the k-th largest (ties with it are kept)
 *     top-p: drop the tail of the sorted distribution once the cumulative probability of the
 *            codes before it exceeds top_p (the most likely code is always kept)
 *     p = softmax(l) over the kept codes; dropped codes get p = 0 exactly.
 * The same p serves AR sampling, teacher-sample and the teacher score (mixture over codes with
 * p_j > 0). All functions are deterministic and allocation-free (scratch provided by the caller).
 */
#ifndef DD2_MODEL_SAMPLING_H
#define DD2_MODEL_SAMPLING_H

#include <stddef.h>

typedef struct dd2_sampling {
    float cfg_scale;   /* 1: no guidance (l_u unused) */
    float temperature;
    int top_k;         /* 0: off */
    float top_p;       /* >= 1: off */
} dd2_sampling;

/* Scratch needed by dd2_teacher_probs for V codes, in floats. */
#define DD2_SAMPLING_SCRATCH(V) (2 * (size_t)(V))

/* p [N,V] from conditional logits lc [N,V] and unconditional logits lu [N,V] (NULL when
 * cfg_scale == 1). p may alias lc. scratch: DD2_SAMPLING_SCRATCH(V) floats. */
void dd2_teacher_probs(float *p, const float *lc, const float *lu, size_t N, int V, const dd2_sampling *s,
                       float *scratch);

/* The (k+1)-th largest of a[0..n-1] (k in [0, n)): the value qsort-descending would put at a[k],
 * found by selection in O(n) average time. Reorders a. */
float dd2_kth_largest(float *a, int n, int k);

/* Index j with cumulative probability crossing u in [0,1): the smallest j with sum_{i<=j} p_i > u
 * (u scaled by the row's total, so p need not sum to exactly 1); never returns a code with p = 0. */
int dd2_sample_categorical(const float *p, int V, double u);

#endif
