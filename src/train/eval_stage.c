/* `dd2 eval CONFIG`: the FID table against the test set, with the classifier-feature FID of
 * docs/fid.md:
 *     real train vs test          the floor (from fid/train_stats.h5)
 *     VQ reconstructions          the tokenizer's ceiling (decoded test tokens)
 *     teacher                     eval.n AR samples with the sampling settings, plus speed
 * Rank 0 computes features and distances; sampling runs on all ranks. Writes
 * <run>/eval/table.md (the printed table) and <run>/eval/results.json. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "dist/collectives.h"
#include "io/atomic_file.h"
#include "io/h5io.h"
#include "io/png_io.h"
#include "model/fid.h"
#include "train/ardiff_io.h"
#include "train/distill_io.h"
#include "train/fid_stage.h"
#include "train/generator_sampler.h"
#include "train/generate.h"
#include "train/stages.h"
#include "train/teacher_io.h"
#include "train/token_data.h"

#define MAX_ROWS 16
#define MAX_GENS 8

/* A generator to evaluate: a batch sampler and its model. */
typedef struct eval_gen {
    char name[96];
    dd2_sample_batch_fn fn;
    void *model;
} eval_gen;

static void add_gen(eval_gen *gens, int *n, const char *name, dd2_sample_batch_fn fn, void *model) {
    if (*n == MAX_GENS) return;
    snprintf(gens[*n].name, sizeof gens[*n].name, "%.95s", name);
    gens[*n].fn = fn;
    gens[*n].model = model;
    (*n)++;
}

typedef struct eval_row {
    char name[96];
    double fid;
    double images_per_s; /* over the eval.n samples (all ranks); NAN: not a generator */
    double seconds;
    double lat1, lat64;  /* seconds for one batch of 1 / 64 images on one rank */
} eval_row;

typedef struct eval_table {
    eval_row row[MAX_ROWS];
    int n;
    double nll_bits, feat_acc;
    int64_t n_samples, n_ref;
    double teacher_lat64; /* the teacher row's, the speed-up reference; NAN without it (eval.teacher false) */
} eval_table;

/* FID of decoded token sequences against the reference statistics (rank 0). */
static int fid_of_tokens(const dd2_token_data *td, dd2_featnet *net, const dd2_fid_stats *ref, const int32_t *tokens,
                         int64_t N, double *fid, dd2_status *st) {
    const dd2_vq_geom *g = &td->geom;
    const size_t pix = (size_t)g->image_size * g->image_size * g->channels;
    float *img = DD2_MALLOC((size_t)N * pix * sizeof(float), st);
    if (!img) return DD2_ERR_RUNTIME;
    dd2_fid_stats s;
    memset(&s, 0, sizeof s);
    int rc = dd2_vq_decode_f32(&td->cb, g, tokens, (size_t)N, img, st);
    if (rc == DD2_OK) rc = dd2_fid_stats_images_f32(net, img, (size_t)N, 0, &s, st);
    if (rc == DD2_OK) rc = dd2_fid_distance(&s, ref, fid, st);
    dd2_fid_stats_free(&s);
    free(img);
    return rc;
}

static eval_row *add_row(eval_table *tab, const char *name, double fid, double ips, double seconds) {
    static eval_row spare;
    if (tab->n == MAX_ROWS) return &spare;
    eval_row *r = &tab->row[tab->n++];
    snprintf(r->name, sizeof r->name, "%.95s", name);
    r->fid = fid;
    r->images_per_s = ips;
    r->seconds = seconds;
    r->lat1 = r->lat64 = NAN;
    return r;
}

