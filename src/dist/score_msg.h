/* The teacher-score service's messages (method.md §3, docs/distributed.md).
 *
 * A message is one flat buffer: a fixed 64-byte header, then its arrays in the order listed
 * below, each at an 8-byte-aligned offset from the start. The same bytes travel in process (a
 * pointer), over MPI (MPI_BYTE) or NCCL, so the algorithm code never sees the transport. Byte
 * order is the host's (every rank of a job runs on one architecture; the magic detects a
 * mismatch).
 *
 * kind          arrays                                                     header fields used
 * SCORE_REQ     q [B,n,C] f32   the (detached) generated sequences          B n C m flags id
 *               y [B] i32       classes
 *               x [B,n,m,C] f32 noisy points x_t, m per position
 *               t [B,n,m] f32   their times, in (0,1]
 * SCORE_REP     mu [B,n,m,C] f32            teacher x0-prediction μ_Φ(x_t, t | q_<i)
 *               cov [B,n,m,C,C] f32         posterior covariance (only with DD2_SCORE_WANT_COV)
 * SAMPLE_REQ    y [B] i32, index [B] i64    classes and sample indices (the RNG streams of
 *                                           dd2_teacher_sample: (seed, purpose, index, position))
 * SAMPLE_REP    tokens [B,n] i32
 * STOP          (none)                      a learner is done with its worker
 * ERROR         text [bytes − 64] char      a failed request: `code` is the status code, the
 *                                           text the worker's message (NUL-terminated)
 *
 * A reply echoes the request's id, B, n, C, m and flags. Contracts: messages are built with
 * dd2_score_msg_begin (which sizes and zeroes the buffer and writes the header) and read through
 * the views below after dd2_score_msg_check (which validates the header against the length).
 */
#ifndef DD2_DIST_SCORE_MSG_H
#define DD2_DIST_SCORE_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define DD2_SCORE_MAGIC 0x53324444u /* "DD2S" */
#define DD2_SCORE_VERSION 1

enum dd2_score_kind {
    DD2_SCORE_REQ = 1,
    DD2_SCORE_REP,
    DD2_SAMPLE_REQ,
    DD2_SAMPLE_REP,
    DD2_SCORE_STOP,
    DD2_SCORE_ERROR
};

#define DD2_SCORE_WANT_COV 1u /* SCORE_REQ / SCORE_REP: the posterior covariance too */

typedef struct dd2_score_hdr {
    uint32_t magic;   /* DD2_SCORE_MAGIC */
    uint16_t version; /* DD2_SCORE_VERSION */
    uint16_t kind;    /* enum dd2_score_kind */
    uint32_t flags;
    int32_t B, n, C, m;
    int32_t code;     /* ERROR: the status code */
    uint64_t id;      /* request number (the learner's), echoed by the reply */
    uint64_t seed;    /* SAMPLE_REQ: the sampling seed */
    uint64_t bytes;   /* the whole message, header included */
    uint64_t reserved;
} dd2_score_hdr;

/* A growable message buffer (8-byte aligned). */
typedef struct dd2_score_msg {
    void *buf;
    size_t cap;
} dd2_score_msg;

void dd2_score_msg_free(dd2_score_msg *m);

static inline dd2_score_hdr *dd2_score_hdr_of(const dd2_score_msg *m) { return (dd2_score_hdr *)m->buf; }

/* Bytes of a message of this kind and shape (ERROR: pass the text length in m). */
size_t dd2_score_msg_bytes(int kind, uint32_t flags, int B, int n, int C, int m);

/* Make `msg` an empty message of this kind and shape: grows the buffer, zeroes the arrays,
 * writes the header. Fails (DD2_ERR_INPUT) on non-positive sizes. */
int dd2_score_msg_begin(dd2_score_msg *msg, int kind, uint32_t flags, int B, int n, int C, int m, uint64_t id,
                        dd2_status *st);

/* Make sure the buffer holds `bytes` (for a receive of a known size). */
int dd2_score_msg_reserve(dd2_score_msg *msg, size_t bytes, dd2_status *st);

/* Validate `len` received bytes in msg: magic, version, kind (`want` kinds; 0 = any), sizes,
 * bytes == len. DD2_ERR_RUNTIME with what is wrong ("score message: ..."). An ERROR message
 * with want != 0 and want != ERROR returns its code with the worker's text. */
int dd2_score_msg_check(const dd2_score_msg *msg, size_t len, int want, dd2_status *st);

/* Views into a message (pointers into msg->buf; valid until the buffer grows). */
typedef struct dd2_score_req_view {
    float *q;   /* [B,n,C] */
    int32_t *y; /* [B] */
    float *x;   /* [B,n,m,C] */
    float *t;   /* [B,n,m] */
} dd2_score_req_view;
typedef struct dd2_score_rep_view {
    float *mu;  /* [B,n,m,C] */
    float *cov; /* [B,n,m,C,C] or NULL */
} dd2_score_rep_view;
typedef struct dd2_sample_req_view {
    int32_t *y;     /* [B] */
    int64_t *index; /* [B] */
} dd2_sample_req_view;

dd2_score_req_view dd2_score_req_of(const dd2_score_msg *msg);
dd2_score_rep_view dd2_score_rep_of(const dd2_score_msg *msg);
dd2_sample_req_view dd2_sample_req_of(const dd2_score_msg *msg);
int32_t *dd2_sample_rep_tokens(const dd2_score_msg *msg); /* [B,n] */

/* ERROR message with the status's code and text (id and shape of the request it answers). */
int dd2_score_msg_error(dd2_score_msg *msg, const dd2_score_hdr *req, const dd2_status *err, dd2_status *st);

#endif
