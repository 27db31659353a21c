/* Tests for src/io/idx: the real Fashion-MNIST files, and synthetic IDX files that are
 * truncated (gzip stream or payload), corrupt, mislabelled or missing. */
#include "io/idx.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "test_files.h"
#include "test_util.h"

/* ---- helpers: synthetic files in a temporary directory (tf_dir) ---- */

static void put_be32(uint8_t *b, uint32_t v) {
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

/* An IDX payload (uncompressed): magic, dims, then bytes; returns its length. */
static size_t make_idx(uint8_t *buf, uint32_t magic, int ndim, const uint32_t *dims,
                       uint8_t (*value)(size_t)) {
    put_be32(buf, magic);
    size_t count = 1, off = 4;
    for (int i = 0; i < ndim; i++) {
        put_be32(buf + off, dims[i]);
        off += 4;
        count *= dims[i];
    }
    for (size_t i = 0; i < count; i++) buf[off + i] = value(i);
    return off + count;
}

static uint8_t pixel(size_t i) { return (uint8_t)((i * 2654435761u) >> 13); }
static uint8_t label(size_t i) { return (uint8_t)(i % 10); }

static int write_gz(const char *path, const uint8_t *b, size_t n) {
    gzFile f = gzopen(path, "wb9");
    if (!f) return -1;
    int ok = n == 0 || gzwrite(f, b, (unsigned)n) == (int)n;
    return (gzclose(f) == Z_OK && ok) ? 0 : -1;
}

enum { NIMG = 3, IMG_BYTES = 16 + NIMG * 28 * 28, LBL_BYTES = 8 + NIMG };
static uint8_t g_img[IMG_BYTES], g_lbl[LBL_BYTES + 1];

static void make_pair(const char *prefix, int nimg, int nlbl) {
    char ip[64], lp[64];
    snprintf(ip, sizeof ip, "%s-images-idx3-ubyte.gz", prefix);
    snprintf(lp, sizeof lp, "%s-labels-idx1-ubyte.gz", prefix);
    uint32_t idims[3] = {(uint32_t)nimg, 28, 28}, ldims[1] = {(uint32_t)nlbl};
    static uint8_t ib[16 + 10 * 784], lb[8 + 10];
    size_t ni = make_idx(ib, 0x803, 3, idims, pixel), nl = make_idx(lb, 0x801, 1, ldims, label);
    CHECK(write_gz(tf_path(ip), ib, ni) == 0);
    CHECK(write_gz(tf_path(lp), lb, nl) == 0);
}

/* Expect dd2_idx_read(path) to fail with DD2_ERR_INPUT and a message holding each of subs[]. */
static void expect_fail(const char *path, const char *what, const char *s1, const char *s2) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_idx a;
    int rc = dd2_idx_read(path, &a, &st);
    CHECK_MSG(rc == DD2_ERR_INPUT, "%s: rc=%d msg=%s", what, rc, st.msg);
    CHECK_MSG(a.data == NULL && a.count == 0, "%s: output not zeroed on failure", what);
    CHECK_MSG(!s1 || strstr(st.msg, s1), "%s: message lacks '%s': %s", what, s1, st.msg);
    CHECK_MSG(!s2 || strstr(st.msg, s2), "%s: message lacks '%s': %s", what, s2, st.msg);
}

/* ---- the real dataset ---- */

static int have_dataset(void) {
    static const char *files[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                   "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (int i = 0; i < 4; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", DD2_FMNIST_DIR, files[i]);
        if (access(p, R_OK) != 0) {
            CHECK_MSG(0, "Fashion-MNIST is not installed (%s: %s): run tools/install-deps.sh "
                         "(as root; it installs the Debian package dataset-fashion-mnist)",
                      p, strerror(errno));
            return 0;
        }
    }
    return 1;
}

static void check_split(const char *split, uint32_t n, long per_class) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_fmnist ds;
    CHECK_OK(dd2_fmnist_load(NULL, split, &ds, &st), &st);
    if (!ds.images) return;
    CHECK_MSG(ds.n == n && ds.h == 28 && ds.w == 28, "%s: n=%u h=%u w=%u", split, ds.n, ds.h, ds.w);
    long count[10] = {0};
    for (uint32_t i = 0; i < ds.n; i++) count[ds.labels[i]]++;
    for (int c = 0; c < 10; c++)
        CHECK_MSG(count[c] == per_class, "%s: class %d has %ld examples", split, c, count[c]);
    /* Fashion-MNIST's published normalisation statistic: mean pixel 0.2860 (train), 0.2868 (test) */
    double sum = 0;
    size_t np = (size_t)ds.n * 28 * 28;
    for (size_t i = 0; i < np; i++) sum += ds.images[i];
    double mean = sum / np / 255.0;
    CHECK_NEAR(mean, n == 60000 ? 0.2860 : 0.2868, 0.0005);
    dd2_fmnist_free(&ds);
    CHECK(ds.images == NULL && ds.labels == NULL);
}

TEST(real_train_and_test) {
    if (!have_dataset()) return;
    check_split("train", 60000, 6000);
    check_split("test", 10000, 1000);
}

