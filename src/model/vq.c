/* The patch tokenizer: patch layout, codebook, nearest code (GEMM + exact re-check), encode,
 * decode, and distributed k-means. Contracts: model/vq.h; method and determinism: docs/vq.md. */
#include "model/vq.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/rng.h"
#include "io/h5io.h"
#include "model/ops.h"

/* ---- patch geometry ------------------------------------------------------------------------ */

int dd2_vq_geom_init(dd2_vq_geom *g, int image_size, int channels, int patch, dd2_status *st) {
    memset(g, 0, sizeof *g);
    if (image_size < 1 || channels < 1 || patch < 1)
        return DD2_FAIL(st, DD2_ERR_INPUT, "vq: image size %d, channels %d and patch %d must be >= 1", image_size,
                        channels, patch);
    if (image_size % patch != 0)
        return DD2_FAIL(st, DD2_ERR_INPUT, "vq: patch size %d does not divide the image size %d", patch, image_size);
    if ((long long)patch * patch * channels > INT_MAX / 4 ||
        (long long)(image_size / patch) * (image_size / patch) > INT_MAX / 4)
        return DD2_FAIL(st, DD2_ERR_INPUT, "vq: image size %d / patch %d / channels %d too large", image_size, patch,
                        channels);
    g->image_size = image_size;
    g->channels = channels;
    g->patch = patch;
    g->gh = g->gw = image_size / patch;
    g->n_tokens = g->gh * g->gw;
    g->dim = patch * patch * channels;
    return DD2_OK;
}

/* Offset of pixel (row, col) channel 0 of image img in an [n,H,W,ch] array. */
static inline size_t pix_off(const dd2_vq_geom *g, size_t img, int row, int col) {
    size_t H = (size_t)g->image_size;
    return ((img * H + (size_t)row) * H + (size_t)col) * (size_t)g->channels;
}

void dd2_vq_patches_from_u8(const dd2_vq_geom *g, const uint8_t *images, size_t n, float *patches) {
    const int p = g->patch, ch = g->channels, T = g->n_tokens, C = g->dim;
    const size_t rowlen = (size_t)p * (size_t)ch;
    for (size_t i = 0; i < n; i++)
        for (int t = 0; t < T; t++) {
            float *dst = patches + ((size_t)i * (size_t)T + (size_t)t) * (size_t)C;
            int r0 = (t / g->gw) * p, c0 = (t % g->gw) * p;
            for (int a = 0; a < p; a++) {
                const uint8_t *src = images + pix_off(g, i, r0 + a, c0);
                for (size_t k = 0; k < rowlen; k++) dst[(size_t)a * rowlen + k] = (float)src[k] / 127.5f - 1.0f;
            }
        }
}

void dd2_vq_patches_from_f32(const dd2_vq_geom *g, const float *images, size_t n, float *patches) {
    const int p = g->patch, ch = g->channels, T = g->n_tokens, C = g->dim;
    const size_t rowlen = (size_t)p * (size_t)ch;
    for (size_t i = 0; i < n; i++)
        for (int t = 0; t < T; t++) {
            float *dst = patches + ((size_t)i * (size_t)T + (size_t)t) * (size_t)C;
            int r0 = (t / g->gw) * p, c0 = (t % g->gw) * p;
            for (int a = 0; a < p; a++)
                memcpy(dst + (size_t)a * rowlen, images + pix_off(g, i, r0 + a, c0), rowlen * sizeof(float));
        }
}

void dd2_vq_images_from_patches(const dd2_vq_geom *g, const float *patches, size_t n, float *images) {
    const int p = g->patch, ch = g->channels, T = g->n_tokens, C = g->dim;
    const size_t rowlen = (size_t)p * (size_t)ch;
    for (size_t i = 0; i < n; i++)
        for (int t = 0; t < T; t++) {
            const float *src = patches + ((size_t)i * (size_t)T + (size_t)t) * (size_t)C;
            int r0 = (t / g->gw) * p, c0 = (t % g->gw) * p;
            for (int a = 0; a < p; a++)
                memcpy(images + pix_off(g, i, r0 + a, c0), src + (size_t)a * rowlen, rowlen * sizeof(float));
        }
}

/* ---- codebook ------------------------------------------------------------------------------ */

/* Derived arrays of code v; raises max_norm2 when needed. */
static void refresh_code(dd2_vq_codebook *cb, int v) {
    const size_t C = (size_t)cb->dim, o = (size_t)v * C;
    double s = 0;
    for (size_t j = 0; j < C; j++) {
        double x = cb->c[o + j];
        s += x * x;
        cb->neg2c[o + j] = -2.0f * cb->c[o + j];
    }
    cb->norm2[v] = (float)s;
    if (s > cb->max_norm2) cb->max_norm2 = s;
}

void dd2_vq_codebook_refresh(dd2_vq_codebook *cb) {
    cb->max_norm2 = 0;
    for (int v = 0; v < cb->codes; v++) refresh_code(cb, v);
}

