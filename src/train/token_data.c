#include "train/token_data.h"

#include <stdlib.h>
#include <string.h>

#include "io/h5io.h"

static int read_split(dd2_h5 *h, const char *tok_name, const char *lab_name, int n, int V, int K,
                      dd2_token_split *s, dd2_status *st) {
    dd2_h5_shape shape;
    DD2_TRY(dd2_h5_get_shape(h, tok_name, &shape, st));
    if (shape.rank != 2 || shape.dims[1] != n)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: dataset '%s': expected [N,%d] tokens", dd2_h5_path(h), tok_name, n);
    s->N = shape.dims[0];
    s->tokens = DD2_MALLOC((size_t)s->N * (size_t)n * sizeof *s->tokens, st);
    s->labels = DD2_MALLOC((size_t)s->N * sizeof *s->labels, st);
    if (!s->tokens || !s->labels) return DD2_ERR_RUNTIME;
    int64_t dt[2] = {s->N, n}, dl[1] = {s->N};
    DD2_TRY(dd2_h5_read_i32(h, tok_name, 2, dt, s->tokens, st));
    DD2_TRY(dd2_h5_read_i32(h, lab_name, 1, dl, s->labels, st));
    for (int64_t i = 0; i < s->N * n; i++)
        if (s->tokens[i] < 0 || s->tokens[i] >= V)
            return DD2_FAIL(st, DD2_ERR_INPUT, "%s: dataset '%s': token %d at %lld outside [0,%d)", dd2_h5_path(h),
                            tok_name, s->tokens[i], (long long)i, V);
    for (int64_t i = 0; i < s->N; i++)
        if (s->labels[i] < 0 || s->labels[i] >= K)
            return DD2_FAIL(st, DD2_ERR_INPUT, "%s: dataset '%s': label %d outside [0,%d)", dd2_h5_path(h), lab_name,
                            s->labels[i], K);
    return DD2_OK;
}

int dd2_token_data_load(const dd2_stage_ctx *ctx, dd2_token_data *td, dd2_status *st) {
    memset(td, 0, sizeof *td);
    const dd2_config *cfg = ctx->cfg;
    char path[1200];
    DD2_TRY(dd2_stage_path(ctx, "vq/tokens.h5", path, sizeof path, st));
    if (!dd2_file_exists(path))
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s not found: run `dd2 vq CONFIG` (or `dd2 pipeline CONFIG`) first", path);
    DD2_TRY(dd2_vq_geom_init(&td->geom, cfg->data.image_size, cfg->data.channels, cfg->vq.patch, st));
    td->n = td->geom.n_tokens;
    td->gh = td->geom.gh;
    td->gw = td->geom.gw;
    char cb_path[1200];
    DD2_TRY(dd2_stage_path(ctx, "vq/codebook.h5", cb_path, sizeof cb_path, st));
    DD2_TRY(dd2_vq_codebook_read(cb_path, cfg->vq.codes, td->geom.dim, &td->cb, st));
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_open_read(path, &h, st));
    int rc = read_split(h, "train_tokens", "train_labels", td->n, td->cb.codes, cfg->data.n_classes, &td->train, st);
    if (rc == DD2_OK)
        rc = read_split(h, "test_tokens", "test_labels", td->n, td->cb.codes, cfg->data.n_classes, &td->test, st);
    dd2_status st2;
    dd2_status_clear(&st2);
    dd2_h5_close(h, rc == DD2_OK ? st : &st2);
    return rc;
}

void dd2_token_data_free(dd2_token_data *td) {
    dd2_vq_codebook_free(&td->cb);
    free(td->train.tokens);
    free(td->train.labels);
    free(td->test.tokens);
    free(td->test.labels);
    memset(td, 0, sizeof *td);
}
