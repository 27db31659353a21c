/* Checkpoints: sharded save with a collective commit; validated load with fall-back and re-cut.
 * The contract is in ckpt.h; the files are described in docs/formats.md ("Checkpoints"). */
#include "io/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "io/atomic_file.h"
#include "io/config.h"
#include "io/h5io.h"

#define CK_PATH_MAX 4096
#define N_BUF 4
#define MAX_SHARDS 1000000 /* shard-%05d-of-%05d: more would still work, but is surely damage */
#define MAX_STEP 999999999999999999LL

static const char *const k_buf_names[N_BUF] = {"params", "adam_m", "adam_v", "ema"};

static float *net_buf(const dd2_ckpt_net *n, int b) {
    switch (b) {
    case 0: return n->params;
    case 1: return n->adam_m;
    case 2: return n->adam_v;
    default: return n->ema;
    }
}

/* Start of shard r's range when [0, numel) is cut into L pieces: floor(r * numel / L), computed
 * without overflow as q*r + floor(rem*r / L) with numel = q*L + rem. */
static int64_t range_start(int64_t numel, int r, int L) {
    int64_t q = numel / L, rem = numel % L;
    return q * r + rem * r / L;
}

/* ---- small utilities -------------------------------------------------------------------------- */

static int fmt_path(char *out, size_t n, dd2_status *st, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fmt_path(char *out, size_t n, dd2_status *st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= n) return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint path too long: %.200s...", out);
    return DD2_OK;
}

static char *str_dup(const char *s, dd2_status *st) {
    size_t n = strlen(s) + 1;
    char *p = DD2_MALLOC(n, st);
    if (p) memcpy(p, s, n);
    return p;
}

/* "[3, 5]" (the global_shape attribute and messages). */
static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* A growing string for lists of problems. On out of memory it just stops growing. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k <= 0) return;
    if (b->len + (size_t)k + 1 > b->cap) {
        size_t cap = (b->cap ? 2 * b->cap : 256) + (size_t)k;
        char *s = realloc(b->s, cap);
        if (!s) return;
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)k;
}

/* FNV-1a over bytes (the cross-rank consistency check of the save arguments). */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ull;
    return h;
}
static uint64_t fnv_i64(uint64_t h, int64_t v) { return fnv(h, &v, sizeof v); }
static uint64_t fnv_str(uint64_t h, const char *s) { return fnv(h, s, strlen(s) + 1); }

/* ---- names and argument checks ------------------------------------------------------------- */

/* One HDF5 path component: non-empty, no '/', no newline, not "." or "..". */
static int component_ok(const char *s) {
    return s && *s && !strchr(s, '/') && !strchr(s, '\n') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* An h5io dataset path: components separated by single '/', none empty, ".", "..". */
static int path_ok(const char *s) {
    if (!s || !*s || strchr(s, '\n')) return 0;
    char part[256];
    for (const char *p = s;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n >= sizeof part) return 0;
        memcpy(part, p, n);
        part[n] = 0;
        if (!component_ok(part)) return 0;
        if (!e) return 1;
        p = e + 1;
    }
}

/* Checks shared by save and load; for_save also needs params and the state data. */
static int check_spec(const dd2_ckpt_spec *spec, int for_save, dd2_status *st) {
    if (!spec) return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: spec is NULL");
    if (spec->n_nets < 0 || (spec->n_nets > 0 && !spec->nets))
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: bad network list (n_nets = %d)", spec->n_nets);
    if (spec->n_states < 0 || (spec->n_states > 0 && !spec->states))
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: bad state list (n_states = %d)", spec->n_states);
    for (int i = 0; i < spec->n_nets; i++) {
        const dd2_ckpt_net *n = &spec->nets[i];
        if (!component_ok(n->name))
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: network %d: bad name '%s' (one path component)", i,
                            n->name ? n->name : "(null)");
        for (int j = 0; j < i; j++)
            if (strcmp(spec->nets[j].name, n->name) == 0)
                return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: network '%s' given twice", n->name);
        if (!n->tab) return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: network '%s': no tensor table", n->name);
        if (for_save && !n->params)
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: network '%s': params is NULL", n->name);
        for (int t = 0; t < n->tab->n; t++) {
            const dd2_tensor_info *ti = &n->tab->t[t];
            if (!component_ok(ti->name))
                return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: network '%s': tensor name '%s' cannot be stored "
                                "(no '/' or newline, not '.' or '..')", n->name, ti->name);
            if (ti->ndim < 1 || ti->ndim > DD2_TENSOR_MAX_DIMS || ti->offset + ti->numel > n->tab->numel)
                return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: network '%s': tensor '%s': bad table entry",
                                n->name, ti->name);
        }
    }
    for (int i = 0; i < spec->n_states; i++) {
        const dd2_ckpt_state *s = &spec->states[i];
        if (!path_ok(s->name))
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: state %d: bad name '%s'", i, s->name ? s->name : "(null)");
        if (s->type != DD2_CKPT_I64 && s->type != DD2_CKPT_U32)
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: state '%s': unknown type %d", s->name, (int)s->type);
        if (s->count > 0 && !s->data)
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: state '%s': data is NULL", s->name);
        for (int j = 0; j < i; j++)
            if (strcmp(spec->states[j].name, s->name) == 0)
                return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint: state '%s' given twice", s->name);
    }
    return DD2_OK;
}

/* Everything the ranks must agree on before saving, hashed. */
static uint64_t spec_hash(const dd2_ckpt_spec *spec, int64_t step, int keep) {
    uint64_t h = 1469598103934665603ull;
    h = fnv_i64(h, step);
    h = fnv_i64(h, keep);
    h = fnv_i64(h, spec->n_nets);
    for (int i = 0; i < spec->n_nets; i++) {
        const dd2_ckpt_net *n = &spec->nets[i];
        h = fnv_str(h, n->name);
        h = fnv_i64(h, (int64_t)n->tab->numel);
        for (int b = 0; b < N_BUF; b++) h = fnv_i64(h, net_buf(n, b) != NULL);
        for (int t = 0; t < n->tab->n; t++) {
            const dd2_tensor_info *ti = &n->tab->t[t];
            h = fnv_str(h, ti->name);
            h = fnv_i64(h, (int64_t)ti->offset);
            for (int d = 0; d < ti->ndim; d++) h = fnv_i64(h, ti->shape[d]);
        }
    }
    for (int i = 0; i < spec->n_states; i++) {
        h = fnv_str(h, spec->states[i].name);
        h = fnv_i64(h, spec->states[i].type);
        h = fnv_i64(h, (int64_t)spec->states[i].count);
    }
    return h;
}

/* ---- collective agreement ------------------------------------------------------------------ */

/* Every rank passes its outcome class (0 = fine, larger = worse) and, when cls > 0, a filled st.
 * Returns the worst class over the ranks. When it is > 0, st on every rank holds the code and
 * message of the lowest rank with that class (prefixed "rank r: " when with_rank and there are
 * several ranks) and st->collective = 1. */
static int agree(MPI_Comm comm, int cls, dd2_status *st, int with_rank) {
    int rank, size, worst = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    MPI_Allreduce(&cls, &worst, 1, MPI_INT, MPI_MAX, comm);
    if (worst == 0) return 0;
    int mine = cls == worst ? rank : size, root = size;
    MPI_Allreduce(&mine, &root, 1, MPI_INT, MPI_MIN, comm);
    struct {
        int code;
        char msg[DD2_MSG_MAX];
    } m;
    memset(&m, 0, sizeof m);
    if (rank == root) {
        m.code = st->code ? st->code : DD2_ERR_RUNTIME;
        memcpy(m.msg, st->msg, sizeof m.msg);
        m.msg[sizeof m.msg - 1] = 0;
    }
    MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, root, comm);
    if (rank != root) dd2_status_fail(st, m.code, __FILE__, __LINE__, __func__, "%s", m.msg);
    if (with_rank && size > 1) dd2_status_prefix(st, "rank %d", root);
    st->collective = 1;
    return worst;
}

