#!/usr/bin/env bash
# `make bench`: dd2's op and backbone benchmark, then the same backbone in PyTorch (same machine,
# same shapes, same thread counts, one run), and the ratio dd2 / PyTorch in tokens/s.
# Usage: tools/bench.sh [CONFIG]     (default: the embedded default config)
set -euo pipefail
cd "$(dirname "$0")/.."
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
echo "PyTorch, same backbone and shapes:"
for t in 1 2; do
  OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$core} /usr/bin/python3 tools/bench_torch.py $dims --threads $t | tee -a "$out"
done
echo
echo "dd2 / PyTorch (tokens/s, same run):"
awk '/^BENCH backbone/{split($3,a,"=");split($4,f,"=");split($5,b,"="); df[a[2]]=f[2]; db[a[2]]=b[2]}
     /^BENCH torch/{split($3,a,"=");split($4,f,"=");split($5,b,"="); tf[a[2]]=f[2]; tb[a[2]]=b[2]}
     END{printf "  %-8s %14s %14s\n", "threads", "forward", "fwd+bwd";
         for (t=1;t<=2;t++) if ((t in df) && (t in tf)) printf "  %-8d %13.2fx %13.2fx\n", t, df[t]/tf[t], db[t]/tb[t]}' "$out"
