/* The op interface: every numerical building block of the networks as forward/backward pairs on
 * plain float arrays (llm.c style). The CPU implementation (src/model/ops_cpu_f32.c, OpenBLAS for
 * the GEMMs) is the reference; a CUDA backend implements this same header on device pointers.
 * Conventions, op list and measured gradient-check errors: docs/ops.md.
 *
 * CONVENTIONS (they hold for every op below unless its comment says otherwise)
 * - Pairs: op_<name>_forward(out, [cache..], in, [params..], dims..) and
 *          op_<name>_backward(din, [dparams..], dout, in, [cache..], [params..], dims..).
 * - Layout: row-major; shapes in comments, e.g. // [N,C]. Row counts and strides are size_t,
 *   feature sizes int. GEMM dimensions must each be < 2^31 (BLAS int).
 * - Forward outputs and caches are written with `=` (every element of the stated shape, and
 *   nothing else: with a row stride, the columns between rows are left untouched).
 * - Backward ACCUMULATES every gradient, of inputs and of parameters alike, with `+=`: the
 *   caller zeroes gradient buffers once before a backward pass; a tensor used twice (residual
 *   streams, shared weights) just receives both contributions. The one exception is RoPE (a pure
 *   rotation used in place on the fused qkv buffer): both its directions write with `=`.
 * - Every gradient pointer may be NULL: that gradient is then not computed (frozen weights,
 *   inputs that need no gradient, or an in-place residual stream, see op_add_backward).
 * - Aliasing: no output may alias an input unless the op's comment allows it.
 * - Memory: all pointers (int arrays too) are in the backend's memory (host for the CPU backend,
 *   device for CUDA). Ops never allocate; an op that needs work space takes a caller-provided
 *   `scratch` whose size (in elements) is stated. Ops have no callbacks, no I/O, no error
 *   return: shapes, strides and indices are the caller's contract and are not checked.
 * - Numerics: softmaxes subtract the row maximum, log-softmax uses log-sum-exp, reductions
 *   (norm statistics, softmax sums, losses) accumulate in double; no -ffast-math. Results are
 *   deterministic for a given BLAS thread count (no threading inside ops other than BLAS).
 * - Double-precision twins of every function (same code, suffix _f64) are declared in
 *   model/ops_f64.h; they exist for finite-difference gradient checks.
 */
#ifndef DD2_MODEL_OPS_H
#define DD2_MODEL_OPS_H

#include <stddef.h>

/* ---------------------------------------------------------------------------------------------
 * Linear layer: out = inp · Wᵀ (+ bias), W in PyTorch's layout [OC,IC].
 */

/* out [N,OC] = inp [N,IC] · W[OC,IC]ᵀ + bias [OC]; bias may be NULL. BLAS GEMM. */
void op_matmul_forward(float *out, const float *inp, const float *W, const float *bias, size_t N,
                       int IC, int OC);
/* The same product as plain loops with double accumulators: the test reference for the GEMM. */
void op_matmul_forward_naive(float *out, const float *inp, const float *W, const float *bias,
                             size_t N, int IC, int OC);
/* dinp [N,IC] += dout · W;  dW [OC,IC] += doutᵀ · inp;  dbias [OC] += Σ_rows dout. */
void op_matmul_backward(float *dinp, float *dW, float *dbias, const float *dout, const float *inp,
                        const float *W, size_t N, int IC, int OC);

/* ---------------------------------------------------------------------------------------------
 * Element-wise sum (residual) and 2D strided copy.
 */

/* out [n] = a [n] + b [n]; out may alias a or b. */
void op_add_forward(float *out, const float *a, const float *b, size_t n);
/* da += dout; db += dout. For an in-place residual stream (the gradient buffer of the stream is
 * the same before and after the add) pass NULL for that side: its identity path needs nothing. */
void op_add_backward(float *da, float *db, const float *dout, size_t n);

/* dst row r [cols] at dst + r·dst_stride = src row r at src + r·src_stride, r < rows.
 * Backward: dsrc row r += ddst row r (same strides). */
