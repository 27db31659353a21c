/* The teacher-score service (dist/score_msg.h, dist/score_service.h, dist/score_link.h):
 * - messages: sizes, 8-byte-aligned non-overlapping arrays, zeroing, and dd2_score_msg_check on
 *   every truncation, a wrong magic / version / kind / byte count / shape, an oversized shape
 *   whose byte count would wrap, a kind other than the one wanted, and ERROR messages (the
 *   worker's code and text come back);
 * - the service on a tiny random teacher with CFG and top-k: score replies equal, bitwise, the
 *   teacher's log-probabilities (dd2_ardiff_teacher_logp) followed by dd2_mixture_posterior with
 *   row = p / m, with and without the covariance, with quantized input (nearest codes), across
 *   chunked and growing requests; bad requests fail with a message naming the problem;
 * - sample replies equal dd2_teacher_sample for contiguous indices and, for scattered indices,
 *   each sequence sampled alone;
 * - the local link: post + wait gives dd2_score_serve's reply; wait without post, post twice, a
 *   non-request, a wrong `want` and a failing request (reported by wait, not post).
 * The MPI link and dd2_score_worker_run need two ranks: tests/cli/distill_layouts.sh covers them. */
#include <math.h>
#include <stdint.h>

#include "core/rng.h"
#include "dist/score_link.h"
#include "dist/score_msg.h"
#include "dist/score_service.h"
#include "model/ardiff.h"
#include "model/mixture.h"
#include "model/teacher.h"
#include "model/vq.h"
#include "random_params.h"
#include "test_util.h"

#define HDR 64
#define ALIGN8(x) (((x) + 7u) & ~(size_t)7u)
/* dd2_score_server_init's teacher work capacity (2 x TEACHER_CHUNK with guidance): the direct
 * reference below uses the same chunking so that the comparison can be bitwise. */
#define SERVER_TEACHER_ROWS 16

static dd2_rng g_rng;
static double urand(void) { return 2.0 * dd2_rng_uniform(&g_rng) - 1.0; } /* U(-1, 1) */

static int contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

#define CHECK_FAILS(call, st, want_code, text)                                                     \
    do {                                                                                           \
        dd2_status_clear(st);                                                                      \
        int cf_rc_ = (call);                                                                       \
        CHECK_MSG(cf_rc_ == (want_code), "rc=%d (expected %d): %s", cf_rc_, (int)(want_code), (st)->msg); \
        CHECK_MSG(contains((st)->msg, (text)), "message \"%s\" does not mention \"%s\"", (st)->msg, (text)); \
    } while (0)

/* ---- messages ----------------------------------------------------------------------------- */

/* The array sizes of a message, computed here independently of score_msg.c. */
static int expected_arrays(int kind, uint32_t flags, int B, int n, int C, int m, size_t sz[4]) {
    const size_t b = (size_t)B, seq = b * (size_t)n, pts = seq * (size_t)m;
    switch (kind) {
    case DD2_SCORE_REQ:
        sz[0] = seq * C * sizeof(float), sz[1] = b * sizeof(int32_t), sz[2] = pts * C * sizeof(float),
        sz[3] = pts * sizeof(float);
        return 4;
    case DD2_SCORE_REP:
        sz[0] = pts * C * sizeof(float);
        if (!(flags & DD2_SCORE_WANT_COV)) return 1;
        sz[1] = pts * C * C * sizeof(float);
        return 2;
    case DD2_SAMPLE_REQ:
        sz[0] = b * sizeof(int32_t), sz[1] = b * sizeof(int64_t);
        return 2;
    case DD2_SAMPLE_REP:
        sz[0] = seq * sizeof(int32_t);
        return 1;
    case DD2_SCORE_ERROR:
        sz[0] = (size_t)m;
        return 1;
    default:
        return 0;
    }
}

/* The views of a message as a list of array start pointers. */
static int views_of(const dd2_score_msg *msg, int kind, void *p[4]) {
    switch (kind) {
    case DD2_SCORE_REQ: {
        const dd2_score_req_view v = dd2_score_req_of(msg);
        p[0] = v.q, p[1] = v.y, p[2] = v.x, p[3] = v.t;
        return 4;
    }
    case DD2_SCORE_REP: {
        const dd2_score_rep_view v = dd2_score_rep_of(msg);
        p[0] = v.mu, p[1] = v.cov;
        return v.cov ? 2 : 1;
    }
    case DD2_SAMPLE_REQ: {
        const dd2_sample_req_view v = dd2_sample_req_of(msg);
        p[0] = v.y, p[1] = v.index;
        return 2;
    }
    case DD2_SAMPLE_REP:
        p[0] = dd2_sample_rep_tokens(msg);
        return 1;
    default:
        return 0;
    }
}

