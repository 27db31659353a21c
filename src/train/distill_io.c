/* The generator file <run>/distill/generator.h5 and its loaders (train/distill_io.h). */
#include "train/distill_io.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "io/ckpt.h"
#include "io/h5io.h"
#include "model/params_io.h"

int dd2_generator_arch(dd2_ardiff *G, const dd2_config *cfg, const dd2_token_data *td, dd2_status *st) {
    return dd2_ardiff_init_grown(G, cfg, &td->cb, td->gh, td->gw, cfg->distill.generator.extra_layers,
                                 cfg->distill.generator.extra_head_blocks, st);
}

int dd2_guidance_arch(dd2_ardiff *psi, const dd2_config *cfg, const dd2_token_data *td, dd2_status *st) {
    return dd2_ardiff_init_grown(psi, cfg, &td->cb, td->gh, td->gw, cfg->distill.guidance.extra_layers,
                                 cfg->distill.guidance.extra_head_blocks, st);
}

int dd2_generator_save(const char *path, const dd2_ardiff *G, const float *params, int64_t steps, int init, int grad,
                       double last_fid, dd2_status *st) {
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_create_atomic(path, &h, st));
    const dd2_backbone_dims *d = &G->bb.dims;
    const struct {
        const char *name;
        int64_t v;
    } ints[] = {{"V", G->V},   {"C", G->C},   {"n", G->n},   {"gh", d->gh},
                {"gw", d->gw}, {"d", d->d},   {"L", d->L},   {"H", d->H},
                {"F", d->F},   {"K", d->K},   {"input_map", d->input_map}, {"rope", d->rope},
                {"W", G->head.dims.W}, {"depth", G->head.dims.depth}, {"steps", steps}};
    int rc = dd2_h5_attr_set_str(h, NULL, "format", DD2_GENERATOR_FORMAT, st);
    for (size_t i = 0; rc == DD2_OK && i < sizeof ints / sizeof ints[0]; i++)
        rc = dd2_h5_attr_set_i64(h, NULL, ints[i].name, ints[i].v, st);
    if (rc == DD2_OK)
        rc = dd2_h5_attr_set_str(h, NULL, "init", init == DD2_DISTILL_INIT_TEACHER ? "teacher"
                                                  : init == DD2_DISTILL_INIT_ODE_PAIRS ? "ode-pairs" : "ardiff", st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_str(h, NULL, "grad", grad == DD2_CSD_GRAD_SID ? "sid" : "dmd", st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_f64(h, NULL, "last_fid", last_fid, st);
    if (rc == DD2_OK) rc = dd2_params_write_h5(h, "params", &G->tab, params, st);
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

int dd2_generator_load(const dd2_stage_ctx *ctx, const dd2_token_data *td, dd2_ardiff *G, float **params,
                       dd2_status *st) {
    char path[1200];
    *params = NULL;
    memset(G, 0, sizeof *G);
    DD2_TRY(dd2_stage_path(ctx, "distill/generator.h5", path, sizeof path, st));
    if (!dd2_file_exists(path))
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s not found: run `dd2 distill CONFIG` first", path);
    DD2_TRY(dd2_generator_arch(G, ctx->cfg, td, st));
    *params = DD2_CALLOC(G->tab.numel, sizeof(float), st);
    if (!*params) return DD2_ERR_RUNTIME;
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_open_read(path, &h, st));
    char *format = NULL;
    int rc = dd2_h5_attr_get_str(h, NULL, "format", &format, st);
    if (rc == DD2_OK && strcmp(format, DD2_GENERATOR_FORMAT) != 0)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: format '%s', expected '%s'", path, format, DD2_GENERATOR_FORMAT);
    free(format);
    if (rc == DD2_OK) {
        rc = dd2_params_read_h5(h, "params", &G->tab, *params, st);
        if (rc != DD2_OK)
            dd2_status_prefix(st, "the generator file does not match the config (model.*, head.*, distill.generator.*, vq.codes)");
    }
    dd2_status st2;
    dd2_status_clear(&st2);
    dd2_h5_close(h, &st2);
    return rc;
}

int dd2_generator_load_checkpoint(const dd2_stage_ctx *ctx, const dd2_token_data *td, dd2_ardiff *G, float **params,
                                  int64_t *step, dd2_status *st) {
    char dir[1100];
    *params = NULL;
    memset(G, 0, sizeof *G);
    DD2_TRY(dd2_stage_path(ctx, "distill", dir, sizeof dir, st));
    DD2_TRY(dd2_generator_arch(G, ctx->cfg, td, st));
    *params = DD2_CALLOC(G->tab.numel, sizeof(float), st);
    if (!*params) return DD2_ERR_RUNTIME;
    dd2_ckpt_net net = {"gen", &G->tab, NULL, NULL, NULL, *params};
    dd2_ckpt_spec spec = {&net, 1, NULL, 0, NULL, NULL};
    dd2_ckpt_result res = {0};
    int rc = dd2_ckpt_load(MPI_COMM_WORLD, dir, &spec, &res, st);
    if (rc == DD2_OK && !res.found)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: no distillation checkpoint (run `dd2 distill CONFIG`)", dir);
    if (rc == DD2_OK) {
        *step = res.step;
        dd2_info0("generator: EMA weights of %s", res.dir);
    }
    st->collective = 1;
    dd2_ckpt_result_free(&res);
    return rc;
}
