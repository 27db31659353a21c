/* FID statistics and the Fréchet distance (model/fid.h). */
#include "model/fid.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5io.h"

enum { ACC_CHUNK = 1024, DEFAULT_BATCH = 500 };

/* ---- stats ------------------------------------------------------------------------------------ */

int dd2_fid_stats_alloc(dd2_fid_stats *s, int dim, dd2_status *st) {
    memset(s, 0, sizeof *s);
    if (dim < 1) return DD2_FAIL(st, DD2_ERR_RUNTIME, "FID statistics: bad dimension %d", dim);
    s->mu = DD2_CALLOC((size_t)dim, sizeof(double), st);
    s->sigma = s->mu ? DD2_CALLOC((size_t)dim * (size_t)dim, sizeof(double), st) : NULL;
    if (!s->sigma) {
        dd2_fid_stats_free(s);
        return DD2_ERR_RUNTIME;
    }
    s->dim = dim;
    return DD2_OK;
}

void dd2_fid_stats_free(dd2_fid_stats *s) {
    if (!s) return;
    free(s->mu);
    free(s->sigma);
    memset(s, 0, sizeof *s);
}

/* ---- accumulator ----------------------------------------------------------------------------- */

int dd2_fid_acc_init(dd2_fid_acc *acc, int dim, dd2_status *st) {
    memset(acc, 0, sizeof *acc);
    if (dim < 1) return DD2_FAIL(st, DD2_ERR_RUNTIME, "FID accumulator: bad dimension %d", dim);
    const size_t D = (size_t)dim;
    acc->dim = dim;
    acc->chunk = ACC_CHUNK;
    acc->mean = DD2_CALLOC(D, sizeof(double), st);
    acc->m2 = acc->mean ? DD2_CALLOC(D * D, sizeof(double), st) : NULL;
    acc->bmean = acc->m2 ? DD2_CALLOC(D, sizeof(double), st) : NULL;
    acc->bm2 = acc->bmean ? DD2_CALLOC(D * D, sizeof(double), st) : NULL;
    acc->buf = acc->bm2 ? DD2_CALLOC(acc->chunk * D, sizeof(double), st) : NULL;
    if (!acc->buf) {
        dd2_fid_acc_free(acc);
        return DD2_ERR_RUNTIME;
    }
    return DD2_OK;
}

void dd2_fid_acc_free(dd2_fid_acc *acc) {
    if (!acc) return;
    free(acc->mean);
    free(acc->m2);
    free(acc->bmean);
    free(acc->bm2);
    free(acc->buf);
    memset(acc, 0, sizeof *acc);
}

/* Merge a batch of nb samples with mean bmean and centred scatter bm2 (upper triangle). */
static void merge(int dim, int64_t *n, double *mean, double *m2, int64_t nb, const double *bmean,
                  const double *bm2) {
    const size_t D = (size_t)dim;
    if (nb == 0) return;
    if (*n == 0) {
        memcpy(mean, bmean, D * sizeof(double));
        for (size_t i = 0; i < D; i++)
            for (size_t j = i; j < D; j++) m2[i * D + j] = bm2[i * D + j];
        *n = nb;
        return;
    }
    const double na = (double)*n, nbd = (double)nb, nt = na + nbd;
    const double f = na * nbd / nt, g = nbd / nt;
    for (size_t i = 0; i < D; i++) {
        const double di = bmean[i] - mean[i];
        for (size_t j = i; j < D; j++) m2[i * D + j] += bm2[i * D + j] + f * di * (bmean[j] - mean[j]);
    }
    for (size_t i = 0; i < D; i++) mean[i] += (bmean[i] - mean[i]) * g;
    *n += nb;
}

