#!/usr/bin/env bash
# dist.max_bad_steps counts skipped steps in a row ACROSS a resume: the run of skips is saved in
# every checkpoint (teacher and ardiff: train/bad_run; distill: distill/gen_bad_run and
# distill/guid_bad_run), so a run stopped in the middle of a run of NaN steps and resumed does not
# get a fresh allowance. Each stage: a first run ends with 2 skipped steps in a row (saved in its
# final checkpoint), the same run resumed with more steps skips one more and must stop at 3.
source "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/dd2-test-nanres-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cfg=configs/fmnist-smoke.yaml
common=(--set teacher_sample.n=64 --set ardiff.batch=16 --set distill.batch=12 --set checkpoint.every=0
        --set distill.eval_every=0 --set data.train_limit=600 --set data.test_limit=200 --set run.out_dir="$tmp"
        --set run.name=r --set dist.max_bad_steps=3)
run() { local np=$1 nan=$2; shift 2; mpirun -np "$np" -x DD2_INJECT_NAN="$nan" "$DD2" "$@" "${common[@]}"; }

expect_exit vq 0 run 1 "" vq "$cfg"
# teacher: steps 4, 5 (0-based) skipped, the run ends at 6 with 2 in a row; resumed to 12, step 6 skipped
expect_exit teacher_first 0 run 2 teacher:1:4-5 teacher "$cfg" --set teacher.steps=6 --set ardiff.steps=4 --set distill.steps=3
expect_contains teacher_first_run "(2 so far, 2 in a row)"
expect_exit teacher_resumed_stops 1 run 2 teacher:1:6 teacher "$cfg" --set teacher.steps=12 --set ardiff.steps=4 --set distill.steps=3
expect_contains teacher_resumed_count "(3 so far, 3 in a row)"
expect_contains teacher_resumed_message "teacher: 3 steps in a row with a non-finite loss or gradient (dist.max_bad_steps = 3)"

# a teacher for the next stages (the failed run above left its step-6 checkpoint: finish it cleanly)
expect_exit teacher_finish 0 run 2 "" teacher "$cfg" --set teacher.steps=12 --set ardiff.steps=4 --set distill.steps=3
expect_exit teacher_sample 0 run 1 "" teacher-sample "$cfg" --set teacher.steps=12 --set ardiff.steps=4 --set distill.steps=3
expect_exit ardiff_first 0 run 2 ardiff:1:2-3 ardiff "$cfg" --set teacher.steps=12 --set ardiff.steps=4 --set distill.steps=3
expect_contains ardiff_first_run "(2 so far, 2 in a row)"
expect_exit ardiff_resumed_stops 1 run 2 ardiff:1:4 ardiff "$cfg" --set teacher.steps=12 --set ardiff.steps=8 --set distill.steps=3
expect_contains ardiff_resumed_message "ardiff: 3 steps in a row with a non-finite loss or gradient (dist.max_bad_steps = 3)"

expect_exit ardiff_finish 0 run 2 "" ardiff "$cfg" --set teacher.steps=12 --set ardiff.steps=8 --set distill.steps=3
expect_exit distill_first 0 run 2 distill:1:1-2 distill "$cfg" --set teacher.steps=12 --set ardiff.steps=8 --set distill.steps=3
expect_contains distill_first_run "1 generator updates (2 skipped)"
expect_exit distill_resumed_stops 1 run 2 distill:1:3 distill "$cfg" --set teacher.steps=12 --set ardiff.steps=8 --set distill.steps=6
expect_contains distill_resumed_message "distill: 3 generator updates in a row with a non-finite loss or gradient"
cli_done
