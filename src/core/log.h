/* Logging with a rank and time prefix, and timers.
 *
 * Every line goes to stderr as "[rank r t=12.3s] message" (t = seconds since dd2_log_init;
 * "[t=12.3s]" when MPI is not up). *_0 variants print on rank 0 only (or when MPI is not up).
 * Verbosity: DD2_LOG_QUIET prints only warnings and errors; DD2_LOG_DEBUG adds dd2_debug lines.
 */
#ifndef DD2_CORE_LOG_H
#define DD2_CORE_LOG_H

#include <stdio.h>

enum { DD2_LOG_QUIET = 0, DD2_LOG_INFO = 1, DD2_LOG_DEBUG = 2 };

/* Start the clock used by the "t=" prefix; safe to call more than once (first call wins). */
void dd2_log_init(void);
void dd2_log_set_level(int level);
int dd2_log_level(void);

/* Monotonic wall-clock seconds (arbitrary origin). */
double dd2_now(void);
/* Seconds since dd2_log_init. */
double dd2_elapsed(void);

void dd2_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dd2_info0(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dd2_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dd2_warn0(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dd2_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dd2_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Write the "[rank r t=..s] " prefix into buf (used by the progress line). */
void dd2_log_prefix(char *buf, int n);

#endif