int dd2_vq_codebook_init(dd2_vq_codebook *cb, int codes, int dim, const float *c, dd2_status *st) {
    memset(cb, 0, sizeof *cb);
    if (codes < 1 || dim < 1)
        return DD2_FAIL(st, DD2_ERR_INPUT, "vq: codebook size %d x %d: both must be >= 1", codes, dim);
    size_t n = (size_t)codes * (size_t)dim;
    cb->codes = codes;
    cb->dim = dim;
    cb->c = DD2_CALLOC(n, sizeof(float), st);
    cb->neg2c = cb->c ? DD2_CALLOC(n, sizeof(float), st) : NULL;
    cb->norm2 = cb->neg2c ? DD2_CALLOC((size_t)codes, sizeof(float), st) : NULL;
    if (!cb->norm2) {
        dd2_vq_codebook_free(cb);
        return DD2_ERR_RUNTIME;
    }
    if (c) memcpy(cb->c, c, n * sizeof(float));
    dd2_vq_codebook_refresh(cb);
    return DD2_OK;
}

void dd2_vq_codebook_free(dd2_vq_codebook *cb) {
    if (!cb) return;
    free(cb->c);
    free(cb->neg2c);
    free(cb->norm2);
    memset(cb, 0, sizeof *cb);
}

int dd2_vq_codebook_read(const char *path, int expect_codes, int expect_dim, dd2_vq_codebook *cb,
                         dd2_status *st) {
    memset(cb, 0, sizeof *cb);
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_open_read(path, &h, st));
    dd2_h5_shape sh;
    int rc = dd2_h5_get_shape(h, "codebook", &sh, st);
    if (rc == DD2_OK && (sh.rank != 2 || sh.type != DD2_H5_F32 || sh.dims[0] < 1 || sh.dims[1] < 1 ||
                         sh.dims[0] > INT_MAX || sh.dims[1] > INT_MAX)) {
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: dataset 'codebook': expected f32 [V, C] with V, C >= 1, found %s of rank %d",
                      path, dd2_h5_type_name(sh.type), sh.rank);
    }
    int64_t dims[2] = {expect_codes > 0 ? expect_codes : sh.dims[0], expect_dim > 0 ? expect_dim : sh.dims[1]};
    /* the read states the expected shape: a mismatch names expected and found */
    if (rc == DD2_OK) rc = dd2_vq_codebook_init(cb, (int)dims[0], (int)dims[1], NULL, st);
    if (rc == DD2_OK) rc = dd2_h5_read_f32(h, "codebook", 2, dims, cb->c, st);
    if (rc == DD2_OK) {
        size_t n = (size_t)dims[0] * (size_t)dims[1];
        for (size_t i = 0; i < n; i++)
            if (!isfinite(cb->c[i])) {
                rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: dataset 'codebook': non-finite value at code %zu, element %zu",
                              path, i / (size_t)dims[1], i % (size_t)dims[1]);
                break;
            }
    }
    dd2_status tmp;
    dd2_status_clear(&tmp);
    if (rc == DD2_OK) {
        rc = dd2_h5_close(h, st);
    } else {
        dd2_h5_close(h, &tmp);
    }
    if (rc != DD2_OK) {
        dd2_vq_codebook_free(cb);
        return rc;
    }
    dd2_vq_codebook_refresh(cb);
    return DD2_OK;
}

/* ---- nearest code -------------------------------------------------------------------------- */

/* Σ (x_j − c_j)² in double, in a fixed order: four partial sums over j mod 4, then
 * (s0 + s1) + (s2 + s3) (independent chains: several times faster than one chain). */
static inline double exact_dist2(const float *x, const float *c, int C) {
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int j = 0;
    for (; j + 4 <= C; j += 4) {
        double d0 = (double)x[j] - c[j], d1 = (double)x[j + 1] - c[j + 1];
        double d2 = (double)x[j + 2] - c[j + 2], d3 = (double)x[j + 3] - c[j + 3];
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
    }
    for (; j < C; j++) {
        double d = (double)x[j] - c[j];
        s0 += d * d;
    }
    return (s0 + s1) + (s2 + s3);
}

/* The codes whose score r[v] is at most min(r) + margin: their indices into cand (ascending),
 * returns how many. Two vectorisable passes over the row; compiled for AVX-512, AVX2 and
 * baseline x86-64, picked at load time (the results are the same: only comparisons). NaN
 * scores are never candidates; a row without a finite minimum gives every non-NaN score. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
static int scan_row(const float *r, int n, double margin, int *cand) {
    float m[16];
    for (int k = 0; k < 16; k++) m[k] = INFINITY;
    int v = 0;
    for (; v + 16 <= n; v += 16)
        for (int k = 0; k < 16; k++) m[k] = r[v + k] < m[k] ? r[v + k] : m[k];
    for (; v < n; v++) m[0] = r[v] < m[0] ? r[v] : m[0];
    float mn = m[0];
    for (int k = 1; k < 16; k++) mn = m[k] < mn ? m[k] : mn;
    double thr = (double)mn + margin;
    float thr_f = (float)thr; /* compare in float, rounded up so that no candidate is lost */
    if ((double)thr_f < thr) thr_f = nextafterf(thr_f, INFINITY);
    int nc = 0;
    for (v = 0; v + 64 <= n; v += 64) {
        int any = 0;
        for (int k = 0; k < 64; k++) any |= r[v + k] <= thr_f;
        if (!any) continue;
        for (int q = v; q < v + 64; q += 16) {
            int any16 = 0;
            for (int k = 0; k < 16; k++) any16 |= r[q + k] <= thr_f;
            if (!any16) continue;
            for (int k = 0; k < 16; k++)
                if (r[q + k] <= thr_f) cand[nc++] = q + k;
        }
    }
    for (; v < n; v++)
        if (r[v] <= thr_f) cand[nc++] = v;
    return nc;
}