static void format_table(const eval_table *tab, char *buf, size_t n) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k,
                          "| row | FID | images/s | latency batch 1 (ms) | latency batch 64 (ms) | speed-up vs teacher |\n"
                          "|---|---:|---:|---:|---:|---:|\n");
    const double ref = tab->teacher_lat64;
    for (int i = 0; i < tab->n && k < n; i++) {
        const eval_row *r = &tab->row[i];
        if (isnan(r->images_per_s)) {
            k += (size_t)snprintf(buf + k, n - k, "| %s | %.2f | | | | |\n", r->name, r->fid);
            continue;
        }
        char speedup[32] = ""; /* blank without the teacher row */
        if (!isnan(ref)) snprintf(speedup, sizeof speedup, "%.1fx ", ref / r->lat64);
        k += (size_t)snprintf(buf + k, n - k, "| %s | %.2f | %.1f | %.1f | %.1f | %s|\n", r->name, r->fid,
                              r->images_per_s, 1e3 * r->lat1, 1e3 * r->lat64, speedup);
    }
    if (k < n)
        k += (size_t)snprintf(buf + k, n - k,
                              "\nFID with the classifier features of docs/fid.md (feature-net test accuracy %.2f%%; not "
                              "comparable with Inception FIDs), %lld generated images against the %lld test images; "
                              "images/s over all ranks, latency on one rank; teacher test NLL %.4f bits/token.\n",
                              100.0 * tab->feat_acc, (long long)tab->n_samples, (long long)tab->n_ref, tab->nll_bits);
}

/* Side-by-side grid: per class, the first SIDE samples of the teacher and of the one-step
 * generator, separated by a white column (eval/teacher_vs_onestep.png). */
#define SIDE 8

static void keep_side(const int32_t *tokens, int64_t N, int K, int n, int32_t *side) {
    for (int k = 0; k < K; k++)
        for (int j = 0; j < SIDE; j++) {
            int64_t i = ((int64_t)k * N + K - 1) / K + j; /* first index of class k (labels i·K/N) */
            if (i >= N) i = N - 1;
            memcpy(side + ((size_t)k * SIDE + j) * n, tokens + (size_t)i * n, (size_t)n * sizeof(int32_t));
        }
}

static int write_side_by_side(const dd2_stage_ctx *ctx, const dd2_token_data *td, const int32_t *left,
                              const int32_t *right, dd2_status *st) {
    const int K = ctx->cfg->data.n_classes, cols = 2 * SIDE + 1;
    const dd2_vq_geom *g = &td->geom;
    const size_t pix = (size_t)g->image_size * g->image_size * g->channels;
    float *img = DD2_MALLOC((size_t)K * cols * pix * sizeof(float), st), *one = DD2_MALLOC(SIDE * pix * sizeof(float), st);
    int rc = (img && one) ? DD2_OK : DD2_ERR_RUNTIME;
    for (int k = 0; rc == DD2_OK && k < K; k++)
        for (int half = 0; rc == DD2_OK && half < 2; half++) {
            rc = dd2_vq_decode_f32(&td->cb, g, (half ? right : left) + (size_t)k * SIDE * td->n, SIDE, one, st);
            float *dst = img + ((size_t)k * cols + (half ? SIDE + 1 : 0)) * pix;
            if (rc == DD2_OK) memcpy(dst, one, SIDE * pix * sizeof(float));
            float *sep = img + ((size_t)k * cols + SIDE) * pix;
            for (size_t i = 0; i < pix; i++) sep[i] = 1.0f;
        }
    char path[1200];
    if (rc == DD2_OK) rc = dd2_stage_path(ctx, "eval/teacher_vs_onestep.png", path, sizeof path, st);
    dd2_grid grid = {K, cols, 1, 128, 2, 0};
    if (rc == DD2_OK) rc = dd2_png_write_grid_f32(path, img, K * cols, g->image_size, g->image_size, g->channels, &grid, st);
    if (rc == DD2_OK) dd2_info("eval: wrote %s (left: teacher, right: one-step generator; one row per class)", path);
    free(img);
    free(one);
    return rc;
}