static int add_rows(dd2_fid_acc *acc, const float *xf, const double *xd, size_t rows, dd2_status *st) {
    if (!acc->buf) return DD2_FAIL(st, DD2_ERR_RUNTIME, "FID accumulator used before dd2_fid_acc_init");
    const size_t D = (size_t)acc->dim;
    for (size_t r0 = 0; r0 < rows; r0 += acc->chunk) {
        const size_t m = rows - r0 < acc->chunk ? rows - r0 : acc->chunk;
        double *b = acc->buf;
        for (size_t k = 0; k < m * D; k++) b[k] = xf ? (double)xf[r0 * D + k] : xd[r0 * D + k];
        for (size_t k = 0; k < m * D; k++)
            if (!isfinite(b[k]))
                return DD2_FAIL(st, DD2_ERR_RUNTIME, "FID statistics: non-finite feature (sample %zu, index %zu)",
                                (size_t)acc->n + r0 + k / D, k % D);
        /* pass 1: the batch mean; pass 2: the centred scatter (dsyrk, upper triangle) */
        memset(acc->bmean, 0, D * sizeof(double));
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < D; j++) acc->bmean[j] += b[i * D + j];
        for (size_t j = 0; j < D; j++) acc->bmean[j] /= (double)m;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < D; j++) b[i * D + j] -= acc->bmean[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)D, (int)m, 1.0, b, (int)D, 0.0, acc->bm2, (int)D);
        merge(acc->dim, &acc->n, acc->mean, acc->m2, (int64_t)m, acc->bmean, acc->bm2);
    }
    return DD2_OK;
}

int dd2_fid_acc_add_f32(dd2_fid_acc *acc, const float *x, size_t rows, dd2_status *st) {
    return add_rows(acc, x, NULL, rows, st);
}

int dd2_fid_acc_add_f64(dd2_fid_acc *acc, const double *x, size_t rows, dd2_status *st) {
    return add_rows(acc, NULL, x, rows, st);
}

int dd2_fid_acc_merge(dd2_fid_acc *acc, const dd2_fid_acc *other, dd2_status *st) {
    if (acc->dim != other->dim)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "FID accumulators of dimensions %d and %d cannot be merged", acc->dim,
                        other->dim);
    merge(acc->dim, &acc->n, acc->mean, acc->m2, other->n, other->mean, other->m2);
    return DD2_OK;
}

int dd2_fid_acc_finish(const dd2_fid_acc *acc, const char *extractor, uint32_t checksum, dd2_fid_stats *out,
                       dd2_status *st) {
    memset(out, 0, sizeof *out);
    if (acc->n < 2)
        return DD2_FAIL(st, DD2_ERR_INPUT, "FID statistics need at least 2 samples (got %lld)", (long long)acc->n);
    DD2_TRY(dd2_fid_stats_alloc(out, acc->dim, st));
    const size_t D = (size_t)acc->dim;
    const double inv = 1.0 / (double)(acc->n - 1);
    memcpy(out->mu, acc->mean, D * sizeof(double));
    for (size_t i = 0; i < D; i++)
        for (size_t j = i; j < D; j++) out->sigma[i * D + j] = out->sigma[j * D + i] = acc->m2[i * D + j] * inv;
    out->n = acc->n;
    snprintf(out->extractor, sizeof out->extractor, "%s", extractor ? extractor : "");
    out->extractor_checksum = checksum;
    return DD2_OK;
}

/* ---- images through the feature network ------------------------------------------------------- */

static int add_images(dd2_fid_acc *acc, dd2_featnet *net, const float *x, const uint8_t *img, size_t n,
                      size_t batch, dd2_status *st) {
    if (acc->dim != net->dim)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "FID accumulator of dimension %d, feature network of %d", acc->dim,
                        net->dim);
    if (batch == 0) batch = DEFAULT_BATCH;
    if (batch > n) batch = n;
    if (n == 0) return DD2_OK;
    const size_t D = (size_t)net->dim, in = (size_t)net->in_dim;
    float *feat = DD2_MALLOC(batch * D * sizeof(float), st);
    if (!feat) return DD2_ERR_RUNTIME;
    int rc = DD2_OK;
    for (size_t r0 = 0; r0 < n && rc == DD2_OK; r0 += batch) {
        size_t m = n - r0 < batch ? n - r0 : batch;
        rc = img ? dd2_featnet_forward_u8(net, img + r0 * in, m, feat, NULL, st)
                 : dd2_featnet_forward(net, x + r0 * in, m, feat, NULL, st);
        if (rc == DD2_OK) rc = dd2_fid_acc_add_f32(acc, feat, m, st);
    }
    free(feat);
    return rc;
}

