#!/usr/bin/env bash
# The body shared by jobs/slurm/*.sbatch: runs one dd2 command as a job step over all the job's
# tasks, passes the batch shell's signals on to it, and requeues the job after a preemption
# checkpoint. Not submitted itself: an sbatch script ends with
#
#     exec bash "$DD2_HOME/jobs/slurm/launch.sh" COMMAND CONFIG [dd2 options]...
#
# (exec keeps the batch shell's PID, which is what `--signal=B:...` and `scancel --batch` signal).
#
# What it does, in order:
#   1. sources jobs/slurm/env.sh (threads, GPUs, NCCL, MPI; the only place for them);
#   2. logs the job, its tasks and SLURM_RESTART_COUNT (0 on the first start, n after n requeues);
#      on a restart it adds `--set checkpoint.resume=auto` so that dd2 resumes from LATEST even
#      when the config says `never` (dd2's default is auto already);
#   3. starts `srun --mpi=pmix dd2 COMMAND CONFIG ...` in the background and waits for it;
#   4. on SIGUSR1 or SIGTERM to the batch shell, sends SIGUSR1 to the step (srun forwards it to
#      every task; srun itself would answer SIGTERM by killing the tasks). dd2 agrees across ranks
#      at the next step boundary, saves a checkpoint and exits 0;
#   5. when the step stopped that way after SIGUSR1, `scontrol requeue`s the job (it needs
#      `--requeue`): Slurm starts it again with the same job id and SLURM_RESTART_COUNT + 1, and
#      dd2 resumes where it stopped. After SIGTERM (scancel, or Slurm's own preemption, which
#      requeues by itself when PreemptMode=REQUEUE) it checkpoints but does not requeue.
#   The exit status is the step's (0 after a requeue).
#
# Variables (all optional; sbatch passes your environment to the job):
#   DD2_HOME         the dd2 directory (default: the directory sbatch was run from)
#   DD2_BIN          the dd2 binary (default: $DD2_HOME/build/dd2)
#   DD2_LAUNCHER     srun (default) or mpirun (Open MPI's mpirun inside the allocation: it reads
#                    the nodes and tasks from Slurm; use it when the cluster's srun has no PMIx)
#   DD2_SRUN_MPI     srun's --mpi plugin (default pmix; `srun --mpi=list` shows the cluster's)
#   DD2_SRUN_ARGS    more srun options, e.g. "--gpu-bind=closest" (split on spaces)
#   DD2_MPIRUN_ARGS  more mpirun options, e.g. "--bind-to core" (split on spaces)
#   DD2_REQUEUE      1 (default): requeue after a SIGUSR1 checkpoint; 0: just stop
set -uo pipefail

log() { echo "dd2-slurm: $(date '+%F %T') $*"; }
die() { log "error: $*"; exit 2; }

[ $# -ge 2 ] || die "usage: launch.sh COMMAND CONFIG [dd2 options]... (from an sbatch script; see jobs/slurm/README.md)"
[ -n "${SLURM_JOB_ID:-}" ] || die "not inside a Slurm job (submit with sbatch; see jobs/slurm/README.md)"
DD2_HOME=${DD2_HOME:-${SLURM_SUBMIT_DIR:-$PWD}}
[ -f "$DD2_HOME/jobs/slurm/env.sh" ] ||
  die "DD2_HOME=$DD2_HOME is not the dd2 directory: submit from it, or set DD2_HOME"
DD2_BIN=${DD2_BIN:-$DD2_HOME/build/dd2}
[ -x "$DD2_BIN" ] || die "$DD2_BIN: not an executable (build it with make, or set DD2_BIN)"

# shellcheck source=jobs/slurm/env.sh
source "$DD2_HOME/jobs/slurm/env.sh"

command=$1
shift
args=("$command" "$@")
restarts=${SLURM_RESTART_COUNT:-0}
log "job $SLURM_JOB_ID (${SLURM_JOB_NAME:-}) on ${SLURM_JOB_NUM_NODES:-?} node(s) ${SLURM_JOB_NODELIST:-}," \
    "${SLURM_NTASKS:-?} tasks, ${SLURM_CPUS_PER_TASK:-1} CPU(s) per task; SLURM_RESTART_COUNT=$restarts"
if [ "$restarts" -gt 0 ]; then
  args+=(--set checkpoint.resume=auto)
  log "restart $restarts: dd2 resumes from the newest checkpoint (LATEST) of its run directory"
fi

case "${DD2_LAUNCHER:-srun}" in
  srun)
    launch=(srun "--mpi=${DD2_SRUN_MPI:-pmix}" --kill-on-bad-exit=1)
    # since Slurm 22.05 srun does not take --cpus-per-task from the batch job: pass it on
    if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then launch+=("--cpus-per-task=$SLURM_CPUS_PER_TASK"); fi
    # shellcheck disable=SC2206  # a list of options
    launch+=(${DD2_SRUN_ARGS:-})
    ;;
  mpirun)
    # shellcheck disable=SC2206
    launch=(mpirun ${DD2_MPIRUN_ARGS:-})
    ;;
  *) die "DD2_LAUNCHER must be srun or mpirun, not '$DD2_LAUNCHER'" ;;
esac

# ---- signals: only the batch shell gets --signal=B:USR1 (and scancel --batch); pass it on ----
pid=""
got_signal=""
interrupted=0
# shellcheck disable=SC2317  # called from the traps
on_signal() {
  got_signal=$1
  interrupted=1
  if [ -n "$pid" ]; then
    log "got SIG$1: asking dd2 to save a checkpoint and stop (SIGUSR1 to the job step)"
    kill -s USR1 "$pid" 2>/dev/null || true
  fi
}
trap 'on_signal USR1' USR1
trap 'on_signal TERM' TERM

if [ -n "$got_signal" ]; then
  # signalled before the step started: nothing to checkpoint, start again later
  rc=0
  log "got SIG$got_signal before the job step started"
else
  log "running: ${launch[*]} $DD2_BIN ${args[*]}"
  "${launch[@]}" "$DD2_BIN" "${args[@]}" &
  pid=$!
  rc=0
  while :; do
    interrupted=0
    wait "$pid"
    status=$?
    [ "$status" -eq 127 ] && break   # collected already (a signal came right after it ended)
    rc=$status
    [ "$interrupted" -eq 1 ] || break  # wait returned because the step ended, not for a signal
  done
  log "job step ended with exit code $rc"
fi

if [ "$got_signal" = USR1 ] && [ "$rc" -eq 0 ] && [ "${DD2_REQUEUE:-1}" = 1 ]; then
  log "checkpoint saved after SIGUSR1: requeueing job $SLURM_JOB_ID (scontrol requeue)"
  if ! scontrol requeue "$SLURM_JOB_ID"; then
    log "error: scontrol requeue failed (was the job submitted with --requeue?); run the same sbatch command again to resume"
    exit 1
  fi
  exit 0
fi
exit "$rc"
