#!/usr/bin/env bash
# The test runner behind `make test`.
#
# Runs every test binary in build/tests/ (unit tests, each may hold many cases) and every script
# in tests/cli/*.sh (command-line behaviour, each a case or many), counts "PASS:"/"FAIL:" lines,
# counts a binary that exits non-zero without a FAIL line as one failure, and ends with the line
# "N passed, N failed". Exits non-zero if anything failed.
#
# Usage: tests/run.sh [FILTER]      (FILTER: substring of test names to run)
set -u
cd "$(dirname "$0")/.."
filter="${1:-}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
export DD2_BIN="$PWD/build/dd2"
logdir=build/test-logs
mkdir -p "$logdir"
passed=0
failed=0
failed_names=()
t_all=$EPOCHREALTIME

run_one() {  # name, command...
  local name=$1; shift
  local log="$logdir/$name.log"
  local t0; t0=$EPOCHREALTIME
  "$@" >"$log" 2>&1
  local rc=$?
  local dt; dt=$(awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN{print a-b}')
  local p f
  p=$(grep -c '^PASS: ' "$log")
  f=$(grep -c '^FAIL: ' "$log")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL: $name (exit code $rc)" >>"$log"; fi
  if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL: $name (ran no check)" >>"$log"; fi
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$f" -gt 0 ]; then
    printf '  FAIL  %-28s %3d passed %3d failed  %6.1fs  (log: %s)\n' "$name" "$p" "$f" "$dt" "$log"
    grep -E '^(FAIL: |  check failed)' "$log" | head -20 | sed 's/^/        /'
    failed_names+=("$name")
  else
    printf '  ok    %-28s %3d passed           %6.1fs\n' "$name" "$p" "$dt"
  fi
}

for bin in build/tests/test_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  [ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && continue
  run_one "$name" "$bin"
done
for script in tests/cli/*.sh; do
  [ "$(basename "$script")" = lib.sh ] && continue
  [ -f "$script" ] || continue
  name=$(basename "$script" .sh)
  [ -n "$filter" ] && [[ "$name" != *"$filter"* ]] && continue
  run_one "$name" bash "$script"
done

dt=$(awk -v a="$EPOCHREALTIME" -v b="$t_all" 'BEGIN{print a-b}')
printf 'test time %.1fs\n' "$dt"
if [ ${#failed_names[@]} -gt 0 ]; then echo "failed: ${failed_names[*]}"; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
