/* `dd2 vq CONFIG`: the patch tokenizer stage (train/stages.h, docs/vq.md).
 *
 * Every rank loads the dataset and cuts the training images into patches; k-means runs over all
 * ranks of MPI_COMM_WORLD (model/vq.h: the codebook is bitwise identical for any rank count);
 * the test split (and the training split of an imported codebook) is encoded with the images
 * split over the ranks and gathered on rank 0, which writes vq/codebook.h5, vq/recon.png and,
 * last, vq/tokens.h5. */
#include "train/stages.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "io/h5io.h"
#include "io/png_io.h"
#include "model/vq.h"
#include "train/dataset.h"

/* ---- agreement between ranks ------------------------------------------------------------------ */

/* Every rank returns the worst status. When every rank failed with the same code (the same
 * input seen by all), the failure is collective (the driver exits cleanly, rank 0 prints it). */
static int agree(int rc, dd2_status *st) {
    int v[2] = {rc, -rc}, r[2];
    if (MPI_Allreduce(v, r, 2, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "vq: MPI_Allreduce failed");
    int worst = r[0], best = -r[1];
    if (worst == DD2_OK) return DD2_OK;
    if (rc == DD2_OK) return DD2_FAIL(st, worst, "vq: another rank failed");
    if (best == worst && rc == worst) st->collective = 1;
    return worst;
}

/* Rank 0 did some work alone: everyone returns its status (and message). */
static int share_rank0(int rc, dd2_status *st) {
    char *bytes = (char *)"";
    size_t len = 0;
    int all = dd2_bcast_bytes(&bytes, &len, 0, rc, st);
    if (all == DD2_OK && dd2_rank() != 0) free(bytes);
    if (all != DD2_OK) st->collective = 1;
    return all;
}

/* ---- data ------------------------------------------------------------------------------------- */

/* ---- distributed encoding --------------------------------------------------------------------- */

/* Encode the n images of s: each rank its contiguous share, gathered on rank 0 into tokens
 * [n,T] (rank 0 only; may be NULL elsewhere) with *sse = Σ per-image squared errors summed in
 * image order (so the result does not depend on the number of ranks). */
static int encode_split(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const dd2_image_split *s, int32_t *tokens,
                        double *sse, dd2_status *st) {
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const size_t n = s->n, T = (size_t)g->n_tokens, C = (size_t)g->dim;
    const size_t img_elems = (size_t)g->image_size * g->image_size * g->channels;
    const size_t lo = n * (size_t)rank / (size_t)size, hi = n * (size_t)(rank + 1) / (size_t)size, m = hi - lo;
    enum { BLOCK = 512 };
    int rc = n * T > (size_t)INT32_MAX ? DD2_FAIL(st, DD2_ERR_INPUT, "vq: %zu images are too many to gather", n) : DD2_OK;
    int32_t *tok = rc == DD2_OK ? DD2_MALLOC((m ? m : 1) * T * sizeof(int32_t), st) : NULL;
    double *img_sse = tok ? DD2_MALLOC((m ? m : 1) * sizeof(double), st) : NULL;
    float *patches = img_sse ? DD2_MALLOC((size_t)BLOCK * T * C * sizeof(float), st) : NULL;
    double *d2 = patches ? DD2_MALLOC((size_t)BLOCK * T * sizeof(double), st) : NULL;
    int *counts = d2 ? DD2_MALLOC(4 * (size_t)size * sizeof(int), st) : NULL;
    double *all_sse = counts && rank == 0 ? DD2_MALLOC(n * sizeof(double), st) : NULL;
    if (rc == DD2_OK && (!counts || (rank == 0 && !all_sse))) rc = DD2_ERR_RUNTIME;
    for (size_t i0 = lo; rc == DD2_OK && i0 < hi; i0 += BLOCK) {
        size_t b = hi - i0 < BLOCK ? hi - i0 : BLOCK;
        dd2_vq_patches_from_u8(g, s->img.data + i0 * img_elems, b, patches);
        rc = dd2_vq_nearest(cb, patches, b * T, tok + (i0 - lo) * T, d2, st);
        for (size_t i = 0; rc == DD2_OK && i < b; i++) {
            double e = 0;
            for (size_t t = 0; t < T; t++) e += d2[i * T + t];
            img_sse[i0 - lo + i] = e;
        }
    }
    rc = agree(rc, st);
    if (rc == DD2_OK) {
        int *tc = counts, *td = counts + size, *ec = counts + 2 * size, *ed = counts + 3 * size;
        for (int q = 0; q < size; q++) {
            size_t a = n * (size_t)q / (size_t)size, z = n * (size_t)(q + 1) / (size_t)size;
            tc[q] = (int)((z - a) * T);
            td[q] = (int)(a * T);
            ec[q] = (int)(z - a);
            ed[q] = (int)a;
        }
        if (MPI_Gatherv(tok, (int)(m * T), MPI_INT32_T, tokens, tc, td, MPI_INT32_T, 0, MPI_COMM_WORLD) != MPI_SUCCESS ||
            MPI_Gatherv(img_sse, (int)m, MPI_DOUBLE, all_sse, ec, ed, MPI_DOUBLE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
            rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "vq: MPI_Gatherv of the tokens failed");
    }
    if (rc == DD2_OK && rank == 0) {
        double acc = 0;
        for (size_t i = 0; i < n; i++) acc += all_sse[i];
        *sse = acc;
    }
    free(tok);
    free(img_sse);
    free(patches);
    free(d2);
    free(counts);
    free(all_sse);
    return rc;
}

/* ---- progress --------------------------------------------------------------------------------- */

typedef struct vq_progress {
    const dd2_stage_ctx *ctx;
    dd2_progress prog;
    int V;
} vq_progress;

static int on_iter(void *p, const dd2_kmeans_iter_info *in, dd2_status *st) {
    vq_progress *c = p;
    char extra[192];
    snprintf(extra, sizeof extra, "mse %.6f | used %d/%d | dead %d, reseeded %d | %.2fs/iter", in->mse, in->used, c->V,
             in->dead, in->reseeded, in->seconds);
    dd2_progress_update(&c->prog, in->iter, extra);
    char fields[256];
    snprintf(fields, sizeof fields,
             "\"mse\": %.9g, \"used_codes\": %d, \"dead_codes\": %d, \"reseeded\": %d, \"iter_seconds\": %.4f", in->mse,
             in->used, in->dead, in->reseeded, in->seconds);
    return dd2_metrics_append(c->ctx, "vq", in->iter, fields, st);
}

/* ---- outputs (rank 0) ------------------------------------------------------------------------- */

typedef struct vq_summary {
    double train_mse, test_mse, perplexity, seconds_kmeans;
    int used;
    long reseeded;
    const char *init; /* "kmeans++", "random" or "imported" */
} vq_summary;

static int write_codebook(const dd2_stage_ctx *ctx, const char *path, const dd2_vq_codebook *cb,
                          const dd2_vq_geom *g, const vq_summary *sm, size_t n_patches, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_create_atomic(path, &h, st));
    int64_t dims[2] = {cb->codes, cb->dim};
    int rc = dd2_h5_write_f32(h, "codebook", 2, dims, cb->c, st);
    const struct {
        const char *name;
        int64_t v;
    } ints[] = {
        {"patch", g->patch},       {"image_size", g->image_size}, {"channels", g->channels},
        {"codes", cb->codes},      {"dim", cb->dim},              {"gh", g->gh},
        {"gw", g->gw},             {"used_codes", sm->used},      {"iters", cfg->vq.iters},
        {"seed", cfg->run.seed},   {"sample_patches", cfg->vq.sample_patches},
        {"train_patches", (int64_t)n_patches}, {"reseeded", sm->reseeded},
    };
    for (size_t i = 0; rc == DD2_OK && i < sizeof ints / sizeof ints[0]; i++)
        rc = dd2_h5_attr_set_i64(h, NULL, ints[i].name, ints[i].v, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_f64(h, NULL, "mse", sm->train_mse, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_f64(h, NULL, "test_mse", sm->test_mse, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_f64(h, NULL, "perplexity", sm->perplexity, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_str(h, NULL, "init", sm->init, st);
    if (rc == DD2_OK && cfg->vq.codebook[0]) rc = dd2_h5_attr_set_str(h, NULL, "source", cfg->vq.codebook, st);
    if (rc == DD2_OK)
        rc = dd2_h5_attr_set_str(h, NULL, "pixel_scale", "x/127.5 - 1 (uint8 -> [-1, 1]); patch vectors row-major, channels innermost", st);
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

static int write_tokens(const char *path, const dd2_vq_codebook *cb, const dd2_vq_geom *g, const dd2_image_split *tr,
                        const int32_t *tr_tok, const dd2_image_split *te, const int32_t *te_tok, dd2_status *st) {
    size_t nmax = tr->n > te->n ? tr->n : te->n;
    int32_t *lab = DD2_MALLOC(nmax * sizeof(int32_t), st);
    if (!lab) return DD2_ERR_RUNTIME;
    dd2_h5 *h = NULL;
    int rc = dd2_h5_create_atomic(path, &h, st);
    const dd2_image_split *sp[2] = {tr, te};
    const int32_t *tk[2] = {tr_tok, te_tok};
    const char *tname[2] = {"train_tokens", "test_tokens"}, *lname[2] = {"train_labels", "test_labels"};
    for (int k = 0; k < 2 && rc == DD2_OK; k++) {
        int64_t dims[2] = {(int64_t)sp[k]->n, g->n_tokens};
        rc = dd2_h5_write_i32(h, tname[k], 2, dims, tk[k], st);
        for (size_t i = 0; i < sp[k]->n; i++) lab[i] = sp[k]->lab.data[i];
        if (rc == DD2_OK) rc = dd2_h5_write_i32(h, lname[k], 1, dims, lab, st);
    }
    const struct {
        const char *name;
        int64_t v;
    } ints[] = {
        {"gh", g->gh},
        {"gw", g->gw},
        {"codes", cb->codes},
        {"patch", g->patch},
        {"image_size", g->image_size},
        {"channels", g->channels},
        {"codebook_checksum", (int64_t)dd2_h5_crc32(0, cb->c, (size_t)cb->codes * cb->dim * sizeof(float))},
    };
    for (size_t i = 0; rc == DD2_OK && i < sizeof ints / sizeof ints[0]; i++)
        rc = dd2_h5_attr_set_i64(h, NULL, ints[i].name, ints[i].v, st);
    free(lab);
    if (rc != DD2_OK) {
        if (h) dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

/* Rows of 8 originals, each followed by a row of their decodings (first 16 test images). */
static int write_recon_png(const char *path, const dd2_vq_codebook *cb, const dd2_vq_geom *g, const dd2_image_split *te,
                           const int32_t *te_tok, dd2_status *st) {
    if (g->channels != 1 && g->channels != 3) {
        dd2_warn0("vq: no %s (PNG needs 1 or 3 channels, data.channels = %d)", path, g->channels);
        return DD2_OK;
    }
    const size_t m = te->n < 16 ? te->n : 16, cols = m < 8 ? m : 8, pairs = (m + cols - 1) / cols;
    const size_t img = (size_t)g->image_size * g->image_size * g->channels;
    uint8_t *grid = DD2_CALLOC(2 * pairs * cols * img, 1, st);
    uint8_t *dec = grid ? DD2_MALLOC(m * img, st) : NULL;
    int rc = dec ? DD2_OK : DD2_ERR_RUNTIME;
    if (rc == DD2_OK) rc = dd2_vq_decode_u8(cb, g, te_tok, m, dec, st);
    for (size_t k = 0; rc == DD2_OK && k < m; k++) {
        size_t row = k / cols, col = k % cols;
        memcpy(grid + ((2 * row) * cols + col) * img, te->img.data + k * img, img);
        memcpy(grid + ((2 * row + 1) * cols + col) * img, dec + k * img, img);
    }
    dd2_grid gl = {.rows = (int)(2 * pairs), .cols = (int)cols, .pad = 2, .pad_value = 128, .scale = 2};
    if (rc == DD2_OK)
        rc = dd2_png_write_grid_u8(path, grid, (int)(2 * pairs * cols), g->image_size, g->image_size, g->channels,
                                   &gl, st);
    free(grid);
    free(dec);
    return rc;
}

/* ---- the stage -------------------------------------------------------------------------------- */

/* Rank 0 reads vq.codebook and broadcasts it. */
static int import_codebook(const dd2_config *cfg, const dd2_vq_geom *g, dd2_vq_codebook *cb, dd2_status *st) {
    int rank = dd2_rank() < 0 ? 0 : dd2_rank();
    dd2_vq_codebook tmp = {0};
    int rc = DD2_OK;
    char *bytes = NULL;
    size_t len = 0;
    if (rank == 0) {
        rc = dd2_vq_codebook_read(cfg->vq.codebook, cfg->vq.codes, g->dim, &tmp, st);
        if (rc != DD2_OK) dd2_status_prefix(st, "vq.codebook");
        bytes = (char *)tmp.c;
        len = rc == DD2_OK ? (size_t)tmp.codes * tmp.dim * sizeof(float) : 0;
    }
    rc = dd2_bcast_bytes(&bytes, &len, 0, rc, st);
    if (rc != DD2_OK) {
        st->collective = 1;
        dd2_vq_codebook_free(&tmp);
        return rc;
    }
    if (len != (size_t)cfg->vq.codes * g->dim * sizeof(float))
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "vq: imported codebook has %zu bytes", len);
    if (rc == DD2_OK) rc = dd2_vq_codebook_init(cb, cfg->vq.codes, g->dim, (const float *)bytes, st);
    if (rank != 0) free(bytes);
    dd2_vq_codebook_free(&tmp);
    return agree(rc, st);
}

int dd2_stage_vq(const dd2_stage_ctx *ctx, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    const int rank = ctx->env->rank, size = ctx->env->size;
    const double t_start = dd2_now();
    dd2_vq_geom g;
    int rc = dd2_vq_geom_init(&g, cfg->data.image_size, cfg->data.channels, cfg->vq.patch, st);
    if (rc != DD2_OK) {
        st->collective = 1; /* the same config on every rank */
        return rc;
    }
    DD2_TRY(dd2_stage_mkdir(ctx, "vq", st));

    dd2_image_split tr = {0}, te = {0};
    dd2_vq_codebook cb = {0};
    float *patches = NULL;
    int32_t *tr_tok = NULL, *te_tok = NULL;
    vq_summary sm = {0};

    rc = dd2_dataset_load(cfg, 0, &tr, st);
    if (rc == DD2_OK) rc = dd2_dataset_load(cfg, 1, &te, st);
    rc = agree(rc, st);
    if (rc != DD2_OK) goto done;
    const size_t T = (size_t)g.n_tokens, C = (size_t)g.dim, np = tr.n * T;
    dd2_info0("vq: %zu train / %zu test images of %dx%dx%d, %dx%d patches (C = %d), %d tokens per image (%dx%d), "
              "%d codes, %d rank(s)",
              tr.n, te.n, g.image_size, g.image_size, g.channels, g.patch, g.patch, g.dim, g.n_tokens, g.gh, g.gw,
              cfg->vq.codes, size);

    /* tokens of the training set are needed everywhere k-means runs; rank 0 keeps them */
    if (!(tr_tok = DD2_MALLOC(np * sizeof(int32_t), st))) rc = DD2_ERR_RUNTIME;
    if (rc == DD2_OK && rank == 0 && !(te_tok = DD2_MALLOC((te.n ? te.n : 1) * T * sizeof(int32_t), st)))
        rc = DD2_ERR_RUNTIME;
    rc = agree(rc, st);
    if (rc != DD2_OK) goto done;

    if (cfg->vq.codebook[0]) {
        rc = import_codebook(cfg, &g, &cb, st);
        if (rc != DD2_OK) goto done;
        dd2_info0("vq: imported codebook %s [%d, %d] (no k-means)", cfg->vq.codebook, cb.codes, cb.dim);
        double sse = 0;
        rc = encode_split(&cb, &g, &tr, tr_tok, &sse, st);
        if (rc != DD2_OK) goto done;
        sm.train_mse = sse / ((double)np * C);
        sm.init = "imported";
        if (rank == 0) dd2_vq_usage(tr_tok, np, cb.codes, NULL, &sm.used, &sm.perplexity);
    } else {
        if (!(patches = DD2_MALLOC(np * C * sizeof(float), st))) rc = DD2_ERR_RUNTIME;
        if (rc == DD2_OK) rc = dd2_vq_codebook_init(&cb, cfg->vq.codes, g.dim, NULL, st);
        rc = agree(rc, st);
        if (rc != DD2_OK) goto done;
        dd2_vq_patches_from_u8(&g, tr.img.data, tr.n, patches);
        vq_progress pr = {.ctx = ctx, .V = cfg->vq.codes};
        dd2_kmeans_opts o = {
            .codes = cfg->vq.codes,
            .iters = cfg->vq.iters,
            .init = cfg->vq.init == DD2_VQ_INIT_RANDOM ? DD2_KMEANS_INIT_RANDOM : DD2_KMEANS_INIT_PP,
            .sample = (size_t)cfg->vq.sample_patches,
            .seed = (uint64_t)cfg->run.seed,
            .comm = MPI_COMM_WORLD,
            .on_iter = on_iter,
            .on_iter_ctx = &pr,
        };
        sm.init = o.init == DD2_KMEANS_INIT_RANDOM ? "random" : "kmeans++";
        size_t S = o.sample == 0 || o.sample >= np ? np : o.sample;
        dd2_info0("vq: k-means (%s init on %zu of %zu patches, %d Lloyd iterations)", sm.init, S, np, o.iters);
        dd2_progress_begin(&pr.prog, "vq k-means", 0, o.iters, 1e-9); /* a line per iteration */
        dd2_kmeans_result res;
        rc = dd2_kmeans(patches, np, &o, &cb, tr_tok, &res, st);
        if (rc != DD2_OK) goto done;
        char extra[160];
        snprintf(extra, sizeof extra, "mse %.6f | used %d/%d | perplexity %.1f", res.mse, res.used, cb.codes,
                 res.perplexity);
        dd2_progress_end(&pr.prog, extra);
        sm.train_mse = res.mse;
        sm.used = res.used;
        sm.perplexity = res.perplexity;
        sm.reseeded = res.reseeded;
        sm.seconds_kmeans = res.seconds_init + res.seconds_iters;
        dd2_info0("vq: k-means took %.2fs (init %.2fs, %d iterations + final assignment %.2fs); %ld dead-code re-seeds",
                  sm.seconds_kmeans, res.seconds_init, o.iters, res.seconds_iters, res.reseeded);
        free(patches);
        patches = NULL;
    }

    double test_sse = 0;
    rc = encode_split(&cb, &g, &te, te_tok, &test_sse, st);
    if (rc != DD2_OK) goto done;
    sm.test_mse = te.n ? test_sse / ((double)te.n * T * C) : 0;

    /* rank 0 writes; tokens.h5 last (the stage's "finished" marker) */
    if (rank == 0) {
        char path[1100];
        rc = dd2_stage_path(ctx, "vq/codebook.h5", path, sizeof path, st);
        if (rc == DD2_OK) rc = write_codebook(ctx, path, &cb, &g, &sm, np, st);
        if (rc == DD2_OK) rc = dd2_stage_path(ctx, "vq/recon.png", path, sizeof path, st);
        if (rc == DD2_OK) rc = write_recon_png(path, &cb, &g, &te, te_tok, st);
        if (rc == DD2_OK) rc = dd2_stage_path(ctx, "vq/tokens.h5", path, sizeof path, st);
        if (rc == DD2_OK) rc = write_tokens(path, &cb, &g, &tr, tr_tok, &te, te_tok, st);
        double secs = dd2_now() - t_start;
        if (rc == DD2_OK) {
            char fields[512];
            snprintf(fields, sizeof fields,
                     "\"final\": true, \"train_mse\": %.9g, \"test_mse\": %.9g, \"used_codes\": %d, \"codes\": %d, "
                     "\"perplexity\": %.6g, \"reseeded\": %ld, \"kmeans_seconds\": %.3f, \"seconds\": %.3f, "
                     "\"ranks\": %d, \"init\": \"%s\"",
                     sm.train_mse, sm.test_mse, sm.used, cb.codes, sm.perplexity, sm.reseeded, sm.seconds_kmeans, secs,
                     size, sm.init);
            rc = dd2_metrics_append(ctx, "vq", cfg->vq.iters, fields, st);
        }
        if (rc == DD2_OK)
            dd2_info0("vq: reconstruction MSE train %.6f, test %.6f (pixels in [-1,1]); codes used %d/%d, perplexity "
                      "%.1f; wrote %s/vq/{codebook.h5,recon.png,tokens.h5} in %.2fs total",
                      sm.train_mse, sm.test_mse, sm.used, cb.codes, sm.perplexity, ctx->run_dir, secs);
    }
    rc = share_rank0(rc, st);

done:
    free(patches);
    free(tr_tok);
    free(te_tok);
    dd2_vq_codebook_free(&cb);
    dd2_image_split_free(&tr);
    dd2_image_split_free(&te);
    return rc;
}