int dd2_fid_acc_add_images_f32(dd2_fid_acc *acc, dd2_featnet *net, const float *x, size_t n, dd2_status *st) {
    return add_images(acc, net, x, NULL, n, 0, st);
}

int dd2_fid_acc_add_images_u8(dd2_fid_acc *acc, dd2_featnet *net, const uint8_t *img, size_t n, dd2_status *st) {
    return add_images(acc, net, NULL, img, n, 0, st);
}

static int stats_images(dd2_featnet *net, const float *x, const uint8_t *img, size_t n, size_t batch,
                        dd2_fid_stats *out, dd2_status *st) {
    memset(out, 0, sizeof *out);
    dd2_fid_acc acc;
    DD2_TRY(dd2_fid_acc_init(&acc, net->dim, st));
    int rc = add_images(&acc, net, x, img, n, batch, st);
    if (rc == DD2_OK) rc = dd2_fid_acc_finish(&acc, net->name, net->checksum, out, st);
    dd2_fid_acc_free(&acc);
    return rc;
}

int dd2_fid_stats_images_u8(dd2_featnet *net, const uint8_t *img, size_t n, size_t batch, dd2_fid_stats *out,
                            dd2_status *st) {
    return stats_images(net, NULL, img, n, batch, out, st);
}

int dd2_fid_stats_images_f32(dd2_featnet *net, const float *x, size_t n, size_t batch, dd2_fid_stats *out,
                             dd2_status *st) {
    return stats_images(net, x, NULL, n, batch, out, st);
}

/* ---- files ------------------------------------------------------------------------------------- */

static int save_body(dd2_h5 *h, const dd2_fid_stats *s, dd2_status *st) {
    const int64_t d1[1] = {s->dim}, d2[2] = {s->dim, s->dim};
    DD2_TRY(dd2_h5_write_f64(h, "mu", 1, d1, s->mu, st));
    DD2_TRY(dd2_h5_write_f64(h, "sigma", 2, d2, s->sigma, st));
    DD2_TRY(dd2_h5_attr_set_str(h, NULL, "format", DD2_FID_STATS_FORMAT, st));
    DD2_TRY(dd2_h5_attr_set_str(h, NULL, "feature_extractor", s->extractor, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "feature_extractor_checksum", (int64_t)s->extractor_checksum, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "n_samples", s->n, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "dim", s->dim, st));
    DD2_TRY(dd2_h5_attr_set_str(h, NULL, "source", s->source, st));
    return DD2_OK;
}

int dd2_fid_stats_save(const char *path, const dd2_fid_stats *s, dd2_status *st) {
    if (!s->mu || !s->sigma || s->dim < 1)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: saving empty FID statistics", path);
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_create_atomic(path, &h, st));
    int rc = save_body(h, s, st);
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

static int get_str(dd2_h5 *h, const char *attr, char *out, size_t cap, dd2_status *st) {
    char *v = NULL;
    DD2_TRY(dd2_h5_attr_get_str(h, NULL, attr, &v, st));
    int fits = strlen(v) < cap;
    if (fits) memcpy(out, v, strlen(v) + 1);
    free(v);
    if (!fits)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: attribute '%s' is longer than %zu characters", dd2_h5_path(h), attr,
                        cap - 1);
    return DD2_OK;
}

