/* HDF5 arrays/attributes with checksums and atomic commit; contracts in h5io.h, conventions in
 * docs/formats.md ("HDF5 files").
 *
 * Robustness notes:
 *  - Files are written with format bounds (v1.8, v1.8): superblock v2 and v2 object headers, so
 *    HDF5 itself checksums all metadata (superblock, object headers with the attributes, link
 *    storage); our CRC-32 attribute covers the raw data. Fixed-length strings keep attribute
 *    values in the (checksummed) object header rather than the unchecksummed global heap.
 *  - HDF5 clears its error stack at the start of every API call, so the failing call's message is
 *    captured (h5_grab) before any cleanup call and used in the status afterwards.
 */
#include "io/h5io.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "io/atomic_file.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "h5io assumes a little-endian host: checksums are defined over little-endian bytes"
#endif

struct dd2_h5 {
    hid_t file;
    int writable;
    int failed;        /* a write on this handle failed: close must not commit */
    char *path;        /* as given by the caller; used in every message */
    dd2_atomic atomic; /* active for handles from dd2_h5_create_atomic */
};

/* ---- errors --------------------------------------------------------------------------------- */

static char g_detail[512]; /* innermost HDF5 error message of the last failing call */
static int g_detail_h5;    /* 1: g_detail came from HDF5's error stack; 0: set by this file */

/* Record a failure reason found by this file (not by HDF5) for H5FAIL. Returns -1. */
static int set_detail(const char *msg) {
    snprintf(g_detail, sizeof g_detail, "%s", msg);
    g_detail_h5 = 0;
    return -1;
}

static herr_t walk_cb(unsigned n, const H5E_error2_t *e, void *data) {
    (void)data;
    if (n == 0) snprintf(g_detail, sizeof g_detail, "%s", e->desc ? e->desc : "");
    return 0;
}

/* Save the current HDF5 error message (call right after the failing HDF5 call). Returns -1. */
static int h5_grab(void) {
    g_detail[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, NULL);
    if (!g_detail[0]) snprintf(g_detail, sizeof g_detail, "unknown error");
    g_detail_h5 = 1;
    return -1;
}