/* A contiguous range of codes with their derived arrays (a whole codebook or a part of one). */
typedef struct code_view {
    const float *c, *neg2c, *norm2;
    double max_norm2; /* an upper bound of norm2 over the range */
    int n, C;
} code_view;

static code_view cb_view(const dd2_vq_codebook *cb, int j0, int j1) {
    code_view v = {cb->c + (size_t)j0 * cb->dim, cb->neg2c + (size_t)j0 * cb->dim, cb->norm2 + j0, cb->max_norm2,
                   j1 - j0, cb->dim};
    return v;
}

/* Nearest code of each row of x [nb,C] (nb <= DD2_VQ_GEMM_ROWS) among the codes of cv, with the
 * scores s [nb, cv->n] = ‖c‖² − 2x·c from one GEMM; see the header comment of model/vq.h. */
static int nearest_block(const code_view *cv, const float *x, size_t nb, float *s, int *cand, size_t row0,
                         int32_t *idx, double *dist2, dd2_status *st) {
    const int V = cv->n, C = cv->C;
    op_matmul_forward(s, x, cv->neg2c, cv->norm2, nb, C, V);
    /* |computed s − exact s| <= (C+3)·u·(‖x‖² + ‖c‖²) per code (u = 2^-24); two codes can be
     * swapped only within twice that. The margin keeps a further factor 2. */
    const double rel = 4.0 * (C + 4) * 0x1p-24;
    for (size_t i = 0; i < nb; i++) {
        const float *xi = x + i * (size_t)C;
        double xn = 0;
        for (int j = 0; j < C; j++) xn += (double)xi[j] * xi[j];
        if (!isfinite(xn))
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "vq: nearest code: row %zu is not finite", row0 + i);
        const float *r = s + i * (size_t)V;
        int nc = scan_row(r, V, rel * (xn + cv->max_norm2), cand);
        int best = -1;
        double bd = INFINITY;
        for (int q = 0; q < nc; q++) {
            double d = exact_dist2(xi, cv->c + (size_t)cand[q] * C, C);
            if (d < bd) {
                bd = d;
                best = cand[q];
            }
        }
        if (best < 0) { /* overflow in the GEMM scores: fall back to the exact scan */
            for (int v = 0; v < V; v++) {
                double d = exact_dist2(xi, cv->c + (size_t)v * C, C);
                if (d < bd) {
                    bd = d;
                    best = v;
                }
            }
        }
        if (best < 0) return DD2_FAIL(st, DD2_ERR_RUNTIME, "vq: nearest code: row %zu has no finite distance", row0 + i);
        idx[i] = best;
        if (dist2) dist2[i] = bd;
    }
    return DD2_OK;
}

int dd2_vq_nearest(const dd2_vq_codebook *cb, const float *x, size_t n, int32_t *idx, double *dist2,
                   dd2_status *st) {
    if (n == 0) return DD2_OK;
    const int V = cb->codes, C = cb->dim;
    /* scores, then the candidate list (V ints) */
    float *s = DD2_MALLOC(((size_t)DD2_VQ_GEMM_ROWS + 1) * (size_t)V * sizeof(float), st);
    if (!s) return DD2_ERR_RUNTIME;
    int *cand = (int *)(s + (size_t)DD2_VQ_GEMM_ROWS * V);
    code_view cv = cb_view(cb, 0, V);
    int rc = DD2_OK;
    for (size_t r0 = 0; r0 < n && rc == DD2_OK; r0 += DD2_VQ_GEMM_ROWS) {
        size_t nb = n - r0 < DD2_VQ_GEMM_ROWS ? n - r0 : DD2_VQ_GEMM_ROWS;
        rc = nearest_block(&cv, x + r0 * (size_t)C, nb, s, cand, r0, idx + r0, dist2 ? dist2 + r0 : NULL, st);
    }
    free(s);
    return rc;
}

int dd2_vq_lookup(const dd2_vq_codebook *cb, const int32_t *idx, size_t n, float *out, dd2_status *st) {
    const size_t C = (size_t)cb->dim;
    for (size_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= cb->codes)
            return DD2_FAIL(st, DD2_ERR_INPUT, "vq: token %zu is %d, outside [0, %d)", i, (int)idx[i], cb->codes);
        memcpy(out + i * C, cb->c + (size_t)idx[i] * C, C * sizeof(float));
    }
    return DD2_OK;
}

/* ---- encode / decode ----------------------------------------------------------------------- */

enum { ENCODE_IMAGES = 256 }; /* images per block in encode/decode */

static int check_geom(const dd2_vq_codebook *cb, const dd2_vq_geom *g, dd2_status *st) {
    if (g->dim != cb->dim || g->n_tokens < 1)
        return DD2_FAIL(st, DD2_ERR_INPUT, "vq: patch geometry (%dx%d patches, %d channels: C = %d) does not match the codebook's C = %d",
                        g->patch, g->patch, g->channels, g->dim, cb->dim);
    return DD2_OK;
}

