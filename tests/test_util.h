/* Minimal test harness shared by every test binary.
 *
 *   TEST(name) { CHECK(x == 1); CHECK_NEAR(a, b, 1e-6); CHECK_MSG(ok, "got %d", v); }
 *   int main(void) { RUN(name); return test_summary(); }
 *
 * Each test prints "PASS: <binary>/<name>" or "FAIL: <binary>/<name>" (with the failing checks
 * before it); tests/run.sh counts those lines. test_summary() returns non-zero if anything failed,
 * so a binary can never report success while a check failed.
 */
#ifndef DD2_TEST_UTIL_H
#define DD2_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_checks_failed_in_test = 0;
static int tu_tests_failed = 0;
static int tu_tests_passed = 0;
static const char *tu_binary = "test";

#define TEST(name) static void test_##name(void)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            tu_checks_failed_in_test++;                                                            \
            fprintf(stderr, "  check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK(cond) CHECK_MSG(cond, "%s", "")

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double tu_a_ = (double)(a), tu_b_ = (double)(b);                                           \
        CHECK_MSG(fabs(tu_a_ - tu_b_) <= (tol), "%.9g vs %.9g (tol %.3g)", tu_a_, tu_b_, (double)(tol)); \
    } while (0)

#define CHECK_STREQ(a, b)                                                                          \
    do {                                                                                           \
        const char *tu_a_ = (a), *tu_b_ = (b);                                                     \
        CHECK_MSG(tu_a_ && tu_b_ && strcmp(tu_a_, tu_b_) == 0, "\n    got:      \"%s\"\n    expected: \"%s\"", \
                  tu_a_ ? tu_a_ : "(null)", tu_b_ ? tu_b_ : "(null)");                             \
    } while (0)

/* Check a dd2 status-returning call succeeded, printing the message otherwise. */
#define CHECK_OK(call, st)                                                                         \
    do {                                                                                           \
        int tu_rc_ = (call);                                                                       \
        CHECK_MSG(tu_rc_ == 0, "rc=%d: %s", tu_rc_, (st)->msg);                                    \
    } while (0)

#define RUN(name)                                                                                  \
    do {                                                                                           \
        tu_checks_failed_in_test = 0;                                                              \
        test_##name();                                                                             \
        if (tu_checks_failed_in_test) {                                                            \
            tu_tests_failed++;                                                                     \
            printf("FAIL: %s/%s\n", tu_binary, #name);                                             \
        } else {                                                                                   \
            tu_tests_passed++;                                                                     \
            printf("PASS: %s/%s\n", tu_binary, #name);                                             \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

static inline void test_init(const char *argv0) {
    const char *slash = strrchr(argv0, '/');
    tu_binary = slash ? slash + 1 : argv0;
}

static inline int test_summary(void) {
    fprintf(stderr, "%s: %d passed, %d failed\n", tu_binary, tu_tests_passed, tu_tests_failed);
    return tu_tests_failed ? 1 : 0;
}

#endif