/* "<path>: <message>[: <HDF5 detail>]" */
static int fail_at(dd2_status *st, int code, const char *file, int line, const char *func, const char *path,
                   int with_detail, const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static int fail_at(dd2_status *st, int code, const char *file, int line, const char *func, const char *path,
                   int with_detail, const char *fmt, ...) {
    char what[DD2_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (with_detail == 2) h5_grab();
    if (with_detail)
        return dd2_status_fail(st, code, file, line, func, "%s: %s: %s%s", path, what, g_detail,
                               g_detail_h5 ? " (HDF5)" : "");
    return dd2_status_fail(st, code, file, line, func, "%s: %s", path, what);
}

/* All prefix the file path. H5ERR: right after a failing HDF5 call, appends its message.
 * H5FAIL: appends the message saved earlier by h5_grab (when cleanup calls came in between).
 * PFAIL: no HDF5 message. */
#define H5ERR(st, code, path, ...) fail_at((st), (code), __FILE__, __LINE__, __func__, (path), 2, __VA_ARGS__)
#define H5FAIL(st, code, path, ...) fail_at((st), (code), __FILE__, __LINE__, __func__, (path), 1, __VA_ARGS__)
#define PFAIL(st, code, path, ...) fail_at((st), (code), __FILE__, __LINE__, __func__, (path), 0, __VA_ARGS__)

/* Close an HDF5 id if valid, ignoring errors (cleanup paths). */
static void h5_close_id(hid_t id) {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
    case H5I_FILE: H5Fclose(id); break;
    case H5I_GROUP: H5Gclose(id); break;
    case H5I_DATASET: H5Dclose(id); break;
    case H5I_DATASPACE: H5Sclose(id); break;
    case H5I_DATATYPE: H5Tclose(id); break;
    case H5I_ATTR: H5Aclose(id); break;
    case H5I_GENPROP_LST: H5Pclose(id); break;
    default: break;
    }
}

static void h5_init(void) {
    static int done = 0;
    if (done) return;
    H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    done = 1;
}

/* ---- small helpers -------------------------------------------------------------------------- */

static size_t g_max_io = (size_t)256 << 20;

size_t dd2_h5_max_io_bytes(void) { return g_max_io; }
void dd2_h5_set_max_io_bytes(size_t bytes) { g_max_io = bytes ? bytes : 1; }

uint32_t dd2_h5_crc32(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = data;
    uLong c = crc;
    while (len > 0) {
        uInt n = len > ((size_t)1 << 30) ? (uInt)1 << 30 : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

size_t dd2_h5_type_size(dd2_h5_type t) {
    switch (t) {
    case DD2_H5_F32: return 4;
    case DD2_H5_F64: return 8;
    case DD2_H5_I32: return 4;
    case DD2_H5_I64: return 8;
    case DD2_H5_U8: return 1;
    }
    return 0;
}

const char *dd2_h5_type_name(dd2_h5_type t) {
    switch (t) {
    case DD2_H5_F32: return "f32";
    case DD2_H5_F64: return "f64";
    case DD2_H5_I32: return "i32";
    case DD2_H5_I64: return "i64";
    case DD2_H5_U8: return "u8";
    }
    return "?";
}

static int type_valid(dd2_h5_type t) { return dd2_h5_type_size(t) != 0; }

static hid_t file_type(dd2_h5_type t) {
    switch (t) {
    case DD2_H5_F32: return H5T_IEEE_F32LE;
    case DD2_H5_F64: return H5T_IEEE_F64LE;
    case DD2_H5_I32: return H5T_STD_I32LE;
    case DD2_H5_I64: return H5T_STD_I64LE;
    case DD2_H5_U8: return H5T_STD_U8LE;
    }
    return -1;
}

static hid_t mem_type(dd2_h5_type t) {
    switch (t) {
    case DD2_H5_F32: return H5T_NATIVE_FLOAT;
    case DD2_H5_F64: return H5T_NATIVE_DOUBLE;
    case DD2_H5_I32: return H5T_NATIVE_INT32;
    case DD2_H5_I64: return H5T_NATIVE_INT64;
    case DD2_H5_U8: return H5T_NATIVE_UINT8;
    }
    return -1;
}

/* Map a stored datatype to ours; on failure describe it in desc ("int16", "string", ...). */
static int classify_type(hid_t dtype, dd2_h5_type *t, char *desc, size_t n) {
    H5T_class_t cls = H5Tget_class(dtype);
    size_t size = H5Tget_size(dtype);
    if (cls == H5T_FLOAT && size == 4) {
        *t = DD2_H5_F32;
        return 0;
    }
    if (cls == H5T_FLOAT && size == 8) {
        *t = DD2_H5_F64;
        return 0;
    }
    if (cls == H5T_INTEGER) {
        int is_signed = H5Tget_sign(dtype) == H5T_SGN_2;
        if (is_signed && size == 4) {
            *t = DD2_H5_I32;
            return 0;
        }
        if (is_signed && size == 8) {
            *t = DD2_H5_I64;
            return 0;
        }
        if (!is_signed && size == 1) {
            *t = DD2_H5_U8;
            return 0;
        }
        snprintf(desc, n, "%sint%zu", is_signed ? "" : "u", size * 8);
        return -1;
    }
    const char *name = cls == H5T_FLOAT      ? "float"
                       : cls == H5T_STRING   ? "string"
                       : cls == H5T_COMPOUND ? "compound"
                       : cls == H5T_ENUM     ? "enum"
                       : cls == H5T_ARRAY    ? "array"
                       : cls == H5T_VLEN     ? "vlen"
                                             : "other";
    snprintf(desc, n, "%s (%zu bytes)", name, size);
    return -1;
}

static void format_dims(char *buf, size_t n, int rank, const int64_t *dims) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%" PRId64, i ? ", " : "", dims[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

/* Validate an object path: non-empty, no leading/trailing '/', no "//", no "."/".." parts. */
static int check_name(const dd2_h5 *h, const char *name, const char *kind, dd2_status *st) {
    if (!name || !*name) return PFAIL(st, DD2_ERR_RUNTIME, h->path, "empty %s name", kind);
    size_t n = strlen(name);
    int bad = name[0] == '/' || name[n - 1] == '/' || strstr(name, "//") != NULL;
    for (const char *p = name; !bad && *p;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) bad = 1;
        p += len + (e ? 1 : 0);
    }
    if (bad)
        return PFAIL(st, DD2_ERR_RUNTIME, h->path,
                     "invalid %s name '%s' (want a relative path like \"params/wte\")", kind, name);
    return DD2_OK;
}

static int check_writable(const dd2_h5 *h, dd2_status *st) {
    if (!h->writable) return PFAIL(st, DD2_ERR_RUNTIME, h->path, "file is open read-only");
    return DD2_OK;
}

/* *exists for `name`, checking each prefix so that a missing intermediate group is "no" rather
 * than an error. Returns -1 on an HDF5 error (grabbed). */
static int link_exists(hid_t file, const char *name, int *exists) {
    size_t n = strlen(name);
    char *buf = malloc(n + 1);
    if (!buf) return set_detail("out of memory");
    memcpy(buf, name, n + 1);
    *exists = 1;
    for (size_t i = 0; i <= n && *exists; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        htri_t r = H5Lexists(file, buf, H5P_DEFAULT);
        buf[i] = c;
        if (r < 0) {
            free(buf);
            return h5_grab();
        }
        if (r == 0) *exists = 0;
    }
    free(buf);
    return 0;
}

static int is_root(const char *obj) { return !obj || !*obj || strcmp(obj, "/") == 0; }

/* "object 'x'" or "root group", for messages about attributes. */
static const char *obj_label(const char *obj, char *buf, size_t n) {
    if (is_root(obj))
        snprintf(buf, n, "root group");
    else
        snprintf(buf, n, "object '%s'", obj);
    return buf;
}

/* Open the object `obj` (root when is_root); failures get `code`. */
static int open_object(dd2_h5 *h, const char *obj, int code, hid_t *out, dd2_status *st) {
    *out = -1;
    if (is_root(obj)) {
        *out = H5Oopen(h->file, "/", H5P_DEFAULT);
        if (*out < 0) return H5ERR(st, code, h->path, "cannot open root group");
        return DD2_OK;
    }
    DD2_TRY(check_name(h, obj, "object", st));
    int exists;
    if (link_exists(h->file, obj, &exists) < 0)
        return H5FAIL(st, code, h->path, "object '%s': cannot look up", obj);
    if (!exists) return PFAIL(st, code, h->path, "object '%s': not found", obj);
    *out = H5Oopen(h->file, obj, H5P_DEFAULT);
    if (*out < 0) return H5ERR(st, code, h->path, "object '%s': cannot open", obj);
    return DD2_OK;
}

/* Open dataset `name` for reading (DD2_ERR_INPUT if missing or not a dataset). */
static int open_dataset(dd2_h5 *h, const char *name, hid_t *out, dd2_status *st) {
    *out = -1;
    DD2_TRY(check_name(h, name, "dataset", st));
    int exists;
    if (link_exists(h->file, name, &exists) < 0)
        return H5FAIL(st, DD2_ERR_INPUT, h->path, "dataset '%s': cannot look up", name);
    if (!exists) return PFAIL(st, DD2_ERR_INPUT, h->path, "dataset '%s': not found", name);
    hid_t id = H5Oopen(h->file, name, H5P_DEFAULT);
    if (id < 0) return H5ERR(st, DD2_ERR_INPUT, h->path, "dataset '%s': cannot open", name);
    if (H5Iget_type(id) != H5I_DATASET) {
        H5Oclose(id);
        return PFAIL(st, DD2_ERR_INPUT, h->path, "dataset '%s': is a group, not a dataset", name);
    }
    *out = id;
    return DD2_OK;
}

/* Rank and dims of a dataspace. Returns -1 (grabbed, or detail set) on failure or rank > max. */
static int space_shape(hid_t space, int *rank, int64_t *dims) {
    H5S_class_t cls = H5Sget_simple_extent_type(space);
    if (cls == H5S_SCALAR) {
        *rank = 0;
        return 0;
    }
    if (cls != H5S_SIMPLE) {
        if (cls < 0) return h5_grab();
        return set_detail("empty (null) dataspace");
    }
    int r = H5Sget_simple_extent_ndims(space);
    if (r < 0) return h5_grab();
    if (r > DD2_H5_MAX_RANK) {
        char msg[64];
        snprintf(msg, sizeof msg, "rank %d (at most %d supported)", r, DD2_H5_MAX_RANK);
        return set_detail(msg);
    }
    hsize_t hd[H5S_MAX_RANK];
    if (H5Sget_simple_extent_dims(space, hd, NULL) < 0) return h5_grab();
    for (int i = 0; i < r; i++) {
        if (hd[i] > (hsize_t)INT64_MAX) return set_detail("dimension too large");
        dims[i] = (int64_t)hd[i];
    }
    *rank = r;
    return 0;
}

/* Element count and byte size of a shape, or -1 if it overflows size_t. */
static int shape_bytes(int rank, const int64_t *dims, size_t esize, int64_t *count, size_t *bytes) {
    uint64_t c = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0) return -1;
        if (dims[i] != 0 && c > UINT64_MAX / (uint64_t)dims[i]) return -1;
        c *= (uint64_t)dims[i];
    }
    if (c > (uint64_t)INT64_MAX || (esize && c > (uint64_t)SIZE_MAX / esize)) return -1;
    *count = (int64_t)c;
    *bytes = (size_t)c * esize;
    return 0;
}

