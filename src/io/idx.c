#include "io/idx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_TYPE_U8 0x08u
#define GZ_CHUNK (1u << 30) /* gzread takes an unsigned and returns an int */

/* Turn the zlib error state of f into a status. */
static int gz_fail(gzFile f, const char *path, dd2_status *st) {
    int err = Z_OK;
    const char *msg = gzerror(f, &err);
    if (err == Z_ERRNO)
        return DD2_FAIL(st, errno == EISDIR ? DD2_ERR_INPUT : DD2_ERR_RUNTIME, "%s: read error: %s",
                        path, strerror(errno));
    if (err == Z_MEM_ERROR) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: zlib: out of memory", path);
    size_t plen = strlen(path); /* zlib prefixes its message with "<path>: " */
    if (msg && strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0) msg += plen + 2;
    return DD2_FAIL(st, DD2_ERR_INPUT, "%s: corrupt gzip data (zlib: %s)", path, msg ? msg : "?");
}

/* Read up to n bytes into buf; *got = bytes read. A short read at the end of the data is not an
 * error here (the caller reports truncation); *gz_short is set when the gzip stream itself ended
 * early. Corrupt data and system errors are. */
static int read_upto(gzFile f, const char *path, uint8_t *buf, size_t n, size_t *got,
                     int *gz_short, dd2_status *st) {
    *got = 0;
    while (*got < n) {
        size_t want = n - *got < GZ_CHUNK ? n - *got : GZ_CHUNK;
        int r = gzread(f, buf + *got, (unsigned)want);
        if (r <= 0) break;
        *got += (size_t)r;
    }
    if (*got == n) return DD2_OK;
    int err = Z_OK;
    gzerror(f, &err);
    if (err == Z_BUF_ERROR) {
        *gz_short = 1;
        return DD2_OK;
    }
    return err == Z_OK ? DD2_OK : gz_fail(f, path, st);
}

static int truncated(const char *path, size_t expected, size_t got, int gz_short,
                     dd2_status *st) {
    return DD2_FAIL(st, DD2_ERR_INPUT, "%s: truncated: expected %zu bytes, got %zu%s", path,
                    expected, got, gz_short ? " (the gzip stream ends early)" : "");
}

static uint32_t be32(const uint8_t *b) {
    return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3];
}

/* Magic, then dims: fills a->magic, ndim, dims, count. */
static int read_header(gzFile f, const char *path, dd2_idx *a, dd2_status *st) {
    uint8_t b[4 * DD2_IDX_MAX_DIMS];
    size_t got = 0;
    int gz_short = 0;
    DD2_TRY(read_upto(f, path, b, 4, &got, &gz_short, st));
    if (got < 4) return truncated(path, 4, got, gz_short, st);
    a->magic = be32(b);
    if (b[0] != 0 || b[1] != 0)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "%s: bad magic 0x%08x: not an IDX file (expected 0x000008NN: 0x00000803 "
                        "for images, 0x00000801 for labels)", path, (unsigned)a->magic);
    if (b[2] != IDX_TYPE_U8)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "%s: bad magic 0x%08x: element type 0x%02x is not supported (only 0x08, "
                        "unsigned byte)", path, (unsigned)a->magic, b[2]);
    if (b[3] < 1 || b[3] > DD2_IDX_MAX_DIMS)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: bad magic 0x%08x: %d dimensions (1..%d supported)",
                        path, (unsigned)a->magic, b[3], DD2_IDX_MAX_DIMS);
    a->ndim = b[3];
    size_t hbytes = 4 + 4 * (size_t)a->ndim;
    DD2_TRY(read_upto(f, path, b, 4 * (size_t)a->ndim, &got, &gz_short, st));
    if (got < 4 * (size_t)a->ndim) return truncated(path, hbytes, 4 + got, gz_short, st);
    a->count = 1;
    for (int i = 0; i < a->ndim; i++) {
        a->dims[i] = be32(b + 4 * i);
        if (a->dims[i] != 0 && a->count > SIZE_MAX / 2 / a->dims[i])
            return DD2_FAIL(st, DD2_ERR_INPUT, "%s: implausible dims in the header", path);
        a->count *= a->dims[i];
    }
    return DD2_OK;
}

/* Read the a->count payload bytes into a->data, growing the buffer only as data arrives (a
 * header promising more than the file holds costs no more memory than the file). */
static int read_payload(gzFile f, const char *path, dd2_idx *a, dd2_status *st) {
    size_t hbytes = 4 + 4 * (size_t)a->ndim, got = 0, cap = 0;
    int gz_short = 0;
    for (;;) {
        size_t ncap = cap == 0 ? (size_t)1 << 22 : 2 * cap;
        if (ncap > a->count) ncap = a->count;
        uint8_t *p = realloc(a->data, ncap ? ncap : 1);
        if (!p) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: out of memory (%zu bytes)", path, ncap);
        a->data = p;
        cap = ncap;
        size_t n = 0;
        DD2_TRY(read_upto(f, path, a->data + got, cap - got, &n, &gz_short, st));
        got += n;
        if (got < cap) return truncated(path, hbytes + a->count, hbytes + got, gz_short, st);
        if (cap == a->count) return DD2_OK;
    }
}

