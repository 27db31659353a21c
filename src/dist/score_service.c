/* The teacher-score service: compute side (dist/score_service.h). */
#include "dist/score_service.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/ardiff.h"

#define TEACHER_CHUNK 8 /* sequences per teacher forward (x2 rows with guidance) */

int dd2_score_server_init(dd2_score_server *srv, const dd2_teacher *t, const float *tparams,
                          const dd2_vq_codebook *cb, const dd2_sampling *s, int quantize, dd2_status *st) {
    memset(srv, 0, sizeof *srv);
    srv->t = t, srv->tparams = tparams, srv->cb = cb, srv->samp = *s, srv->quantize = quantize;
    if (cb->codes != t->V || cb->dim != t->C)
        return DD2_FAIL(st, DD2_ERR_INPUT, "score service: the codebook (%d codes of dim %d) does not match the "
                        "teacher (V = %d, C = %d)", cb->codes, cb->dim, t->V, t->C);
    DD2_TRY(dd2_mixture_init(&srv->mx, cb->c, cb->codes, cb->dim, st));
    DD2_TRY(dd2_teacher_work_alloc(&srv->tw, t, s->cfg_scale != 1.0f ? 2 * TEACHER_CHUNK : TEACHER_CHUNK, st));
    return DD2_OK;
}

void dd2_score_server_free(dd2_score_server *srv) {
    dd2_mixture_free(&srv->mx);
    dd2_teacher_work_free(&srv->tw);
    free(srv->logp);
    free(srv->xq);
    free(srv->idx);
    free(srv->row);
    memset(srv, 0, sizeof *srv);
}

/* Scratch for B sequences and P points. */
static int grow(dd2_score_server *srv, int B, size_t P, dd2_status *st) {
    const size_t n = (size_t)srv->t->n, V = (size_t)srv->t->V, C = (size_t)srv->t->C;
    if (B > srv->cap_seq) {
        free(srv->logp), free(srv->xq), free(srv->idx);
        srv->logp = DD2_MALLOC((size_t)B * n * V * sizeof(float), st);
        srv->xq = DD2_MALLOC((size_t)B * n * C * sizeof(float), st);
        srv->idx = DD2_MALLOC((size_t)B * n * sizeof(int32_t), st);
        srv->cap_seq = srv->logp && srv->xq && srv->idx ? B : 0;
        if (!srv->cap_seq) return DD2_ERR_RUNTIME;
    }
    if (P > srv->cap_pts) {
        free(srv->row);
        srv->row = DD2_MALLOC(P * sizeof(int), st);
        srv->cap_pts = srv->row ? P : 0;
        if (!srv->row) return DD2_ERR_RUNTIME;
    }
    return DD2_OK;
}

static int serve_score(dd2_score_server *srv, const dd2_score_msg *req, dd2_score_msg *rep, dd2_status *st) {
    const dd2_score_hdr *h = dd2_score_hdr_of(req);
    const int B = h->B, n = h->n, C = h->C, m = h->m;
    const size_t P = (size_t)B * n * m;
    DD2_TRY(grow(srv, B, P, st));
    const dd2_score_req_view in = dd2_score_req_of(req);
    for (int b = 0; b < B; b++)
        if (in.y[b] < 0 || in.y[b] >= srv->t->K)
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "score request %llu: class %d of sequence %d is not in [0, %d)",
                            (unsigned long long)h->id, in.y[b], b, srv->t->K);
    for (size_t p = 0; p < (size_t)B * n * m; p++)
        if (!(in.t[p] > 0.0f && in.t[p] <= 1.0f))
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "score request %llu: time %g of point %zu is not in (0, 1]",
                            (unsigned long long)h->id, in.t[p], p);
    const float *x = in.q;
    if (srv->quantize) {
        DD2_TRY(dd2_vq_nearest(srv->cb, in.q, (size_t)B * n, srv->idx, NULL, st));
        DD2_TRY(dd2_vq_lookup(srv->cb, srv->idx, (size_t)B * n, srv->xq, st));
        x = srv->xq;
    }
    DD2_TRY(dd2_ardiff_teacher_logp(srv->t, srv->tparams, &srv->tw, &srv->samp, x, in.y, B, srv->logp, st));
    DD2_TRY(dd2_score_msg_begin(rep, DD2_SCORE_REP, h->flags & DD2_SCORE_WANT_COV, B, n, C, m, h->id, st));
    const dd2_score_rep_view out = dd2_score_rep_of(rep);
    for (size_t p = 0; p < P; p++) srv->row[p] = (int)(p / (size_t)m);
    dd2_mixture_posterior(&srv->mx, srv->logp, srv->row, in.x, in.t, P, out.mu, out.cov);
    return DD2_OK;
}

static int serve_sample(dd2_score_server *srv, const dd2_score_msg *req, dd2_score_msg *rep, dd2_status *st) {
    const dd2_score_hdr *h = dd2_score_hdr_of(req);
    const dd2_sample_req_view in = dd2_sample_req_of(req);
    for (int b = 0; b < h->B; b++)
        if (in.y[b] < 0 || in.y[b] >= srv->t->K || in.index[b] < 0)
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "sample request %llu: sequence %d has class %d, index %lld",
                            (unsigned long long)h->id, b, in.y[b], (long long)in.index[b]);
    DD2_TRY(dd2_score_msg_begin(rep, DD2_SAMPLE_REP, 0, h->B, h->n, h->C, h->m, h->id, st));
    int32_t *tokens = dd2_sample_rep_tokens(rep);
    /* runs of consecutive indices share one call (its streams are keyed by first_index + b) */
    for (int b0 = 0; b0 < h->B;) {
        int b1 = b0 + 1;
        while (b1 < h->B && in.index[b1] - 1 == in.index[b1 - 1]) b1++; /* indices are ≥ 0: no overflow */
        DD2_TRY(dd2_teacher_sample(srv->t, srv->tparams, in.y + b0, b1 - b0, &srv->samp, h->seed,
                                   (uint64_t)in.index[b0], tokens + (size_t)b0 * h->n, st));
        b0 = b1;
    }
    return DD2_OK;
}

int dd2_score_serve(dd2_score_server *srv, const dd2_score_msg *req, dd2_score_msg *rep, dd2_status *st) {
    const dd2_score_hdr *h = dd2_score_hdr_of(req);
    const double t0 = dd2_now();
    if ((h->kind == DD2_SCORE_REQ || h->kind == DD2_SAMPLE_REQ) && (h->n != srv->t->n || h->C != srv->t->C))
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "request %llu: sequences of %d tokens of dim %d, the teacher has %d of "
                        "dim %d", (unsigned long long)h->id, h->n, h->C, srv->t->n, srv->t->C);
    int rc;
    if (h->kind == DD2_SCORE_REQ) rc = serve_score(srv, req, rep, st);
    else if (h->kind == DD2_SAMPLE_REQ) rc = serve_sample(srv, req, rep, st);
    else rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "score service: message kind %u is not a request", h->kind);
    if (rc == DD2_OK) {
        srv->served++;
        srv->bytes_in += h->bytes;
        srv->bytes_out += dd2_score_hdr_of(rep)->bytes;
    }
    srv->busy_s += dd2_now() - t0;
    return rc;
}