TEST(real_raw_idx_headers) {
    if (!have_dataset()) return;
    dd2_status st;
    dd2_status_clear(&st);
    dd2_idx a;
    CHECK_OK(dd2_idx_read(DD2_FMNIST_DIR "/t10k-labels-idx1-ubyte.gz", &a, &st), &st);
    CHECK(a.magic == 0x801 && a.ndim == 1 && a.dims[0] == 10000 && a.count == 10000);
    dd2_idx_free(&a);
    CHECK(a.data == NULL);
}

/* ---- synthetic files ---- */

TEST(synthetic_pair_loads) {
    make_pair("train", NIMG, NIMG);
    dd2_status st;
    dd2_status_clear(&st);
    dd2_fmnist ds;
    CHECK_OK(dd2_fmnist_load(tf_dir, "train", &ds, &st), &st);
    CHECK(ds.n == NIMG && ds.h == 28 && ds.w == 28);
    int bad = 0;
    for (size_t i = 0; ds.images && i < (size_t)NIMG * 784; i++) bad += ds.images[i] != pixel(i);
    for (size_t i = 0; ds.labels && i < NIMG; i++) bad += ds.labels[i] != label(i);
    CHECK_MSG(bad == 0 && ds.images, "%d bytes differ", bad);
    dd2_fmnist_free(&ds);
    /* an uncompressed IDX file is read too (zlib transparent mode) */
    CHECK(tf_write_file(tf_path("plain.idx"), g_img, IMG_BYTES) == 0);
    dd2_idx a;
    CHECK_OK(dd2_idx_read(tf_path("plain.idx"), &a, &st), &st);
    CHECK(a.ndim == 3 && a.count == (size_t)NIMG * 784 && a.data &&
          memcmp(a.data, g_img + 16, a.count) == 0);
    dd2_idx_free(&a);
}

/* A valid gzip stream whose payload stops before the header's promise. */
TEST(truncated_payload) {
    static const size_t cuts[] = {0, 2, 4, 10, 15, 16, 16 + 100, IMG_BYTES - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        const char *p = tf_path("cut.gz");
        CHECK(write_gz(p, g_img, cuts[i]) == 0);
        char what[64], exp[64], got[64];
        snprintf(what, sizeof what, "payload cut at %zu", cuts[i]);
        size_t expect = cuts[i] < 4 ? 4 : cuts[i] < 16 ? 16 : IMG_BYTES;
        snprintf(exp, sizeof exp, "expected %zu bytes", expect);
        snprintf(got, sizeof got, "got %zu", cuts[i]);
        expect_fail(p, what, "truncated", exp);
        expect_fail(p, what, got, NULL);
    }
    /* and one byte too many */
    uint8_t more[IMG_BYTES + 1];
    memcpy(more, g_img, IMG_BYTES);
    more[IMG_BYTES] = 7;
    CHECK(write_gz(tf_path("more.gz"), more, sizeof more) == 0);
    expect_fail(tf_path("more.gz"), "one extra byte", "1 unexpected bytes", NULL);
}

/* A gzip file cut short: inside the gzip header, the deflate data, or the trailer. */
TEST(truncated_gzip_stream) {
    CHECK(write_gz(tf_path("full.gz"), g_img, IMG_BYTES) == 0);
    size_t n;
    uint8_t *gz = tf_read_file(tf_path("full.gz"), &n);
    CHECK(n > 40 && n < IMG_BYTES + 1024);
    if (!gz) return;
    size_t cuts[] = {0, 1, 2, 5, 10, 12, n / 4, n / 2, n - 9, n - 8, n - 4, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "gzip file of %zu bytes cut at %zu", n, cuts[i]);
        CHECK(tf_write_file(tf_path("cutgz.gz"), gz, cuts[i]) == 0);
        expect_fail(tf_path("cutgz.gz"), what, "truncated", "expected");
    }
    free(gz);
}

/* Damaged compressed bytes: deflate data, CRC, length. Always an input error, never a crash. */
TEST(corrupt_gzip) {
    CHECK(write_gz(tf_path("full.gz"), g_img, IMG_BYTES) == 0);
    size_t n;
    uint8_t *gz = tf_read_file(tf_path("full.gz"), &n);
    CHECK(gz != NULL);
    if (!gz) return;
    size_t pos[] = {n - 8, n - 5, n - 3, n - 1}; /* CRC32 and ISIZE */
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++) {
        gz[pos[i]] ^= 0x5a;
        CHECK(tf_write_file(tf_path("bad.gz"), gz, n) == 0);
        gz[pos[i]] ^= 0x5a;
        char what[64];
        snprintf(what, sizeof what, "byte %zu of %zu flipped", pos[i], n);
        expect_fail(tf_path("bad.gz"), what, "corrupt gzip data", "zlib");
    }
    for (size_t p = 12; p < n - 8; p += (n - 20) / 7) { /* inside the deflate data */
        gz[p] ^= 0xff;
        CHECK(tf_write_file(tf_path("bad.gz"), gz, n) == 0);
        gz[p] ^= 0xff;
        char what[64];
        snprintf(what, sizeof what, "byte %zu of %zu flipped", p, n);
        expect_fail(tf_path("bad.gz"), what, NULL, NULL);
    }
    free(gz);
}

