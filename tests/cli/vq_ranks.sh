#!/usr/bin/env bash
# `dd2 vq` under mpirun -np 1, 2 and 3 on a small subset: the codebook and the tokens are bitwise
# identical for every rank count; the outputs exist; an imported codebook (vq.codebook) gives
# the same tokens; a codebook of the wrong shape or a missing one is a clean exit 2.
source "$(dirname "$0")/lib.sh"

if ! command -v mpirun >/dev/null; then
  fail mpirun "mpirun not found (run tools/install-deps.sh)"
  cli_done
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  fail dataset "Fashion-MNIST missing (Debian package dataset-fashion-mnist; run tools/install-deps.sh)"
  cli_done
fi
export OPENBLAS_NUM_THREADS=1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cfg="$tmp/vq.yaml"
cat >"$cfg" <<EOF
run:
  out_dir: $tmp/runs
  seed: 3
data:
  train_limit: 300
  test_limit: 40
vq:
  codes: 64
  iters: 5
EOF

for np in 1 2 3; do
  expect_exit "vq_np$np" 0 mpirun -np "$np" "$DD2" vq "$cfg" --set run.name=np$np
  expect_contains "vq_np${np}_mse" "reconstruction MSE train"
  for f in codebook.h5 tokens.h5 recon.png; do
    [ -s "$tmp/runs/np$np/vq/$f" ] && pass "np${np}_$f" || fail "np${np}_$f" "no $tmp/runs/np$np/vq/$f"
  done
done

# bitwise: the dumped datasets (all values, exact) and the attributes
dump() { h5dump -p "$1" 2>&1 | grep -v '^HDF5 "'; }
for np in 2 3; do
  for f in codebook.h5 tokens.h5; do
    if [ "$(dump "$tmp/runs/np1/vq/$f")" = "$(dump "$tmp/runs/np$np/vq/$f")" ] && [ -n "$(dump "$tmp/runs/np1/vq/$f")" ]; then
      pass "np${np}_same_$f"
    else
      fail "np${np}_same_$f" "$f differs between -np 1 and -np $np"
    fi
  done
done

# contents: shapes and attributes
out=$(h5dump -H "$tmp/runs/np1/vq/codebook.h5" 2>&1)
expect_contains codebook_shape 'DATASET "codebook"'
expect_contains codebook_dims "( 64, 16 )"
for a in patch image_size mse used_codes perplexity; do expect_contains "codebook_attr_$a" "ATTRIBUTE \"$a\""; done
out=$(h5dump -H "$tmp/runs/np1/vq/tokens.h5" 2>&1)
expect_contains tokens_train "( 300, 49 )"
expect_contains tokens_test "( 40, 49 )"
for d in train_tokens train_labels test_tokens test_labels; do expect_contains "tokens_$d" "DATASET \"$d\""; done
for a in gh gw; do expect_contains "tokens_attr_$a" "ATTRIBUTE \"$a\""; done
grep -q '"stage": "vq"' "$tmp/runs/np1/metrics.jsonl" && pass metrics_lines || fail metrics_lines "no vq lines in metrics.jsonl"

# import the np1 codebook: no k-means, identical tokens
cb="$tmp/runs/np1/vq/codebook.h5"
expect_exit import 0 mpirun -np 2 "$DD2" vq "$cfg" --set run.name=imp --set "vq.codebook=$cb"
expect_contains import_msg "imported codebook"
if [ "$(h5dump -d /train_tokens "$tmp/runs/np1/vq/tokens.h5" | tail -n +3)" = "$(h5dump -d /train_tokens "$tmp/runs/imp/vq/tokens.h5" | tail -n +3)" ]; then
  pass import_same_tokens
else
  fail import_same_tokens "tokens from the imported codebook differ"
fi

# bad imports: exit 2, a message naming the file and the shapes, no MPI_Abort
expect_exit import_wrong_shape 2 mpirun -np 2 "$DD2" vq "$cfg" --set run.name=bad --set "vq.codebook=$cb" --set vq.codes=128
expect_contains import_wrong_shape_msg "shape mismatch"
expect_contains import_wrong_shape_dims "[128, 16]"
if grep -q MPI_ABORT <<<"$out"; then fail import_clean_exit "MPI_Abort used for a collective error"; else pass import_clean_exit; fi
expect_exit import_missing 2 "$DD2" vq "$cfg" --set run.name=bad --set "vq.codebook=$tmp/nope.h5"
expect_contains import_missing_msg "$tmp/nope.h5"
[ ! -e "$tmp/runs/bad/vq/tokens.h5" ] && pass bad_import_no_tokens || fail bad_import_no_tokens "tokens.h5 written after a failed import"

cli_done
