/* Double-precision twins of every op in model/ops.h (same names with suffix _f64, double for
 * float), compiled from the same source (ops_cpu_impl.inc). They exist for finite-difference
 * gradient checks and as a higher-precision reference in tests; contracts, shapes and the
 * =/+= rules are exactly those documented in model/ops.h. CPU only.
 *
 * Keep in sync with model/ops.h: ops_cpu_f64.c includes this header, so a declaration that no
 * longer matches the shared definition fails to compile.
 */
#ifndef DD2_MODEL_OPS_F64_H
#define DD2_MODEL_OPS_F64_H

#include <stddef.h>

#include "model/ops.h" /* the contracts, and the scratch sizes (in elements, any precision) */

void op_matmul_forward_f64(double *out, const double *inp, const double *W, const double *bias,
                           size_t N, int IC, int OC);
void op_matmul_forward_naive_f64(double *out, const double *inp, const double *W,
                                 const double *bias, size_t N, int IC, int OC);
void op_matmul_backward_f64(double *dinp, double *dW, double *dbias, const double *dout,
                            const double *inp, const double *W, size_t N, int IC, int OC);
void op_add_forward_f64(double *out, const double *a, const double *b, size_t n);
void op_add_backward_f64(double *da, double *db, const double *dout, size_t n);
void op_copy2d_forward_f64(double *dst, const double *src, size_t rows, int cols, size_t dst_stride,
                           size_t src_stride);
void op_copy2d_backward_f64(double *dsrc, const double *ddst, size_t rows, int cols,
                            size_t dst_stride, size_t src_stride);
void op_rmsnorm_forward_f64(double *out, double *rstd, const double *inp, const double *w,
                            double eps, size_t N, int C);
void op_rmsnorm_backward_f64(double *dinp, double *dw, const double *dout, const double *inp,
                             const double *w, const double *rstd, size_t N, int C);
void op_layernorm_forward_f64(double *out, double *mean, double *rstd, const double *inp,
                              const double *w, const double *b, double eps, size_t N, int C);
void op_layernorm_backward_f64(double *dinp, double *dw, double *db, const double *dout,
                               const double *inp, const double *w, const double *mean,
                               const double *rstd, size_t N, int C);
void op_silu_forward_f64(double *out, const double *inp, size_t n);
void op_silu_backward_f64(double *dinp, const double *dout, const double *inp, size_t n);
void op_gelu_forward_f64(double *out, const double *inp, size_t n);
void op_gelu_backward_f64(double *dinp, const double *dout, const double *inp, size_t n);
void op_swiglu_forward_f64(double *out, const double *a, const double *b, size_t N, int F,
                           size_t in_stride);
void op_swiglu_backward_f64(double *da, double *db, const double *dout, const double *a,
                            const double *b, size_t N, int F, size_t in_stride);
void op_rope_tables_2d_f64(double *cos, double *sin, int T, int hd, int gh, int gw);
void op_rope_tables_1d_f64(double *cos, double *sin, int T, int hd);
void op_rope_forward_f64(double *out, const double *inp, const double *cos, const double *sin,
                         int B, int T, int H, int hd, size_t stride);
void op_rope_backward_f64(double *dinp, const double *dout, const double *cos, const double *sin,
                          int B, int T, int H, int hd, size_t stride);
void op_attention_forward_f64(double *out, double *att, const double *qkv, const int *step,
                              int same_step, int B, int T, int d, int H);
void op_attention_backward_f64(double *dqkv, double *scratch, const double *dout, const double *qkv,
                               const double *att, int B, int T, int d, int H);
void op_attention_forward_kv_f64(double *out, double *kcache, double *vcache, double *scratch,
                                 const double *qkv, const int *step, int same_step, int t0, int m,
                                 int B, int Tmax, int d, int H);
void op_modulate_forward_f64(double *out, const double *x, const double *shift, const double *scale,
                             size_t P, int W, size_t mod_stride, int group);
void op_modulate_backward_f64(double *dx, double *dshift, double *dscale, const double *dout,
                              const double *x, const double *scale, size_t P, int W,
                              size_t mod_stride, int group);
void op_gated_residual_forward_f64(double *out, const double *x, const double *gate,
                                   const double *h, size_t P, int W, size_t gate_stride, int group);
void op_gated_residual_backward_f64(double *dx, double *dgate, double *dh, const double *dout,
                                    const double *gate, const double *h, size_t P, int W,
                                    size_t gate_stride, int group);
void op_timestep_embedding_forward_f64(double *out, const double *t, double t_scale, size_t P,
                                       int dim);
void op_embedding_forward_f64(double *out, const int *idx, const double *table, size_t N, int C,
                              size_t out_stride);
void op_embedding_backward_f64(double *dtable, const double *dout, const int *idx, size_t N, int C,
                               size_t out_stride);
void op_softmax_forward_f64(double *out, const double *inp, size_t N, int V);
void op_softmax_backward_f64(double *dinp, const double *dout, const double *out, size_t N, int V);
void op_crossentropy_forward_f64(double *losses, double *probs, const double *logits,
                                 const int *targets, size_t N, int V);
void op_crossentropy_backward_f64(double *dlogits, const double *dlosses, const double *probs,
                                  const int *targets, size_t N, int V);
void op_mse_forward_f64(double *loss, const double *a, const double *b, const double *w, size_t N,
                        int C, double norm);
void op_mse_backward_f64(double *da, double *db, double dloss, const double *a, const double *b,
                         const double *w, size_t N, int C, double norm);

#endif
