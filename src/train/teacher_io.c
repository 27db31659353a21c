#include "train/teacher_io.h"

#include <stdlib.h>

#include "io/h5io.h"
#include "model/params_io.h"

int dd2_teacher_save(const char *path, const dd2_teacher *t, const float *params, double test_nll_bits,
                     dd2_status *st) {
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_create_atomic(path, &h, st));
    const dd2_backbone_dims *d = &t->bb.dims;
    const struct {
        const char *name;
        int64_t v;
    } ints[] = {{"V", t->V}, {"C", t->C},   {"n", t->n},   {"gh", d->gh}, {"gw", d->gw},
                {"d", d->d}, {"L", d->L},   {"H", d->H},   {"F", d->F},   {"K", d->K},
                {"input_map", d->input_map}, {"rope", d->rope}};
    int rc = dd2_h5_attr_set_str(h, NULL, "format", "dd2-teacher", st);
    for (size_t i = 0; rc == DD2_OK && i < sizeof ints / sizeof ints[0]; i++)
        rc = dd2_h5_attr_set_i64(h, NULL, ints[i].name, ints[i].v, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_f64(h, NULL, "test_nll_bits", test_nll_bits, st);
    if (rc == DD2_OK) rc = dd2_params_write_h5(h, "params", &t->tab, params, st);
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

int dd2_teacher_load(const dd2_stage_ctx *ctx, const dd2_token_data *td, dd2_teacher *t, float **params,
                     dd2_status *st) {
    char path[1200];
    DD2_TRY(dd2_stage_path(ctx, "teacher/teacher.h5", path, sizeof path, st));
    if (!dd2_file_exists(path))
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s not found: run `dd2 teacher CONFIG` first", path);
    DD2_TRY(dd2_teacher_init(t, ctx->cfg, td->cb.c, td->cb.codes, td->cb.dim, td->gh, td->gw, st));
    *params = DD2_CALLOC(t->tab.numel, sizeof(float), st);
    if (!*params) return DD2_ERR_RUNTIME;
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_open_read(path, &h, st));
    int rc = dd2_params_read_h5(h, "params", &t->tab, *params, st);
    if (rc != DD2_OK)
        dd2_status_prefix(st, "the teacher file does not match the config's model section (model.*, vq.codes)");
    dd2_status st2;
    dd2_status_clear(&st2);
    dd2_h5_close(h, &st2);
    return rc;
}
