# Helpers for command-line tests (sourced by tests/cli/*.sh; not a test itself).
# Each check prints "PASS: <script>/<name>" or "FAIL: <script>/<name>: why"; `cli_done` exits
# non-zero when any check failed.
cli_name=$(basename "${BASH_SOURCE[1]}" .sh)
cli_failed=0
DD2=${DD2_BIN:-build/dd2}

pass() { echo "PASS: $cli_name/$1"; }
fail() { echo "FAIL: $cli_name/$1: $2"; cli_failed=1; }

# expect_exit NAME CODE CMD...   runs CMD, captures stdout+stderr in $out, checks the exit code
expect_exit() {
  local name=$1 want=$2; shift 2
  out=$("$@" 2>&1)
  local rc=$?
  if [ "$rc" -eq "$want" ]; then pass "$name"; else fail "$name" "exit code $rc, expected $want; output: ${out:0:400}"; fi
}

# expect_contains NAME TEXT   (on the $out of the last expect_exit)
expect_contains() {
  if grep -qF -- "$2" <<<"$out"; then pass "$1"; else fail "$1" "output lacks '$2'; output: ${out:0:400}"; fi
}

cli_done() { exit "$cli_failed"; }