void op_copy2d_forward(float *dst, const float *src, size_t rows, int cols, size_t dst_stride,
                       size_t src_stride);
void op_copy2d_backward(float *dsrc, const float *ddst, size_t rows, int cols, size_t dst_stride,
                        size_t src_stride);

/* ---------------------------------------------------------------------------------------------
 * Normalisations over the last dimension.
 */

/* RMSNorm: out [N,C] = inp / sqrt(mean(inp²) + eps) ⊙ w [C]. Cache: rstd [N] = 1/sqrt(mean+eps). */
void op_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float eps,
                        size_t N, int C);
/* dinp [N,C] +=, dw [C] +=. */
void op_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                         const float *w, const float *rstd, size_t N, int C);

/* LayerNorm: out [N,C] = (inp − mean) · rstd ⊙ w [C] + b [C]; w == NULL means w = 1, b == NULL
 * means b = 0 (NULL both: no affine, MAR's final layer). Biased variance, as PyTorch.
 * Cache: mean [N], rstd [N] = 1/sqrt(var + eps). */
void op_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                          const float *b, float eps, size_t N, int C);
/* dinp [N,C] +=, dw [C] +=, db [C] += (w may be NULL as in the forward; then dw is ignored). */
void op_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                           const float *w, const float *mean, const float *rstd, size_t N, int C);

/* ---------------------------------------------------------------------------------------------
 * Activations (element-wise; the forward's out may alias inp, but the backward needs inp).
 */

/* SiLU: out [n] = x·sigmoid(x). */
void op_silu_forward(float *out, const float *inp, size_t n);
void op_silu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* GELU, tanh approximation: out = 0.5·x·(1 + tanh(sqrt(2/π)·(x + 0.044715·x³))). */
void op_gelu_forward(float *out, const float *inp, size_t n);
void op_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

/* SwiGLU: out [N,F] = silu(a) ⊙ b, where row r of a is at a + r·in_stride (same for b).
 * Halves of one GEMM output h [N,2F] (weights w1 and w3 stacked as one [2F,d] matrix):
 *     a = h, b = h + F, in_stride = 2F;    separate arrays [N,F]: in_stride = F.
 * Backward: da, db += (same layout and stride as a, b; they may be halves of one dh). */
void op_swiglu_forward(float *out, const float *a, const float *b, size_t N, int F,
                       size_t in_stride);
void op_swiglu_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                        size_t N, int F, size_t in_stride);

/* ---------------------------------------------------------------------------------------------
 * Rotary position embeddings, table driven. Pairs are adjacent elements (2j, 2j+1) of a head
 * vector, j = 0..hd/2-1, rotated by the angle whose cos/sin are the tables' [t, j] entries:
 *     (a, b) → (a·cos − b·sin, a·sin + b·cos).
 * Tables are [T, hd/2] (row t = sequence position t).
 */

/* LlamaGen's 2D RoPE (docs/model.md), base 10000: with freq_k = 10000^(-2k/(hd/2)),
 * k < hd/4, position p ≥ 1 uses grid cell p−1 (row = (p−1)/gw, col = (p−1)%gw); pair j < hd/4
 * turns by row·freq_j, pair j ≥ hd/4 by col·freq_{j−hd/4}; position 0 (class token) has
 * cos = sin = 0 (its rotated q and k are zero). Requires hd % 4 == 0 and T ≤ gh·gw + 1.
 * Angles are computed in double and rounded. cos, sin: [T, hd/2]. */
void op_rope_tables_2d(float *cos, float *sin, int T, int hd, int gh, int gw);
/* 1D RoPE, base 10000 (LlamaGen's precompute_freqs_cis): position 0 (class token) has
 * cos = sin = 0; pair j at position p >= 1 turns by (p-1)·10000^(-2j/hd). cos, sin: [T, hd/2]. */
void op_rope_tables_1d(float *cos, float *sin, int T, int hd);

