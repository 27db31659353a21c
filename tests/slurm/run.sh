#!/usr/bin/env bash
# The Slurm tests: the batch scripts of jobs/slurm/ on a one-node Slurm started for the occasion
# (tools/slurm-local) with 3 tasks on the smoke config. Run by .ci/run after `make test`, and by
# `make slurm-test`; needs build/dd2 and build/tests/tools/h5cmp (make). About 70 s on 2 cores.
#
#   1. sbatch (through jobs/slurm/submit) the smoke distillation with 3 tasks; poll squeue every
#      0.2 s; `scontrol show job` says COMPLETED, exit 0:0, no restart; generator.h5 is written.
#   2. preemption: the same job again, `scancel --signal=USR1 --batch` once training runs; the
#      batch shell forwards it, dd2 checkpoints and stops, the script requeues the job, which
#      starts again with SLURM_RESTART_COUNT=1, resumes and ends with bitwise the weights of 1;
#      then jobs/slurm/pipeline.sbatch on the smoke config (the finished stages are skipped).
#   3. srun --mpi=none (3 singletons) stops with exit code 2 and the launch check's message,
#      directly and through the batch script; srun --mpi=pmix with the same command passes.
#   4. stopping Slurm leaves no Slurm, munge, srun or dd2 process behind.
#
# Prints PASS:/FAIL: lines like tests/cli and ends with "N passed, N failed" (exit 1 on a failure).
# Without the Slurm binaries it prints a SKIP line and "0 passed, 0 failed" and exits 0.
set -u
cd "$(dirname "$0")/../.." || exit 1
repo=$PWD
source tests/cli/lib.sh
cli_name=slurm
n_pass=0
n_fail=0
pass() { echo "PASS: $cli_name/$1"; n_pass=$((n_pass + 1)); }
fail() { echo "FAIL: $cli_name/$1: $2"; n_fail=$((n_fail + 1)); cli_failed=1; }
t_start=$EPOCHREALTIME
finish() {
  printf 'slurm tests: %.1fs\n' "$(awk -v a="$EPOCHREALTIME" -v b="$t_start" 'BEGIN{print a-b}')"
  echo "$n_pass passed, $n_fail failed"
  [ "$n_fail" -eq 0 ]
}

missing=()
for b in slurmctld slurmd sbatch srun squeue scontrol scancel sinfo; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "SKIP: slurm: Slurm is not installed (${missing[*]} not found; Debian: apt-get install slurm-wlm munge, or tools/install-deps.sh)"
  finish
  exit 0
fi

DD2=$repo/build/dd2
H5CMP=$repo/build/tests/tools/h5cmp
for f in "$DD2" "$H5CMP"; do
  [ -x "$f" ] || { fail build "$f missing: run make first"; finish; exit 1; }
done

# one node: Open MPI's shared-memory transports only (as tests/run.sh). jobs/slurm/env.sh makes
# the ranks yield instead of spinning (3 tasks on 2 cores).
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader

