/* `dd2 pipeline CONFIG`: every stage in order, skipping the ones whose final output exists.
 * Stages of the DD2 method proper (teacher-sample, ardiff, distill) join this list as they land. */
#include <string.h>

#include "core/log.h"
#include "core/signals.h"
#include "train/ardiff_io.h"
#include "train/distill_io.h"
#include "train/fid_stage.h"
#include "train/stages.h"

typedef struct pipeline_stage {
    const char *name;
    int (*run)(const dd2_stage_ctx *ctx, dd2_status *st);
    const char *marker; /* relative to the run directory: the stage's last-written output */
} pipeline_stage;

static const pipeline_stage stages[] = {
    {"vq", dd2_stage_vq, "vq/tokens.h5"},
    {"fid-stats", dd2_stage_fid_stats, "fid/test_stats.h5"},
    {"teacher", dd2_stage_teacher, "teacher/teacher.h5"},
    {"sample", dd2_stage_sample, "samples/teacher.png"},
    {"teacher-sample", dd2_stage_teacher_sample, "teacher_samples/samples.h5"},
    {"ardiff", dd2_stage_ardiff, "ardiff/ardiff.h5"},
    {"distill", dd2_stage_distill, "distill/generator.h5"},
    {"eval", dd2_stage_eval, "eval/results.json"},
};

int dd2_stage_pipeline(const dd2_stage_ctx *ctx, dd2_status *st) {
    dd2_stage_ctx c = *ctx;
    c.model = "teacher";
    c.out = NULL;
    const int n = (int)(sizeof stages / sizeof stages[0]);
    double t_all = dd2_now();
    for (int i = 0; i < n; i++) {
        char marker[1200];
        DD2_TRY(dd2_stage_path(ctx, stages[i].marker, marker, sizeof marker, st));
        if (dd2_file_exists(marker)) { /* every rank sees the same file system state here */
            dd2_info0("pipeline: [%d/%d] %s: done (%s exists), skipped", i + 1, n, stages[i].name, marker);
            continue;
        }
        dd2_info0("pipeline: [%d/%d] %s", i + 1, n, stages[i].name);
        double t0 = dd2_now();
        DD2_TRY_CTX(stages[i].run(&c, st), st, "pipeline stage %s", stages[i].name);
        if (dd2_stopped()) {
            dd2_info0("pipeline: stopped during %s on a signal; run the same command again to continue",
                      stages[i].name);
            return DD2_OK;
        }
        dd2_info0("pipeline: [%d/%d] %s finished in %.1fs", i + 1, n, stages[i].name, dd2_now() - t0);
    }
    dd2_info0("pipeline: all stages done in %.1fs; results in %s/eval/table.md, samples in %s/samples/", 
              dd2_now() - t_all, ctx->run_dir, ctx->run_dir);
    return DD2_OK;
}
