/* `dd2 bench distill CONFIG [--steps K]`: what the overlap of the teacher's work with the
 * guidance updates hides (docs/bench.md, docs/distributed.md). Runs K distill iterations
 * twice on the run directory's inputs (vq, teacher, ardiff), strictly sequential then with
 * overlap, in the scratch stage directory <run>/bench-distill/ (removed afterwards; the run's
 * own distill/ is not touched), with init ardiff, no periodic FID and no intermediate
 * checkpoints; prints step time, the learners' wait fraction, the workers' idle fraction and
 * the bytes per step on the score stream. Run it under mpirun with the layout to measure, e.g.
 * `mpirun -np 3 dd2 bench distill CONFIG --set dist.teacher_ranks=1` (1 worker + 2 learners). */
#include <math.h>
#include <mpi.h>
#include <stdio.h>

#include "core/log.h"
#include "io/atomic_file.h"
#include "train/bench.h"
#include "train/distill_io.h"

#define SCRATCH "bench-distill"

int dd2_bench_distill(const dd2_stage_ctx *ctx, int steps, dd2_status *st) {
    dd2_config cfg = *ctx->cfg;
    cfg.distill.steps = steps > 0 ? steps : 20;
    cfg.distill.eval_every = 0;
    cfg.distill.gen_warmup = 0;
    cfg.distill.align.after = 0;
    if (cfg.distill.init == DD2_DISTILL_INIT_ODE_PAIRS) cfg.distill.init = DD2_DISTILL_INIT_ARDIFF;
    cfg.checkpoint.every = 0;
    cfg.checkpoint.keep = 1;
    cfg.checkpoint.resume = DD2_RESUME_NEVER;
    cfg.log.every = 1000000;
    cfg.log.metrics = false;
    dd2_stage_ctx c = *ctx;
    c.cfg = &cfg;
    dd2_distill_stats s[2];
    char scratch[1200];
    DD2_TRY(dd2_stage_path(&c, SCRATCH, scratch, sizeof scratch, st));
    for (int overlap = 0; overlap < 2; overlap++) {
        cfg.dist.overlap = overlap;
        dd2_info0("bench distill: %d iterations, overlap %s", cfg.distill.steps, overlap ? "on" : "off");
        DD2_TRY(dd2_distill_run(&c, SCRATCH, &s[overlap], st));
        dd2_status rm_st;
        dd2_status_clear(&rm_st);
        if (ctx->env->rank == 0 && dd2_rm_tree(scratch, &rm_st) != DD2_OK) dd2_warn("bench distill: %s", rm_st.msg);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    if (ctx->env->rank != 0) return DD2_OK;
    const dd2_distill_stats *a = &s[0], *b = &s[1];
    printf("\ndd2 bench distill: %d learner%s, %d teacher-score worker%s (%s), global batch %d x %d draws (guidance: %d; t %s), K = %d, "
           "csd.grad %s, %ld iterations each\n\n",
           a->learners, a->learners == 1 ? "" : "s", a->workers, a->workers == 1 ? "" : "s",
           a->workers ? "last ranks" : "colocated", cfg.distill.batch, cfg.distill.m,
           dd2_distill_guid_draws(&cfg), cfg.distill.t_shared ? "shared per token" : "per draw", cfg.distill.k,
           cfg.distill.csd.grad == DD2_CSD_GRAD_SID ? "sid" : "dmd", a->iterations);
    printf("| overlap | s / iteration | learners waiting for scores | workers idle | score stream per iteration |\n");
    printf("|---|---:|---:|---:|---:|\n");
    for (int k = 0; k < 2; k++) {
        const dd2_distill_stats *x = &s[k];
        char idle[32];
        if (isnan(x->worker_idle)) snprintf(idle, sizeof idle, "-");
        else snprintf(idle, sizeof idle, "%.0f%%", 100.0 * x->worker_idle);
        printf("| %s | %.3f | %.0f%% | %s | %.2f MB |\n", k ? "on" : "off", x->seconds / (double)x->iterations,
               100.0 * x->learner_wait, idle, x->bytes_per_step / 1e6);
    }
    const double seq = a->seconds / (double)a->iterations, ovl = b->seconds / (double)b->iterations;
    const double wait_seq = a->learner_wait * seq, wait_ovl = b->learner_wait * ovl;
    printf("\nspeed-up from overlap: %.2fx; teacher time hidden: %.0f%% (learner wait per iteration %.3fs -> %.3fs)\n",
           seq / ovl, wait_seq > 0 ? 100.0 * (1.0 - wait_ovl / wait_seq) : NAN, wait_seq, wait_ovl);
    return DD2_OK;
}
