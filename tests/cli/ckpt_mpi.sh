#!/usr/bin/env bash
# Checkpoints under mpirun (src/io/ckpt.h): save with 2 learners, load with 1 and 3 (re-cut), save
# with 3 and load with 2, all bitwise; a failure on one rank during a save leaves the previous
# checkpoint and LATEST untouched. The program is build/tests/test_ckpt_mpi (next to build/dd2;
# override with DD2_TEST_CKPT_MPI); it checks the loaded data bitwise on every rank itself.
source "$(dirname "$0")/lib.sh"

bin=${DD2_TEST_CKPT_MPI:-$(dirname "$DD2")/tests/test_ckpt_mpi}
if ! command -v mpirun >/dev/null 2>&1; then
  fail have_mpirun "mpirun not found (run tools/install-deps.sh)"
  cli_done
fi
if [ ! -x "$bin" ]; then
  fail have_test_ckpt_mpi "$bin not built (run make)"
  cli_done
fi
# what tests/run.sh sets, for running this script on its own
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OMPI_MCA_rmaps_base_oversubscribe=${OMPI_MCA_rmaps_base_oversubscribe:-1}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
a=$tmp/a
b=$tmp/b

expect_exit save_np2 0 mpirun -np 2 "$bin" save "$a" 10
expect_contains save_np2_msg "saved step 10 with 2 learners"
for f in meta.h5 shard-00000-of-00002.h5 shard-00001-of-00002.h5; do
  [ -f "$a/step_00000010/$f" ] && pass "file_$f" || fail "file_$f" "$a/step_00000010/$f missing"
done
[ "$(cat "$a/LATEST" 2>/dev/null)" = step_00000010 ] && pass latest_np2 || fail latest_np2 "LATEST: $(cat "$a/LATEST" 2>&1)"
# the write is sharded: gen's flat buffer has 557 floats (wte 407 at 0, wqkv 91 at 416, scale 1
# at 512, norm 29 at 528), so shard 0 is [0, 278) and shard 1 [278, 557): shard 1 holds wte from
# element 278 on (129 floats); the tiny net (2 floats) puts one element in each shard
if command -v h5dump >/dev/null 2>&1; then
  s1=$a/step_00000010/shard-00001-of-00002.h5
  out=$(h5dump -a /gen/params/wte/offset -a /gen/params/wte/count -a /gen/params/wte/global_shape "$s1" 2>&1)
  expect_contains shard1_wte_offset '(0): 278'
  expect_contains shard1_wte_count '(0): 129'
  expect_contains shard1_wte_shape '(0): "[37, 11]"'
  out=$(h5dump -a /tiny/params/t/count "$s1" 2>&1)
  expect_contains shard1_tiny_count '(0): 1'
fi

expect_exit load_np1 0 mpirun -np 1 "$bin" load "$a" 10
expect_contains load_np1_bitwise "loaded step 10 (saved by 2 learners) with 1 learners: bitwise equal on every rank"
expect_exit load_np2 0 mpirun -np 2 "$bin" load "$a" 10
expect_contains load_np2_bitwise "bitwise equal on every rank"
expect_exit load_np3 0 mpirun -np 3 "$bin" load "$a" 10
expect_contains load_np3_bitwise "loaded step 10 (saved by 2 learners) with 3 learners: bitwise equal on every rank"

expect_exit save_np3 0 mpirun -np 3 "$bin" save "$b" 20
expect_exit load_np2_from_np3 0 mpirun -np 2 "$bin" load "$b" 20
expect_contains load_np2_from_np3_bitwise "loaded step 20 (saved by 3 learners) with 2 learners: bitwise equal on every rank"

# a failure on rank 1 while writing step 11: every rank reports it, nothing committed changes
expect_exit fail_rank1 1 mpirun -np 2 -x DD2_CKPT_FAIL_RANK=1 "$bin" save "$a" 11
expect_contains fail_rank1_msg "rank 1: "
expect_contains fail_rank1_injected "injected failure (DD2_CKPT_FAIL_RANK=1)"
expect_contains fail_rank1_not_saved "step_00000011 not saved"
[ "$(cat "$a/LATEST" 2>/dev/null)" = step_00000010 ] && pass latest_unchanged || fail latest_unchanged "LATEST: $(cat "$a/LATEST" 2>&1)"
[ ! -e "$a/step_00000011" ] && [ ! -e "$a/step_00000011.tmp" ] && pass no_step11 || fail no_step11 "$(ls "$a")"
expect_exit load_after_failure 0 mpirun -np 3 "$bin" load "$a" 10
expect_contains load_after_failure_bitwise "bitwise equal on every rank"

# a later save with 2 learners over the re-cut state works and becomes LATEST
expect_exit save_after_failure 0 mpirun -np 2 "$bin" save "$a" 11
expect_exit load_step11 0 mpirun -np 3 "$bin" load "$a" 11
cli_done
