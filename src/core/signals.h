/* Preemption signals. SIGTERM and SIGUSR1 (Slurm's `--signal=B:USR1@N`, forwarded by the batch
 * script) only set a flag; training loops check it at a step boundary, agree across ranks
 * (train/train_loop.h dd2_train_stop_agreed), save a checkpoint and return; the stage then marks
 * the run as stopped early so nothing after it (final files, later pipeline stages) runs, and
 * the driver exits 0. Running the same command again resumes from the checkpoint. */
#ifndef DD2_CORE_SIGNALS_H
#define DD2_CORE_SIGNALS_H

/* Install the handlers (idempotent). */
void dd2_signals_install(void);
/* The first stop signal received (SIGTERM or SIGUSR1), or 0. */
int dd2_stop_signal(void);
/* "SIGTERM", "SIGUSR1" or "signal N". */
const char *dd2_signal_name(int sig);
/* A stage stopped early on a signal (set by the stage; read by the pipeline and the driver). */
void dd2_mark_stopped(void);
int dd2_stopped(void);

#endif
