#!/usr/bin/env bash
# Paths of a job with teacher-score workers that used to hang (each run is bounded by `timeout`):
# learners sending different numbers of requests (uneven slices in ardiff's evaluation), a signal
# stopping a pipeline (the workers must stop too), one learner failing alone (the job must end,
# naming the failure, not wait), and the in-a-row NaN stop inside stage 1 with a worker.
source "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/dd2-test-workers-XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
cfg=configs/fmnist-smoke.yaml
small=(--set teacher_sample.n=64 --set ardiff.steps=4 --set ardiff.batch=16 --set distill.batch=12
       --set distill.steps=6 --set distill.eval_every=0 --set checkpoint.every=3 --set log.every=3
       --set data.train_limit=600 --set data.test_limit=200 --set run.out_dir="$tmp")
# run NAME NP COMMAND [--set ...]: the caller's settings come after (and override) the small ones
run() { local name=$1 np=$2 cmd=$3; shift 3; timeout 120 mpirun -np "$np" "$DD2" "$cmd" "$cfg" "${small[@]}" "$@" --set run.name="$name"; }
for c in vq teacher teacher-sample; do expect_exit "prepare_$c" 0 run a 1 "$c"; done
for r in b d; do cp -r "$tmp/a" "$tmp/$r"; done

# 3 learners with slices 5/5/6 of 16: their evaluations send 17, 17 and 15 requests
expect_exit uneven_requests 0 run a 4 ardiff --set dist.teacher_ranks=1
expect_contains uneven_requests_eval "fixed-noise eval loss"
cp -r "$tmp/a" "$tmp/c"

# SIGUSR1 during the distill stage of a pipeline: learners and worker stop, exit 0, resume
mpirun -np 3 "$DD2" pipeline "$cfg" "${small[@]}" --set run.name=b --set dist.teacher_ranks=1 \
  --set distill.steps=5000 --set checkpoint.every=1000 >"$tmp/b.log" 2>&1 &
mpid=$!
for _ in $(seq 1200); do grep -q "distill: G [0-9.]*M parameters" "$tmp/b.log" 2>/dev/null && break; sleep 0.1; done
sleep 1
kill -USR1 "$mpid"
for _ in $(seq 300); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$mpid" 2>/dev/null; then fail pipeline_stop_ends "still running 30 s after SIGUSR1"; kill -9 "$mpid"
else pass pipeline_stop_ends; fi
wait "$mpid"; rc=$?
out=$(cat "$tmp/b.log")
[ "$rc" -eq 0 ] && pass pipeline_stop_exit_0 || fail pipeline_stop_exit_0 "exit $rc: ${out: -600}"
expect_contains pipeline_stop_logged "stopped during distill on a signal"
at=$(sed -n 's/.*stopping on SIGUSR1 at step \([0-9]*\).*/\1/p' <<<"$out" | head -1)
expect_exit pipeline_resumes 0 run b 3 distill --set dist.teacher_ranks=1 --set distill.steps=$((${at:-0} + 3))
expect_contains pipeline_resumed "resumed from"

# SIGUSR1 in the middle of distill with a worker: the resumed run ends with bitwise the weights of
# an uninterrupted one
H5CMP=$(dirname "$DD2")/tests/tools/h5cmp
cp -r "$tmp/c" "$tmp/e"; cp -r "$tmp/c" "$tmp/f"
long=(--set dist.teacher_ranks=1 --set distill.steps=80 --set checkpoint.every=1000)
expect_exit usr1_reference 0 run e 3 distill "${long[@]}"
mpirun -np 3 "$DD2" distill "$cfg" "${small[@]}" --set run.name=f "${long[@]}" >"$tmp/f.log" 2>&1 &
mpid=$!
for _ in $(seq 600); do grep -q "distill: G [0-9.]*M parameters" "$tmp/f.log" 2>/dev/null && break; sleep 0.1; done
sleep 1
kill -USR1 "$mpid"; wait "$mpid"; rc=$?
out=$(cat "$tmp/f.log")
[ "$rc" -eq 0 ] && pass usr1_exit_0 || fail usr1_exit_0 "exit $rc: ${out: -600}"
expect_contains usr1_stopped "stopping on SIGUSR1"
expect_exit usr1_resume 0 run f 3 distill "${long[@]}"
expect_contains usr1_resumed "resumed from"
expect_exit usr1_bitwise 0 "$H5CMP" "$tmp/e/distill/generator.h5" "$tmp/f/distill/generator.h5" params 0

# one learner fails alone mid-training: the job ends (the driver aborts it) with the message
expect_exit one_learner_fails 1 env DD2_INJECT_FAIL=distill:1:2 timeout 60 mpirun -x DD2_INJECT_FAIL -np 3 "$DD2" \
  distill "$cfg" "${small[@]}" --set run.name=c --set dist.teacher_ranks=1
expect_contains one_learner_fails_message "distill: injected failure at step 2"

# stage 1 with a worker: NaN steps in a row stop it cleanly (collective), exit 1
expect_exit ardiff_nan_stop 1 env DD2_INJECT_NAN=ardiff:1:1-4 timeout 60 mpirun -x DD2_INJECT_NAN -np 3 "$DD2" \
  ardiff "$cfg" "${small[@]}" --set run.name=d --set dist.teacher_ranks=1 --set dist.max_bad_steps=2
expect_contains ardiff_nan_stop_message "ardiff: 2 steps in a row with a non-finite loss or gradient"
cli_done
