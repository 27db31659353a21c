/* Teacher-score transport: local and MPI backends, the worker loop (dist/score_link.h). */
#include "dist/score_link.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* the most an ERROR reply can take */
#define ERROR_BYTES (64 + DD2_MSG_MAX + 8)

static void link_init(dd2_score_link *l, int kind) {
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->rq[0] = l->rq[1] = MPI_REQUEST_NULL;
    l->next_id = 1;
}

void dd2_score_link_local(dd2_score_link *l, dd2_score_server *srv) {
    link_init(l, DD2_LINK_LOCAL);
    l->srv = srv;
}

void dd2_score_link_mpi(dd2_score_link *l, MPI_Comm comm, int peer) {
    link_init(l, DD2_LINK_MPI);
    l->comm = comm, l->peer = peer;
}

static int mpi_fail(dd2_status *st, int err, const char *what, int peer) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, text, &len);
    return DD2_FAIL(st, DD2_ERR_RUNTIME, "score link: %s (peer rank %d): %s", what, peer, text);
}

static size_t reply_bytes(const dd2_score_hdr *h) {
    const int kind = h->kind == DD2_SCORE_REQ ? DD2_SCORE_REP : DD2_SAMPLE_REP;
    const size_t need = dd2_score_msg_bytes(kind, h->flags & DD2_SCORE_WANT_COV, h->B, h->n, h->C, h->m);
    return need > ERROR_BYTES ? need : ERROR_BYTES;
}

int dd2_score_link_post(dd2_score_link *l, dd2_score_msg *req, dd2_status *st) {
    if (l->in_flight) return DD2_FAIL(st, DD2_ERR_RUNTIME, "score link: a request is already in flight");
    dd2_score_hdr *h = dd2_score_hdr_of(req);
    if (h->kind != DD2_SCORE_REQ && h->kind != DD2_SAMPLE_REQ)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score link: message kind %u is not a request", h->kind);
    if (l->kind == DD2_LINK_MPI && (h->bytes > INT_MAX || reply_bytes(h) > INT_MAX))
        return DD2_FAIL(st, DD2_ERR_INPUT, "score link: a request of %llu bytes (reply %zu) is over the 2 GiB an MPI "
                        "message may carry here; use a smaller batch per learner or fewer draws",
                        (unsigned long long)h->bytes, reply_bytes(h));
    h->id = l->next_id++;
    l->sent = *h;
    l->requests++;
    l->bytes_sent += h->bytes;
    l->in_flight = 1;
    l->complete = 0;
    if (l->kind == DD2_LINK_LOCAL) {
        dd2_status_clear(&l->st_local);
        l->failed = dd2_score_serve(l->srv, req, &l->rep, &l->st_local) != DD2_OK;
        return DD2_OK;
    }
    const size_t cap = reply_bytes(h);
    DD2_TRY(dd2_score_msg_reserve(&l->rep, cap, st));
    int err = MPI_Irecv(l->rep.buf, (int)cap, MPI_BYTE, l->peer, DD2_TAG_SCORE_REP, l->comm, &l->rq[1]);
    if (err == MPI_SUCCESS)
        err = MPI_Isend(req->buf, (int)h->bytes, MPI_BYTE, l->peer, DD2_TAG_SCORE_REQ, l->comm, &l->rq[0]);
    if (err != MPI_SUCCESS) return mpi_fail(st, err, "posting a request", l->peer);
    return DD2_OK;
}

void dd2_score_link_progress(dd2_score_link *l) {
    if (l->kind != DD2_LINK_MPI || !l->in_flight || l->complete) return;
    /* all or nothing: on success the statuses are kept for wait */
    MPI_Testall(2, l->rq, &l->complete, l->ss);
}

int dd2_score_link_wait(dd2_score_link *l, int want, const dd2_score_msg **rep, dd2_status *st) {
    if (!l->in_flight) return DD2_FAIL(st, DD2_ERR_RUNTIME, "score link: no request in flight");
    l->in_flight = 0;
    const uint64_t id = l->next_id - 1;
    size_t len;
    if (l->kind == DD2_LINK_LOCAL) {
        if (l->failed) {
            *st = l->st_local;
            return st->code;
        }
        len = dd2_score_hdr_of(&l->rep)->bytes;
    } else {
        const double t0 = dd2_now();
        const int err = l->complete ? MPI_SUCCESS : MPI_Waitall(2, l->rq, l->ss);
        l->wait_s += dd2_now() - t0;
        if (err != MPI_SUCCESS) return mpi_fail(st, err, "waiting for a reply", l->peer);
        int count = 0;
        MPI_Get_count(&l->ss[1], MPI_BYTE, &count);
        len = (size_t)count;
    }
    l->bytes_recv += len;
    DD2_TRY(dd2_score_msg_check(&l->rep, len, want, st));
    const dd2_score_hdr *r = dd2_score_hdr_of(&l->rep), *q = &l->sent;
    if (r->id != id)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score link: reply to request %llu, expected %llu",
                        (unsigned long long)r->id, (unsigned long long)id);
    if (r->B != q->B || r->n != q->n || r->C != q->C || r->m != q->m ||
        (r->flags & DD2_SCORE_WANT_COV) != (q->flags & DD2_SCORE_WANT_COV))
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score link: reply of shape B=%d n=%d C=%d m=%d flags %u to a request of "
                        "B=%d n=%d C=%d m=%d flags %u", r->B, r->n, r->C, r->m, r->flags, q->B, q->n, q->C, q->m,
                        q->flags);
    *rep = &l->rep;
    return DD2_OK;
}