static int encode_any(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const uint8_t *u8, const float *f32,
                      size_t n, int32_t *tokens, double *sse, dd2_status *st) {
    DD2_TRY(check_geom(cb, g, st));
    const size_t T = (size_t)g->n_tokens, C = (size_t)g->dim, H = (size_t)g->image_size;
    const size_t img_elems = H * H * (size_t)g->channels;
    size_t bn = n < ENCODE_IMAGES ? n : ENCODE_IMAGES;
    if (sse) *sse = 0;
    if (n == 0) return DD2_OK;
    float *patches = DD2_MALLOC(bn * T * C * sizeof(float), st);
    double *d2 = patches ? DD2_MALLOC(bn * T * sizeof(double), st) : NULL;
    int rc = d2 ? DD2_OK : DD2_ERR_RUNTIME;
    double acc = 0;
    for (size_t i0 = 0; i0 < n && rc == DD2_OK; i0 += bn) {
        size_t m = n - i0 < bn ? n - i0 : bn;
        if (u8)
            dd2_vq_patches_from_u8(g, u8 + i0 * img_elems, m, patches);
        else
            dd2_vq_patches_from_f32(g, f32 + i0 * img_elems, m, patches);
        rc = dd2_vq_nearest(cb, patches, m * T, tokens + i0 * T, d2, st);
        for (size_t k = 0; rc == DD2_OK && k < m * T; k++) acc += d2[k];
    }
    if (sse) *sse = acc;
    free(patches);
    free(d2);
    return rc;
}

int dd2_vq_encode_u8(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const uint8_t *images, size_t n,
                     int32_t *tokens, double *sse, dd2_status *st) {
    return encode_any(cb, g, images, NULL, n, tokens, sse, st);
}

int dd2_vq_encode_f32(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const float *images, size_t n,
                      int32_t *tokens, double *sse, dd2_status *st) {
    return encode_any(cb, g, NULL, images, n, tokens, sse, st);
}

int dd2_vq_decode_f32(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const int32_t *tokens, size_t n,
                      float *images, dd2_status *st) {
    DD2_TRY(check_geom(cb, g, st));
    const size_t T = (size_t)g->n_tokens, C = (size_t)g->dim, H = (size_t)g->image_size;
    const size_t img_elems = H * H * (size_t)g->channels;
    if (n == 0) return DD2_OK;
    size_t bn = n < ENCODE_IMAGES ? n : ENCODE_IMAGES;
    float *patches = DD2_MALLOC(bn * T * C * sizeof(float), st);
    if (!patches) return DD2_ERR_RUNTIME;
    for (size_t i = 0; i < n * T; i++)
        if (tokens[i] < 0 || tokens[i] >= cb->codes) {
            free(patches);
            return DD2_FAIL(st, DD2_ERR_INPUT, "vq: decode: image %zu, token %zu is %d, outside [0, %d)", i / T, i % T,
                            (int)tokens[i], cb->codes);
        }
    int rc = DD2_OK;
    for (size_t i0 = 0; i0 < n && rc == DD2_OK; i0 += bn) {
        size_t m = n - i0 < bn ? n - i0 : bn;
        rc = dd2_vq_lookup(cb, tokens + i0 * T, m * T, patches, st);
        if (rc == DD2_OK) dd2_vq_images_from_patches(g, patches, m, images + i0 * img_elems);
    }
    free(patches);
    return rc;
}

int dd2_vq_decode_u8(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const int32_t *tokens, size_t n,
                     uint8_t *images, dd2_status *st) {
    DD2_TRY(check_geom(cb, g, st));
    const size_t H = (size_t)g->image_size, img_elems = H * H * (size_t)g->channels;
    if (n == 0) return DD2_OK;
    size_t bn = n < ENCODE_IMAGES ? n : ENCODE_IMAGES;
    float *buf = DD2_MALLOC(bn * img_elems * sizeof(float), st);
    if (!buf) return DD2_ERR_RUNTIME;
    int rc = DD2_OK;
    for (size_t i0 = 0; i0 < n && rc == DD2_OK; i0 += bn) {
        size_t m = n - i0 < bn ? n - i0 : bn;
        rc = dd2_vq_decode_f32(cb, g, tokens + i0 * (size_t)g->n_tokens, m, buf, st);
        for (size_t k = 0; rc == DD2_OK && k < m * img_elems; k++) {
            double v = ((double)buf[k] + 1.0) * 127.5;
            images[i0 * img_elems + k] = !(v > 0.0) ? 0 : v >= 255.0 ? 255 : (uint8_t)(v + 0.5);
        }
    }
    free(buf);
    return rc;
}

int dd2_vq_recon_mse_u8(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const uint8_t *images, size_t n,
                        double *mse, dd2_status *st) {
    *mse = 0;
    if (n == 0) return DD2_OK;
    DD2_TRY(check_geom(cb, g, st));
    int32_t *tok = DD2_MALLOC(n * (size_t)g->n_tokens * sizeof(int32_t), st);
    if (!tok) return DD2_ERR_RUNTIME;
    double sse = 0;
    int rc = dd2_vq_encode_u8(cb, g, images, n, tok, &sse, st);
    free(tok);
    if (rc == DD2_OK) *mse = sse / ((double)n * (double)g->n_tokens * (double)g->dim);
    return rc;
}

double dd2_vq_mse(const float *a, const float *b, size_t n) {
    if (n == 0) return 0;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return s / (double)n;
}

static void usage_from_counts(const int64_t *counts, int codes, int *used, double *perplexity) {
    int64_t total = 0;
    int u = 0;
    for (int v = 0; v < codes; v++) {
        total += counts[v];
        u += counts[v] > 0;
    }
    double h = 0;
    for (int v = 0; v < codes; v++)
        if (counts[v] > 0) {
            double p = (double)counts[v] / (double)total;
            h -= p * log(p);
        }
    if (used) *used = u;
    if (perplexity) *perplexity = total > 0 ? exp(h) : 0;
}

