/* `dd2 sample CONFIG [--model teacher|ardiff|generator] [--steps k] [--out FILE.png]`: sample.n images (balanced classes, one
 * grid row per class), written as tokens (<run>/samples/<model>.h5) and a PNG grid
 * (<run>/samples/<model>.png, or --out). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "io/h5io.h"
#include "io/png_io.h"
#include "train/ardiff_io.h"
#include "train/distill_io.h"
#include "train/generate.h"
#include "train/generator_sampler.h"
#include "train/stages.h"
#include "train/teacher_io.h"
#include "train/token_data.h"

static int write_samples(const dd2_stage_ctx *ctx, const dd2_token_data *td, const char *model, const int32_t *labels,
                         const int32_t *tokens, int64_t N, double seconds, dd2_status *st) {
    char rel[96], h5_path[1200], png_path[1200];
    snprintf(rel, sizeof rel, "samples/%s.h5", model);
    DD2_TRY(dd2_stage_path(ctx, rel, h5_path, sizeof h5_path, st));
    snprintf(rel, sizeof rel, "samples/%s.png", model);
    if (ctx->out)
        snprintf(png_path, sizeof png_path, "%s", ctx->out);
    else
        DD2_TRY(dd2_stage_path(ctx, rel, png_path, sizeof png_path, st));
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_create_atomic(h5_path, &h, st));
    int64_t dt[2] = {N, td->n}, dl[1] = {N};
    int rc = dd2_h5_write_i32(h, "tokens", 2, dt, tokens, st);
    if (rc == DD2_OK) rc = dd2_h5_write_i32(h, "labels", 1, dl, labels, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_str(h, NULL, "model", model, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_f64(h, NULL, "seconds", seconds, st);
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    DD2_TRY(dd2_h5_close(h, st));
    const dd2_vq_geom *g = &td->geom;
    float *img = DD2_MALLOC((size_t)N * g->image_size * g->image_size * g->channels * sizeof(float), st);
    if (!img) return DD2_ERR_RUNTIME;
    rc = dd2_vq_decode_f32(&td->cb, g, tokens, (size_t)N, img, st);
    const int K = ctx->cfg->data.n_classes;
    dd2_grid grid = {K, (int)((N + K - 1) / K), 1, 255, 2, 0};
    if (rc == DD2_OK)
        rc = dd2_png_write_grid_f32(png_path, img, (int)N, g->image_size, g->image_size, g->channels, &grid, st);
    free(img);
    if (rc == DD2_OK) dd2_info("sample: wrote %s and %s", h5_path, png_path);
    return rc;
}

int dd2_stage_sample(const dd2_stage_ctx *ctx, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    const char *model = ctx->model ? ctx->model : (cfg->sample.model == DD2_SAMPLE_TEACHER ? "teacher"
                                                   : cfg->sample.model == DD2_SAMPLE_ARDIFF ? "ardiff"
                                                                                            : "generator");
    const int use_ardiff = strcmp(model, "ardiff") == 0, use_gen = strcmp(model, "generator") == 0;
    if (strcmp(model, "teacher") != 0 && !use_ardiff && !use_gen) {
        DD2_FAIL(st, DD2_ERR_INPUT, "sample: --model %s: expected teacher, ardiff or generator", model);
        st->collective = 1;
        return st->code;
    }
    const int k = ctx->steps > 0 ? ctx->steps : (cfg->sample.steps > 0 ? cfg->sample.steps : 1);
    dd2_token_data td;
    dd2_teacher t;
    memset(&t, 0, sizeof t);
    dd2_ardiff a;
    memset(&a, 0, sizeof a);
    dd2_generator_sampler gs;
    memset(&gs, 0, sizeof gs);
    dd2_teacher_sampler ts;
    dd2_ardiff_sampler as;
    float *params = NULL, *tparams = NULL;
    int32_t *labels = NULL, *tokens = NULL;
    const int64_t N = cfg->sample.n;
    double seconds = 0.0;
    dd2_sample_batch_fn fn = NULL;
    void *sampler = NULL;
    char name[64];
    if (use_gen)
        snprintf(name, sizeof name, "generator-%d", k);
    else
        snprintf(name, sizeof name, "%s", model);
    int rc = dd2_token_data_load(ctx, &td, st);
    if (rc == DD2_OK && use_ardiff) {
        rc = dd2_ardiff_load(ctx, &td, &a, &params, st);
        as = dd2_ardiff_sampler_from_config(&a, params, cfg);
        fn = dd2_ardiff_sample_batch, sampler = &as;
    } else if (rc == DD2_OK && use_gen) {
        rc = dd2_generator_load(ctx, &td, &a, &params, st);
        if (rc == DD2_OK && k > 1) rc = dd2_teacher_load(ctx, &td, &t, &tparams, st);
        if (rc == DD2_OK)
            rc = dd2_generator_sampler_init(&gs, &a, params, k > 1 ? &t : NULL, tparams, cfg, k, cfg->sample.batch, st);
        fn = dd2_generator_sample_batch, sampler = &gs;
    } else if (rc == DD2_OK) {
        rc = dd2_teacher_load(ctx, &td, &t, &params, st);
        ts = (dd2_teacher_sampler){&t, params, dd2_sampling_from_config(cfg), (uint64_t)cfg->run.seed};
        fn = dd2_teacher_sample_batch, sampler = &ts;
    }
    if (rc == DD2_OK) rc = dd2_stage_mkdir(ctx, "samples", st);
    if (rc == DD2_OK) {
        labels = DD2_MALLOC((size_t)N * sizeof *labels, st);
        tokens = DD2_MALLOC((size_t)N * td.n * sizeof *tokens, st);
        if (!labels || !tokens) rc = DD2_ERR_RUNTIME;
    }
    if (rc == DD2_OK) {
        dd2_balanced_labels(labels, N, cfg->data.n_classes);
        rc = dd2_generate(ctx, fn, sampler, td.n, labels, N, DD2_SAMPLE_INDEX_SAMPLE, tokens, &seconds, st);
    }
    if (rc == DD2_OK) {
        dd2_info0("sample: %lld %s images in %.2fs (%.1f images/s, %d rank%s)", (long long)N, name, seconds,
                  (double)N / seconds, ctx->env->size, ctx->env->size == 1 ? "" : "s");
        if (ctx->env->rank == 0) rc = write_samples(ctx, &td, name, labels, tokens, N, seconds, st);
    }
    st->collective = 1; /* input errors are found by every rank alike; rank 0's write errors end the run */
    dd2_generator_sampler_free(&gs);
    dd2_teacher_free(&t);
    dd2_ardiff_free(&a);
    dd2_token_data_free(&td);
    free(params);
    free(tparams);
    free(labels);
    free(tokens);
    return rc;
}
