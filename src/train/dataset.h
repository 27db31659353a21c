/* The image dataset named in the config's `data` section (Fashion-MNIST style IDX files).
 *
 * A split is read from data.dir joined with data.{train,test}_images and data.{train,test}_labels
 * (a name starting with '/' is used as is), plain or gzipped (io/idx.h). Shapes:
 *     images  uint8 [N,H,W] (one channel) or [N,H,W,C], with H = W = data.image_size and
 *             C = data.channels (1 for [N,H,W]); channels interleaved, pixel-major
 *     labels  uint8 [N], each < data.n_classes (checked for the first n examples)
 * data.train_limit / data.test_limit (> 0) keep only the first `limit` examples: n = min(N, limit).
 *
 * Errors (DD2_ERR_INPUT, the offending file named in the message): a path too long; a missing,
 * unreadable or malformed IDX file (io/idx.h); images not 3 or 4 dims or labels not 1 dim; an
 * image size other than data.image_size; a channel count other than data.channels; image and
 * label counts that differ; no images; a label not below data.n_classes.
 * Out of memory is DD2_ERR_RUNTIME. On failure *s is zeroed (nothing to free).
 */
#ifndef DD2_TRAIN_DATASET_H
#define DD2_TRAIN_DATASET_H

#include <stddef.h>

#include "core/status.h"
#include "io/config.h"
#include "io/idx.h"

typedef struct dd2_image_split {
    dd2_idx img;     /* images [N,H,W] or [N,H,W,C], all N of the file */
    dd2_idx lab;     /* labels [N] */
    size_t n;        /* examples to use: min(N, limit), >= 1 */
    size_t in_dim;   /* bytes per image: H * W * C */
    char path[1100]; /* the images file, for messages and provenance */
} dd2_image_split;

/* Load the training split (test = 0) or the test split (test = 1) of cfg->data into *s. */
int dd2_dataset_load(const dd2_config *cfg, int test, dd2_image_split *s, dd2_status *st);
/* Free *s and zero it (safe on a zeroed split). */
void dd2_image_split_free(dd2_image_split *s);

#endif
