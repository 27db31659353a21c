/* PNG image grids (libpng): write sample grids, read PNGs back.
 *
 * Pixels are 8-bit, 1 channel (grayscale) or 3 (RGB). Input images come as uint8 or as float in
 * [-1, 1] (the models' range), mapped by dd2_png_unit_to_u8. Files are written atomically:
 * to "<path>.tmp", fsync, rename over <path>, fsync of the directory (best effort), so a reader
 * never sees a partial PNG and a crash leaves at most a stale .tmp.
 *
 * Grid layout (dd2_grid): image k goes to cell (row k / cols, col k % cols); each image is
 * upscaled by `scale` (nearest neighbour); a border of `pad` output pixels of value pad_value
 * surrounds every cell (outer border included), and cells with no image are pad_value too:
 *     width  = cols * w * scale + (cols + 1) * pad
 *     height = rows * h * scale + (rows + 1) * pad
 * (e.g. one row per class: rows = classes, cols = samples per class, images ordered by class).
 *
 * Errors: bad arguments / unreadable, invalid or truncated PNG -> DD2_ERR_INPUT;
 * failure to create / write / rename the file, out of memory -> DD2_ERR_RUNTIME.
 */
#ifndef DD2_IO_PNG_IO_H
#define DD2_IO_PNG_IO_H

#include <stdint.h>

#include "core/status.h"

typedef struct dd2_grid {
    int rows;          /* >= 0; 0 = ceil(n / cols) */
    int cols;          /* >= 0; 0 = ceil(sqrt(n)) */
    int pad;           /* border width in output pixels, >= 0 */
    uint8_t pad_value; /* border gray level (every channel) */
    int scale;         /* integer upscaling >= 1 (0 = 1) */
    int planar;        /* 0: each image is [h,w,c] (interleaved); 1: [c,h,w] (PyTorch layout) */
} dd2_grid;

/* Float pixel -> 8 bits: round((x + 1) * 127.5), computed in double, clamped to [0, 255];
 * so -1 -> 0, 0 -> 128, 1 -> 255; NaN -> 0. */
static inline uint8_t dd2_png_unit_to_u8(float x) {
    double v = ((double)x + 1.0) * 127.5;
    if (!(v > 0.0)) return 0;
    if (v >= 255.0) return 255;
    return (uint8_t)(v + 0.5);
}

/* Resolve rows/cols/scale of *g for n images of h x w and compute the output size.
 * Checks n >= 1, h, w >= 1, pad >= 0, scale >= 0, n <= rows * cols, size <= 1e6 x 1e6 and
 * < 2^31 bytes. Any output pointer may be NULL. */
int dd2_grid_layout(int n, int h, int w, int c, const dd2_grid *g, int *rows, int *cols,
                    int *height, int *width, dd2_status *st);

/* imgs: n images, each [h,w,c] (or [c,h,w] when g->planar), c = 1 or 3, contiguous. */
int dd2_png_write_grid_u8(const char *path, const uint8_t *imgs, int n, int h, int w, int c,
                          const dd2_grid *g, dd2_status *st);
int dd2_png_write_grid_f32(const char *path, const float *imgs, int n, int h, int w, int c,
                           const dd2_grid *g, dd2_status *st);

/* One image [h,w,c], c = 1 or 3, written atomically as is. */
int dd2_png_write(const char *path, const uint8_t *pix, int h, int w, int c, dd2_status *st);

typedef struct dd2_png_image {
    int h, w, c;   /* c = 1 (gray) or 3 (RGB) */
    uint8_t *data; /* [h,w,c]; owned, free with dd2_png_image_free */
} dd2_png_image;

/* Read any PNG as 8-bit gray or RGB: palette -> RGB, 1/2/4-bit gray -> 8-bit, 16-bit -> 8-bit,
 * alpha dropped, interlacing handled. Reads through IEND, so truncation and CRC errors in any
 * chunk are DD2_ERR_INPUT; images over 2^30 bytes are refused. On failure *img is zeroed. */
int dd2_png_read(const char *path, dd2_png_image *img, dd2_status *st);
void dd2_png_image_free(dd2_png_image *img);

#endif
