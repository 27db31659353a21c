/* The LlamaGen-style backbone with continuous input (docs/model.md "Backbone"), built on the ops
 * of model/ops.h. float here; the double twins (suffix _f64) are in model/nets_f64.h, compiled
 * from the same source (nets_impl.inc). C API overview: docs/model.md "C API".
 *
 * A dd2_backbone holds only dimensions and the offsets of its tensors in a dd2_param_table (no
 * data pointers): the same struct addresses the parameters, gradients, Adam moments and EMA
 * copy (all flat arrays with the table's layout), in either precision.
 *
 * Data flow (B sequences of n positions, row-major):
 *     x [B,n,C] tokens, y [B] classes in 0..K (K = null class)  ->  f [B,n,d] features
 * The backbone itself builds its input sequence [cls_emb[y], in_proj(x_0), .., in_proj(x_{n-2})]:
 * feature i depends on y and x_0..x_{i-1} only; the last token x_{n-1} is never read (its
 * gradient is 0).
 *
 * Rules (as for the ops): forward outputs are written with `=`; backward ACCUMULATES (`+=`) into
 * the parameter gradients and into dx; every gradient pointer may be NULL (not computed). The
 * forward and backward never allocate; they take an activation struct allocated once for a
 * batch capacity. Shapes are not checked at run time: B must not exceed the capacity.
 */
#ifndef DD2_MODEL_BACKBONE_H
#define DD2_MODEL_BACKBONE_H

#include <stddef.h>

#include "core/status.h"
#include "model/params.h"

#define DD2_RMSNORM_EPS 1e-5f

enum { DD2_INPUT_LINEAR = 0, DD2_INPUT_MLP = 1 }; /* config model.input_map */
enum { DD2_ROPE_2D = 0, DD2_ROPE_1D = 1 };        /* rotary embedding layout */

typedef struct dd2_backbone_dims {
    int C;         /* token dimension */
    int d;         /* model width */
    int H;         /* heads; hd = d/H must be divisible by 4 (2D RoPE) or 2 (1D RoPE) */
    int L;         /* layers (blocks), >= 1 */
    int F;         /* SwiGLU hidden width */
    int K;         /* classes; the class table has K+1 rows (row K = null class) */
    int n;         /* positions (tokens per image) */
    int gh, gw;    /* token grid (2D RoPE: gh·gw = n; ignored for 1D RoPE) */
    int input_map; /* DD2_INPUT_LINEAR or DD2_INPUT_MLP */
    int rope;      /* DD2_ROPE_2D or DD2_ROPE_1D */
} dd2_backbone_dims;

/* Offsets (in elements, into the flat buffers) of one block's tensors. Blocks are registered
 * one after the other with identical shapes, so block l's offsets are block 0's plus
 * l·layer_stride (dd2_backbone_layer_at). */
typedef struct dd2_backbone_layer {
    size_t attn_norm, wqkv, wo, mlp_norm, w1, w3, w2;
    int fused13; /* 1: w3 directly follows w1 (w3 == w1 + F·d): one GEMM with OC = 2F */
} dd2_backbone_layer;

typedef struct dd2_backbone {
    dd2_backbone_dims dims;
    int first, count;         /* its tensors are table entries [first, first + count) */
    size_t off_begin, off_end; /* and occupy flat elements [off_begin, off_end) */
    size_t cls_emb;           /* [K+1,d] */
    size_t in_w, in_b;        /* linear: in_proj.w [d,C], in_proj.b [d]; mlp: in_proj.w1, b1 */
    size_t in_w2, in_b2;      /* mlp only: in_proj.w2 [d,d], in_proj.b2 [d] */
    dd2_backbone_layer layer0; /* block 0 */
    size_t layer_stride;      /* elements between the same tensor of consecutive blocks */
    size_t final_norm;        /* [d] */
} dd2_backbone;

/* The offsets of block l's tensors. */
static inline dd2_backbone_layer dd2_backbone_layer_at(const dd2_backbone *bb, int l) {
    dd2_backbone_layer ly = bb->layer0;
    size_t s = (size_t)l * bb->layer_stride;
    ly.attn_norm += s, ly.wqkv += s, ly.wo += s, ly.mlp_norm += s, ly.w1 += s, ly.w3 += s;
    ly.w2 += s;
    return ly;
}

/* Validate dims and register the backbone's tensors in `tab` under `prefix` (NULL or "" gives
 * the names of docs/model.md: "cls_emb", "blocks.0.attn.wqkv", ...; "gen." gives
 * "gen.cls_emb", ...). Order: cls_emb, in_proj.*, then per block attn_norm.w, attn.wqkv,
 * attn.wo, mlp_norm.w, mlp.w1, mlp.w3, mlp.w2, then final_norm.w.
 * Init rules (training): linears Xavier-uniform, in_proj biases 0, norm gains 1, cls_emb
 * normal(0, 0.02). Weight decay on the matrices only (not on cls_emb, norms, biases).
 * Returns DD2_OK, or an error (bad dims: DD2_ERR_INPUT; table errors: DD2_ERR_RUNTIME). */
int dd2_backbone_register(dd2_backbone *bb, const dd2_backbone_dims *dims, const char *prefix,
                          dd2_param_table *tab, dd2_status *st);

/* The attention layout: step ids step [n] and same_step for op_attention_forward (causal:
 * step[p] = p, same_step = 1). The one place to change for a VAR-style block-causal layout;
 * the activation and KV-cache structs copy it at allocation. */
void dd2_backbone_step_ids(const dd2_backbone *bb, int *step, int *same_step);

