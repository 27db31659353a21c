/* `dd2 fid-stats`: feature network + reference FID statistics (train/fid_stage.h, docs/fid.md). */
#include "train/fid_stage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/fid.h"
#include "train/dataset.h"

/* ---- paths ------------------------------------------------------------------------------------ */

int dd2_fid_featnet_path(const dd2_stage_ctx *ctx, char *out, size_t n, dd2_status *st) {
    const char *w = ctx->cfg->eval.features.weights;
    if (w[0]) {
        if ((size_t)snprintf(out, n, "%s", w) >= n) return DD2_FAIL(st, DD2_ERR_RUNTIME, "path too long: %s", w);
        return DD2_OK;
    }
    return dd2_stage_path(ctx, "fid/featnet.h5", out, n, st);
}

int dd2_fid_ref_stats_path(const dd2_stage_ctx *ctx, char *out, size_t n, dd2_status *st) {
    const char *s = ctx->cfg->eval.stats;
    if (s[0]) {
        if ((size_t)snprintf(out, n, "%s", s) >= n) return DD2_FAIL(st, DD2_ERR_RUNTIME, "path too long: %s", s);
        return DD2_OK;
    }
    return dd2_stage_path(ctx, "fid/test_stats.h5", out, n, st);
}

int dd2_fid_train_stats_path(const dd2_stage_ctx *ctx, char *out, size_t n, dd2_status *st) {
    return dd2_stage_path(ctx, "fid/train_stats.h5", out, n, st);
}

int dd2_fid_load_featnet(const dd2_stage_ctx *ctx, dd2_featnet *net, dd2_status *st) {
    char path[1100];
    memset(net, 0, sizeof *net);
    DD2_TRY(dd2_fid_featnet_path(ctx, path, sizeof path, st));
    if (!dd2_file_exists(path))
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: no feature network (run `dd2 fid-stats` first%s)", path,
                        ctx->cfg->eval.features.weights[0] ? ", or fix eval.features.weights" : "");
    return dd2_featnet_load(path, net, st);
}

/* ---- data --------------------------------------------------------------------------------------- */

/* A split for FID statistics: train/dataset.h, plus at least 2 images (a covariance needs them). */
static int load_split(const dd2_config *cfg, int test, dd2_image_split *s, dd2_status *st) {
    DD2_TRY(dd2_dataset_load(cfg, test, s, st));
    const int limit = test ? cfg->data.test_limit : cfg->data.train_limit;
    int rc = DD2_OK;
    if (s->img.dims[0] < 2)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: FID statistics need at least 2 images", s->path);
    else if (s->n < 2)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: a limit of %d leaves fewer than 2 images", s->path, limit);
    if (rc != DD2_OK) dd2_image_split_free(s);
    return rc;
}

/* ---- the feature network ------------------------------------------------------------------------- */

/* Why an existing run-directory network does not fit the config ("" when it does). */
static void mismatch(const dd2_featnet *net, const dd2_config *cfg, size_t in_dim, size_t n_train, char *why,
                     size_t n) {
    why[0] = 0;
    const struct {
        int bad;
        const char *what;
    } checks[] = {
        {net->in_dim != (int)in_dim, "image size"},
        {net->classes != cfg->data.n_classes, "data.n_classes"},
        {net->hidden != DD2_FEATNET_HIDDEN, "hidden width"},
        {net->dim != cfg->eval.features.dim, "eval.features.dim"},
        {net->train_epochs != cfg->eval.features.epochs, "eval.features.epochs"},
        {net->train_batch != cfg->eval.features.batch, "eval.features.batch"},
        {net->train_lr != cfg->eval.features.lr, "eval.features.lr"},
        {net->train_seed != (int64_t)cfg->run.seed, "run.seed"},
        {net->train_n != (int64_t)n_train, "number of training images"},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].bad) {
            snprintf(why, n, "%s", checks[i].what);
            return;
        }
}

