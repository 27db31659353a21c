#!/usr/bin/env bash
# Stage 2 (`dd2 distill`, docs/distill.md) on the smoke config with tiny step counts:
# 1 vs 2 ranks agree, bitwise resume from a mid checkpoint, the generator moved away from Ψ,
# sid + performance alignment + position weights + the periodic FID, init: teacher and ode-pairs
# (with and without the regression term kept during CSD),
# one-step and few-step sampling with the generator, a generator grown by distill.generator.*.
source "$(dirname "$0")/lib.sh"
H5CMP=$(dirname "$DD2")/tests/tools/h5cmp
tmp=$(mktemp -d /tmp/dd2-test-distill-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cfg=configs/fmnist-smoke.yaml
small=(--set teacher_sample.n=64 --set ardiff.steps=4 --set ardiff.batch=16 --set distill.steps=6
       --set distill.batch=8 --set checkpoint.every=3 --set log.every=3 --set distill.eval_every=0
       --set sample.n=20 --set eval.features.epochs=1 --set data.train_limit=600 --set data.test_limit=200)
# run NAME NP COMMAND CONFIG [more --set ...]: the caller's settings come after (and override) the small ones
run() {
  local name=$1 np=$2 cmd=$3 conf=$4; shift 4
  mpirun -np "$np" "$DD2" "$cmd" "$conf" "${small[@]}" "$@" --set run.out_dir="$tmp" --set run.name="$name"
}
h5same() { expect_exit "$1" 0 "$H5CMP" "$2" "$3" params "$4"; echo "  $out"; }
# resume_from_3 NAME SRC DST NP [--set ...]: DST = a copy of run SRC without its step-6 checkpoint,
# final generator and metrics (LATEST -> step 3); then the distill run on NP ranks, which must end
# where SRC ended (the caller compares)
resume_from_3() {
  local name=$1 src=$2 dst=$3 np=$4; shift 4
  rm -rf "$tmp/$dst"; cp -r "$tmp/$src" "$tmp/$dst"
  rm -rf "$tmp/$dst/distill/step_00000006" "$tmp/$dst/$f" "$tmp/$dst/metrics.jsonl"
  echo step_00000003 >"$tmp/$dst/distill/LATEST"
  expect_exit "$name" 0 run "$dst" "$np" distill "$cfg" "$@"
}
metric() { grep "\"stage\": \"distill\", \"step\": $2," "$1" | head -1 | sed 's/"time[^,]*, "unix_time": [0-9]*, //'; }

expect_exit vq 0 run r1 1 vq "$cfg"
expect_exit teacher 0 run r1 1 teacher "$cfg"
expect_exit teacher_sample 0 run r1 1 teacher-sample "$cfg"
expect_exit ardiff 0 run r1 1 ardiff "$cfg"
for r in r2 sid tinit cos wsd bf1 bf2 bfbad; do cp -r "$tmp/r1" "$tmp/$r"; done

# 1 and 2 ranks: the same training up to the order of floating-point sums
f=distill/generator.h5
expect_exit distill_np1 0 run r1 1 distill "$cfg"
expect_exit distill_np2 0 run r2 2 distill "$cfg"
[ -f "$tmp/r1/$f" ] && [ -f "$tmp/r1/distill/step_00000003/meta.h5" ] && pass outputs_present ||
  fail outputs_present "$(ls -R "$tmp/r1/distill")"
h5same ranks_equal "$tmp/r1/$f" "$tmp/r2/$f" 1e-4
l1=$(metric "$tmp/r1/metrics.jsonl" 6 | sed 's/.*"gen_loss": \([0-9.e+-]*\).*/\1/')
l2=$(metric "$tmp/r2/metrics.jsonl" 6 | sed 's/.*"gen_loss": \([0-9.e+-]*\).*/\1/')
if awk -v a="$l1" -v b="$l2" 'BEGIN{d=a-b; if(d<0)d=-d; m=a<0?-a:a; exit !(m>0 && d <= 1e-3*m)}'; then
  pass gen_loss_equal; else fail gen_loss_equal "generator loss at step 6: $l1 (1 rank) vs $l2 (2 ranks)"; fi
# the EMA generator is no longer Ψ (the test is not vacuous)
expect_exit moved_from_ardiff 1 "$H5CMP" "$tmp/r1/$f" "$tmp/r1/ardiff/ardiff.h5" params 0

# bitwise resume: drop the last checkpoint and finish from step 3
resume_from_3 resume_run r1 resume 1
expect_contains resume_logged "resumed from"
h5same resume_bitwise "$tmp/r1/$f" "$tmp/resume/$f" 0
a=$(metric "$tmp/r1/metrics.jsonl" 6); b=$(metric "$tmp/resume/metrics.jsonl" 6)
[ -n "$a" ] && [ "$a" = "$b" ] && pass resume_same_metrics || fail resume_same_metrics "'$a' vs '$b'"

# sid, performance alignment after 3 generator updates (2 guidance-only updates), position
# weights 3 -> 1, the periodic FID every 3 generator updates (needs the FID network)
expect_exit fid_stats 0 run sid 1 fid-stats "$cfg"
expect_exit sid_run 0 run sid 2 distill "$cfg" --set distill.csd.grad=sid --set distill.align.after=3 \
  --set distill.align.steps=2 --set distill.pos_weight.start=3 --set distill.eval_every=3 --set distill.eval_n=40
expect_contains sid_alignment "performance alignment"
grep -q '"stage": "distill", "step": 0, .*"fid": ' "$tmp/sid/metrics.jsonl" && pass fid_at_init ||
  fail fid_at_init "no FID at step 0 in metrics.jsonl"
grep -q '"stage": "distill", "step": 6, .*"fid": [0-9]' "$tmp/sid/metrics.jsonl" && pass fid_logged ||
  fail fid_logged "no FID at generator step 6 in metrics.jsonl"
[ -f "$tmp/sid/distill/step_00000008/meta.h5" ] && pass alignment_units ||
  fail alignment_units "expected a checkpoint at 6 + 2 units: $(ls "$tmp/sid/distill")"

# distill.gen_schedule: cosine: the generator's learning rate is lr_gen at the end of the warm-up
# (update 2, logged at step 3) and lr_gen·(1 + cos(0.75π))/2 at update 5 (logged at step 6)
expect_exit cosine_run 0 run cos 1 distill "$cfg" --set distill.gen_schedule=cosine --set distill.gen_warmup=2
lr3=$(metric "$tmp/cos/metrics.jsonl" 3 | sed 's/.*"lr_gen": \([0-9.e+-]*\).*/\1/')
lr6=$(metric "$tmp/cos/metrics.jsonl" 6 | sed 's/.*"lr_gen": \([0-9.e+-]*\).*/\1/')
if awk -v a="$lr3" -v b="$lr6" 'BEGIN{r=b/a; e=(1+cos(0.75*3.14159265358979))/2; exit !(a>0 && r>e-1e-4 && r<e+1e-4)}'; then
  pass cosine_lr; else fail cosine_lr "lr_gen at steps 3 / 6: '$lr3' / '$lr6'"; fi
# distill.gen_decay_steps (warmup-stable-decay): linear decay over the last 2 of 6 updates only, so
# lr_gen at update 5 (logged at step 6) is half the lr at the end of the warm-up (without it: a quarter)
expect_exit wsd_run 0 run wsd 1 distill "$cfg" --set distill.gen_schedule=linear --set distill.gen_warmup=2 \
  --set distill.gen_decay_steps=2
lr3=$(metric "$tmp/wsd/metrics.jsonl" 3 | sed 's/.*"lr_gen": \([0-9.e+-]*\).*/\1/')
lr6=$(metric "$tmp/wsd/metrics.jsonl" 6 | sed 's/.*"lr_gen": \([0-9.e+-]*\).*/\1/')
if awk -v a="$lr3" -v b="$lr6" 'BEGIN{r=b/a; exit !(a>0 && r>0.5-1e-4 && r<0.5+1e-4)}'; then
  pass decay_steps_lr; else fail decay_steps_lr "lr_gen at steps 3 / 6: '$lr3' / '$lr6'"; fi
expect_exit decay_steps_constant_refused 2 run wbad 1 distill "$cfg" --set distill.gen_decay_steps=2
expect_contains decay_steps_constant_named "distill.gen_decay_steps = 2 and distill.gen_schedule = constant conflict"
[ ! -e "$tmp/wbad/distill" ] && pass decay_steps_nothing_written || fail decay_steps_nothing_written "$(ls "$tmp/wbad")"

# distill.matmul: bf16 (Intel AMX): refused with exit 2 and nothing written where the CPU lacks it
# (DD2_NO_AMX pretends so). Where it has it: the training differs from f32's (the products really
# are in bf16); resuming from the mid checkpoint ends bitwise where the uninterrupted run ends; 1 and
# 2 ranks agree to 1e-2 only: every GEMM row is the same in both layouts, but the gradients' sums
# over the ranks differ in the last fp32 bit, and rounding to bf16 turns such a difference into a
# bf16 step (2^-8) wherever a value sits at a rounding boundary (f32: 2.6e-7, bf16: 6.7e-4 measured)
DD2_NO_AMX=1 expect_exit bf16_refused 2 run bfbad 1 distill "$cfg" --set distill.matmul=bf16
expect_contains bf16_refused_named "distill.matmul = bf16: this CPU or kernel lacks the AMX path"
[ ! -e "$tmp/bfbad/distill" ] && pass bf16_nothing_written || fail bf16_nothing_written "$(ls "$tmp/bfbad")"
if grep -qw amx_bf16 /proc/cpuinfo; then
  expect_exit bf16_np1 0 run bf1 1 distill "$cfg" --set distill.matmul=bf16
  expect_contains bf16_logged "distill.matmul = bf16: the network matmuls round their inputs to bfloat16"
  expect_exit bf16_np2 0 run bf2 2 distill "$cfg" --set distill.matmul=bf16
  h5same bf16_ranks_close "$tmp/bf1/$f" "$tmp/bf2/$f" 1e-2
  expect_exit bf16_differs_from_f32 1 "$H5CMP" "$tmp/bf1/$f" "$tmp/r1/$f" params 0
  resume_from_3 bf16_resume_run bf1 bfres 1 --set distill.matmul=bf16
  h5same bf16_resume_bitwise "$tmp/bf1/$f" "$tmp/bfres/$f" 0
else
  echo "  skip bf16_np1, bf16_np2, bf16_ranks_close, bf16_differs_from_f32, bf16_resume_*: no amx_bf16 in /proc/cpuinfo"
fi

# init: teacher (teacher backbone, fresh head); init: ode-pairs (regression on Ψ-ODE pairs first),
# on 1 and 2 ranks (the pairs are sampled split over the ranks)
expect_exit teacher_init 0 run tinit 1 distill "$cfg" --set distill.init=teacher --set distill.steps=2
cp -r "$tmp/r1" "$tmp/ode1"; cp -r "$tmp/r1" "$tmp/ode2"; rm -rf "$tmp"/ode?/distill
ode=(--set distill.init=ode-pairs --set distill.ode.pairs=24 --set distill.ode.steps=4 --set distill.steps=2)
expect_exit ode_pairs_np1 0 run ode1 1 distill "$cfg" "${ode[@]}"
expect_contains ode_pairs_regression "ODE-pair regression"
# only the regression (distill.steps 0): no per-update times of updates that never ran
cp -r "$tmp/r1" "$tmp/ode0"; rm -rf "$tmp/ode0/distill"
expect_exit ode_pairs_only 0 run ode0 1 distill "$cfg" "${ode[@]}" --set distill.steps=0
expect_contains ode_pairs_only_logged "no CSD iteration in this run"
grep -qi "nan" <<<"$out" && fail ode_pairs_only_no_nan "$(grep -i nan <<<"$out" | head -2)" || pass ode_pairs_only_no_nan
expect_exit ode_pairs_np2 0 run ode2 2 distill "$cfg" "${ode[@]}"
# (1e-3: Adam turns sum-order differences of near-zero gradients into steps of ~lr on tiny tensors)
h5same ode_pairs_ranks_equal "$tmp/ode1/$f" "$tmp/ode2/$f" 1e-3
grep -q '"stage": "distill-ode", "step": 3,' "$tmp/ode1/metrics.jsonl" && pass ode_pairs_metrics ||
  fail ode_pairs_metrics "no distill-ode line at step 3"

# distill.ode.reg_weight: the regression loss on the pairs kept beside the CSD loss. It is logged
# and changes the training; a run resumed from its mid checkpoint samples the pairs again and ends
# bitwise where the uninterrupted run ends; without init: ode-pairs it is refused (exit 2)
for r in oreg oreg0 oregbad; do cp -r "$tmp/r1" "$tmp/$r"; rm -rf "$tmp/$r/distill"; done
oreg=(--set distill.init=ode-pairs --set distill.ode.pairs=24 --set distill.ode.steps=4 --set distill.ode.reg_weight=2)
expect_exit ode_reg_run 0 run oreg 2 distill "$cfg" "${oreg[@]}"
grep -q '"stage": "distill", "step": 6, .*"ode_reg_loss": [0-9]' "$tmp/oreg/metrics.jsonl" && pass ode_reg_logged ||
  fail ode_reg_logged "no ode_reg_loss at step 6 in metrics.jsonl"
expect_exit ode_reg_off_run 0 run oreg0 2 distill "$cfg" "${oreg[@]}" --set distill.ode.reg_weight=0
expect_exit ode_reg_changes_training 1 "$H5CMP" "$tmp/oreg/$f" "$tmp/oreg0/$f" params 0
resume_from_3 ode_reg_resume oreg oregr 2 "${oreg[@]}"
expect_contains ode_reg_pairs_again "sampling the ODE pairs again"
h5same ode_reg_resume_bitwise "$tmp/oreg/$f" "$tmp/oregr/$f" 0
expect_exit ode_reg_needs_ode_pairs 2 run oregbad 1 distill "$cfg" --set distill.ode.reg_weight=1
expect_contains ode_reg_needs_ode_pairs_named "distill.ode.reg_weight = 1 needs distill.init: ode-pairs"
[ ! -e "$tmp/oregbad/$f" ] && pass ode_reg_refused_nothing_written || fail ode_reg_refused_nothing_written "$f written"

# distill.m_guid: fewer draws per token in the guidance loss than in the generator loss (m = 2 in
# the smoke config): logged, changes the training, resumes bitwise from the mid checkpoint (mg != m:
# the guidance loss has its own work buffers)
cp -r "$tmp/r1" "$tmp/mg"; rm -rf "$tmp/mg/distill"
expect_exit m_guid_run 0 run mg 2 distill "$cfg" --set distill.m_guid=1
expect_contains m_guid_logged "x 2 draws (guidance: 1; t per draw)"
expect_exit m_guid_changes_training 1 "$H5CMP" "$tmp/mg/$f" "$tmp/r2/$f" params 0
resume_from_3 m_guid_resume mg mgr 2 --set distill.m_guid=1
h5same m_guid_resume_bitwise "$tmp/mg/$f" "$tmp/mgr/$f" 0
# distill.t_stratified reaches the training (the draws' own test is in test_ardiff)
cp -r "$tmp/r1" "$tmp/strat"; rm -rf "$tmp/strat/distill"
expect_exit t_stratified_run 0 run strat 2 distill "$cfg" --set distill.t_stratified=true
expect_exit t_stratified_changes_training 1 "$H5CMP" "$tmp/strat/$f" "$tmp/r2/$f" params 0
# distill.t_shared (a token's m draws share one timestep; the grouped head): logged, changes the
# training, resumes bitwise from the mid checkpoint; with t_stratified refused (exit 2, both keys
# named, nothing written)
cp -r "$tmp/r1" "$tmp/tsh"; rm -rf "$tmp/tsh/distill"
expect_exit t_shared_run 0 run tsh 2 distill "$cfg" --set distill.t_shared=true
expect_contains t_shared_logged "(guidance: 2; t shared per token)"
expect_exit t_shared_changes_training 1 "$H5CMP" "$tmp/tsh/$f" "$tmp/r2/$f" params 0
resume_from_3 t_shared_resume tsh tshr 2 --set distill.t_shared=true
h5same t_shared_resume_bitwise "$tmp/tsh/$f" "$tmp/tshr/$f" 0
cp -r "$tmp/r1" "$tmp/tbad"; rm -rf "$tmp/tbad/distill"
expect_exit t_shared_stratified_refused 2 run tbad 1 distill "$cfg" --set distill.t_stratified=true --set distill.t_shared=true
expect_contains t_shared_stratified_named "distill.t_stratified = true and distill.t_shared = true conflict"
[ ! -e "$tmp/tbad/distill" ] && pass t_shared_stratified_nothing_written || fail t_shared_stratified_nothing_written "$(ls "$tmp/tbad")"
# distill.ema_ramp: a longer average changes the EMA generator (the training itself is unchanged:
# the EMA never feeds back; the rate's values are test_optim's)
cp -r "$tmp/r1" "$tmp/ema"; rm -rf "$tmp/ema/distill"
expect_exit ema_ramp_run 0 run ema 2 distill "$cfg" --set distill.ema_ramp=3
expect_exit ema_ramp_changes_ema 1 "$H5CMP" "$tmp/ema/$f" "$tmp/r2/$f" params 0
a=$(metric "$tmp/r2/metrics.jsonl" 6 | sed 's/.*"gen_loss": \([0-9.e+-]*\).*/\1/')
b=$(metric "$tmp/ema/metrics.jsonl" 6 | sed 's/.*"gen_loss": \([0-9.e+-]*\).*/\1/')
[ -n "$a" ] && [ "$a" = "$b" ] && pass ema_ramp_same_training || fail ema_ramp_same_training "generator loss at 6: '$a' vs '$b'"
# distill.omega_draws (extra draws per token only for ω per position): logged, changes the
# training against the same run without them, resumes bitwise; refused unless csd.omega is position
opos=(--set distill.csd.omega=position --set distill.csd.grad=sid)
for r in opos od; do cp -r "$tmp/r1" "$tmp/$r"; rm -rf "$tmp/$r/distill"; done
expect_exit omega_position_run 0 run opos 2 distill "$cfg" "${opos[@]}"
expect_exit omega_draws_run 0 run od 2 distill "$cfg" "${opos[@]}" --set distill.omega_draws=3
expect_contains omega_draws_logged "omega over 2 + 3 extra draws"
expect_exit omega_draws_changes_training 1 "$H5CMP" "$tmp/od/$f" "$tmp/opos/$f" params 0
resume_from_3 omega_draws_resume od odr 2 "${opos[@]}" --set distill.omega_draws=3
h5same omega_draws_resume_bitwise "$tmp/od/$f" "$tmp/odr/$f" 0
expect_exit omega_draws_needs_position 2 run odbad 1 distill "$cfg" --set distill.omega_draws=3
expect_contains omega_draws_needs_position_named "distill.omega_draws = 3 and distill.csd.omega = sequence conflict"

# a generator with 1 more backbone block and 1 more head block than Ψ (grown from Ψ as the same
# function): trains, resumes bitwise, samples with the same config; without the extras `dd2 sample`
# refuses the file with exit 2 naming the config keys
cp -r "$tmp/r1" "$tmp/grow"; rm -rf "$tmp/grow/distill"
grow=(--set distill.generator.extra_layers=1 --set distill.generator.extra_head_blocks=1)
expect_exit grown_run 0 run grow 2 distill "$cfg" "${grow[@]}"
expect_contains grown_sizes "(3 layers, head depth 3)"
resume_from_3 grown_resume grow growr 2 "${grow[@]}"
h5same grown_resume_bitwise "$tmp/grow/$f" "$tmp/growr/$f" 0
expect_exit grown_sample 0 run grow 1 sample "$cfg" "${grow[@]}" --model generator
expect_exit grown_sample_other_config 2 run grow 1 sample "$cfg" --model generator
expect_contains grown_mismatch_named "distill.generator"
# a guidance network grown the same way (1 + 1 blocks): trains; its checkpoint does not resume
# under a config without the extras (exit 2 naming the tensor), and nothing saved is touched
cp -r "$tmp/r1" "$tmp/gguid"; rm -rf "$tmp/gguid/distill"
gg=(--set distill.guidance.extra_layers=1 --set distill.guidance.extra_head_blocks=1 --set distill.steps=3)
expect_exit grown_guidance_run 0 run gguid 2 distill "$cfg" "${gg[@]}"
expect_contains grown_guidance_sizes "guidance 0.0"
expect_contains grown_guidance_layers "(3 layers, head depth 3), init"
before=$(cd "$tmp/gguid/distill" && find . -type f -exec md5sum {} + | sort)
expect_exit grown_guidance_other_config 2 run gguid 2 distill "$cfg" --set distill.steps=6
expect_contains grown_guidance_mismatch_named "blocks.2"
after=$(cd "$tmp/gguid/distill" && find . -type f -exec md5sum {} + | sort)
[ "$before" = "$after" ] && pass grown_guidance_files_untouched || fail grown_guidance_files_untouched "files changed"

# sampling: one step and 3 steps (the teacher re-samples the last 2 tokens)
expect_exit sample_onestep 0 run r1 2 sample "$cfg" --model generator
expect_exit sample_fewstep 0 run r1 2 sample "$cfg" --model generator --steps 3
ls "$tmp/r1/samples/"generator*.png >/dev/null 2>&1 && pass sample_outputs ||
  fail sample_outputs "$(ls "$tmp/r1/samples")"
cli_done