/* ---- activations for training (forward + backward) ------------------------------------------
 * One allocation of `numel` elements for a batch capacity B; N = B·n rows. Per-block tensors
 * are stacked: block l's copy of a [N,w] tensor starts at ptr + l·N·w (N from the capacity).
 * The fields are the forward's saved values, exposed for tests and debugging. */
#define DD2_BACKBONE_ACTS_FIELDS(real)                                                             \
    int B, n;          /* capacity (batch) and positions */                                        \
    size_t numel;      /* elements in mem */                                                       \
    real *mem;                                                                                     \
    real *x;           /* [N,C] copy of the input tokens */                                        \
    real *u1, *s1;     /* mlp input map: pre-activation and SiLU, [N,d] (row 0 unused) */          \
    real *res;         /* [L+1][N,d] residual stream entering block l; res[0] = embedding,         \
                          res[L] = input of the final norm */                                      \
    real *ln1, *rstd1; /* [L][N,d], [L][N] attention-norm output, its 1/rms */                     \
    real *qkv;         /* [L][N,3d] (q and k rotated) */                                           \
    real *att;         /* [L][B,H,n,n] attention probabilities */                                  \
    real *ao;          /* [L][N,d] attention output (heads concatenated) */                        \
    real *mid;         /* [L][N,d] residual stream after the attention */                          \
    real *ln2, *rstd2; /* [L][N,d], [L][N] mlp-norm output, its 1/rms */                           \
    real *h13;         /* [L][N,2F] w1 and w3 outputs (fused: halves of rows; else two [N,F]) */   \
    real *sw;          /* [L][N,F] SwiGLU output */                                                \
    real *rstdf;       /* [N] final norm 1/rms */                                                  \
    real *cos, *sin;   /* RoPE tables [n, hd/2] */                                                 \
    real *g_res, *g_ln, *g_mid, *g_big; /* backward work: [N,d], [N,d], [N,max(d,F)],              \
                                           [N,max(3d,2F)] */                                       \
    real *scratch;     /* [n·n] attention backward */                                              \
    int *y;            /* [B] copy of the classes (for the backward) */                            \
    int *step;         /* [n] attention step ids, see dd2_backbone_step_ids */                     \
    int same_step;

typedef struct dd2_backbone_acts {
    DD2_BACKBONE_ACTS_FIELDS(float)
} dd2_backbone_acts;

/* Allocate activations for up to B sequences (and fill the RoPE tables and step ids). Memory:
 * numel·sizeof(float) bytes, see docs/model.md "C API". acts_free accepts a zeroed struct. */
int dd2_backbone_acts_alloc(dd2_backbone_acts *a, const dd2_backbone *bb, int B, dd2_status *st);
void dd2_backbone_acts_free(dd2_backbone_acts *a);

/* f [B,n,d] = backbone(x [B,n,C], y [B]) with params (the table's flat buffer). Saves what the
 * backward needs in `a` (x and y are copied: the caller may reuse them). f may not alias x. */
void dd2_backbone_forward(const dd2_backbone *bb, const float *params, dd2_backbone_acts *a,
                          const float *x, const int *y, int B, float *f);

/* Backward of the last forward on `a` (same B): given df [B,n,d] = dLoss/df,
 * grads += dLoss/dparams (flat buffer with the table's layout; NULL: no parameter gradients),
 * dx [B,n,C] += dLoss/dx (NULL: not computed; dx[:, n-1] receives 0). Overwrites the backward
 * work buffers of `a` only, so it may be called again (e.g. with another df). */
void dd2_backbone_backward(const dd2_backbone *bb, const float *params, float *grads,
                           dd2_backbone_acts *a, const float *df, float *dx, int B);

/* ---- KV cache for incremental sampling (forward only) ---------------------------------------
 * Per layer k and v [B,n,d] for B sequences, plus work space for up to m new positions per
 * call. */
#define DD2_BACKBONE_CACHE_FIELDS(real)                                                            \
    int B, m, n;       /* capacity: sequences, positions per call; positions */                    \
    size_t numel;                                                                                  \
    real *mem;                                                                                     \
    real *k, *v;       /* [L][B,n,d] cached (rotated) keys and values */                           \
    real *h, *u1, *s1, *ln, *rstd, *qkv, *ao, *tmp, *h13, *sw; /* work for B·m rows */             \
    real *cos, *sin;   /* RoPE tables [n, hd/2] */                                                 \
    real *scratch;     /* [m·n] */                                                                 \
    int *step;         /* [n] step ids (absolute positions) */                                     \
    int same_step;

typedef struct dd2_backbone_cache {
    DD2_BACKBONE_CACHE_FIELDS(float)
} dd2_backbone_cache;

/* Allocate a cache for up to B sequences and up to m positions per step call. */
int dd2_backbone_cache_alloc(dd2_backbone_cache *c, const dd2_backbone *bb, int B, int m,
                             dd2_status *st);
void dd2_backbone_cache_free(dd2_backbone_cache *c);

/* Incremental forward of positions [t0, t0+m) of B sequences (B, m within the capacity,
 * t0 + m <= n), after positions [0, t0) went through earlier calls on the same cache:
 *     x_prev [B,m,C]: row i holds token x_{t0+i-1}, the input of position t0+i; the row of
 *                     position 0 (i = 0 when t0 = 0) is ignored (the class token is used).
 *                     May be NULL when t0 = 0 and m = 1.
 *     y [B]         : classes (read only when t0 = 0).
 *     f [B,m,d]     : = features of positions t0..t0+m-1, equal to rows t0.. of the full
 *                     forward (for causal step ids, any split of [0,n) into calls works).
 * Writes layer k, v rows t0..t0+m-1 of the cache. */
void dd2_backbone_step(const dd2_backbone *bb, const float *params, dd2_backbone_cache *c,
                       const float *x_prev, const int *y, int t0, int m, int B, float *f);

#endif
