/* Tests for src/io/h5io.* and src/io/atomic_file.*: round trips, error messages, checksums,
 * damaged files (truncation and bit-flip sweeps), large-array slab I/O, atomic commit.
 *
 * Usage: test_h5io [--mpi] [--write-sample PATH]
 *   --mpi                call MPI_Init first and MPI_Finalize last (HDF5 must work either way)
 *   --write-sample PATH  instead of the tests, write the sample file to PATH (atomically) and
 *                        read it back; exit 0 if that worked (used by tests/cli/h5_tools.sh)
 * Environment:
 *   DD2_H5_SWEEP_ALL=1 truncate to every length and flip a bit in every byte of the sample file;
 *                      =bits: flip every bit (slow)
 *   DD2_TEST_TIMEOUT=S abort after S seconds (default 300): a hang is a failure
 *   DD2_H5_NO_FREELIST=1 disable HDF5's internal free lists, so that valgrind attributes leaks to
 *                      the call that lost the memory rather than to the first user of a block
 */
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/status.h"
#include "io/atomic_file.h"
#include "io/h5io.h"
#include "test_files.h"
#include "test_util.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

/* ---- the sample file (also used for the damage sweeps and h5_tools.sh) ---------------------- */

#define N_SMALL 10      /* > 8 links in "params": dense link storage (fractal heap + v2 B-tree) */
#define N_ROOT_ATTRS 10 /* > 8 attributes on the root: dense attribute storage */

static const char *k_config =
    "model:\n  dim: 64\n  layers: 4\ntrain:\n  lr: 3.0e-4\n  steps: 1000\n  seed: 1234\n"
    "data:\n  name: fashion-mnist\n  path: /usr/share/datasets/fashion-mnist\n";

typedef struct {
    float wte[16 * 8];
    float wqkv[8 * 24];
    float small[N_SMALL][3];
    uint8_t rng[2 * 32];
    int64_t order[50];
    double mu[4];
    int32_t count;
} sample_data;

static void sample_fill(sample_data *d) {
    for (int i = 0; i < 16 * 8; i++) d->wte[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 8 * 24; i++) d->wqkv[i] = 1.0f / (float)(i + 1);
    for (int j = 0; j < N_SMALL; j++)
        for (int i = 0; i < 3; i++) d->small[j][i] = (float)(j * 10 + i);
    for (int i = 0; i < 64; i++) d->rng[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < 50; i++) d->order[i] = (int64_t)i * 1000000007LL - 5;
    for (int i = 0; i < 4; i++) d->mu[i] = 0.1 * i - 1e-300;
    d->count = -424242;
}

static int write_sample_to(dd2_h5 *h, dd2_status *st) {
    sample_data d;
    sample_fill(&d);
    DD2_TRY(dd2_h5_write_f32(h, "params/wte", 2, (int64_t[]){16, 8}, d.wte, st));
    DD2_TRY(dd2_h5_write_f32(h, "params/blocks.0.attn.wqkv", 2, (int64_t[]){8, 24}, d.wqkv, st));
    for (int j = 0; j < N_SMALL; j++) {
        char name[64];
        snprintf(name, sizeof name, "params/small.%02d", j);
        DD2_TRY(dd2_h5_write_f32(h, name, 1, (int64_t[]){3}, d.small[j], st));
    }
    DD2_TRY(dd2_h5_write_u8(h, "rng/state", 2, (int64_t[]){2, 32}, d.rng, st));
    DD2_TRY(dd2_h5_write_i64(h, "data/order", 1, (int64_t[]){50}, d.order, st));
    DD2_TRY(dd2_h5_write_f64(h, "stats/mu", 1, (int64_t[]){4}, d.mu, st));
    DD2_TRY(dd2_h5_write_i32(h, "stats/count", 0, NULL, &d.count, st));
    DD2_TRY(dd2_h5_write_text(h, "config", k_config, st));
    DD2_TRY(dd2_h5_attr_set_str(h, NULL, "format", "dd2-test-1", st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "step", 123456789012LL, st));
    DD2_TRY(dd2_h5_attr_set_f64(h, NULL, "lr", 3e-4, st));
    for (int i = 0; i < N_ROOT_ATTRS; i++) {
        char name[32];
        snprintf(name, sizeof name, "extra_%d", i);
        DD2_TRY(dd2_h5_attr_set_i64(h, "/", name, i * 7, st));
    }
    DD2_TRY(dd2_h5_attr_set_str(h, "params/wte", "global_shape", "[16, 8]", st));
    DD2_TRY(dd2_h5_attr_set_i64(h, "params/wte", "offset", 0, st));
    DD2_TRY(dd2_h5_attr_set_f64(h, "params/wte", "scale", 0.125, st));
    return DD2_OK;
}

