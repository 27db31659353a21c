/* The teacher's logits head (docs/model.md "Logits head"): logits = f · headᵀ, head.w [V,d], no
 * bias. A thin wrapper over op_matmul; double twins (suffix _f64) in model/nets_f64.h. The
 * cross-entropy is op_crossentropy_forward/backward (mean over rows: dlosses = 1/N). */
#ifndef DD2_MODEL_LOGITS_HEAD_H
#define DD2_MODEL_LOGITS_HEAD_H

#include <stddef.h>

#include "core/status.h"
#include "model/params.h"

typedef struct dd2_logits_head {
    int V, d;
    int index;  /* table entry of the weight */
    size_t w;   /* offset of head.w [V,d] */
} dd2_logits_head;

/* Register "<prefix>w" [V,d] (prefix NULL: "head.", the name of docs/model.md). Xavier-uniform,
 * weight decay. */
int dd2_logits_head_register(dd2_logits_head *lh, int V, int d, const char *prefix,
                             dd2_param_table *tab, dd2_status *st);

/* logits [N,V] = f [N,d] · Wᵀ. */
void dd2_logits_forward(const dd2_logits_head *lh, const float *params, const float *f, size_t N,
                        float *logits);
/* grads (head.w) += dlogitsᵀ·f (grads NULL: skipped); df [N,d] += dlogits·W (NULL: skipped). */
void dd2_logits_backward(const dd2_logits_head *lh, const float *params, float *grads,
                         const float *f, const float *dlogits, size_t N, float *df);

#endif