static int load_body(dd2_h5 *h, dd2_fid_stats *s, dd2_status *st) {
    const char *path = dd2_h5_path(h);
    char fmt[64];
    DD2_TRY(get_str(h, "format", fmt, sizeof fmt, st));
    if (strcmp(fmt, DD2_FID_STATS_FORMAT) != 0)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: not FID statistics (format '%s', expected '%s')", path, fmt,
                        DD2_FID_STATS_FORMAT);
    dd2_h5_shape shape;
    DD2_TRY(dd2_h5_get_shape(h, "mu", &shape, st));
    if (shape.rank != 1 || shape.dims[0] < 1 || shape.dims[0] > 65536)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: dataset 'mu' must be a vector of 1..65536 elements", path);
    const int dim = (int)shape.dims[0];
    DD2_TRY(dd2_fid_stats_alloc(s, dim, st));
    const int64_t d1[1] = {dim}, d2[2] = {dim, dim};
    DD2_TRY(dd2_h5_read_f64(h, "mu", 1, d1, s->mu, st));
    DD2_TRY(dd2_h5_read_f64(h, "sigma", 2, d2, s->sigma, st));
    DD2_TRY(get_str(h, "feature_extractor", s->extractor, sizeof s->extractor, st));
    int64_t v;
    DD2_TRY(dd2_h5_attr_get_i64(h, NULL, "feature_extractor_checksum", &v, st));
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: feature_extractor_checksum %lld is not a 32-bit value", path,
                        (long long)v);
    s->extractor_checksum = (uint32_t)v;
    DD2_TRY(dd2_h5_attr_get_i64(h, NULL, "n_samples", &s->n, st));
    if (s->n < 2) return DD2_FAIL(st, DD2_ERR_INPUT, "%s: n_samples = %lld (need >= 2)", path, (long long)s->n);
    int exists = 0;
    DD2_TRY(dd2_h5_attr_exists(h, NULL, "source", &exists, st));
    if (exists) DD2_TRY(get_str(h, "source", s->source, sizeof s->source, st));
    const size_t D = (size_t)dim;
    for (size_t i = 0; i < D; i++) {
        if (!isfinite(s->mu[i])) return DD2_FAIL(st, DD2_ERR_INPUT, "%s: mu[%zu] is not finite", path, i);
        for (size_t j = 0; j < D; j++)
            if (!isfinite(s->sigma[i * D + j]))
                return DD2_FAIL(st, DD2_ERR_INPUT, "%s: sigma[%zu,%zu] is not finite", path, i, j);
    }
    for (size_t i = 0; i < D; i++)
        for (size_t j = i + 1; j < D; j++) {
            double a = s->sigma[i * D + j], b = s->sigma[j * D + i];
            double scale = sqrt(fabs(s->sigma[i * D + i] * s->sigma[j * D + j]));
            if (fabs(a - b) > 1e-9 * scale + 1e-300)
                return DD2_FAIL(st, DD2_ERR_INPUT, "%s: sigma is not symmetric at [%zu,%zu] (%.17g vs %.17g)", path,
                                i, j, a, b);
            s->sigma[i * D + j] = s->sigma[j * D + i] = 0.5 * (a + b);
        }
    return DD2_OK;
}

int dd2_fid_stats_load(const char *path, dd2_fid_stats *s, dd2_status *st) {
    memset(s, 0, sizeof *s);
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_open_read(path, &h, st));
    int rc = load_body(h, s, st);
    if (rc != DD2_OK) {
        dd2_fid_stats_free(s);
        dd2_h5_abort(h);
        return rc;
    }
    rc = dd2_h5_close(h, st);
    if (rc != DD2_OK) dd2_fid_stats_free(s);
    return rc;
}

/* ---- the Fréchet distance ------------------------------------------------------------------------ */