int dd2_score_link_close(dd2_score_link *l, dd2_status *st) {
    int rc = DD2_OK;
    if (l->kind == DD2_LINK_MPI && l->comm != MPI_COMM_NULL) {
        if (l->in_flight && !l->complete) MPI_Waitall(2, l->rq, MPI_STATUSES_IGNORE);
        dd2_score_hdr stop = {DD2_SCORE_MAGIC, DD2_SCORE_VERSION, DD2_SCORE_STOP, 0, 0, 0, 0, 0, 0,
                              l->next_id, 0, sizeof(dd2_score_hdr), 0};
        const int err = MPI_Send(&stop, (int)sizeof stop, MPI_BYTE, l->peer, DD2_TAG_SCORE_REQ, l->comm);
        if (err != MPI_SUCCESS) rc = mpi_fail(st, err, "sending stop", l->peer);
    }
    dd2_score_msg_free(&l->rep);
    l->in_flight = 0;
    l->comm = MPI_COMM_NULL;
    return rc;
}

int dd2_score_worker_run(dd2_score_server *srv, MPI_Comm comm, const int *learners, int nl,
                         dd2_worker_stats *stats, dd2_status *st) {
    dd2_score_msg req = {0};
    dd2_score_msg *reps = calloc((size_t)nl, sizeof *reps);
    MPI_Request *sends = malloc((size_t)nl * sizeof *sends);
    char *active = malloc((size_t)nl);
    if (!reps || !sends || !active) {
        free(reps), free(sends), free(active);
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score worker: out of memory");
    }
    for (int j = 0; j < nl; j++) sends[j] = MPI_REQUEST_NULL, active[j] = 1;
    int left = nl, rc = DD2_OK;
    dd2_status first_err;
    dd2_status_clear(&first_err);
    dd2_worker_stats ws = {0};
    const double start = dd2_now();
    while (left > 0 && rc == DD2_OK) {
        const double t0 = dd2_now();
        MPI_Status s;
        int count = 0, j = -1, err = MPI_Probe(MPI_ANY_SOURCE, DD2_TAG_SCORE_REQ, comm, &s);
        if (err == MPI_SUCCESS) {
            MPI_Get_count(&s, MPI_BYTE, &count);
            for (int k = 0; k < nl; k++)
                if (learners[k] == s.MPI_SOURCE) j = k;
            if (j < 0 || !active[j]) {
                rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "score worker: a request from rank %d, which is not one of its "
                              "active learners", s.MPI_SOURCE);
                break;
            }
            if (count < 0) {
                rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "score worker: a request from rank %d over 2 GiB", s.MPI_SOURCE);
                break;
            }
            if ((rc = dd2_score_msg_reserve(&req, (size_t)count, st)) != DD2_OK) break;
            err = MPI_Recv(req.buf, count, MPI_BYTE, s.MPI_SOURCE, DD2_TAG_SCORE_REQ, comm, MPI_STATUS_IGNORE);
        }
        ws.idle_s += dd2_now() - t0;
        if (err != MPI_SUCCESS) {
            rc = mpi_fail(st, err, "receiving a request", s.MPI_SOURCE);
            break;
        }
        /* the previous reply to this learner has been received (it waited before posting) */
        MPI_Wait(&sends[j], MPI_STATUS_IGNORE);
        dd2_status err_st;
        dd2_status_clear(&err_st);
        int r = dd2_score_msg_check(&req, (size_t)count, 0, &err_st);
        const dd2_score_hdr *h = dd2_score_hdr_of(&req);
        if (r == DD2_OK && h->kind == DD2_SCORE_STOP) {
            active[j] = 0, left--;
            continue;
        }
        if (r == DD2_OK) r = dd2_score_serve(srv, &req, &reps[j], &err_st);
        if (r != DD2_OK) {
            if (first_err.code == DD2_OK) first_err = err_st;
            dd2_score_hdr fallback = {0};
            if (count >= (int)sizeof fallback) fallback = *h;
            if ((rc = dd2_score_msg_error(&reps[j], &fallback, &err_st, st)) != DD2_OK) break;
        }
        const dd2_score_hdr *rh = dd2_score_hdr_of(&reps[j]);
        err = MPI_Isend(reps[j].buf, (int)rh->bytes, MPI_BYTE, learners[j], DD2_TAG_SCORE_REP, comm, &sends[j]);
        if (err != MPI_SUCCESS) rc = mpi_fail(st, err, "sending a reply", learners[j]);
    }
    MPI_Waitall(nl, sends, MPI_STATUSES_IGNORE);
    ws.internal = rc != DD2_OK;
    ws.served = srv->served;
    ws.busy_s = srv->busy_s;
    ws.bytes_in = srv->bytes_in;
    ws.bytes_out = srv->bytes_out;
    ws.total_s = dd2_now() - start;
    if (stats) *stats = ws;
    for (int j = 0; j < nl; j++) dd2_score_msg_free(&reps[j]);
    dd2_score_msg_free(&req);
    free(reps), free(sends), free(active);
    if (rc == DD2_OK && first_err.code != DD2_OK) {
        *st = first_err;
        rc = first_err.code;
    }
    return rc;
}
