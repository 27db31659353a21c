/* Process roles for the stages that use the teacher-score service (docs/distributed.md).
 *
 * dist.teacher_ranks = T:
 *   T = 0   colocated: every rank is a learner and runs the teacher-score service in process
 *           (the local link). The only layout for one process; on a CPU box where the teacher is
 *           a small share of the work it is also the fastest for several.
 *   T ≥ 1   split: the LAST T ranks of MPI_COMM_WORLD are teacher-score workers, the first
 *           L = size − T ranks learners. Learner j (world rank j) talks to worker L + (j mod T);
 *           worker w serves the learners j ≡ w − L (mod T), in increasing order.
 * Workers go last so that world rank 0 is always learner 0: the rank that logs, writes metrics,
 * checkpoints' metadata and final files is the same in every layout.
 * T ≥ size leaves no learner: DD2_ERR_INPUT (exit 2).
 *
 * `learners` is the learners' communicator (collectives over the learners: gradient all-reduce,
 * checkpoints, the stop agreement); MPI_COMM_NULL on workers. Collective over MPI_COMM_WORLD.
 */
#ifndef DD2_DIST_ROLES_H
#define DD2_DIST_ROLES_H

#include <mpi.h>

#include "core/status.h"
#include "dist/mpi_env.h"

typedef struct dd2_roles {
    int T, L;            /* workers, learners */
    int is_worker;
    MPI_Comm learners;   /* learners only (MPI_COMM_NULL on workers) */
    int learner_rank;    /* rank in `learners`, −1 on workers */
    int worker;          /* learner: world rank of its worker, −1 when colocated */
    int *served;         /* worker: world ranks of its learners, in serving order */
    int n_served;
} dd2_roles;

/* Split the world (see the top). `stage` names the stage in errors. */
int dd2_roles_init(dd2_roles *r, int T, const char *stage, dd2_status *st);
void dd2_roles_free(dd2_roles *r);

/* Log the layout table on world rank 0 (collective): rank, host, role, device, local rank. */
void dd2_roles_print(const dd2_roles *r, const dd2_mpi_env *env, const char *stage);

#endif
