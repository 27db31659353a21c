/* Fault injection for tests (core/fault.h). */
#include "core/fault.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"

int dd2_fault_nan(const char *stage, long step) {
    const char *v = getenv("DD2_INJECT_NAN");
    if (!v || !*v) return 0;
    char name[64];
    int rank = -1;
    long first = -1, last = -1;
    const int n = sscanf(v, "%63[^:]:%d:%ld-%ld", name, &rank, &first, &last);
    if (n < 3) {
        static int warned;
        if (!warned++) dd2_warn("DD2_INJECT_NAN='%s' is not STAGE:RANK:FIRST[-LAST]; ignored", v);
        return 0;
    }
    if (n == 3) last = first;
    return strcmp(name, stage) == 0 && rank == dd2_rank() && step >= first && step <= last;
}

void dd2_fault_poison(const char *stage, long step, float *g) {
    if (dd2_fault_nan(stage, step)) g[0] = NAN;
}
