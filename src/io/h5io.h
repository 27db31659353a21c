/* HDF5 file I/O for checkpoints and statistics: named n-d arrays with a verified checksum,
 * scalar attributes, and atomic commit. Conventions are documented in docs/formats.md
 * ("HDF5 files").
 *
 * Files are opened with serial (sec2) access on the calling process only; this works whether or
 * not MPI_Init was called. HDF5's automatic error printing is switched off; every failure becomes
 * a dd2_status message that names the file and the dataset/attribute, e.g.
 *   "ckpt/meta.h5: dataset 'params/wte': checksum mismatch (stored 0x1a2b3c4d, computed 0x...)".
 * Error codes: reading a missing, damaged or mismatching file/dataset/attribute is DD2_ERR_INPUT;
 * failures while writing (and misuse of the API) are DD2_ERR_RUNTIME. Nothing here exits.
 *
 * Names: a dataset name is a '/'-separated path relative to the root group, e.g.
 * "params/blocks.0.attn.wqkv"; missing intermediate groups are created on write. Names must be
 * non-empty, must not start or end with '/', and must not contain "//" or "." / ".." components.
 * For attributes `obj` names the dataset or group carrying it; NULL, "" or "/" means the file
 * (root group).
 *
 * Arrays: rank 0..DD2_H5_MAX_RANK, C (row-major) order, dims[i] >= 0 (0-sized arrays allowed;
 * dims may be NULL for rank 0). Stored little-endian, contiguous layout, no compression. Each
 * dataset gets a uint32 attribute "checksum" = CRC-32 (zlib's crc32) of its elements' bytes in
 * C order, little-endian; every read verifies it. I/O is split into pieces of at most
 * dd2_h5_max_io_bytes() (default 256 MiB), so arrays larger than 2 GiB work.
 *
 * A handle is not thread-safe; use one handle per thread (and HDF5 is not thread-safe at all in
 * this build: call it from one thread per process).
 */
#ifndef DD2_IO_H5IO_H
#define DD2_IO_H5IO_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define DD2_H5_MAX_RANK 4

typedef enum {
    DD2_H5_F32 = 0, /* float,   stored as H5T_IEEE_F32LE */
    DD2_H5_F64,     /* double,  stored as H5T_IEEE_F64LE */
    DD2_H5_I32,     /* int32_t, stored as H5T_STD_I32LE */
    DD2_H5_I64,     /* int64_t, stored as H5T_STD_I64LE */
    DD2_H5_U8       /* uint8_t, stored as H5T_STD_U8LE */
} dd2_h5_type;

/* Bytes per element of `t`; "f32", "f64", ... for messages. */
size_t dd2_h5_type_size(dd2_h5_type t);
const char *dd2_h5_type_name(dd2_h5_type t);

typedef struct dd2_h5 dd2_h5; /* opaque */

/* Shape of a stored array. */
typedef struct dd2_h5_shape {
    dd2_h5_type type;
    int rank;
    int64_t dims[DD2_H5_MAX_RANK]; /* dims[rank..] are 0 */
    int64_t count;                 /* number of elements (product of dims; 1 for rank 0) */
} dd2_h5_shape;

/* ---- files ---------------------------------------------------------------------------------- */

/* Create (truncate) `path` for writing, directly in place. */
int dd2_h5_create(const char *path, dd2_h5 **out, dd2_status *st);

/* Create `path` atomically: everything goes to "path.tmp"; dd2_h5_close commits it (fsync,
 * rename over `path`, fsync dir) unless an earlier write on this handle failed; dd2_h5_abort
 * discards it. Until the commit an existing `path` is untouched, also if the process dies. */
int dd2_h5_create_atomic(const char *path, dd2_h5 **out, dd2_status *st);

/* Open an existing file read-only. Missing file -> DD2_ERR_INPUT "path: cannot open: No such
 * file or directory"; a file without the HDF5 signature -> "path: not an HDF5 file". */
int dd2_h5_open_read(const char *path, dd2_h5 **out, dd2_status *st);

/* Close and free `h` (NULL is fine). For an atomic handle this is the commit; if any write on the
 * handle failed earlier, the file is discarded instead and an error is returned. The handle is
 * freed even when an error is returned. */
int dd2_h5_close(dd2_h5 *h, dd2_status *st);

/* Close and free without committing: an atomic handle's "path.tmp" is removed, so `path` keeps
 * its old contents; a handle from dd2_h5_create leaves its (possibly partial) file. NULL is fine. */
void dd2_h5_abort(dd2_h5 *h);

/* The path given when the handle was made (for messages). */
const char *dd2_h5_path(const dd2_h5 *h);

/* ---- arrays --------------------------------------------------------------------------------- */

/* Write a new dataset `name` of `type` with shape dims[0..rank-1] from `data` (count elements,
 * C order) and its checksum attribute. Writing a name that already exists is an error. */
int dd2_h5_write(dd2_h5 *h, const char *name, dd2_h5_type type, int rank, const int64_t *dims, const void *data,
                 dd2_status *st);

/* Read dataset `name` into `data` (room for the product of dims elements), which must have
 * exactly this element type, rank and dims; otherwise DD2_ERR_INPUT naming expected and found,
 * e.g. "dataset 'w': shape mismatch: expected f32 [3, 4], found f32 [4, 3]". Verifies the
 * checksum. On error the contents of `data` are unspecified. */