static void check_layout(int kind, uint32_t flags, int B, int n, int C, int m) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_score_msg msg = {0};
    /* a dirty, too-small buffer first: begin must grow it and zero what it covers */
    CHECK_OK(dd2_score_msg_reserve(&msg, 80, &st), &st);
    memset(msg.buf, 0xA5, msg.cap);
    CHECK_OK(dd2_score_msg_begin(&msg, kind, flags, B, n, C, m, 77, &st), &st);
    size_t sz[4];
    const int na = expected_arrays(kind, flags, B, n, C, m, sz);
    size_t want_bytes = HDR;
    for (int k = 0; k < na; k++) want_bytes += ALIGN8(sz[k]);
    const size_t bytes = dd2_score_msg_bytes(kind, flags, B, n, C, m);
    CHECK_MSG(bytes == want_bytes, "kind %d: %zu bytes, expected %zu", kind, bytes, want_bytes);
    CHECK(msg.cap >= bytes);
    CHECK(((uintptr_t)msg.buf & 7u) == 0);
    const dd2_score_hdr *h = dd2_score_hdr_of(&msg);
    CHECK(h->magic == DD2_SCORE_MAGIC && h->version == DD2_SCORE_VERSION && h->kind == kind);
    CHECK(h->flags == flags && h->B == B && h->n == n && h->C == C && h->m == m);
    CHECK(h->id == 77 && h->bytes == bytes && h->code == 0 && h->seed == 0 && h->reserved == 0);
    int zero = 1;
    for (size_t i = HDR; i < bytes; i++) zero &= ((const unsigned char *)msg.buf)[i] == 0;
    CHECK_MSG(zero, "kind %d: the arrays are not zeroed", kind);
    void *p[4] = {0};
    const int nv = views_of(&msg, kind, p);
    if (kind != DD2_SCORE_STOP && kind != DD2_SCORE_ERROR) {
        CHECK_MSG(nv == na, "kind %d flags %u: %d views, %d arrays", kind, flags, nv, na);
        size_t end = HDR;
        for (int k = 0; k < nv && k < na; k++) {
            const size_t off = (size_t)((const char *)p[k] - (const char *)msg.buf);
            CHECK_MSG(off % 8 == 0, "kind %d array %d at offset %zu", kind, k, off);
            CHECK_MSG(off >= end, "kind %d array %d at %zu overlaps the previous one (ends at %zu)", kind, k, off,
                      end);
            end = off + sz[k];
            CHECK_MSG(end <= bytes, "kind %d array %d ends at %zu, past the message (%zu bytes)", kind, k, end,
                      bytes);
        }
    }
    if (kind == DD2_SCORE_REP && !(flags & DD2_SCORE_WANT_COV)) CHECK(dd2_score_rep_of(&msg).cov == NULL);
    CHECK_OK(dd2_score_msg_check(&msg, bytes, 0, &st), &st);
    CHECK_OK(dd2_score_msg_check(&msg, bytes, kind, &st), &st);
    dd2_score_msg_free(&msg);
    CHECK(msg.buf == NULL && msg.cap == 0);
}

TEST(msg_layout) {
    /* odd sizes, so that unaligned arrays would show */
    const int shapes[][4] = {{1, 1, 1, 1}, {3, 1, 1, 1}, {2, 4, 3, 3}, {3, 5, 3, 1}, {1, 3, 5, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int B = shapes[s][0], n = shapes[s][1], C = shapes[s][2], m = shapes[s][3];
        check_layout(DD2_SCORE_REQ, 0, B, n, C, m);
        check_layout(DD2_SCORE_REQ, DD2_SCORE_WANT_COV, B, n, C, m);
        check_layout(DD2_SCORE_REP, 0, B, n, C, m);
        check_layout(DD2_SCORE_REP, DD2_SCORE_WANT_COV, B, n, C, m);
        check_layout(DD2_SAMPLE_REQ, 0, B, n, C, m);
        check_layout(DD2_SAMPLE_REP, 0, B, n, C, m);
    }
    check_layout(DD2_SCORE_STOP, 0, 1, 1, 1, 1);
    check_layout(DD2_SCORE_ERROR, 0, 1, 1, 1, 13);
    /* by hand: a request of 3 one-token sequences of dim 1, one draw: 4 arrays of 12 -> 16 bytes */
    CHECK(dd2_score_msg_bytes(DD2_SCORE_REQ, 0, 3, 1, 1, 1) == 64 + 4 * 16);
    CHECK(dd2_score_msg_bytes(DD2_SCORE_STOP, 0, 0, 0, 0, 0) == 64);
    CHECK(dd2_score_msg_bytes(DD2_SCORE_ERROR, 0, 0, 0, 0, 5) == 64 + 8);
    CHECK(sizeof(dd2_score_hdr) == 64);

    dd2_status st;
    dd2_score_msg msg = {0};
    CHECK_FAILS(dd2_score_msg_begin(&msg, 0, 0, 1, 1, 1, 1, 0, &st), &st, DD2_ERR_INPUT, "unknown kind 0");
    CHECK_FAILS(dd2_score_msg_begin(&msg, 7, 0, 1, 1, 1, 1, 0, &st), &st, DD2_ERR_INPUT, "unknown kind 7");
    CHECK_FAILS(dd2_score_msg_begin(&msg, DD2_SCORE_REQ, 0, 1, 0, 1, 1, 0, &st), &st, DD2_ERR_INPUT,
                "bad shape B=1 n=0");
    CHECK_FAILS(dd2_score_msg_begin(&msg, DD2_SAMPLE_REQ, 0, -2, 1, 1, 1, 0, &st), &st, DD2_ERR_INPUT,
                "bad shape B=-2");
    dd2_score_msg_free(&msg);
}

TEST(msg_check_rejects) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_score_msg msg = {0};
    CHECK_OK(dd2_score_msg_begin(&msg, DD2_SCORE_REQ, DD2_SCORE_WANT_COV, 2, 3, 2, 2, 5, &st), &st);
    const size_t bytes = dd2_score_hdr_of(&msg)->bytes;
    CHECK_OK(dd2_score_msg_check(&msg, bytes, DD2_SCORE_REQ, &st), &st);
    dd2_score_hdr *h = dd2_score_hdr_of(&msg);
    const dd2_score_hdr good = *h;

    /* every truncation, and one byte too many */
    int bad_rc = 0, bad_text = 0;
    for (size_t len = 0; len <= bytes + 1; len++) {
        if (len == bytes) continue;
        dd2_status_clear(&st);
        const int rc = dd2_score_msg_check(&msg, len, DD2_SCORE_REQ, &st);
        bad_rc += rc != DD2_ERR_RUNTIME;
        char num[32];
        snprintf(num, sizeof num, "%zu bytes", len);
        const char *what = len < HDR ? "shorter than the header" : "shape needs";
        if (!contains(st.msg, "score message") || !contains(st.msg, num) || !contains(st.msg, what)) {
            if (!bad_text) fprintf(stderr, "  length %zu: \"%s\"\n", len, st.msg);
            bad_text++;
        }
    }
    CHECK_MSG(bad_rc == 0, "%d lengths not rejected with DD2_ERR_RUNTIME", bad_rc);
    CHECK_MSG(bad_text == 0, "%d lengths rejected with an unclear message", bad_text);
    /* no buffer at all */
    dd2_score_msg none = {0};
    CHECK_FAILS(dd2_score_msg_check(&none, 64, 0, &st), &st, DD2_ERR_RUNTIME, "shorter than the header");

    h->magic = 0x44445353u; /* the magic in the other byte order */
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes, DD2_SCORE_REQ, &st), &st, DD2_ERR_RUNTIME, "bad magic 0x44445353");
    *h = good;
    h->version = DD2_SCORE_VERSION + 1;
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes, DD2_SCORE_REQ, &st), &st, DD2_ERR_RUNTIME, "version 2");
    *h = good;
    h->kind = 0;
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes, 0, &st), &st, DD2_ERR_RUNTIME, "unknown kind 0");
    h->kind = DD2_SCORE_ERROR + 1;
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes, DD2_SCORE_REQ, &st), &st, DD2_ERR_RUNTIME, "unknown kind 7");
    *h = good;
    h->bytes = bytes + 8; /* the header disagrees with the length received and the shape */
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes, DD2_SCORE_REQ, &st), &st, DD2_ERR_RUNTIME, "header says");
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes + 8, DD2_SCORE_REQ, &st), &st, DD2_ERR_RUNTIME, "shape needs");
    *h = good;
    h->m = 3; /* the shape needs more than the header and the length say */
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes, DD2_SCORE_REQ, &st), &st, DD2_ERR_RUNTIME, "shape needs");
    *h = good;
    h->B = 0;
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes, DD2_SCORE_REQ, &st), &st, DD2_ERR_RUNTIME, "bad shape B=0");
    *h = good;
    h->C = 5000;
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes, DD2_SCORE_REQ, &st), &st, DD2_ERR_RUNTIME, "bad shape");
    *h = good;
    /* a kind other than the one wanted */
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes, DD2_SCORE_REP, &st), &st, DD2_ERR_RUNTIME,
                "got a score request, expected a score reply");
    CHECK_FAILS(dd2_score_msg_check(&msg, bytes, DD2_SAMPLE_REQ, &st), &st, DD2_ERR_RUNTIME,
                "expected a sample request");
    CHECK_OK(dd2_score_msg_check(&msg, bytes, DD2_SCORE_REQ, &st), &st);

    /* a shape within the per-field limits whose byte count wraps around 2^64: a reply with the
     * covariance of B n m C C = 2^24 2^20 2^12 2^12 2^12 floats "needs" 64 bytes. It must not
     * pass as a 64-byte message (the views would point past the buffer). */
    CHECK_OK(dd2_score_msg_begin(&msg, DD2_SCORE_STOP, 0, 0, 0, 0, 0, 1, &st), &st);
    h = dd2_score_hdr_of(&msg);
    h->kind = DD2_SCORE_REP, h->flags = DD2_SCORE_WANT_COV;
    h->B = 1 << 24, h->n = 1 << 20, h->C = 1 << 12, h->m = 1 << 12;
    const size_t wrapped = dd2_score_msg_bytes(DD2_SCORE_REP, DD2_SCORE_WANT_COV, h->B, h->n, h->C, h->m);
    h->bytes = wrapped;
    if (wrapped <= msg.cap) {
        dd2_status_clear(&st);
        const int rc = dd2_score_msg_check(&msg, wrapped, DD2_SCORE_REP, &st);
        CHECK_MSG(rc == DD2_ERR_RUNTIME, "a reply of %d x %d x %d x %d points (wrapping to %zu bytes) passed the check",
                  h->B, h->n, h->m, h->C, wrapped);
        CHECK_MSG(contains(st.msg, "score message") && contains(st.msg, "too large"), "%s", st.msg);
    }
    dd2_score_msg_free(&msg);
}

