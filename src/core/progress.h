/* A progress reporter for long loops: rate and ETA.
 *
 * On rank 0 (or without MPI) it prints a log line at most every `interval` seconds (and at the
 * end): "[rank 0 t=12.3s] teacher 1200/5000 (24.0%) 85.3 it/s ETA 44.5s | loss 2.31".
 * When stderr is a terminal it instead redraws a single live bar with \r.
 */
#ifndef DD2_CORE_PROGRESS_H
#define DD2_CORE_PROGRESS_H

typedef struct dd2_progress {
    char label[64];
    long total;       /* number of units of work (>0) */
    long done;
    long done_at_begin; /* `start` given to begin: rate counts only work done since */
    double t_start;
    double t_last_print;
    double interval;  /* seconds between log lines (non-tty) */
    int tty;          /* live bar mode */
    int active;       /* printing enabled on this rank */
    int bar_drawn;    /* a live bar is on screen and needs a newline before other output */
} dd2_progress;

/* Begin a progress report. `start` is where work resumes (e.g. after a checkpoint); rates are
 * computed from the units done since begin, so a resumed run shows a truthful ETA. */
void dd2_progress_begin(dd2_progress *p, const char *label, long start, long total, double interval);
/* Record that `done` units are finished; `extra` (may be NULL) is appended, e.g. "loss 2.31". */
void dd2_progress_update(dd2_progress *p, long done, const char *extra);
/* Print the final line (always) and finish the live bar. */
void dd2_progress_end(dd2_progress *p, const char *extra);

/* Format seconds as "45.2s", "12m03s" or "3h07m" into buf. */
void dd2_format_duration(double seconds, char *buf, int n);

#endif
