/* Random, non-degenerate test weights for a parameter table (shared by the model tests):
 * matrices U(±sqrt(3/fan_in)), norm gains 1 ± 0.2, other vectors ± 0.3, class table U(±1).
 * u is a draw in [-1, 1); the result is rounded to float so that both precisions agree. */
#ifndef DD2_TEST_RANDOM_PARAMS_H
#define DD2_TEST_RANDOM_PARAMS_H

#include <math.h>
#include <string.h>

#include "model/params.h"

static inline float random_param_value(const dd2_tensor_info *t, double u) {
    double v;
    if (strstr(t->name, "cls_emb"))
        v = u;
    else if (t->ndim == 2)
        v = u * sqrt(3.0 / (double)t->shape[1]);
    else if (t->init == DD2_INIT_ONES)
        v = 1 + 0.2 * u;
    else
        v = 0.3 * u;
    return (float)v;
}

#endif