/* Broadcast a NUL-terminated string from root; elsewhere *text is malloc'd (caller frees). */
static int bcast_text(MPI_Comm comm, int root, char **text, dd2_status *st) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    long long len = rank == root ? (long long)strlen(*text) : 0;
    MPI_Bcast(&len, 1, MPI_LONG_LONG, root, comm);
    if (rank != root) {
        *text = DD2_MALLOC((size_t)len + 1, st);
        if (!*text) {
            /* keep the collective pattern: receive into a scratch buffer chunk by chunk */
            char scratch[4096];
            for (long long off = 0; off < len; off += (long long)sizeof scratch) {
                int k = (int)(len - off < (long long)sizeof scratch ? len - off : (long long)sizeof scratch);
                MPI_Bcast(scratch, k, MPI_CHAR, root, comm);
            }
            return DD2_ERR_RUNTIME;
        }
    }
    for (long long off = 0; off < len;) {
        long long k = len - off < (1LL << 30) ? len - off : (1LL << 30);
        MPI_Bcast(*text + off, (int)k, MPI_CHAR, root, comm);
        off += k;
    }
    if (rank != root) (*text)[len] = 0;
    return DD2_OK;
}

/* ---- directories --------------------------------------------------------------------------- */

/* "step_<digits>" exactly (1..18 digits) -> *step. */
static int parse_step_name(const char *name, int64_t *step) {
    if (strncmp(name, "step_", 5) != 0) return 0;
    const char *d = name + 5;
    size_t n = strspn(d, "0123456789");
    if (n == 0 || n > 18 || d[n] != 0) return 0;
    *step = strtoll(d, NULL, 10);
    return 1;
}

/* "step_<digits><suffix>" where suffix is .tmp, .old or .del (leftovers of an interrupted save). */
static int is_leftover_name(const char *name) {
    size_t n = strlen(name);
    if (n < 5 + 1 + 4 || strncmp(name, "step_", 5) != 0) return 0;
    const char *suf = name + n - 4;
    if (strcmp(suf, ".tmp") != 0 && strcmp(suf, ".old") != 0 && strcmp(suf, ".del") != 0) return 0;
    size_t digits = strspn(name + 5, "0123456789");
    return digits > 0 && name + 5 + digits == suf;
}

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Committed step directories of stage_dir, ascending. A missing stage_dir is empty. */
static int list_steps(const char *stage_dir, int64_t **steps, int *n, dd2_status *st) {
    *steps = NULL;
    *n = 0;
    DIR *d = opendir(stage_dir);
    if (!d) {
        if (errno == ENOENT) return DD2_OK;
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot list checkpoints: %s", stage_dir, strerror(errno));
    }
    int cap = 0, rc = DD2_OK;
    struct dirent *e;
    char path[CK_PATH_MAX];
    while ((e = readdir(d))) {
        int64_t s;
        if (!parse_step_name(e->d_name, &s)) continue;
        if (snprintf(path, sizeof path, "%s/%s", stage_dir, e->d_name) >= (int)sizeof path || !is_dir(path)) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *p = realloc(*steps, (size_t)cap * sizeof *p);
            if (!p) {
                rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "out of memory listing %s", stage_dir);
                break;
            }
            *steps = p;
        }
        (*steps)[(*n)++] = s;
    }
    closedir(d);
    if (rc != DD2_OK) {
        free(*steps);
        *steps = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1) qsort(*steps, (size_t)*n, sizeof **steps, cmp_i64);
    return DD2_OK;
}

/* mkdir -p */
static int mkdir_p(const char *path, dd2_status *st) {
    char p[CK_PATH_MAX];
    DD2_TRY(fmt_path(p, sizeof p, st, "%s", path));
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot create directory: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot create directory: %s", p, strerror(errno));
    if (!is_dir(p)) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: not a directory", p);
    return DD2_OK;
}

/* Remove the step_*.tmp / .old / .del directories left by interrupted saves (warnings only). */
static void remove_leftovers(const char *stage_dir) {
    DIR *d = opendir(stage_dir);
    if (!d) return;
    struct dirent *e;
    char path[CK_PATH_MAX];
    while ((e = readdir(d))) {
        if (!is_leftover_name(e->d_name)) continue;
        if (snprintf(path, sizeof path, "%s/%s", stage_dir, e->d_name) >= (int)sizeof path || !is_dir(path)) continue;
        dd2_status s2;
        dd2_status_clear(&s2);
        if (dd2_rm_tree(path, &s2) != DD2_OK)
            dd2_warn("checkpoint: cannot remove the leftover %s: %s", path, s2.msg);
        else
            dd2_info("checkpoint: removed %s (left by an interrupted save)", path);
    }
    closedir(d);
}

/* Delete a committed checkpoint: rename it to .del (so it vanishes at once), then remove that. */
static int delete_step(const char *stage_dir, int64_t step, dd2_status *st) {
    char dir[CK_PATH_MAX], del[CK_PATH_MAX];
    DD2_TRY(dd2_ckpt_step_dir(stage_dir, step, dir, sizeof dir, st));
    DD2_TRY(fmt_path(del, sizeof del, st, "%s.del", dir));
    DD2_TRY(dd2_rm_tree(del, st));
    if (rename(dir, del) != 0)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "cannot rename %s to %s: %s", dir, del, strerror(errno));
    return dd2_rm_tree(del, st);
}

/* Keep the keep-1 highest committed steps below `step` (and everything at or above it). */
static void prune(const char *stage_dir, int64_t step, int keep) {
    if (keep <= 0) return;
    dd2_status s2;
    dd2_status_clear(&s2);
    int64_t *steps;
    int n;
    if (list_steps(stage_dir, &steps, &n, &s2) != DD2_OK) {
        dd2_warn("checkpoint: not pruning old checkpoints: %s", s2.msg);
        return;
    }
    int older = 0; /* steps[0..older) are below `step` (ascending) */
    while (older < n && steps[older] < step) older++;
    for (int i = 0; i < older - (keep - 1); i++) {
        if (delete_step(stage_dir, steps[i], &s2) != DD2_OK)
            dd2_warn("checkpoint: cannot delete an old checkpoint: %s", s2.msg);
        else
            dd2_debug("checkpoint: deleted step_%08lld (keep = %d)", (long long)steps[i], keep);
    }
    free(steps);
}

/* LATEST -> *step. Returns 1 when it names a step, 0 when there is no LATEST file, -1 when it
 * exists but cannot be read or parsed (why in `why`). */
