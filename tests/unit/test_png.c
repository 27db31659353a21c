/* Tests for src/io/png_io: grid round trips (every pixel, padding included), gray and RGB,
 * uint8 and float, atomic writes, and bad / truncated PNGs read without crashing. */
#include "io/png_io.h"

#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_files.h"
#include "test_util.h"

/* The expected grid pixel, computed from the output coordinates back to the source (the
 * inverse of how the writer composes). */
typedef struct {
    const uint8_t *u8;
    const float *f32;
    int n, h, w, c, planar, rows, cols, pad, scale;
    uint8_t pad_value;
} grid_case;

static uint8_t ref_from_float(float x) {
    double v = ((double)x + 1.0) * 127.5;
    if (isnan(v) || v <= 0) return 0;
    if (v >= 255) return 255;
    return (uint8_t)floor(v + 0.5);
}

static uint8_t expected_pixel(const grid_case *g, int Y, int X, int ch) {
    int ph = g->h * g->scale + g->pad, pw = g->w * g->scale + g->pad;
    if (Y < g->pad || X < g->pad) return g->pad_value;
    int row = (Y - g->pad) / ph, col = (X - g->pad) / pw;
    int iy = (Y - g->pad) % ph, ix = (X - g->pad) % pw;
    if (iy >= g->h * g->scale || ix >= g->w * g->scale) return g->pad_value;
    int k = row * g->cols + col;
    if (row >= g->rows || col >= g->cols || k >= g->n) return g->pad_value;
    int y = iy / g->scale, x = ix / g->scale;
    size_t per = (size_t)g->h * g->w * g->c;
    size_t off = g->planar ? ((size_t)ch * g->h + y) * g->w + x : ((size_t)y * g->w + x) * g->c + ch;
    return g->u8 ? g->u8[k * per + off] : ref_from_float(g->f32[k * per + off]);
}

/* Write the grid, read it back, compare every pixel. rows/cols in *g are the expected layout;
 * pass_rows/pass_cols are what the writer is given (0 = automatic). */
static void roundtrip(const grid_case *g, int pass_rows, int pass_cols, const char *name) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_grid spec = {pass_rows, pass_cols, g->pad, g->pad_value, g->scale, g->planar};
    const char *path = tf_path(name);
    int rc = g->u8 ? dd2_png_write_grid_u8(path, g->u8, g->n, g->h, g->w, g->c, &spec, &st)
                   : dd2_png_write_grid_f32(path, g->f32, g->n, g->h, g->w, g->c, &spec, &st);
    CHECK_MSG(rc == DD2_OK, "%s: write rc=%d %s", name, rc, st.msg);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK_MSG(access(tmp, F_OK) != 0, "%s: %s left behind", name, tmp);
    dd2_png_image im;
    rc = dd2_png_read(path, &im, &st);
    CHECK_MSG(rc == DD2_OK, "%s: read rc=%d %s", name, rc, st.msg);
    if (rc != DD2_OK) return;
    int H = g->rows * g->h * g->scale + (g->rows + 1) * g->pad;
    int W = g->cols * g->w * g->scale + (g->cols + 1) * g->pad;
    CHECK_MSG(im.h == H && im.w == W && im.c == g->c, "%s: got %dx%dx%d, expected %dx%dx%d", name,
              im.h, im.w, im.c, H, W, g->c);
    if (im.h == H && im.w == W && im.c == g->c) {
        long bad = 0;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int ch = 0; ch < g->c; ch++)
                    bad += im.data[((size_t)y * W + x) * g->c + ch] != expected_pixel(g, y, x, ch);
        CHECK_MSG(bad == 0, "%s: %ld of %d pixel values differ", name, bad, H * W * g->c);
    }
    int lr, lc, lh, lw;
    CHECK_OK(dd2_grid_layout(g->n, g->h, g->w, g->c, &spec, &lr, &lc, &lh, &lw, &st), &st);
    CHECK(lr == g->rows && lc == g->cols && lh == H && lw == W);
    dd2_png_image_free(&im);
    CHECK(im.data == NULL);
    unlink(path);
}