int dd2_fid_frechet(const double *mu1, const double *sigma1, const double *mu2, const double *sigma2, int dim,
                    double *fid, dd2_status *st) {
    if (dim < 1) return DD2_FAIL(st, DD2_ERR_RUNTIME, "FID: bad dimension %d", dim);
    const size_t D = (size_t)dim;
    for (size_t i = 0; i < D; i++)
        if (!isfinite(mu1[i]) || !isfinite(mu2[i])) return DD2_FAIL(st, DD2_ERR_INPUT, "FID: non-finite mean");
    for (size_t k = 0; k < D * D; k++)
        if (!isfinite(sigma1[k]) || !isfinite(sigma2[k]))
            return DD2_FAIL(st, DD2_ERR_INPUT, "FID: non-finite covariance");

    double *V = DD2_MALLOC(4 * D * D * sizeof(double) + D * sizeof(double), st);
    if (!V) return DD2_ERR_RUNTIME;
    double *Bm = V + D * D, *S = Bm + D * D, *M = S + D * D, *w = M + D * D;
    int rc = DD2_OK;

    double diff = 0.0, tr1 = 0.0, tr2 = 0.0;
    for (size_t i = 0; i < D; i++) {
        double d = mu1[i] - mu2[i];
        diff += d * d;
        tr1 += sigma1[i * D + i];
        tr2 += sigma2[i * D + i];
    }

    /* Σ1^½ = V diag(sqrt(max(λ,0))) Vᵀ */
    memcpy(V, sigma1, D * D * sizeof(double));
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)D, V, (lapack_int)D, w);
    if (info != 0) {
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "FID: eigen-decomposition of sigma1 failed (LAPACKE_dsyevd info %d)",
                      (int)info);
        goto out;
    }
    for (size_t k = 0; k < D; k++) w[k] = sqrt(w[k] > 0.0 ? w[k] : 0.0);
    for (size_t i = 0; i < D; i++)
        for (size_t k = 0; k < D; k++) Bm[i * D + k] = V[i * D + k] * w[k];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, dim, dim, dim, 1.0, Bm, dim, V, dim, 0.0, S, dim);
    /* M = Σ1^½ Σ2 Σ1^½ (symmetrised) */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0, S, dim, sigma2, dim, 0.0, Bm, dim);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0, Bm, dim, S, dim, 0.0, M, dim);
    for (size_t i = 0; i < D; i++)
        for (size_t j = i + 1; j < D; j++) M[i * D + j] = M[j * D + i] = 0.5 * (M[i * D + j] + M[j * D + i]);
    info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', (lapack_int)D, M, (lapack_int)D, w);
    if (info != 0) {
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME,
                      "FID: eigenvalues of sigma1^1/2 sigma2 sigma1^1/2 failed (LAPACKE_dsyevd info %d)", (int)info);
        goto out;
    }
    double trsq = 0.0;
    for (size_t k = 0; k < D; k++) trsq += sqrt(w[k] > 0.0 ? w[k] : 0.0);
    double f = diff + tr1 + tr2 - 2.0 * trsq;
    if (f < 0.0) {
        double scale = diff + fabs(tr1) + fabs(tr2);
        if (f < -1e-6 * (scale > 1.0 ? scale : 1.0)) {
            rc = DD2_FAIL(st, DD2_ERR_INPUT, "FID: negative value %.6g: a covariance is not positive semi-definite", f);
            goto out;
        }
        f = 0.0; /* round-off */
    }
    *fid = f;
out:
    free(V);
    return rc;
}

int dd2_fid_distance(const dd2_fid_stats *a, const dd2_fid_stats *b, double *fid, dd2_status *st) {
    if (!a->mu || !b->mu) return DD2_FAIL(st, DD2_ERR_RUNTIME, "FID: empty statistics");
    if (a->extractor_checksum != b->extractor_checksum)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "FID statistics come from different feature extractors: '%s' (checksum 0x%08x%s%s) vs "
                        "'%s' (checksum 0x%08x%s%s); recompute the reference statistics (`dd2 fid-stats`) with the "
                        "same feature network",
                        a->extractor, (unsigned)a->extractor_checksum, a->source[0] ? ", " : "", a->source,
                        b->extractor, (unsigned)b->extractor_checksum, b->source[0] ? ", " : "", b->source);
    if (a->dim != b->dim)
        return DD2_FAIL(st, DD2_ERR_INPUT, "FID statistics of different dimensions (%d and %d)", a->dim, b->dim);
    return dd2_fid_frechet(a->mu, a->sigma, b->mu, b->sigma, a->dim, fid, st);
}
