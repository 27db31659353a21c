/* Double-precision twins of the networks (model/backbone.h, model/mlp_head.h,
 * model/logits_head.h): the same source (nets_impl.inc) with real = double and names suffixed
 * _f64, built on the _f64 ops (model/ops_f64.h). They exist for finite-difference gradient checks
 * of whole networks and as a higher-precision reference in tests. Contracts, shapes and the
 * =/+= rules are those of the float headers. The network structs (dd2_backbone, dd2_mlp_head,
 * dd2_logits_head) and their register functions are shared: they hold offsets only. CPU only.
 *
 * Keep in sync with the float headers: nets_f64.c includes this header, so a declaration that
 * no longer matches the shared definition fails to compile. */
#ifndef DD2_MODEL_NETS_F64_H
#define DD2_MODEL_NETS_F64_H

#include <stddef.h>

#include "model/backbone.h"
#include "model/logits_head.h"
#include "model/mlp_head.h"

typedef struct dd2_backbone_acts_f64 {
    DD2_BACKBONE_ACTS_FIELDS(double)
} dd2_backbone_acts_f64;

typedef struct dd2_backbone_cache_f64 {
    DD2_BACKBONE_CACHE_FIELDS(double)
} dd2_backbone_cache_f64;

typedef struct dd2_mlp_head_acts_f64 {
    DD2_MLP_HEAD_ACTS_FIELDS(double)
} dd2_mlp_head_acts_f64;

int dd2_backbone_acts_alloc_f64(dd2_backbone_acts_f64 *a, const dd2_backbone *bb, int B,
                                dd2_status *st);
void dd2_backbone_acts_free_f64(dd2_backbone_acts_f64 *a);
void dd2_backbone_forward_f64(const dd2_backbone *bb, const double *params,
                              dd2_backbone_acts_f64 *a, const double *x, const int *y, int B,
                              double *f);
void dd2_backbone_backward_f64(const dd2_backbone *bb, const double *params, double *grads,
                               dd2_backbone_acts_f64 *a, const double *df, double *dx, int B);
int dd2_backbone_cache_alloc_f64(dd2_backbone_cache_f64 *c, const dd2_backbone *bb, int B, int m,
                                 dd2_status *st);
void dd2_backbone_cache_free_f64(dd2_backbone_cache_f64 *c);
void dd2_backbone_step_f64(const dd2_backbone *bb, const double *params, dd2_backbone_cache_f64 *c,
                           const double *x_prev, const int *y, int t0, int m, int B, double *f);

int dd2_mlp_head_acts_alloc_f64(dd2_mlp_head_acts_f64 *a, const dd2_mlp_head *hd, int P,
                                dd2_status *st);
void dd2_mlp_head_acts_free_f64(dd2_mlp_head_acts_f64 *a);
void dd2_mlp_head_forward_f64(const dd2_mlp_head *hd, const double *params,
                              dd2_mlp_head_acts_f64 *a, const double *x_t, const double *t,
                              const double *c, int P, double *v);
void dd2_mlp_head_backward_f64(const dd2_mlp_head *hd, const double *params, double *grads,
                               dd2_mlp_head_acts_f64 *a, const double *dv, double *dx_t,
                               double *dc, int P);

void dd2_mlp_head_forward_grouped_f64(const dd2_mlp_head *hd, const double *params,
                                      dd2_mlp_head_acts_f64 *a, const double *x_t, const double *t,
                                      const double *c, int P, int group, double *v);
void dd2_mlp_head_backward_grouped_f64(const dd2_mlp_head *hd, const double *params,
                                       double *grads, dd2_mlp_head_acts_f64 *a, const double *dv,
                                       double *dx_t, double *dc, int P, int group);

void dd2_logits_forward_f64(const dd2_logits_head *lh, const double *params, const double *f,
                            size_t N, double *logits);
void dd2_logits_backward_f64(const dd2_logits_head *lh, const double *params, double *grads,
                             const double *f, const double *dlogits, size_t N, double *df);

#endif