/* One 1x1 pixel, scale 2, pad 1: the whole file spelled out. */
TEST(tiny_grid_literal) {
    dd2_status st;
    dd2_status_clear(&st);
    uint8_t px = 7;
    dd2_grid g = {1, 1, 1, 9, 2, 0};
    CHECK_OK(dd2_png_write_grid_u8(tf_path("tiny.png"), &px, 1, 1, 1, 1, &g, &st), &st);
    dd2_png_image im;
    CHECK_OK(dd2_png_read(tf_path("tiny.png"), &im, &st), &st);
    static const uint8_t want[16] = {9, 9, 9, 9, 9, 7, 7, 9, 9, 7, 7, 9, 9, 9, 9, 9};
    CHECK(im.h == 4 && im.w == 4 && im.c == 1 && im.data && memcmp(im.data, want, 16) == 0);
    dd2_png_image_free(&im);
    unlink(tf_path("tiny.png"));
}

TEST(gray_u8_grid_roundtrip) {
    enum { N = 7, H = 5, W = 4 };
    static uint8_t img[N * H * W];
    for (int i = 0; i < N * H * W; i++) img[i] = (uint8_t)(i * 37 + 11);
    /* 2 x 4 cells with one empty, padding 2 of value 200, upscaled x3 */
    grid_case g = {img, NULL, N, H, W, 1, 0, 2, 4, 2, 3, 200};
    roundtrip(&g, 2, 4, "gray.png");
    /* rows automatic (ceil(7/3) = 3), no padding, no scaling */
    grid_case g2 = {img, NULL, N, H, W, 1, 0, 3, 3, 0, 1, 0};
    roundtrip(&g2, 0, 3, "gray2.png");
    /* fully automatic: ceil(sqrt(7)) = 3 columns, 3 rows */
    roundtrip(&g2, 0, 0, "gray3.png");
    /* one row per class, like the sample grids: 10 classes x 4 samples of 28 x 28 */
    static uint8_t cls[40 * 28 * 28];
    for (int i = 0; i < 40 * 28 * 28; i++) cls[i] = (uint8_t)((i / 784) * 25 + (i % 28));
    grid_case g3 = {cls, NULL, 40, 28, 28, 1, 0, 10, 4, 1, 1, 255};
    roundtrip(&g3, 10, 4, "classes.png");
}

TEST(rgb_grid_roundtrip) {
    enum { N = 5, H = 6, W = 3, C = 3 };
    static uint8_t u8[N * H * W * C];
    static float f[N * H * W * C];
    for (int i = 0; i < N * H * W * C; i++) {
        u8[i] = (uint8_t)(i * 101 + 3);
        f[i] = -1.25f + 2.5f * (float)((i * 7919) % 1000) / 999.0f; /* beyond [-1,1] too */
    }
    f[0] = NAN;
    f[1] = INFINITY;
    f[2] = -INFINITY;
    f[3] = 0.0f;
    f[4] = -1.0f;
    f[5] = 1.0f;
    grid_case g = {u8, NULL, N, H, W, C, 0, 2, 3, 1, 2, 17};
    roundtrip(&g, 2, 3, "rgb_u8_hwc.png");
    g.planar = 1;
    roundtrip(&g, 2, 3, "rgb_u8_chw.png");
    grid_case gf = {NULL, f, N, H, W, C, 1, 1, 5, 3, 1, 64};
    roundtrip(&gf, 1, 5, "rgb_f32_chw.png");
    gf.planar = 0;
    roundtrip(&gf, 1, 5, "rgb_f32_hwc.png");
    grid_case gg = {NULL, f, N * 3, H, W, 1, 0, 4, 4, 2, 2, 128};
    roundtrip(&gg, 4, 0, "gray_f32.png");
}

TEST(float_mapping) {
    CHECK(dd2_png_unit_to_u8(-1.0f) == 0);
    CHECK(dd2_png_unit_to_u8(0.0f) == 128);
    CHECK(dd2_png_unit_to_u8(1.0f) == 255);
    CHECK(dd2_png_unit_to_u8(-7.0f) == 0 && dd2_png_unit_to_u8(7.0f) == 255);
    CHECK(dd2_png_unit_to_u8(NAN) == 0);
    CHECK(dd2_png_unit_to_u8(INFINITY) == 255 && dd2_png_unit_to_u8(-INFINITY) == 0);
    int bad = 0;
    for (int k = 0; k < 256; k++) /* exact levels k/127.5 - 1 map back to k */
        bad += dd2_png_unit_to_u8((float)(k / 127.5 - 1.0)) != k;
    CHECK_MSG(bad == 0, "%d levels do not round trip", bad);
}