/* Element (b, t, h, i) of inp/out is at (b·T + t)·stride + h·hd + i; rows are [B,T] and
 * heads h < H; other columns are not touched. Use on q and k inside a fused qkv [B,T,3d]:
 * inp = out = qkv (+ d for k), stride = 3d; on a plain [B,T,d] array: stride = d.
 * For incremental decoding of positions [t0, t0+m) pass cos + t0·hd/2, sin + t0·hd/2, T = m.
 * out = rotate(inp), written with `=`; out may equal inp (in place). */
void op_rope_forward(float *out, const float *inp, const float *cos, const float *sin, int B,
                     int T, int H, int hd, size_t stride);
/* dinp = rotate_back(dout) (rotation by the negative angle), written with `=` (the exception to
 * the += rule); dinp may equal dout: in the network, call it in place on dqkv's q and k parts. */
void op_rope_backward(float *dinp, const float *dout, const float *cos, const float *sin, int B,
                      int T, int H, int hd, size_t stride);

/* ---------------------------------------------------------------------------------------------
 * Multi-head attention with a mask given by per-position step ids.
 *
 * qkv [B,T,3d]: q, k, v consecutive in each row; head h uses columns h·hd..(h+1)·hd−1 of each
 * (hd = d/H). Query position p may attend to key position q iff
 *     step[q] < step[p]  or  (same_step && step[q] == step[p]).
 * Plain causal: step[p] = p, same_step = 1. VAR block-causal: step[p] = scale index of p,
 * same_step = 1. Scores are scaled by 1/sqrt(hd); softmax over the allowed keys. A position
 * that may attend to nothing (e.g. the first block with same_step = 0) gets output 0 and a zero
 * probability row, and no gradient flows through it.
 */

/* out [B,T,d] (heads concatenated); cache att [B,H,T,T] = probabilities (0 where masked).
 * step [T] (int, backend memory). */
void op_attention_forward(float *out, float *att, const float *qkv, const int *step, int same_step,
                          int B, int T, int d, int H);
/* dqkv [B,T,3d] += (q, k and v parts); scratch: T·T elements (OP_ATTENTION_SCRATCH_BWD).
 * The mask is encoded in att (masked entries are 0), so no step ids are needed. */
#define OP_ATTENTION_SCRATCH_BWD(T) ((size_t)(T) * (size_t)(T))
void op_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int B, int T, int d, int H);

/* Incremental forward with a KV cache (sampling, no backward): the new positions [t0, t0+m)
 * come with their qkv [B,m,3d] (RoPE already applied); their k and v are written into
 * kcache, vcache [B,Tmax,d] at rows t0..t0+m−1; then each new position attends to the cached
 * keys [0, t0+m) allowed by the step ids (step [Tmax], absolute positions). out [B,m,d].
 * The result equals op_attention_forward's rows t0..t0+m−1 when every key a new position may
 * attend to lies in [0, t0+m): true for non-decreasing step ids when each call covers whole
 * steps (m = 1 with step[p] = p; one VAR scale per call with same_step = 1).
 * scratch: m·(t0+m) elements (≤ OP_ATTENTION_SCRATCH_KV(m, Tmax)). */
#define OP_ATTENTION_SCRATCH_KV(m, Tmax) ((size_t)(m) * (size_t)(Tmax))
void op_attention_forward_kv(float *out, float *kcache, float *vcache, float *scratch,
                             const float *qkv, const int *step, int same_step, int t0, int m,
                             int B, int Tmax, int d, int H);

/* ---------------------------------------------------------------------------------------------
 * AdaLN pieces (MAR's SimpleMLPAdaLN) and the timestep embedding.
 *
 * The modulation rows come from one GEMM output ada [P/group, k·W] split into consecutive chunks
 * (shift = ada, scale = ada + W, gate = ada + 2W; mod_stride = k·W). Row p of x uses modulation
 * row p / group: group = 1 for per-point conditioning (MAR's head), group = T to broadcast one
 * row per sequence of T tokens (DiT/VAR-style). Gradients of the modulation rows land at the
 * same offsets in dada (same stride), summed over the rows that share them.
 */

/* out [P,W] = x ⊙ (1 + scale) + shift; out may alias x (then the backward needs a copy of x). */
void op_modulate_forward(float *out, const float *x, const float *shift, const float *scale,
                         size_t P, int W, size_t mod_stride, int group);
