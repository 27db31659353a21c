#define _POSIX_C_SOURCE 200809L
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/status.h"

static double g_t0 = -1.0;
static int g_level = DD2_LOG_INFO;

double dd2_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void dd2_log_init(void) {
    if (g_t0 < 0) g_t0 = dd2_now();
}

void dd2_log_set_level(int level) { g_level = level; }
int dd2_log_level(void) { return g_level; }

double dd2_elapsed(void) {
    dd2_log_init();
    return dd2_now() - g_t0;
}

void dd2_log_prefix(char *buf, int n) {
    if (dd2_rank() >= 0)
        snprintf(buf, (size_t)n, "[rank %d t=%.1fs] ", dd2_rank(), dd2_elapsed());
    else
        snprintf(buf, (size_t)n, "[t=%.1fs] ", dd2_elapsed());
}

static void emit(const char *tag, const char *fmt, va_list ap) {
    char body[4096], prefix[64];
    vsnprintf(body, sizeof body, fmt, ap);
    dd2_log_prefix(prefix, sizeof prefix);
    /* one fprintf per line so that lines from different ranks do not interleave mid-line */
    fprintf(stderr, "%s%s%s\n", prefix, tag, body);
    fflush(stderr);
}

static int is_rank0(void) { return dd2_rank() <= 0; }

#define DEFINE_LOG(name, tag, cond)                                                                \
    void name(const char *fmt, ...) {                                                              \
        if (!(cond)) return;                                                                       \
        va_list ap;                                                                                \
        va_start(ap, fmt);                                                                         \
        emit(tag, fmt, ap);                                                                        \
        va_end(ap);                                                                                \
    }

DEFINE_LOG(dd2_info, "", g_level >= DD2_LOG_INFO)
DEFINE_LOG(dd2_info0, "", g_level >= DD2_LOG_INFO && is_rank0())
DEFINE_LOG(dd2_warn, "warning: ", 1)
DEFINE_LOG(dd2_warn0, "warning: ", is_rank0())
DEFINE_LOG(dd2_error, "error: ", 1)
DEFINE_LOG(dd2_debug, "debug: ", g_level >= DD2_LOG_DEBUG)
