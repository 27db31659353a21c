#!/usr/bin/env bash
# End to end on configs/fmnist-smoke.yaml under 2 ranks: vq -> fid-stats -> teacher -> sample ->
# eval; every output present and readable; a second `dd2 pipeline` skips every stage.
source "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d /tmp/dd2-test-smoke-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
run=$tmp/fmnist-smoke
expect_exit pipeline 0 mpirun -np 2 "$DD2" pipeline configs/fmnist-smoke.yaml --set run.out_dir="$tmp"
for f in config.yaml metrics.jsonl vq/codebook.h5 vq/tokens.h5 vq/recon.png fid/featnet.h5 fid/test_stats.h5 \
         fid/train_stats.h5 teacher/LATEST teacher/teacher.h5 samples/teacher.h5 samples/teacher.png \
         teacher_samples/samples.h5 ardiff/ardiff.h5 distill/generator.h5 distill/LATEST \
         eval/table.md eval/results.json eval/teacher_vs_onestep.png; do
  [ -s "$run/$f" ] && pass "output_$f" || fail "output_$f" "missing or empty: $run/$f"
done
for f in vq/tokens.h5 teacher/teacher.h5 fid/test_stats.h5 samples/teacher.h5; do
  h5dump -H "$run/$f" >/dev/null 2>&1 && pass "h5dump_$f" || fail "h5dump_$f" "h5dump cannot read $run/$f"
done
for f in vq/recon.png samples/teacher.png; do
  [ "$(head -c 8 "$run/$f" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && pass "png_$f" || fail "png_$f" "not a PNG"
done
for row in "real: train vs test" "VQ reconstructions" "teacher (49 AR steps" "naive: all tokens" "AR-diffusion" "DD2 one-step generator" "DD2 few-step: generator + 3 teacher tokens"; do
  grep -qF "$row" "$run/eval/table.md" && pass "table_row_${row%% *}" || fail "table_row_${row%% *}" "eval/table.md lacks '$row'"
done
# eval.teacher false: no teacher and no naive row (it used to be ignored), the other rows stay
expect_exit eval_no_teacher 0 mpirun -np 2 "$DD2" eval configs/fmnist-smoke.yaml --set run.out_dir="$tmp" \
  --set eval.teacher=false --set 'eval.steps=[1]'
! grep -qE "teacher \(49 AR steps|naive: all tokens" "$run/eval/table.md" && grep -qF "DD2 one-step generator" "$run/eval/table.md" &&
  pass eval_no_teacher_rows || fail eval_no_teacher_rows "$(cat "$run/eval/table.md")"
grep -q '"stage": "teacher", "step": 30' "$run/metrics.jsonl" && pass metrics_teacher || fail metrics_teacher "no teacher step 30 in metrics.jsonl"
expect_exit pipeline_again 0 mpirun -np 2 "$DD2" pipeline configs/fmnist-smoke.yaml --set run.out_dir="$tmp"
n=$(grep -c "skipped" <<<"$out")
[ "$n" -eq 8 ] && pass pipeline_skips_finished || fail pipeline_skips_finished "expected 8 skipped stages, got $n"
# sampling the stage-1 model, and an unknown model name (exit 2)
expect_exit sample_ardiff 0 "$DD2" sample configs/fmnist-smoke.yaml --model ardiff --out "$tmp/ardiff.png" --set run.out_dir="$tmp"
[ -s "$tmp/ardiff.png" ] && pass sample_ardiff_png || fail sample_ardiff_png "no $tmp/ardiff.png"
expect_exit sample_generator_2step 0 "$DD2" sample configs/fmnist-smoke.yaml --model generator --steps 2 --set run.out_dir="$tmp"
[ -s "$run/samples/generator-2.png" ] && pass sample_generator_png || fail sample_generator_png "no samples/generator-2.png"
expect_exit sample_bad_steps 2 "$DD2" sample configs/fmnist-smoke.yaml --model generator --steps 99 --set run.out_dir="$tmp"
expect_exit sample_bad_model 2 "$DD2" sample configs/fmnist-smoke.yaml --model nope --set run.out_dir="$tmp"
# a missing prerequisite is a clear input error (exit 2) naming the stage to run first
expect_exit teacher_without_vq 2 "$DD2" teacher configs/fmnist-smoke.yaml --set run.out_dir="$tmp/empty"
expect_contains teacher_without_vq_msg "run \`dd2 vq CONFIG\`"
cli_done