tmp=$(mktemp -d /tmp/dd2-test-slurm-XXXXXX)
sdir=$tmp/slurm
slurm_procs() {  # PIDs of the processes this test may leave behind: the daemons, and the srun and
                 # dd2 processes of this Slurm (other dd2 runs on the machine are not ours)
  local pid comm
  ps -eo pid=,comm= | while read -r pid comm; do
    case "$comm" in
      slurmctld | slurmd | slurmstepd | slurmscriptd | munged) echo "$pid" ;;
      srun | dd2) tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "SLURM_CONF=$sdir/slurm.conf" && echo "$pid" ;;
    esac
  done | sort
}
before=$(slurm_procs)
cleanup() {
  if [ -e "$sdir/slurm.conf" ]; then "$repo/tools/slurm-local" stop "$sdir" >/dev/null 2>&1; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- start ----
# 4 CPUs on a 2-core machine: 3 tasks need 3 CPUs under CR_CPU
if out=$(SLURM_LOCAL_CPUS=4 tools/slurm-local start "$sdir" 2>&1); then
  eval "$(grep '^export ' <<<"$out")"
  pass start
else
  fail start "tools/slurm-local start failed: $out"
  finish
  exit 1
fi

wait_job() {  # ID SECONDS: poll squeue every 0.2 s until the job has left the queue (requeues included)
  local i
  for ((i = 0; i < $2 * 5; i++)); do
    [ -z "$(squeue -h -j "$1" -o %i 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  return 1
}
job_field() { scontrol show job -o "$1" 2>/dev/null | grep -o "\b$2=[^ ]*" | head -1 | cut -d= -f2; }
expect_job() {  # NAME ID STATE EXITCODE RESTARTS
  local got
  got="$(job_field "$2" JobState) $(job_field "$2" ExitCode) $(job_field "$2" Restarts)"
  if [ "$got" = "$3 $4 $5" ]; then pass "$1"; else fail "$1" "JobState ExitCode Restarts = $got, expected $3 $4 $5"; fi
}
expect_file() {  # NAME FILE TEXT
  if grep -qF -- "$3" "$2" 2>/dev/null; then pass "$1"; else fail "$1" "$2 lacks '$3': $(tail -c 1500 "$2" 2>/dev/null)"; fi
}

# ---- inputs: the earlier stages on the smoke config, once (singletons, a few seconds) ----
cfg=$repo/configs/fmnist-smoke.yaml
runs=$tmp/runs
ok=1
for stage in vq teacher teacher-sample ardiff; do
  if ! "$DD2" "$stage" "$cfg" --set run.out_dir="$runs" --set run.name=base >"$tmp/$stage.log" 2>&1; then
    fail "inputs_$stage" "$(tail -5 "$tmp/$stage.log")"
    ok=0
    break
  fi
done
[ "$ok" = 1 ] && pass inputs
cp -r "$runs/base" "$runs/full"
cp -r "$runs/base" "$runs/pre"
# long enough to be signalled mid-run; the only checkpoint is the one the stop writes
dargs=(--set distill.steps=400 --set distill.eval_every=0 --set checkpoint.every=100000 --set log.every=100)

# ---- 1. the smoke distillation with 3 tasks, through jobs/slurm/submit from another directory ----
id=$(cd "$tmp" && TASKS_PER_NODE=3 SBATCH_ARGS=--parsable "$repo/jobs/slurm/submit" distill "$cfg" \
       --set run.out_dir="$runs" --set run.name=full "${dargs[@]}" 2>&1)
if [[ "$id" =~ ^[0-9]+$ ]]; then
  pass full_submitted
  if wait_job "$id" 180; then pass full_ended; else fail full_ended "job $id still queued after 180 s"; fi
  expect_job full_completed "$id" COMPLETED 0:0 0
  log=$tmp/slurm-dd2-distill-$id.out   # the script's default --output, in the submit directory
  expect_file full_log_restart_count "$log" "SLURM_RESTART_COUNT=0"
  expect_file full_log_3_ranks "$log" "run directory $runs/full (3 ranks)"
  expect_file full_log_srun_pmix "$log" "running: srun --mpi=pmix"
  expect_file full_log_wrote "$log" "distill: wrote $runs/full/distill/generator.h5"
  [ -s "$runs/full/distill/generator.h5" ] && pass full_generator || fail full_generator "no generator.h5"
else
  fail full_submitted "$id"
fi

# ---- 2. preemption: USR1 to the batch shell -> checkpoint, requeue, resume, same weights ----
log=$tmp/pre.out
id=$(sbatch --parsable --ntasks-per-node=3 -o "$log" jobs/slurm/distill.sbatch "$cfg" \
       --set run.out_dir="$runs" --set run.name=pre "${dargs[@]}" 2>&1)
if [[ "$id" =~ ^[0-9]+$ ]]; then
  started=0
  for _ in $(seq 600); do  # up to 120 s: training has started (the signal handler is installed)
    grep -q "distill: G [0-9.]*M parameters" "$log" 2>/dev/null && { started=1; break; }
    [ -z "$(squeue -h -j "$id" -o %i 2>/dev/null)" ] && break
    sleep 0.2
  done
  sleep 0.3
  if [ "$started" = 1 ] && scancel --signal=USR1 --batch "$id"; then pass pre_signalled; else
    fail pre_signalled "job $id: training did not start or scancel failed: $(tail -c 800 "$log")"; fi
  if wait_job "$id" 240; then pass pre_ended; else fail pre_ended "job $id still queued after 240 s"; fi
  expect_job pre_completed_after_1_restart "$id" COMPLETED 0:0 1
  expect_file pre_forwarded "$log" "got SIGUSR1: asking dd2 to save a checkpoint and stop"
  expect_file pre_checkpointed "$log" "distill: stopping on SIGUSR1 at step"
  expect_file pre_requeued "$log" "requeueing job $id (scontrol requeue)"
  expect_file pre_restart_count_1 "$log" "SLURM_RESTART_COUNT=1"
  expect_file pre_resumed "$log" "resumed from $runs/pre/distill/step_"
  expect_exit pre_same_weights 0 "$H5CMP" "$runs/full/distill/generator.h5" "$runs/pre/distill/generator.h5" params 0
else
  fail pre_submitted "$id"
fi

# ---- the whole pipeline on the smoke config (finishes the "base" run: fid-stats, distill, eval) ----
log=$tmp/pipeline.out
id=$(sbatch --parsable --ntasks-per-node=3 -o "$log" jobs/slurm/pipeline.sbatch "$cfg" \
       --set run.out_dir="$runs" --set run.name=base 2>&1)
if [[ "$id" =~ ^[0-9]+$ ]] && wait_job "$id" 180; then
  expect_job pipeline_completed "$id" COMPLETED 0:0 0
  expect_file pipeline_skipped_done "$log" "pipeline: [6/8] ardiff: done"
  [ -s "$runs/base/eval/table.md" ] && pass pipeline_eval_table || fail pipeline_eval_table "no eval/table.md: $(tail -c 800 "$log")"
else
  fail pipeline_job "job '$id' did not end in 180 s: $(tail -c 800 "$log")"
fi

# ---- 3. srun without PMIx: 3 singletons, caught by the launch check ----
expect_exit mpi_none_exit_2 2 srun -n 3 --mpi=none "$DD2" config "$cfg"
expect_contains mpi_none_message "Slurm started 3 tasks in this step (SLURM_STEP_NUM_TASKS=3) but the MPI world has size 1"
expect_contains mpi_none_hint "srun --mpi=pmix"
expect_exit mpi_pmix_passes 0 srun -n 3 --mpi=pmix "$DD2" config "$cfg"
log=$tmp/none.out
id=$(DD2_SRUN_MPI=none sbatch --parsable --ntasks-per-node=3 -o "$log" jobs/slurm/distill.sbatch "$cfg" \
       --set run.out_dir="$runs" --set run.name=none 2>&1)
if [[ "$id" =~ ^[0-9]+$ ]] && wait_job "$id" 60; then
  expect_job mpi_none_job_failed "$id" FAILED 2:0 0
  expect_file mpi_none_job_message "$log" "(SLURM_STEP_NUM_TASKS=3) but the MPI world has size 1"
else
  fail mpi_none_job "job '$id' did not end in 60 s"
fi

# ---- the scripts parse ----
for f in jobs/slurm/*.sbatch jobs/slurm/*.sh jobs/slurm/submit tools/slurm-local tests/slurm/run.sh; do
  if msg=$(bash -n "$f" 2>&1); then pass "bash_n_$(basename "$f")"; else fail "bash_n_$(basename "$f")" "$msg"; fi
done

# ---- 4. stop: no daemon left ----
if tools/slurm-local stop "$sdir" >/dev/null 2>&1; then pass stop; else fail stop "tools/slurm-local stop failed"; fi
# (exited daemons are zombies until init reaps them: give it a few seconds)
for _ in $(seq 50); do
  left=$(comm -13 <(echo "$before") <(slurm_procs))
  [ -z "$left" ] && break
  sleep 0.2
done
if [ -z "$left" ]; then pass no_process_left; else
  fail no_process_left "$(ps -o pid=,ppid=,stat=,comm=,args= -p "$(echo $left | tr ' ' ,)")"; fi
[ ! -e "$sdir" ] && pass slurm_dir_removed || fail slurm_dir_removed "$sdir still exists"

finish