static int write_sample(const char *path, dd2_status *st) {
    dd2_h5 *h;
    DD2_TRY(dd2_h5_create_atomic(path, &h, st));
    int rc = write_sample_to(h, st);
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

static int count_cb(const char *name, void *ctx, dd2_status *st) {
    (void)name;
    (void)st;
    (*(int *)ctx)++;
    return 0;
}

/* Read everything in the sample file. Returns 0 if all data is correct, 1 on a dd2 error (st is
 * filled), 2 if every call succeeded but some value was wrong (silent corruption: a bug). */
static int verify_sample(const char *path, dd2_status *st, char *why, size_t why_n) {
    sample_data want, got;
    sample_fill(&want);
    memset(&got, 0, sizeof got);
    why[0] = 0;
    dd2_h5 *h = NULL;
    int rc = dd2_h5_open_read(path, &h, st);
    char *cfg = NULL, *fmt = NULL, *gshape = NULL;
    int64_t step = 0, off = -1, extra[N_ROOT_ATTRS] = {0};
    double lr = 0, scale = 0;
    int n_datasets = 0;
#define R(call)                                                                                                \
    do {                                                                                                       \
        if (rc == DD2_OK) rc = (call);                                                                         \
    } while (0)
    R(dd2_h5_read_f32(h, "params/wte", 2, (int64_t[]){16, 8}, got.wte, st));
    R(dd2_h5_read_f32(h, "params/blocks.0.attn.wqkv", 2, (int64_t[]){8, 24}, got.wqkv, st));
    for (int j = 0; j < N_SMALL; j++) {
        char name[64];
        snprintf(name, sizeof name, "params/small.%02d", j);
        R(dd2_h5_read_f32(h, name, 1, (int64_t[]){3}, got.small[j], st));
    }
    R(dd2_h5_read_u8(h, "rng/state", 2, (int64_t[]){2, 32}, got.rng, st));
    R(dd2_h5_read_i64(h, "data/order", 1, (int64_t[]){50}, got.order, st));
    R(dd2_h5_read_f64(h, "stats/mu", 1, (int64_t[]){4}, got.mu, st));
    R(dd2_h5_read_i32(h, "stats/count", 0, NULL, &got.count, st));
    R(dd2_h5_read_text(h, "config", &cfg, st));
    R(dd2_h5_attr_get_str(h, NULL, "format", &fmt, st));
    R(dd2_h5_attr_get_i64(h, NULL, "step", &step, st));
    R(dd2_h5_attr_get_f64(h, NULL, "lr", &lr, st));
    for (int i = 0; i < N_ROOT_ATTRS; i++) {
        char name[32];
        snprintf(name, sizeof name, "extra_%d", i);
        R(dd2_h5_attr_get_i64(h, NULL, name, &extra[i], st));
    }
    R(dd2_h5_attr_get_str(h, "params/wte", "global_shape", &gshape, st));
    R(dd2_h5_attr_get_i64(h, "params/wte", "offset", &off, st));
    R(dd2_h5_attr_get_f64(h, "params/wte", "scale", &scale, st));
    R(dd2_h5_list_datasets(h, NULL, count_cb, &n_datasets, st));
#undef R
    if (h) {
        int crc = dd2_h5_close(h, rc == DD2_OK ? st : NULL);
        if (rc == DD2_OK) rc = crc;
    }
    int result = rc != DD2_OK ? 1 : 0;
    if (result == 0) {
        const char *bad = NULL;
        if (memcmp(&want.wte, &got.wte, sizeof want.wte))
            bad = "wte";
        else if (memcmp(&want.wqkv, &got.wqkv, sizeof want.wqkv))
            bad = "wqkv";
        else if (memcmp(&want.small, &got.small, sizeof want.small))
            bad = "small";
        else if (memcmp(&want.rng, &got.rng, sizeof want.rng))
            bad = "rng";
        else if (memcmp(&want.order, &got.order, sizeof want.order))
            bad = "order";
        else if (memcmp(&want.mu, &got.mu, sizeof want.mu))
            bad = "mu";
        else if (want.count != got.count)
            bad = "count";
        else if (!cfg || strcmp(cfg, k_config))
            bad = "config";
        else if (!fmt || strcmp(fmt, "dd2-test-1"))
            bad = "format";
        else if (step != 123456789012LL)
            bad = "step";
        else if (lr != 3e-4)
            bad = "lr";
        else if (!gshape || strcmp(gshape, "[16, 8]"))
            bad = "global_shape";
        else if (off != 0)
            bad = "offset";
        else if (scale != 0.125)
            bad = "scale";
        else if (n_datasets != 7 + N_SMALL)
            bad = "dataset count";
        for (int i = 0; !bad && i < N_ROOT_ATTRS; i++)
            if (extra[i] != i * 7) bad = "extra attribute";
        if (bad) {
            snprintf(why, why_n, "%s differs", bad);
            result = 2;
        }
    }
    free(cfg);
    free(fmt);
    free(gshape);
    return result;
}

/* ---- round trip ----------------------------------------------------------------------------- */

TEST(round_trip_sample) {
    dd2_status st;
    dd2_status_clear(&st);
    const char *p = tf_path("sample.h5");
    CHECK_OK(write_sample(p, &st), &st);
    CHECK(!tf_file_exists(tf_path("sample.h5.tmp")));
    char why[128];
    int r = verify_sample(p, &st, why, sizeof why);
    CHECK_MSG(r == 0, "verify=%d: %s %s", r, st.msg, why);
}

TEST(round_trip_details) {
    dd2_status st;
    dd2_status_clear(&st);
    const char *p = tf_path("details.h5");
    dd2_h5 *h = NULL;
    CHECK_OK(dd2_h5_create(p, &h, &st), &st);
    if (!h) return;
    float empty_dummy = 0;
    uint8_t u8r4[1 * 2 * 3 * 4];
    for (int i = 0; i < 24; i++) u8r4[i] = (uint8_t)(250 + i);
    int64_t big = INT64_MIN + 3;
    CHECK_OK(dd2_h5_write_f32(h, "empty", 2, (int64_t[]){0, 5}, &empty_dummy, &st), &st);
    CHECK_OK(dd2_h5_write_u8(h, "a/b/c/d/rank4", 4, (int64_t[]){1, 2, 3, 4}, u8r4, &st), &st);
    CHECK_OK(dd2_h5_write_i64(h, "scalar", 0, NULL, &big, &st), &st);
    CHECK_OK(dd2_h5_write_text(h, "empty_text", "", &st), &st);
    char *long_text = malloc(200001);
    for (int i = 0; i < 200000; i++) long_text[i] = (char)('a' + i % 26);
    long_text[200000] = 0;
    CHECK_OK(dd2_h5_attr_set_str(h, NULL, "long", long_text, &st), &st); /* > 64 KiB attribute */
    CHECK_OK(dd2_h5_attr_set_str(h, NULL, "utf8", "µ-σ ✓", &st), &st);
    CHECK_OK(dd2_h5_attr_set_str(h, NULL, "empty", "", &st), &st);
    CHECK_OK(dd2_h5_attr_set_i64(h, "a/b", "on_group", -7, &st), &st);
    CHECK_OK(dd2_h5_attr_set_i64(h, NULL, "replaced", 1, &st), &st);
    CHECK_OK(dd2_h5_attr_set_str(h, NULL, "replaced", "now a string", &st), &st);
    CHECK_OK(dd2_h5_attr_set_i64(h, NULL, "int_as_double", 5, &st), &st);
    CHECK_OK(dd2_h5_close(h, &st), &st);

    CHECK_OK(dd2_h5_open_read(p, &h, &st), &st);
    if (!h) {
        free(long_text);
        return;
    }
    dd2_h5_shape sh;
    CHECK_OK(dd2_h5_get_shape(h, "empty", &sh, &st), &st);
    CHECK(sh.type == DD2_H5_F32 && sh.rank == 2 && sh.dims[0] == 0 && sh.dims[1] == 5 && sh.count == 0);
    CHECK_OK(dd2_h5_read_f32(h, "empty", 2, (int64_t[]){0, 5}, &empty_dummy, &st), &st);
    CHECK_OK(dd2_h5_get_shape(h, "a/b/c/d/rank4", &sh, &st), &st);
    CHECK(sh.type == DD2_H5_U8 && sh.rank == 4 && sh.dims[3] == 4 && sh.count == 24);
    uint8_t u8b[24] = {0};
    CHECK_OK(dd2_h5_read_u8(h, "a/b/c/d/rank4", 4, (int64_t[]){1, 2, 3, 4}, u8b, &st), &st);
    CHECK(memcmp(u8b, u8r4, 24) == 0);
    CHECK_OK(dd2_h5_get_shape(h, "scalar", &sh, &st), &st);
    CHECK(sh.type == DD2_H5_I64 && sh.rank == 0 && sh.count == 1);
    int64_t big2 = 0;
    CHECK_OK(dd2_h5_read_i64(h, "scalar", 0, NULL, &big2, &st), &st);
    CHECK(big2 == big);
    char *s = NULL;
    CHECK_OK(dd2_h5_read_text(h, "empty_text", &s, &st), &st);
    CHECK_STREQ(s, "");
    free(s);
    CHECK_OK(dd2_h5_attr_get_str(h, NULL, "long", &s, &st), &st);
    CHECK(s && strcmp(s, long_text) == 0);
    free(s);
    CHECK_OK(dd2_h5_attr_get_str(h, "/", "utf8", &s, &st), &st);
    CHECK_STREQ(s, "µ-σ ✓");
    free(s);
    CHECK_OK(dd2_h5_attr_get_str(h, "", "empty", &s, &st), &st);
    CHECK_STREQ(s, "");
    free(s);
    CHECK_OK(dd2_h5_attr_get_str(h, NULL, "replaced", &s, &st), &st);
    CHECK_STREQ(s, "now a string");
    free(s);
    int64_t v = 0;
    CHECK_OK(dd2_h5_attr_get_i64(h, "a/b", "on_group", &v, &st), &st);
    CHECK(v == -7);
    double dv = 0;
    CHECK_OK(dd2_h5_attr_get_f64(h, NULL, "int_as_double", &dv, &st), &st);
    CHECK(dv == 5.0);
    int ex = -1;
    CHECK_OK(dd2_h5_exists(h, "a/b/c", &ex, &st), &st);
    CHECK(ex == 1);
    CHECK_OK(dd2_h5_exists(h, "a/b/c/d/rank4", &ex, &st), &st);
    CHECK(ex == 1);
    CHECK_OK(dd2_h5_exists(h, "nope/x/y", &ex, &st), &st);
    CHECK(ex == 0);
    CHECK_OK(dd2_h5_exists(h, "a/nope", &ex, &st), &st);
    CHECK(ex == 0);
    CHECK_OK(dd2_h5_attr_exists(h, "a/b", "on_group", &ex, &st), &st);
    CHECK(ex == 1);
    CHECK_OK(dd2_h5_attr_exists(h, "a/b", "nope", &ex, &st), &st);
    CHECK(ex == 0);
    CHECK_OK(dd2_h5_attr_exists(h, "no/such", "x", &ex, &st), &st);
    CHECK(ex == 0);
    CHECK_OK(dd2_h5_attr_exists(h, "scalar", "checksum", &ex, &st), &st);
    CHECK(ex == 1);
    int n = 0;
    CHECK_OK(dd2_h5_list_datasets(h, NULL, count_cb, &n, &st), &st);
    CHECK_MSG(n == 4, "n=%d", n);
    n = 0;
    CHECK_OK(dd2_h5_list_datasets(h, "a/b", count_cb, &n, &st), &st);
    CHECK_MSG(n == 1, "n=%d", n);
    CHECK_OK(dd2_h5_close(h, &st), &st);
    free(long_text);
}

typedef struct {
    char names[32][64];
    int n;
} name_list;

static int collect_cb(const char *name, void *ctx, dd2_status *st) {
    (void)st;
    name_list *l = ctx;
    if (l->n < 32) snprintf(l->names[l->n++], 64, "%s", name);
    return 0;
}

static int stop_cb(const char *name, void *ctx, dd2_status *st) {
    (void)ctx;
    return DD2_FAIL(st, DD2_ERR_INPUT, "stopped at %s", name);
}

TEST(list_datasets) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_h5 *h = NULL;
    CHECK_OK(dd2_h5_open_read(tf_path("sample.h5"), &h, &st), &st);
    if (!h) return;
    name_list l = {.n = 0};
    CHECK_OK(dd2_h5_list_datasets(h, "params", collect_cb, &l, &st), &st);
    CHECK_MSG(l.n == 2 + N_SMALL, "n=%d", l.n);
    CHECK_STREQ(l.names[0], "params/blocks.0.attn.wqkv");
    CHECK_STREQ(l.names[l.n - 1], "params/wte");
    int rc = dd2_h5_list_datasets(h, "params", stop_cb, NULL, &st);
    CHECK(rc == DD2_ERR_INPUT && contains(st.msg, "stopped at params/blocks.0.attn.wqkv"));
    rc = dd2_h5_list_datasets(h, "nope", collect_cb, &l, &st);
    CHECK(rc == DD2_ERR_INPUT && contains(st.msg, "'nope': not found"));
    CHECK_OK(dd2_h5_close(h, &st), &st);
}