static int read_latest(const char *stage_dir, int64_t *step, char *why, size_t why_n) {
    char path[CK_PATH_MAX];
    if (snprintf(path, sizeof path, "%s/LATEST", stage_dir) >= (int)sizeof path) {
        snprintf(why, why_n, "%s/LATEST: path too long", stage_dir);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 0;
        snprintf(why, why_n, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    char buf[64];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int bad = ferror(f);
    fclose(f);
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
    if (bad || strlen(buf) != n || !parse_step_name(buf, step)) {
        snprintf(why, why_n, "%s: damaged (expected \"step_NNNNNNNN\"); using the newest step_* directory", path);
        return -1;
    }
    return 1;
}

/* ---- save ------------------------------------------------------------------------------------ */

/* The DD2_CKPT_FAIL_RANK test hook's error. */
static int injected_failure(const char *path, int r, dd2_status *st) {
    return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: injected failure (DD2_CKPT_FAIL_RANK=%d)", path, r);
}

/* Shard `r` of `L`: for every net, buffer and tensor, the part of the tensor inside range r. */
static int write_shard(const char *tmp_dir, int r, int L, int64_t step, const dd2_ckpt_spec *spec, int fail,
                       dd2_status *st) {
    char path[CK_PATH_MAX], name[CK_PATH_MAX], shape[128];
    DD2_TRY(fmt_path(path, sizeof path, st, "%s/shard-%05d-of-%05d.h5", tmp_dir, r, L));
    dd2_h5 *h;
    DD2_TRY(dd2_h5_create_atomic(path, &h, st));
    int rc = dd2_h5_attr_set_str(h, NULL, "format", DD2_CKPT_SHARD_FORMAT, st); /* the signature: first */
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "version", DD2_CKPT_VERSION, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "step", step, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "shard", r, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "num_shards", L, st);
    for (int i = 0; rc == DD2_OK && i < spec->n_nets; i++) {
        const dd2_ckpt_net *n = &spec->nets[i];
        int64_t numel = (int64_t)n->tab->numel, lo = range_start(numel, r, L), hi = range_start(numel, r + 1, L);
        for (int b = 0; rc == DD2_OK && b < N_BUF; b++) {
            const float *buf = net_buf(n, b);
            if (!buf) continue;
            for (int t = 0; rc == DD2_OK && t < n->tab->n; t++) {
                const dd2_tensor_info *ti = &n->tab->t[t];
                int64_t t0 = (int64_t)ti->offset, t1 = t0 + (int64_t)ti->numel;
                int64_t a = lo > t0 ? lo : t0, e = hi < t1 ? hi : t1;
                if (a >= e) continue;
                int64_t count = e - a;
                rc = fmt_path(name, sizeof name, st, "%s/%s/%s", n->name, k_buf_names[b], ti->name);
                if (rc == DD2_OK) rc = dd2_h5_write_f32(h, name, 1, &count, buf + a, st);
                fmt_shape(shape, sizeof shape, ti->ndim, ti->shape);
                if (rc == DD2_OK) rc = dd2_h5_attr_set_str(h, name, "global_shape", shape, st);
                if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, name, "offset", a - t0, st);
                if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, name, "count", count, st);
            }
            if (rc == DD2_OK && fail) rc = injected_failure(path, r, st); /* halfway: after one buffer */
        }
    }
    if (rc == DD2_OK && fail) rc = injected_failure(path, r, st); /* (no buffer to write first) */
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "complete", 1, st); /* the end marker: last */
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st); /* fsync, rename shard.h5.tmp -> shard.h5, fsync the directory */
}

/* Per-net tables for meta.h5. */
static int write_net_table(dd2_h5 *h, const dd2_ckpt_net *n, int L, dd2_status *st) {
    const dd2_param_table *tab = n->tab;
    char name[CK_PATH_MAX], grp[CK_PATH_MAX];
    DD2_TRY(fmt_path(grp, sizeof grp, st, "nets/%s", n->name));
    sbuf names = {0};
    for (int t = 0; t < tab->n; t++) sb_printf(&names, "%s%s", t ? "\n" : "", tab->t[t].name);
    int64_t *ndims = DD2_CALLOC((size_t)tab->n + 1, sizeof *ndims, st);
    int64_t *shapes = DD2_CALLOC(4 * (size_t)tab->n + 1, sizeof *shapes, st);
    int64_t *offsets = DD2_CALLOC((size_t)tab->n + 1, sizeof *offsets, st);
    int64_t *ranges = DD2_CALLOC(2 * (size_t)L, sizeof *ranges, st);
    int rc = (ndims && shapes && offsets && ranges) ? DD2_OK : DD2_ERR_RUNTIME;
    if (rc == DD2_OK && tab->n > 0 && !names.s) rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "out of memory (tensor names)");
    if (rc == DD2_OK) {
        for (int t = 0; t < tab->n; t++) {
            ndims[t] = tab->t[t].ndim;
            offsets[t] = (int64_t)tab->t[t].offset;
            for (int d = 0; d < tab->t[t].ndim; d++) shapes[4 * t + d] = tab->t[t].shape[d];
        }
        for (int r = 0; r < L; r++) {
            ranges[2 * r] = range_start((int64_t)tab->numel, r, L);
            ranges[2 * r + 1] = range_start((int64_t)tab->numel, r + 1, L);
        }
        int64_t dn[2] = {tab->n, 4}, dl[2] = {L, 2};
        rc = fmt_path(name, sizeof name, st, "%s/tensor_names", grp);
        if (rc == DD2_OK) rc = dd2_h5_write_text(h, name, names.s ? names.s : "", st);
        if (rc == DD2_OK) rc = fmt_path(name, sizeof name, st, "%s/tensor_ndims", grp);
        if (rc == DD2_OK) rc = dd2_h5_write_i64(h, name, 1, dn, ndims, st);
        if (rc == DD2_OK) rc = fmt_path(name, sizeof name, st, "%s/tensor_shapes", grp);
        if (rc == DD2_OK) rc = dd2_h5_write_i64(h, name, 2, dn, shapes, st);
        if (rc == DD2_OK) rc = fmt_path(name, sizeof name, st, "%s/tensor_offsets", grp);
        if (rc == DD2_OK) rc = dd2_h5_write_i64(h, name, 1, dn, offsets, st);
        if (rc == DD2_OK) rc = fmt_path(name, sizeof name, st, "%s/shard_ranges", grp);
        if (rc == DD2_OK) rc = dd2_h5_write_i64(h, name, 2, dl, ranges, st);
    }
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, grp, "numel", (int64_t)tab->numel, st);
    if (rc == DD2_OK) {
        char bufs[64] = "";
        for (int b = 0; b < N_BUF; b++)
            if (net_buf(n, b))
                snprintf(bufs + strlen(bufs), sizeof bufs - strlen(bufs), "%s%s", *bufs ? "," : "", k_buf_names[b]);
        rc = dd2_h5_attr_set_str(h, grp, "buffers", bufs, st);
    }
    free(names.s);
    free(ndims);
    free(shapes);
    free(offsets);
    free(ranges);
    return rc;
}