TEST(msg_error) {
    dd2_status st, err;
    dd2_status_clear(&st);
    dd2_score_msg req = {0}, msg = {0};
    CHECK_OK(dd2_score_msg_begin(&req, DD2_SCORE_REQ, DD2_SCORE_WANT_COV, 2, 4, 3, 3, 42, &st), &st);
    DD2_FAIL(&err, DD2_ERR_INPUT, "score request 42: class 9 of sequence 1 is not in [0, 3)");
    CHECK_OK(dd2_score_msg_error(&msg, dd2_score_hdr_of(&req), &err, &st), &st);
    const dd2_score_hdr *h = dd2_score_hdr_of(&msg);
    const size_t text = strlen(err.msg) + 1;
    CHECK(h->kind == DD2_SCORE_ERROR && h->id == 42 && h->code == DD2_ERR_INPUT && h->m == (int)text);
    CHECK(h->bytes == HDR + ALIGN8(text));
    CHECK_STREQ((const char *)msg.buf + HDR, err.msg);
    /* the learner side: wanting a reply gives the worker's code and text */
    CHECK_FAILS(dd2_score_msg_check(&msg, h->bytes, DD2_SCORE_REP, &st), &st, DD2_ERR_INPUT,
                "teacher-score worker: score request 42: class 9 of sequence 1 is not in [0, 3)");
    CHECK_FAILS(dd2_score_msg_check(&msg, h->bytes, DD2_SAMPLE_REP, &st), &st, DD2_ERR_INPUT, "class 9");
    /* as a message of its own it is valid */
    CHECK_OK(dd2_score_msg_check(&msg, h->bytes, 0, &st), &st);
    CHECK_OK(dd2_score_msg_check(&msg, h->bytes, DD2_SCORE_ERROR, &st), &st);
    /* truncated: the length check comes first */
    CHECK_FAILS(dd2_score_msg_check(&msg, h->bytes - 8, DD2_SCORE_REP, &st), &st, DD2_ERR_RUNTIME, "shape needs");
    /* an error status without a code still fails */
    dd2_status_clear(&err);
    snprintf(err.msg, sizeof err.msg, "%s", "something");
    CHECK_OK(dd2_score_msg_error(&msg, dd2_score_hdr_of(&req), &err, &st), &st);
    CHECK(dd2_score_hdr_of(&msg)->code == DD2_ERR_RUNTIME);
    CHECK_FAILS(dd2_score_msg_check(&msg, dd2_score_hdr_of(&msg)->bytes, DD2_SCORE_REP, &st), &st, DD2_ERR_RUNTIME,
                "teacher-score worker: something");
    /* a text length of 0 is malformed */
    dd2_score_hdr_of(&msg)->m = 0;
    dd2_score_hdr_of(&msg)->bytes = HDR;
    CHECK_FAILS(dd2_score_msg_check(&msg, HDR, DD2_SCORE_REP, &st), &st, DD2_ERR_RUNTIME, "bad error text length 0");
    dd2_score_msg_free(&msg);
    dd2_score_msg_free(&req);
}