/* Shape of an open dataset. DD2_ERR_INPUT for unsupported types/ranks. */
static int dataset_shape(dd2_h5 *h, const char *name, hid_t ds, dd2_h5_shape *sh, dd2_status *st) {
    memset(sh, 0, sizeof *sh);
    hid_t dtype = H5Dget_type(ds);
    if (dtype < 0) return H5ERR(st, DD2_ERR_INPUT, h->path, "dataset '%s': cannot read type", name);
    char desc[64];
    int ok = classify_type(dtype, &sh->type, desc, sizeof desc);
    H5Tclose(dtype);
    if (ok < 0)
        return PFAIL(st, DD2_ERR_INPUT, h->path, "dataset '%s': unsupported element type %s", name, desc);
    hid_t space = H5Dget_space(ds);
    if (space < 0) return H5ERR(st, DD2_ERR_INPUT, h->path, "dataset '%s': cannot read shape", name);
    int rc = space_shape(space, &sh->rank, sh->dims);
    H5Sclose(space);
    if (rc < 0) return H5FAIL(st, DD2_ERR_INPUT, h->path, "dataset '%s': unsupported shape", name);
    size_t bytes;
    if (shape_bytes(sh->rank, sh->dims, dd2_h5_type_size(sh->type), &sh->count, &bytes) < 0)
        return PFAIL(st, DD2_ERR_INPUT, h->path, "dataset '%s': shape too large", name);
    return DD2_OK;
}

/* ---- bulk I/O in pieces --------------------------------------------------------------------- */

/* Read or write a whole dataset of shape dims (C order) from/to buf, in hyperslabs of at most
 * g_max_io bytes: the slab runs along the outermost dimension k whose inner block fits, one
 * outer index tuple (dims[0..k-1]) at a time; each slab is contiguous in buf. Returns -1 on an
 * HDF5 error (grabbed). */
static int slab_io(hid_t ds, hid_t mtype, int rank, const int64_t *dims, size_t esize, void *buf, int writing) {
    int64_t count;
    size_t bytes;
    if (shape_bytes(rank, dims, esize, &count, &bytes) < 0) return set_detail("shape too large");
    if (count == 0) return 0;
    if (rank == 0 || bytes <= g_max_io) {
        herr_t r = writing ? H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf)
                           : H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        return r < 0 ? h5_grab() : 0;
    }
    size_t inner[DD2_H5_MAX_RANK]; /* bytes of one index step along dimension i */
    inner[rank - 1] = esize;
    for (int i = rank - 2; i >= 0; i--) inner[i] = inner[i + 1] * (size_t)dims[i + 1];
    int k = 0;
    while (inner[k] > g_max_io && k < rank - 1) k++;
    hsize_t step = (hsize_t)(g_max_io / inner[k]);
    if (step < 1) step = 1;
    if (step > (hsize_t)dims[k]) step = (hsize_t)dims[k];

    hid_t fspace = H5Dget_space(ds);
    if (fspace < 0) return h5_grab();
    hsize_t start[DD2_H5_MAX_RANK] = {0}, cnt[DD2_H5_MAX_RANK];
    for (int i = 0; i < rank; i++) cnt[i] = i < k ? 1 : (hsize_t)dims[i];
    int rc = 0;
    for (;;) {
        for (start[k] = 0; start[k] < (hsize_t)dims[k] && rc == 0; start[k] += step) {
            cnt[k] = (hsize_t)dims[k] - start[k] < step ? (hsize_t)dims[k] - start[k] : step;
            size_t off = 0;
            for (int i = 0; i <= k; i++) off += (size_t)start[i] * inner[i];
            hsize_t nelem = (hsize_t)(cnt[k] * inner[k] / esize);
            hid_t mspace = H5Screate_simple(1, &nelem, NULL);
            if (mspace < 0 || H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0) {
                rc = h5_grab();
            } else {
                char *p = (char *)buf + off;
                herr_t r = writing ? H5Dwrite(ds, mtype, mspace, fspace, H5P_DEFAULT, p)
                                   : H5Dread(ds, mtype, mspace, fspace, H5P_DEFAULT, p);
                if (r < 0) rc = h5_grab();
            }
            if (mspace >= 0) H5Sclose(mspace);
        }
        /* advance the outer index tuple start[0..k-1] (odometer) */
        int i = k - 1;
        while (i >= 0 && ++start[i] == (hsize_t)dims[i]) start[i--] = 0;
        if (i < 0 || rc != 0) break;
    }
    H5Sclose(fspace);
    return rc;
}