/* meta.h5 (rank 0). world_ranks / hosts: the layout gathered from every learner. */
static int write_meta(const char *tmp_dir, int L, int64_t step, const dd2_ckpt_spec *spec, const int64_t *world_ranks,
                      const char *hosts, dd2_status *st) {
    char path[CK_PATH_MAX], name[CK_PATH_MAX];
    DD2_TRY(fmt_path(path, sizeof path, st, "%s/meta.h5", tmp_dir));
    dd2_h5 *h;
    DD2_TRY(dd2_h5_create_atomic(path, &h, st));
    int world = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    char when[64] = "";
    time_t now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    sbuf nets = {0};
    for (int i = 0; i < spec->n_nets; i++) sb_printf(&nets, "%s%s", i ? "," : "", spec->nets[i].name);
    int rc = dd2_h5_attr_set_str(h, NULL, "format", DD2_CKPT_FORMAT, st); /* the signature: first */
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "version", DD2_CKPT_VERSION, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "step", step, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "num_shards", L, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "learners", L, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "world_size", world, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_str(h, NULL, "build_info", spec->build_info ? spec->build_info : "", st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_str(h, NULL, "saved_at", when, st);
    if (rc == DD2_OK) rc = dd2_h5_attr_set_str(h, NULL, "nets", nets.s ? nets.s : "", st);
    free(nets.s);
    if (rc == DD2_OK) rc = dd2_h5_write_text(h, "config", spec->config_text ? spec->config_text : "", st);
    int64_t dl = L;
    if (rc == DD2_OK) rc = dd2_h5_write_i64(h, "layout/world_ranks", 1, &dl, world_ranks, st);
    if (rc == DD2_OK) rc = dd2_h5_write_text(h, "layout/hosts", hosts, st);
    for (int i = 0; rc == DD2_OK && i < spec->n_nets; i++) rc = write_net_table(h, &spec->nets[i], L, st);
    for (int i = 0; rc == DD2_OK && i < spec->n_states; i++) {
        const dd2_ckpt_state *s = &spec->states[i];
        int64_t cnt = (int64_t)s->count;
        int64_t *v = DD2_MALLOC(((size_t)cnt + 1) * sizeof *v, st);
        if (!v) {
            rc = DD2_ERR_RUNTIME;
            break;
        }
        for (size_t k = 0; k < s->count; k++)
            v[k] = s->type == DD2_CKPT_I64 ? ((const int64_t *)s->data)[k] : (int64_t)((const uint32_t *)s->data)[k];
        rc = fmt_path(name, sizeof name, st, "state/%s", s->name);
        if (rc == DD2_OK) rc = dd2_h5_write_i64(h, name, 1, &cnt, v, st);
        if (rc == DD2_OK) rc = dd2_h5_attr_set_str(h, name, "dtype", s->type == DD2_CKPT_I64 ? "i64" : "u32", st);
        free(v);
    }
    if (rc == DD2_OK) rc = dd2_h5_attr_set_i64(h, NULL, "complete", 1, st); /* the end marker: last */
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

/* Rank 0 before writing: stage_dir exists, leftovers removed, an empty step_X.tmp created. */
static int prepare_dirs(const char *stage_dir, const char *tmp_dir, dd2_status *st) {
    DD2_TRY(mkdir_p(stage_dir, st));
    remove_leftovers(stage_dir);
    DD2_TRY(dd2_rm_tree(tmp_dir, st)); /* in case the leftover removal only warned */
    if (mkdir(tmp_dir, 0755) != 0)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot create directory: %s", tmp_dir, strerror(errno));
    return DD2_OK;
}

/* Rank 0 after every shard is durable: publish step_X, point LATEST at it, prune. */
static int commit_step(const char *stage_dir, const char *tmp_dir, const char *final_dir, int64_t step, int keep,
                       dd2_status *st) {
    char old_dir[CK_PATH_MAX], latest[CK_PATH_MAX], text[64];
    DD2_TRY(fmt_path(old_dir, sizeof old_dir, st, "%s.old", final_dir));
    DD2_TRY(fmt_path(latest, sizeof latest, st, "%s/LATEST", stage_dir));
    const char *leftover = NULL; /* the replaced old copy of step_X, removed after LATEST */
    if (is_dir(final_dir)) {
        /* Re-saving a step: swap atomically where the file system can (Linux RENAME_EXCHANGE);
         * otherwise move the old copy aside just before the rename. */
        DD2_TRY(dd2_fsync_path(tmp_dir, st));
        int swapped = 0;
        const char *no_x = getenv("DD2_CKPT_NO_EXCHANGE"); /* test hook: take the second way */
        int try_exchange = !(no_x && *no_x && strcmp(no_x, "0") != 0);
#ifdef RENAME_EXCHANGE
        if (try_exchange && renameat2(AT_FDCWD, tmp_dir, AT_FDCWD, final_dir, RENAME_EXCHANGE) == 0) {
            swapped = 1;
            leftover = tmp_dir; /* now holds the old copy */
            DD2_TRY(dd2_fsync_parent_dir(final_dir, st));
        } else if (try_exchange && errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) {
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "cannot exchange %s and %s: %s", tmp_dir, final_dir, strerror(errno));
        }
#else
        (void)try_exchange;
#endif
        if (!swapped) {
            DD2_TRY(dd2_rm_tree(old_dir, st));
            DD2_TRY(dd2_rename_durable(final_dir, old_dir, st));
            int rc = dd2_commit_dir(tmp_dir, final_dir, st);
            if (rc != DD2_OK) {
                if (rename(old_dir, final_dir) != 0)
                    dd2_warn("checkpoint: cannot move %s back to %s: %s", old_dir, final_dir, strerror(errno));
                return rc;
            }
            leftover = old_dir;
        }
    } else {
        DD2_TRY(dd2_commit_dir(tmp_dir, final_dir, st));
    }
    snprintf(text, sizeof text, "step_%08lld\n", (long long)step);
    int rc = dd2_atomic_write_text(latest, text, st);
    if (rc != DD2_OK) {
        dd2_status_prefix(st, "%s committed, but LATEST not updated", final_dir);
        return rc;
    }
    if (leftover) {
        dd2_status s2;
        dd2_status_clear(&s2);
        if (dd2_rm_tree(leftover, &s2) != DD2_OK) dd2_warn("checkpoint: %s", s2.msg);
    }
    prune(stage_dir, step, keep);
    return DD2_OK;
}

static int fail_rank_from_env(void) {
    const char *e = getenv("DD2_CKPT_FAIL_RANK");
    if (!e || !*e) return -1;
    char *end;
    long v = strtol(e, &end, 10);
    return (*end || v < 0 || v > 1 << 30) ? -1 : (int)v;
}

int dd2_ckpt_save(MPI_Comm comm, const char *stage_dir, int64_t step, int keep, const dd2_ckpt_spec *spec,
                  dd2_status *st) {
    dd2_status local;
    if (!st) st = &local;
    dd2_status_clear(st);
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint save: MPI is not initialised");
    int rank, L;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &L);
    double t_start = dd2_now();
    char tmp_dir[CK_PATH_MAX], final_dir[CK_PATH_MAX];

    /* 1. arguments, the same on every rank */
    int rc = DD2_OK;
    if (!stage_dir || !*stage_dir)
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint save: empty stage directory");
    else if (step < 0 || step > MAX_STEP)
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint save: bad step %lld", (long long)step);
    else if (keep < 0)
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint save: keep = %d (expected >= 0)", keep);
    if (rc == DD2_OK) rc = check_spec(spec, 1, st);
    if (rc == DD2_OK) rc = dd2_ckpt_step_dir(stage_dir, step, final_dir, sizeof final_dir, st);
    if (rc == DD2_OK) rc = fmt_path(tmp_dir, sizeof tmp_dir, st, "%s.tmp", final_dir);
    if (agree(comm, rc != DD2_OK, st, 1)) return st->code;
    uint64_t h = spec_hash(spec, step, keep), hmin = 0, hmax = 0;
    MPI_Allreduce(&h, &hmin, 1, MPI_UINT64_T, MPI_MIN, comm);
    MPI_Allreduce(&h, &hmax, 1, MPI_UINT64_T, MPI_MAX, comm);
    if (hmin != hmax) {
        DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint save: the ranks disagree on the step, keep, tensor tables, "
                 "buffers or state list");
        st->collective = 1;
        return st->code;
    }

    /* 2. rank 0 creates step_X.tmp/ (the broadcast in agree is the barrier) */
    if (rank == 0) rc = prepare_dirs(stage_dir, tmp_dir, st);
    if (agree(comm, rc != DD2_OK, st, 1)) {
        dd2_status_prefix(st, "checkpoint %s not saved", final_dir);
        return st->code;
    }

    /* 3. every rank writes its shard (rank 0 also meta.h5), each file fsynced and renamed */
    int world_rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    int64_t wr = world_rank;
    char host[MPI_MAX_PROCESSOR_NAME + 1];
    int host_len = 0;
    memset(host, 0, sizeof host);
    MPI_Get_processor_name(host, &host_len);
    int64_t *world_ranks = NULL;
    char *all_hosts = NULL;
    if (rank == 0) {
        world_ranks = DD2_CALLOC((size_t)L, sizeof *world_ranks, st);
        all_hosts = world_ranks ? DD2_CALLOC((size_t)L, sizeof host, st) : NULL;
        if (!all_hosts) rc = DD2_ERR_RUNTIME;
    }
    if (agree(comm, rc != DD2_OK, st, 1)) {
        free(world_ranks);
        if (rank == 0) dd2_rm_tree(tmp_dir, NULL);
        dd2_status_prefix(st, "checkpoint %s not saved", final_dir);
        return st->code;
    }
    MPI_Gather(&wr, 1, MPI_INT64_T, world_ranks, 1, MPI_INT64_T, 0, comm);
    MPI_Gather(host, (int)sizeof host, MPI_CHAR, all_hosts, (int)sizeof host, MPI_CHAR, 0, comm);
    int fail_rank = fail_rank_from_env();
    rc = write_shard(tmp_dir, rank, L, step, spec, fail_rank == rank, st);
    if (rank == 0 && rc == DD2_OK) {
        sbuf hosts = {0};
        for (int r = 0; r < L; r++) sb_printf(&hosts, "%s%s", r ? "\n" : "", all_hosts + (size_t)r * sizeof host);
        rc = write_meta(tmp_dir, L, step, spec, world_ranks, hosts.s ? hosts.s : "", st);
        free(hosts.s);
    }
    free(world_ranks);
    free(all_hosts);
    if (agree(comm, rc != DD2_OK, st, 1)) {
        if (rank == 0) {
            dd2_status s2;
            dd2_status_clear(&s2);
            if (dd2_rm_tree(tmp_dir, &s2) != DD2_OK) dd2_warn("checkpoint: %s", s2.msg);
        }
        dd2_status_prefix(st, "checkpoint %s not saved (the previous checkpoints are untouched)", final_dir);
        return st->code;
    }

    /* 4. rank 0 commits the directory, LATEST, and prunes */
    if (rank == 0) rc = commit_step(stage_dir, tmp_dir, final_dir, step, keep, st);
    if (agree(comm, rc != DD2_OK, st, 1)) {
        dd2_status_prefix(st, "checkpoint %s", final_dir);
        return st->code;
    }
    double bytes = 0;
    for (int i = 0; i < spec->n_nets; i++)
        for (int b = 0; b < N_BUF; b++)
            if (net_buf(&spec->nets[i], b)) bytes += 4.0 * (double)spec->nets[i].tab->numel;
    dd2_info0("checkpoint %s saved (%d shard%s, %.1f MB, %.2f s)", final_dir, L, L == 1 ? "" : "s", bytes / 1e6,
              dd2_now() - t_start);
    return DD2_OK;
}