/* ---- the service on a tiny teacher -------------------------------------------------------- */

enum { V = 7, C = 3, N = 4, K = 3 };

typedef struct fixture {
    dd2_vq_codebook cb;
    dd2_teacher t;
    float *tp;
    dd2_sampling s;
} fixture;

/* V = 7 random codes of C = 3, n = 4 tokens on a 2x2 grid, K = 3 classes, d 8, 2 heads, 1 layer;
 * CFG scale 2 and top-k 5 (two codes of every row get p = 0). */
static int fixture_init(fixture *fx, dd2_status *st) {
    memset(fx, 0, sizeof *fx);
    dd2_config cfg;
    DD2_TRY(dd2_config_defaults(&cfg));
    cfg.model.d_model = 8, cfg.model.n_heads = 2, cfg.model.n_layers = 1, cfg.model.mlp_hidden = 16;
    cfg.data.n_classes = K;
    float codes[V * C];
    for (int i = 0; i < V * C; i++) codes[i] = (float)urand();
    DD2_TRY(dd2_vq_codebook_init(&fx->cb, V, C, codes, st));
    DD2_TRY(dd2_teacher_init(&fx->t, &cfg, fx->cb.c, V, C, 2, 2, st));
    if (fx->t.n != N || fx->t.K != K) return DD2_FAIL(st, DD2_ERR_RUNTIME, "fixture: n %d K %d", fx->t.n, fx->t.K);
    fx->tp = malloc(fx->t.tab.numel * sizeof(float));
    if (!fx->tp) return DD2_FAIL(st, DD2_ERR_RUNTIME, "oom");
    for (int i = 0; i < fx->t.tab.n; i++) {
        const dd2_tensor_info *ti = &fx->t.tab.t[i];
        for (size_t j = 0; j < ti->numel; j++) fx->tp[ti->offset + j] = random_param_value(ti, urand());
    }
    fx->s = (dd2_sampling){2.0f, 1.0f, 5, 1.0f};
    return DD2_OK;
}

static void fixture_free(fixture *fx) {
    dd2_teacher_free(&fx->t);
    dd2_vq_codebook_free(&fx->cb);
    free(fx->tp);
}

/* A score request: q random (off the codes), classes cycling, x random, t in (0.05, 1) with the
 * last point at t = 1 exactly. */
static int make_score_req(dd2_score_msg *req, uint32_t flags, int B, int m, dd2_status *st) {
    DD2_TRY(dd2_score_msg_begin(req, DD2_SCORE_REQ, flags, B, N, C, m, 0, st));
    const dd2_score_req_view v = dd2_score_req_of(req);
    for (int i = 0; i < B * N * C; i++) v.q[i] = (float)(1.2 * urand());
    for (int b = 0; b < B; b++) v.y[b] = (b + 1) % K;
    const size_t P = (size_t)B * N * m;
    for (size_t i = 0; i < P * C; i++) v.x[i] = (float)(1.5 * urand());
    for (size_t p = 0; p < P; p++) v.t[p] = (float)(0.525 + 0.475 * urand());
    v.t[P - 1] = 1.0f;
    return DD2_OK;
}

/* The reference: the teacher's log-probabilities (chunked as the server does) of x = q, or of
 * the nearest codes of q when quantize, then the mixture posterior with row = p / m. */
static int reference_score(const fixture *fx, const dd2_score_msg *req, int quantize, int want_cov, float *logp,
                           float *mu, float *cov, dd2_status *st) {
    const dd2_score_hdr *h = dd2_score_hdr_of(req);
    const dd2_score_req_view v = dd2_score_req_of(req);
    const int B = h->B, m = h->m;
    const size_t rows = (size_t)B * N, P = rows * m;
    float *xq = malloc(rows * C * sizeof(float));
    int32_t *idx = malloc(rows * sizeof(int32_t));
    int *row = malloc(P * sizeof(int));
    dd2_teacher_work tw;
    dd2_mixture mx;
    memset(&tw, 0, sizeof tw);
    memset(&mx, 0, sizeof mx);
    int rc = xq && idx && row ? DD2_OK : DD2_FAIL(st, DD2_ERR_RUNTIME, "oom");
    if (rc == DD2_OK) rc = dd2_teacher_work_alloc(&tw, &fx->t, SERVER_TEACHER_ROWS, st);
    if (rc == DD2_OK) rc = dd2_mixture_init(&mx, fx->cb.c, V, C, st);
    const float *x = v.q;
    if (rc == DD2_OK && quantize) {
        rc = dd2_vq_nearest(&fx->cb, v.q, rows, idx, NULL, st);
        if (rc == DD2_OK) rc = dd2_vq_lookup(&fx->cb, idx, rows, xq, st);
        x = xq;
    }
    if (rc == DD2_OK) rc = dd2_ardiff_teacher_logp(&fx->t, fx->tp, &tw, &fx->s, x, v.y, B, logp, st);
    if (rc == DD2_OK) {
        for (size_t p = 0; p < P; p++) row[p] = (int)(p / (size_t)m);
        dd2_mixture_posterior(&mx, logp, row, v.x, v.t, P, mu, want_cov ? cov : NULL);
    }
    dd2_mixture_free(&mx);
    dd2_teacher_work_free(&tw);
    free(xq);
    free(idx);
    free(row);
    return rc;
}

