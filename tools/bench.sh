#!/usr/bin/env bash
# `make bench`: dd2's op and backbone benchmark, then the same backbone in PyTorch (same machine,
# same shapes, same thread counts) and the ratio dd2 / PyTorch in tokens/s. To be fair on a noisy
# machine the backbone measurements of the two alternate ROUNDS times and each side keeps its best.
# Usage: tools/bench.sh [CONFIG]     (default: the embedded default config); ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
./build/dd2 bench ops ${1:-} | tee "$out"
dims=$(awk '/^BENCH dims/{for(i=3;i<=NF;i++){split($i,kv,"="); printf "--%s %s ", kv[1], kv[2]}; exit}' "$out")
if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "PyTorch comparison skipped: /usr/bin/python3 with torch not found (tools/install-deps.sh installs python3-torch)"
  exit 0
fi
# the same OpenBLAS kernel choice for both (dd2 may have re-executed itself with OPENBLAS_CORETYPE)
core=$(awk '/OpenBLAS core/{for(i=1;i<=NF;i++) if($i=="core") {gsub(";","",$(i+1)); print $(i+1); exit}}' "$out")
echo
echo "dd2 vs PyTorch on the same backbone and shapes, alternating, $ROUNDS rounds (best of each kept):"
: >"$out.pairs"
for r in $(seq "$ROUNDS"); do
  ./build/dd2 bench backbone ${1:-} | grep '^BENCH backbone' >>"$out.pairs"
  for t in 1 2; do
    OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$core} /usr/bin/python3 tools/bench_torch.py $dims --threads $t --seconds 1 |
      grep '^BENCH torch' >>"$out.pairs"
  done
done
awk '{split($3,a,"=");split($4,f,"=");split($5,b,"="); k=$2 a[2];
      if (f[2]>F[k]) F[k]=f[2]; if (b[2]>Bb[k]) Bb[k]=b[2]}
     END{printf "  %-8s %12s %12s %12s %12s %9s %9s\n", "threads", "dd2 fwd", "torch fwd", "dd2 f+b", "torch f+b", "fwd", "f+b";
         for (t=1;t<=2;t++) printf "  %-8d %12.0f %12.0f %12.0f %12.0f %8.2fx %8.2fx\n", t, F["backbone" t], F["torch" t],
           Bb["backbone" t], Bb["torch" t], F["backbone" t]/F["torch" t], Bb["backbone" t]/Bb["torch" t]}' "$out.pairs"
rm -f "$out.pairs"
echo "(tokens/s; ratio = dd2 / PyTorch)"
