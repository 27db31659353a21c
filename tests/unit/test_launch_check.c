/* dd2_launch_check: the MPI world size against the number of tasks of the Slurm step. */
#include <stdlib.h>

#include "core/status.h"
#include "dist/launch_check.h"
#include "test_util.h"

/* Start every case from an environment without Slurm or mpirun variables (the test itself may
 * run inside a Slurm step or under mpirun). */
static void clean_env(void) {
    unsetenv("SLURM_STEP_NUM_TASKS");
    unsetenv("SLURM_NTASKS");
    unsetenv("SLURM_NPROCS");
    unsetenv("OMPI_COMM_WORLD_SIZE");
}

static int check(int world_size, dd2_status *st) {
    dd2_status_clear(st);
    return dd2_launch_check(world_size, st);
}

TEST(no_slurm) {
    clean_env();
    dd2_status st;
    CHECK_OK(check(1, &st), &st);
    CHECK_OK(check(4, &st), &st);
}

TEST(srun_step_matches) {
    clean_env();
    dd2_status st;
    setenv("SLURM_STEP_NUM_TASKS", "3", 1);
    setenv("SLURM_NTASKS", "3", 1);
    CHECK_OK(check(3, &st), &st);
    setenv("SLURM_STEP_NUM_TASKS", "1", 1);
    CHECK_OK(check(1, &st), &st);
}

/* srun --mpi=none -n 3: three singletons of size 1 */
TEST(srun_without_pmix) {
    clean_env();
    dd2_status st;
    setenv("SLURM_STEP_NUM_TASKS", "3", 1);
    CHECK(check(1, &st) == DD2_ERR_INPUT);
    CHECK(st.code == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "SLURM_STEP_NUM_TASKS=3"), "%s", st.msg);
    CHECK_MSG(strstr(st.msg, "world has size 1"), "%s", st.msg);
    CHECK_MSG(strstr(st.msg, "singleton"), "%s", st.msg);
    CHECK_MSG(strstr(st.msg, "srun --mpi=pmix"), "%s", st.msg);
    CHECK_MSG(strstr(st.msg, "--mpi=none"), "%s", st.msg);
}

TEST(partial_world) {
    clean_env();
    dd2_status st;
    setenv("SLURM_STEP_NUM_TASKS", "4", 1);
    CHECK(check(2, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "SLURM_STEP_NUM_TASKS=4"), "%s", st.msg);
    CHECK_MSG(strstr(st.msg, "world has size 2"), "%s", st.msg);
}

/* The batch shell of an sbatch job has the allocation's SLURM_NTASKS but is no step: a singleton
 * or an mpirun started there is not checked against it. */
TEST(batch_shell_not_checked) {
    clean_env();
    dd2_status st;
    setenv("SLURM_NTASKS", "3", 1);
    setenv("SLURM_NPROCS", "3", 1);
    CHECK_OK(check(1, &st), &st);
    CHECK_OK(check(2, &st), &st);
}

/* mpirun on several nodes starts its daemons with an srun step of one task per node; the ranks
 * inherit that step's SLURM_STEP_NUM_TASKS, but mpirun chose the size. */
TEST(mpirun_not_checked) {
    clean_env();
    dd2_status st;
    setenv("SLURM_STEP_NUM_TASKS", "2", 1);
    setenv("OMPI_COMM_WORLD_SIZE", "16", 1);
    CHECK_OK(check(16, &st), &st);
}

TEST(unparsable_count_ignored) {
    clean_env();
    dd2_status st;
    const char *bad[] = {"", "abc", "3x", "0", "-2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("SLURM_STEP_NUM_TASKS", bad[i], 1);
        CHECK_MSG(check(1, &st) == DD2_OK, "SLURM_STEP_NUM_TASKS='%s': %s", bad[i], st.msg);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(no_slurm);
    RUN(srun_step_matches);
    RUN(srun_without_pmix);
    RUN(partial_world);
    RUN(batch_shell_not_checked);
    RUN(mpirun_not_checked);
    RUN(unparsable_count_ignored);
    return test_summary();
}