TEST(single_image_and_overwrite) {
    dd2_status st;
    dd2_status_clear(&st);
    uint8_t a[2 * 3 * 3], b[2 * 3 * 3];
    for (int i = 0; i < 18; i++) {
        a[i] = (uint8_t)i;
        b[i] = (uint8_t)(255 - i);
    }
    const char *p = tf_path("one.png");
    CHECK_OK(dd2_png_write(p, a, 2, 3, 3, &st), &st);
    CHECK_OK(dd2_png_write(p, b, 2, 3, 3, &st), &st); /* replaces the file */
    dd2_png_image im;
    CHECK_OK(dd2_png_read(p, &im, &st), &st);
    CHECK(im.h == 2 && im.w == 3 && im.c == 3 && im.data && memcmp(im.data, b, 18) == 0);
    dd2_png_image_free(&im);
    unlink(p);
}

TEST(write_errors) {
    dd2_status st;
    dd2_status_clear(&st);
    uint8_t px[64] = {0};
    dd2_grid g = {2, 2, 1, 0, 1, 0};
    const char *nodir = tf_path("no-such-dir/x.png");
    CHECK(dd2_png_write_grid_u8(nodir, px, 4, 2, 2, 1, &g, &st) == DD2_ERR_RUNTIME);
    CHECK_MSG(strstr(st.msg, "x.png.tmp: cannot create"), "%s", st.msg);
    CHECK(access(nodir, F_OK) != 0);
    const char *p = tf_path("bad.png");
    CHECK(dd2_png_write_grid_u8(p, px, 5, 2, 2, 1, &g, &st) == DD2_ERR_INPUT); /* 5 > 2x2 */
    CHECK_MSG(strstr(st.msg, "do not fit"), "%s", st.msg);
    CHECK(dd2_png_write_grid_u8(p, px, 4, 2, 2, 2, &g, &st) == DD2_ERR_INPUT); /* c = 2 */
    CHECK(dd2_png_write_grid_u8(p, px, 0, 2, 2, 1, &g, &st) == DD2_ERR_INPUT);
    dd2_grid neg = {2, 2, -1, 0, 1, 0};
    CHECK(dd2_png_write_grid_u8(p, px, 4, 2, 2, 1, &neg, &st) == DD2_ERR_INPUT);
    dd2_grid huge = {1, 1, 0, 0, 600000, 0};
    CHECK(dd2_png_write_grid_u8(p, px, 1, 2, 2, 1, &huge, &st) == DD2_ERR_INPUT);
    CHECK(dd2_png_write(p, px, 0, 2, 1, &st) == DD2_ERR_INPUT);
    CHECK(access(p, F_OK) != 0);
}

