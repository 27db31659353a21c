#include "train/ardiff_io.h"

#include <stdlib.h>
#include <string.h>

#include "train/generate.h"
#include "io/h5io.h"
#include "model/params_io.h"

int dd2_ardiff_save(const char *path, const dd2_ardiff *a, const float *params, int loss, int64_t steps,
                    double final_loss, dd2_status *st) {
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_create_atomic(path, &h, st));
    const dd2_backbone_dims *d = &a->bb.dims;
    const struct {
        const char *name;
        int64_t v;
    } ints[] = {{"V", a->V},         {"C", a->C},          {"n", a->n},
                {"gh", d->gh},       {"gw", d->gw},        {"d", d->d},
                {"L", d->L},         {"H", d->H},          {"F", d->F},
                {"K", d->K},         {"input_map", d->input_map}, {"rope", d->rope},
                {"W", a->head.dims.W}, {"depth", a->head.dims.depth}, {"steps", steps}};
    int rc = dd2_h5_attr_set_str(h, NULL, "format", "dd2-ardiff", st);
    for (size_t i = 0; rc == DD2_OK && i < sizeof ints / sizeof ints[0]; i++)
        rc = dd2_h5_attr_set_i64(h, NULL, ints[i].name, ints[i].v, st);
    if (rc == DD2_OK)
        rc = dd2_h5_attr_set_str(h, NULL, "loss", loss == DD2_ARDIFF_LOSS_DIFFUSION ? "diffusion" : "gts", st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_f64(h, NULL, "final_loss", final_loss, st);
    if (rc == DD2_OK) rc = dd2_params_write_h5(h, "params", &a->tab, params, st);
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

int dd2_ardiff_load(const dd2_stage_ctx *ctx, const dd2_token_data *td, dd2_ardiff *a, float **params,
                    dd2_status *st) {
    char path[1200];
    *params = NULL;
    memset(a, 0, sizeof *a);
    DD2_TRY(dd2_stage_path(ctx, "ardiff/ardiff.h5", path, sizeof path, st));
    if (!dd2_file_exists(path))
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s not found: run `dd2 ardiff CONFIG` first", path);
    DD2_TRY(dd2_ardiff_init(a, ctx->cfg, &td->cb, td->gh, td->gw, st));
    *params = DD2_CALLOC(a->tab.numel, sizeof(float), st);
    if (!*params) return DD2_ERR_RUNTIME;
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_open_read(path, &h, st));
    int rc = dd2_params_read_h5(h, "params", &a->tab, *params, st);
    if (rc != DD2_OK)
        dd2_status_prefix(st, "the AR-diffusion file does not match the config (model.*, head.*, vq.codes)");
    dd2_status st2;
    dd2_status_clear(&st2);
    dd2_h5_close(h, &st2);
    return rc;
}

dd2_ardiff_sampler dd2_ardiff_sampler_from_config(const dd2_ardiff *a, const float *params, const dd2_config *cfg) {
    return (dd2_ardiff_sampler){a, params, cfg->ardiff.euler_steps, (float)cfg->ardiff.t_min, cfg->sample.snap,
                                (uint64_t)cfg->run.seed};
}

int dd2_ardiff_sample_batch(void *model, const int *y, int B, uint64_t first_index, int32_t *tokens, dd2_status *st) {
    const dd2_ardiff_sampler *m = model;
    return dd2_ardiff_sample(m->a, m->params, y, B, m->euler_steps, m->t_min, m->snap, m->seed, first_index, tokens,
                             NULL, NULL, st);
}

int dd2_generate_ardiff(const dd2_stage_ctx *ctx, const dd2_ardiff *a, const float *params, const int32_t *labels,
                        int64_t N, uint64_t seed_offset, int32_t *tokens, double *seconds, dd2_status *st) {
    dd2_ardiff_sampler m = dd2_ardiff_sampler_from_config(a, params, ctx->cfg);
    return dd2_generate(ctx, dd2_ardiff_sample_batch, &m, a->n, labels, N, seed_offset, tokens, seconds, st);
}