void dd2_vq_usage(const int32_t *idx, size_t n, int codes, int64_t *counts, int *used, double *perplexity) {
    int64_t *c = counts ? counts : calloc((size_t)codes, sizeof(int64_t));
    if (!c) { /* no memory for the temporary counts: report nothing rather than fail */
        if (used) *used = 0;
        if (perplexity) *perplexity = 0;
        return;
    }
    memset(c, 0, (size_t)codes * sizeof(int64_t));
    for (size_t i = 0; i < n; i++)
        if (idx[i] >= 0 && idx[i] < codes) c[idx[i]]++;
    usage_from_counts(c, codes, used, perplexity);
    if (!counts) free(c);
}

/* ---- k-means ------------------------------------------------------------------------------- */

void dd2_vq_rank_rows(size_t n, int rank, int size, size_t *lo, size_t *hi) {
    size_t nb = (n + DD2_VQ_PART_ROWS - 1) / DD2_VQ_PART_ROWS;
    size_t b0 = nb * (size_t)rank / (size_t)size, b1 = nb * (size_t)(rank + 1) / (size_t)size;
    *lo = b0 * DD2_VQ_PART_ROWS < n ? b0 * DD2_VQ_PART_ROWS : n;
    *hi = b1 * DD2_VQ_PART_ROWS < n ? b1 * DD2_VQ_PART_ROWS : n;
}

typedef struct km_comm {
    MPI_Comm comm; /* MPI_COMM_NULL: alone */
    int rank, size;
} km_comm;

/* Agree on a status across ranks: every rank returns the worst code; a rank that was fine
 * reports that another one failed. */
static int km_agree(const km_comm *k, int rc, dd2_status *st) {
    if (k->comm == MPI_COMM_NULL) return rc;
    int all = rc;
    if (MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, k->comm) != MPI_SUCCESS)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "k-means: MPI_Allreduce failed");
    if (all != DD2_OK && rc == DD2_OK) return DD2_FAIL(st, all, "k-means: another rank failed");
    return all;
}

/* Assign every row of x to its nearest code: own chunk, then MPI_Allgatherv. d2 (may be NULL)
 * receives the exact distances of the own chunk only. */
static int km_assign(const km_comm *k, const dd2_vq_codebook *cb, const float *x, size_t n, int32_t *assign,
                     int *counts, int *displs, dd2_status *st) {
    size_t lo, hi;
    dd2_vq_rank_rows(n, k->rank, k->size, &lo, &hi);
    int rc = dd2_vq_nearest(cb, x + lo * (size_t)cb->dim, hi - lo, assign + lo, NULL, st);
    DD2_TRY(km_agree(k, rc, st));
    if (k->comm == MPI_COMM_NULL || k->size == 1) return DD2_OK;
    if (MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, assign, counts, displs, MPI_INT32_T, k->comm) !=
        MPI_SUCCESS)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "k-means: MPI_Allgatherv of the assignments failed");
    return DD2_OK;
}

/* In patch order, in double: counts, per-code sums (when sums != NULL), per-patch errors (when
 * err != NULL) and the total squared error. Identical on every rank. */
static double km_stats(const dd2_vq_codebook *cb, const float *x, size_t n, const int32_t *assign,
                       int64_t *counts, double *sums, double *err) {
    const int V = cb->codes, C = cb->dim;
    memset(counts, 0, (size_t)V * sizeof(int64_t));
    if (sums) memset(sums, 0, (size_t)V * (size_t)C * sizeof(double));
    double sse = 0;
    for (size_t i = 0; i < n; i++) {
        const int a = assign[i];
        const float *xi = x + i * (size_t)C, *ca = cb->c + (size_t)a * C;
        double e = exact_dist2(xi, ca, C);
        if (sums) {
            double *sa = sums + (size_t)a * C;
            for (int j = 0; j < C; j++) sa[j] += xi[j];
        }
        counts[a]++;
        if (err) err[i] = e;
        sse += e;
    }
    return sse;
}

/* Re-seeding candidates: larger error first, then lower index. */
typedef struct km_cand {
    double err;
    size_t i;
} km_cand;

static inline int cand_before(const km_cand *a, const km_cand *b) {
    return a->err > b->err || (a->err == b->err && a->i < b->i);
}

/* h[0] is the candidate that comes last in the order (the first to drop). */
static void heap_sift_down(km_cand *h, size_t m, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < m && cand_before(&h[w], &h[l])) w = l;
        if (r < m && cand_before(&h[w], &h[r])) w = r;
        if (w == i) return;
        km_cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* The first `want` rows with err > 0 in candidate order (in heap order, not sorted); returns
 * how many there are (<= want). */
static size_t top_candidates(const double *err, size_t n, km_cand *out, size_t want) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(err[i] > 0)) continue;
        km_cand c = {err[i], i};
        if (m < want) {
            out[m++] = c;
            if (m == want)
                for (size_t j = m / 2; j-- > 0;) heap_sift_down(out, m, j);
        } else if (cand_before(&c, &out[0])) {
            out[0] = c;
            heap_sift_down(out, m, 0);
        }
    }
    return m;
}

