/* Matrix products in bfloat16 on Intel AMX (config `distill.matmul: bf16`, docs/model.md "bf16
 * matmul").
 *
 * dd2_gemm_bf16 computes, row-major (C [M,N] with leading dimension ldc, A and B likewise),
 *
 *     C = op(A) [M,K] · op(B) [K,N] + beta · C          alpha 1, beta 0 or 1
 *
 * with every element of A and B rounded to bfloat16 (round to nearest even; subnormals read as
 * zero) and the products summed in fp32 — the precision of GPU tensor cores under autocast.
 * op(X) is X or Xᵀ (ta, tb). The three forms of a linear layer are supported: (ta, tb) = (0, 1)
 * forward x·Wᵀ, (0, 0) input gradient dy·W, (1, 0) weight gradient dyᵀ·x, for M ≥ 32, K ≥ 16
 * and N a multiple of 32. It returns 1 when it computed C, and 0 — C untouched — when it did not:
 * bf16 not enabled, another form or beta, N not a multiple of 32, M < 32 or K < 16 (too small
 * to pay off); the caller then runs its fp32 GEMM. The result does not depend on how a caller
 * splits M (each row of C is summed in the same order), so 1 and 2 ranks agree as in fp32.
 *
 * Not thread-safe: one growing scratch buffer per process (dd2 runs one thread per rank).
 */
#ifndef DD2_MODEL_GEMM_BF16_H
#define DD2_MODEL_GEMM_BF16_H

#include <stddef.h>

#include "core/status.h"

/* 1 when this CPU has AMX-BF16 and AVX512-BF16 and the kernel grants the AMX tile state to
 * this process (it asks for it on the first call), else 0. The environment variable
 * DD2_NO_AMX (set, not "0") makes it 0, as on a CPU without AMX. */
int dd2_gemm_bf16_supported(void);

/* Route the f32 matmul ops (model/ops.h) through dd2_gemm_bf16 (on = 1) or not (0). Turning it
 * on where dd2_gemm_bf16_supported() is 0 fails with a message naming the missing feature. */
int dd2_gemm_bf16_enable(int on, dd2_status *st);
int dd2_gemm_bf16_enabled(void);

int dd2_gemm_bf16(int ta, int tb, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc);

/* x rounded to bfloat16 (nearest even) and back, as dd2_gemm_bf16 reads its inputs: the
 * reference for tests. */
float dd2_bf16_round(float x);

#endif