/* dx += dout ⊙ (1 + scale); dshift += dout; dscale += dout ⊙ x. */
void op_modulate_backward(float *dx, float *dshift, float *dscale, const float *dout,
                          const float *x, const float *scale, size_t P, int W, size_t mod_stride,
                          int group);

/* Gated residual: out [P,W] = x + gate ⊙ h (gate rows strided as above); out may alias x. */
void op_gated_residual_forward(float *out, const float *x, const float *gate, const float *h,
                               size_t P, int W, size_t gate_stride, int group);
/* dx += dout (NULL for an in-place residual stream, see op_add_backward); dgate += dout ⊙ h;
 * dh += dout ⊙ gate. */
void op_gated_residual_backward(float *dx, float *dgate, float *dh, const float *dout,
                                const float *gate, const float *h, size_t P, int W,
                                size_t gate_stride, int group);

/* Sinusoidal timestep embedding (MAR's timestep_embedding, max_period 10000), forward only (t is
 * sampled, never learned): with half = dim/2 and args_k = t_scale·t[p]·exp(−ln(10000)·k/half),
 * out [P,dim] = cat(cos(args), sin(args)) (+ a zero column when dim is odd). t [P].
 * Model: t_scale = 1000, dim = 256. Computed in double and rounded (args reach ~1000, where
 * float32 arguments would cost ~1e-4 absolute). */
void op_timestep_embedding_forward(float *out, const float *t, float t_scale, size_t P, int dim);

/* ---------------------------------------------------------------------------------------------
 * Embedding table gather.
 */

/* Row i of out (at out + i·out_stride) = table[idx[i]] [C], i < N; idx [N] in [0, rows). Use
 * out_stride = C for a dense [N,C] output, T·C to write position 0 of each sequence of [B,T,C]. */
void op_embedding_forward(float *out, const int *idx, const float *table, size_t N, int C,
                          size_t out_stride);
/* dtable[idx[i]] += dout row i (scatter-add; repeated indices sum, in order of i). */
void op_embedding_backward(float *dtable, const float *dout, const int *idx, size_t N, int C,
                           size_t out_stride);

/* ---------------------------------------------------------------------------------------------
 * Softmax and losses.
 */

/* Row softmax: out [N,V] = softmax(inp [N,V]); out may alias inp. */
void op_softmax_forward(float *out, const float *inp, size_t N, int V);
/* dinp += out ⊙ (dout − Σ_v dout·out) per row. */
void op_softmax_backward(float *dinp, const float *dout, const float *out, size_t N, int V);

/* Softmax cross-entropy: losses [N] = logsumexp(logits_i) − logits_i[targets[i]]; cache
 * probs [N,V] = softmax(logits). targets [N]; a negative target marks an ignored row (loss 0,
 * no gradient). probs may alias logits (the logits are then overwritten by the probabilities). */
void op_crossentropy_forward(float *losses, float *probs, const float *logits, const int *targets,
                             size_t N, int V);
/* dlogits [N,V] += dlosses[i] · (probs_i − onehot(targets[i])). The caller chooses the reduction
 * through dlosses: mean → 1/N_valid, per-row weights → w_i/norm. dlogits must not alias probs. */
void op_crossentropy_backward(float *dlogits, const float *dlosses, const float *probs,
                              const int *targets, size_t N, int V);

/* (Weighted) mean squared error: loss [1] = Σ_i w_i ‖a_i − b_i‖² / norm over rows i < N of
 * a, b [N,C]; w [N] (NULL: all 1). E.g. norm = N·C for the plain mean. */
void op_mse_forward(float *loss, const float *a, const float *b, const float *w, size_t N, int C,
                    float norm);
/* With r = dloss · 2 w_i (a_i − b_i) / norm: da += r, db −= r. dloss is the loss's gradient
 * (1 when this loss is the objective). */
void op_mse_backward(float *da, float *db, float dloss, const float *a, const float *b,
                     const float *w, size_t N, int C, float norm);

#endif