/* ---- attributes (internal) ------------------------------------------------------------------ */

/* Create or replace scalar attribute `attr` of type ftype on open object `o`. -1 on error. */
static int attr_put(hid_t o, const char *attr, hid_t ftype, hid_t mtype, const void *value) {
    htri_t ex = H5Aexists(o, attr);
    if (ex < 0) return h5_grab();
    if (ex > 0 && H5Adelete(o, attr) < 0) return h5_grab();
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0) return h5_grab();
    hid_t a = H5Acreate2(o, attr, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    int rc = 0;
    if (a < 0 || H5Awrite(a, mtype, value) < 0) rc = h5_grab();
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return rc;
}

/* A fixed-length UTF-8 string type of `size` bytes (pad: H5T_STR_NULLTERM or _NULLPAD). */
static hid_t str_type(size_t size, H5T_str_t pad) {
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return -1;
    if (H5Tset_size(t, size) < 0 || H5Tset_strpad(t, pad) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        h5_grab();
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* Open attribute `attr` of object `o` (already open) and check it holds one value. */
static int attr_open(dd2_h5 *h, hid_t o, const char *label, const char *attr, hid_t *out, dd2_status *st) {
    *out = -1;
    htri_t ex = H5Aexists(o, attr);
    if (ex < 0) return H5ERR(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': cannot look up", label, attr);
    if (ex == 0) return PFAIL(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': not found", label, attr);
    hid_t a = H5Aopen(o, attr, H5P_DEFAULT);
    if (a < 0) return H5ERR(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': cannot open", label, attr);
    hid_t space = H5Aget_space(a);
    hssize_t n = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (n < 0) h5_grab();
    if (space >= 0) H5Sclose(space);
    if (n != 1) {
        H5Aclose(a);
        if (n < 0)
            return H5FAIL(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': cannot read shape", label, attr);
        return PFAIL(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': holds %lld values, expected one", label,
                     attr, (long long)n);
    }
    *out = a;
    return DD2_OK;
}

/* Read the stored checksum of open dataset `ds`. */
static int read_checksum(dd2_h5 *h, const char *name, hid_t ds, uint32_t *crc, dd2_status *st) {
    char label[600];
    snprintf(label, sizeof label, "dataset '%s'", name);
    hid_t a;
    DD2_TRY(attr_open(h, ds, label, "checksum", &a, st));
    hid_t t = H5Aget_type(a);
    int is_int = t >= 0 && H5Tget_class(t) == H5T_INTEGER;
    if (t >= 0) H5Tclose(t);
    int rc = DD2_OK;
    if (!is_int)
        rc = PFAIL(st, DD2_ERR_INPUT, h->path, "%s: attribute 'checksum' is not an integer", label);
    else if (H5Aread(a, H5T_NATIVE_UINT32, crc) < 0)
        rc = H5ERR(st, DD2_ERR_INPUT, h->path, "%s: attribute 'checksum': cannot read", label);
    H5Aclose(a);
    return rc;
}

static int verify_checksum(dd2_h5 *h, const char *name, hid_t ds, const void *data, size_t bytes,
                           dd2_status *st) {
    uint32_t stored;
    DD2_TRY(read_checksum(h, name, ds, &stored, st));
    uint32_t computed = dd2_h5_crc32(0, data, bytes);
    if (stored != computed)
        return PFAIL(st, DD2_ERR_INPUT, h->path,
                     "dataset '%s': checksum mismatch (stored 0x%08x, computed 0x%08x)", name, (unsigned)stored,
                     (unsigned)computed);
    return DD2_OK;
}

static int write_checksum(dd2_h5 *h, const char *name, hid_t ds, const void *data, size_t bytes,
                          dd2_status *st) {
    uint32_t crc = dd2_h5_crc32(0, data, bytes);
    if (attr_put(ds, "checksum", H5T_STD_U32LE, H5T_NATIVE_UINT32, &crc) < 0)
        return H5FAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': cannot write checksum attribute", name);
    return DD2_OK;
}

/* ---- files ---------------------------------------------------------------------------------- */

/* File access properties: close everything on H5Fclose; lock the file where the file system
 * supports it (and carry on where it does not, e.g. some network file systems). For writing,
 * pin the format to HDF5 1.8 (checksummed metadata, readable by every HDF5 >= 1.8 / h5py). */
static hid_t make_fapl(int for_write) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return h5_grab();
    int bad = H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0;
    if (!bad && for_write) bad = H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) < 0;
#if H5_VERSION_GE(1, 10, 7)
    if (!bad) bad = H5Pset_file_locking(fapl, 1, 1) < 0;
#endif
    if (bad) {
        h5_grab();
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

static int new_handle(const char *path, dd2_h5 **out, dd2_status *st) {
    *out = NULL;
    if (!path || !*path) return DD2_FAIL(st, DD2_ERR_RUNTIME, "HDF5 file: empty path");
    dd2_h5 *h = DD2_CALLOC(1, sizeof *h, st);
    if (!h) return DD2_ERR_RUNTIME;
    size_t n = strlen(path) + 1;
    h->path = DD2_MALLOC(n, st);
    if (!h->path) {
        free(h);
        return DD2_ERR_RUNTIME;
    }
    memcpy(h->path, path, n);
    h->file = -1;
    *out = h;
    return DD2_OK;
}

static void free_handle(dd2_h5 *h) {
    free(h->path);
    free(h);
}

/* Create the HDF5 file `real` (path or path.tmp) for handle h. */
static int create_file(dd2_h5 *h, const char *real, dd2_status *st) {
    h5_init();
    hid_t fapl = make_fapl(1);
    if (fapl < 0) return H5FAIL(st, DD2_ERR_RUNTIME, h->path, "cannot set up file access");
    h->file = H5Fcreate(real, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (h->file < 0) h5_grab();
    H5Pclose(fapl);
    if (h->file < 0) {
        if (strcmp(real, h->path) != 0)
            return H5FAIL(st, DD2_ERR_RUNTIME, h->path, "cannot create HDF5 file (as %s)", real);
        return H5FAIL(st, DD2_ERR_RUNTIME, h->path, "cannot create HDF5 file");
    }
    h->writable = 1;
    return DD2_OK;
}

int dd2_h5_create(const char *path, dd2_h5 **out, dd2_status *st) {
    dd2_h5 *h;
    DD2_TRY(new_handle(path, &h, st));
    int rc = create_file(h, path, st);
    if (rc != DD2_OK) {
        free_handle(h);
        return rc;
    }
    *out = h;
    return DD2_OK;
}

int dd2_h5_create_atomic(const char *path, dd2_h5 **out, dd2_status *st) {
    dd2_h5 *h;
    DD2_TRY(new_handle(path, &h, st));
    int rc = dd2_atomic_begin(&h->atomic, path, st);
    if (rc == DD2_OK) rc = create_file(h, h->atomic.tmp_path, st);
    if (rc != DD2_OK) {
        dd2_atomic_abort(&h->atomic);
        free_handle(h);
        return rc;
    }
    *out = h;
    return DD2_OK;
}

int dd2_h5_open_read(const char *path, dd2_h5 **out, dd2_status *st) {
    dd2_h5 *h;
    DD2_TRY(new_handle(path, &h, st));
    h5_init();
    int rc = DD2_OK;
    struct stat sb;
    if (stat(path, &sb) != 0)
        rc = PFAIL(st, DD2_ERR_INPUT, path, "cannot open: %s", strerror(errno));
    else if (S_ISDIR(sb.st_mode))
        rc = PFAIL(st, DD2_ERR_INPUT, path, "cannot open: is a directory");
    else if (access(path, R_OK) != 0)
        rc = PFAIL(st, DD2_ERR_INPUT, path, "cannot open: %s", strerror(errno));
    else if (sb.st_size == 0)
        rc = PFAIL(st, DD2_ERR_INPUT, path, "not an HDF5 file (empty file)");
    if (rc == DD2_OK) {
#if H5_VERSION_GE(1, 12, 0)
        htri_t is = H5Fis_accessible(path, H5P_DEFAULT);
#else
        htri_t is = H5Fis_hdf5(path);
#endif
        if (is < 0)
            rc = H5ERR(st, DD2_ERR_INPUT, path, "cannot open");
        else if (is == 0)
            rc = PFAIL(st, DD2_ERR_INPUT, path,
                       "not an HDF5 file (no HDF5 signature; damaged or another format)");
    }
    if (rc == DD2_OK) {
        hid_t fapl = make_fapl(0);
        if (fapl < 0)
            rc = H5FAIL(st, DD2_ERR_RUNTIME, path, "cannot set up file access");
        else {
            h->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
            if (h->file < 0) h5_grab();
            H5Pclose(fapl);
            if (h->file < 0) rc = H5FAIL(st, DD2_ERR_INPUT, path, "cannot open HDF5 file");
        }
    }
    if (rc != DD2_OK) {
        free_handle(h);
        return rc;
    }
    *out = h;
    return DD2_OK;
}

int dd2_h5_close(dd2_h5 *h, dd2_status *st) {
    if (!h) return DD2_OK;
    int rc = DD2_OK;
    if (h->file >= 0 && H5Fclose(h->file) < 0)
        rc = H5ERR(st, DD2_ERR_RUNTIME, h->path, "cannot close HDF5 file");
    h->file = -1;
    if (h->atomic.active) {
        if (rc == DD2_OK && h->failed)
            rc = PFAIL(st, DD2_ERR_RUNTIME, h->path, "not committed: an earlier write to this file failed");
        if (rc == DD2_OK)
            rc = dd2_atomic_commit(&h->atomic, st);
        else
            dd2_atomic_abort(&h->atomic);
    }
    free_handle(h);
    return rc;
}

void dd2_h5_abort(dd2_h5 *h) {
    if (!h) return;
    if (h->file >= 0) H5Fclose(h->file);
    dd2_atomic_abort(&h->atomic);
    free_handle(h);
}

const char *dd2_h5_path(const dd2_h5 *h) { return h ? h->path : "(null)"; }

/* ---- arrays --------------------------------------------------------------------------------- */

/* Check type/rank/dims arguments and compute the byte size. */
static int check_shape_args(dd2_h5 *h, const char *name, dd2_h5_type type, int rank, const int64_t *dims,
                            int64_t *count, size_t *bytes, dd2_status *st) {
    if (!type_valid(type))
        return PFAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': invalid element type %d", name, (int)type);
    if (rank < 0 || rank > DD2_H5_MAX_RANK)
        return PFAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': rank %d not supported (0..%d)", name, rank,
                     DD2_H5_MAX_RANK);
    if (rank > 0 && !dims) return PFAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': dims is NULL", name);
    if (shape_bytes(rank, dims, dd2_h5_type_size(type), count, bytes) < 0)
        return PFAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': negative or too large dimensions", name);
    return DD2_OK;
}

/* Create dataset `name` (intermediate groups on demand) with the given file type and space. */
static int create_dataset(dd2_h5 *h, const char *name, hid_t ftype, hid_t space, hid_t *out, dd2_status *st) {
    *out = -1;
    int exists;
    if (link_exists(h->file, name, &exists) < 0)
        return H5FAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': cannot look up", name);
    if (exists) return PFAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': already exists", name);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = -1;
    if (lcpl >= 0 && dcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0)
        ds = H5Dcreate2(h->file, name, ftype, space, lcpl, dcpl, H5P_DEFAULT);
    if (ds < 0) h5_grab();
    h5_close_id(lcpl);
    h5_close_id(dcpl);
    if (ds < 0) return H5FAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': cannot create", name);
    *out = ds;
    return DD2_OK;
}

static int write_impl(dd2_h5 *h, const char *name, dd2_h5_type type, int rank, const int64_t *dims,
                      const void *data, dd2_status *st) {
    DD2_TRY(check_writable(h, st));
    DD2_TRY(check_name(h, name, "dataset", st));
    int64_t count;
    size_t bytes;
    DD2_TRY(check_shape_args(h, name, type, rank, dims, &count, &bytes, st));
    if (bytes > 0 && !data) return PFAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': data is NULL", name);
    hsize_t hd[DD2_H5_MAX_RANK];
    for (int i = 0; i < rank; i++) hd[i] = (hsize_t)dims[i];
    hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, hd, NULL);
    if (space < 0) return H5ERR(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': cannot make dataspace", name);
    hid_t ds;
    int rc = create_dataset(h, name, file_type(type), space, &ds, st);
    H5Sclose(space);
    if (rc != DD2_OK) return rc;
    if (slab_io(ds, mem_type(type), rank, dims, dd2_h5_type_size(type), (void *)data, 1) < 0)
        rc = H5FAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': write failed", name);
    if (rc == DD2_OK) rc = write_checksum(h, name, ds, data, bytes, st);
    H5Dclose(ds);
    return rc;
}

static int read_impl(dd2_h5 *h, const char *name, dd2_h5_type type, int rank, const int64_t *dims, void *data,
                     dd2_status *st) {
    int64_t count;
    size_t bytes;
    DD2_TRY(check_shape_args(h, name, type, rank, dims, &count, &bytes, st));
    if (bytes > 0 && !data) return PFAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': data is NULL", name);
    hid_t ds;
    DD2_TRY(open_dataset(h, name, &ds, st));
    dd2_h5_shape sh;
    int rc = dataset_shape(h, name, ds, &sh, st);
    int same = rc == DD2_OK && sh.type == type && sh.rank == rank;
    for (int i = 0; same && i < rank; i++) same = sh.dims[i] == dims[i];
    if (rc == DD2_OK && !same) {
        char want[160], got[160];
        format_dims(want, sizeof want, rank, dims);
        format_dims(got, sizeof got, sh.rank, sh.dims);
        rc = PFAIL(st, DD2_ERR_INPUT, h->path, "dataset '%s': shape mismatch: expected %s %s, found %s %s",
                   name, dd2_h5_type_name(type), want, dd2_h5_type_name(sh.type), got);
    }
    if (rc == DD2_OK && slab_io(ds, mem_type(type), rank, dims, dd2_h5_type_size(type), data, 0) < 0)
        rc = H5FAIL(st, DD2_ERR_INPUT, h->path, "dataset '%s': read failed", name);
    if (rc == DD2_OK) rc = verify_checksum(h, name, ds, data, bytes, st);
    H5Dclose(ds);
    return rc;
}

int dd2_h5_write(dd2_h5 *h, const char *name, dd2_h5_type type, int rank, const int64_t *dims, const void *data,
                 dd2_status *st) {
    int rc = write_impl(h, name, type, rank, dims, data, st);
    if (rc != DD2_OK) h->failed = 1;
    return rc;
}

int dd2_h5_read(dd2_h5 *h, const char *name, dd2_h5_type type, int rank, const int64_t *dims, void *data,
                dd2_status *st) {
    return read_impl(h, name, type, rank, dims, data, st);
}

int dd2_h5_get_shape(dd2_h5 *h, const char *name, dd2_h5_shape *shape, dd2_status *st) {
    hid_t ds;
    DD2_TRY(open_dataset(h, name, &ds, st));
    int rc = dataset_shape(h, name, ds, shape, st);
    H5Dclose(ds);
    return rc;
}

#define TYPED_IO(suffix, ctype, tag)                                                                           \
    int dd2_h5_write_##suffix(dd2_h5 *h, const char *name, int rank, const int64_t *dims, const ctype *data,   \
                              dd2_status *st) {                                                                \
        return dd2_h5_write(h, name, tag, rank, dims, data, st);                                               \
    }                                                                                                          \
    int dd2_h5_read_##suffix(dd2_h5 *h, const char *name, int rank, const int64_t *dims, ctype *data,          \
                             dd2_status *st) {                                                                 \
        return dd2_h5_read(h, name, tag, rank, dims, data, st);                                                \
    }
TYPED_IO(f32, float, DD2_H5_F32)
TYPED_IO(f64, double, DD2_H5_F64)
TYPED_IO(i32, int32_t, DD2_H5_I32)
TYPED_IO(i64, int64_t, DD2_H5_I64)
TYPED_IO(u8, uint8_t, DD2_H5_U8)
#undef TYPED_IO

/* ---- text ----------------------------------------------------------------------------------- */

static int write_text_impl(dd2_h5 *h, const char *name, const char *text, dd2_status *st) {
    DD2_TRY(check_writable(h, st));
    DD2_TRY(check_name(h, name, "dataset", st));
    if (!text) return PFAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': text is NULL", name);
    size_t len = strlen(text), size = len ? len : 1; /* HDF5 strings have at least one byte */
    const char *bytes = len ? text : "";
    hid_t t = str_type(size, H5T_STR_NULLPAD);
    if (t < 0) return H5FAIL(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': cannot make string type", name);
    hid_t space = H5Screate(H5S_SCALAR), ds = -1;
    int rc = space < 0 ? H5ERR(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': cannot make dataspace", name)
                       : create_dataset(h, name, t, space, &ds, st);
    if (rc == DD2_OK && H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes) < 0)
        rc = H5ERR(st, DD2_ERR_RUNTIME, h->path, "dataset '%s': write failed", name);
    if (rc == DD2_OK) rc = write_checksum(h, name, ds, bytes, size, st);
    h5_close_id(ds);
    h5_close_id(space);
    H5Tclose(t);
    return rc;
}

int dd2_h5_write_text(dd2_h5 *h, const char *name, const char *text, dd2_status *st) {
    int rc = write_text_impl(h, name, text, st);
    if (rc != DD2_OK) h->failed = 1;
    return rc;
}

int dd2_h5_read_text(dd2_h5 *h, const char *name, char **text, dd2_status *st) {
    *text = NULL;
    hid_t ds;
    DD2_TRY(open_dataset(h, name, &ds, st));
    int rc = DD2_OK;
    hid_t ftype = H5Dget_type(ds), space = -1, mtype = -1;
    char *buf = NULL;
    size_t size = 0;
    if (ftype < 0)
        rc = H5ERR(st, DD2_ERR_INPUT, h->path, "dataset '%s': cannot read type", name);
    else if ((space = H5Dget_space(ds)) < 0)
        rc = H5ERR(st, DD2_ERR_INPUT, h->path, "dataset '%s': cannot read shape", name);
    else if (H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) != 0 ||
             H5Sget_simple_extent_type(space) != H5S_SCALAR)
        rc = PFAIL(st, DD2_ERR_INPUT, h->path, "dataset '%s': not a scalar fixed-length string (text) dataset",
                   name);
    if (rc == DD2_OK) {
        size = H5Tget_size(ftype);
        buf = size ? DD2_MALLOC(size + 1, st) : NULL;
        mtype = H5Tcopy(ftype);
        if (!buf)
            rc = PFAIL(st, DD2_ERR_INPUT, h->path, "dataset '%s': bad string size %zu", name, size);
        else if (mtype < 0 || H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            rc = H5ERR(st, DD2_ERR_INPUT, h->path, "dataset '%s': read failed", name);
    }
    if (rc == DD2_OK) rc = verify_checksum(h, name, ds, buf, size, st);
    h5_close_id(mtype);
    h5_close_id(ftype);
    h5_close_id(space);
    H5Dclose(ds);
    if (rc != DD2_OK) {
        free(buf);
        return rc;
    }
    buf[size] = 0;
    *text = buf;
    return DD2_OK;
}

/* ---- existence and listing ------------------------------------------------------------------ */

int dd2_h5_exists(dd2_h5 *h, const char *name, int *exists, dd2_status *st) {
    *exists = 0;
    DD2_TRY(check_name(h, name, "object", st));
    if (link_exists(h->file, name, exists) < 0)
        return H5FAIL(st, DD2_ERR_INPUT, h->path, "object '%s': cannot look up", name);
    return DD2_OK;
}

typedef struct {
    dd2_h5 *h;
    const char *prefix; /* "" or "group/" */
    dd2_h5_visit_fn fn;
    void *ctx;
    dd2_status *st;
    int rc;        /* non-zero: stop (user rc, or our error) */
    int h5_failed; /* an HDF5 call inside the callback failed (detail grabbed) */
} visit_ctx;

#if H5_VERSION_GE(1, 12, 0)
#define DD2_LINFO_T H5L_info2_t
#else
#define DD2_LINFO_T H5L_info_t
#endif

static herr_t visit_cb(hid_t group, const char *name, const DD2_LINFO_T *info, void *data) {
    (void)info;
    visit_ctx *v = data;
    hid_t o = H5Oopen(group, name, H5P_DEFAULT);
    if (o < 0) {
        h5_grab();
        v->h5_failed = 1;
        v->rc = H5FAIL(v->st, DD2_ERR_INPUT, v->h->path, "object '%s%s': cannot open", v->prefix, name);
        return 1;
    }
    int is_ds = H5Iget_type(o) == H5I_DATASET;
    H5Oclose(o);
    if (!is_ds) return 0;
    size_t n = strlen(v->prefix) + strlen(name) + 1;
    char *full = malloc(n);
    if (!full) {
        v->rc = PFAIL(v->st, DD2_ERR_RUNTIME, v->h->path, "out of memory listing datasets");
        return 1;
    }
    snprintf(full, n, "%s%s", v->prefix, name);
    v->rc = v->fn(full, v->ctx, v->st);
    free(full);
    return v->rc != 0 ? 1 : 0;
}

int dd2_h5_list_datasets(dd2_h5 *h, const char *group, dd2_h5_visit_fn fn, void *ctx, dd2_status *st) {
    hid_t g;
    DD2_TRY(open_object(h, group, DD2_ERR_INPUT, &g, st));
    char *prefix = NULL;
    if (!is_root(group)) {
        size_t n = strlen(group) + 2;
        prefix = DD2_MALLOC(n, st);
        if (!prefix) {
            H5Oclose(g);
            return DD2_ERR_RUNTIME;
        }
        snprintf(prefix, n, "%s/", group);
    }
    int rc = DD2_OK;
    if (H5Iget_type(g) == H5I_DATASET) { /* a single dataset: visit just it */
        rc = fn(group, ctx, st);
    } else {
        visit_ctx v = {h, prefix ? prefix : "", fn, ctx, st, 0, 0};
        herr_t r = H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, visit_cb, &v);
        if (v.rc != 0)
            rc = v.rc;
        else if (r < 0)
            rc = H5ERR(st, DD2_ERR_INPUT, h->path, "cannot list datasets under '%s'", prefix ? group : "/");
    }
    free(prefix);
    H5Oclose(g);
    return rc;
}

/* ---- attributes (public) -------------------------------------------------------------------- */

static int attr_set(dd2_h5 *h, const char *obj, const char *attr, hid_t ftype, hid_t mtype, const void *value,
                    dd2_status *st) {
    char label[600];
    obj_label(obj, label, sizeof label);
    DD2_TRY(check_writable(h, st));
    if (!attr || !*attr) return PFAIL(st, DD2_ERR_RUNTIME, h->path, "%s: empty attribute name", label);
    hid_t o;
    DD2_TRY(open_object(h, obj, DD2_ERR_RUNTIME, &o, st));
    int rc = DD2_OK;
    if (H5Iget_type(o) == H5I_DATASET && strcmp(attr, "checksum") == 0)
        rc =
            PFAIL(st, DD2_ERR_RUNTIME, h->path, "%s: attribute name 'checksum' is reserved on datasets", label);
    else if (attr_put(o, attr, ftype, mtype, value) < 0)
        rc = H5FAIL(st, DD2_ERR_RUNTIME, h->path, "%s: cannot write attribute '%s'", label, attr);
    H5Oclose(o);
    return rc;
}

int dd2_h5_attr_set_str(dd2_h5 *h, const char *obj, const char *attr, const char *value, dd2_status *st) {
    if (!value) {
        h->failed = 1;
        return PFAIL(st, DD2_ERR_RUNTIME, h->path, "attribute '%s': value is NULL", attr ? attr : "");
    }
    hid_t t = str_type(strlen(value) + 1, H5T_STR_NULLTERM);
    int rc = t < 0 ? H5FAIL(st, DD2_ERR_RUNTIME, h->path, "attribute '%s': cannot make string type",
                            attr ? attr : "")
                   : attr_set(h, obj, attr, t, t, value, st);
    h5_close_id(t);
    if (rc != DD2_OK) h->failed = 1;
    return rc;
}

int dd2_h5_attr_set_i64(dd2_h5 *h, const char *obj, const char *attr, int64_t value, dd2_status *st) {
    int rc = attr_set(h, obj, attr, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, st);
    if (rc != DD2_OK) h->failed = 1;
    return rc;
}

int dd2_h5_attr_set_f64(dd2_h5 *h, const char *obj, const char *attr, double value, dd2_status *st) {
    int rc = attr_set(h, obj, attr, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, st);
    if (rc != DD2_OK) h->failed = 1;
    return rc;
}

/* Open obj and its attribute; returns the attribute's datatype class via *cls. */
static int attr_get_open(dd2_h5 *h, const char *obj, const char *attr, char *label, size_t label_n, hid_t *o,
                         hid_t *a, hid_t *type, dd2_status *st) {
    *o = *a = *type = -1;
    obj_label(obj, label, label_n);
    if (!attr || !*attr) return PFAIL(st, DD2_ERR_RUNTIME, h->path, "%s: empty attribute name", label);
    DD2_TRY(open_object(h, obj, DD2_ERR_INPUT, o, st));
    int rc = attr_open(h, *o, label, attr, a, st);
    if (rc == DD2_OK) {
        *type = H5Aget_type(*a);
        if (*type < 0)
            rc = H5ERR(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': cannot read type", label, attr);
    }
    if (rc != DD2_OK) {
        h5_close_id(*a);
        H5Oclose(*o);
        *o = *a = -1;
    }
    return rc;
}

static void attr_get_close(hid_t o, hid_t a, hid_t type) {
    h5_close_id(type);
    h5_close_id(a);
    if (o >= 0) H5Oclose(o);
}

int dd2_h5_attr_get_str(dd2_h5 *h, const char *obj, const char *attr, char **value, dd2_status *st) {
    *value = NULL;
    char label[600];
    hid_t o, a, t;
    DD2_TRY(attr_get_open(h, obj, attr, label, sizeof label, &o, &a, &t, st));
    int rc = DD2_OK;
    char *out = NULL;
    hid_t mtype = -1;
    if (H5Tget_class(t) != H5T_STRING) {
        rc = PFAIL(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': not a string", label, attr);
    } else if (H5Tis_variable_str(t) > 0) {
        char *p = NULL;
        mtype = H5Tcopy(H5T_C_S1);
        if (mtype < 0 || H5Tset_size(mtype, H5T_VARIABLE) < 0 || H5Tset_cset(mtype, H5Tget_cset(t)) < 0 ||
            H5Aread(a, mtype, &p) < 0) {
            rc = H5ERR(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': cannot read", label, attr);
        } else {
            size_t n = p ? strlen(p) + 1 : 1;
            out = DD2_MALLOC(n, st);
            if (out)
                memcpy(out, p ? p : "", n);
            else
                rc = DD2_ERR_RUNTIME;
        }
        if (p) H5free_memory(p);
    } else {
        size_t size = H5Tget_size(t);
        out = DD2_MALLOC(size + 1, st);
        mtype = H5Tcopy(t);
        if (!out)
            rc = DD2_ERR_RUNTIME;
        else if (mtype < 0 || H5Aread(a, mtype, out) < 0)
            rc = H5ERR(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': cannot read", label, attr);
        else
            out[size] = 0;
    }
    h5_close_id(mtype);
    attr_get_close(o, a, t);
    if (rc != DD2_OK) {
        free(out);
        return rc;
    }
    *value = out;
    return DD2_OK;
}

/* Read a numeric attribute into mtype; `accept_float` allows float attributes. */
static int attr_get_num(dd2_h5 *h, const char *obj, const char *attr, hid_t mtype, int accept_float,
                        void *value, dd2_status *st) {
    char label[600];
    hid_t o, a, t;
    DD2_TRY(attr_get_open(h, obj, attr, label, sizeof label, &o, &a, &t, st));
    H5T_class_t cls = H5Tget_class(t);
    int rc = DD2_OK;
    if (!(cls == H5T_INTEGER || (accept_float && cls == H5T_FLOAT)))
        rc = PFAIL(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': not %s", label, attr,
                   accept_float ? "a number" : "an integer");
    else if (H5Aread(a, mtype, value) < 0)
        rc = H5ERR(st, DD2_ERR_INPUT, h->path, "%s: attribute '%s': cannot read", label, attr);
    attr_get_close(o, a, t);
    return rc;
}

int dd2_h5_attr_get_i64(dd2_h5 *h, const char *obj, const char *attr, int64_t *value, dd2_status *st) {
    return attr_get_num(h, obj, attr, H5T_NATIVE_INT64, 0, value, st);
}

int dd2_h5_attr_get_f64(dd2_h5 *h, const char *obj, const char *attr, double *value, dd2_status *st) {
    return attr_get_num(h, obj, attr, H5T_NATIVE_DOUBLE, 1, value, st);
}

int dd2_h5_attr_exists(dd2_h5 *h, const char *obj, const char *attr, int *exists, dd2_status *st) {
    *exists = 0;
    if (!is_root(obj)) {
        DD2_TRY(check_name(h, obj, "object", st));
        if (link_exists(h->file, obj, exists) < 0)
            return H5FAIL(st, DD2_ERR_INPUT, h->path, "object '%s': cannot look up", obj);
        if (!*exists) return DD2_OK;
    }
    hid_t o;
    DD2_TRY(open_object(h, obj, DD2_ERR_INPUT, &o, st));
    htri_t r = H5Aexists(o, attr);
    if (r < 0) h5_grab();
    H5Oclose(o);
    if (r < 0) return H5FAIL(st, DD2_ERR_INPUT, h->path, "attribute '%s': cannot look up", attr);
    *exists = r > 0;
    return DD2_OK;
}