/* Serve req and compare the reply with the reference, bitwise. */
static void check_score(dd2_score_server *srv, const fixture *fx, dd2_score_msg *req, dd2_score_msg *rep,
                        const char *what) {
    dd2_status st;
    dd2_status_clear(&st);
    const dd2_score_hdr *h = dd2_score_hdr_of(req);
    const int want_cov = (h->flags & DD2_SCORE_WANT_COV) != 0;
    const size_t P = (size_t)h->B * h->n * h->m;
    float *logp = malloc((size_t)h->B * N * V * sizeof(float));
    float *mu = malloc(P * C * sizeof(float)), *cov = malloc(P * C * C * sizeof(float));
    CHECK_OK(dd2_score_serve(srv, req, rep, &st), &st);
    CHECK_OK(reference_score(fx, req, srv->quantize, want_cov, logp, mu, cov, &st), &st);
    const dd2_score_hdr *r = dd2_score_hdr_of(rep);
    const size_t bytes = dd2_score_msg_bytes(DD2_SCORE_REP, h->flags & DD2_SCORE_WANT_COV, h->B, h->n, h->C, h->m);
    CHECK_MSG(r->kind == DD2_SCORE_REP && r->bytes == bytes, "%s: kind %u, %llu bytes (expected %zu)", what, r->kind,
              (unsigned long long)r->bytes, bytes);
    CHECK_MSG(r->id == h->id && r->B == h->B && r->n == h->n && r->C == h->C && r->m == h->m &&
                  r->flags == (h->flags & DD2_SCORE_WANT_COV),
              "%s: the reply does not echo the request's header", what);
    CHECK_OK(dd2_score_msg_check(rep, r->bytes, DD2_SCORE_REP, &st), &st);
    const dd2_score_rep_view out = dd2_score_rep_of(rep);
    CHECK_MSG(memcmp(out.mu, mu, P * C * sizeof(float)) == 0, "%s: mu differs from the reference", what);
    if (want_cov) {
        CHECK_MSG(out.cov && memcmp(out.cov, cov, P * C * C * sizeof(float)) == 0,
                  "%s: the covariance differs from the reference", what);
    } else {
        CHECK_MSG(out.cov == NULL, "%s: a covariance that was not asked for", what);
    }
    /* top-k 5 of 7: exactly two codes of every row have p = 0 (no ties with random weights) */
    int dropped = 0, finite = 1;
    for (size_t i = 0; i < (size_t)h->B * N * V; i++) dropped += logp[i] == -INFINITY;
    for (size_t i = 0; i < P * C; i++) finite &= isfinite(out.mu[i]);
    CHECK_MSG(dropped == h->B * N * (V - 5), "%s: %d codes dropped, expected %d", what, dropped, h->B * N * (V - 5));
    CHECK(finite);
    free(logp);
    free(mu);
    free(cov);
}

TEST(serve_score_matches_direct) {
    dd2_status st;
    dd2_status_clear(&st);
    fixture fx;
    CHECK_OK(fixture_init(&fx, &st), &st);
    dd2_score_server srv;
    CHECK_OK(dd2_score_server_init(&srv, &fx.t, fx.tp, &fx.cb, &fx.s, 0, &st), &st);
    dd2_score_msg req = {0}, rep = {0}, rep2 = {0};
    CHECK_OK(make_score_req(&req, DD2_SCORE_WANT_COV, 2, 3, &st), &st);
    dd2_score_hdr_of(&req)->id = 11;
    check_score(&srv, &fx, &req, &rep, "B 2 m 3 with cov");
    CHECK(srv.served == 1);
    CHECK(srv.bytes_in == dd2_score_hdr_of(&req)->bytes && srv.bytes_out == dd2_score_hdr_of(&rep)->bytes);

    /* the covariance is symmetric and positive semi-definite on the diagonal; μ lies within the
     * codes' bounding box (a convex combination) */
    const dd2_score_rep_view o = dd2_score_rep_of(&rep);
    int sym = 1, diag = 1, hull = 1;
    for (int p = 0; p < 2 * N * 3; p++) {
        const float *cv = o.cov + (size_t)p * C * C;
        for (int a = 0; a < C; a++) {
            diag &= cv[a * C + a] >= 0.0f;
            float lo = INFINITY, hi = -INFINITY;
            for (int v = 0; v < V; v++) lo = fminf(lo, fx.cb.c[v * C + a]), hi = fmaxf(hi, fx.cb.c[v * C + a]);
            hull &= o.mu[p * C + a] >= lo - 1e-6f && o.mu[p * C + a] <= hi + 1e-6f;
            for (int b = 0; b < C; b++) sym &= fabsf(cv[a * C + b] - cv[b * C + a]) <= 1e-6f;
        }
    }
    CHECK(sym);
    CHECK(diag);
    CHECK(hull);

    /* without WANT_COV: no covariance, the same μ */
    dd2_score_hdr_of(&req)->flags = 0;
    check_score(&srv, &fx, &req, &rep2, "B 2 m 3 without cov");
    CHECK(memcmp(dd2_score_rep_of(&rep2).mu, dd2_score_rep_of(&rep).mu, (size_t)2 * N * 3 * C * sizeof(float)) == 0);
    CHECK(dd2_score_hdr_of(&rep2)->bytes < dd2_score_hdr_of(&rep)->bytes);

    /* more sequences than one teacher chunk (8 with guidance), then a smaller request again: the
     * scratch grows and the answers stay those of the direct computation */
    dd2_score_msg big = {0};
    CHECK_OK(make_score_req(&big, DD2_SCORE_WANT_COV, 11, 2, &st), &st);
    check_score(&srv, &fx, &big, &rep2, "B 11 m 2 with cov");
    CHECK(srv.cap_seq >= 11 && srv.cap_pts >= (size_t)11 * N * 2);
    dd2_score_hdr_of(&req)->flags = DD2_SCORE_WANT_COV;
    check_score(&srv, &fx, &req, &rep2, "B 2 m 3 after B 11");
    CHECK(memcmp(rep2.buf, rep.buf, dd2_score_hdr_of(&rep)->bytes) == 0);
    /* m = 1: every point its own row */
    CHECK_OK(make_score_req(&big, 0, 3, 1, &st), &st);
    check_score(&srv, &fx, &big, &rep2, "B 3 m 1");
    CHECK(srv.served == 5);
    dd2_score_msg_free(&big);
    dd2_score_msg_free(&rep2);
    dd2_score_msg_free(&rep);
    dd2_score_msg_free(&req);
    dd2_score_server_free(&srv);
    fixture_free(&fx);
}

