/* The patch tokenizer: non-overlapping p×p patches of an image, a codebook of V patch vectors
 * learned by k-means, encode (nearest code) and decode (place each code's patch). docs/vq.md
 * describes the method, the determinism rules and the files written by `dd2 vq`.
 *
 * Pixel values: uint8 images map to [-1, 1] by x/127.5 - 1 (computed in float as
 * (float)x / 127.5f - 1.0f); float images are expected in [-1, 1] already.
 *
 * Patch layout (dd2_vq_geom): an image [H,W,ch] (H = W = image_size, interleaved channels;
 * ch = 1 for Fashion-MNIST, where [H,W,1] = [H,W]) is cut into gh × gw patches, gh = gw =
 * image_size / patch. Token t = row·gw + col (raster order) covers pixel rows row·p .. row·p+p-1
 * and columns col·p .. col·p+p-1; its vector has C = p·p·ch elements, element (i·p + j)·ch + k =
 * pixel (row·p + i, col·p + j), channel k (row-major within the patch, channels innermost).
 *
 * Nearest code (dd2_vq_nearest, used by encode, snap, and k-means assignment): squared
 * distances are first computed as one GEMM per block of rows, s[v] = ‖c_v‖² − 2·x·c_v (OpenBLAS
 * sgemm, ‖x‖² is a constant per row), and every code whose s is within a rounding-error bound
 * of the row minimum is re-checked with the exact distance Σ (x_i − c_vi)² in double; the
 * result is the code with the smallest exact distance, ties going to the lowest index. So the
 * answer is the true nearest code (up to double rounding) and does not depend on how rows are
 * blocked, on BLAS threads, or on the number of MPI ranks.
 *
 * Errors: bad arguments / shapes / token values -> DD2_ERR_INPUT; out of memory, non-finite
 * inputs, MPI failures -> DD2_ERR_RUNTIME. Nothing here exits. Not thread-safe across calls that
 * share a codebook only in that they read it (reading from several threads is fine).
 */
#ifndef DD2_MODEL_VQ_H
#define DD2_MODEL_VQ_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* ---- patch geometry ------------------------------------------------------------------------ */

typedef struct dd2_vq_geom {
    int image_size; /* H = W */
    int channels;   /* ch */
    int patch;      /* p */
    int gh, gw;     /* token grid: image_size / patch each */
    int n_tokens;   /* gh·gw tokens per image */
    int dim;        /* C = p·p·ch elements per token */
} dd2_vq_geom;

/* Fill *g; DD2_ERR_INPUT unless image_size, channels, patch >= 1 and patch divides image_size
 * (and the sizes fit in int). */
int dd2_vq_geom_init(dd2_vq_geom *g, int image_size, int channels, int patch, dd2_status *st);

/* patches [n·T, C] (T = n_tokens; rows image-major, then raster token order) from n images
 * [n,H,W,ch]: uint8 pixels are mapped to [-1, 1]; float pixels are copied. */
void dd2_vq_patches_from_u8(const dd2_vq_geom *g, const uint8_t *images, size_t n, float *patches);
void dd2_vq_patches_from_f32(const dd2_vq_geom *g, const float *images, size_t n, float *patches);
/* The inverse: n images [n,H,W,ch] (float) from patches [n·T, C]. */
void dd2_vq_images_from_patches(const dd2_vq_geom *g, const float *patches, size_t n, float *images);

/* ---- codebook ------------------------------------------------------------------------------ */

typedef struct dd2_vq_codebook {
    int codes;       /* V */
    int dim;         /* C */
    float *c;        /* [V,C] the code vectors */
    /* derived by dd2_vq_codebook_refresh (used by dd2_vq_nearest): */
    float *neg2c;    /* [V,C] = -2·c (exact) */
    float *norm2;    /* [V] ‖c_v‖² (summed in double, rounded) */
    double max_norm2;
} dd2_vq_codebook;