static int write_outputs(const dd2_stage_ctx *ctx, const eval_table *tab, dd2_status *st) {
    char md[8192], json[8192], path[1200];
    format_table(tab, md, sizeof md);
    printf("\n%s\n", md);
    fflush(stdout);
    size_t k = (size_t)snprintf(json, sizeof json, "{\"n_samples\": %lld, \"feature_net_accuracy\": %.6f, "
                                "\"teacher_nll_bits\": %.6f, \"rows\": [", (long long)tab->n_samples, tab->feat_acc,
                                tab->nll_bits);
    for (int i = 0; i < tab->n && k < sizeof json; i++)
        k += (size_t)snprintf(json + k, sizeof json - k,
                              "%s{\"name\": \"%s\", \"fid\": %.6f, \"images_per_s\": %.3f, \"latency_b1_s\": %.6f, "
                              "\"latency_b64_s\": %.6f}",
                              i ? ", " : "", tab->row[i].name, tab->row[i].fid,
                              isnan(tab->row[i].images_per_s) ? -1.0 : tab->row[i].images_per_s,
                              isnan(tab->row[i].lat1) ? -1.0 : tab->row[i].lat1,
                              isnan(tab->row[i].lat64) ? -1.0 : tab->row[i].lat64);
    if (k < sizeof json) snprintf(json + k, sizeof json - k, "]}\n");
    DD2_TRY(dd2_stage_path(ctx, "eval/table.md", path, sizeof path, st));
    DD2_TRY(dd2_atomic_write_text(path, md, st));
    DD2_TRY(dd2_stage_path(ctx, "eval/results.json", path, sizeof path, st));
    DD2_TRY(dd2_atomic_write_text(path, json, st));
    dd2_info("eval: wrote %s/eval/{table.md,results.json}", ctx->run_dir);
    return DD2_OK;
}

static int read_nll(const dd2_stage_ctx *ctx, double *bits, dd2_status *st) {
    char path[1200];
    DD2_TRY(dd2_stage_path(ctx, "teacher/teacher.h5", path, sizeof path, st));
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_open_read(path, &h, st));
    int rc = dd2_h5_attr_get_f64(h, NULL, "test_nll_bits", bits, st);
    dd2_status st2;
    dd2_status_clear(&st2);
    dd2_h5_close(h, &st2);
    return rc;
}

/* Rank 0: the rows that need no generation. */
static int real_rows(const dd2_stage_ctx *ctx, const dd2_token_data *td, dd2_featnet *net, dd2_fid_stats *ref,
                     eval_table *tab, dd2_status *st) {
    char path[1200];
    DD2_TRY(dd2_fid_ref_stats_path(ctx, path, sizeof path, st));
    DD2_TRY(dd2_fid_stats_load(path, ref, st));
    tab->n_ref = ref->n;
    dd2_fid_stats train;
    DD2_TRY(dd2_fid_train_stats_path(ctx, path, sizeof path, st));
    DD2_TRY(dd2_fid_stats_load(path, &train, st));
    double fid;
    int rc = dd2_fid_distance(&train, ref, &fid, st);
    dd2_fid_stats_free(&train);
    DD2_TRY(rc);
    add_row(tab, "real: train vs test (floor)", fid, NAN, NAN);
    DD2_TRY(fid_of_tokens(td, net, ref, td->test.tokens, td->test.N, &fid, st));
    add_row(tab, "VQ reconstructions (test)", fid, NAN, NAN);
    return DD2_OK;
}

