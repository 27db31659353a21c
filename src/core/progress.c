#define _POSIX_C_SOURCE 200809L
#include "core/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/status.h"

void dd2_format_duration(double s, char *buf, int n) {
    if (s < 0) s = 0;
    if (s < 60)
        snprintf(buf, (size_t)n, "%.1fs", s);
    else if (s < 3600)
        snprintf(buf, (size_t)n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, (size_t)n, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

void dd2_progress_begin(dd2_progress *p, const char *label, long start, long total, double interval) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total > 0 ? total : 1;
    p->done = start;
    p->done_at_begin = start;
    p->t_start = dd2_now();
    p->t_last_print = p->t_start;
    p->interval = interval > 0 ? interval : 10.0;
    p->active = dd2_rank() <= 0 && dd2_log_level() >= DD2_LOG_INFO;
    p->tty = isatty(STDERR_FILENO);
}

static void render(dd2_progress *p, const char *extra, int final) {
    double now = dd2_now();
    double dt = now - p->t_start;
    double frac = (double)p->done / (double)p->total;
    char eta[32] = "?", rate[48] = "";
    /* rate over the units done since begin */
    if (dt > 0) {
        double r = (double)(p->done - p->done_at_begin) / dt;
        if (r > 0) {
            snprintf(rate, sizeof rate, " %.3g it/s", r);
            dd2_format_duration((double)(p->total - p->done) / r, eta, sizeof eta);
        }
    }
    char elapsed[32];
    dd2_format_duration(dt, elapsed, sizeof elapsed);
    const char *sep = (extra && extra[0]) ? " | " : "";
    if (!extra) extra = "";
    if (p->tty) {
        char bar[31];
        int filled = (int)(frac * 30 + 0.5);
        for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %ld/%ld%s %s %s%s%s\033[K", p->label, bar, p->done, p->total, rate,
                final ? "took" : "ETA", final ? elapsed : eta, sep, extra);
        if (final) fputc('\n', stderr);
        p->bar_drawn = !final;
        fflush(stderr);
    } else {
        char prefix[64];
        dd2_log_prefix(prefix, sizeof prefix);
        fprintf(stderr, "%s%s %ld/%ld (%.1f%%)%s %s %s%s%s\n", prefix, p->label, p->done, p->total,
                100.0 * frac, rate, final ? "took" : "ETA", final ? elapsed : eta, sep, extra);
        fflush(stderr);
    }
    p->t_last_print = now;
}

void dd2_progress_update(dd2_progress *p, long done, const char *extra) {
    p->done = done;
    if (!p->active) return;
    double now = dd2_now();
    double every = p->tty ? 0.2 : p->interval;
    if (now - p->t_last_print >= every) render(p, extra, 0);
}

void dd2_progress_end(dd2_progress *p, const char *extra) {
    if (!p->active) return;
    render(p, extra, 1);
}