/* ---- error messages ------------------------------------------------------------------------- */

#define CHECK_ERR(call, code_, substr)                                                                         \
    do {                                                                                                       \
        int rc_ = (call);                                                                                      \
        CHECK_MSG(rc_ == (code_) && contains(st.msg, (substr)), "rc=%d msg=\"%s\" want \"%s\"", rc_, st.msg,   \
                  (substr));                                                                                   \
    } while (0)

TEST(read_errors) {
    dd2_status st;
    dd2_status_clear(&st);
    const char *p = tf_path("sample.h5");
    dd2_h5 *h = NULL;
    CHECK_OK(dd2_h5_open_read(p, &h, &st), &st);
    if (!h) return;
    float buf[16 * 8];
    char want[600];
    snprintf(want, sizeof want,
             "%s: dataset 'params/wte': shape mismatch: expected f32 [8, 16], found f32 [16, 8]", p);
    CHECK_ERR(dd2_h5_read_f32(h, "params/wte", 2, (int64_t[]){8, 16}, buf, &st), DD2_ERR_INPUT, want);
    CHECK_ERR(dd2_h5_read_f32(h, "params/wte", 1, (int64_t[]){128}, buf, &st), DD2_ERR_INPUT,
              "expected f32 [128], found f32 [16, 8]");
    CHECK_ERR(dd2_h5_read_i32(h, "params/wte", 2, (int64_t[]){16, 8}, (int32_t *)buf, &st), DD2_ERR_INPUT,
              "expected i32 [16, 8], found f32 [16, 8]");
    snprintf(want, sizeof want, "%s: dataset 'params/nope': not found", p);
    CHECK_ERR(dd2_h5_read_f32(h, "params/nope", 1, (int64_t[]){1}, buf, &st), DD2_ERR_INPUT, want);
    CHECK_ERR(dd2_h5_read_f32(h, "nope/deeper/x", 1, (int64_t[]){1}, buf, &st), DD2_ERR_INPUT,
              "dataset 'nope/deeper/x': not found");
    CHECK_ERR(dd2_h5_read_f32(h, "params", 1, (int64_t[]){1}, buf, &st), DD2_ERR_INPUT,
              "is a group, not a dataset");
    dd2_h5_shape sh;
    CHECK_ERR(dd2_h5_get_shape(h, "config", &sh, &st), DD2_ERR_INPUT,
              "dataset 'config': unsupported element type string");
    char *s = NULL;
    CHECK_ERR(dd2_h5_read_text(h, "params/wte", &s, &st), DD2_ERR_INPUT, "not a scalar fixed-length string");
    int64_t v;
    CHECK_ERR(dd2_h5_attr_get_i64(h, NULL, "nope", &v, &st), DD2_ERR_INPUT,
              "root group: attribute 'nope': not found");
    CHECK_ERR(dd2_h5_attr_get_i64(h, NULL, "format", &v, &st), DD2_ERR_INPUT,
              "attribute 'format': not an integer");
    CHECK_ERR(dd2_h5_attr_get_str(h, "params/wte", "offset", &s, &st), DD2_ERR_INPUT,
              "object 'params/wte': attribute 'offset': not a string");
    double dv;
    CHECK_ERR(dd2_h5_attr_get_f64(h, "params/nope", "x", &dv, &st), DD2_ERR_INPUT,
              "object 'params/nope': not found");
    /* misuse */
    CHECK_ERR(dd2_h5_write_f32(h, "x", 1, (int64_t[]){1}, buf, &st), DD2_ERR_RUNTIME, "file is open read-only");
    CHECK_ERR(dd2_h5_read_f32(h, "/params/wte", 2, (int64_t[]){16, 8}, buf, &st), DD2_ERR_RUNTIME,
              "invalid dataset name");
    CHECK_ERR(dd2_h5_read_f32(h, "params//wte", 2, (int64_t[]){16, 8}, buf, &st), DD2_ERR_RUNTIME,
              "invalid dataset name");
    CHECK_ERR(dd2_h5_read_f32(h, "params/../wte", 2, (int64_t[]){16, 8}, buf, &st), DD2_ERR_RUNTIME, "invalid");
    CHECK_ERR(dd2_h5_read_f32(h, "", 2, (int64_t[]){16, 8}, buf, &st), DD2_ERR_RUNTIME, "empty dataset name");
    CHECK_ERR(dd2_h5_read_f32(h, "params/wte", 5, (int64_t[]){1, 1, 1, 1, 1}, buf, &st), DD2_ERR_RUNTIME,
              "rank 5");
    CHECK_ERR(dd2_h5_read_f32(h, "params/wte", 1, (int64_t[]){-1}, buf, &st), DD2_ERR_RUNTIME, "negative");
    CHECK_OK(dd2_h5_close(h, &st), &st);
}

