#!/usr/bin/env bash
# A rank that dies (SIGKILL) ends the whole job within 30 s with a message naming the rank,
# not a hang, whether it is a learner or a teacher-score worker; the last committed checkpoint
# stays valid and the run resumes from it.
source "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/dd2-test-kill-XXXXXX)
trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
cfg=configs/fmnist-smoke.yaml
small=(--set teacher_sample.n=64 --set ardiff.steps=4 --set ardiff.batch=16 --set distill.batch=12
       --set distill.eval_every=0 --set data.train_limit=600 --set data.test_limit=200 --set run.out_dir="$tmp")
for c in vq teacher teacher-sample ardiff; do expect_exit "prepare_$c" 0 "$DD2" "$c" "$cfg" "${small[@]}" --set run.name=a; done
cp -r "$tmp/a" "$tmp/b"

# world rank of a process of this job, from its environment
rank_of() { tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p'; }

for victim in 1 2; do # 3 ranks, dist.teacher_ranks = 1: rank 1 is a learner, rank 2 the worker
  name=$([ "$victim" = 1 ] && echo a || echo b)
  log=$tmp/$name.log
  mpirun -np 3 "$DD2" distill "$cfg" "${small[@]}" --set run.name="$name" --set dist.teacher_ranks=1 \
    --set distill.steps=5000 --set checkpoint.every=5 >"$log" 2>&1 &
  mpid=$!
  for _ in $(seq 300); do [ -f "$tmp/$name/distill/LATEST" ] && break; sleep 0.1; done
  pid=""
  for p in $(pgrep -f "distill $cfg"); do [ "$(rank_of "$p")" = "$victim" ] && pid=$p; done
  [ -n "$pid" ] && pass "found_rank_$victim" || fail "found_rank_$victim" "no process with OMPI_COMM_WORLD_RANK=$victim"
  t0=$(date +%s.%N)
  kill -9 "$pid"
  for _ in $(seq 300); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
  t1=$(date +%s.%N)
  if kill -0 "$mpid" 2>/dev/null; then
    fail "rank_${victim}_job_ends" "the job still runs 30 s after rank $victim was killed"; kill -9 "$mpid"
  else
    pass "rank_${victim}_job_ends ($(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s)"
  fi
  wait "$mpid"; rc=$?
  [ "$rc" -ne 0 ] && pass "rank_${victim}_nonzero_exit" || fail "rank_${victim}_nonzero_exit" "exit 0"
  out=$(cat "$log")
  expect_contains "rank_${victim}_named" "rank $victim with PID"
  pgrep -f "distill $cfg" >/dev/null && fail "rank_${victim}_no_orphans" "$(pgrep -af "distill $cfg")" ||
    pass "rank_${victim}_no_orphans"
  latest=$(cat "$tmp/$name/distill/LATEST")
  step=$((10#${latest#step_}))
  expect_exit "rank_${victim}_resume" 0 mpirun -np 3 "$DD2" distill "$cfg" "${small[@]}" --set run.name="$name" \
    --set dist.teacher_ranks=1 --set distill.steps=$((step + 3)) --set checkpoint.every=5
  expect_contains "rank_${victim}_resumed" "resumed from $tmp/$name/distill/$latest"
done
cli_done
