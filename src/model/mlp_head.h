/* MAR's SimpleMLPAdaLN diffusion head (docs/model.md "MLP diffusion head"), built on the ops of
 * model/ops.h. float here; the double twins (suffix _f64) are in model/nets_f64.h, compiled from
 * the same source (nets_impl.inc). C API overview: docs/model.md "C API".
 *
 *     x_t [P,C], t [P] (in [0,1]), c [P,d]  ->  v [P,C]
 *
 * P is any number of points (positions × noise draws). Like the backbone, the struct holds only
 * dims and tensor offsets; forward outputs are written with `=`, the backward accumulates
 * (`+=`) into parameter gradients, dx_t and dc, each of which may be NULL. No allocation in the
 * forward/backward; P must not exceed the activation capacity. There is no gradient with
 * respect to t (t is sampled, never learned).
 */
#ifndef DD2_MODEL_MLP_HEAD_H
#define DD2_MODEL_MLP_HEAD_H

#include <stddef.h>

#include "core/status.h"
#include "model/params.h"

#define DD2_TEMB_DIM 256       /* sinusoidal timestep embedding width */
#define DD2_TEMB_SCALE 1000.0f /* the embedding reads 1000·t */
#define DD2_LAYERNORM_EPS 1e-6f

typedef struct dd2_mlp_head_dims {
    int C;     /* token dimension (input and output) */
    int d;     /* condition width (the backbone's d) */
    int W;     /* head width */
    int depth; /* residual blocks, >= 1 */
} dd2_mlp_head_dims;

/* Offsets of one residual block's tensors; block r's are block 0's plus r·block_stride
 * (dd2_mlp_head_block_at). */
typedef struct dd2_mlp_head_block {
    size_t ada_w, ada_b, ln_w, ln_b, fc1_w, fc1_b, fc2_w, fc2_b; /* [3W,W] [3W] [W] [W] [W,W]... */
} dd2_mlp_head_block;

typedef struct dd2_mlp_head {
    dd2_mlp_head_dims dims;
    int first, count;          /* table entries [first, first + count) */
    size_t off_begin, off_end; /* flat elements [off_begin, off_end) */
    size_t time_w1, time_b1, time_w2, time_b2; /* [W,256] [W] [W,W] [W] */
    size_t cond_w, cond_b;                     /* [W,d] [W] */
    size_t in_w, in_b;                         /* [W,C] [W] */
    dd2_mlp_head_block block0;                 /* residual block 0 */
    size_t block_stride;                       /* elements between consecutive blocks */
    size_t final_ada_w, final_ada_b, final_w, final_b; /* [2W,W] [2W] [C,W] [C] */
} dd2_mlp_head;

/* The offsets of residual block r's tensors. */
static inline dd2_mlp_head_block dd2_mlp_head_block_at(const dd2_mlp_head *hd, int r) {
    dd2_mlp_head_block b = hd->block0;
    size_t s = (size_t)r * hd->block_stride;
    b.ada_w += s, b.ada_b += s, b.ln_w += s, b.ln_b += s, b.fc1_w += s, b.fc1_b += s;
    b.fc2_w += s, b.fc2_b += s;
    return b;
}

/* Validate dims and register the head's tensors under `prefix` (NULL: "head_mlp.", the names
 * of docs/model.md, e.g. "head_mlp.res.0.fc1.w"; "gen.head_mlp." for a second copy). Order:
 * time.w1 time.b1 time.w2 time.b2 cond.w cond.b in.w in.b, res.r.{ada.w ada.b ln.w ln.b fc1.w
 * fc1.b fc2.w fc2.b}, final.ada.w final.ada.b final.w final.b.
 * Init (MAR): linears Xavier-uniform, biases 0, time.w1/w2 normal(0, 0.02), ln.w 1, and zero
 * res.*.ada.*, final.ada.*, final.w, final.b. Weight decay on the matrices only. */
