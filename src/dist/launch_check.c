#include "dist/launch_check.h"

#include <errno.h>
#include <stdlib.h>

/* A positive integer from the environment, or 0 when unset or not a number. */
static long env_count(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n <= 0) return 0;
    return n;
}

int dd2_launch_check(int world_size, dd2_status *st) {
    if (getenv("OMPI_COMM_WORLD_SIZE")) return DD2_OK; /* started by mpirun: it chose the size */
    long tasks = env_count("SLURM_STEP_NUM_TASKS");
    if (tasks == 0 || tasks == world_size) return DD2_OK;
    if (world_size == 1)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "Slurm started %ld tasks in this step (SLURM_STEP_NUM_TASKS=%ld) but the MPI "
                        "world has size 1: every task is a separate singleton. Likely cause: srun "
                        "without PMIx (--mpi=none, or a cluster whose MpiDefault is not pmix). Launch "
                        "with `srun --mpi=pmix` (`srun --mpi=list` shows what the cluster has) or "
                        "with mpirun inside the allocation",
                        tasks, tasks);
    return DD2_FAIL(st, DD2_ERR_INPUT,
                    "Slurm started %ld tasks in this step (SLURM_STEP_NUM_TASKS=%ld) but the MPI "
                    "world has size %d: the ranks did not all join one MPI job. Launch with "
                    "`srun --mpi=pmix` or with mpirun inside the allocation",
                    tasks, tasks, world_size);
}
