#!/usr/bin/env bash
# A NaN in one rank's gradient (fault injection, DD2_INJECT_NAN; core/fault.h) makes every rank
# skip that update (the sum is non-finite everywhere), the skip is logged and counted, and
# dist.max_bad_steps skips in a row stop the run with a clear error (exit 1), in the teacher
# stage (all ranks data parallel) and in distill with teacher-score workers.
source "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/dd2-test-nan-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cfg=configs/fmnist-smoke.yaml
small=(--set teacher.steps=12 --set teacher_sample.n=64 --set ardiff.steps=4 --set ardiff.batch=16
       --set distill.steps=6 --set distill.batch=12 --set checkpoint.every=0 --set distill.eval_every=0
       --set data.train_limit=600 --set data.test_limit=200 --set run.out_dir="$tmp")
run() { local name=$1 np=$2 nan=$3; shift 3; mpirun -np "$np" -x DD2_INJECT_NAN="$nan" "$DD2" "$@" "${small[@]}" --set run.name="$name"; }

expect_exit vq 0 run a 1 "" vq "$cfg"
cp -r "$tmp/a" "$tmp/b"
expect_exit teacher_two_skips 0 run a 2 teacher:1:5-6 teacher "$cfg"
n=$(grep -c "step skipped on all ranks" <<<"$out")
[ "$n" -eq 2 ] && pass teacher_two_skips_logged || fail teacher_two_skips_logged "expected 2 skip lines, got $n: ${out:0:600}"
expect_contains teacher_run_count "(2 so far, 2 in a row)"
expect_exit teacher_stops 1 run b 2 teacher:1:3-12 teacher "$cfg" --set dist.max_bad_steps=3
expect_contains teacher_stop_message "teacher: 3 steps in a row with a non-finite loss or gradient (dist.max_bad_steps = 3)"
[ ! -e "$tmp/b/teacher/teacher.h5" ] && pass teacher_no_final_file || fail teacher_no_final_file "teacher.h5 written"

expect_exit teacher_sample 0 run a 1 "" teacher-sample "$cfg"
expect_exit ardiff 0 run a 1 "" ardiff "$cfg"
cp -r "$tmp/a" "$tmp/c"
# rank 1 is the second learner (3 ranks, 1 teacher-score worker)
expect_exit distill_skips 0 run a 3 distill:1:2-3 distill "$cfg" --set dist.teacher_ranks=1
n=$(grep -c "update skipped" <<<"$out")
[ "$n" -eq 2 ] && pass distill_skips_logged || fail distill_skips_logged "expected 2 skip lines, got $n: ${out:0:600}"
expect_contains distill_skip_count "4 generator updates (2 skipped)"
expect_exit distill_stops 1 run c 3 distill:1:1-6 distill "$cfg" --set dist.teacher_ranks=1 --set dist.max_bad_steps=2
expect_contains distill_stop_message "distill: 2 generator updates in a row with a non-finite loss or gradient"
cli_done
