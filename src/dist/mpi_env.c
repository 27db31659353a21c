#include "dist/mpi_env.h"

#include "dist/launch_check.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Launched by mpirun/srun (PMIx) rather than started directly? */
static int launched_by_mpi_launcher(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

int dd2_mpi_start(int *argc, char ***argv, dd2_mpi_env *env, dd2_status *st) {
    memset(env, 0, sizeof *env);
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        if (!launched_by_mpi_launcher()) {
            DD2_TRY(dd2_launch_check(1, st)); /* srun without PMIx: each task would be a singleton */
            /* singleton: the shared-memory transports start 2-3x faster than the default probe */
            setenv("OMPI_MCA_pml", "ob1", 0);
            setenv("OMPI_MCA_btl", "self,vader", 0);
        }
        int provided = 0;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "MPI_Init_thread failed");
        env->started = 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &env->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &env->size);
    int launch_rc = dd2_launch_check(env->size, st);
    if (launch_rc != DD2_OK) { dd2_mpi_stop(env); return launch_rc; }
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, env->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &env->local_rank);
    MPI_Comm_size(node, &env->local_size);
    MPI_Comm_free(&node);
    if (gethostname(env->host, sizeof env->host - 1) != 0) strcpy(env->host, "unknown");
    dd2_set_rank(env->rank, env->size);
    return DD2_OK;
}

void dd2_mpi_stop(dd2_mpi_env *env) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (env->started && !finalized) MPI_Finalize();
    env->started = 0;
}

void dd2_mpi_abort(const dd2_mpi_env *env, int code) {
    (void)env;
    MPI_Abort(MPI_COMM_WORLD, code);
}

int dd2_bcast_bytes(char **bytes, size_t *len, int root, int root_code, dd2_status *st) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    /* header: [status code, message length or payload length] */
    long long hdr[2] = {root_code, 0};
    if (rank == root) hdr[1] = root_code ? (long long)strlen(st->msg) : (long long)*len;
    MPI_Bcast(hdr, 2, MPI_LONG_LONG, root, MPI_COMM_WORLD);
    if (hdr[0] != 0) { /* propagate root's failure to everyone */
        char msg[DD2_MSG_MAX];
        if (rank == root) memcpy(msg, st->msg, sizeof msg);
        MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, root, MPI_COMM_WORLD);
        if (rank != root) dd2_status_fail(st, (int)hdr[0], __FILE__, __LINE__, __func__, "%s", msg);
        return (int)hdr[0];
    }
    size_t n = (size_t)hdr[1];
    if (rank != root) {
        *bytes = DD2_MALLOC(n + 1, st);
        if (!*bytes) return DD2_ERR_RUNTIME;
        *len = n;
    }
    /* MPI counts are int: send in chunks below 1 GiB */
    for (size_t off = 0; off < n;) {
        size_t chunk = n - off < ((size_t)1 << 30) ? n - off : ((size_t)1 << 30);
        MPI_Bcast(*bytes + off, (int)chunk, MPI_CHAR, root, MPI_COMM_WORLD);
        off += chunk;
    }
    if (rank != root) (*bytes)[n] = 0;
    return DD2_OK;
}
