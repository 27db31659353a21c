#!/usr/bin/env bash
# Stage 1 (`dd2 ardiff`, docs/ardiff.md) on the smoke config: the same training on 1 and 2 ranks
# (same global batch), bitwise resume from a mid checkpoint, the loss goes down, head-only steps
# leave the teacher's backbone untouched, a missing teacher-sample file is an input error, the
# periodic eval losses on training and held-out teacher samples (same on 1 and 2 ranks, and
# evaluating mid-run does not change the training: the resumed run skips the step-10 eval).
source "$(dirname "$0")/lib.sh"
H5CMP=$(dirname "$DD2")/tests/tools/h5cmp
tmp=$(mktemp -d /tmp/dd2-test-ardiff-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cfg=configs/fmnist-smoke.yaml
# stage-1 settings for the smoke run (20 steps of 16 sequences x 2 draws, checkpoints every 10)
A=(--set teacher_sample.n=200 --set ardiff.steps=20 --set ardiff.batch=16 --set ardiff.m=2 --set ardiff.lr=2e-3
   --set ardiff.warmup=2 --set log.every=5 --set ardiff.eval_every=10)
h5same() { expect_exit "$1" 0 "$H5CMP" "$2" "$3" "$4" "$5"; echo "  $out"; }
run() { local name=$1 np=$2; shift 2; mpirun -np "$np" "$DD2" "$@" --set run.out_dir="$tmp" --set run.name="$name" "${A[@]}"; }
# field $3 of the eval line at step $2 of run $1
eval_at() { grep "\"stage\": \"ardiff\", \"step\": $2,.*\"$3\"" "$tmp/$1/metrics.jsonl" | head -1 |
  sed "s/.*\"$3\": \([0-9.e+-]*\).*/\1/"; }
near() { awk -v a="$1" -v b="$2" -v r="$3" 'BEGIN{d=a-b; if(d<0)d=-d; exit !(a>0 && b>0 && d <= r*a)}'; }
loss_at() { grep "\"stage\": \"ardiff\", \"step\": $2," "$tmp/$1/metrics.jsonl" | head -1 | sed 's/.*"loss": \([0-9.e+-]*\).*/\1/'; }

expect_exit vq 0 run r1 1 vq "$cfg"
expect_exit teacher 0 run r1 1 teacher "$cfg"
cp -r "$tmp/r1" "$tmp/nosamples"
expect_exit missing_samples 2 run nosamples 1 ardiff "$cfg"
expect_contains missing_samples_says "dd2 teacher-sample"
expect_exit teacher_sample 0 run r1 1 teacher-sample "$cfg"
for r in r2 resume headonly; do cp -r "$tmp/r1" "$tmp/$r"; done

expect_exit ardiff_np1 0 run r1 1 ardiff "$cfg"
expect_contains ardiff_np1_eval "fixed-noise eval loss"
expect_exit ardiff_np2 0 run r2 2 ardiff "$cfg"
f=ardiff/ardiff.h5
h5same ranks_equal "$tmp/r1/$f" "$tmp/r2/$f" params 1e-4
l1=$(loss_at r1 20); l2=$(loss_at r2 20)
if awk -v a="$l1" -v b="$l2" 'BEGIN{d=a-b; if(d<0)d=-d; exit !(a>0 && d <= 1e-4*a)}'; then
  pass loss_equal_np2; else fail loss_equal_np2 "loss at step 20: $l1 (1 rank) vs $l2 (2 ranks)"; fi
# the eval lines: at step 10 (periodic) and 20 (final); held-out differs from the training set and
# falls from step 10 to 20
h10=$(eval_at r1 10 heldout_gts_loss); h20=$(eval_at r1 20 heldout_gts_loss); e20=$(eval_at r1 20 eval_gts_loss)
echo "  eval GTS loss at step 20: $e20 training samples, $h20 held out (step 10: $h10)"
[ -n "$h10" ] && [ -n "$h20" ] && [ -n "$e20" ] && ! near "$h20" "$e20" 1e-6 &&
  awk -v a="$h10" -v b="$h20" 'BEGIN{exit !(b < a)}' &&
  pass eval_lines || fail eval_lines "held out at 10: '$h10', at 20: '$h20', training at 20: '$e20'"
d20=$(eval_at r1 20 heldout_diffusion_loss); s20=$(grep -c '"stage": "ardiff".*"seconds"' "$tmp/r1/metrics.jsonl")
[ -n "$d20" ] && [ "$s20" = 1 ] && pass eval_final_fields || fail eval_final_fields "diffusion '$d20', seconds lines $s20"
near "$h20" "$(eval_at r2 20 heldout_gts_loss)" 1e-4 && pass heldout_np2 ||
  fail heldout_np2 "held-out GTS loss $h20 (1 rank) vs $(eval_at r2 20 heldout_gts_loss) (2 ranks)"
l5=$(loss_at r1 5)
if awk -v a="$l5" -v b="$l1" 'BEGIN{exit !(b > 0 && b < 0.9 * a)}'; then
  pass loss_decreases; else fail loss_decreases "loss at step 5: $l5, at step 20: $l1"; fi
echo "  loss step 5 $l5 -> step 20 $l1"

# bitwise resume: drop the 1-rank run's last checkpoint and finish from step 10
cp -r "$tmp/r1/ardiff" "$tmp/resume/"
rm -rf "$tmp/resume/ardiff/step_00000020" "$tmp/resume/$f"
echo step_00000010 >"$tmp/resume/ardiff/LATEST"
expect_exit resume_run 0 run resume 1 ardiff "$cfg"
expect_contains resume_logged "resumed from"
h5same resume_bitwise "$tmp/r1/$f" "$tmp/resume/$f" params 0
a=$(grep '"stage": "ardiff", "step": 20,' "$tmp/r1/metrics.jsonl" | head -1 | sed 's/"time.*"loss"/"loss"/')
b=$(grep '"stage": "ardiff", "step": 20,' "$tmp/resume/metrics.jsonl" | head -1 | sed 's/"time.*"loss"/"loss"/')
[ -n "$a" ] && [ "$a" = "$b" ] && pass resume_same_loss || fail resume_same_loss "'$a' vs '$b'"
a=$(eval_at r1 20 heldout_gts_loss); b=$(eval_at resume 20 heldout_gts_loss)
[ -n "$a" ] && [ "$a" = "$b" ] && pass resume_same_eval || fail resume_same_eval "'$a' vs '$b'"

# head only for the whole run on 2 ranks: the backbone is still the teacher's, bitwise
expect_exit headonly_run 0 run headonly 2 ardiff "$cfg" --set ardiff.head_only_steps=20 --set ardiff.steps=6
for t in cls_emb blocks.1.attn.wqkv final_norm.w; do
  h5same "headonly_$t" "$tmp/headonly/$f" "$tmp/headonly/teacher/teacher.h5" "params/$t" 0
done
expect_exit headonly_head_moved 1 "$H5CMP" "$tmp/headonly/$f" "$tmp/r1/$f" params/head_mlp.final.w 0
cli_done