/* quantize = 1: the teacher reads the nearest codes of q (checked against dd2_vq_nearest +
 * dd2_vq_lookup done here); off the codes that changes the answer, on the codes it does not. */
TEST(serve_score_quantized) {
    dd2_status st;
    dd2_status_clear(&st);
    fixture fx;
    CHECK_OK(fixture_init(&fx, &st), &st);
    dd2_score_server sq, sc;
    CHECK_OK(dd2_score_server_init(&sq, &fx.t, fx.tp, &fx.cb, &fx.s, 1, &st), &st);
    CHECK_OK(dd2_score_server_init(&sc, &fx.t, fx.tp, &fx.cb, &fx.s, 0, &st), &st);
    dd2_score_msg req = {0}, rq = {0}, rc = {0};
    CHECK_OK(make_score_req(&req, DD2_SCORE_WANT_COV, 2, 3, &st), &st);
    check_score(&sq, &fx, &req, &rq, "quantized");
    CHECK_OK(dd2_score_serve(&sc, &req, &rc, &st), &st);
    const size_t mu_bytes = (size_t)2 * N * 3 * C * sizeof(float);
    CHECK_MSG(memcmp(dd2_score_rep_of(&rq).mu, dd2_score_rep_of(&rc).mu, mu_bytes) != 0,
              "quantizing q off the codes changed nothing");
    /* q exactly on (not nearest-ordered) codes: both servers agree bitwise */
    const dd2_score_req_view v = dd2_score_req_of(&req);
    for (int r = 0; r < 2 * N; r++) memcpy(v.q + r * C, fx.cb.c + ((r * 5 + 2) % V) * C, C * sizeof(float));
    CHECK_OK(dd2_score_serve(&sq, &req, &rq, &st), &st);
    CHECK_OK(dd2_score_serve(&sc, &req, &rc, &st), &st);
    CHECK(memcmp(rq.buf, rc.buf, dd2_score_hdr_of(&rc)->bytes) == 0);
    /* a non-finite q cannot be quantized */
    v.q[5] = NAN;
    CHECK_FAILS(dd2_score_serve(&sq, &req, &rq, &st), &st, DD2_ERR_RUNTIME, "finite");
    dd2_score_msg_free(&req);
    dd2_score_msg_free(&rq);
    dd2_score_msg_free(&rc);
    dd2_score_server_free(&sq);
    dd2_score_server_free(&sc);
    fixture_free(&fx);
}

TEST(serve_score_rejects) {
    dd2_status st;
    dd2_status_clear(&st);
    fixture fx;
    CHECK_OK(fixture_init(&fx, &st), &st);
    dd2_score_server srv;
    CHECK_OK(dd2_score_server_init(&srv, &fx.t, fx.tp, &fx.cb, &fx.s, 0, &st), &st);
    dd2_score_msg req = {0}, rep = {0};
    CHECK_OK(make_score_req(&req, DD2_SCORE_WANT_COV, 2, 3, &st), &st);
    dd2_score_hdr_of(&req)->id = 9;
    const dd2_score_req_view v = dd2_score_req_of(&req);
    v.y[1] = K;
    CHECK_FAILS(dd2_score_serve(&srv, &req, &rep, &st), &st, DD2_ERR_RUNTIME,
                "score request 9: class 3 of sequence 1 is not in [0, 3)");
    v.y[1] = -1;
    CHECK_FAILS(dd2_score_serve(&srv, &req, &rep, &st), &st, DD2_ERR_RUNTIME, "class -1 of sequence 1");
    v.y[1] = 0;
    const float keep = v.t[4];
    const float bad_t[] = {0.0f, -0.25f, 1.0000001f, 2.0f, NAN, INFINITY};
    for (size_t k = 0; k < sizeof bad_t / sizeof bad_t[0]; k++) {
        v.t[4] = bad_t[k];
        CHECK_FAILS(dd2_score_serve(&srv, &req, &rep, &st), &st, DD2_ERR_RUNTIME, "of point 4 is not in (0, 1]");
    }
    v.t[4] = keep;
    CHECK(srv.served == 0);
    CHECK_OK(dd2_score_serve(&srv, &req, &rep, &st), &st);
    CHECK(srv.served == 1);
    /* sequences that do not fit the teacher */
    dd2_score_msg wrong = {0};
    CHECK_OK(dd2_score_msg_begin(&wrong, DD2_SCORE_REQ, 0, 1, N + 1, C, 1, 3, &st), &st);
    dd2_score_req_of(&wrong).t[0] = 0.5f;
    CHECK_FAILS(dd2_score_serve(&srv, &wrong, &rep, &st), &st, DD2_ERR_RUNTIME,
                "request 3: sequences of 5 tokens of dim 3, the teacher has 4 of dim 3");
    CHECK_OK(dd2_score_msg_begin(&wrong, DD2_SCORE_REQ, 0, 1, N, C - 1, 1, 4, &st), &st);
    CHECK_FAILS(dd2_score_serve(&srv, &wrong, &rep, &st), &st, DD2_ERR_RUNTIME,
                "sequences of 4 tokens of dim 2, the teacher has 4 of dim 3");
    CHECK_OK(dd2_score_msg_begin(&wrong, DD2_SAMPLE_REQ, 0, 1, N, C + 1, 1, 5, &st), &st);
    CHECK_FAILS(dd2_score_serve(&srv, &wrong, &rep, &st), &st, DD2_ERR_RUNTIME, "of dim 4, the teacher has 4 of dim 3");
    /* not a request */
    CHECK_OK(dd2_score_msg_begin(&wrong, DD2_SCORE_REP, 0, 1, N, C, 1, 6, &st), &st);
    CHECK_FAILS(dd2_score_serve(&srv, &wrong, &rep, &st), &st, DD2_ERR_RUNTIME, "kind 2 is not a request");
    CHECK_OK(dd2_score_msg_begin(&wrong, DD2_SCORE_STOP, 0, 0, 0, 0, 0, 7, &st), &st);
    CHECK_FAILS(dd2_score_serve(&srv, &wrong, &rep, &st), &st, DD2_ERR_RUNTIME, "kind 5 is not a request");
    CHECK(srv.served == 1);
    /* a codebook that does not match the teacher */
    dd2_score_server bad;
    dd2_vq_codebook small;
    CHECK_OK(dd2_vq_codebook_init(&small, V - 1, C, NULL, &st), &st);
    CHECK_FAILS(dd2_score_server_init(&bad, &fx.t, fx.tp, &small, &fx.s, 0, &st), &st, DD2_ERR_INPUT,
                "does not match the teacher");
    dd2_score_server_free(&bad);
    dd2_vq_codebook_free(&small);
    dd2_score_msg_free(&wrong);
    dd2_score_msg_free(&req);
    dd2_score_msg_free(&rep);
    dd2_score_server_free(&srv);
    fixture_free(&fx);
}

