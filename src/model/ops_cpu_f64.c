/* The op interface in double precision (model/ops_f64.h): the same code as ops_cpu_f32.c
 * (ops_cpu_impl.inc) with real = double and names suffixed _f64, for gradient checks. */
#include "model/ops_f64.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

typedef double real;
#define OP_SUFFIX _f64
#define CBLAS_GEMM cblas_dgemm
#define R_EXP exp
#define R_TANH tanh
#define OP_VEC

#include "model/ops_cpu_impl.inc"
