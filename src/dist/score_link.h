/* Moving teacher-score messages (dist/score_msg.h) between a learner and the teacher-score
 * service (dist/score_service.h), docs/distributed.md.
 *
 * A learner holds one link to its worker. The protocol is one request in flight per link:
 *     post(request) ... other work (the guidance updates) ... wait(reply)
 * The request buffer is the caller's and must not change until wait returns; the reply lives in
 * the link until the next post.
 *
 * Backends:
 * - local: the service runs in this process; post answers the request at once (one process has
 *   one thread of work, so nothing can overlap; the results are identical to the MPI backend).
 * - MPI: the worker is rank `peer` of `comm`. post = MPI_Isend of the request + MPI_Irecv of the
 *   reply into a buffer sized for the expected reply (or an ERROR message), wait = MPI_Waitall.
 *   Messages are MPI_BYTE; tags DD2_TAG_SCORE_REQ / DD2_TAG_SCORE_REP.
 *   The NCCL backend (CUDA builds) will take the same place.
 *
 * The worker side, dd2_score_worker_run: serves the learners given, in a fixed round-robin order
 * (learner 0's next request, then learner 1's, ...), until each has sent STOP. Every learner
 * sends exactly one request per step and waits for its reply before the next, so the fixed order
 * cannot deadlock. Replies go out with MPI_Isend from one buffer per learner (a buffer is reused
 * only after its previous send completed), so the worker never waits for a learner to receive.
 * A request the service cannot answer gets an ERROR reply (the learner's wait returns the
 * worker's message); the worker keeps serving and returns the first such error at the end.
 */
#ifndef DD2_DIST_SCORE_LINK_H
#define DD2_DIST_SCORE_LINK_H

#include <mpi.h>
#include <stdint.h>

#include "core/status.h"
#include "dist/score_msg.h"
#include "dist/score_service.h"

#define DD2_TAG_SCORE_REQ 0x5331
#define DD2_TAG_SCORE_REP 0x5332

enum dd2_link_kind { DD2_LINK_LOCAL, DD2_LINK_MPI };

typedef struct dd2_score_link {
    int kind;
    dd2_score_server *srv; /* local */
    MPI_Comm comm;         /* MPI */
    int peer;
    MPI_Request rq[2];
    MPI_Status ss[2];      /* their statuses once complete */
    int in_flight, complete;
    int failed;            /* local: the request failed, st_local holds why */
    dd2_status st_local;
    dd2_score_msg rep;
    uint64_t next_id;
    /* statistics since dd2_score_link_init */
    long requests;
    uint64_t bytes_sent, bytes_recv;
    double wait_s; /* seconds blocked in wait */
} dd2_score_link;

void dd2_score_link_local(dd2_score_link *l, dd2_score_server *srv);
void dd2_score_link_mpi(dd2_score_link *l, MPI_Comm comm, int peer);

/* Send a request (the header's id is set here). Fails if one is already in flight. */
int dd2_score_link_post(dd2_score_link *l, dd2_score_msg *req, dd2_status *st);

/* Let MPI move the messages in flight (call between pieces of other work). */
void dd2_score_link_progress(dd2_score_link *l);

/* Wait for the reply to the request in flight; *rep points at it (checked: kind `want`, the
 * request's id). An ERROR reply returns the worker's status. */
int dd2_score_link_wait(dd2_score_link *l, int want, const dd2_score_msg **rep, dd2_status *st);

/* Tell the worker this learner is done (MPI: a STOP message; waits for any request in flight
 * first) and free the link. Call it on every path out of the learner's loop, errors included. */
int dd2_score_link_close(dd2_score_link *l, dd2_status *st);

/* Worker statistics: requests served, seconds serving, seconds idle (waiting for requests). */
typedef struct dd2_worker_stats {
    long served;
    double busy_s, idle_s, total_s;
    uint64_t bytes_in, bytes_out;
} dd2_worker_stats;

/* Serve the learners at ranks learners[0..nl) of comm until each sent STOP (see the top).
 * stats may be NULL. */
int dd2_score_worker_run(dd2_score_server *srv, MPI_Comm comm, const int *learners, int nl,
                         dd2_worker_stats *stats, dd2_status *st);

#endif
