#include "io/png_io.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PNG_MAX_SIDE 1000000     /* libpng's default user limit */
#define PNG_MAX_BYTES (1L << 30) /* refuse larger images on read */

/* ---- libpng error handling: messages into a buffer, then longjmp to the setjmp in the
 * function that made the libpng calls (see write_rows / read_rows). ---- */

typedef struct png_err {
    char msg[256];
} png_err;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_err *e = png_get_error_ptr(png);
    if (e) snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (e.g. unknown chunks) are not errors */
}

/* ---- grid layout and composition ---- */

int dd2_grid_layout(int n, int h, int w, int c, const dd2_grid *g, int *rows, int *cols,
                    int *height, int *width, dd2_status *st) {
    if (n < 1 || h < 1 || w < 1 || (c != 1 && c != 3))
        return DD2_FAIL(st, DD2_ERR_INPUT, "PNG grid: bad image shape n=%d h=%d w=%d c=%d "
                        "(need n, h, w >= 1 and c = 1 or 3)", n, h, w, c);
    if (g->rows < 0 || g->cols < 0 || g->pad < 0 || g->scale < 0)
        return DD2_FAIL(st, DD2_ERR_INPUT, "PNG grid: negative rows/cols/pad/scale (%d/%d/%d/%d)",
                        g->rows, g->cols, g->pad, g->scale);
    long nc = g->cols, nr = g->rows, s = g->scale ? g->scale : 1;
    if (nc == 0 && nr == 0) {
        nc = (long)ceil(sqrt((double)n));
        while (nc * nc < n) nc++;
    } else if (nc == 0) {
        nc = (n + nr - 1) / nr;
    }
    if (nr == 0) nr = (n + nc - 1) / nc;
    if ((long)n > nr * nc)
        return DD2_FAIL(st, DD2_ERR_INPUT, "PNG grid: %d images do not fit %ld rows x %ld cols", n,
                        nr, nc);
    double H = (double)nr * h * s + (double)(nr + 1) * g->pad;
    double W = (double)nc * w * s + (double)(nc + 1) * g->pad;
    if (H > PNG_MAX_SIDE || W > PNG_MAX_SIDE || H * W * c >= 2147483648.0)
        return DD2_FAIL(st, DD2_ERR_INPUT, "PNG grid: %.0f x %.0f pixels is too large", H, W);
    if (rows) *rows = (int)nr;
    if (cols) *cols = (int)nc;
    if (height) *height = (int)H;
    if (width) *width = (int)W;
    return DD2_OK;
}

/* The source images: exactly one of u8 / f32 is set. */
typedef struct grid_src {
    const uint8_t *u8;
    const float *f32;
    int h, w, c, planar;
} grid_src;

static inline uint8_t src_pixel(const grid_src *s, int k, int y, int x, int ch) {
    size_t per = (size_t)s->h * s->w * s->c;
    size_t off = s->planar ? ((size_t)ch * s->h + y) * s->w + x : ((size_t)y * s->w + x) * s->c + ch;
    size_t i = (size_t)k * per + off;
    return s->u8 ? s->u8[i] : dd2_png_unit_to_u8(s->f32[i]);
}

/* Fill canvas [H,W,c] with the grid. */
static void compose(const grid_src *s, int n, int cols, int pad, uint8_t pad_value, int scale,
                    uint8_t *canvas, int H, int W) {
    int c = s->c, cw = s->w * scale + pad, chh = s->h * scale + pad; /* cell pitch */
    memset(canvas, pad_value, (size_t)H * W * c);
    for (int k = 0; k < n; k++) {
        int y0 = pad + (k / cols) * chh, x0 = pad + (k % cols) * cw;
        for (int y = 0; y < s->h * scale; y++) {
            uint8_t *row = canvas + ((size_t)(y0 + y) * W + x0) * c;
            for (int x = 0; x < s->w * scale; x++)
                for (int ch = 0; ch < c; ch++) row[(size_t)x * c + ch] = src_pixel(s, k, y / scale, x / scale, ch);
        }
    }
}

/* ---- atomic PNG file write ---- */

/* All libpng write calls; returns 0, or -1 after a libpng error (message in the error ptr). */
static int write_rows(png_structp png, png_infop info, FILE *f, const uint8_t *pix, int h, int w,
                      int c) {
    if (setjmp(png_jmpbuf(png))) return -1;
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8,
                 c == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, pix + (size_t)y * w * c);
    png_write_end(png, NULL);
    return 0;
}

static int write_png_stream(FILE *f, const char *path, const uint8_t *pix, int h, int w, int c,
                            dd2_status *st) {
    png_err err = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, on_png_error,
                                              on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: libpng: cannot create write struct", path);
    }
    int rc = write_rows(png, info, f, pix, h, w, c);
    png_destroy_write_struct(&png, &info);
    if (rc != 0) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: libpng: %s", path, err.msg);
    return DD2_OK;
}

