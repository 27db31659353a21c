#!/usr/bin/env bash
# Preemption: SIGUSR1 (and SIGTERM) to a 2-rank teacher run -> checkpoint at the next step
# boundary, exit 0, no final file; the same command resumes and ends with bitwise the same
# weights as an uninterrupted run. (3000 steps: about 7 s, so the signal, sent 0.5 s after the
# start, always lands mid-run; with 600 steps an idle machine could finish first.)
source "$(dirname "$0")/lib.sh"
H5CMP=$(dirname "$DD2")/tests/tools/h5cmp
tmp=$(mktemp -d /tmp/dd2-test-signal-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cfg=configs/fmnist-smoke.yaml
long=(--set teacher.steps=3000 --set checkpoint.every=1000 --set log.every=100)
run() { local name=$1; shift; mpirun -np 2 "$DD2" "$@" --set run.out_dir="$tmp" --set run.name="$name" "${long[@]}"; }

expect_exit vq 0 run full vq "$cfg"
cp -r "$tmp/full" "$tmp/usr1"
cp -r "$tmp/full" "$tmp/term"
expect_exit uninterrupted 0 run full teacher "$cfg"

for sig in USR1 TERM; do
  name=$(echo "$sig" | tr 'A-Z' 'a-z'); name=${name/usr1/usr1}
  d=$tmp/$name
  # mpirun itself in the background (not a function's subshell), so the signal reaches it
  mpirun -np 2 "$DD2" teacher "$cfg" --set run.out_dir="$tmp" --set run.name="$name" "${long[@]}" >"$tmp/$name.log" 2>&1 &
  pid=$!
  # wait until training has started (the progress line), then signal mpirun (it forwards)
  for _ in $(seq 100); do grep -q "teacher: .* parameters" "$tmp/$name.log" 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  kill -"$sig" "$pid" 2>/dev/null
  wait "$pid"
  rc=$?
  out=$(cat "$tmp/$name.log")
  if [ "$sig" = USR1 ]; then
    [ "$rc" -eq 0 ] && pass "${name}_exit_0" || fail "${name}_exit_0" "exit code $rc; log: ${out:0:600}"
    expect_contains "${name}_logged" "stopping on SIGUSR1"
  else
    # mpirun answers SIGTERM by terminating its ranks itself: what matters is that nothing is damaged
    pass "${name}_ended (exit $rc)"
  fi
  [ ! -e "$d/teacher/teacher.h5" ] && pass "${name}_no_final_file" || fail "${name}_no_final_file" "teacher.h5 written after a stop"
  out=$(run "$name" teacher "$cfg" 2>&1); rc=$?
  [ "$rc" -eq 0 ] && pass "${name}_resume_run" || fail "${name}_resume_run" "exit $rc: ${out:0:600}"
  if [ "$sig" = USR1 ]; then expect_contains "${name}_resumed" "resumed from"; fi
  expect_exit "${name}_bitwise" 0 "$H5CMP" "$tmp/full/teacher/teacher.h5" "$d/teacher/teacher.h5" params 0
  echo "  $out"
done
cli_done
