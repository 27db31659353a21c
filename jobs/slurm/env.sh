# shellcheck shell=bash
# The environment of dd2's Slurm jobs: threads, GPUs, NCCL, MPI. The one place for it.
#
# Sourced by jobs/slurm/launch.sh in the batch shell before the job step starts; srun hands the
# batch shell's environment to every task (--export=ALL, Slurm's default). Every value below is
# only a default: a variable already set when you submit (sbatch exports your environment) wins.
# Site specifics come from variables, never from this file:
#
#   DD2_MODULES="openmpi/4.1.6 cuda/12.4"   loaded with `module load` when the cluster has modules
#   DD2_NCCL_IFNAME=ib0                     -> NCCL_SOCKET_IFNAME (NCCL's bootstrap network);
#                                              unset: NCCL picks an interface itself
#   DD2_ENV_EXTRA=/path/site-env.sh         sourced last (anything else your site needs)
#
# Shell: bash, `set -u` safe.

# ---- modules (optional) ----
if [ -n "${DD2_MODULES:-}" ]; then
  if command -v module >/dev/null 2>&1; then
    # shellcheck disable=SC2086  # a list of module names
    module load ${DD2_MODULES}
  else
    echo "dd2 env: DD2_MODULES is set but this shell has no 'module' command; ignored" >&2
  fi
fi

# ---- CPU threads ----
# One BLAS thread per CPU that Slurm gave each task (--cpus-per-task). Without it dd2 divides the
# node's cores by its ranks on the node, which oversubscribes a node shared with other jobs.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}"

# ---- GPUs ----
# Slurm sets CUDA_VISIBLE_DEVICES from --gpus-per-node / --gpus-per-task: with --gpus-per-node
# every task of a node sees all the node's GPUs, with --gpus-per-task=1 each task sees its own.
# PCI order makes device numbers match nvidia-smi. (The CPU backend ignores all of this; the CUDA
# backend is still being built, see README.md.)
export CUDA_DEVICE_ORDER="${CUDA_DEVICE_ORDER:-PCI_BUS_ID}"

# ---- NCCL ----
# NCCL reads nothing from Slurm (its communicator is set up from an id broadcast over MPI).
# Errors and warnings only by default; NCCL_DEBUG=INFO to debug a hang.
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"
if [ -n "${DD2_NCCL_IFNAME:-}" ]; then export NCCL_SOCKET_IFNAME="$DD2_NCCL_IFNAME"; fi

# ---- MPI ----
# srun --mpi=pmix needs nothing here. mpirun (DD2_LAUNCHER=mpirun) reads the allocation from
# Slurm by itself; Open MPI refuses to run as root unless told (containers, throwaway clusters).
# More ranks on this node than cores (sbatch --overcommit, or a test node that claims more CPUs
# than it has): waiting ranks must yield the core instead of spinning, or every step runs several
# times slower. SLURM_TASKS_PER_NODE looks like "8(x4)" or "3,2": the first node's count.
tasks_here=${SLURM_TASKS_PER_NODE:-}
tasks_here=${tasks_here%%[(,]*}
if [ -n "$tasks_here" ] && [ "$tasks_here" -gt "$(nproc)" ] 2>/dev/null; then
  export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
fi
unset tasks_here
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# ---- site additions (optional) ----
if [ -n "${DD2_ENV_EXTRA:-}" ]; then
  # shellcheck disable=SC1090
  source "$DD2_ENV_EXTRA"
fi