/* ---- load ------------------------------------------------------------------------------------ */

enum { CL_OK = 0, CL_DAMAGED = 1, CL_MISMATCH = 2, CL_RUNTIME = 3 };

/* The class of an h5io/IO failure: bad input (the files) is damage, anything else runtime. */
static int io_class(const dd2_status *st) { return st->code == DD2_ERR_INPUT ? CL_DAMAGED : CL_RUNTIME; }

/* A network's table as stored in meta.h5. */
typedef struct saved_net {
    char *names_text;   /* owns the names */
    char **names;       /* [n] into names_text */
    int n;
    int64_t *ndims;     /* [n] */
    int64_t *shapes;    /* [n * 4] */
    int64_t *offsets;   /* [n] */
    int64_t *numels;    /* [n] computed */
    int64_t numel;      /* flat buffer size */
    int64_t *ranges;    /* [L * 2] */
    int has_buf[N_BUF];
    int *map;           /* [n]: index in the caller's table */
} saved_net;

static void saved_net_free(saved_net *s) {
    free(s->names_text);
    free(s->names);
    free(s->ndims);
    free(s->shapes);
    free(s->offsets);
    free(s->numels);
    free(s->ranges);
    free(s->map);
    memset(s, 0, sizeof *s);
}

/* What one load attempt read (scratch until every rank agrees it is good). */
typedef struct attempt {
    int L;
    char *config_text;
    char *build_info;
    saved_net *nets;   /* [spec->n_nets] */
    int64_t **state;   /* [spec->n_states]: values, NULL when absent */
} attempt;

static void attempt_free(attempt *a, const dd2_ckpt_spec *spec) {
    free(a->config_text);
    free(a->build_info);
    if (a->nets)
        for (int i = 0; i < spec->n_nets; i++) saved_net_free(&a->nets[i]);
    free(a->nets);
    if (a->state)
        for (int i = 0; i < spec->n_states; i++) free(a->state[i]);
    free(a->state);
    memset(a, 0, sizeof *a);
}

/* Damage with a message naming the file. */
#define DAMAGED(st, ...) (DD2_FAIL((st), DD2_ERR_INPUT, __VA_ARGS__), CL_DAMAGED)
#define MISMATCH(st, ...) (DD2_FAIL((st), DD2_ERR_INPUT, __VA_ARGS__), CL_MISMATCH)

/* Signature, version, step and end marker of a meta or shard file. */
static int check_header(dd2_h5 *h, const char *format, int64_t step, dd2_status *st) {
    const char *path = dd2_h5_path(h);
    int ex = 0;
    if (dd2_h5_attr_exists(h, NULL, "format", &ex, st) != DD2_OK) return io_class(st);
    if (!ex) return DAMAGED(st, "%s: no signature (attribute 'format'): not a dd2 checkpoint file", path);
    char *f = NULL;
    if (dd2_h5_attr_get_str(h, NULL, "format", &f, st) != DD2_OK) return io_class(st);
    int same = strcmp(f, format) == 0;
    if (!same) DD2_FAIL(st, DD2_ERR_INPUT, "%s: signature '%s', expected '%s'", path, f, format);
    free(f);
    if (!same) return CL_DAMAGED;
    int64_t v;
    if (dd2_h5_attr_get_i64(h, NULL, "version", &v, st) != DD2_OK) return io_class(st);
    if (v != DD2_CKPT_VERSION)
        return DAMAGED(st, "%s: format version %lld; this build reads version %d", path, (long long)v, DD2_CKPT_VERSION);
    if (dd2_h5_attr_exists(h, NULL, "complete", &ex, st) != DD2_OK) return io_class(st);
    if (ex && dd2_h5_attr_get_i64(h, NULL, "complete", &v, st) != DD2_OK) return io_class(st);
    if (!ex || v != 1)
        return DAMAGED(st, "%s: no end marker (attribute 'complete' = 1): the file was not completely written", path);
    if (dd2_h5_attr_get_i64(h, NULL, "step", &v, st) != DD2_OK) return io_class(st);
    if (v != step)
        return DAMAGED(st, "%s: holds step %lld, but its directory is step %lld", path, (long long)v, (long long)step);
    return CL_OK;
}

/* Read dataset `name` as int64 [dims] into a new array. */
static int read_i64_array(dd2_h5 *h, const char *name, int rank, const int64_t *dims, int64_t **out, dd2_status *st) {
    size_t n = 1;
    for (int d = 0; d < rank; d++) n *= (size_t)dims[d];
    *out = DD2_MALLOC((n + 1) * sizeof **out, st);
    if (!*out) return CL_RUNTIME;
    if (dd2_h5_read_i64(h, name, rank, dims, *out, st) != DD2_OK) return io_class(st);
    return CL_OK;
}

/* Read nets/<net>/ of meta.h5 into s and compare it with the caller's net; `mm` collects
 * mismatches (names of tensors, shapes, buffers). */
