#!/usr/bin/env bash
# Process layouts of `dd2 distill` (docs/distributed.md): colocated (dist.teacher_ranks = 0) and
# split (the last T ranks serve teacher scores, the others learn) agree with the one-process run
# for the same global batch, in stage 1 (ardiff) and stage 2 (distill) (to 1e-4: a rank's BLAS threads depend on the ranks per node, so
# results across process counts differ in rounding); overlap on and off give bitwise the same weights; a checkpoint made
# by 2 learners resumes with 1 and with 3; a layout with no learner is refused (exit 2).
source "$(dirname "$0")/lib.sh"
H5CMP=$(dirname "$DD2")/tests/tools/h5cmp
tmp=$(mktemp -d /tmp/dd2-test-layouts-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cfg=configs/fmnist-smoke.yaml
small=(--set teacher_sample.n=64 --set ardiff.steps=4 --set ardiff.batch=16 --set distill.steps=6
       --set distill.batch=12 --set checkpoint.every=3 --set log.every=3 --set distill.eval_every=0
       --set data.train_limit=600 --set data.test_limit=200)
run() {
  local name=$1 np=$2 T=$3 cmd=$4; shift 4
  mpirun -np "$np" "$DD2" "$cmd" "$cfg" "${small[@]}" --set dist.teacher_ranks="$T" "$@" \
    --set run.out_dir="$tmp" --set run.name="$name"
}
f=distill/generator.h5
h5same() { expect_exit "$1" 0 "$H5CMP" "$tmp/base/$f" "$tmp/$2/$f" params "$3"; echo "  $out"; }

expect_exit prepare_vq 0 run base 1 0 vq
expect_exit prepare_teacher 0 run base 1 0 teacher
expect_exit prepare_teacher_sample 0 run base 1 0 teacher-sample
expect_exit prepare_ardiff 0 run base 1 0 ardiff
# stage 1 uses the same roles: 2 learners + 1 worker give bitwise the weights of 2 colocated learners
for r in ard2 ard3; do cp -r "$tmp/base" "$tmp/$r"; rm -rf "$tmp/$r/ardiff"; done
expect_exit ardiff_np2_t0 0 run ard2 2 0 ardiff
expect_exit ardiff_np3_t1 0 run ard3 3 1 ardiff
expect_contains ardiff_worker_served "ardiff: teacher-score worker:"
expect_exit ardiff_worker_bitwise 0 "$H5CMP" "$tmp/ard2/ardiff/ardiff.h5" "$tmp/ard3/ardiff/ardiff.h5" params 0
echo "  $out"

for r in np2t0 np2t1 np2t1seq np3t1 np4t2 np3t2 sid1 sid2 od1 od2 resume1 resume3; do cp -r "$tmp/base" "$tmp/$r"; done

expect_exit base_np1 0 run base 1 0 distill
expect_exit np2_t1 0 run np2t1 2 1 distill
expect_contains np2_t1_layout "learner 0 -> teacher 1"
expect_contains np2_t1_worker_served "teacher-score worker: 6 requests from 1 learner"
expect_exit np2_t1_sequential 0 run np2t1seq 2 1 distill --set dist.overlap=false
expect_exit np3_t1 0 run np3t1 3 1 distill
expect_exit np4_t2 0 run np4t2 4 2 distill
expect_exit np3_t2 0 run np3t2 3 2 distill
expect_contains np3_t2_idle_worker "teacher-score worker: 0 requests from 0 learners"
h5same np2_t1_matches_np1 np2t1 1e-4
expect_exit overlap_bitwise 0 "$H5CMP" "$tmp/np2t1/$f" "$tmp/np2t1seq/$f" params 0
h5same np3_t1_matches_np1 np3t1 1e-4
expect_exit np2_t0 0 run np2t0 2 0 distill
expect_exit np3_t1_bitwise_np2_colocated 0 "$H5CMP" "$tmp/np2t0/$f" "$tmp/np3t1/$f" params 0
h5same np4_t2_matches_np1 np4t2 1e-4
h5same np3_t2_matches_np1 np3t2 1e-4

# sid sends the posterior covariance through the service: colocated vs a worker
expect_exit sid_colocated 0 run sid1 1 0 distill --set distill.csd.grad=sid
expect_exit sid_worker 0 run sid2 2 1 distill --set distill.csd.grad=sid
expect_exit sid_worker_matches 0 "$H5CMP" "$tmp/sid1/$f" "$tmp/sid2/$f" params 1e-4
# distill.omega_draws: the extra draws travel in the same request (m + mo per token)
od=(--set distill.csd.grad=sid --set distill.csd.omega=position --set distill.omega_draws=3)
expect_exit omega_draws_colocated 0 run od1 1 0 distill "${od[@]}"
expect_exit omega_draws_worker 0 run od2 2 1 distill "${od[@]}"
expect_exit omega_draws_worker_matches 0 "$H5CMP" "$tmp/od1/$f" "$tmp/od2/$f" params 1e-4

# a checkpoint of 2 learners (step 3 of np3t1) resumes with 1 learner and with 3
for r in resume1 resume3; do
  cp -r "$tmp/np3t1/distill" "$tmp/$r/"
  rm -rf "$tmp/$r/distill/step_00000006" "$tmp/$r/$f"
  echo step_00000003 >"$tmp/$r/distill/LATEST"
done
expect_exit resume_1_learner 0 run resume1 2 1 distill
expect_contains resume_1_logged "saved by 2 ranks"
expect_exit resume_3_learners 0 run resume3 4 1 distill
expect_contains resume_3_logged "saved by 2 ranks"
h5same resume_1_matches np3t1 1e-4
h5same resume_3_matches np3t1 1e-4

# the overlap benchmark runs in a scratch directory and leaves the run's distill/ alone
before=$(ls "$tmp/base/distill")
expect_exit bench_distill 0 mpirun -np 2 "$DD2" bench distill "$cfg" "${small[@]}" --set dist.teacher_ranks=1 \
  --steps 3 --set run.out_dir="$tmp" --set run.name=base
expect_contains bench_table "| on | "
expect_contains bench_summary "speed-up from overlap"
[ ! -e "$tmp/base/bench-distill" ] && [ "$(ls "$tmp/base/distill")" = "$before" ] && pass bench_scratch_removed ||
  fail bench_scratch_removed "$(ls "$tmp/base")"

# layouts without a learner
expect_exit no_learner 2 run base 2 2 distill
expect_contains no_learner_message "dist.teacher_ranks = 2 leaves no learner among 2 ranks"
expect_exit no_learner_np1 2 run base 1 1 distill
cli_done
