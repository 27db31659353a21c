/* IDX files (LeCun's MNIST format), plain or gzipped, and the Fashion-MNIST loader.
 *
 * An IDX file is: a big-endian u32 magic 0x0000TTNN (TT = element type, NN = number of dims),
 * NN big-endian u32 dims, then prod(dims) elements, row-major. Only unsigned bytes (TT = 0x08)
 * are supported: 0x00000803 = uint8 [N,H,W] images, 0x00000801 = uint8 [N] labels.
 * Files are read through zlib (gzopen/gzread), so both .gz and uncompressed files work.
 *
 * Errors (all DD2_ERR_INPUT, the file named in the message):
 *   missing / unreadable file;  bad magic;  unsupported type or ndim;
 *   truncated: the gzip stream ends early or the payload is shorter than the header promises
 *     ("truncated: expected X bytes, got Y", X/Y counting uncompressed bytes incl. header);
 *   extra bytes after the promised payload;  corrupt gzip data (bad deflate data or CRC).
 * Out of memory / system I/O errors are DD2_ERR_RUNTIME.
 */
#ifndef DD2_IO_IDX_H
#define DD2_IO_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

enum { DD2_IDX_MAX_DIMS = 4 };

typedef struct dd2_idx {
    uint32_t magic;                  /* as read, e.g. 0x00000803 */
    int ndim;                        /* 1..DD2_IDX_MAX_DIMS */
    uint32_t dims[DD2_IDX_MAX_DIMS]; /* dims[0..ndim) */
    size_t count;                    /* prod(dims) = bytes in data */
    uint8_t *data;                   /* [dims...] row-major; owned, free with dd2_idx_free */
} dd2_idx;

/* Read a whole uint8 IDX file (gzipped or not). On success *out owns its data; on failure *out
 * is zeroed (nothing to free). */
int dd2_idx_read(const char *path, dd2_idx *out, dd2_status *st);
void dd2_idx_free(dd2_idx *a);

/* ---- Fashion-MNIST ---- */

#define DD2_FMNIST_DIR "/usr/share/datasets/fashion-mnist" /* Debian: dataset-fashion-mnist */
enum { DD2_FMNIST_H = 28, DD2_FMNIST_W = 28, DD2_FMNIST_CLASSES = 10 };

typedef struct dd2_fmnist {
    uint32_t n;       /* number of examples (60000 train, 10000 test) */
    uint32_t h, w;    /* 28, 28 */
    uint8_t *images;  /* [n,h,w] uint8, 0 = background */
    uint8_t *labels;  /* [n], each < DD2_FMNIST_CLASSES */
} dd2_fmnist;

/* Load split "train" (train-*.gz) or "test" (t10k-*.gz; "t10k" also accepted) from dir
 * (NULL or "" = DD2_FMNIST_DIR): {prefix}-images-idx3-ubyte.gz and {prefix}-labels-idx1-ubyte.gz.
 * Checks magics, 28x28 images, equal image and label counts, n > 0, labels < 10. A missing file
 * gives DD2_ERR_INPUT naming the Debian package dataset-fashion-mnist. On failure *ds is zeroed. */
int dd2_fmnist_load(const char *dir, const char *split, dd2_fmnist *ds, dd2_status *st);
void dd2_fmnist_free(dd2_fmnist *ds);

#endif
