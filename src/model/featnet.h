/* The FID feature network: a small MLP classifier whose penultimate activations are the features.
 *
 *     x [N,in]  --fc1-->  [N,hidden]  --GELU-->  --fc2-->  [N,dim]  --GELU--> = features
 *               --head--> logits [N,classes]
 *
 * Inputs are images flattened to `in` values in [-1,1]; uint8 pixels map as x = p/127.5 - 1
 * (dd2_featnet_pixel). Weights are PyTorch-layout [out,in] matrices in one flat parameter
 * table (model/params.h): "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "head.weight",
 * "head.bias". Trained with softmax cross-entropy and AdamW (model/optim.h); the training is
 * deterministic for a given seed and BLAS thread count (Philox streams, core/rng.h).
 *
 * The feature-extractor checksum identifies the weights: CRC-32 (zlib) over every tensor's float32
 * values as little-endian bytes, tensors in the order above, chained (padding excluded). FID
 * statistics carry it, and two statistics are only compared when their checksums agree.
 *
 * File (dd2_featnet_save / _load), HDF5 via io/h5io.h:
 *     params/<tensor name>        f32 datasets, [out,in] or [out]
 *     root attributes: format = "dd2-featnet-v1", name (dd2_featnet.name), activation = "gelu",
 *       in_dim, hidden, dim, classes (int64), feature_extractor_checksum (int64 holding the u32),
 *       test_accuracy (f64, fraction in [0,1]; -1 unknown), train_epochs, train_batch,
 *       train_seed, train_n (int64; 0 unknown), train_lr (f64; 0 unknown)
 * Loading checks the format, the shapes and the recomputed checksum (mismatch: DD2_ERR_INPUT).
 *
 * Not thread-safe: a network owns a forward workspace (grown on demand). Library code: every
 * function returns a status, nothing exits. docs/fid.md describes the network and its accuracy.
 */
#ifndef DD2_MODEL_FEATNET_H
#define DD2_MODEL_FEATNET_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/params.h"

enum {
    DD2_FEATNET_HIDDEN = 512,   /* default width of the first hidden layer */
    DD2_FEATNET_MAX_CLASSES = 256 /* labels are uint8 */
};

#define DD2_FEATNET_FORMAT "dd2-featnet-v1"

/* uint8 pixel -> network input in [-1,1] (0 -> -1, 255 -> 1). */
static inline float dd2_featnet_pixel(uint8_t p) { return (float)((double)p / 127.5 - 1.0); }

typedef struct dd2_featnet {
    int in_dim, hidden, dim, classes;
    char name[96];                   /* "mlp784-512-128-10-gelu" */
    dd2_param_table tab;
    float *params;                   /* [tab.numel] */
    int t_w1, t_b1, t_w2, t_b2, t_w3, t_b3; /* tensor indices in tab */
    uint32_t checksum;               /* feature-extractor checksum of params (kept up to date by
                                        init / train / load; call dd2_featnet_update_checksum after
                                        editing params by hand) */
    double test_accuracy;            /* fraction in [0,1], or -1 when unknown */
    /* how it was trained (0 when unknown / loaded from elsewhere): stored in the file */
    int train_epochs, train_batch;
    double train_lr;
    int64_t train_seed, train_n;
    /* forward workspace: rows of capacity ws_rows */
    float *ws;
    size_t ws_rows;
} dd2_featnet;

/* Build a network with freshly initialised weights (Xavier-uniform matrices, zero biases, from
 * the RNG streams (seed, DD2_RNG_INIT, hash(tensor name), 0)). 1 <= dims; 2 <= classes <= 256.
 * On failure *net is zeroed (nothing to free). */
int dd2_featnet_init(dd2_featnet *net, int in_dim, int hidden, int dim, int classes, uint64_t seed,
                     dd2_status *st);
void dd2_featnet_free(dd2_featnet *net);

/* The checksum of the current parameters (see above); _update stores it in net->checksum. */
uint32_t dd2_featnet_compute_checksum(const dd2_featnet *net);
void dd2_featnet_update_checksum(dd2_featnet *net);

/* Forward pass on x [n,in] (floats in [-1,1]): feat [n,dim] (penultimate activations) and/or
 * logits [n,classes]; either output may be NULL. Any n (processed in chunks). */
int dd2_featnet_forward(dd2_featnet *net, const float *x, size_t n, float *feat, float *logits,
                        dd2_status *st);
/* The same from uint8 pixels img [n,in] (converted with dd2_featnet_pixel). */
int dd2_featnet_forward_u8(dd2_featnet *net, const uint8_t *img, size_t n, float *feat, float *logits,
                           dd2_status *st);

/* A labelled data set for training and accuracy: exactly one of u8 / f32 is set, rows of in_dim
 * values; labels [n] < classes. */
typedef struct dd2_featnet_data {
    const uint8_t *u8;
    const float *f32;
    const uint8_t *labels;
    size_t n;
} dd2_featnet_data;

/* Fraction of rows whose arg-max logit equals the label (ties: lowest index). */
int dd2_featnet_accuracy(dd2_featnet *net, const dd2_featnet_data *data, double *accuracy, dd2_status *st);

typedef struct dd2_featnet_train_opts {
    int epochs;            /* >= 1 */
    int batch;             /* >= 1; the last partial batch of an epoch is dropped when n >= batch */
    double lr;             /* peak learning rate: linear warm-up over the first 5% of the steps,
                              then cosine decay to lr/100 */
    double weight_decay;   /* AdamW decoupled decay on the matrices (betas 0.9, 0.999, eps 1e-8) */
    uint64_t seed;         /* data order: streams (seed, DD2_RNG_DATA_ORDER, epoch, DD2_FEATNET_RNG_STEP) */
    const dd2_featnet_data *eval; /* optional: accuracy logged after each epoch (NULL: none) */
    const char *label;     /* progress label (NULL: "featnet") */
    int quiet;             /* 1: no progress / log lines (tests) */
} dd2_featnet_train_opts;

/* The `step` word of the featnet's data-order streams, so they differ from other stages'. */
#define DD2_FEATNET_RNG_STEP 0xFEA7u

/* Train in place with mean softmax cross-entropy. *final_loss (may be NULL) = mean loss over the
 * last epoch. Fails (DD2_ERR_RUNTIME) if the loss becomes non-finite. Updates net->checksum and
 * the train_* fields (train_n = data->n). */
int dd2_featnet_train(dd2_featnet *net, const dd2_featnet_data *data, const dd2_featnet_train_opts *opts,
                      double *final_loss, dd2_status *st);

/* Save atomically (io/h5io.h) / load. Load fills a fresh *net (on failure *net is zeroed). */
int dd2_featnet_save(const dd2_featnet *net, const char *path, dd2_status *st);
int dd2_featnet_load(const char *path, dd2_featnet *net, dd2_status *st);

#endif
