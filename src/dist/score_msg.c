/* Teacher-score service messages: layout, sizes, checks (dist/score_msg.h). */
#include "dist/score_msg.h"

#include <stdlib.h>
#include <string.h>

#define HDR_BYTES 64
#define ALIGN8(x) (((x) + 7u) & ~(size_t)7u)

_Static_assert(sizeof(dd2_score_hdr) == HDR_BYTES, "the score header is 64 bytes");

/* Array sizes in bytes of a message, in order; returns the count (at most 4). */
static int arrays(int kind, uint32_t flags, int B, int n, int C, int m, size_t sz[4]) {
    const size_t b = (size_t)B, seq = b * n, pts = seq * m;
    switch (kind) {
    case DD2_SCORE_REQ:
        sz[0] = seq * C * 4, sz[1] = b * 4, sz[2] = pts * C * 4, sz[3] = pts * 4;
        return 4;
    case DD2_SCORE_REP:
        sz[0] = pts * C * 4;
        if (!(flags & DD2_SCORE_WANT_COV)) return 1;
        sz[1] = pts * C * C * 4;
        return 2;
    case DD2_SAMPLE_REQ:
        sz[0] = b * 4, sz[1] = b * 8;
        return 2;
    case DD2_SAMPLE_REP:
        sz[0] = seq * 4;
        return 1;
    case DD2_SCORE_ERROR:
        sz[0] = (size_t)m; /* the text */
        return 1;
    default:
        return 0;
    }
}

/* Offset of array k (k may be the count: the end). */
static size_t offset_of(int kind, uint32_t flags, int B, int n, int C, int m, int k) {
    size_t sz[4], off = HDR_BYTES;
    const int na = arrays(kind, flags, B, n, C, m, sz);
    for (int i = 0; i < k && i < na; i++) off += ALIGN8(sz[i]);
    return off;
}

size_t dd2_score_msg_bytes(int kind, uint32_t flags, int B, int n, int C, int m) {
    return offset_of(kind, flags, B, n, C, m, 4);
}

void dd2_score_msg_free(dd2_score_msg *m) {
    free(m->buf);
    m->buf = NULL, m->cap = 0;
}

int dd2_score_msg_reserve(dd2_score_msg *msg, size_t bytes, dd2_status *st) {
    if (bytes < HDR_BYTES) bytes = HDR_BYTES;
    if (msg->cap >= bytes) return DD2_OK;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score message: out of memory (%zu bytes)", bytes);
    free(msg->buf);
    msg->buf = p, msg->cap = bytes;
    return DD2_OK;
}

static int valid_kind(int kind) { return kind >= DD2_SCORE_REQ && kind <= DD2_SCORE_ERROR; }

int dd2_score_msg_begin(dd2_score_msg *msg, int kind, uint32_t flags, int B, int n, int C, int m, uint64_t id,
                        dd2_status *st) {
    if (!valid_kind(kind)) return DD2_FAIL(st, DD2_ERR_INPUT, "score message: unknown kind %d", kind);
    if (kind != DD2_SCORE_STOP && kind != DD2_SCORE_ERROR && (B < 1 || n < 1 || C < 1 || m < 1))
        return DD2_FAIL(st, DD2_ERR_INPUT, "score message: bad shape B=%d n=%d C=%d m=%d", B, n, C, m);
    const size_t bytes = dd2_score_msg_bytes(kind, flags, B, n, C, m);
    DD2_TRY(dd2_score_msg_reserve(msg, bytes, st));
    memset(msg->buf, 0, bytes);
    *dd2_score_hdr_of(msg) = (dd2_score_hdr){DD2_SCORE_MAGIC, DD2_SCORE_VERSION, (uint16_t)kind, flags, B, n, C, m,
                                              0, id, 0, bytes, 0};
    return DD2_OK;
}

static const char *kind_name(int kind) {
    static const char *const names[] = {"?", "score request", "score reply", "sample request", "sample reply",
                                        "stop", "error"};
    return valid_kind(kind) ? names[kind] : "?";
}