TEST(open_errors) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_h5 *h = NULL;
    char want[600];
    const char *missing = tf_path("missing.h5");
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", missing);
    CHECK_ERR(dd2_h5_open_read(missing, &h, &st), DD2_ERR_INPUT, want);
    CHECK(h == NULL);
    const char *txt = tf_path("not_h5.h5");
    const char *junk = "this is a text file, not HDF5\n";
    tf_write_file(txt, junk, strlen(junk));
    snprintf(want, sizeof want, "%s: not an HDF5 file", txt);
    CHECK_ERR(dd2_h5_open_read(txt, &h, &st), DD2_ERR_INPUT, want);
    const char *empty = tf_path("empty.h5");
    tf_write_file(empty, "", 0);
    CHECK_ERR(dd2_h5_open_read(empty, &h, &st), DD2_ERR_INPUT, "not an HDF5 file (empty file)");
    CHECK_ERR(dd2_h5_open_read(tf_dir, &h, &st), DD2_ERR_INPUT, "is a directory");
    CHECK_ERR(dd2_h5_create(tf_path("no/such/dir/x.h5"), &h, &st), DD2_ERR_RUNTIME, "cannot create HDF5 file");
    CHECK_ERR(dd2_h5_create_atomic(tf_path("no/such/dir/x.h5"), &h, &st), DD2_ERR_RUNTIME,
              "cannot create HDF5 file");
    CHECK(h == NULL);
    unlink(txt);
    unlink(empty);
}

TEST(write_errors) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_h5 *h = NULL;
    CHECK_OK(dd2_h5_create(tf_path("werr.h5"), &h, &st), &st);
    if (!h) return;
    float x[2] = {1, 2};
    CHECK_OK(dd2_h5_write_f32(h, "g/x", 1, (int64_t[]){2}, x, &st), &st);
    CHECK_ERR(dd2_h5_write_f32(h, "g/x", 1, (int64_t[]){2}, x, &st), DD2_ERR_RUNTIME,
              "dataset 'g/x': already exists");
    CHECK_ERR(dd2_h5_write_f32(h, "g/x/y", 1, (int64_t[]){2}, x, &st), DD2_ERR_RUNTIME, "dataset 'g/x/y'");
    CHECK_ERR(dd2_h5_attr_set_i64(h, "g/x", "checksum", 1, &st), DD2_ERR_RUNTIME, "'checksum' is reserved");
    CHECK_ERR(dd2_h5_attr_set_i64(h, "g/nope", "a", 1, &st), DD2_ERR_RUNTIME, "object 'g/nope': not found");
    CHECK_ERR(dd2_h5_write_f32(h, "g/z", 1, (int64_t[]){2}, NULL, &st), DD2_ERR_RUNTIME, "data is NULL");
    CHECK_ERR(dd2_h5_write(h, "g/z", (dd2_h5_type)99, 1, (int64_t[]){2}, x, &st), DD2_ERR_RUNTIME,
              "invalid element type");
    CHECK_ERR(dd2_h5_write_f32(h, "g/z", 2, (int64_t[]){INT64_MAX, 4}, x, &st), DD2_ERR_RUNTIME, "too large");
    dd2_h5_abort(h);
}