static int obtain_featnet(const dd2_stage_ctx *ctx, const dd2_image_split *train, const dd2_image_split *test,
                          dd2_featnet *net, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    char path[1100];
    DD2_TRY(dd2_fid_featnet_path(ctx, path, sizeof path, st));
    dd2_featnet_data test_data = {test->img.data, NULL, test->lab.data, test->n};

    if (cfg->eval.features.weights[0]) { /* given weights: load, never train */
        DD2_TRY_CTX(dd2_featnet_load(path, net, st), st, "eval.features.weights");
        if ((size_t)net->in_dim != train->in_dim) {
            int rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: feature network takes %d inputs, the images have %zu pixels",
                              path, net->in_dim, train->in_dim);
            dd2_featnet_free(net);
            return rc;
        }
        if (net->dim != cfg->eval.features.dim)
            dd2_warn("%s: feature dimension %d (from the file) differs from eval.features.dim = %d", path, net->dim,
                     cfg->eval.features.dim);
        dd2_info("featnet: loaded %s (%s, checksum 0x%08x)", path, net->name, (unsigned)net->checksum);
    } else {
        if (dd2_file_exists(path)) {
            dd2_status st2;
            dd2_status_clear(&st2);
            char why[128] = "";
            if (dd2_featnet_load(path, net, &st2) != DD2_OK) {
                dd2_warn("featnet: %s; training a new one", st2.msg);
            } else {
                mismatch(net, cfg, train->in_dim, train->n, why, sizeof why);
                if (!why[0]) {
                    dd2_info("featnet: reusing %s (%s, checksum 0x%08x)", path, net->name, (unsigned)net->checksum);
                    goto have_net;
                }
                dd2_info("featnet: %s was made with a different %s; training a new one", path, why);
                dd2_featnet_free(net);
            }
        }
        DD2_TRY(dd2_featnet_init(net, (int)train->in_dim, DD2_FEATNET_HIDDEN, cfg->eval.features.dim,
                                 cfg->data.n_classes, (uint64_t)cfg->run.seed, st));
        dd2_featnet_data train_data = {train->img.data, NULL, train->lab.data, train->n};
        dd2_featnet_train_opts opts = {
            .epochs = cfg->eval.features.epochs,
            .batch = cfg->eval.features.batch,
            .lr = cfg->eval.features.lr,
            .weight_decay = 1e-4,
            .seed = (uint64_t)cfg->run.seed,
            .eval = &test_data,
            .label = "featnet",
            .quiet = 0,
        };
        dd2_info("featnet: training %s on %zu images: %d epochs, batch %d, lr %g", net->name, train->n, opts.epochs,
                 opts.batch, opts.lr);
        double t0 = dd2_now(), loss = 0;
        int rc = dd2_featnet_train(net, &train_data, &opts, &loss, st);
        if (rc == DD2_OK) rc = dd2_featnet_accuracy(net, &test_data, &net->test_accuracy, st);
        if (rc == DD2_OK) {
            dd2_info("featnet: trained in %.1fs: train loss %.4f, test accuracy %.2f%%", dd2_now() - t0, loss,
                     100.0 * net->test_accuracy);
            rc = dd2_featnet_save(net, path, st);
        }
        if (rc != DD2_OK) {
            dd2_featnet_free(net);
            return rc;
        }
        dd2_info("featnet: wrote %s (checksum 0x%08x)", path, (unsigned)net->checksum);
        return DD2_OK;
    }
have_net:
    /* report the accuracy on this run's test set (the file's value may come from another one) */
    if (net->classes == cfg->data.n_classes) {
        int rc = dd2_featnet_accuracy(net, &test_data, &net->test_accuracy, st);
        if (rc != DD2_OK) {
            dd2_featnet_free(net);
            return rc;
        }
    } else {
        dd2_warn("featnet: %d classes, data.n_classes = %d: no test accuracy", net->classes, cfg->data.n_classes);
        net->test_accuracy = -1.0;
    }
    return DD2_OK;
}

/* ---- the stage ------------------------------------------------------------------------------------- */

static int stats_of(dd2_featnet *net, const dd2_image_split *s, const char *what, size_t batch, dd2_fid_stats *out,
                    dd2_status *st) {
    double t0 = dd2_now();
    DD2_TRY(dd2_fid_stats_images_u8(net, s->img.data, s->n, batch, out, st));
    snprintf(out->source, sizeof out->source, "%s: %.200s (%zu images)", what, s->path, s->n);
    dd2_info("fid: %s statistics of %zu images in %.1fs", what, s->n, dd2_now() - t0);
    return DD2_OK;
}