/* After the payload: the stream must end here, and end cleanly (gzip trailer and CRC). */
static int check_end(gzFile f, const char *path, const dd2_idx *a, dd2_status *st) {
    uint8_t scratch[4096];
    size_t extra = 0, n = 0;
    int gz_short = 0;
    do {
        DD2_TRY(read_upto(f, path, scratch, sizeof scratch, &n, &gz_short, st));
        extra += n;
    } while (n == sizeof scratch);
    size_t total = 4 + 4 * (size_t)a->ndim + a->count;
    if (extra)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "%s: %zu unexpected bytes after the %zu bytes the header promises", path,
                        extra, total);
    if (gz_short)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "%s: truncated: expected %zu bytes and the gzip trailer, got the bytes "
                        "but the gzip stream ends early (trailer missing)", path, total);
    return DD2_OK;
}

static int idx_read_open(gzFile f, const char *path, dd2_idx *a, dd2_status *st) {
    if (gzbuffer(f, 1u << 17) != 0) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: gzbuffer failed", path);
    DD2_TRY(read_header(f, path, a, st));
    DD2_TRY(read_payload(f, path, a, st));
    return check_end(f, path, a, st);
}

int dd2_idx_read(const char *path, dd2_idx *out, dd2_status *st) {
    memset(out, 0, sizeof *out);
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return DD2_FAIL(st, DD2_ERR_INPUT, "%s: file not found", path);
        return DD2_FAIL(st, errno ? DD2_ERR_INPUT : DD2_ERR_RUNTIME, "%s: cannot open: %s", path,
                        errno ? strerror(errno) : "zlib: out of memory");
    }
    dd2_idx a;
    memset(&a, 0, sizeof a);
    int rc = idx_read_open(f, path, &a, st);
    gzclose_r(f);
    if (rc != DD2_OK) {
        dd2_idx_free(&a);
        return rc;
    }
    *out = a;
    return DD2_OK;
}

void dd2_idx_free(dd2_idx *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---- Fashion-MNIST ---- */

static int fmnist_path(const char *dir, const char *prefix, const char *kind, char *buf,
                       size_t n, dd2_status *st) {
    int len = snprintf(buf, n, "%s/%s-%s-ubyte.gz", dir, prefix, kind);
    if (len < 0 || (size_t)len >= n)
        return DD2_FAIL(st, DD2_ERR_INPUT, "Fashion-MNIST directory path too long: %s", dir);
    struct stat sb;
    if (stat(buf, &sb) == 0) return DD2_OK;
    if (errno == ENOENT || errno == ENOTDIR)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "%s: not found. Fashion-MNIST comes from the Debian package "
                        "dataset-fashion-mnist: install it with `apt-get install "
                        "dataset-fashion-mnist` or `make deps` (tools/install-deps.sh)", buf);
    return DD2_FAIL(st, DD2_ERR_INPUT, "%s: %s", buf, strerror(errno));
}

static int fmnist_check(const char *ipath, const dd2_idx *im, const char *lpath,
                        const dd2_idx *lb, dd2_status *st) {
    if (im->magic != 0x803u)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: bad magic 0x%08x (expected 0x00000803, images)",
                        ipath, (unsigned)im->magic);
    if (lb->magic != 0x801u)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: bad magic 0x%08x (expected 0x00000801, labels)",
                        lpath, (unsigned)lb->magic);
    if (im->dims[1] != DD2_FMNIST_H || im->dims[2] != DD2_FMNIST_W)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: images are %ux%u, expected %dx%d", ipath,
                        (unsigned)im->dims[1], (unsigned)im->dims[2], DD2_FMNIST_H, DD2_FMNIST_W);
    if (im->dims[0] != lb->dims[0])
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s holds %u images but %s holds %u labels", ipath,
                        (unsigned)im->dims[0], lpath, (unsigned)lb->dims[0]);
    if (im->dims[0] == 0) return DD2_FAIL(st, DD2_ERR_INPUT, "%s: holds no images", ipath);
    for (size_t i = 0; i < lb->count; i++)
        if (lb->data[i] >= DD2_FMNIST_CLASSES)
            return DD2_FAIL(st, DD2_ERR_INPUT, "%s: label %u at index %zu (expected 0..%d)", lpath,
                            lb->data[i], i, DD2_FMNIST_CLASSES - 1);
    return DD2_OK;
}

int dd2_fmnist_load(const char *dir, const char *split, dd2_fmnist *ds, dd2_status *st) {
    memset(ds, 0, sizeof *ds);
    if (!dir || !*dir) dir = DD2_FMNIST_DIR;
    const char *prefix;
    if (split && strcmp(split, "train") == 0) prefix = "train";
    else if (split && (strcmp(split, "test") == 0 || strcmp(split, "t10k") == 0)) prefix = "t10k";
    else
        return DD2_FAIL(st, DD2_ERR_INPUT, "Fashion-MNIST: unknown split '%s' (train or test)",
                        split ? split : "(null)");
    char ipath[4096], lpath[4096];
    DD2_TRY(fmnist_path(dir, prefix, "images-idx3", ipath, sizeof ipath, st));
    DD2_TRY(fmnist_path(dir, prefix, "labels-idx1", lpath, sizeof lpath, st));
    dd2_idx im, lb;
    DD2_TRY(dd2_idx_read(ipath, &im, st));
    int rc = dd2_idx_read(lpath, &lb, st);
    if (rc == DD2_OK) rc = fmnist_check(ipath, &im, lpath, &lb, st);
    if (rc != DD2_OK) {
        dd2_idx_free(&im);
        dd2_idx_free(&lb);
        return rc;
    }
    ds->n = im.dims[0];
    ds->h = im.dims[1];
    ds->w = im.dims[2];
    ds->images = im.data;
    ds->labels = lb.data;
    return DD2_OK;
}

void dd2_fmnist_free(dd2_fmnist *ds) {
    if (!ds) return;
    free(ds->images);
    free(ds->labels);
    memset(ds, 0, sizeof *ds);
}
