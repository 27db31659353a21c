/* `dd2 teacher-sample CONFIG`: teacher_sample.n sequences from the teacher with its sampling
 * settings (sample.*), balanced classes, deterministic by run.seed: the training data of stage 1
 * (method.md §4). Written by rank 0 to <run>/teacher_samples/samples.h5 (tokens [N,n] int32,
 * labels [N] int32); sampling runs on all ranks. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "io/h5io.h"
#include "train/generate.h"
#include "train/stages.h"
#include "train/teacher_io.h"
#include "train/token_data.h"


static int write_file(const char *path, const int32_t *tokens, const int32_t *labels, int64_t N, int n, double seconds,
                      dd2_status *st) {
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_create_atomic(path, &h, st));
    int64_t dt[2] = {N, n}, dl[1] = {N};
    int rc = dd2_h5_write_i32(h, "tokens", 2, dt, tokens, st);
    if (rc == DD2_OK) rc = dd2_h5_write_i32(h, "labels", 1, dl, labels, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_str(h, NULL, "model", "teacher", st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_f64(h, NULL, "seconds", seconds, st);
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

int dd2_stage_teacher_sample(const dd2_stage_ctx *ctx, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    const int64_t N = cfg->teacher_sample.n;
    dd2_token_data td;
    dd2_teacher t;
    memset(&t, 0, sizeof t);
    float *params = NULL;
    int32_t *labels = NULL, *tokens = NULL;
    double seconds = 0.0;
    char path[1200];
    int rc = dd2_token_data_load(ctx, &td, st);
    if (rc == DD2_OK) rc = dd2_teacher_load(ctx, &td, &t, &params, st);
    if (rc == DD2_OK) rc = dd2_stage_mkdir(ctx, "teacher_samples", st);
    if (rc == DD2_OK) rc = dd2_stage_path(ctx, "teacher_samples/samples.h5", path, sizeof path, st);
    if (rc == DD2_OK) {
        labels = DD2_MALLOC((size_t)N * sizeof *labels, st);
        tokens = DD2_MALLOC((size_t)N * td.n * sizeof *tokens, st);
        if (!labels || !tokens) rc = DD2_ERR_RUNTIME;
    }
    if (rc == DD2_OK) {
        dd2_balanced_labels(labels, N, cfg->data.n_classes);
        rc = dd2_generate_teacher(ctx, &t, params, labels, N, DD2_SAMPLE_INDEX_TEACHER_SAMPLE, tokens, &seconds, st);
    }
    if (rc == DD2_OK && ctx->env->rank == 0) {
        rc = write_file(path, tokens, labels, N, td.n, seconds, st);
        if (rc == DD2_OK)
            dd2_info("teacher-sample: %lld sequences in %.1fs (%.0f/s) -> %s", (long long)N, seconds, (double)N / seconds,
                     path);
    }
    st->collective = 1;
    dd2_teacher_free(&t);
    dd2_token_data_free(&td);
    free(params);
    free(labels);
    free(tokens);
    return rc;
}
