/* The teacher-score service (method.md §3, docs/distributed.md): the frozen teacher answers
 * score and sample requests (dist/score_msg.h). Pure compute: no MPI, no files; the transport
 * (dist/score_link.h) moves the messages.
 *
 * SCORE_REQ → SCORE_REP: for each sequence b the teacher's p at every position i of q_b (one
 * teacher-forced pass with the sampling settings: CFG scale, temperature, top-k, top-p; with
 * `quantize` the teacher reads the nearest codes of q), then for each noisy point (b,i,j) the
 * closed-form posterior of the mixture Σ_v p_v N((1−t) c_v, t² I) at x_t: μ, and the covariance
 * when DD2_SCORE_WANT_COV is set (dd2_mixture_posterior). Point (b,i,j) reads row b·n + i.
 * SAMPLE_REQ → SAMPLE_REP: teacher token sequences for (class, sample index) with the header's
 * seed: the same tokens as dd2_teacher_sample(seed, first_index = index).
 *
 * The server owns its scratch (grown to the largest request seen); the teacher, its parameters
 * and the codebook are borrowed and must outlive it. One request at a time (not thread-safe).
 */
#ifndef DD2_DIST_SCORE_SERVICE_H
#define DD2_DIST_SCORE_SERVICE_H

#include <stdint.h>

#include "core/status.h"
#include "dist/score_msg.h"
#include "model/mixture.h"
#include "model/sampling.h"
#include "model/teacher.h"
#include "model/vq.h"

typedef struct dd2_score_server {
    const dd2_teacher *t;
    const float *tparams;
    const dd2_vq_codebook *cb;
    int quantize;         /* the teacher reads the nearest codes of q (teacher.input: quantized) */
    dd2_sampling samp;
    dd2_mixture mx;
    dd2_teacher_work tw;
    float *logp, *xq;     /* [cap_seq·n, V], [cap_seq·n, C] */
    int32_t *idx;         /* [cap_seq·n] */
    int *row;             /* [cap_pts] */
    int cap_seq;
    size_t cap_pts;
    /* counters: requests served, seconds computing, bytes in and out */
    long served;
    double busy_s;
    uint64_t bytes_in, bytes_out;
} dd2_score_server;

int dd2_score_server_init(dd2_score_server *srv, const dd2_teacher *t, const float *tparams,
                          const dd2_vq_codebook *cb, const dd2_sampling *s, int quantize, dd2_status *st);
void dd2_score_server_free(dd2_score_server *srv);

/* Answer one request (SCORE_REQ or SAMPLE_REQ, already checked with dd2_score_msg_check) into
 * rep. A request the server cannot answer (wrong n or C, unknown kind) is DD2_ERR_RUNTIME. */
int dd2_score_serve(dd2_score_server *srv, const dd2_score_msg *req, dd2_score_msg *rep, dd2_status *st);

#endif
