/* The op interface in single precision (model/ops.h): the CPU backend used by the networks.
 * The code lives in ops_cpu_impl.inc, shared with the double-precision twins (ops_cpu_f64.c). */
#include "model/ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

typedef float real;
#define OP_SUFFIX
#define CBLAS_GEMM cblas_sgemm
#define R_EXP expf
#define R_TANH tanhf
/* element-wise loops: one clone per ISA, picked at load time (the build targets baseline x86-64) */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OP_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define OP_VEC
#endif

#include "model/ops_cpu_impl.inc"
