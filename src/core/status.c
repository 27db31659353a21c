#include "core/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_rank = -1;
static int g_size = 1;

void dd2_set_rank(int rank, int size) {
    g_rank = rank;
    g_size = size;
}
int dd2_rank(void) { return g_rank; }
int dd2_world_size(void) { return g_size; }

void dd2_status_clear(dd2_status *st) {
    if (!st) return;
    memset(st, 0, sizeof *st);
    st->rank = -1;
}

int dd2_status_fail(dd2_status *st, int code, const char *file, int line, const char *func,
                    const char *fmt, ...) {
    if (!st) return code;
    st->code = code;
    st->collective = 0; /* a new failure is this rank's until the caller knows every rank shares it */
    st->file = file;
    st->line = line;
    st->func = func;
    st->rank = g_rank;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
    return code;
}

int dd2_status_prefix(dd2_status *st, const char *fmt, ...) {
    if (!st) return DD2_ERR_RUNTIME;
    char prefix[DD2_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[2 * DD2_MSG_MAX + 4];
    snprintf(joined, sizeof joined, "%s: %s", prefix, st->msg);
    memcpy(st->msg, joined, sizeof st->msg - 1);
    st->msg[sizeof st->msg - 1] = 0;
    return st->code;
}

void dd2_status_format(const dd2_status *st, int with_location, char *buf, int n) {
    if (!with_location || !st->file) {
        snprintf(buf, (size_t)n, "%s", st->msg);
        return;
    }
    if (st->rank >= 0)
        snprintf(buf, (size_t)n, "%s [at %s:%d %s(), rank %d]", st->msg, st->file, st->line,
                 st->func, st->rank);
    else
        snprintf(buf, (size_t)n, "%s [at %s:%d %s()]", st->msg, st->file, st->line, st->func);
}

void *dd2_malloc_st(size_t bytes, dd2_status *st, const char *file, int line, const char *func) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) dd2_status_fail(st, DD2_ERR_RUNTIME, file, line, func, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *dd2_calloc_st(size_t n, size_t size, dd2_status *st, const char *file, int line, const char *func) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        dd2_status_fail(st, DD2_ERR_RUNTIME, file, line, func, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}