TEST(wrong_magic_and_dims) {
    uint32_t d3[3] = {NIMG, 28, 28}, d1[1] = {NIMG};
    static uint8_t b[IMG_BYTES + 64];
    struct {
        uint32_t magic;
        const char *msg;
    } cases[] = {{0x08030000u, "not an IDX file"},     /* little-endian magic */
                 {0x1f8b0803u, "not an IDX file"},     /* garbage */
                 {0x00000903u, "element type 0x09"},   /* int8 */
                 {0x00000d03u, "element type 0x0d"},   /* float */
                 {0x00000800u, "0 dimensions"},
                 {0x00000805u, "5 dimensions"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = make_idx(b, cases[i].magic, 3, d3, pixel);
        CHECK(write_gz(tf_path("magic.gz"), b, n) == 0);
        expect_fail(tf_path("magic.gz"), cases[i].msg, "bad magic", cases[i].msg);
    }
    /* the loader wants images where images belong, labels where labels belong, 28x28 */
    dd2_status st;
    dd2_status_clear(&st);
    dd2_fmnist ds;
    make_pair("train", NIMG, NIMG);
    size_t n = make_idx(b, 0x801, 1, d1, label); /* a labels file in the images' place */
    CHECK(write_gz(tf_path("train-images-idx3-ubyte.gz"), b, n) == 0);
    CHECK(dd2_fmnist_load(tf_dir, "train", &ds, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "0x00000801") && strstr(st.msg, "0x00000803"), "%s", st.msg);
    CHECK(ds.images == NULL && ds.labels == NULL);
    uint32_t d27[3] = {NIMG, 27, 28};
    n = make_idx(b, 0x803, 3, d27, pixel);
    CHECK(write_gz(tf_path("train-images-idx3-ubyte.gz"), b, n) == 0);
    CHECK(dd2_fmnist_load(tf_dir, "train", &ds, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "27x28") && strstr(st.msg, "28x28"), "%s", st.msg);
    /* a label out of range */
    make_pair("train", NIMG, NIMG);
    uint8_t lb[LBL_BYTES];
    n = make_idx(lb, 0x801, 1, d1, label);
    lb[8 + 1] = 10;
    CHECK(write_gz(tf_path("train-labels-idx1-ubyte.gz"), lb, n) == 0);
    CHECK(dd2_fmnist_load(tf_dir, "train", &ds, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "label 10 at index 1"), "%s", st.msg);
    CHECK(dd2_fmnist_load(tf_dir, "validation", &ds, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "unknown split"), "%s", st.msg);
}

TEST(count_mismatch) {
    make_pair("t10k", NIMG, NIMG + 1);
    dd2_status st;
    dd2_status_clear(&st);
    dd2_fmnist ds;
    CHECK(dd2_fmnist_load(tf_dir, "test", &ds, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "holds 3 images") && strstr(st.msg, "holds 4 labels"), "%s", st.msg);
    CHECK(ds.images == NULL && ds.labels == NULL);
}

TEST(missing_files) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_fmnist ds;
    const char *empty = tf_path("empty-dir");
    CHECK(mkdir(empty, 0700) == 0 || errno == EEXIST);
    CHECK(dd2_fmnist_load(empty, "train", &ds, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "train-images-idx3-ubyte.gz: not found") &&
                  strstr(st.msg, "Debian package dataset-fashion-mnist") &&
                  strstr(st.msg, "apt-get install dataset-fashion-mnist") &&
                  strstr(st.msg, "make deps"),
              "%s", st.msg);
    CHECK(dd2_fmnist_load("/nonexistent/dir", "test", &ds, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "t10k-images-idx3-ubyte.gz: not found"), "%s", st.msg);
    /* images present, labels missing */
    make_pair("train", NIMG, NIMG);
    unlink(tf_path("train-labels-idx1-ubyte.gz"));
    CHECK(dd2_fmnist_load(tf_dir, "train", &ds, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "train-labels-idx1-ubyte.gz: not found"), "%s", st.msg);
    expect_fail(tf_path("no-such-file.gz"), "missing file", "not found", NULL);
    rmdir(empty);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    tf_make_tmpdir("idx");
    uint32_t d3[3] = {NIMG, 28, 28}, d1[1] = {NIMG};
    make_idx(g_img, 0x803, 3, d3, pixel);
    make_idx(g_lbl, 0x801, 1, d1, label);
    RUN(real_train_and_test);
    RUN(real_raw_idx_headers);
    RUN(synthetic_pair_loads);
    RUN(truncated_payload);
    RUN(truncated_gzip_stream);
    RUN(corrupt_gzip);
    RUN(wrong_magic_and_dims);
    RUN(count_mismatch);
    RUN(missing_files);
    tf_remove_tmpdir();
    return test_summary();
}
