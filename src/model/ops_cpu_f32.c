/* The op interface in single precision (model/ops.h): the CPU backend used by the networks.
 * The code lives in ops_cpu_impl.inc, shared with the double-precision twins (ops_cpu_f64.c). */
#include "model/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "model/gemm_bf16.h"

/* cblas_sgemm, or the bf16 GEMM where distill.matmul = bf16 enabled it and it takes the case */
static void sgemm_or_bf16(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
                          const enum CBLAS_TRANSPOSE tb, const int M, const int N, const int K,
                          const float alpha, const float *A, const int lda, const float *B,
                          const int ldb, const float beta, float *C, const int ldc) {
    if (order == CblasRowMajor && alpha == 1.0f &&
        dd2_gemm_bf16(ta == CblasTrans, tb == CblasTrans, (size_t)M, (size_t)N, (size_t)K, A,
                      (size_t)lda, B, (size_t)ldb, beta, C, (size_t)ldc))
        return;
    cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

typedef float real;
#define OP_SUFFIX
#define CBLAS_GEMM sgemm_or_bf16
#define R_EXP expf
#define R_TANH tanhf
/* element-wise loops: one clone per ISA, picked at load time (the build targets baseline x86-64) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OP_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define OP_VEC
#endif

#include "model/ops_cpu_impl.inc"