static int read_net_table(dd2_h5 *h, const dd2_ckpt_net *n, int L, saved_net *s, sbuf *mm, dd2_status *st) {
    const char *path = dd2_h5_path(h);
    char grp[CK_PATH_MAX], name[CK_PATH_MAX];
    if (fmt_path(grp, sizeof grp, st, "nets/%s", n->name) != DD2_OK) return CL_RUNTIME;
    int ex = 0, cls;
    if (dd2_h5_exists(h, grp, &ex, st) != DD2_OK) return io_class(st);
    if (!ex) {
        char *nets = NULL;
        if (dd2_h5_attr_get_str(h, NULL, "nets", &nets, st) != DD2_OK) return io_class(st);
        sb_printf(mm, "%snetwork '%s' is not in the checkpoint (it holds: %s)", mm->len ? "; " : "", n->name,
                  *nets ? nets : "none");
        free(nets);
        return CL_OK;
    }
    if (fmt_path(name, sizeof name, st, "%s/tensor_names", grp) != DD2_OK) return CL_RUNTIME;
    if (dd2_h5_read_text(h, name, &s->names_text, st) != DD2_OK) return io_class(st);
    dd2_h5_shape sh;
    if (fmt_path(name, sizeof name, st, "%s/tensor_ndims", grp) != DD2_OK) return CL_RUNTIME;
    if (dd2_h5_get_shape(h, name, &sh, st) != DD2_OK) return io_class(st);
    if (sh.rank != 1 || sh.dims[0] > (1 << 24)) return DAMAGED(st, "%s: dataset '%s': bad shape", path, name);
    s->n = (int)sh.dims[0];
    int64_t d1 = s->n, d2[2] = {s->n, 4}, dr[2] = {L, 2};
    if ((cls = read_i64_array(h, name, 1, &d1, &s->ndims, st))) return cls;
    if (fmt_path(name, sizeof name, st, "%s/tensor_shapes", grp) != DD2_OK) return CL_RUNTIME;
    if ((cls = read_i64_array(h, name, 2, d2, &s->shapes, st))) return cls;
    if (fmt_path(name, sizeof name, st, "%s/tensor_offsets", grp) != DD2_OK) return CL_RUNTIME;
    if ((cls = read_i64_array(h, name, 1, &d1, &s->offsets, st))) return cls;
    if (fmt_path(name, sizeof name, st, "%s/shard_ranges", grp) != DD2_OK) return CL_RUNTIME;
    if ((cls = read_i64_array(h, name, 2, dr, &s->ranges, st))) return cls;
    if (dd2_h5_attr_get_i64(h, grp, "numel", &s->numel, st) != DD2_OK) return io_class(st);
    char *bufs = NULL;
    if (dd2_h5_attr_get_str(h, grp, "buffers", &bufs, st) != DD2_OK) return io_class(st);
    for (char *tok = strtok(bufs, ","); tok; tok = strtok(NULL, ","))
        for (int b = 0; b < N_BUF; b++)
            if (strcmp(tok, k_buf_names[b]) == 0) s->has_buf[b] = 1;
    free(bufs);

    /* the stored table must be self-consistent (else: damage) */
    s->names = DD2_CALLOC((size_t)s->n + 1, sizeof *s->names, st);
    s->numels = DD2_CALLOC((size_t)s->n + 1, sizeof *s->numels, st);
    s->map = DD2_CALLOC((size_t)s->n + 1, sizeof *s->map, st);
    if (!s->names || !s->numels || !s->map) return CL_RUNTIME;
    int k = 0;
    for (char *p = s->names_text; s->n > 0;) {
        if (k == s->n) return DAMAGED(st, "%s: %s/tensor_names: more names than tensors", path, grp);
        s->names[k++] = p;
        char *nl = strchr(p, '\n');
        if (!nl) break;
        *nl = 0;
        p = nl + 1;
    }
    if (k != s->n) return DAMAGED(st, "%s: %s/tensor_names: %d names for %d tensors", path, grp, k, s->n);
    if (s->numel < 0) return DAMAGED(st, "%s: %s: bad numel %lld", path, grp, (long long)s->numel);
    for (int t = 0; t < s->n; t++) {
        if (s->ndims[t] < 1 || s->ndims[t] > 4) return DAMAGED(st, "%s: %s: tensor '%s': bad rank", path, grp, s->names[t]);
        s->numels[t] = 1;
        for (int d = 0; d < s->ndims[t]; d++) {
            int64_t dim = s->shapes[4 * t + d];
            if (dim < 0 || dim > (1LL << 40) || (dim && s->numels[t] > (1LL << 50) / dim))
                return DAMAGED(st, "%s: %s: tensor '%s': bad shape", path, grp, s->names[t]);
            s->numels[t] *= dim;
        }
        if (s->offsets[t] < 0 || s->offsets[t] + s->numels[t] > s->numel)
            return DAMAGED(st, "%s: %s: tensor '%s': outside the flat buffer", path, grp, s->names[t]);
    }
    for (int r = 0; r < L; r++) {
        int64_t lo = s->ranges[2 * r], hi = s->ranges[2 * r + 1];
        if (lo > hi || (r == 0 && lo != 0) || (r > 0 && lo != s->ranges[2 * r - 1]) || (r == L - 1 && hi != s->numel))
            return DAMAGED(st, "%s: %s/shard_ranges: ranges do not cover [0, %lld)", path, grp, (long long)s->numel);
    }

    /* the caller's model must match it (else: mismatch, collected) */
    const dd2_param_table *tab = n->tab;
    char a[128], b[128];
    for (int t = 0; t < s->n; t++) {
        s->map[t] = dd2_ptable_find(tab, s->names[t]);
        fmt_shape(a, sizeof a, (int)s->ndims[t], s->shapes + 4 * t);
        if (s->map[t] < 0) {
            sb_printf(mm, "%snetwork '%s': tensor '%s' %s in the checkpoint is not in the model", mm->len ? "; " : "",
                      n->name, s->names[t], a);
            continue;
        }
        const dd2_tensor_info *ti = &tab->t[s->map[t]];
        int same = ti->ndim == s->ndims[t];
        for (int d = 0; same && d < ti->ndim; d++) same = ti->shape[d] == s->shapes[4 * t + d];
        if (!same) {
            fmt_shape(b, sizeof b, ti->ndim, ti->shape);
            sb_printf(mm, "%snetwork '%s': tensor '%s': shape %s in the checkpoint, %s in the model",
                      mm->len ? "; " : "", n->name, s->names[t], a, b);
        }
    }
    for (int t = 0; t < tab->n; t++) {
        int found = 0;
        for (int j = 0; j < s->n && !found; j++) found = strcmp(s->names[j], tab->t[t].name) == 0;
        if (!found) {
            fmt_shape(b, sizeof b, tab->t[t].ndim, tab->t[t].shape);
            sb_printf(mm, "%snetwork '%s': tensor '%s' %s of the model is not in the checkpoint", mm->len ? "; " : "",
                      n->name, tab->t[t].name, b);
        }
    }
    for (int bi = 0; bi < N_BUF; bi++)
        if (net_buf(n, bi) && !s->has_buf[bi])
            sb_printf(mm, "%snetwork '%s': the checkpoint holds no '%s'", mm->len ? "; " : "", n->name, k_buf_names[bi]);
    return CL_OK;
}

