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
 * The worker side, dd2_score_worker_run: serves the learners given, each request as it arrives
 * (MPI_ANY_SOURCE; a request from a rank that is not one of its learners is an error), until each
 * has sent STOP. A learner has at most one request in flight and each reply depends only on its
 * request, so the order of service changes no result, and no learner can be starved or wait on
 * another one — even when learners send different numbers of requests (e.g. uneven evaluation
 * slices). Replies go out with MPI_Isend from one buffer per learner (a buffer is reused only
 * after its previous send completed), so the worker never waits for a learner to receive.
 * A request the service cannot answer gets an ERROR reply (the learner's wait returns the
 * worker's message); the worker keeps serving and returns the first such error at the end
 * (stats->internal = 0). A failure of the worker itself (out of memory, MPI, a message over
 * 2 GiB) returns at once with stats->internal = 1: its learners can no longer be served, so the
 * caller must not wait for them (the driver aborts the job).
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
    dd2_score_hdr sent;    /* the header of the request in flight (the reply must echo it) */
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
    int internal;      /* the worker itself failed (see above) */
    long served;
    double busy_s, idle_s, total_s;
    uint64_t bytes_in, bytes_out;
} dd2_worker_stats;

/* Serve the learners at ranks learners[0..nl) of comm until each sent STOP (see the top).
 * stats may be NULL. */
int dd2_score_worker_run(dd2_score_server *srv, MPI_Comm comm, const int *learners, int nl,
                         dd2_worker_stats *stats, dd2_status *st);

#endif
