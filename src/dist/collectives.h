/* Collectives among learners, on flat buffers. Counts are element counts taken from the buffer
 * (size_t), split into MPI-sized chunks; the MPI datatype follows the C type of the function. */
#ifndef DD2_DIST_COLLECTIVES_H
#define DD2_DIST_COLLECTIVES_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* In-place sum over all ranks of comm. */
int dd2_allreduce_sum_f32(float *buf, size_t n, MPI_Comm comm, dd2_status *st);
int dd2_allreduce_sum_f64(double *buf, size_t n, MPI_Comm comm, dd2_status *st);
/* In-place max of ints (e.g. agreeing on a flag or an error code). */
int dd2_allreduce_max_int(int *buf, int n, MPI_Comm comm, dd2_status *st);
/* Broadcast a float buffer from root. */
int dd2_bcast_f32(float *buf, size_t n, int root, MPI_Comm comm, dd2_status *st);

/* MPI_Allreduce(MAX) of one int, waiting without spinning: ranks that arrive early sleep in
 * 1 ms steps instead of busy-polling (Open MPI's blocking collectives spin a core, which steals
 * the CPU from a rank doing work alone, e.g. rank 0 computing FIDs or timing latencies). */
int dd2_allreduce_max_int_idle(int *value, MPI_Comm comm, dd2_status *st);

/* FNV-1a over the bytes of a float buffer (bitwise identity check of replicas). */
uint64_t dd2_buffer_hash(const float *buf, size_t n);
/* Verify every rank holds bitwise the same buffer; on mismatch the error names the ranks. */
int dd2_check_replicas(const float *buf, size_t n, const char *what, MPI_Comm comm, dd2_status *st);

#endif
