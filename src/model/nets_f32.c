/* The networks in single precision (model/backbone.h, model/mlp_head.h, model/logits_head.h):
 * what the program runs. The code lives in nets_impl.inc, shared with the double-precision twins
 * (nets_f64.c); the precision-independent registration code (nets_register.inc) is compiled here
 * only. */
#include "model/backbone.h"
#include "model/logits_head.h"
#include "model/mlp_head.h"
#include "model/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/nets_register.inc"

typedef float real;
#define NET_SUFFIX

#include "model/nets_impl.inc"
