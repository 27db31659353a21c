/* The networks in double precision (model/nets_f64.h): the same code as nets_f32.c
 * (nets_impl.inc) with real = double and names suffixed _f64, on the _f64 ops, for gradient
 * checks. The register functions and network structs are shared with nets_f32.c. */
#include "model/nets_f64.h"
#include "model/ops_f64.h"

#include <stdlib.h>
#include <string.h>

typedef double real;
#define NET_SUFFIX _f64

#include "model/nets_impl.inc"
