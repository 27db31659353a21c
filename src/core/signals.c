#include "core/signals.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static volatile sig_atomic_t g_signal = 0;
static int g_stopped = 0;

static void on_signal(int sig) {
    if (!g_signal) g_signal = sig;
}

void dd2_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int dd2_stop_signal(void) { return (int)g_signal; }

const char *dd2_signal_name(int sig) {
    static char buf[32];
    if (sig == SIGTERM) return "SIGTERM";
    if (sig == SIGUSR1) return "SIGUSR1";
    snprintf(buf, sizeof buf, "signal %d", sig);
    return buf;
}

void dd2_mark_stopped(void) { g_stopped = 1; }
int dd2_stopped(void) { return g_stopped; }