/* ---- sample requests ---------------------------------------------------------------------- */

static int make_sample_req(dd2_score_msg *req, int B, const int64_t *index, uint64_t seed, dd2_status *st) {
    DD2_TRY(dd2_score_msg_begin(req, DD2_SAMPLE_REQ, 0, B, N, C, 1, 21, st));
    dd2_score_hdr_of(req)->seed = seed;
    const dd2_sample_req_view v = dd2_sample_req_of(req);
    for (int b = 0; b < B; b++) v.y[b] = (2 * b + 1) % K, v.index[b] = index[b];
    return DD2_OK;
}

TEST(serve_sample) {
    dd2_status st;
    dd2_status_clear(&st);
    fixture fx;
    CHECK_OK(fixture_init(&fx, &st), &st);
    dd2_score_server srv;
    CHECK_OK(dd2_score_server_init(&srv, &fx.t, fx.tp, &fx.cb, &fx.s, 0, &st), &st);
    enum { B = 6 };
    const uint64_t seed = 1234;
    dd2_score_msg req = {0}, rep = {0};
    int y[B];
    int32_t want[B * N];

    /* contiguous indices 40..45: one dd2_teacher_sample call */
    const int64_t contiguous[B] = {40, 41, 42, 43, 44, 45};
    CHECK_OK(make_sample_req(&req, B, contiguous, seed, &st), &st);
    for (int b = 0; b < B; b++) y[b] = dd2_sample_req_of(&req).y[b];
    CHECK_OK(dd2_score_serve(&srv, &req, &rep, &st), &st);
    const dd2_score_hdr *r = dd2_score_hdr_of(&rep);
    CHECK(r->kind == DD2_SAMPLE_REP && r->id == 21 && r->B == B && r->n == N && r->C == C && r->m == 1);
    CHECK(r->bytes == dd2_score_msg_bytes(DD2_SAMPLE_REP, 0, B, N, C, 1));
    CHECK_OK(dd2_score_msg_check(&rep, r->bytes, DD2_SAMPLE_REP, &st), &st);
    CHECK_OK(dd2_teacher_sample(&fx.t, fx.tp, y, B, &fx.s, seed, 40, want, &st), &st);
    CHECK(memcmp(dd2_sample_rep_tokens(&rep), want, sizeof want) == 0);
    int in_range = 1;
    for (int i = 0; i < B * N; i++) in_range &= want[i] >= 0 && want[i] < V;
    CHECK(in_range);

    /* scattered indices (runs 7 | 3 | 9 10 | 0 | 8): each sequence as if sampled alone */
    const int64_t scattered[B] = {7, 3, 9, 10, 0, 8};
    CHECK_OK(make_sample_req(&req, B, scattered, seed, &st), &st);
    CHECK_OK(dd2_score_serve(&srv, &req, &rep, &st), &st);
    const int32_t *tok = dd2_sample_rep_tokens(&rep);
    for (int b = 0; b < B; b++) {
        int32_t one[N];
        CHECK_OK(dd2_teacher_sample(&fx.t, fx.tp, &y[b], 1, &fx.s, seed, (uint64_t)scattered[b], one, &st), &st);
        CHECK_MSG(memcmp(tok + b * N, one, sizeof one) == 0, "sequence %d (index %lld) differs from its solo sample",
                  b, (long long)scattered[b]);
    }
    /* another seed, other tokens (for some of the 24) */
    CHECK_OK(make_sample_req(&req, B, contiguous, seed + 1, &st), &st);
    CHECK_OK(dd2_score_serve(&srv, &req, &rep, &st), &st);
    CHECK(memcmp(dd2_sample_rep_tokens(&rep), want, sizeof want) != 0);

    /* bad classes and indices */
    CHECK_OK(make_sample_req(&req, B, contiguous, seed, &st), &st);
    dd2_sample_req_of(&req).y[2] = K;
    CHECK_FAILS(dd2_score_serve(&srv, &req, &rep, &st), &st, DD2_ERR_RUNTIME,
                "sample request 21: sequence 2 has class 3, index 42");
    dd2_sample_req_of(&req).y[2] = 0;
    dd2_sample_req_of(&req).index[4] = -1;
    CHECK_FAILS(dd2_score_serve(&srv, &req, &rep, &st), &st, DD2_ERR_RUNTIME, "sequence 4 has class 0, index -1");
    dd2_score_msg_free(&req);
    dd2_score_msg_free(&rep);
    dd2_score_server_free(&srv);
    fixture_free(&fx);
}

/* ---- the local link ----------------------------------------------------------------------- */

