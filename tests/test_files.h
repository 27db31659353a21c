/* Files for tests: a private temporary directory, paths inside it, and whole-file read/write.
 *
 *   tf_make_tmpdir("idx");                      // creates /tmp/dd2-test-idx-XXXXXX in tf_dir
 *   tf_write_file(tf_path("a.bin"), buf, n);
 *   size_t len; unsigned char *b = tf_read_file(tf_path("a.bin"), &len); ... free(b);
 *   tf_remove_tmpdir();                         // at the end: removes the directory and all in it
 *
 * Header-only (static inline, so a test that uses only some of these gets no unused-function
 * warnings); include after the system headers, next to test_util.h. Needs mkdtemp (POSIX 2008;
 * the Makefile builds with -D_GNU_SOURCE).
 */
#ifndef DD2_TEST_FILES_H
#define DD2_TEST_FILES_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The test binary's temporary directory, set by tf_make_tmpdir(). */
static char tf_dir[64];

/* Create a fresh directory /tmp/dd2-test-<tag>-XXXXXX (mkdtemp) and store its path in tf_dir.
 * On failure print the reason and exit with status 1: no test can run without it. */
static inline void tf_make_tmpdir(const char *tag) {
    snprintf(tf_dir, sizeof tf_dir, "/tmp/dd2-test-%s-XXXXXX", tag);
    if (!mkdtemp(tf_dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

/* "<tf_dir>/<name>" in one of 8 rotating static buffers: a result stays valid until 8 more calls,
 * so a few paths can be held at once (e.g. a source and a destination). */
static inline const char *tf_path(const char *name) {
    static char buf[8][512];
    static int k = 0;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tf_dir, name);
    return buf[k];
}

/* Remove path: a file or link is unlinked, a directory is emptied recursively and removed. A
 * missing path is not an error; failures (and entries whose path would exceed 1023 characters)
 * are left silently (see tf_remove_tmpdir for a warning). */
static inline void tf_remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[1024];
            int m = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            if (m > 0 && (size_t)m < sizeof sub) tf_remove_tree(sub); /* never a truncated path */
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* 1 if path exists (stat succeeds: a file, a directory, a link to either), else 0. */
static inline int tf_file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Remove tf_dir and everything in it, warning on stderr if it is still there afterwards. */
static inline void tf_remove_tmpdir(void) {
    tf_remove_tree(tf_dir);
    if (tf_file_exists(tf_dir)) fprintf(stderr, "warning: could not remove %s\n", tf_dir);
}

/* Read the whole file at path into a malloc'd buffer (the caller frees it) and set *len to its
 * length; one extra NUL byte follows the data, so text can be used as a string. Returns NULL
 * with *len = 0 if the file cannot be opened or read, or memory runs out. */
static inline unsigned char *tf_read_file(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 64 * 1024, n = 0;
    unsigned char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break; /* end of file or an error (told apart by ferror below) */
        unsigned char *bigger = realloc(buf, 2 * cap + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int failed = ferror(f);
    fclose(f);
    if (buf && failed) {
        free(buf);
        buf = NULL;
    }
    if (!buf) return NULL;
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Create or replace the file at path with len bytes of data (len 0: an empty file).
 * Returns 0 on success, -1 if it cannot be created or a write or the close fails. */
static inline int tf_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

#endif