/* Allocate a V×C codebook; copy `c` [V,C] into it when non-NULL (else zeros), then refresh. */
int dd2_vq_codebook_init(dd2_vq_codebook *cb, int codes, int dim, const float *c, dd2_status *st);
/* Recompute neg2c, norm2, max_norm2 after cb->c was changed. */
void dd2_vq_codebook_refresh(dd2_vq_codebook *cb);
void dd2_vq_codebook_free(dd2_vq_codebook *cb); /* zeroes *cb; safe on a zeroed struct */

/* Read dataset "codebook" (f32 [V,C]) from an HDF5 file written by h5io (checksummed). When
 * expect_codes / expect_dim are > 0 the shape must match them: otherwise DD2_ERR_INPUT
 * "PATH: dataset 'codebook': shape mismatch: expected f32 [512, 16], found ...". A missing
 * file or dataset, a bad checksum, or non-finite values are DD2_ERR_INPUT too. */
int dd2_vq_codebook_read(const char *path, int expect_codes, int expect_dim, dd2_vq_codebook *cb,
                         dd2_status *st);

/* ---- encode / decode ----------------------------------------------------------------------- */

/* Rows per GEMM block in dd2_vq_nearest (scratch: rows × V floats). */
enum { DD2_VQ_GEMM_ROWS = 256 };

/* idx[i] = index of the code nearest to x[i] [n,C] (C = cb->dim; see the header comment);
 * dist2 [n] (may be NULL) = that exact squared distance in double. A non-finite x row is
 * DD2_ERR_RUNTIME naming the row. This is also the nearest-code "snap" of continuous vectors. */
int dd2_vq_nearest(const dd2_vq_codebook *cb, const float *x, size_t n, int32_t *idx, double *dist2,
                   dd2_status *st);

/* out [n,C] = the code vectors of idx [n]; an index outside [0,V) is DD2_ERR_INPUT. */
int dd2_vq_lookup(const dd2_vq_codebook *cb, const int32_t *idx, size_t n, float *out, dd2_status *st);

/* tokens [n, T] of n images (uint8 [n,H,W,ch] or float [n,H,W,ch] in [-1,1]); *sse (may be
 * NULL) = Σ over all pixels of (pixel − decoded pixel)² in [-1,1] units (double). The geometry's
 * dim must equal cb->dim. Works in blocks of images (bounded memory). */
int dd2_vq_encode_u8(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const uint8_t *images, size_t n,
                     int32_t *tokens, double *sse, dd2_status *st);
int dd2_vq_encode_f32(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const float *images, size_t n,
                      int32_t *tokens, double *sse, dd2_status *st);

/* images [n,H,W,ch] from tokens [n,T]: each token's code vector placed at its patch. Float
 * output is the code values themselves (in [-1,1] for a codebook learned from images); uint8
 * output maps them with dd2_png_unit_to_u8's rule (round((x+1)·127.5), clamped). */
int dd2_vq_decode_f32(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const int32_t *tokens, size_t n,
                      float *images, dd2_status *st);
int dd2_vq_decode_u8(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const int32_t *tokens, size_t n,
                     uint8_t *images, dd2_status *st);

/* Reconstruction MSE of n images, per pixel element, in [-1,1] units: encode then decode,
 * mean of squared differences (double). */
int dd2_vq_recon_mse_u8(const dd2_vq_codebook *cb, const dd2_vq_geom *g, const uint8_t *images, size_t n,
                        double *mse, dd2_status *st);

/* Mean of (a[i] − b[i])² over n elements, accumulated in double (0 for n = 0). */
double dd2_vq_mse(const float *a, const float *b, size_t n);

/* Code-usage statistics of n indices in [0,V): counts [V] (may be NULL), *used = codes with a
 * non-zero count, *perplexity = exp(−Σ p_v ln p_v) of the empirical distribution (1 ≤ ppl ≤ V). */
void dd2_vq_usage(const int32_t *idx, size_t n, int codes, int64_t *counts, int *used, double *perplexity);

/* ---- k-means ------------------------------------------------------------------------------- */

typedef enum dd2_kmeans_init {
    DD2_KMEANS_INIT_PP = 0,    /* k-means++ (D² sampling) */
    DD2_KMEANS_INIT_RANDOM = 1, /* V distinct random patches */
    DD2_KMEANS_INIT_GIVEN = 2   /* start from the codebook passed in (warm start, tests) */
} dd2_kmeans_init;