static int run_rank0(const dd2_stage_ctx *ctx, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    dd2_image_split train, test;
    DD2_TRY(load_split(cfg, 0, &train, st));
    int rc = load_split(cfg, 1, &test, st);
    if (rc != DD2_OK) {
        dd2_image_split_free(&train);
        return rc;
    }
    if (rc == DD2_OK && train.in_dim != test.in_dim)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s and %s: images of different sizes", train.path, test.path);

    dd2_featnet net;
    memset(&net, 0, sizeof net);
    dd2_fid_stats ref, tr;
    memset(&ref, 0, sizeof ref);
    memset(&tr, 0, sizeof tr);
    char ref_path[1100], train_path[1100];
    double floor_fid = NAN;
    const size_t batch = (size_t)cfg->eval.batch;
    if (rc == DD2_OK) rc = dd2_fid_ref_stats_path(ctx, ref_path, sizeof ref_path, st);
    if (rc == DD2_OK) rc = dd2_fid_train_stats_path(ctx, train_path, sizeof train_path, st);
    if (rc == DD2_OK) rc = obtain_featnet(ctx, &train, &test, &net, st);

    /* reference (test) statistics: reuse a given eval.stats file, else compute and write */
    if (rc == DD2_OK && cfg->eval.stats[0] && dd2_file_exists(ref_path)) {
        rc = dd2_fid_stats_load(ref_path, &ref, st);
        if (rc != DD2_OK)
            dd2_status_prefix(st, "eval.stats");
        else if (ref.extractor_checksum != net.checksum)
            rc = DD2_FAIL(st, DD2_ERR_INPUT,
                          "eval.stats = %s: computed with feature extractor '%s' (checksum 0x%08x), but the feature "
                          "network is '%s' (checksum 0x%08x): remove the file or unset eval.stats",
                          ref_path, ref.extractor, (unsigned)ref.extractor_checksum, net.name, (unsigned)net.checksum);
        else
            dd2_info("fid: using the reference statistics %s (%lld samples)", ref_path, (long long)ref.n);
    } else if (rc == DD2_OK) {
        rc = stats_of(&net, &test, "test", batch, &ref, st);
        if (rc == DD2_OK) rc = dd2_fid_stats_save(ref_path, &ref, st);
    }
    if (rc == DD2_OK) rc = stats_of(&net, &train, "train", batch, &tr, st);
    if (rc == DD2_OK) rc = dd2_fid_stats_save(train_path, &tr, st);
    if (rc == DD2_OK) rc = dd2_fid_distance(&tr, &ref, &floor_fid, st);
    if (rc == DD2_OK) {
        printf("feature network: %s, checksum 0x%08x, test accuracy %.2f%%\n", net.name, (unsigned)net.checksum,
               100.0 * net.test_accuracy);
        printf("reference statistics: %s (%lld images)\n", ref_path, (long long)ref.n);
        printf("train statistics: %s (%lld images)\n", train_path, (long long)tr.n);
        printf("FID floor (train vs test): %.4f\n", floor_fid);
        fflush(stdout);
        char fields[256];
        snprintf(fields, sizeof fields,
                 "\"featnet_test_acc\": %.6f, \"featnet_checksum\": %u, \"fid_floor\": %.6f, \"n_train\": %lld, "
                 "\"n_test\": %lld",
                 net.test_accuracy, (unsigned)net.checksum, floor_fid, (long long)tr.n, (long long)ref.n);
        rc = dd2_metrics_append(ctx, "fid-stats", 0, fields, st);
    }
    dd2_fid_stats_free(&ref);
    dd2_fid_stats_free(&tr);
    dd2_featnet_free(&net);
    dd2_image_split_free(&train);
    dd2_image_split_free(&test);
    return rc;
}

int dd2_stage_fid_stats(const dd2_stage_ctx *ctx, dd2_status *st) {
    if (ctx->cfg->eval.features.net != DD2_FEATURE_NET_CLASSIFIER) { /* the same on every rank */
        DD2_FAIL(st, DD2_ERR_INPUT, "eval.features.net: only 'classifier' is implemented (no Inception weights importer)");
        st->collective = 1;
        return st->code;
    }
    DD2_TRY(dd2_stage_mkdir(ctx, "fid", st));
    int rc = ctx->env->rank == 0 ? run_rank0(ctx, st) : DD2_OK;
    /* everyone waits for rank 0 and shares its status */
    char *bytes = (char *)"";
    size_t len = 0;
    int all = dd2_bcast_bytes(&bytes, &len, 0, rc, st);
    if (all == DD2_OK && ctx->env->rank != 0) free(bytes);
    if (all != DD2_OK) st->collective = 1;
    return all;
}
