#include "dist/collectives.h"

#include <stdlib.h>
#include <time.h>

#define CHUNK ((size_t)1 << 28) /* elements per MPI call: well below INT_MAX */

static int mpi_ok(int rc, const char *what, dd2_status *st) {
    if (rc == MPI_SUCCESS) return DD2_OK;
    char err[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, err, &len);
    return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s failed: %s", what, err);
}

static int allreduce(void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op, MPI_Comm comm,
                     dd2_status *st) {
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t c = n - off < CHUNK ? n - off : CHUNK;
        DD2_TRY(mpi_ok(MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)c, type, op, comm),
                       "MPI_Allreduce", st));
    }
    return DD2_OK;
}

int dd2_allreduce_sum_f32(float *buf, size_t n, MPI_Comm comm, dd2_status *st) {
    return allreduce(buf, n, sizeof *buf, MPI_FLOAT, MPI_SUM, comm, st);
}

int dd2_allreduce_sum_f64(double *buf, size_t n, MPI_Comm comm, dd2_status *st) {
    return allreduce(buf, n, sizeof *buf, MPI_DOUBLE, MPI_SUM, comm, st);
}

int dd2_allreduce_max_int(int *buf, int n, MPI_Comm comm, dd2_status *st) {
    return allreduce(buf, (size_t)n, sizeof *buf, MPI_INT, MPI_MAX, comm, st);
}

int dd2_bcast_f32(float *buf, size_t n, int root, MPI_Comm comm, dd2_status *st) {
    for (size_t off = 0; off < n; off += CHUNK) {
        size_t c = n - off < CHUNK ? n - off : CHUNK;
        DD2_TRY(mpi_ok(MPI_Bcast(buf + off, (int)c, MPI_FLOAT, root, comm), "MPI_Bcast", st));
    }
    return DD2_OK;
}

int dd2_allreduce_max_int_idle(int *value, MPI_Comm comm, dd2_status *st) {
    MPI_Request req;
    DD2_TRY(mpi_ok(MPI_Iallreduce(MPI_IN_PLACE, value, 1, MPI_INT, MPI_MAX, comm, &req), "MPI_Iallreduce", st));
    int done = 0;
    while (!done) {
        DD2_TRY(mpi_ok(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test", st));
        if (!done) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    return DD2_OK;
}

uint64_t dd2_buffer_hash(const float *buf, size_t n) {
    const unsigned char *b = (const unsigned char *)buf;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n * sizeof *buf; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

int dd2_check_replicas(const float *buf, size_t n, const char *what, MPI_Comm comm, dd2_status *st) {
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    unsigned long long h = dd2_buffer_hash(buf, n), *all = malloc((size_t)size * sizeof *all);
    if (!all) return DD2_FAIL(st, DD2_ERR_RUNTIME, "out of memory");
    int rc = mpi_ok(MPI_Allgather(&h, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, comm),
                    "MPI_Allgather", st);
    for (int r = 1; rc == DD2_OK && r < size; r++)
        if (all[r] != all[0])
            rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "%s differ between rank 0 (hash %016llx) and rank %d (%016llx)", what,
                          all[0], r, all[r]);
    free(all);
    st->collective = 1; /* every rank saw the same gathered hashes */
    return rc;
}
