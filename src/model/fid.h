/* FID statistics and the Fréchet distance.
 *
 * Statistics of a feature set X [n,D]: mu [D] = mean, sigma [D,D] = unbiased covariance
 * (divided by n - 1), both in double. They are accumulated in batches, each batch centred on its
 * own mean (computed in double) and merged with the pairwise update of Chan, Golub & LeVeque
 * (mean += δ·nb/n, M2 += M2_b + δδᵀ·na·nb/n): as stable as a two-pass computation, and the
 * features never need to be stored. Accumulators can be merged (e.g. across ranks).
 *
 *     FID = ‖μ1 − μ2‖² + Tr(Σ1) + Tr(Σ2) − 2 Tr((Σ1^½ Σ2 Σ1^½)^½)
 *
 * in double with LAPACKE_dsyevd: Σ1^½ = V diag(sqrt(max(λ,0))) Vᵀ from the eigendecomposition of
 * Σ1 (negative round-off eigenvalues clamped to 0); M = Σ1^½ Σ2 Σ1^½ is symmetrised and
 * Tr(M^½) = Σ sqrt(max(λ_M, 0)). A slightly negative result (round-off) is clamped to 0.
 *
 * Statistics carry the name and checksum of the feature extractor (model/featnet.h) that produced
 * them; dd2_fid_distance refuses to compare statistics whose checksums differ.
 *
 * File (dd2_fid_stats_save / _load), HDF5 via io/h5io.h:
 *     mu [D] f64, sigma [D,D] f64 (each with the usual checksum attribute)
 *     root attributes: format = "dd2-fid-stats-v1", feature_extractor (string),
 *       feature_extractor_checksum (int64 holding the u32), n_samples (int64), dim (int64),
 *       source (string: what the images were, e.g. "fashion-mnist test")
 * Loading checks the format, shapes, n_samples >= 2, finite values and symmetry of sigma.
 */
#ifndef DD2_MODEL_FID_H
#define DD2_MODEL_FID_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/featnet.h"

#define DD2_FID_STATS_FORMAT "dd2-fid-stats-v1"
enum { DD2_FID_NAME_MAX = 128, DD2_FID_SOURCE_MAX = 256 };

typedef struct dd2_fid_stats {
    int dim;                              /* D */
    int64_t n;                            /* number of samples (>= 2) */
    double *mu;                           /* [D] */
    double *sigma;                        /* [D,D], symmetric, both triangles filled */
    char extractor[DD2_FID_NAME_MAX];     /* feature-extractor name */
    uint32_t extractor_checksum;
    char source[DD2_FID_SOURCE_MAX];      /* free text, may be empty */
} dd2_fid_stats;

/* Allocate mu and sigma (zeroed) for dimension dim >= 1; other fields cleared. */
int dd2_fid_stats_alloc(dd2_fid_stats *s, int dim, dd2_status *st);
void dd2_fid_stats_free(dd2_fid_stats *s);

/* ---- accumulation ---- */

typedef struct dd2_fid_acc {
    int dim;
    int64_t n;
    double *mean;   /* [D] */
    double *m2;     /* [D,D] Σ (x-mean)(x-mean)ᵀ, upper triangle (row-major i <= j) kept */
    double *bmean;  /* work: batch mean [D], batch M2 [D,D], centred rows [chunk,D] */
    double *bm2;
    double *buf;
    size_t chunk;
} dd2_fid_acc;

int dd2_fid_acc_init(dd2_fid_acc *acc, int dim, dd2_status *st);
void dd2_fid_acc_free(dd2_fid_acc *acc);
/* Add rows of x [rows, D] (row-major). */
int dd2_fid_acc_add_f32(dd2_fid_acc *acc, const float *x, size_t rows, dd2_status *st);
int dd2_fid_acc_add_f64(dd2_fid_acc *acc, const double *x, size_t rows, dd2_status *st);
/* acc += other (same dim). */
int dd2_fid_acc_merge(dd2_fid_acc *acc, const dd2_fid_acc *other, dd2_status *st);
/* Allocate and fill *out (needs n >= 2, else DD2_ERR_INPUT); extractor may be NULL (""). */
int dd2_fid_acc_finish(const dd2_fid_acc *acc, const char *extractor, uint32_t checksum, dd2_fid_stats *out,
                       dd2_status *st);

/* ---- statistics of images through a feature network ---- */

/* Features of img [n, net->in_dim] (uint8 pixels, or floats in [-1,1]) in batches of `batch`
 * rows (0: 500), then their statistics, labelled with net->name and net->checksum. */
int dd2_fid_stats_images_u8(dd2_featnet *net, const uint8_t *img, size_t n, size_t batch, dd2_fid_stats *out,
                            dd2_status *st);
int dd2_fid_stats_images_f32(dd2_featnet *net, const float *x, size_t n, size_t batch, dd2_fid_stats *out,
                             dd2_status *st);
/* Add the features of a batch of images to an accumulator (for callers that generate images in
 * batches, e.g. the eval stage); finish with net->name and net->checksum. */
int dd2_fid_acc_add_images_f32(dd2_fid_acc *acc, dd2_featnet *net, const float *x, size_t n, dd2_status *st);
int dd2_fid_acc_add_images_u8(dd2_fid_acc *acc, dd2_featnet *net, const uint8_t *img, size_t n, dd2_status *st);

/* ---- files ---- */

/* Save atomically; load into a fresh *s (on failure *s is zeroed). */
int dd2_fid_stats_save(const char *path, const dd2_fid_stats *s, dd2_status *st);
int dd2_fid_stats_load(const char *path, dd2_fid_stats *s, dd2_status *st);

/* ---- the distance ---- */

/* FID between two Gaussians given by mu [D], sigma [D,D] (symmetric; only finite values). */
int dd2_fid_frechet(const double *mu1, const double *sigma1, const double *mu2, const double *sigma2, int dim,
                    double *fid, dd2_status *st);
/* FID between two statistics: same dimension and the same feature-extractor checksum, else
 * DD2_ERR_INPUT naming both extractors. */
int dd2_fid_distance(const dd2_fid_stats *a, const dd2_fid_stats *b, double *fid, dd2_status *st);

#endif
