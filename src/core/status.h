/* Status codes and error messages for all library code.
 *
 * Contract: every library function that can fail returns an int status code (DD2_OK = 0) and,
 * on failure, fills a caller-provided dd2_status with a human-readable message plus the source
 * location (file:line, function) and the MPI rank (when the driver has set one). Library code
 * never exits; only the driver (src/main.c) turns a status into an exit code or MPI_Abort.
 *
 * Exit codes: 0 ok, 1 runtime failure, 2 bad usage / config / input.
 *
 * Typical use:
 *     int foo(const char *path, dd2_status *st) {
 *         if (!f) return DD2_FAIL(st, DD2_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
 *         DD2_TRY(bar(path, st));                 // propagate a failure unchanged
 *         DD2_TRY_CTX(baz(st), st, "loading %s", path);   // propagate, prefixing context
 *         return DD2_OK;
 *     }
 */
#ifndef DD2_CORE_STATUS_H
#define DD2_CORE_STATUS_H

#include <stdarg.h>

enum {
    DD2_OK = 0,
    DD2_ERR_RUNTIME = 1, /* something failed while working: I/O, MPI, numerics */
    DD2_ERR_INPUT = 2    /* bad usage, config, dataset or checkpoint supplied by the user */
};

#define DD2_MSG_MAX 2048

typedef struct dd2_status {
    int code;               /* DD2_OK, DD2_ERR_RUNTIME or DD2_ERR_INPUT */
    char msg[DD2_MSG_MAX];  /* what went wrong, for the user; no trailing newline */
    const char *file;       /* where it was detected (source file), may be NULL */
    int line;
    const char *func;
    int rank;               /* MPI rank at the time (-1 if MPI not up) */
    int collective;         /* set when every rank is known to have failed the same way (e.g. a
                               config error found in broadcast bytes): the driver then exits
                               cleanly on all ranks instead of calling MPI_Abort */
} dd2_status;

/* Reset to OK with an empty message. */
void dd2_status_clear(dd2_status *st);

/* Record a failure (printf-style message) and return `code`. `st` may be NULL. */
int dd2_status_fail(dd2_status *st, int code, const char *file, int line, const char *func,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Prefix the existing message with "<context>: " (printf-style); returns st->code. */
int dd2_status_prefix(dd2_status *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Format "msg" plus, when `with_location`, " [at file:line func(), rank r]" into buf. */
void dd2_status_format(const dd2_status *st, int with_location, char *buf, int n);

/* The rank recorded in new statuses and printed by the logger; set by the driver after MPI_Init. */
void dd2_set_rank(int rank, int size);
int dd2_rank(void);  /* -1 before dd2_set_rank */
int dd2_world_size(void);

#define DD2_FAIL(st, code, ...) dd2_status_fail((st), (code), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Propagate a failure: evaluate expr (an int status); if non-zero, return it. */
#define DD2_TRY(expr)                                                                              \
    do {                                                                                           \
        int dd2_try_rc_ = (expr);                                                                  \
        if (dd2_try_rc_ != DD2_OK) return dd2_try_rc_;                                             \
    } while (0)

/* Propagate a failure after prefixing context to its message. */
#define DD2_TRY_CTX(expr, st, ...)                                                                 \
    do {                                                                                           \
        int dd2_try_rc_ = (expr);                                                                  \
        if (dd2_try_rc_ != DD2_OK) {                                                               \
            dd2_status_prefix((st), __VA_ARGS__);                                                  \
            return dd2_try_rc_;                                                                    \
        }                                                                                          \
    } while (0)

/* Fail with a runtime error when a condition does not hold (for internal invariants). */
#define DD2_CHECK(cond, st, ...)                                                                   \
    do {                                                                                           \
        if (!(cond)) return DD2_FAIL((st), DD2_ERR_RUNTIME, __VA_ARGS__);                          \
    } while (0)

/* Allocation helpers: fail with a runtime error naming the size when out of memory. */
#include <stddef.h>
void *dd2_malloc_st(size_t bytes, dd2_status *st, const char *file, int line, const char *func);
void *dd2_calloc_st(size_t n, size_t size, dd2_status *st, const char *file, int line, const char *func);
#define DD2_MALLOC(bytes, st) dd2_malloc_st((bytes), (st), __FILE__, __LINE__, __func__)
#define DD2_CALLOC(n, size, st) dd2_calloc_st((n), (size), (st), __FILE__, __LINE__, __func__)

#endif
