/* The launch check: does the MPI world have as many ranks as Slurm started tasks?
 *
 * Open MPI started by `srun` without PMIx (`--mpi=none`, or a cluster whose MpiDefault is not
 * pmix) cannot find its peers: each of the N tasks is a singleton, an MPI world of size 1, and N
 * copies of the same run would overwrite each other's files. Open MPI 4.1 (Debian 12) refuses
 * in MPI_Init with its own message; other MPI builds start the singletons silently.
 *
 * Which variable: SLURM_STEP_NUM_TASKS, the number of tasks of the job step this process belongs
 * to. srun sets it for every task it starts, so it is exactly the world size a direct launch must
 * give. It is not set in the batch shell of an sbatch job, so a process started there directly
 * (a singleton `dd2 config`, or `mpirun -np 2` inside a 3-task allocation) is not checked.
 * SLURM_NTASKS / SLURM_NPROCS are not used: in the batch shell they hold the allocation's task
 * count, which legitimately differs from an mpirun's -np or from a smaller `srun -n`.
 *
 * When Open MPI's mpirun started the ranks (OMPI_COMM_WORLD_SIZE is set) mpirun, not srun, chose
 * the number of ranks: nothing is checked (inside an allocation on several nodes mpirun starts its
 * daemons with an srun step of one task per node, whose SLURM_STEP_NUM_TASKS the ranks inherit).
 */
#ifndef DD2_DIST_LAUNCH_CHECK_H
#define DD2_DIST_LAUNCH_CHECK_H

#include "core/status.h"

/* DD2_OK when the launch is consistent (or not a Slurm step); otherwise DD2_ERR_INPUT with a
 * message naming both numbers and the likely cause. `world_size` is MPI_COMM_WORLD's size, or 1
 * before MPI_Init when no MPI launcher is visible in the environment (the process will be a
 * singleton). Reads the environment only. */
int dd2_launch_check(int world_size, dd2_status *st);

#endif