/* The state arrays of meta.h5 into a->state (type and count checked against the spec). */
static int read_states(dd2_h5 *h, dd2_ckpt_spec *spec, attempt *a, sbuf *mm, dd2_status *st) {
    const char *path = dd2_h5_path(h);
    char name[CK_PATH_MAX];
    for (int i = 0; i < spec->n_states; i++) {
        const dd2_ckpt_state *s = &spec->states[i];
        const char *want = s->type == DD2_CKPT_I64 ? "i64" : "u32";
        if (fmt_path(name, sizeof name, st, "state/%s", s->name) != DD2_OK) return CL_RUNTIME;
        int ex = 0;
        if (dd2_h5_exists(h, name, &ex, st) != DD2_OK) return io_class(st);
        if (!ex) {
            if (!s->optional)
                sb_printf(mm, "%sstate '%s' is not in the checkpoint", mm->len ? "; " : "", s->name);
            continue;
        }
        dd2_h5_shape sh;
        if (dd2_h5_get_shape(h, name, &sh, st) != DD2_OK) return io_class(st);
        char *dtype = NULL;
        if (dd2_h5_attr_get_str(h, name, "dtype", &dtype, st) != DD2_OK) return io_class(st);
        int same_type = strcmp(dtype, want) == 0;
        if (sh.type != DD2_H5_I64 || sh.rank != 1 || !same_type || sh.dims[0] != (int64_t)s->count) {
            sb_printf(mm, "%sstate '%s': %s [%lld] in the checkpoint, %s [%zu] expected", mm->len ? "; " : "", s->name,
                      dtype, (long long)(sh.rank == 1 ? sh.dims[0] : -1), want, s->count);
            free(dtype);
            continue;
        }
        free(dtype);
        int64_t cnt = (int64_t)s->count;
        int cls = read_i64_array(h, name, 1, &cnt, &a->state[i], st);
        if (cls) return cls;
        if (s->type == DD2_CKPT_U32)
            for (size_t k = 0; k < s->count; k++)
                if (a->state[i][k] < 0 || a->state[i][k] > (int64_t)UINT32_MAX)
                    return DAMAGED(st, "%s: dataset '%s': value %lld out of the uint32 range", path, name,
                                   (long long)a->state[i][k]);
    }
    return CL_OK;
}

/* meta.h5 of `dir`: header, config, layout, tables, states. */
static int read_meta(const char *dir, int64_t step, dd2_ckpt_spec *spec, attempt *a, dd2_status *st) {
    char path[CK_PATH_MAX];
    if (fmt_path(path, sizeof path, st, "%s/meta.h5", dir) != DD2_OK) return CL_RUNTIME;
    dd2_h5 *h;
    if (dd2_h5_open_read(path, &h, st) != DD2_OK) return io_class(st);
    int cls = check_header(h, DD2_CKPT_FORMAT, step, st);
    int64_t L = 0;
    if (!cls && dd2_h5_attr_get_i64(h, NULL, "num_shards", &L, st) != DD2_OK) cls = io_class(st);
    if (!cls && (L < 1 || L > MAX_SHARDS)) cls = DAMAGED(st, "%s: bad num_shards %lld", path, (long long)L);
    a->L = (int)L;
    if (!cls && dd2_h5_read_text(h, "config", &a->config_text, st) != DD2_OK) cls = io_class(st);
    if (!cls && dd2_h5_attr_get_str(h, NULL, "build_info", &a->build_info, st) != DD2_OK) cls = io_class(st);
    sbuf mm = {0};
    for (int i = 0; !cls && i < spec->n_nets; i++) cls = read_net_table(h, &spec->nets[i], a->L, &a->nets[i], &mm, st);
    if (!cls) cls = read_states(h, spec, a, &mm, st);
    if (!cls && mm.len)
        cls = MISMATCH(st, "%s: the checkpoint does not match this model: %s", dir, mm.s ? mm.s : "(out of memory)");
    free(mm.s);
    dd2_h5_close(h, NULL);
    return cls;
}

/* Shard s: header, then every requested slice straight into the caller's buffers. */
static int read_shard(const char *dir, int s, int64_t step, dd2_ckpt_spec *spec, attempt *a, dd2_status *st) {
    char path[CK_PATH_MAX], name[CK_PATH_MAX], shape[128];
    if (fmt_path(path, sizeof path, st, "%s/shard-%05d-of-%05d.h5", dir, s, a->L) != DD2_OK) return CL_RUNTIME;
    dd2_h5 *h;
    if (dd2_h5_open_read(path, &h, st) != DD2_OK) return io_class(st);
    int cls = check_header(h, DD2_CKPT_SHARD_FORMAT, step, st);
    int64_t v = -1, v2 = -1;
    if (!cls && (dd2_h5_attr_get_i64(h, NULL, "shard", &v, st) != DD2_OK ||
                 dd2_h5_attr_get_i64(h, NULL, "num_shards", &v2, st) != DD2_OK))
        cls = io_class(st);
    if (!cls && (v != s || v2 != a->L))
        cls = DAMAGED(st, "%s: says it is shard %lld of %lld", path, (long long)v, (long long)v2);
    for (int i = 0; !cls && i < spec->n_nets; i++) {
        const dd2_ckpt_net *n = &spec->nets[i];
        const saved_net *sn = &a->nets[i];
        int64_t lo = sn->ranges[2 * s], hi = sn->ranges[2 * s + 1];
        for (int b = 0; !cls && b < N_BUF; b++) {
            float *buf = net_buf(n, b);
            if (!buf) continue;
            for (int t = 0; !cls && t < sn->n; t++) {
                int64_t t0 = sn->offsets[t], t1 = t0 + sn->numels[t];
                int64_t x = lo > t0 ? lo : t0, e = hi < t1 ? hi : t1;
                if (x >= e) continue;
                int64_t count = e - x, off = -1, cnt = -1;
                const dd2_tensor_info *ti = &n->tab->t[sn->map[t]];
                if (fmt_path(name, sizeof name, st, "%s/%s/%s", n->name, k_buf_names[b], sn->names[t]) != DD2_OK) {
                    cls = CL_RUNTIME;
                    break;
                }
                char *gs = NULL;
                if (dd2_h5_read_f32(h, name, 1, &count, buf + ti->offset + (size_t)(x - t0), st) != DD2_OK ||
                    dd2_h5_attr_get_i64(h, name, "offset", &off, st) != DD2_OK ||
                    dd2_h5_attr_get_i64(h, name, "count", &cnt, st) != DD2_OK ||
                    dd2_h5_attr_get_str(h, name, "global_shape", &gs, st) != DD2_OK) {
                    cls = io_class(st);
                    break;
                }
                fmt_shape(shape, sizeof shape, ti->ndim, ti->shape);
                if (off != x - t0 || cnt != count || strcmp(gs, shape) != 0)
                    cls = DAMAGED(st, "%s: dataset '%s': slice attributes offset %lld, count %lld, global_shape %s; "
                                  "expected %lld, %lld, %s", path, name, (long long)off, (long long)cnt, gs,
                                  (long long)(x - t0), (long long)count, shape);
                free(gs);
            }
        }
    }
    dd2_h5_close(h, NULL);
    return cls;
}

/* One candidate directory, read completely into spec's buffers and `a` (states in scratch). */
static int try_load(const char *dir, int64_t step, dd2_ckpt_spec *spec, attempt *a, dd2_status *st) {
    if (!is_dir(dir)) return DAMAGED(st, "%s: missing (named by LATEST)", dir);
    a->nets = DD2_CALLOC((size_t)spec->n_nets + 1, sizeof *a->nets, st);
    a->state = DD2_CALLOC((size_t)spec->n_states + 1, sizeof *a->state, st);
    if (!a->nets || !a->state) return CL_RUNTIME;
    int cls = read_meta(dir, step, spec, a, st);
    for (int s = 0; !cls && s < a->L; s++) cls = read_shard(dir, s, step, spec, a, st);
    return cls;
}

void dd2_ckpt_result_free(dd2_ckpt_result *res) {
    if (!res) return;
    free(res->dir);
    free(res->config_text);
    free(res->build_info);
    free(res->skipped);
    memset(res, 0, sizeof *res);
}