/* Truncated, corrupted and non-PNG files: an input error each time, never a crash. */
TEST(read_bad_files) {
    dd2_status st;
    dd2_status_clear(&st);
    enum { N = 12, H = 17, W = 13 };
    static uint8_t img[N * H * W * 3];
    for (int i = 0; i < N * H * W * 3; i++) img[i] = (uint8_t)((i * 2654435761u) >> 24);
    dd2_grid g = {3, 4, 1, 0, 1, 0};
    const char *good = tf_path("good.png");
    CHECK_OK(dd2_png_write_grid_u8(good, img, N, H, W, 3, &g, &st), &st);
    size_t n;
    uint8_t *raw = tf_read_file(good, &n);
    CHECK(n > 1000 && n < 64 * 1024);
    if (!raw) return;
    dd2_png_image im;
    size_t cuts[] = {0, 4, 7, 8, 12, 16, 33, 40, 60, n / 2, n - 20, n - 13, n - 12, n - 5, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        const char *p = tf_path("cut.png");
        CHECK(tf_write_file(p, raw, cuts[i]) == 0);
        int rc = dd2_png_read(p, &im, &st);
        CHECK_MSG(rc == DD2_ERR_INPUT && im.data == NULL, "cut at %zu of %zu: rc=%d", cuts[i], n, rc);
        CHECK_MSG(strstr(st.msg, cuts[i] < 8 ? "not a PNG" : "invalid or truncated PNG"),
                  "cut at %zu: %s", cuts[i], st.msg);
    }
    size_t flips[] = {1, 20, 30, 45, n / 3, n / 2, n - 6}; /* signature, IHDR, IDAT, IEND CRC */
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        raw[flips[i]] ^= 0x40;
        CHECK(tf_write_file(tf_path("flip.png"), raw, n) == 0);
        raw[flips[i]] ^= 0x40;
        int rc = dd2_png_read(tf_path("flip.png"), &im, &st);
        CHECK_MSG(rc == DD2_ERR_INPUT && im.data == NULL, "byte %zu flipped: rc=%d", flips[i], rc);
    }
    static const char text[] = "this is not a PNG file at all\n";
    CHECK(tf_write_file(tf_path("text.png"), (const uint8_t *)text, sizeof text) == 0);
    CHECK(dd2_png_read(tf_path("text.png"), &im, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "not a PNG"), "%s", st.msg);
    CHECK(dd2_png_read(tf_path("missing.png"), &im, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "cannot open"), "%s", st.msg);
    CHECK(dd2_png_read(tf_dir, &im, &st) == DD2_ERR_INPUT); /* a directory */
    /* the untouched file still reads */
    CHECK(tf_write_file(tf_path("again.png"), raw, n) == 0);
    CHECK_OK(dd2_png_read(tf_path("again.png"), &im, &st), &st);
    CHECK(im.data && memcmp(im.data + ((size_t)1 * im.w + 1) * 3, img, 3) == 0);
    dd2_png_image_free(&im);
    free(raw);
}

/* PNGs not written by us (libpng's simplified API): palette and 16-bit gray + alpha. */
TEST(read_other_formats) {
    dd2_status st;
    dd2_status_clear(&st);
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = 5;
    pi.height = 3;
    pi.format = PNG_FORMAT_RGB_COLORMAP;
    pi.colormap_entries = 4;
    uint8_t cmap[12] = {0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30};
    uint8_t idx[15];
    for (int i = 0; i < 15; i++) idx[i] = (uint8_t)(i % 4);
    CHECK(png_image_write_to_file(&pi, tf_path("pal.png"), 0, idx, 0, cmap));
    png_image_free(&pi);
    dd2_png_image im;
    CHECK_OK(dd2_png_read(tf_path("pal.png"), &im, &st), &st);
    CHECK(im.h == 3 && im.w == 5 && im.c == 3);
    int bad = 0;
    for (int i = 0; im.data && i < 15; i++) bad += memcmp(im.data + 3 * i, cmap + 3 * idx[i], 3) != 0;
    CHECK(im.data && bad == 0);
    dd2_png_image_free(&im);

    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    pi.width = 4;
    pi.height = 2;
    pi.format = PNG_FORMAT_LINEAR_Y_ALPHA;
    uint16_t ga[16];
    for (int i = 0; i < 8; i++) {
        ga[2 * i] = (uint16_t)(i * 8000); /* gray, linear 16-bit */
        ga[2 * i + 1] = 65535;            /* opaque */
    }
    CHECK(png_image_write_to_file(&pi, tf_path("ga16.png"), 0, ga, 0, NULL));
    png_image_free(&pi);
    CHECK_OK(dd2_png_read(tf_path("ga16.png"), &im, &st), &st);
    CHECK(im.h == 2 && im.w == 4 && im.c == 1);
    bad = 0;
    for (int i = 0; im.data && i < 8; i++) bad += abs((int)im.data[i] - (ga[2 * i] >> 8)) > 1;
    CHECK_MSG(im.data && bad == 0, "%d gray values off", bad);
    dd2_png_image_free(&im);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    tf_make_tmpdir("png");
    RUN(tiny_grid_literal);
    RUN(gray_u8_grid_roundtrip);
    RUN(rgb_grid_roundtrip);
    RUN(float_mapping);
    RUN(single_image_and_overwrite);
    RUN(write_errors);
    RUN(read_bad_files);
    RUN(read_other_formats);
    tf_remove_tmpdir();
    return test_summary();
}
