#!/usr/bin/env bash
# `make run`: the main job on the embedded default, under MPI on this machine:
#   mpirun -np $NP build/dd2 pipeline $CONFIG   (vq -> fid-stats -> teacher -> sample -> eval)
# then the loss curves (tools/plot_metrics.py, when /usr/bin/python3 has numpy). Finished stages
# are skipped, so running it again resumes where it stopped (training resumes from checkpoints).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/fmnist-quick.yaml}
NP=${NP:-2}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
run_dir=$(./build/dd2 config "$CONFIG" | awk '/^run:/{f=1} f && $1=="out_dir:"{gsub(/"/,"",$2); d=$2} f && $1=="name:"{gsub(/"/,"",$2); n=$2} /^$/{if(f) exit} END{print d "/" n}')
t0=$(date +%s)
mpirun -np "$NP" ./build/dd2 pipeline "$CONFIG"
echo "make run: pipeline finished in $(( $(date +%s) - t0 ))s; run directory $run_dir"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  /usr/bin/python3 tools/plot_metrics.py "$run_dir/metrics.jsonl" -o "$run_dir/metrics.png" || true
fi
echo "results: $run_dir/eval/table.md; samples: $run_dir/samples/teacher.png; curves: $run_dir/metrics.png"
