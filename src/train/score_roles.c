/* Learners and teacher-score workers in a stage (train/score_roles.h). */
#include "train/score_roles.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/signals.h"
#include "train/generate.h"
#include "train/teacher_io.h"
#include "train/token_data.h"
#include "train/train_loop.h"

int dd2_stage_roles(const dd2_stage_ctx *ctx, const char *stage, dd2_roles *roles, dd2_status *st) {
    int rc = dd2_roles_init(roles, ctx->cfg->dist.teacher_ranks, stage, st);
    if (rc != DD2_OK) { /* the same on every rank: the layout comes from the config and the world size */
        st->collective = 1;
        dd2_roles_free(roles);
        return rc;
    }
    dd2_roles_print(roles, ctx->env, stage);
    return DD2_OK;
}

int dd2_stage_end_agree(int rc, const char *stage, dd2_status *st) {
    int v[2] = {rc, dd2_stopped()};
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (v[0] != DD2_OK && rc == DD2_OK) rc = DD2_FAIL(st, v[0], "%s: another rank failed", stage);
    if (v[1] && !dd2_stopped()) dd2_mark_stopped();
    st->collective = 1;
    return rc;
}

int dd2_score_learner_done(dd2_score_link *link, int serving, int rc, dd2_status *st) {
    if (link->kind != DD2_LINK_MPI) return rc;
    if (!serving) link->comm = MPI_COMM_NULL; /* nobody to tell */
    dd2_status st2;
    dd2_status_clear(&st2);
    if (dd2_score_link_close(link, &st2) != DD2_OK && rc == DD2_OK) {
        *st = st2;
        rc = st2.code;
    }
    return rc;
}

int dd2_score_learner_link(const dd2_config *cfg, const dd2_roles *roles, const dd2_teacher *t, const float *tparams,
                           const dd2_vq_codebook *cb, dd2_score_server *srv, dd2_score_link *link, dd2_status *st) {
    if (roles->worker >= 0) {
        dd2_score_link_mpi(link, MPI_COMM_WORLD, roles->worker);
        return DD2_OK;
    }
    const dd2_sampling samp = dd2_sampling_from_config(cfg);
    DD2_TRY(dd2_score_server_init(srv, t, tparams, cb, &samp, cfg->teacher.input == DD2_TEACHER_INPUT_QUANTIZED, st));
    dd2_score_link_local(link, srv);
    return DD2_OK;
}

int dd2_score_worker_stage(const dd2_stage_ctx *ctx, const dd2_roles *roles, const char *stage,
                           dd2_worker_stats *ws, dd2_status *st) {
    dd2_token_data td;
    dd2_teacher t;
    float *tparams = NULL;
    dd2_score_server srv;
    dd2_worker_stats local;
    if (!ws) ws = &local;
    memset(ws, 0, sizeof *ws);
    memset(&td, 0, sizeof td);
    memset(&t, 0, sizeof t);
    memset(&srv, 0, sizeof srv);
    int rc = dd2_token_data_load(ctx, &td, st);
    if (rc == DD2_OK) rc = dd2_teacher_load(ctx, &td, &t, &tparams, st);
    if (rc == DD2_OK) {
        const dd2_sampling samp = dd2_sampling_from_config(ctx->cfg);
        rc = dd2_score_server_init(&srv, &t, tparams, &td.cb, &samp,
                                   ctx->cfg->teacher.input == DD2_TEACHER_INPUT_QUANTIZED, st);
    }
    rc = dd2_agree(rc, stage, st); /* the learners' setup agrees at the same point */
    int internal = 0;
    if (rc == DD2_OK) {
        rc = dd2_score_worker_run(&srv, MPI_COMM_WORLD, roles->served, roles->n_served, ws, st);
        internal = ws->internal;
        dd2_info("%s: teacher-score worker: %ld requests from %d learner%s in %.1fs: busy %.1fs (%.0f%%), idle "
                 "%.1fs; %.1f MB in, %.1f MB out",
                 stage, ws->served, roles->n_served, roles->n_served == 1 ? "" : "s", ws->total_s, ws->busy_s,
                 ws->total_s > 0 ? 100.0 * ws->busy_s / ws->total_s : 0.0, ws->idle_s, (double)ws->bytes_in / 1e6,
                 (double)ws->bytes_out / 1e6);
    }
    if (!internal) rc = dd2_stage_end_agree(rc, stage, st); /* the learners' end */
    else st->collective = 0;                                  /* learners wait on us: abort */
    dd2_score_server_free(&srv);
    dd2_teacher_free(&t);
    free(tparams);
    dd2_token_data_free(&td);
    return rc;
}