int dd2_mlp_head_register(dd2_mlp_head *hd, const dd2_mlp_head_dims *dims, const char *prefix,
                          dd2_param_table *tab, dd2_status *st);

/* Activations for up to P points; per-block tensors stacked (block r of a [P,w] tensor at
 * ptr + r·P·w, P from the capacity). */
#define DD2_MLP_HEAD_ACTS_FIELDS(real)                                                             \
    int P;             /* capacity (points) */                                                     \
    size_t numel;                                                                                  \
    real *mem;                                                                                     \
    real *x, *c;       /* [P,C], [P,d] copies of the inputs */                                     \
    real *temb;        /* [P,256] timestep embedding */                                            \
    real *t1, *t1s;    /* [P,W] time MLP hidden, before and after SiLU */                          \
    real *y, *sy;      /* [P,W] condition, silu(condition) */                                      \
    real *z;           /* [depth+1][P,W] residual stream entering block r; z[depth] final */       \
    real *ada;         /* [depth][P,3W] shift, scale, gate */                                      \
    real *ln, *mean, *rstd; /* [depth][P,W], [depth][P], [depth][P] */                             \
    real *mod;         /* [depth][P,W] modulated norm (fc1 input) */                               \
    real *h1, *h1s;    /* [depth][P,W] fc1 output before and after SiLU */                         \
    real *u;           /* [depth][P,W] fc2 output */                                               \
    real *fada;        /* [P,2W] final shift, scale */                                             \
    real *lnf, *meanf, *rstdf, *modf; /* [P,W], [P], [P], [P,W] */                                 \
    real *tmp;         /* [P,W] forward work */                                                    \
    real *g_z, *g_sy, *g_a, *g_b, *g_c, *g_ada; /* backward work [P,W] x5, [P,3W] */

typedef struct dd2_mlp_head_acts {
    DD2_MLP_HEAD_ACTS_FIELDS(float)
} dd2_mlp_head_acts;

int dd2_mlp_head_acts_alloc(dd2_mlp_head_acts *a, const dd2_mlp_head *hd, int P, dd2_status *st);
void dd2_mlp_head_acts_free(dd2_mlp_head_acts *a);

/* v [P,C] = head(x_t [P,C], t [P], c [P,d]). x_t and c are copied into `a`. */
void dd2_mlp_head_forward(const dd2_mlp_head *hd, const float *params, dd2_mlp_head_acts *a,
                          const float *x_t, const float *t, const float *c, int P, float *v);

/* Backward of the last forward on `a` (same P), given dv [P,C]: grads += d/dparams (NULL: none),
 * dx_t [P,C] += (NULL: none), dc [P,d] += (NULL: none). May be called again with another dv. */
void dd2_mlp_head_backward(const dd2_mlp_head *hd, const float *params, float *grads,
                           dd2_mlp_head_acts *a, const float *dv, float *dx_t, float *dc, int P);

/* The same with one condition row per group of `group` consecutive points (group ≥ 1 divides P):
 * t [P/group], c [P/group, d]; point p is conditioned on row p / group. Equal, in exact
 * arithmetic, to the plain forward on t and c repeated `group` times, at 1/group of the
 * condition path's cost (time MLP, cond and every AdaLN projection: most of the head's FLOPs).
 * Used when a token's m noise draws share one timestep (distill.t_shared). */
void dd2_mlp_head_forward_grouped(const dd2_mlp_head *hd, const float *params, dd2_mlp_head_acts *a,
                                  const float *x_t, const float *t, const float *c, int P, int group,
                                  float *v);
/* Backward of the last grouped forward (same P and group): dc [P/group, d] += (NULL: none). */
void dd2_mlp_head_backward_grouped(const dd2_mlp_head *hd, const float *params, float *grads,
                                   dd2_mlp_head_acts *a, const float *dv, float *dx_t, float *dc,
                                   int P, int group);

#endif