/* Rank 0: the candidate steps, newest first, and notes about LATEST. */
static int find_candidates(const char *stage_dir, int64_t **cand, int *n, sbuf *notes, dd2_status *st) {
    int64_t *steps;
    int ns;
    *cand = NULL;
    *n = 0;
    DD2_TRY(list_steps(stage_dir, &steps, &ns, st));
    int64_t latest = -1;
    char why[CK_PATH_MAX + 128];
    int lr = read_latest(stage_dir, &latest, why, sizeof why);
    if (lr < 0) sb_printf(notes, "%s\n", why);
    if (lr == 0 && ns > 0) sb_printf(notes, "%s/LATEST: missing; using the newest step_* directory\n", stage_dir);
    *cand = DD2_MALLOC(((size_t)ns + 1) * sizeof **cand, st);
    if (!*cand) {
        free(steps);
        return DD2_ERR_RUNTIME;
    }
    if (lr == 1) (*cand)[(*n)++] = latest;
    for (int i = ns - 1; i >= 0; i--) {
        if (lr != 1 || steps[i] < latest)
            (*cand)[(*n)++] = steps[i];
        else if (steps[i] > latest) /* not this run's timeline (resume: never, or a crash before LATEST) */
            sb_printf(notes, "%s/step_%08lld: newer than LATEST (step_%08lld), ignored\n", stage_dir,
                      (long long)steps[i], (long long)latest);
    }
    free(steps);
    return DD2_OK;
}

int dd2_ckpt_load(MPI_Comm comm, const char *stage_dir, dd2_ckpt_spec *spec, dd2_ckpt_result *res, dd2_status *st) {
    dd2_status local;
    if (!st) st = &local;
    dd2_status_clear(st);
    if (res) memset(res, 0, sizeof *res);
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) return DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint load: MPI is not initialised");
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int rc = DD2_OK;
    if (!res)
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint load: result is NULL");
    else if (!stage_dir || !*stage_dir)
        rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "checkpoint load: empty stage directory");
    if (rc == DD2_OK) rc = check_spec(spec, 0, st);
    if (agree(comm, rc != DD2_OK, st, 1)) return st->code;

    /* rank 0 picks the candidates; everyone tries them in the same order */
    int64_t *cand = NULL;
    int ncand = 0;
    sbuf notes = {0};
    if (rank == 0) rc = find_candidates(stage_dir, &cand, &ncand, &notes, st);
    if (agree(comm, rc != DD2_OK, st, 0)) {
        free(cand);
        free(notes.s);
        return st->code;
    }
    MPI_Bcast(&ncand, 1, MPI_INT, 0, comm);
    if (rank != 0) {
        cand = DD2_MALLOC(((size_t)ncand + 1) * sizeof *cand, st);
        rc = cand ? DD2_OK : DD2_ERR_RUNTIME;
    }
    if (agree(comm, rc != DD2_OK, st, 1)) {
        free(cand);
        free(notes.s);
        return st->code;
    }
    if (ncand > 0) MPI_Bcast(cand, ncand, MPI_INT64_T, 0, comm);
    char *note_text = rank == 0 ? (notes.s ? notes.s : (char *)"") : NULL;
    rc = bcast_text(comm, 0, &note_text, st);
    if (agree(comm, rc != DD2_OK, st, 1)) {
        free(cand);
        free(notes.s);
        return st->code;
    }
    sbuf skipped = {0};
    if (*note_text) {
        sb_printf(&skipped, "%s", note_text);
        for (char *p = note_text; *p;) {
            char *nl = strchr(p, '\n');
            if (nl) *nl = 0;
            dd2_warn0("checkpoint: %s", p);
            if (!nl) break;
            p = nl + 1;
        }
    }
    if (rank != 0) free(note_text);
    free(notes.s);

    int cls = CL_OK, n_damaged = 0;
    char dir[CK_PATH_MAX];
    for (int i = 0; i < ncand; i++) {
        attempt a;
        memset(&a, 0, sizeof a);
        cls = dd2_ckpt_step_dir(stage_dir, cand[i], dir, sizeof dir, st) == DD2_OK ? try_load(dir, cand[i], spec, &a, st)
                                                                                 : CL_RUNTIME;
        cls = agree(comm, cls, st, 0);
        if (cls == CL_OK) {
            for (int k = 0; k < spec->n_states; k++) {
                dd2_ckpt_state *s = &spec->states[k];
                s->present = a.state[k] != NULL;
                if (!a.state[k]) continue;
                for (size_t j = 0; j < s->count; j++) {
                    if (s->type == DD2_CKPT_I64)
                        ((int64_t *)s->data)[j] = a.state[k][j];
                    else
                        ((uint32_t *)s->data)[j] = (uint32_t)a.state[k][j];
                }
            }
            res->found = 1;
            res->step = cand[i];
            res->dir = str_dup(dir, st);
            res->config_text = a.config_text;
            res->build_info = a.build_info;
            a.config_text = a.build_info = NULL;
            res->saved_learners = a.L;
            res->n_skipped = n_damaged;
            res->skipped = skipped.s;
            skipped.s = NULL;
            attempt_free(&a, spec);
            free(cand);
            if (!res->dir) {
                dd2_ckpt_result_free(res);
                return DD2_ERR_RUNTIME;
            }
            dd2_info0("checkpoint %s loaded (step %lld, saved by %d learner%s, loaded by %d)", dir,
                      (long long)res->step, res->saved_learners, res->saved_learners == 1 ? "" : "s", size);
            dd2_status_clear(st);
            return DD2_OK;
        }
        attempt_free(&a, spec);
        if (cls != CL_DAMAGED) break;
        n_damaged++;
        dd2_warn0("checkpoint: damaged, skipping %s: %s", dir, st->msg);
        sb_printf(&skipped, "%s\n", st->msg);
    }
    free(cand);
    if (cls != CL_OK && cls != CL_DAMAGED) { /* a mismatch or a runtime failure: st says it */
        free(skipped.s);
        return st->code;
    }
    if (n_damaged == 0) { /* nothing to load at all */
        res->skipped = skipped.s;
        dd2_status_clear(st);
        return DD2_OK;
    }
    /* every candidate was damaged: list them (and the notes) on one line */
    sbuf all = {0};
    for (char *p = skipped.s; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        sb_printf(&all, "%s%s", all.len ? "; " : "", p);
        if (!nl) break;
        p = nl + 1;
    }
    DD2_FAIL(st, DD2_ERR_INPUT, "no valid checkpoint in %s (%d damaged): %s", stage_dir, n_damaged,
             all.s ? all.s : "");
    st->collective = 1;
    free(all.s);
    free(skipped.s);
    return DD2_ERR_INPUT;
}

int dd2_ckpt_resume(MPI_Comm comm, const char *stage_dir, int resume, dd2_ckpt_spec *spec, dd2_ckpt_result *res,
                    dd2_status *st) {
    if (resume == DD2_RESUME_NEVER) {
        if (res) memset(res, 0, sizeof *res);
        if (st) dd2_status_clear(st);
        dd2_info0("checkpoint.resume = never: starting fresh (existing checkpoints in %s are kept)",
                  stage_dir ? stage_dir : "");
        return DD2_OK;
    }
    return dd2_ckpt_load(comm, stage_dir, spec, res, st);
}

/* ---- helpers --------------------------------------------------------------------------------- */

int dd2_ckpt_step_dir(const char *stage_dir, int64_t step, char *out, size_t n, dd2_status *st) {
    return fmt_path(out, n, st, "%s/step_%08lld", stage_dir, (long long)step);
}

int dd2_ckpt_list_steps(const char *stage_dir, int64_t **steps, int *n, dd2_status *st) {
    return list_steps(stage_dir, steps, n, st);
}

int dd2_ckpt_config_diff(const char *stored_text, const struct dd2_config *current, const char **first_diff,
                         dd2_status *st) {
    *first_diff = NULL;
    dd2_config *c = DD2_MALLOC(sizeof *c, st);
    if (!c) return DD2_ERR_RUNTIME;
    int rc = dd2_config_defaults(c);
    if (rc != DD2_OK) {
        free(c);
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "config schema defaults are invalid");
    }
    rc = dd2_config_parse(c, "checkpoint config", stored_text ? stored_text : "", stored_text ? strlen(stored_text) : 0,
                          st);
    if (rc == DD2_OK) *first_diff = dd2_config_diff(c, current);
    free(c);
    return rc;
}