int dd2_h5_read(dd2_h5 *h, const char *name, dd2_h5_type type, int rank, const int64_t *dims, void *data,
                dd2_status *st);

/* Shape and element type of dataset `name` (DD2_ERR_INPUT if missing, not a dataset, or of an
 * element type / rank this module does not support). */
int dd2_h5_get_shape(dd2_h5 *h, const char *name, dd2_h5_shape *shape, dd2_status *st);

/* Typed shorthands for dd2_h5_write / dd2_h5_read. */
int dd2_h5_write_f32(dd2_h5 *h, const char *name, int rank, const int64_t *dims, const float *data,
                     dd2_status *st);
int dd2_h5_write_f64(dd2_h5 *h, const char *name, int rank, const int64_t *dims, const double *data,
                     dd2_status *st);
int dd2_h5_write_i32(dd2_h5 *h, const char *name, int rank, const int64_t *dims, const int32_t *data,
                     dd2_status *st);
int dd2_h5_write_i64(dd2_h5 *h, const char *name, int rank, const int64_t *dims, const int64_t *data,
                     dd2_status *st);
int dd2_h5_write_u8(dd2_h5 *h, const char *name, int rank, const int64_t *dims, const uint8_t *data,
                    dd2_status *st);
int dd2_h5_read_f32(dd2_h5 *h, const char *name, int rank, const int64_t *dims, float *data, dd2_status *st);
int dd2_h5_read_f64(dd2_h5 *h, const char *name, int rank, const int64_t *dims, double *data, dd2_status *st);
int dd2_h5_read_i32(dd2_h5 *h, const char *name, int rank, const int64_t *dims, int32_t *data, dd2_status *st);
int dd2_h5_read_i64(dd2_h5 *h, const char *name, int rank, const int64_t *dims, int64_t *data, dd2_status *st);
int dd2_h5_read_u8(dd2_h5 *h, const char *name, int rank, const int64_t *dims, uint8_t *data, dd2_status *st);

/* A text blob as a scalar fixed-length string dataset (e.g. the resolved config), with the same
 * checksum (over the string's bytes). read_text returns a malloc'd NUL-terminated copy. Text must
 * not contain NUL bytes. */
int dd2_h5_write_text(dd2_h5 *h, const char *name, const char *text, dd2_status *st);
int dd2_h5_read_text(dd2_h5 *h, const char *name, char **text, dd2_status *st);

/* *exists = 1 if a dataset or group `name` exists, else 0 (also when an intermediate group is
 * missing). Errors only for an invalid name or a damaged file. */
int dd2_h5_exists(dd2_h5 *h, const char *name, int *exists, dd2_status *st);

/* Call fn(full_name, ctx) for every dataset at or below group `group` (NULL/"" = whole file;
 * a dataset name visits just it), depth-first and sorted by name within each group; full_name is
 * relative to the root, e.g. "params/wte". A non-zero return from fn stops the walk and is
 * returned (fn may fill `st`). */
typedef int (*dd2_h5_visit_fn)(const char *name, void *ctx, dd2_status *st);
int dd2_h5_list_datasets(dd2_h5 *h, const char *group, dd2_h5_visit_fn fn, void *ctx, dd2_status *st);

/* ---- attributes (scalars on the file, a group or a dataset) -------------------------------- */

/* Set (create or replace) attribute `attr` on `obj`. Strings are stored as fixed-length UTF-8
 * (NUL-terminated), int64 as H5T_STD_I64LE, double as H5T_IEEE_F64LE. The name "checksum" is
 * reserved on datasets. */
int dd2_h5_attr_set_str(dd2_h5 *h, const char *obj, const char *attr, const char *value, dd2_status *st);
int dd2_h5_attr_set_i64(dd2_h5 *h, const char *obj, const char *attr, int64_t value, dd2_status *st);
int dd2_h5_attr_set_f64(dd2_h5 *h, const char *obj, const char *attr, double value, dd2_status *st);

/* Get a scalar attribute. get_str returns a malloc'd copy (free it) and also accepts variable-
 * length strings (as written by h5py); get_i64 needs an integer attribute; get_f64 accepts float
 * or integer ones. Missing attribute or wrong type -> DD2_ERR_INPUT naming file, object, attr. */
int dd2_h5_attr_get_str(dd2_h5 *h, const char *obj, const char *attr, char **value, dd2_status *st);
int dd2_h5_attr_get_i64(dd2_h5 *h, const char *obj, const char *attr, int64_t *value, dd2_status *st);
int dd2_h5_attr_get_f64(dd2_h5 *h, const char *obj, const char *attr, double *value, dd2_status *st);

/* *exists = 1 if `obj` exists and carries attribute `attr`, else 0. */
int dd2_h5_attr_exists(dd2_h5 *h, const char *obj, const char *attr, int *exists, dd2_status *st);

/* ---- misc ----------------------------------------------------------------------------------- */

/* CRC-32 as stored in the "checksum" attribute (zlib crc32 over `len` bytes, chunked). */
uint32_t dd2_h5_crc32(uint32_t crc, const void *data, size_t len);

/* Largest single HDF5 read/write in bytes (default 256 MiB); bigger arrays are split into
 * hyperslabs. Setter for tests only (bytes >= 1; smaller than one element means per element). */
size_t dd2_h5_max_io_bytes(void);
void dd2_h5_set_max_io_bytes(size_t bytes);

#endif
