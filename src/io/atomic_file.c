/* Durable atomic file and directory replacement; see atomic_file.h for the protocol. */
#include "io/atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *str_dup(const char *s, dd2_status *st) {
    size_t n = strlen(s) + 1;
    char *p = DD2_MALLOC(n, st);
    if (p) memcpy(p, s, n);
    return p;
}

/* The directory holding `path`, as a new string: "." for "x", "/" for "/x", "a/b" for "a/b/x". */
static char *parent_dir(const char *path, dd2_status *st) {
    const char *slash = strrchr(path, '/');
    if (!slash) return str_dup(".", st);
    while (slash > path && slash[-1] == '/') slash--; /* "a//x" -> "a" */
    if (slash == path) return str_dup("/", st);
    size_t n = (size_t)(slash - path);
    char *p = DD2_MALLOC(n + 1, st);
    if (!p) return NULL;
    memcpy(p, path, n);
    p[n] = 0;
    return p;
}

int dd2_fsync_path(const char *path, dd2_status *st) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot open for fsync: %s", path, strerror(errno));
    struct stat sb;
    int is_dir = fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode);
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* Some file systems cannot fsync a directory (EINVAL); there is nothing more to do there. */
    if (rc != 0 && !(is_dir && (err == EINVAL || err == ENOTSUP)))
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: fsync failed: %s", path, strerror(err));
    return DD2_OK;
}

int dd2_fsync_parent_dir(const char *path, dd2_status *st) {
    char *dir = parent_dir(path, st);
    if (!dir) return st ? st->code : DD2_ERR_RUNTIME;
    int rc = dd2_fsync_path(dir, st);
    free(dir);
    return rc;
}

int dd2_rename_durable(const char *from, const char *to, dd2_status *st) {
    if (rename(from, to) != 0)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "cannot rename %s to %s: %s", from, to, strerror(errno));
    DD2_TRY(dd2_fsync_parent_dir(to, st));
    char *a = parent_dir(from, st), *b = parent_dir(to, st);
    int rc = (a && b) ? DD2_OK : DD2_ERR_RUNTIME;
    if (rc == DD2_OK && strcmp(a, b) != 0) rc = dd2_fsync_path(a, st);
    free(a);
    free(b);
    return rc;
}

int dd2_commit_dir(const char *tmp_dir, const char *final_dir, dd2_status *st) {
    struct stat sb;
    if (stat(tmp_dir, &sb) != 0)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot commit directory: %s", tmp_dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot commit directory: not a directory", tmp_dir);
    DD2_TRY(dd2_fsync_path(tmp_dir, st));
    return dd2_rename_durable(tmp_dir, final_dir, st);
}

static void atomic_free(dd2_atomic *a) {
    free(a->path);
    free(a->tmp_path);
    a->path = a->tmp_path = NULL;
    a->active = 0;
}

int dd2_atomic_begin(dd2_atomic *a, const char *path, dd2_status *st) {
    memset(a, 0, sizeof *a);
    if (!path || !*path) return DD2_FAIL(st, DD2_ERR_INPUT, "atomic write: empty path");
    size_t n = strlen(path);
    if (path[n - 1] == '/')
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: atomic write: path names a directory", path);
    a->path = str_dup(path, st);
    a->tmp_path = DD2_MALLOC(n + 5, st);
    if (!a->path || !a->tmp_path) {
        atomic_free(a);
        return DD2_ERR_RUNTIME;
    }
    memcpy(a->tmp_path, path, n);
    memcpy(a->tmp_path + n, ".tmp", 5);
    if (unlink(a->tmp_path) != 0 && errno != ENOENT) {
        int err = errno;
        dd2_status_fail(st, DD2_ERR_RUNTIME, __FILE__, __LINE__, __func__,
                        "%s: cannot remove stale temporary file: %s", a->tmp_path, strerror(err));
        atomic_free(a);
        return DD2_ERR_RUNTIME;
    }
    a->active = 1;
    return DD2_OK;
}

int dd2_atomic_commit(dd2_atomic *a, dd2_status *st) {
    if (!a->active) {
        atomic_free(a);
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "atomic commit without a matching begin");
    }
    int rc = dd2_fsync_path(a->tmp_path, st);
    if (rc == DD2_OK && rename(a->tmp_path, a->path) != 0)
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "cannot rename %s to %s: %s", a->tmp_path, a->path, strerror(errno));
    if (rc != DD2_OK) {
        unlink(a->tmp_path); /* never published: drop it, the old file stays */
        atomic_free(a);
        return rc;
    }
    rc = dd2_fsync_parent_dir(a->path, st);
    atomic_free(a);
    return rc;
}

void dd2_atomic_abort(dd2_atomic *a) {
    if (!a) return;
    if (a->active && a->tmp_path) unlink(a->tmp_path);
    atomic_free(a);
}

/* write(2) all of buf, retrying partial writes and EINTR. Returns 0 or an errno value. */
static int write_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        size_t n = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int dd2_atomic_write_bytes(const char *path, const void *data, size_t len, dd2_status *st) {
    dd2_atomic a;
    DD2_TRY(dd2_atomic_begin(&a, path, st));
    int fd = open(a.tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        dd2_atomic_abort(&a);
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s.tmp: cannot create: %s", path, strerror(err));
    }
    int err = write_all(fd, data, len);
    if (close(fd) != 0 && !err) err = errno;
    if (err) {
        dd2_atomic_abort(&a);
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s.tmp: write failed: %s", path, strerror(err));
    }
    return dd2_atomic_commit(&a, st);
}

int dd2_atomic_write_text(const char *path, const char *text, dd2_status *st) {
    return dd2_atomic_write_bytes(path, text, strlen(text), st);
}

int dd2_rm_tree(const char *path, dd2_status *st) {
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT) return DD2_OK;
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot remove: %s", path, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT)
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot remove: %s", path, strerror(errno));
        return DD2_OK;
    }
    DIR *d = opendir(path);
    if (!d) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot remove: %s", path, strerror(errno));
    int rc = DD2_OK;
    struct dirent *e;
    char sub[4096];
    while (rc == DD2_OK && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) >= (int)sizeof sub)
            rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "%s/%s: path too long", path, e->d_name);
        if (rc == DD2_OK) rc = dd2_rm_tree(sub, st);
    }
    closedir(d);
    if (rc == DD2_OK && rmdir(path) != 0 && errno != ENOENT)
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot remove: %s", path, strerror(errno));
    return rc;
}