/* A file from another writer (plain HDF5 calls, like h5py would write): big-endian data with a
 * correct checksum, a variable-length string attribute, unsupported types/ranks, no checksum. */
TEST(foreign_file) {
    dd2_status st;
    dd2_status_clear(&st);
    const char *p = tf_path("foreign.h5");
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t d4 = 4, d5[5] = {1, 1, 1, 1, 2};
    hid_t s4 = H5Screate_simple(1, &d4, NULL), s5 = H5Screate_simple(5, d5, NULL), sc = H5Screate(H5S_SCALAR);
    float v[4] = {1.5f, -2.0f, 3.25f, 1e-3f};
    uint32_t crc = dd2_h5_crc32(0, v, sizeof v); /* over the little-endian values */
    hid_t be = H5Dcreate2(f, "be", H5T_IEEE_F32BE, s4, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(be, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    hid_t a = H5Acreate2(be, "checksum", H5T_STD_U32BE, sc, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_UINT32, &crc);
    H5Aclose(a);
    hid_t vs = H5Tcopy(H5T_C_S1);
    H5Tset_size(vs, H5T_VARIABLE);
    const char *txt = "variable-length";
    a = H5Acreate2(be, "note", vs, sc, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, vs, &txt);
    H5Aclose(a);
    H5Dclose(be);
    hid_t i16 = H5Dcreate2(f, "i16", H5T_STD_I16LE, s4, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t r5 = H5Dcreate2(f, "r5", H5T_IEEE_F32LE, s5, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t nock = H5Dcreate2(f, "nock", H5T_IEEE_F32LE, s4, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(nock, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(i16);
    H5Dclose(r5);
    H5Dclose(nock);
    H5Tclose(vs);
    H5Sclose(s4);
    H5Sclose(s5);
    H5Sclose(sc);
    H5Fclose(f);

    dd2_h5 *h = NULL;
    CHECK_OK(dd2_h5_open_read(p, &h, &st), &st);
    if (!h) return;
    float w[4] = {0};
    CHECK_OK(dd2_h5_read_f32(h, "be", 1, (int64_t[]){4}, w, &st), &st);
    CHECK(memcmp(v, w, sizeof v) == 0);
    char *s = NULL;
    CHECK_OK(dd2_h5_attr_get_str(h, "be", "note", &s, &st), &st);
    CHECK_STREQ(s, "variable-length");
    free(s);
    dd2_h5_shape sh;
    CHECK_ERR(dd2_h5_get_shape(h, "i16", &sh, &st), DD2_ERR_INPUT, "dataset 'i16': unsupported element type int16");
    CHECK_ERR(dd2_h5_get_shape(h, "r5", &sh, &st), DD2_ERR_INPUT,
              "dataset 'r5': unsupported shape: rank 5 (at most 4 supported)");
    CHECK(!contains(st.msg, "(HDF5)"));
    CHECK_ERR(dd2_h5_read_f32(h, "nock", 1, (int64_t[]){4}, w, &st), DD2_ERR_INPUT,
              "dataset 'nock': attribute 'checksum': not found");
    CHECK_OK(dd2_h5_close(h, &st), &st);
    unlink(p);
}

/* ---- checksums ------------------------------------------------------------------------------ */

/* Byte offset and size of a dataset's raw data (contiguous layout), via HDF5 directly. */
static int data_region(const char *path, const char *name, size_t *off, size_t *size) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    haddr_t a = d >= 0 ? H5Dget_offset(d) : HADDR_UNDEF;
    *size = d >= 0 ? (size_t)H5Dget_storage_size(d) : 0;
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    if (a == HADDR_UNDEF) return -1;
    *off = (size_t)a;
    return 0;
}

TEST(checksum_mismatch) {
    dd2_status st;
    dd2_status_clear(&st);
    const char *p = tf_path("modified.h5");
    CHECK_OK(write_sample(p, &st), &st);
    /* 1: rewrite values through HDF5 without updating the checksum */
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(f >= 0);
    hid_t d = H5Dopen2(f, "params/wte", H5P_DEFAULT);
    float v[16 * 8];
    for (int i = 0; i < 16 * 8; i++) v[i] = (float)i;
    CHECK(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0);
    H5Dclose(d);
    H5Fclose(f);
    dd2_h5 *h = NULL;
    CHECK_OK(dd2_h5_open_read(p, &h, &st), &st);
    if (!h) return;
    char want[600];
    snprintf(want, sizeof want, "%s: dataset 'params/wte': checksum mismatch (stored 0x", p);
    CHECK_ERR(dd2_h5_read_f32(h, "params/wte", 2, (int64_t[]){16, 8}, v, &st), DD2_ERR_INPUT, want);
    CHECK(contains(st.msg, ", computed 0x"));
    /* the other datasets still read fine */
    int64_t order[50];
    CHECK_OK(dd2_h5_read_i64(h, "data/order", 1, (int64_t[]){50}, order, &st), &st);
    CHECK_OK(dd2_h5_close(h, &st), &st);

    /* 2: flip one byte at the dataset's file offset (found with H5Dget_offset) */
    size_t off = 0, size = 0;
    CHECK(data_region(p, "data/order", &off, &size) == 0 && size == sizeof order);
    size_t len;
    unsigned char *bytes = tf_read_file(p, &len);
    CHECK(bytes && off + size <= len);
    if (!bytes) return;
    bytes[off + 17] ^= 0x40;
    tf_write_file(p, bytes, len);
    free(bytes);
    CHECK_OK(dd2_h5_open_read(p, &h, &st), &st);
    if (!h) return;
    CHECK_ERR(dd2_h5_read_i64(h, "data/order", 1, (int64_t[]){50}, order, &st), DD2_ERR_INPUT,
              "dataset 'data/order': checksum mismatch");
    dd2_h5_close(h, &st);
    unlink(p);
}

TEST(crc32_known_value) {
    /* zlib/IEEE CRC-32 of "123456789" is 0xCBF43926 */
    CHECK(dd2_h5_crc32(0, "123456789", 9) == 0xCBF43926u);
    CHECK(dd2_h5_crc32(dd2_h5_crc32(0, "1234", 4), "56789", 5) == 0xCBF43926u);
    CHECK(dd2_h5_crc32(0, "", 0) == 0);
}

/* ---- slab I/O (the > 2 GiB path, exercised with a tiny piece size) -------------------------- */

TEST(slab_io) {
    dd2_status st;
    dd2_status_clear(&st);
    const char *p = tf_path("slabs.h5");
    float a[5 * 7 * 3];
    int64_t b[3 * 10];
    uint8_t c[1000];
    double e[2 * 3 * 4 * 5];
    for (int i = 0; i < 105; i++) a[i] = (float)i + 0.25f;
    for (int i = 0; i < 30; i++) b[i] = -i * 99999999999LL;
    for (int i = 0; i < 1000; i++) c[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 120; i++) e[i] = i / 3.0;
    size_t limits[] = {1, 13, 64, 100, 1 << 20};
    for (size_t li = 0; li < sizeof limits / sizeof *limits; li++) {
        dd2_h5_set_max_io_bytes(limits[li]);
        dd2_h5 *h = NULL;
        CHECK_OK(dd2_h5_create(p, &h, &st), &st);
        if (!h) break;
        CHECK_OK(dd2_h5_write_f32(h, "a", 3, (int64_t[]){5, 7, 3}, a, &st), &st);
        CHECK_OK(dd2_h5_write_i64(h, "b", 2, (int64_t[]){3, 10}, b, &st), &st);
        CHECK_OK(dd2_h5_write_u8(h, "c", 1, (int64_t[]){1000}, c, &st), &st);
        CHECK_OK(dd2_h5_write_f64(h, "e", 4, (int64_t[]){2, 3, 4, 5}, e, &st), &st);
        CHECK_OK(dd2_h5_close(h, &st), &st);
        /* check placement with plain HDF5 (one whole read), not just our own symmetric path */
        hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
        float a2[105] = {0};
        double e2[120] = {0};
        hid_t d = H5Dopen2(f, "a", H5P_DEFAULT);
        H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a2);
        H5Dclose(d);
        d = H5Dopen2(f, "e", H5P_DEFAULT);
        H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, e2);
        H5Dclose(d);
        H5Fclose(f);
        CHECK_MSG(memcmp(a, a2, sizeof a) == 0 && memcmp(e, e2, sizeof e) == 0, "limit %zu", limits[li]);
        /* read back with a different piece size */
        dd2_h5_set_max_io_bytes(limits[(li + 2) % 5]);
        float a3[105];
        int64_t b3[30];
        uint8_t c3[1000];
        double e3[120];
        CHECK_OK(dd2_h5_open_read(p, &h, &st), &st);
        if (!h) break;
        CHECK_OK(dd2_h5_read_f32(h, "a", 3, (int64_t[]){5, 7, 3}, a3, &st), &st);
        CHECK_OK(dd2_h5_read_i64(h, "b", 2, (int64_t[]){3, 10}, b3, &st), &st);
        CHECK_OK(dd2_h5_read_u8(h, "c", 1, (int64_t[]){1000}, c3, &st), &st);
        CHECK_OK(dd2_h5_read_f64(h, "e", 4, (int64_t[]){2, 3, 4, 5}, e3, &st), &st);
        CHECK_OK(dd2_h5_close(h, &st), &st);
        CHECK_MSG(memcmp(a, a3, sizeof a) == 0 && memcmp(b, b3, sizeof b) == 0 &&
                      memcmp(c, c3, sizeof c) == 0 && memcmp(e, e3, sizeof e) == 0,
                  "limit %zu", limits[li]);
    }
    dd2_h5_set_max_io_bytes((size_t)256 << 20);
    unlink(p);
}

/* ---- damaged files -------------------------------------------------------------------------- */

TEST(truncation_sweep) {
    dd2_status st;
    dd2_status_clear(&st);
    const char *src = tf_path("sample.h5"), *dst = tf_path("truncated.h5");
    size_t len;
    unsigned char *bytes = tf_read_file(src, &len);
    CHECK(bytes && len > 1000);
    if (!bytes) return;
    size_t lens[64];
    int n = 0;
    size_t fixed[] = {0, 1, 4, 7, 8, 9, 47, 48, 100, 200, 511, 512, 1000};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) lens[n++] = fixed[i];
    for (int i = 1; i < 32; i++) lens[n++] = len * (size_t)i / 32;
    lens[n++] = len - 100;
    lens[n++] = len - 8;
    lens[n++] = len - 1;
    int all = getenv("DD2_H5_SWEEP_ALL") != NULL; /* then: every length */
    if (all) n = (int)len;
    int errors = 0;
    for (int i = 0; i < n; i++) {
        size_t tlen = all ? (size_t)i : lens[i];
        tf_write_file(dst, bytes, tlen);
        char why[128];
        dd2_status_clear(&st);
        int r = verify_sample(dst, &st, why, sizeof why);
        CHECK_MSG(r == 1, "truncated to %zu of %zu bytes: verify=%d %s", tlen, len, r, why);
        CHECK_MSG(r != 1 || contains(st.msg, dst), "message does not name the file: %s", st.msg);
        errors += r == 1;
        if (getenv("DD2_H5_VERBOSE")) fprintf(stderr, "  truncate %zu: %s\n", tlen, st.msg);
    }
    fprintf(stderr, "  truncation: %d lengths of a %zu-byte file, %d errors reported\n", n, len, errors);
    free(bytes);
    unlink(dst);
}

TEST(bitflip_sweep) {
    dd2_status st;
    dd2_status_clear(&st);
    const char *src = tf_path("sample.h5"), *dst = tf_path("flipped.h5");
    size_t len;
    unsigned char *bytes = tf_read_file(src, &len);
    CHECK(bytes != NULL);
    if (!bytes) return;
    /* raw-data regions of every dataset: a flip there must be caught by our checksum */
    const char *names[8 + N_SMALL] = {
        "params/wte", "params/blocks.0.attn.wqkv", "rng/state", "data/order", "stats/mu", "stats/count",
        "config"};
    int n_names = 7;
    char small_names[N_SMALL][32];
    for (int j = 0; j < N_SMALL; j++) {
        snprintf(small_names[j], sizeof small_names[j], "params/small.%02d", j);
        names[n_names++] = small_names[j];
    }
    size_t off[8 + N_SMALL], size[8 + N_SMALL];
    for (int i = 0; i < n_names; i++)
        CHECK_MSG(data_region(src, names[i], &off[i], &size[i]) == 0, "%s", names[i]);

    /* default: every byte of the first 512 (superblock, root object header), then ~1500 bytes
     * spread over the rest; one bit per byte, varying. DD2_H5_SWEEP_ALL=1: every byte;
     * DD2_H5_SWEEP_ALL=bits: every bit of every byte. */
    const char *all_env = getenv("DD2_H5_SWEEP_ALL");
    int all = all_env != NULL, all_bits = all && strcmp(all_env, "bits") == 0;
    size_t stride = all ? 1 : (len / 1500 > 1 ? len / 1500 : 1);
    int tried = 0, ok_same = 0, errs = 0, data_flips = 0;
    size_t n_flips = all_bits ? 8 * len : len;
    for (size_t k = 0; k < n_flips; k += (k < 512 || all) ? 1 : stride) {
        size_t pos = all_bits ? k / 8 : k;
        int bit = all_bits ? (int)(k % 8) : (int)((pos * 5 + 3) % 8);
        bytes[pos] ^= (unsigned char)(1u << bit);
        tf_write_file(dst, bytes, len);
        bytes[pos] ^= (unsigned char)(1u << bit);
        const char *in_data = NULL;
        for (int i = 0; i < n_names; i++)
            if (pos >= off[i] && pos < off[i] + size[i]) in_data = names[i];
        char why[128];
        dd2_status_clear(&st);
        int r = verify_sample(dst, &st, why, sizeof why);
        tried++;
        ok_same += r == 0;
        errs += r == 1;
        CHECK_MSG(r != 2, "flip of bit %d at byte %zu went unnoticed: %s", bit, pos, why);
        CHECK_MSG(r != 1 || (st.msg[0] && contains(st.msg, dst)),
                  "byte %zu: message does not name the file: %s", pos, st.msg);
        if (in_data) {
            data_flips++;
            char want[128];
            snprintf(want, sizeof want, "dataset '%s': checksum mismatch", in_data);
            CHECK_MSG(r == 1 && contains(st.msg, want), "flip at byte %zu (data of %s): r=%d msg=%s", pos,
                      in_data, r, st.msg);
        }
        if (getenv("DD2_H5_VERBOSE")) fprintf(stderr, "  flip %zu.%d: %s\n", pos, bit, r ? st.msg : "ok");
    }
    fprintf(stderr, "  bit flips: %d positions in a %zu-byte file: %d errors (%d in raw data), %d harmless\n",
            tried, len, errs, data_flips, ok_same);
    free(bytes);
    unlink(dst);
}

/* ---- atomic commit -------------------------------------------------------------------------- */

static int write_one(const char *path, float value, int atomic, int commit, dd2_status *st) {
    dd2_h5 *h;
    DD2_TRY(atomic ? dd2_h5_create_atomic(path, &h, st) : dd2_h5_create(path, &h, st));
    float v[4] = {value, value, value, value};
    int rc = dd2_h5_write_f32(h, "v", 1, (int64_t[]){4}, v, st);
    if (rc != DD2_OK || !commit) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

static float read_one(const char *path) {
    dd2_status st;
    dd2_h5 *h;
    float v[4] = {-1, -1, -1, -1};
    if (dd2_h5_open_read(path, &h, &st) != DD2_OK) return -1;
    if (dd2_h5_read_f32(h, "v", 1, (int64_t[]){4}, v, &st) != DD2_OK) v[0] = -2;
    dd2_h5_close(h, &st);
    return v[0];
}

TEST(atomic_h5) {
    dd2_status st;
    dd2_status_clear(&st);
    const char *p = tf_path("atomic.h5"), *tmp = tf_path("atomic.h5.tmp");
    CHECK_OK(write_one(p, 1.0f, 1, 1, &st), &st);
    CHECK(read_one(p) == 1.0f && !tf_file_exists(tmp));
    /* aborted: old file intact, tmp gone */
    CHECK_OK(write_one(p, 2.0f, 1, 0, &st), &st);
    CHECK(read_one(p) == 1.0f && !tf_file_exists(tmp));
    /* committed replacement */
    CHECK_OK(write_one(p, 3.0f, 1, 1, &st), &st);
    CHECK(read_one(p) == 3.0f && !tf_file_exists(tmp));
    /* a crash in the middle (child dies without closing): old file intact, stale tmp left */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dd2_h5 *h;
        dd2_status cst;
        float v[4] = {9, 9, 9, 9};
        if (dd2_h5_create_atomic(p, &h, &cst) == DD2_OK) dd2_h5_write_f32(h, "v", 1, (int64_t[]){4}, v, &cst);
        _exit(7);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    CHECK(read_one(p) == 3.0f);
    CHECK(tf_file_exists(tmp));
    /* the next writer reuses the stale tmp and commits */
    CHECK_OK(write_one(p, 4.0f, 1, 1, &st), &st);
    CHECK(read_one(p) == 4.0f && !tf_file_exists(tmp));
    /* a failed write on the handle: close refuses to commit */
    dd2_h5 *h;
    CHECK_OK(dd2_h5_create_atomic(p, &h, &st), &st);
    float v[4] = {5, 5, 5, 5};
    CHECK_OK(dd2_h5_write_f32(h, "v", 1, (int64_t[]){4}, v, &st), &st);
    CHECK(dd2_h5_write_f32(h, "v", 1, (int64_t[]){4}, v, &st) == DD2_ERR_RUNTIME);
    CHECK_ERR(dd2_h5_close(h, &st), DD2_ERR_RUNTIME, "not committed: an earlier write to this file failed");
    CHECK(read_one(p) == 4.0f && !tf_file_exists(tmp));
    /* a non-atomic create writes in place */
    CHECK_OK(write_one(tf_path("direct.h5"), 6.0f, 0, 1, &st), &st);
    CHECK(read_one(tf_path("direct.h5")) == 6.0f && !tf_file_exists(tf_path("direct.h5.tmp")));
    unlink(p);
    unlink(tf_path("direct.h5"));
}

TEST(atomic_generic) {
    dd2_status st;
    dd2_status_clear(&st);
    const char *p = tf_path("LATEST"), *tmp = tf_path("LATEST.tmp");
    CHECK_OK(dd2_atomic_write_text(p, "step_00000010\n", &st), &st);
    size_t len;
    unsigned char *b = tf_read_file(p, &len);
    CHECK(b && len == 14 && memcmp(b, "step_00000010\n", 14) == 0);
    free(b);
    CHECK_OK(dd2_atomic_write_text(p, "step_00000020\n", &st), &st);
    b = tf_read_file(p, &len);
    CHECK(b && len == 14 && memcmp(b, "step_00000020\n", 14) == 0);
    free(b);
    CHECK(!tf_file_exists(tmp));
    /* begin / abort leaves the old file */
    dd2_atomic a;
    CHECK_OK(dd2_atomic_begin(&a, p, &st), &st);
    CHECK_STREQ(a.tmp_path, tmp);
    tf_write_file(a.tmp_path, "garbage", 7);
    dd2_atomic_abort(&a);
    b = tf_read_file(p, &len);
    CHECK(b && len == 14 && memcmp(b, "step_00000020\n", 14) == 0);
    free(b);
    CHECK(!tf_file_exists(tmp));
    /* begin / commit */
    CHECK_OK(dd2_atomic_begin(&a, p, &st), &st);
    tf_write_file(a.tmp_path, "new", 3);
    CHECK_OK(dd2_atomic_commit(&a, &st), &st);
    b = tf_read_file(p, &len);
    CHECK(b && len == 3 && memcmp(b, "new", 3) == 0);
    free(b);
    CHECK(!tf_file_exists(tmp));
    /* commit without a written tmp fails, old file stays */
    CHECK_OK(dd2_atomic_begin(&a, p, &st), &st);
    CHECK_ERR(dd2_atomic_commit(&a, &st), DD2_ERR_RUNTIME, "LATEST.tmp");
    CHECK(tf_file_exists(p));
    CHECK_ERR(dd2_atomic_write_text(tf_path("no/such/dir/LATEST"), "x", &st), DD2_ERR_RUNTIME, "cannot create");
    CHECK_ERR(dd2_atomic_begin(&a, "", &st), DD2_ERR_INPUT, "empty path");
    CHECK_OK(dd2_fsync_path(tf_dir, &st), &st);
    CHECK_OK(dd2_fsync_parent_dir(p, &st), &st);
    CHECK_ERR(dd2_fsync_path(tf_path("missing"), &st), DD2_ERR_RUNTIME, "missing: cannot open for fsync");
    unlink(p);
}

TEST(commit_dir) {
    dd2_status st;
    dd2_status_clear(&st);
    char tmpd[512], fin[512], f[600];
    snprintf(tmpd, sizeof tmpd, "%s/step_00000010.tmp", tf_dir);
    snprintf(fin, sizeof fin, "%s/step_00000010", tf_dir);
    CHECK(mkdir(tmpd, 0755) == 0);
    snprintf(f, sizeof f, "%s/meta.h5", tmpd);
    CHECK_OK(write_one(f, 7.0f, 1, 1, &st), &st);
    CHECK_OK(dd2_commit_dir(tmpd, fin, &st), &st);
    CHECK(!tf_file_exists(tmpd));
    snprintf(f, sizeof f, "%s/meta.h5", fin);
    CHECK(read_one(f) == 7.0f);
    /* committing onto an existing non-empty directory fails and names both */
    CHECK(mkdir(tmpd, 0755) == 0);
    snprintf(f, sizeof f, "%s/meta.h5", tmpd);
    CHECK_OK(write_one(f, 8.0f, 1, 1, &st), &st);
    CHECK_ERR(dd2_commit_dir(tmpd, fin, &st), DD2_ERR_RUNTIME, "cannot rename");
    CHECK(contains(st.msg, tmpd) && contains(st.msg, fin));
    snprintf(f, sizeof f, "%s/meta.h5", fin);
    CHECK(read_one(f) == 7.0f);
    CHECK_ERR(dd2_commit_dir(tf_path("nope.tmp"), fin, &st), DD2_ERR_RUNTIME,
              "nope.tmp: cannot commit directory");
    tf_remove_tree(tmpd);
    tf_remove_tree(fin);
}

/* ---- main ----------------------------------------------------------------------------------- */

/* --write-sample: write the sample file and read it back (with MPI up or not). */
static int write_sample_mode(const char *path) {
    dd2_status st;
    dd2_status_clear(&st);
    char why[128] = "";
    int rc = write_sample(path, &st);
    if (rc == DD2_OK && verify_sample(path, &st, why, sizeof why) != 0) rc = DD2_ERR_RUNTIME;
    if (rc != DD2_OK) fprintf(stderr, "test_h5io --write-sample %s: %s%s\n", path, st.msg, why);
    return rc == DD2_OK ? 0 : 1;
}

int main(int argc, char **argv) {
    test_init(argv[0]);
    int use_mpi = 0;
    const char *sample_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mpi") == 0)
            use_mpi = 1;
        else if (strcmp(argv[i], "--write-sample") == 0 && i + 1 < argc)
            sample_path = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--mpi] [--write-sample PATH]\n", argv[0]);
            return 2;
        }
    }
    if (use_mpi) MPI_Init(&argc, &argv);
    if (sample_path) {
        int rc = write_sample_mode(sample_path);
        if (use_mpi) MPI_Finalize();
        return rc;
    }
    const char *to = getenv("DD2_TEST_TIMEOUT");
    alarm(to ? (unsigned)atoi(to) : 300u); /* a hang (e.g. on a damaged file) kills the test */
    if (getenv("DD2_H5_NO_FREELIST")) H5set_free_list_limits(0, 0, 0, 0, 0, 0);
    tf_make_tmpdir("h5io");
    RUN(round_trip_sample);
    RUN(round_trip_details);
    RUN(list_datasets);
    RUN(read_errors);
    RUN(open_errors);
    RUN(write_errors);
    RUN(foreign_file);
    RUN(checksum_mismatch);
    RUN(crc32_known_value);
    RUN(slab_io);
    RUN(truncation_sweep);
    RUN(bitflip_sweep);
    RUN(atomic_h5);
    RUN(atomic_generic);
    RUN(commit_dir);
    tf_remove_tmpdir();
    if (use_mpi) MPI_Finalize();
    return test_summary();
}
