/* Fault injection for tests of the failure paths (docs/testing.md). Off unless the environment
 * variable DD2_INJECT_NAN is set:
 *     DD2_INJECT_NAN=STAGE:RANK:FIRST[-LAST]     e.g. "distill:1:3-5"
 * makes world rank RANK put a NaN into its local gradient at steps FIRST..LAST of STAGE (the
 * stage's own step counter, before the gradient all-reduce), so every rank sees a non-finite sum
 * and skips the update. A malformed value is ignored with a warning.
 *     DD2_INJECT_FAIL=STAGE:RANK:STEP
 * makes world rank RANK fail (a runtime error only that rank sees) at step STEP of STAGE: the
 * path where one rank fails and the others are inside a collective. */
#ifndef DD2_CORE_FAULT_H
#define DD2_CORE_FAULT_H

#include "core/status.h"

/* 1 if a NaN is to be injected at this stage and step on this rank. */
int dd2_fault_nan(const char *stage, long step);

/* g[0] = NaN when dd2_fault_nan(stage, step). */
void dd2_fault_poison(const char *stage, long step, float *g);

/* DD2_ERR_RUNTIME ("injected failure ...") when DD2_INJECT_FAIL selects this rank, stage and step. */
int dd2_fault_fail(const char *stage, long step, dd2_status *st);

#endif