int dd2_stage_eval(const dd2_stage_ctx *ctx, dd2_status *st) {
    const dd2_config *cfg = ctx->cfg;
    eval_table tab;
    memset(&tab, 0, sizeof tab);
    dd2_token_data td;
    dd2_teacher t;
    memset(&t, 0, sizeof t);
    dd2_featnet net;
    memset(&net, 0, sizeof net);
    dd2_fid_stats ref;
    memset(&ref, 0, sizeof ref);
    float *params = NULL, *psi_params = NULL, *gen_params = NULL;
    dd2_ardiff psi, gen;
    memset(&psi, 0, sizeof psi);
    memset(&gen, 0, sizeof gen);
    int32_t *labels = NULL, *tokens = NULL;
    const int64_t N = cfg->eval.n;
    tab.n_samples = N;
    tab.teacher_lat64 = NAN;
    int rc = dd2_token_data_load(ctx, &td, st);
    if (rc == DD2_OK) rc = dd2_fid_load_featnet(ctx, &net, st);
    if (rc == DD2_OK) rc = read_nll(ctx, &tab.nll_bits, st);
    if (rc == DD2_OK) rc = dd2_teacher_load(ctx, &td, &t, &params, st);
    if (rc == DD2_OK) rc = dd2_stage_mkdir(ctx, "eval", st);
    tab.feat_acc = net.test_accuracy;
    if (rc == DD2_OK && ctx->env->rank == 0) rc = real_rows(ctx, &td, &net, &ref, &tab, st);
    int all = rc;
    if (dd2_allreduce_max_int_idle(&all, MPI_COMM_WORLD, st) != DD2_OK) return DD2_ERR_RUNTIME;
    if (all != DD2_OK && rc == DD2_OK) rc = DD2_FAIL(st, all, "eval failed on rank 0");
    if (rc == DD2_OK) {
        labels = DD2_MALLOC((size_t)N * sizeof *labels, st);
        tokens = DD2_MALLOC((size_t)N * td.n * sizeof *tokens, st);
        if (!labels || !tokens) rc = DD2_ERR_RUNTIME;
    }
    dd2_teacher_sampler ts = {&t, params, dd2_sampling_from_config(cfg), (uint64_t)cfg->run.seed};
    char teacher_name[96];
    snprintf(teacher_name, sizeof teacher_name, "teacher (%d AR steps, CFG %.3g, top-k %d)", td.n, cfg->sample.cfg_scale,
             cfg->sample.top_k);
    eval_gen gens[MAX_GENS];
    int n_gens = 0;
    if (cfg->eval.teacher) { /* the teacher and the naive one-pass baseline; the speed-up reference */
        add_gen(gens, &n_gens, teacher_name, dd2_teacher_sample_batch, &ts);
        add_gen(gens, &n_gens, "naive: all tokens from one teacher pass on noise", dd2_teacher_naive_batch, &ts);
    }
    /* stage-1 model, when trained */
    char apath[1200];
    dd2_ardiff_sampler as;
    if (rc == DD2_OK && cfg->eval.ardiff && dd2_stage_path(ctx, "ardiff/ardiff.h5", apath, sizeof apath, st) == DD2_OK &&
        dd2_file_exists(apath)) {
        rc = dd2_ardiff_load(ctx, &td, &psi, &psi_params, st);
        if (rc == DD2_OK) {
            char name[96];
            as = dd2_ardiff_sampler_from_config(&psi, psi_params, cfg);
            snprintf(name, sizeof name, "AR-diffusion (%d Euler steps per token)", cfg->ardiff.euler_steps);
            add_gen(gens, &n_gens, name, dd2_ardiff_sample_batch, &as);
        }
    }
    /* the distilled generator, when trained: one row per eval.steps entry (1 = one step) */
    char gpath[1200];
    dd2_generator_sampler gsamp[MAX_GENS];
    int n_gsamp = 0;
    if (rc == DD2_OK && dd2_stage_path(ctx, "distill/generator.h5", gpath, sizeof gpath, st) == DD2_OK &&
        dd2_file_exists(gpath)) {
        rc = dd2_generator_load(ctx, &td, &gen, &gen_params, st);
        const int cap = cfg->sample.batch > 64 ? cfg->sample.batch : 64;
        for (int i = 0; rc == DD2_OK && i < cfg->eval.steps.n && n_gens < MAX_GENS; i++) {
            const int k = cfg->eval.steps.v[i];
            rc = dd2_generator_sampler_init(&gsamp[n_gsamp], &gen, gen_params, &t, params, cfg, k, cap, st);
            if (rc != DD2_OK) break;
            char name[96];
            if (k == 1)
                snprintf(name, sizeof name, "DD2 one-step generator (EMA)");
            else
                snprintf(name, sizeof name, "DD2 few-step: generator + %d teacher token%s", k - 1, k == 2 ? "" : "s");
            add_gen(gens, &n_gens, name, dd2_generator_sample_batch, &gsamp[n_gsamp++]);
        }
    }
    if (rc == DD2_OK) dd2_balanced_labels(labels, N, cfg->data.n_classes);
    int have_side = 0;
    const size_t side_n = (size_t)cfg->data.n_classes * SIDE * (size_t)(td.n > 0 ? td.n : 1);
    int32_t *side_t = rc == DD2_OK ? DD2_MALLOC(side_n * sizeof(int32_t), st) : NULL;
    int32_t *side_g = rc == DD2_OK ? DD2_MALLOC(side_n * sizeof(int32_t), st) : NULL;
    for (int g = 0; rc == DD2_OK && g < n_gens; g++) {
        double seconds = 0.0, lat1 = NAN, lat64 = NAN;
        rc = dd2_generate(ctx, gens[g].fn, gens[g].model, td.n, labels, N, DD2_SAMPLE_INDEX_EVAL, tokens, &seconds,
                          st);
        if (rc == DD2_OK && ctx->env->rank == 0) {
            double fid;
            rc = fid_of_tokens(&td, &net, &ref, tokens, N, &fid, st);
            if (rc == DD2_OK) rc = dd2_measure_latency(gens[g].fn, gens[g].model, td.n, 1, cfg->data.n_classes, 3, &lat1, st);
            if (rc == DD2_OK) rc = dd2_measure_latency(gens[g].fn, gens[g].model, td.n, 64, cfg->data.n_classes, 2, &lat64, st);
            const int is_teacher = gens[g].fn == dd2_teacher_sample_batch;
            if (rc == DD2_OK && is_teacher) { /* the speed-up reference and the grid's left half */
                tab.teacher_lat64 = lat64;
                if (side_t) keep_side(tokens, N, cfg->data.n_classes, td.n, side_t);
            }
            if (rc == DD2_OK && side_g && gens[g].fn == dd2_generator_sample_batch &&
                ((dd2_generator_sampler *)gens[g].model)->k == 1) {
                keep_side(tokens, N, cfg->data.n_classes, td.n, side_g);
                have_side = 1;
            }
            if (rc == DD2_OK) {
                eval_row *row = add_row(&tab, gens[g].name, fid, (double)N / seconds, seconds);
                row->lat1 = lat1;
                row->lat64 = lat64;
                dd2_info("eval: %s: FID %.2f, %.1f images/s", gens[g].name, fid, (double)N / seconds);
            }
        }
        int all_g = rc;
        if (dd2_allreduce_max_int_idle(&all_g, MPI_COMM_WORLD, st) != DD2_OK) return DD2_ERR_RUNTIME;
        if (all_g != DD2_OK && rc == DD2_OK) rc = DD2_FAIL(st, all_g, "eval failed on rank 0");
    }
    if (rc == DD2_OK && ctx->env->rank == 0 && have_side && side_t && !isnan(tab.teacher_lat64)) rc = write_side_by_side(ctx, &td, side_t, side_g, st);
    if (rc == DD2_OK && ctx->env->rank == 0) rc = write_outputs(ctx, &tab, st);
    all = rc;
    if (dd2_allreduce_max_int_idle(&all, MPI_COMM_WORLD, st) != DD2_OK) return DD2_ERR_RUNTIME;
    if (all != DD2_OK && rc == DD2_OK) rc = DD2_FAIL(st, all, "eval failed on rank 0");
    st->collective = 1;
    dd2_fid_stats_free(&ref);
    dd2_featnet_free(&net);
    dd2_teacher_free(&t);
    for (int i = 0; i < n_gsamp; i++) dd2_generator_sampler_free(&gsamp[i]);
    free(side_t);
    free(side_g);
    dd2_ardiff_free(&psi);
    dd2_ardiff_free(&gen);
    free(psi_params);
    free(gen_params);
    dd2_token_data_free(&td);
    free(params);
    free(labels);
    free(tokens);
    return rc;
}