/* fsync the directory holding path so the rename is durable (best effort: errors ignored). */
static void sync_parent_dir(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

/* Write pix [h,w,c] to path via path.tmp + fsync + rename. */
static int save_png_atomic(const char *path, const uint8_t *pix, int h, int w, int c,
                           dd2_status *st) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return DD2_FAIL(st, DD2_ERR_INPUT, "PNG path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = write_png_stream(f, tmp, pix, h, w, c, st);
    if (rc == DD2_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: write/fsync failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && rc == DD2_OK)
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: close failed: %s", tmp, strerror(errno));
    if (rc == DD2_OK && rename(tmp, path) != 0)
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc != DD2_OK) {
        unlink(tmp);
        return rc;
    }
    sync_parent_dir(path);
    return DD2_OK;
}

static int write_grid(const char *path, const grid_src *s, int n, const dd2_grid *g,
                      dd2_status *st) {
    int rows, cols, H, W;
    DD2_TRY_CTX(dd2_grid_layout(n, s->h, s->w, s->c, g, &rows, &cols, &H, &W, st), st, "%s", path);
    uint8_t *canvas = DD2_MALLOC((size_t)H * W * s->c, st);
    if (!canvas) return DD2_ERR_RUNTIME;
    compose(s, n, cols, g->pad, g->pad_value, g->scale ? g->scale : 1, canvas, H, W);
    int rc = save_png_atomic(path, canvas, H, W, s->c, st);
    free(canvas);
    return rc;
}

int dd2_png_write_grid_u8(const char *path, const uint8_t *imgs, int n, int h, int w, int c,
                          const dd2_grid *g, dd2_status *st) {
    grid_src s = {imgs, NULL, h, w, c, g->planar};
    return write_grid(path, &s, n, g, st);
}

int dd2_png_write_grid_f32(const char *path, const float *imgs, int n, int h, int w, int c,
                           const dd2_grid *g, dd2_status *st) {
    grid_src s = {NULL, imgs, h, w, c, g->planar};
    return write_grid(path, &s, n, g, st);
}

int dd2_png_write(const char *path, const uint8_t *pix, int h, int w, int c, dd2_status *st) {
    if (h < 1 || w < 1 || (c != 1 && c != 3) || h > PNG_MAX_SIDE || w > PNG_MAX_SIDE)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: bad PNG shape h=%d w=%d c=%d", path, h, w, c);
    return save_png_atomic(path, pix, h, w, c, st);
}

/* ---- reading ---- */

typedef struct png_read_out {
    int h, w, c;
    uint8_t *data;
    png_bytep *rows;
    int unsupported, no_memory; /* why read_rows refused */
} png_read_out;

/* All libpng read calls (signature already consumed); 0 on success, -1 on a libpng error or a
 * refusal (unsupported / no_memory set). Results go through *o, which survives the longjmp. */
static int read_rows(png_structp png, png_infop info, FILE *f, png_read_out *o) {
    if (setjmp(png_jmpbuf(png))) return -1;
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, ctype = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, NULL, NULL, NULL);
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    if ((ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png); /* also drops the alpha that expanding tRNS would add */
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    o->c = c;
    if ((c != 1 && c != 3) || rowbytes != (size_t)w * c || (double)rowbytes * h > PNG_MAX_BYTES) {
        o->unsupported = 1;
        return -1;
    }
    o->h = (int)h;
    o->w = (int)w;
    o->data = malloc(rowbytes * h); /* libpng guarantees w, h >= 1 */
    o->rows = malloc(sizeof(png_bytep) * h);
    if (!o->data || !o->rows) {
        o->no_memory = 1;
        return -1;
    }
    for (png_uint_32 y = 0; y < h; y++) o->rows[y] = o->data + (size_t)y * rowbytes;
    png_read_image(png, o->rows);
    png_read_end(png, NULL);
    return 0;
}

static int read_png_stream(FILE *f, const char *path, png_read_out *o, dd2_status *st) {
    png_byte sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8) != 0)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: not a PNG file (bad signature)", path);
    png_err err = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, on_png_error,
                                             on_png_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: libpng: cannot create read struct", path);
    }
    int rc = read_rows(png, info, f, o);
    png_destroy_read_struct(&png, &info, NULL);
    if (rc == 0) return DD2_OK;
    if (o->no_memory) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: out of memory", path);
    if (o->unsupported)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: unsupported PNG (%d channels after conversion, "
                        "or larger than %ld bytes)", path, o->c, (long)PNG_MAX_BYTES);
    return DD2_FAIL(st, DD2_ERR_INPUT, "%s: invalid or truncated PNG (libpng: %s)", path, err.msg);
}

int dd2_png_read(const char *path, dd2_png_image *img, dd2_status *st) {
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f) return DD2_FAIL(st, DD2_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    png_read_out o;
    memset(&o, 0, sizeof o);
    int rc = read_png_stream(f, path, &o, st);
    fclose(f);
    free(o.rows);
    if (rc != DD2_OK) {
        free(o.data);
        return rc;
    }
    img->h = o.h;
    img->w = o.w;
    img->c = o.c;
    img->data = o.data;
    return DD2_OK;
}

void dd2_png_image_free(dd2_png_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}