/* What one Lloyd iteration saw (for progress and metrics). */
typedef struct dd2_kmeans_iter_info {
    int iter;          /* 1..iters */
    int iters;
    double mse;        /* mean squared error per element of the assignment made in this
                          iteration (i.e. of the codebook entering it) */
    int used;          /* codes with at least one patch in that assignment */
    int dead;          /* codes with none */
    int reseeded;      /* dead codes moved onto far-away patches in this iteration */
    double seconds;    /* wall time of this iteration */
} dd2_kmeans_iter_info;

typedef int (*dd2_kmeans_iter_fn)(void *ctx, const dd2_kmeans_iter_info *info, dd2_status *st);

typedef struct dd2_kmeans_opts {
    int codes;             /* V >= 1 */
    int iters;             /* Lloyd iterations >= 0 */
    dd2_kmeans_init init;
    size_t sample;         /* patches the initialisation draws from (0 or >= n: all) */
    uint64_t seed;         /* streams (seed, DD2_RNG_KMEANS, 0|1, 0) */
    MPI_Comm comm;         /* ranks that share the work (each holds all of x); MPI_COMM_NULL:
                              this process alone, no MPI calls */
    dd2_kmeans_iter_fn on_iter; /* called on every rank after each iteration (may be NULL);
                                   a non-zero return on any rank stops k-means on every rank */
    void *on_iter_ctx;
} dd2_kmeans_opts;

typedef struct dd2_kmeans_result {
    double mse_init;       /* MSE of the initial codebook */
    double mse;            /* MSE of the final codebook (with the final assignment) */
    int used;              /* codes used by the final assignment */
    double perplexity;     /* of the final assignment's code distribution */
    long reseeded;         /* dead-code re-seeds over all iterations */
    double seconds_init, seconds_iters;
} dd2_kmeans_result;

/* k-means of x [n,C] (every rank of opts->comm passes the same x) into cb (initialised by the
 * caller with V = opts->codes, C = dim; overwritten unless init is GIVEN).
 * Initialisation on a deterministic sample of opts->sample rows (stream (seed, KMEANS, 0, 0)):
 *   k-means++: D² sampling (stream (seed, KMEANS, 1, 0)), exact but lazy (rows in blocks, a
 *     block's D² brought up to date by one GEMM only when a draw lands in it; rejection
 *     sampling keeps the distribution exact), computed on rank 0 and broadcast;
 *   random: V distinct random rows (same stream), computed on every rank.
 * Then opts->iters Lloyd iterations, each:
 *   1. assign every row to its nearest code (dd2_vq_nearest; rows split into contiguous chunks
 *      of whole DD2_VQ_PART_ROWS blocks, one per rank; the int32 assignments are gathered on
 *      every rank with MPI_Allgatherv);
 *   2. on every rank, in row order, in double: the squared errors (-> MSE), counts and sums;
 *   3. dead codes (count 0) are re-seeded farthest-first: each takes the row with the largest
 *      error (error > 0, from a cluster of two or more rows), which moves to it, and the other
 *      rows' errors shrink to their distance to it (so the next dead code goes elsewhere);
 *   4. code v = sum_v / count_v (a code still empty keeps its value).
 * A final assignment gives res->mse/used/perplexity; assign [n] (may be NULL) receives it (on
 * every rank). The codebook is bitwise identical for any number of ranks and any BLAS thread
 * count. n >= 1 and codes >= 1 are required (n < codes is allowed: extra codes duplicate). */
int dd2_kmeans(const float *x, size_t n, const dd2_kmeans_opts *opts, dd2_vq_codebook *cb, int32_t *assign,
               dd2_kmeans_result *res, dd2_status *st);

/* Rows [*lo, *hi) of n handled by `rank` of `size` in dd2_kmeans (contiguous chunks made of
 * whole blocks of DD2_VQ_PART_ROWS rows, the last chunk taking the remainder). Exposed so that
 * callers can split encode work the same way. */
enum { DD2_VQ_PART_ROWS = 4096 };
void dd2_vq_rank_rows(size_t n, int rank, int size, size_t *lo, size_t *hi);

#endif
