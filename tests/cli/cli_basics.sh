#!/usr/bin/env bash
# The dd2 command line: help, version, usage errors, config printing, bad configs (exit 2).
source "$(dirname "$0")/lib.sh"

expect_exit help 0 "$DD2" --help
expect_contains help_lists_config "config CONFIG"
expect_contains help_lists_version "version"
expect_exit version 0 "$DD2" --version
expect_contains version_backend "backend:"
expect_contains version_blas "BLAS: OpenBLAS core"
expect_exit no_command 2 "$DD2"
expect_exit unknown_command 2 "$DD2" frobnicate
expect_contains unknown_command_msg "unknown command 'frobnicate'"
expect_exit unknown_option 2 "$DD2" config --bogus
expect_contains unknown_option_msg "unknown option '--bogus'"
expect_exit set_needs_value 2 "$DD2" config x.yaml --set
expect_exit missing_config_file 2 "$DD2" config /nonexistent/dir/run.yaml
expect_contains missing_config_names_path "/nonexistent/dir/run.yaml"

expect_exit schema 0 "$DD2" config --schema
expect_contains schema_has_seed "run.seed"

# every bad config: exit 2 and the exact expected message on stderr
n=0
for f in tests/data/bad-config/*.yaml; do
  want=$(cat "${f%.yaml}.expected")
  base=$(basename "$f" .yaml)
  expect_exit "bad_config_exit_$base" 2 "$DD2" config "$f"
  expect_contains "bad_config_msg_$base" "$want"
  n=$((n + 1))
done
[ "$n" -ge 20 ] && pass bad_config_count || fail bad_config_count "only $n bad configs (want >= 20)"

# good configs print and re-read to the same resolved config
for f in configs/*.yaml tests/data/good-config/*.yaml; do
  [ -f "$f" ] || continue
  base=$(basename "$f" .yaml)
  # stdout only: stderr may carry log lines with the elapsed time (e.g. the OpenBLAS core
  # restart), which differ between two runs on a loaded machine
  expect_exit "print_$base" 0 "$DD2" config "$f"
  tmp=$(mktemp --suffix=.yaml)
  first=$("$DD2" config "$f" 2>/dev/null)
  printf '%s\n' "$first" >"$tmp"
  expect_exit "reprint_$base" 0 "$DD2" config "$tmp"
  second=$("$DD2" config "$tmp" 2>/dev/null)
  [ -n "$first" ] && [ "$second" = "$first" ] && pass "roundtrip_$base" ||
    fail "roundtrip_$base" "printed config differs after re-reading"
  rm -f "$tmp"
done

# --set override and a bad --set
expect_exit set_override 0 "$DD2" config tests/data/good-config/minimal.yaml --set run.seed=1234
expect_contains set_override_value "seed: 1234"
expect_exit set_bad_type 2 "$DD2" config tests/data/good-config/minimal.yaml --set run.seed=abc

# under MPI: rank 0 reads and broadcasts; every rank agrees; errors exit 2 without MPI_Abort noise
if command -v mpirun >/dev/null; then
  expect_exit mpi_config 0 mpirun -np 2 "$DD2" config tests/data/good-config/minimal.yaml
  expect_exit mpi_bad_config 2 mpirun -np 2 "$DD2" config tests/data/bad-config/$(basename "$(ls tests/data/bad-config/*.yaml | head -1)")
  if grep -q MPI_ABORT <<<"$out"; then fail mpi_bad_config_clean "MPI_Abort used for a collective error"; else pass mpi_bad_config_clean; fi
else
  fail mpi_config "mpirun not found (run tools/install-deps.sh)"
fi
cli_done