/* Move dead codes onto far-away patches, farthest first, among a pool of the rows with the
 * largest errors (max(4096, 64 per dead code) of them): each dead code in turn takes the pool
 * row with the largest error (lowest index on ties) whose cluster keeps at least one other row;
 * that row leaves its cluster for the dead code, and every pool row's error becomes
 * min(error, distance² to it), so the next dead code goes elsewhere (not to a copy of the same
 * patch or a neighbour). Updates assign, counts and sums as if the row had been assigned to the
 * dead code. Deterministic (done the same way on every rank). *moved = codes re-seeded. */
static int km_reseed(const dd2_vq_codebook *cb, const float *x, size_t n, int32_t *assign, int64_t *counts,
                     double *sums, const double *err, int *moved, dd2_status *st) {
    const int V = cb->codes, C = cb->dim;
    *moved = 0;
    size_t dead = 0;
    for (int v = 0; v < V; v++) dead += counts[v] == 0;
    if (dead == 0) return DD2_OK;
    size_t want = 64 * dead > 4096 ? 64 * dead : 4096;
    km_cand *pool = DD2_MALLOC(want * sizeof *pool, st);
    if (!pool) return DD2_ERR_RUNTIME;
    size_t m = top_candidates(err, n, pool, want);
    for (int v = 0; v < V; v++) {
        if (counts[v] != 0) continue;
        size_t best = m;
        for (size_t q = 0; q < m; q++)
            if (pool[q].err > 0 && counts[assign[pool[q].i]] > 1 && (best == m || cand_before(&pool[q], &pool[best])))
                best = q;
        if (best == m) break; /* no row left that a dead code could take */
        const size_t i = pool[best].i;
        const float *xb = x + i * (size_t)C;
        const int a = assign[i];
        counts[a]--;
        counts[v] = 1;
        double *sa = sums + (size_t)a * C, *sv = sums + (size_t)v * C;
        for (int j = 0; j < C; j++) {
            sa[j] -= xb[j];
            sv[j] = xb[j];
        }
        assign[i] = v;
        (*moved)++;
        for (size_t q = 0; q < m; q++) {
            if (!(pool[q].err > 0)) continue;
            double d = exact_dist2(x + pool[q].i * (size_t)C, xb, C);
            if (d < pool[q].err) pool[q].err = d;
        }
        pool[best].err = 0;
    }
    free(pool);
    return DD2_OK;
}

