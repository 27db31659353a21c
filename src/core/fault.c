/* Fault injection for tests (core/fault.h). */
#include "core/fault.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"

/* 1 if the variable `var` = STAGE:RANK:FIRST[-LAST] selects this stage, rank and step. */
static int selected(const char *var, const char *stage, long step) {
    const char *v = getenv(var);
    if (!v || !*v) return 0;
    char name[64];
    int rank = -1;
    long first = -1, last = -1;
    const int n = sscanf(v, "%63[^:]:%d:%ld-%ld", name, &rank, &first, &last);
    if (n < 3) {
        static int warned;
        if (!warned++) dd2_warn("%s='%s' is not STAGE:RANK:FIRST[-LAST]; ignored", var, v);
        return 0;
    }
    if (n == 3) last = first;
    return strcmp(name, stage) == 0 && rank == dd2_rank() && step >= first && step <= last;
}

int dd2_fault_nan(const char *stage, long step) { return selected("DD2_INJECT_NAN", stage, step); }

int dd2_fault_fail(const char *stage, long step, dd2_status *st) {
    if (!selected("DD2_INJECT_FAIL", stage, step)) return DD2_OK;
    return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: injected failure at step %ld (DD2_INJECT_FAIL)", stage, step);
}

void dd2_fault_poison(const char *stage, long step, float *g) {
    if (dd2_fault_nan(stage, step)) g[0] = NAN;
}