int dd2_score_msg_check(const dd2_score_msg *msg, size_t len, int want, dd2_status *st) {
    if (len < HDR_BYTES || !msg->buf)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score message: %zu bytes, shorter than the header", len);
    const dd2_score_hdr *h = dd2_score_hdr_of(msg);
    if (h->magic != DD2_SCORE_MAGIC)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score message: bad magic 0x%08x (not a dd2 message, or another byte "
                        "order)", h->magic);
    if (h->version != DD2_SCORE_VERSION)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score message: version %u, this build speaks %d (mixed dd2 builds in "
                        "one job?)", h->version, DD2_SCORE_VERSION);
    if (!valid_kind(h->kind)) return DD2_FAIL(st, DD2_ERR_RUNTIME, "score message: unknown kind %u", h->kind);
    const int body = h->kind != DD2_SCORE_STOP && h->kind != DD2_SCORE_ERROR;
    if (body && (h->B < 1 || h->n < 1 || h->C < 1 || h->m < 1 || h->B > (1 << 24) || h->n > (1 << 20) ||
                 h->C > 4096 || h->m > 4096))
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score message: bad shape B=%d n=%d C=%d m=%d", h->B, h->n, h->C, h->m);
    /* within those limits the byte count could still wrap around (B·n·m·C² covariance floats) */
    if (body && (double)h->B * h->n * h->m * (h->C + 1.0) * (h->C + 1.0) > 0x1p50)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score message: shape B=%d n=%d C=%d m=%d is too large", h->B, h->n,
                        h->C, h->m);
    if (h->kind == DD2_SCORE_ERROR && (h->m < 1 || h->m > 1 << 20))
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score message: bad error text length %d", h->m);
    const size_t expect = dd2_score_msg_bytes(h->kind, h->flags, h->B, h->n, h->C, h->m);
    if (h->bytes != expect || len != expect)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score message: %s of %zu bytes, header says %llu, shape needs %zu",
                        kind_name(h->kind), len, (unsigned long long)h->bytes, expect);
    if (h->kind == DD2_SCORE_ERROR && want && want != DD2_SCORE_ERROR) {
        const char *text = (const char *)msg->buf + HDR_BYTES;
        return DD2_FAIL(st, h->code ? h->code : DD2_ERR_RUNTIME, "teacher-score worker: %.*s", h->m - 1, text);
    }
    if (want && h->kind != want)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "score message: got a %s, expected a %s", kind_name(h->kind),
                        kind_name(want));
    return DD2_OK;
}

static void *array_at(const dd2_score_msg *msg, int k) {
    const dd2_score_hdr *h = dd2_score_hdr_of(msg);
    return (char *)msg->buf + offset_of(h->kind, h->flags, h->B, h->n, h->C, h->m, k);
}

dd2_score_req_view dd2_score_req_of(const dd2_score_msg *msg) {
    return (dd2_score_req_view){array_at(msg, 0), array_at(msg, 1), array_at(msg, 2), array_at(msg, 3)};
}

dd2_score_rep_view dd2_score_rep_of(const dd2_score_msg *msg) {
    const int cov = (dd2_score_hdr_of(msg)->flags & DD2_SCORE_WANT_COV) != 0;
    return (dd2_score_rep_view){array_at(msg, 0), cov ? array_at(msg, 1) : NULL};
}

dd2_sample_req_view dd2_sample_req_of(const dd2_score_msg *msg) {
    return (dd2_sample_req_view){array_at(msg, 0), array_at(msg, 1)};
}

int32_t *dd2_sample_rep_tokens(const dd2_score_msg *msg) { return array_at(msg, 0); }

int dd2_score_msg_error(dd2_score_msg *msg, const dd2_score_hdr *req, const dd2_status *err, dd2_status *st) {
    const size_t len = strlen(err->msg) + 1;
    DD2_TRY(dd2_score_msg_begin(msg, DD2_SCORE_ERROR, 0, req->B, req->n, req->C, (int)len, req->id, st));
    dd2_score_hdr *h = dd2_score_hdr_of(msg);
    h->code = err->code ? err->code : DD2_ERR_RUNTIME;
    memcpy((char *)msg->buf + HDR_BYTES, err->msg, len);
    return DD2_OK;
}
