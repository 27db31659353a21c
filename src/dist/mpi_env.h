/* MPI start-up and the process layout.
 *
 * dd2 always runs as an MPI program: under mpirun/srun each process is a rank; started directly it
 * is a singleton (size 1). dd2_mpi_start() initialises MPI (MPI_THREAD_FUNNELED), records rank and
 * size for the logger and status messages (dd2_set_rank), and finds the local rank on the node
 * (MPI_Comm_split_type SHARED). For singletons it selects Open MPI's shared-memory transports to
 * cut start-up time (only when the user has not chosen any).
 */
#ifndef DD2_DIST_MPI_ENV_H
#define DD2_DIST_MPI_ENV_H

#include <stddef.h>

#include "core/status.h"

typedef struct dd2_mpi_env {
    int rank, size;             /* in MPI_COMM_WORLD */
    int local_rank, local_size; /* on this node */
    char host[256];
    int started;                /* MPI_Init was called by dd2_mpi_start */
} dd2_mpi_env;

int dd2_mpi_start(int *argc, char ***argv, dd2_mpi_env *env, dd2_status *st);
void dd2_mpi_stop(dd2_mpi_env *env);

/* Abort every rank with `code` (used by the driver only, for failures not shared by all ranks). */
void dd2_mpi_abort(const dd2_mpi_env *env, int code);

/* Broadcast a byte buffer from `root`: on root *bytes and *len are inputs; elsewhere *bytes is
 * allocated (malloc, NUL-terminated) and *len set. Also broadcasts a failure: if root passes
 * root_code != 0 the function returns that code on every rank with root's message. */
int dd2_bcast_bytes(char **bytes, size_t *len, int root, int root_code, dd2_status *st);

#endif
