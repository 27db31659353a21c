/* The stages' side of the learner / teacher-score-worker split (dist/roles.h, dist/score_link.h,
 * docs/distributed.md): the whole life of a worker in a stage, and a learner's link.
 *
 * Agreement protocol shared by both roles of a stage: one dd2_agree over the world after setup
 * (a failure anywhere stops everyone before any request is sent), one dd2_stage_end_agree at the
 * end (after the learners have closed their links, so every worker has left its serving loop).
 * An error only some learners saw in between (not st->collective) is returned at once, without
 * the end agreement: the others are blocked in a learners' collective, so the driver must abort
 * the job (the same for a worker that failed itself). */
#ifndef DD2_TRAIN_SCORE_ROLES_H
#define DD2_TRAIN_SCORE_ROLES_H

#include "core/status.h"
#include "dist/roles.h"
#include "dist/score_link.h"
#include "dist/score_service.h"
#include "train/stage.h"

/* A worker's stage: load the tokenizer and the teacher, agree, serve roles->served until each
 * learner said stop, log what it did, agree. ws (may be NULL) gets the serving statistics. */
int dd2_score_worker_stage(const dd2_stage_ctx *ctx, const dd2_roles *roles, const char *stage,
                           dd2_worker_stats *ws, dd2_status *st);

/* After a learner's training: close its link (MPI: STOP to the worker, sent only when `serving`,
 * i.e. the setup agreement passed so the worker is in its serving loop). A failure to close
 * becomes the result when rc was DD2_OK. Returns the result. */
int dd2_score_learner_done(dd2_score_link *link, int serving, int rc, dd2_status *st);

/* A learner's link: colocated (roles->worker < 0) starts srv on the teacher t (loaded by the
 * caller, borrowed) and a local link; split: an MPI link to roles->worker (t unused). */
int dd2_score_learner_link(const dd2_config *cfg, const dd2_roles *roles, const dd2_teacher *t, const float *tparams,
                           const dd2_vq_codebook *cb, dd2_score_server *srv, dd2_score_link *link, dd2_status *st);

/* The end of a split stage on every rank (collective over the world): agree on the status and on
 * a stop signal — a learner that stopped on a signal marks every rank stopped (dd2_mark_stopped),
 * workers included, so the pipeline ends everywhere. Sets st->collective. */
int dd2_stage_end_agree(int rc, const char *stage, dd2_status *st);

/* Split the world by dist.teacher_ranks and print the layout; on a bad layout every rank returns
 * the same DD2_ERR_INPUT (collective). */
int dd2_stage_roles(const dd2_stage_ctx *ctx, const char *stage, dd2_roles *roles, dd2_status *st);

#endif
