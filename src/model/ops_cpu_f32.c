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

#include "model/ops_cpu_impl.inc"