/* The deterministic sample the initialisation draws from: indices into x, ascending. */
static int km_sample(size_t n, size_t s, uint64_t seed, uint32_t **out, dd2_status *st) {
    *out = NULL;
    if (n > UINT32_MAX) return DD2_FAIL(st, DD2_ERR_INPUT, "k-means: sampling needs n < 2^32 (n = %zu)", n);
    uint32_t *perm = DD2_MALLOC(n * sizeof(uint32_t), st);
    if (!perm) return DD2_ERR_RUNTIME;
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    dd2_rng r;
    dd2_rng_init(&r, seed, DD2_RNG_KMEANS, 0, 0);
    for (size_t i = 0; i < s; i++) { /* partial Fisher-Yates */
        size_t j = i + dd2_rng_below(&r, (uint32_t)(n - i));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    /* ascending order: counting pass over a bitmap keeps it O(n) */
    unsigned char *mark = DD2_CALLOC(n, 1, st);
    if (!mark) {
        free(perm);
        return DD2_ERR_RUNTIME;
    }
    for (size_t i = 0; i < s; i++) mark[perm[i]] = 1;
    for (size_t i = 0, k = 0; i < n; i++)
        if (mark[i]) perm[k++] = (uint32_t)i;
    free(mark);
    *out = perm;
    return DD2_OK;
}

/* Random initialisation: codes = distinct random rows of xs (cycled when S < V). */
static void km_init_random(const float *xs, size_t S, dd2_rng *r, dd2_vq_codebook *cb, uint32_t *perm) {
    const int V = cb->codes, C = cb->dim;
    for (size_t i = 0; i < S; i++) perm[i] = (uint32_t)i;
    size_t take = S < (size_t)V ? S : (size_t)V;
    for (size_t i = 0; i < take; i++) {
        size_t j = i + dd2_rng_below(r, (uint32_t)(S - i));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int v = 0; v < V; v++)
        memcpy(cb->c + (size_t)v * C, xs + (size_t)perm[(size_t)v % take] * C, (size_t)C * sizeof(float));
}

/* D² as a fixed-point integer (units of 1/scale): sums of these are exact, so the sampling does
 * not depend on the order in which they are added. */
static inline uint64_t d2_fixed(double d2, double scale) { return (uint64_t)(d2 * scale + 0.5); }

/* k-means++ (D² sampling) on xs [S,C], run by one process. Lazy and exact: rows are grouped in
 * blocks of DD2_VQ_GEMM_ROWS; each block remembers how many codes its D² values have seen and
 * an upper bound U_b of its D² sum (fixed point, exact). A draw t in [0, ΣU) picks a block; a
 * stale block is first brought up to date with one GEMM against the codes it has not seen
 * (dd2_vq_nearest's exact method) and the draw is kept only if t still falls inside its new sum,
 * else drawn again (rejection sampling, so row i is chosen with probability D²_i / Σ D²). Only
 * blocks that are drawn are updated, and each update handles many codes in one GEMM. */
static int km_init_pp(const float *xs, size_t S, dd2_rng *r, dd2_vq_codebook *cb, dd2_status *st) {
    const int V = cb->codes, C = cb->dim;
    const size_t B = DD2_VQ_GEMM_ROWS, nb = (S + B - 1) / B;
    double *d2 = DD2_MALLOC(S * sizeof(double), st);
    uint64_t *U = d2 ? DD2_MALLOC(nb * sizeof(uint64_t), st) : NULL;
    int *seen = U ? DD2_MALLOC(nb * sizeof(int), st) : NULL;
    float *s = seen ? DD2_MALLOC((B + 1) * (size_t)V * sizeof(float), st) : NULL; /* + candidates */
    int32_t *bi = s ? DD2_MALLOC(B * sizeof(int32_t), st) : NULL;
    double *bd = bi ? DD2_MALLOC(B * sizeof(double), st) : NULL;
    int rc = bd ? DD2_OK : DD2_ERR_RUNTIME;
    if (rc != DD2_OK) goto done;
    cb->max_norm2 = 0;
    size_t pick = dd2_rng_below(r, (uint32_t)S);
    double scale = 1;
    uint64_t total = 0;
    for (int k = 0; k < V; k++) {
        if (k > 0) { /* draw code k */
            for (;;) {
                double u = dd2_rng_uniform(r);
                if (total == 0) { /* every row coincides with a chosen code: any row will do */
                    pick = dd2_rng_below(r, (uint32_t)S);
                    break;
                }
                uint64_t t = (uint64_t)(u * (double)total), before = 0;
                if (t >= total) t = total - 1;
                size_t b = 0;
                while (b + 1 < nb && t >= before + U[b]) before += U[b++];
                size_t i0 = b * B, m = S - i0 < B ? S - i0 : B;
                if (seen[b] < k) { /* bring the block up to date */
                    code_view cv = cb_view(cb, seen[b], k);
                    rc = nearest_block(&cv, xs + i0 * (size_t)C, m, s, (int *)(s + B * (size_t)V), i0, bi, bd, st);
                    if (rc != DD2_OK) goto done;
                    uint64_t T = 0;
                    for (size_t i = 0; i < m; i++) {
                        if (bd[i] < d2[i0 + i]) d2[i0 + i] = bd[i];
                        T += d2_fixed(d2[i0 + i], scale);
                    }
                    total = total - U[b] + T;
                    U[b] = T;
                    seen[b] = k;
                    if (t - before >= T) continue; /* rejected: draw again */
                }
                uint64_t acc = before;
                pick = i0 + m - 1;
                for (size_t i = 0; i < m; i++) {
                    acc += d2_fixed(d2[i0 + i], scale);
                    if (acc > t) {
                        pick = i0 + i;
                        break;
                    }
                }
                break;
            }
        }
        memcpy(cb->c + (size_t)k * C, xs + pick * (size_t)C, (size_t)C * sizeof(float));
        refresh_code(cb, k);
        if (k == 0) { /* D² to the first code, and the fixed-point scale: Σ D² * scale < 2^52 */
            double sum = 0;
            for (size_t i = 0; i < S; i++) sum += d2[i] = exact_dist2(xs + i * (size_t)C, cb->c, C);
            int ex = 0;
            if (sum > 0) {
                frexp(sum, &ex); /* sum < 2^ex */
                scale = ldexp(1.0, 52 - ex);
            }
            total = 0;
            for (size_t b = 0; b < nb; b++) {
                size_t i0 = b * B, i1 = i0 + B < S ? i0 + B : S;
                U[b] = 0;
                for (size_t i = i0; i < i1; i++) U[b] += d2_fixed(d2[i], scale);
                total += U[b];
                seen[b] = 1;
            }
        }
    }
done:
    free(d2);
    free(U);
    free(seen);
    free(s);
    free(bi);
    free(bd);
    return rc;
}

int dd2_kmeans(const float *x, size_t n, const dd2_kmeans_opts *o, dd2_vq_codebook *cb, int32_t *assign_out,
               dd2_kmeans_result *res, dd2_status *st) {
    memset(res, 0, sizeof *res);
    const int V = cb->codes, C = cb->dim;
    if (n < 1 || o->codes != V || V < 1 || o->iters < 0)
        return DD2_FAIL(st, DD2_ERR_INPUT, "k-means: need n >= 1 rows (got %zu), codes = codebook size (%d vs %d), iters >= 0",
                        n, o->codes, V);
    if (n > (size_t)INT_MAX || (size_t)V * (size_t)C > (size_t)INT_MAX)
        return DD2_FAIL(st, DD2_ERR_INPUT, "k-means: at most %d rows and %d codebook elements (got %zu, %d x %d)",
                        INT_MAX, INT_MAX, n, V, C);
    km_comm k = {o->comm, 0, 1};
    if (k.comm != MPI_COMM_NULL) {
        MPI_Comm_rank(k.comm, &k.rank);
        MPI_Comm_size(k.comm, &k.size);
    }
    double t0 = dd2_now();
    int32_t *assign = DD2_MALLOC(n * sizeof(int32_t), st);
    int64_t *counts = assign ? DD2_MALLOC((size_t)V * sizeof(int64_t), st) : NULL;
    double *sums = counts ? DD2_MALLOC((size_t)V * (size_t)C * sizeof(double), st) : NULL;
    double *err = sums ? DD2_MALLOC(n * sizeof(double), st) : NULL;
    int *gcnt = err ? DD2_MALLOC(2 * (size_t)k.size * sizeof(int), st) : NULL;
    uint32_t *sample = NULL;
    float *xs_copy = NULL;
    int rc = gcnt ? DD2_OK : DD2_ERR_RUNTIME;
    rc = km_agree(&k, rc, st);
    if (rc != DD2_OK) goto done;
    int *gdis = gcnt + k.size;
    for (int q = 0; q < k.size; q++) {
        size_t a, b;
        dd2_vq_rank_rows(n, q, k.size, &a, &b);
        gdis[q] = (int)a;
        gcnt[q] = (int)(b - a);
    }

    /* ---- initialisation ---- */
    size_t S = (o->sample == 0 || o->sample >= n) ? n : o->sample;
    const float *xs = x;
    if (S < n) {
        rc = km_sample(n, S, o->seed, &sample, st);
        if (rc == DD2_OK && !(xs_copy = DD2_MALLOC(S * (size_t)C * sizeof(float), st))) rc = DD2_ERR_RUNTIME;
        rc = km_agree(&k, rc, st);
        if (rc != DD2_OK) goto done;
        for (size_t i = 0; i < S; i++)
            memcpy(xs_copy + i * (size_t)C, x + (size_t)sample[i] * C, (size_t)C * sizeof(float));
        xs = xs_copy;
    }
    dd2_rng r;
    dd2_rng_init(&r, o->seed, DD2_RNG_KMEANS, 1, 0);
    if (o->init == DD2_KMEANS_INIT_RANDOM) {
        if (!sample && !(sample = DD2_MALLOC(S * sizeof(uint32_t), st))) rc = DD2_ERR_RUNTIME;
        rc = km_agree(&k, rc, st);
        if (rc != DD2_OK) goto done;
        km_init_random(xs, S, &r, cb, sample);
    } else if (o->init == DD2_KMEANS_INIT_GIVEN) {
        /* start from the caller's codebook */
    } else if (o->init == DD2_KMEANS_INIT_PP) {
        /* one process draws the codes, the others receive them */
        rc = km_agree(&k, k.rank == 0 ? km_init_pp(xs, S, &r, cb, st) : DD2_OK, st);
        if (rc != DD2_OK) goto done;
        if (k.comm != MPI_COMM_NULL && k.size > 1 &&
            MPI_Bcast(cb->c, V * C, MPI_FLOAT, 0, k.comm) != MPI_SUCCESS) {
            rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "k-means++: MPI_Bcast of the codebook failed");
            goto done;
        }
    } else {
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "k-means: unknown initialisation %d", (int)o->init);
        goto done;
    }
    free(xs_copy);
    xs_copy = NULL;
    free(sample);
    sample = NULL;
    dd2_vq_codebook_refresh(cb);
    res->seconds_init = dd2_now() - t0;

    /* ---- Lloyd iterations ---- */
    double t1 = dd2_now();
    for (int it = 1; it <= o->iters; it++) {
        double ti = dd2_now();
        rc = km_assign(&k, cb, x, n, assign, gcnt, gdis, st);
        if (rc != DD2_OK) goto done;
        double ta = dd2_now();
        double sse = km_stats(cb, x, n, assign, counts, sums, err);
        dd2_debug("k-means: iteration %d: assignment %.3fs, statistics %.3fs", it, ta - ti, dd2_now() - ta);
        dd2_kmeans_iter_info info = {.iter = it, .iters = o->iters, .mse = sse / ((double)n * C)};
        for (int v = 0; v < V; v++) info.used += counts[v] > 0;
        info.dead = V - info.used;
        if (it == 1) res->mse_init = info.mse;
        if (info.dead > 0) {
            double tr = dd2_now();
            rc = km_agree(&k, km_reseed(cb, x, n, assign, counts, sums, err, &info.reseeded, st), st);
            if (rc != DD2_OK) goto done;
            res->reseeded += info.reseeded;
            dd2_debug("k-means: iteration %d: %d dead codes, %d re-seeded in %.3fs", it, info.dead, info.reseeded,
                      dd2_now() - tr);
        }
        for (int v = 0; v < V; v++) {
            if (counts[v] == 0) continue;
            double cnt = (double)counts[v];
            for (int j = 0; j < C; j++) cb->c[(size_t)v * C + j] = (float)(sums[(size_t)v * C + j] / cnt);
        }
        dd2_vq_codebook_refresh(cb);
        info.seconds = dd2_now() - ti;
        if (o->on_iter) {
            rc = km_agree(&k, o->on_iter(o->on_iter_ctx, &info, st), st);
            if (rc != DD2_OK) goto done;
        }
    }

    /* ---- final assignment ---- */
    rc = km_assign(&k, cb, x, n, assign, gcnt, gdis, st);
    if (rc != DD2_OK) goto done;
    double sse = km_stats(cb, x, n, assign, counts, NULL, NULL);
    res->mse = sse / ((double)n * C);
    if (o->iters == 0) res->mse_init = res->mse;
    usage_from_counts(counts, V, &res->used, &res->perplexity);
    res->seconds_iters = dd2_now() - t1;
    if (assign_out) memcpy(assign_out, assign, n * sizeof(int32_t));
done:
    free(assign);
    free(counts);
    free(sums);
    free(err);
    free(gcnt);
    free(sample);
    free(xs_copy);
    return rc;
}