TEST(local_link) {
    dd2_status st;
    dd2_status_clear(&st);
    fixture fx;
    CHECK_OK(fixture_init(&fx, &st), &st);
    dd2_score_server srv, ref;
    CHECK_OK(dd2_score_server_init(&srv, &fx.t, fx.tp, &fx.cb, &fx.s, 0, &st), &st);
    CHECK_OK(dd2_score_server_init(&ref, &fx.t, fx.tp, &fx.cb, &fx.s, 0, &st), &st);
    dd2_score_link l;
    dd2_score_link_local(&l, &srv);
    dd2_score_msg req = {0}, want = {0};
    const dd2_score_msg *rep = NULL;
    CHECK_OK(make_score_req(&req, DD2_SCORE_WANT_COV, 2, 3, &st), &st);

    /* wait without post */
    CHECK_FAILS(dd2_score_link_wait(&l, DD2_SCORE_REP, &rep, &st), &st, DD2_ERR_RUNTIME, "no request in flight");
    CHECK(rep == NULL);

    /* post + wait = dd2_score_serve of the same request (ids set by post: 1, 2, ...) */
    CHECK_OK(dd2_score_link_post(&l, &req, &st), &st);
    CHECK(dd2_score_hdr_of(&req)->id == 1);
    dd2_score_link_progress(&l); /* nothing to do locally */
    CHECK_OK(dd2_score_link_wait(&l, DD2_SCORE_REP, &rep, &st), &st);
    CHECK_OK(dd2_score_serve(&ref, &req, &want, &st), &st);
    CHECK(rep != NULL && dd2_score_hdr_of(rep)->id == 1);
    CHECK(rep && dd2_score_hdr_of(rep)->bytes == dd2_score_hdr_of(&want)->bytes &&
          memcmp(rep->buf, want.buf, dd2_score_hdr_of(&want)->bytes) == 0);
    CHECK(l.requests == 1 && l.bytes_sent == dd2_score_hdr_of(&req)->bytes &&
          l.bytes_recv == dd2_score_hdr_of(&want)->bytes);
    /* waiting twice for one request */
    CHECK_FAILS(dd2_score_link_wait(&l, DD2_SCORE_REP, &rep, &st), &st, DD2_ERR_RUNTIME, "no request in flight");

    /* post twice: the second fails and leaves the first in flight (and the request untouched) */
    CHECK_OK(dd2_score_link_post(&l, &req, &st), &st);
    CHECK(dd2_score_hdr_of(&req)->id == 2);
    CHECK_FAILS(dd2_score_link_post(&l, &req, &st), &st, DD2_ERR_RUNTIME, "already in flight");
    CHECK(dd2_score_hdr_of(&req)->id == 2 && l.requests == 2);
    rep = NULL;
    CHECK_OK(dd2_score_link_wait(&l, DD2_SCORE_REP, &rep, &st), &st);
    CHECK(rep && dd2_score_hdr_of(rep)->id == 2);
    dd2_score_hdr_of(&want)->id = 2;
    CHECK(rep && memcmp(rep->buf, want.buf, dd2_score_hdr_of(&want)->bytes) == 0);

    /* a failing request: post succeeds, wait returns the service's error; the link stays usable */
    dd2_score_req_of(&req).y[0] = 7;
    CHECK_OK(dd2_score_link_post(&l, &req, &st), &st);
    CHECK_FAILS(dd2_score_link_wait(&l, DD2_SCORE_REP, &rep, &st), &st, DD2_ERR_RUNTIME,
                "score request 3: class 7 of sequence 0 is not in [0, 3)");
    dd2_score_req_of(&req).y[0] = 1;
    dd2_score_req_of(&req).t[0] = 0.0f;
    CHECK_OK(dd2_score_link_post(&l, &req, &st), &st);
    CHECK_FAILS(dd2_score_link_wait(&l, DD2_SCORE_REP, &rep, &st), &st, DD2_ERR_RUNTIME, "time 0 of point 0");
    dd2_score_req_of(&req).t[0] = 0.5f;
    CHECK_OK(dd2_score_link_post(&l, &req, &st), &st);
    CHECK_OK(dd2_score_link_wait(&l, DD2_SCORE_REP, &rep, &st), &st);
    CHECK(rep && dd2_score_hdr_of(rep)->id == 5);

    /* the wrong kind of reply wanted */
    CHECK_OK(dd2_score_link_post(&l, &req, &st), &st);
    CHECK_FAILS(dd2_score_link_wait(&l, DD2_SAMPLE_REP, &rep, &st), &st, DD2_ERR_RUNTIME,
                "got a score reply, expected a sample reply");
    /* not a request: refused by post, nothing in flight */
    dd2_score_msg notreq = {0};
    CHECK_OK(dd2_score_msg_begin(&notreq, DD2_SCORE_REP, 0, 1, N, C, 1, 0, &st), &st);
    CHECK_FAILS(dd2_score_link_post(&l, &notreq, &st), &st, DD2_ERR_RUNTIME, "kind 2 is not a request");
    CHECK_FAILS(dd2_score_link_wait(&l, DD2_SCORE_REP, &rep, &st), &st, DD2_ERR_RUNTIME, "no request in flight");

    /* a sample request through the link */
    const int64_t idx[3] = {5, 6, 2};
    CHECK_OK(make_sample_req(&req, 3, idx, 99, &st), &st);
    CHECK_OK(dd2_score_link_post(&l, &req, &st), &st);
    CHECK_OK(dd2_score_link_wait(&l, DD2_SAMPLE_REP, &rep, &st), &st);
    CHECK_OK(dd2_score_serve(&ref, &req, &want, &st), &st);
    CHECK(rep && dd2_score_hdr_of(rep)->id == 7 &&
          memcmp(rep->buf, want.buf, dd2_score_hdr_of(&want)->bytes) == 0);
    CHECK(l.requests == 7);

    /* close with a request in flight (local: nothing to wait for), then everything is freed */
    CHECK_OK(dd2_score_link_post(&l, &req, &st), &st);
    CHECK_OK(dd2_score_link_close(&l, &st), &st);
    CHECK(l.rep.buf == NULL && !l.in_flight);

    dd2_score_msg_free(&notreq);
    dd2_score_msg_free(&req);
    dd2_score_msg_free(&want);
    dd2_score_server_free(&srv);
    dd2_score_server_free(&ref);
    fixture_free(&fx);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    dd2_rng_init(&g_rng, 3, DD2_RNG_TEST, 0x5c, 0);
    RUN(msg_layout);
    RUN(msg_check_rejects);
    RUN(msg_error);
    RUN(serve_score_matches_direct);
    RUN(serve_score_quantized);
    RUN(serve_score_rejects);
    RUN(serve_sample);
    RUN(local_link);
    return test_summary();
}
