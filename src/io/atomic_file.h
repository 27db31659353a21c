/* Durable, atomic replacement of files and directories (POSIX).
 *
 * Protocol for a file PATH: write everything to "PATH.tmp", fsync it, rename it over PATH,
 * fsync the directory holding PATH. A reader therefore sees either the complete old PATH or the
 * complete new one; a crash or an abort at any point before the rename leaves an existing PATH
 * untouched (at worst a stale "PATH.tmp" remains, which the next begin truncates and reuses).
 *
 * Contract: one writer per PATH at a time ("PATH.tmp" is a fixed name, not a unique one).
 * Every function returns DD2_OK or fills `st` (DD2_ERR_RUNTIME for I/O failures, DD2_ERR_INPUT
 * for bad arguments such as an empty path) with a message naming the path(s) and strerror(errno).
 *
 * Generic use (any writer: stdio, HDF5, ...):
 *     dd2_atomic a;
 *     DD2_TRY(dd2_atomic_begin(&a, "out/stats.bin", st));   // a.tmp_path = "out/stats.bin.tmp"
 *     ... create and write a.tmp_path, close it ...
 *     if (failed) { dd2_atomic_abort(&a); return ...; }      // removes the .tmp, PATH untouched
 *     DD2_TRY(dd2_atomic_commit(&a, st));                   // fsync, rename, fsync dir
 *
 * Directories (checkpoints are directories committed by rename): write every file inside
 * "step_X.tmp/" (each one fsynced, e.g. via dd2_h5_create_atomic or dd2_fsync_path), then
 * dd2_commit_dir("step_X.tmp", "step_X", st).
 */
#ifndef DD2_IO_ATOMIC_FILE_H
#define DD2_IO_ATOMIC_FILE_H

#include <stddef.h>

#include "core/status.h"

typedef struct dd2_atomic {
    char *path;     /* final path (owned) */
    char *tmp_path; /* path + ".tmp" (owned): where the caller writes */
    int active;     /* 1 between begin and commit/abort */
} dd2_atomic;

/* Start an atomic write of `path`: fills `a` (allocates the two path strings) and removes a stale
 * "path.tmp" left by an earlier crash. Does not create the temporary file. On failure `a` is left
 * inactive with nothing to free. */
int dd2_atomic_begin(dd2_atomic *a, const char *path, dd2_status *st);

/* Publish the temporary file: fsync(tmp_path), rename(tmp_path, path), fsync(dir of path).
 * The caller must have closed its own handle on tmp_path. Frees `a` (also on failure; on failure
 * before the rename the .tmp is removed and `path` is untouched). */
int dd2_atomic_commit(dd2_atomic *a, dd2_status *st);

/* Give up: remove tmp_path (if present) and free `a`. Safe on an inactive or zeroed `a`. */
void dd2_atomic_abort(dd2_atomic *a);

/* Atomically replace `path` with `len` bytes of `data` (e.g. a LATEST pointer). */
int dd2_atomic_write_bytes(const char *path, const void *data, size_t len, dd2_status *st);
/* Same for a NUL-terminated string (written without the terminator). */
int dd2_atomic_write_text(const char *path, const char *text, dd2_status *st);

/* fsync a file or a directory given by path (opened read-only). */
int dd2_fsync_path(const char *path, dd2_status *st);

/* fsync the directory that contains `path` ("." when path has no '/'). */
int dd2_fsync_parent_dir(const char *path, dd2_status *st);

/* rename(from, to), then fsync the parent directory of `to` (and of `from` if it differs).
 * Works for files and directories; a directory `to` must not exist or be empty (POSIX). */
int dd2_rename_durable(const char *from, const char *to, dd2_status *st);

/* Commit a fully written directory: fsync(tmp_dir) so its entries are durable, then
 * dd2_rename_durable(tmp_dir, final_dir). Fails (DD2_ERR_RUNTIME, naming both) if final_dir
 * exists and is not empty. The files inside must already be fsynced by their writers. */
int dd2_commit_dir(const char *tmp_dir, const char *final_dir, dd2_status *st);

/* rm -rf path: a file, or a directory and everything below it (symbolic links are removed, not
 * followed). A missing path is fine. st may be NULL (errors are then only returned). */
int dd2_rm_tree(const char *path, dd2_status *st);

#endif
