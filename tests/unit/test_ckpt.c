/* Checkpoints (src/io/ckpt.h) as a singleton MPI program: round trip, keep-last-K, LATEST,
 * damaged checkpoints and fall-back, stale leftovers, mismatches, re-saving a step, a failed save.
 * Multi-rank saves and re-cut loads are in tests/cli/ckpt_mpi.sh (test_ckpt_mpi). */
#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/rng.h"
#include "dist/mpi_env.h"
#include "io/atomic_file.h"
#include "io/ckpt.h"
#include "io/config.h"
#include "model/params.h"
#include "test_files.h"
#include "test_util.h"

/* ---- a model with two networks and some state ------------------------------------------------ */

typedef struct model {
    dd2_param_table gen, guid;
    float *g[4], *u[4];      /* params, adam_m, adam_v, ema (guid: no ema) */
    int64_t counters[3];     /* e.g. epoch, position, lr step */
    uint32_t rng[DD2_RNG_STATE_WORDS];
    dd2_ckpt_net nets[2];
    dd2_ckpt_state states[2];
    dd2_ckpt_spec spec;
} model;

static void add(dd2_param_table *t, const char *name, int ndim, int64_t a, int64_t b, int64_t c) {
    dd2_status st;
    int64_t shape[3] = {a, b, c};
    if (dd2_ptable_add(t, name, ndim, shape, DD2_INIT_ZEROS, 0, 0, &st) < 0) fprintf(stderr, "add: %s\n", st.msg);
}

/* Values depend on (seed, buffer, index); padding stays 0. seed 0 = all zeros. */
static void fill(float *x, const dd2_param_table *t, uint64_t seed, int which) {
    memset(x, 0, t->numel * sizeof *x);
    if (!seed) return;
    for (int i = 0; i < t->n; i++) {
        dd2_rng r;
        dd2_rng_init(&r, seed, DD2_RNG_TEST, (uint64_t)(100 * which + i), 0);
        dd2_rng_fill_normal(&r, x + t->t[i].offset, t->t[i].numel, 0.0f, 1.0f);
    }
}

/* guid_w_rows: the first dim of guid's "w" (6 normally; 3 makes a shape mismatch). */
static void model_init(model *m, uint64_t seed, int64_t guid_w_rows) {
    memset(m, 0, sizeof *m);
    dd2_ptable_init(&m->gen);
    dd2_ptable_init(&m->guid);
    add(&m->gen, "embed", 2, 7, 5, 0);
    add(&m->gen, "blocks.0.w", 3, 3, 4, 2);
    add(&m->gen, "norm", 1, 5, 0, 0);
    add(&m->guid, "w", 2, guid_w_rows, 18 / guid_w_rows, 0);
    add(&m->guid, "b", 1, 6, 0, 0);
    for (int b = 0; b < 4; b++) {
        m->g[b] = malloc(m->gen.numel * sizeof(float));
        fill(m->g[b], &m->gen, seed, b);
        if (b < 3) {
            m->u[b] = malloc(m->guid.numel * sizeof(float));
            fill(m->u[b], &m->guid, seed, 10 + b);
        }
    }
    m->counters[0] = (int64_t)seed;
    m->counters[1] = -(int64_t)seed * 1000003;
    m->counters[2] = (int64_t)1 << 40;
    dd2_rng r;
    dd2_rng_init(&r, seed, DD2_RNG_NOISE, 3, 4);
    for (int i = 0; i < 5; i++) dd2_rng_normal(&r); /* odd count: a cached normal in the state */
    dd2_rng_save(&r, m->rng);
    if (!seed) memset(m->rng, 0, sizeof m->rng), memset(m->counters, 0, sizeof m->counters);
    m->nets[0] = (dd2_ckpt_net){"gen", &m->gen, m->g[0], m->g[1], m->g[2], m->g[3]};
    m->nets[1] = (dd2_ckpt_net){"guid", &m->guid, m->u[0], m->u[1], m->u[2], NULL};
    m->states[0] = (dd2_ckpt_state){"data/counters", DD2_CKPT_I64, 3, m->counters, 0, 0};
    m->states[1] = (dd2_ckpt_state){"rng/noise", DD2_CKPT_U32, DD2_RNG_STATE_WORDS, m->rng, 0, 0};
    m->spec = (dd2_ckpt_spec){m->nets, 2, m->states, 2, "run:\n  name: test\n", "test-rev"};
}

static void model_free(model *m) {
    for (int b = 0; b < 4; b++) free(m->g[b]), free(m->u[b]);
    dd2_ptable_free(&m->gen);
    dd2_ptable_free(&m->guid);
}

/* Bitwise equal, every buffer and state. */
static int model_equal(const model *a, const model *b) {
    for (int k = 0; k < 4; k++) {
        if (memcmp(a->g[k], b->g[k], a->gen.numel * sizeof(float))) return 0;
        if (k < 3 && memcmp(a->u[k], b->u[k], a->guid.numel * sizeof(float))) return 0;
    }
    return memcmp(a->counters, b->counters, sizeof a->counters) == 0 && memcmp(a->rng, b->rng, sizeof a->rng) == 0;
}

static int save_step(const char *dir, int64_t step, int keep, dd2_status *st) {
    model m;
    model_init(&m, (uint64_t)step, 6);
    int rc = dd2_ckpt_save(MPI_COMM_WORLD, dir, step, keep, &m.spec, st);
    model_free(&m);
    return rc;
}

/* Load into a fresh model; *equal_to = the step whose data it matches bitwise (-1: none). */
static int load_check(const char *dir, dd2_ckpt_result *res, int64_t *equal_to, dd2_status *st) {
    model m;
    model_init(&m, 0, 6);
    int rc = dd2_ckpt_load(MPI_COMM_WORLD, dir, &m.spec, res, st);
    *equal_to = -1;
    if (rc == DD2_OK && res->found) {
        model want;
        model_init(&want, (uint64_t)res->step, 6);
        if (model_equal(&m, &want)) *equal_to = res->step;
        model_free(&want);
    }
    model_free(&m);
    return rc;
}

static int contains(const char *s, const char *what) { return s && strstr(s, what) != NULL; }

static char *read_text(const char *path) {
    size_t n;
    return (char *)tf_read_file(path, &n);
}

/* A fresh stage directory with checkpoints 1 and 2 (keep 5). */
static const char *fresh_two(const char *name, dd2_status *st) {
    const char *dir = tf_path(name);
    tf_remove_tree(dir);
    CHECK_OK(save_step(dir, 1, 5, st), st);
    CHECK_OK(save_step(dir, 2, 5, st), st);
    return dir;
}

static char *join(const char *a, const char *b) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", a, b);
    return buf[k];
}

#define SHARD0 "shard-00000-of-00001.h5"

/* ---- tests ------------------------------------------------------------------------------------ */

TEST(round_trip) {
    dd2_status st;
    const char *dir = tf_path("rt");
    model a, b;
    model_init(&a, 77, 6);
    CHECK_OK(dd2_ckpt_save(MPI_COMM_WORLD, dir, 77, 3, &a.spec, &st), &st);
    model_init(&b, 0, 6);
    CHECK(!model_equal(&a, &b));
    dd2_ckpt_result res;
    CHECK_OK(dd2_ckpt_load(MPI_COMM_WORLD, dir, &b.spec, &res, &st), &st);
    CHECK(res.found == 1 && res.step == 77 && res.saved_learners == 1 && res.n_skipped == 0);
    CHECK(model_equal(&a, &b));
    CHECK(b.states[0].present == 1 && b.states[1].present == 1);
    CHECK(b.rng[0] == DD2_RNG_STATE_TAG); /* a uint32 above 2^31 survives */
    dd2_rng r1, r2;
    CHECK_OK(dd2_rng_restore(&r1, b.rng, &st), &st);
    dd2_rng_init(&r2, 77, DD2_RNG_NOISE, 3, 4);
    for (int i = 0; i < 5; i++) dd2_rng_normal(&r2);
    CHECK(dd2_rng_normal(&r1) == dd2_rng_normal(&r2) && dd2_rng_u32(&r1) == dd2_rng_u32(&r2));
    CHECK_STREQ(res.config_text, "run:\n  name: test\n");
    CHECK_STREQ(res.build_info, "test-rev");
    CHECK(contains(res.dir, "step_00000077"));
    char *latest = read_text(join(dir, "LATEST"));
    CHECK_STREQ(latest, "step_00000077\n");
    free(latest);
    CHECK(tf_file_exists(join(dir, "step_00000077/meta.h5")) && tf_file_exists(join(dir, "step_00000077/" SHARD0)));
    CHECK(!tf_file_exists(join(dir, "step_00000077.tmp")) && !tf_file_exists(join(dir, "LATEST.tmp")));
    CHECK(!tf_file_exists(join(dir, "step_00000077/" SHARD0 ".tmp")));
    dd2_ckpt_result_free(&res);

    /* a partial load: only gen's params and ema, no states; the rest untouched */
    model c;
    model_init(&c, 0, 6);
    c.nets[0].adam_m = c.nets[0].adam_v = NULL;
    c.spec.n_nets = 1;
    c.spec.n_states = 0;
    CHECK_OK(dd2_ckpt_load(MPI_COMM_WORLD, dir, &c.spec, &res, &st), &st);
    CHECK(memcmp(c.g[0], a.g[0], a.gen.numel * 4) == 0 && memcmp(c.g[3], a.g[3], a.gen.numel * 4) == 0);
    CHECK(c.g[1][0] == 0.0f && c.u[0][0] == 0.0f && c.counters[0] == 0);
    dd2_ckpt_result_free(&res);
    model_free(&a);
    model_free(&b);
    model_free(&c);
}

TEST(no_checkpoint) {
    dd2_status st;
    dd2_ckpt_result res;
    model m;
    model_init(&m, 0, 6);
    CHECK_OK(dd2_ckpt_load(MPI_COMM_WORLD, tf_path("does/not/exist"), &m.spec, &res, &st), &st);
    CHECK(res.found == 0 && res.dir == NULL);
    dd2_ckpt_result_free(&res);
    /* a directory with only leftovers of a crashed save */
    const char *dir = tf_path("empty");
    CHECK(mkdir(dir, 0755) == 0 && mkdir(join(dir, "step_00000004.tmp"), 0755) == 0);
    CHECK_OK(dd2_ckpt_load(MPI_COMM_WORLD, dir, &m.spec, &res, &st), &st);
    CHECK(res.found == 0);
    dd2_ckpt_result_free(&res);
    /* resume: never reads nothing even when a checkpoint exists */
    CHECK_OK(save_step(dir, 5, 3, &st), &st);
    CHECK_OK(dd2_ckpt_resume(MPI_COMM_WORLD, dir, DD2_RESUME_NEVER, &m.spec, &res, &st), &st);
    CHECK(res.found == 0 && m.counters[0] == 0);
    CHECK(tf_file_exists(join(dir, "step_00000005/meta.h5")));
    CHECK_OK(dd2_ckpt_resume(MPI_COMM_WORLD, dir, DD2_RESUME_AUTO, &m.spec, &res, &st), &st);
    CHECK(res.found == 1 && res.step == 5 && m.counters[0] == 5);
    dd2_ckpt_result_free(&res);
    model_free(&m);
}

TEST(keep_last_k) {
    dd2_status st;
    const char *dir = tf_path("keep");
    for (int s = 1; s <= 6; s++) CHECK_OK(save_step(dir, s * 10, 3, &st), &st);
    int64_t *steps;
    int n;
    CHECK_OK(dd2_ckpt_list_steps(dir, &steps, &n, &st), &st);
    CHECK_MSG(n == 3 && steps[0] == 40 && steps[1] == 50 && steps[2] == 60, "n = %d", n);
    free(steps);
    char *latest = read_text(join(dir, "LATEST"));
    CHECK_STREQ(latest, "step_00000060\n");
    free(latest);
    /* a newer directory from an abandoned run is left alone, LATEST rules */
    CHECK_OK(save_step(dir, 1000, 3, &st), &st);
    CHECK(rename(join(dir, "step_00001000"), join(dir, "step_00000999")) == 0); /* not named by LATEST */
    CHECK(dd2_atomic_write_text(join(dir, "LATEST"), "step_00000060\n", &st) == DD2_OK);
    CHECK_OK(save_step(dir, 70, 2, &st), &st);
    CHECK_OK(dd2_ckpt_list_steps(dir, &steps, &n, &st), &st);
    CHECK_MSG(n == 3 && steps[0] == 60 && steps[1] == 70 && steps[2] == 999, "n = %d", n);
    free(steps);
    dd2_ckpt_result res;
    int64_t eq;
    CHECK_OK(load_check(dir, &res, &eq, &st), &st);
    CHECK(res.step == 70 && eq == 70);
    dd2_ckpt_result_free(&res);
    /* keep 0 keeps everything */
    CHECK_OK(save_step(dir, 80, 0, &st), &st);
    CHECK_OK(dd2_ckpt_list_steps(dir, &steps, &n, &st), &st);
    CHECK_MSG(n == 4, "n = %d", n);
    free(steps);
}

/* Damage step 2 with `damage`, load: expect step 1 bitwise, a skipped line naming `what1`/`what2`. */
static void expect_fallback(const char *name, void (*damage)(const char *step_dir), const char *what1,
                            const char *what2) {
    dd2_status st;
    const char *dir = fresh_two(name, &st);
    damage(join(dir, "step_00000002"));
    dd2_ckpt_result res;
    int64_t eq;
    int rc = load_check(dir, &res, &eq, &st);
    CHECK_MSG(rc == DD2_OK, "%s: %s", name, st.msg);
    CHECK_MSG(res.found && res.step == 1 && eq == 1, "%s: step %lld", name, (long long)res.step);
    CHECK_MSG(res.n_skipped == 1, "%s: n_skipped %d", name, res.n_skipped);
    CHECK_MSG(contains(res.skipped, what1) && contains(res.skipped, what2), "%s: skipped = %s", name,
              res.skipped ? res.skipped : "(null)");
    dd2_ckpt_result_free(&res);
}

static void truncate_shard(const char *d) {
    struct stat sb;
    stat(join(d, SHARD0), &sb);
    CHECK(truncate(join(d, SHARD0), sb.st_size / 2) == 0);
}

/* Flip one bit inside the raw data of dataset `ds` of file `f`. */
static void flip_in_dataset(const char *f, const char *ds) {
    hid_t file = H5Fopen(f, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(file, ds, H5P_DEFAULT);
    haddr_t off = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(file);
    CHECK(off != HADDR_UNDEF);
    FILE *fp = fopen(f, "r+b");
    CHECK(fp != NULL);
    if (!fp) return;
    fseek(fp, (long)off + 5, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, (long)off + 5, SEEK_SET);
    fputc(c ^ 0x10, fp);
    fclose(fp);
}

static void flip_shard(const char *d) { flip_in_dataset(join(d, SHARD0), "/gen/params/blocks.0.w"); }
static void flip_meta_state(const char *d) { flip_in_dataset(join(d, "meta.h5"), "/state/data/counters"); }
static void remove_shard(const char *d) { CHECK(unlink(join(d, SHARD0)) == 0); }
static void remove_meta(const char *d) { CHECK(unlink(join(d, "meta.h5")) == 0); }
static void remove_dir(const char *d) { tf_remove_tree(d); }

static void h5_edit(const char *f, const char *obj, const char *attr, int64_t value, int delete_it) {
    hid_t file = H5Fopen(f, H5F_ACC_RDWR, H5P_DEFAULT);
    CHECK(file >= 0);
    if (delete_it) {
        CHECK(H5Adelete_by_name(file, obj, attr, H5P_DEFAULT) >= 0);
    } else { /* delete + create: H5Awrite on an existing attribute fails in HDF5 1.10.8 here */
        CHECK(H5Adelete_by_name(file, obj, attr, H5P_DEFAULT) >= 0);
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate_by_name(file, obj, attr, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        CHECK(a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &value) >= 0);
        H5Aclose(a);
        H5Sclose(sp);
    }
    H5Fclose(file);
}

static void no_end_marker(const char *d) { h5_edit(join(d, SHARD0), "/", "complete", 0, 1); }
static void meta_no_end_marker(const char *d) { h5_edit(join(d, "meta.h5"), "/", "complete", 0, 1); }
static void bad_version(const char *d) { h5_edit(join(d, "meta.h5"), "/", "version", 99, 0); }
static void bad_slice(const char *d) { h5_edit(join(d, SHARD0), "/guid/adam_v/w", "offset", 3, 0); }
static void not_hdf5(const char *d) { CHECK(tf_write_file(join(d, SHARD0), "garbage", 7) == 0); }

TEST(damaged_falls_back) {
    expect_fallback("truncated", truncate_shard, "step_00000002/" SHARD0, "truncated");
    expect_fallback("bitflip", flip_shard, "step_00000002/" SHARD0, "dataset 'gen/params/blocks.0.w': checksum mismatch");
    expect_fallback("bitflip_meta", flip_meta_state, "step_00000002/meta.h5", "dataset 'state/data/counters': checksum");
    expect_fallback("missing_shard", remove_shard, "step_00000002/" SHARD0, "No such file");
    expect_fallback("no_end_marker", no_end_marker, "step_00000002/" SHARD0, "no end marker");
    expect_fallback("meta_no_end_marker", meta_no_end_marker, "step_00000002/meta.h5", "no end marker");
    expect_fallback("missing_meta", remove_meta, "step_00000002/meta.h5", "No such file");
    expect_fallback("bad_version", bad_version, "step_00000002/meta.h5", "format version 99");
    expect_fallback("bad_slice", bad_slice, "dataset 'guid/adam_v/w'", "slice attributes");
    expect_fallback("not_hdf5", not_hdf5, "step_00000002/" SHARD0, "not an HDF5 file");
    expect_fallback("dir_gone", remove_dir, "step_00000002", "missing (named by LATEST)");
}

TEST(all_damaged) {
    dd2_status st;
    const char *dir = fresh_two("alldamaged", &st);
    remove_shard(join(dir, "step_00000002"));
    flip_shard(join(dir, "step_00000001"));
    dd2_ckpt_result res;
    int64_t eq;
    int rc = load_check(dir, &res, &eq, &st);
    CHECK(rc == DD2_ERR_INPUT && res.found == 0);
    CHECK_MSG(contains(st.msg, "no valid checkpoint") && contains(st.msg, "(2 damaged)") &&
                  contains(st.msg, "step_00000002/" SHARD0) && contains(st.msg, "step_00000001/" SHARD0) &&
                  contains(st.msg, "checksum mismatch"),
              "%s", st.msg);
    dd2_ckpt_result_free(&res);
}

TEST(latest_pointer) {
    dd2_status st;
    dd2_ckpt_result res;
    int64_t eq;
    /* damaged LATEST: the newest directory, with a note */
    const char *dir = fresh_two("latest_bad", &st);
    CHECK(tf_write_file(join(dir, "LATEST"), "step_00000001xyz", 16) == 0);
    CHECK_OK(load_check(dir, &res, &eq, &st), &st);
    CHECK(res.step == 2 && eq == 2 && res.n_skipped == 0 && contains(res.skipped, "LATEST: damaged"));
    dd2_ckpt_result_free(&res);
    /* missing LATEST: the newest directory */
    CHECK(unlink(join(dir, "LATEST")) == 0);
    CHECK_OK(load_check(dir, &res, &eq, &st), &st);
    CHECK(res.step == 2 && eq == 2 && contains(res.skipped, "LATEST: missing"));
    dd2_ckpt_result_free(&res);
    /* LATEST names step 1: step 2 (not yet pointed to, e.g. a crash before LATEST) is ignored */
    CHECK(dd2_atomic_write_text(join(dir, "LATEST"), "step_00000001\n", &st) == DD2_OK);
    CHECK_OK(load_check(dir, &res, &eq, &st), &st);
    CHECK(res.step == 1 && eq == 1 && contains(res.skipped, "step_00000002: newer than LATEST (step_00000001), ignored"));
    dd2_ckpt_result_free(&res);
    /* ... and it is no fall-back either: LATEST's timeline goes back, never forward */
    flip_shard(join(dir, "step_00000001"));
    CHECK(load_check(dir, &res, &eq, &st) == DD2_ERR_INPUT && res.found == 0);
    CHECK_MSG(contains(st.msg, "(1 damaged)") && contains(st.msg, "newer than LATEST"), "%s", st.msg);
    dd2_ckpt_result_free(&res);
}

TEST(failed_save_leaves_previous) {
    dd2_status st;
    const char *dir = fresh_two("failsave", &st);
    setenv("DD2_CKPT_FAIL_RANK", "0", 1);
    int rc = save_step(dir, 3, 5, &st);
    unsetenv("DD2_CKPT_FAIL_RANK");
    CHECK(rc == DD2_ERR_RUNTIME && st.collective == 1);
    CHECK_MSG(contains(st.msg, "not saved") && contains(st.msg, "injected failure"), "%s", st.msg);
    CHECK(!tf_file_exists(join(dir, "step_00000003")) && !tf_file_exists(join(dir, "step_00000003.tmp")));
    char *latest = read_text(join(dir, "LATEST"));
    CHECK_STREQ(latest, "step_00000002\n");
    free(latest);
    dd2_ckpt_result res;
    int64_t eq;
    CHECK_OK(load_check(dir, &res, &eq, &st), &st);
    CHECK(res.step == 2 && eq == 2);
    dd2_ckpt_result_free(&res);
    /* misuse is an error too, before anything is written */
    model m;
    model_init(&m, 4, 6);
    m.nets[1].name = "gen";
    CHECK(dd2_ckpt_save(MPI_COMM_WORLD, dir, 4, 5, &m.spec, &st) == DD2_ERR_RUNTIME && contains(st.msg, "twice"));
    m.nets[1].name = "a/b";
    CHECK(dd2_ckpt_save(MPI_COMM_WORLD, dir, 4, 5, &m.spec, &st) == DD2_ERR_RUNTIME && contains(st.msg, "bad name"));
    m.nets[1].name = "guid";
    m.nets[1].params = NULL;
    CHECK(dd2_ckpt_save(MPI_COMM_WORLD, dir, 4, 5, &m.spec, &st) == DD2_ERR_RUNTIME && contains(st.msg, "params is NULL"));
    CHECK(!tf_file_exists(join(dir, "step_00000004.tmp")));
    model_free(&m);
}

TEST(stale_leftovers) {
    dd2_status st;
    const char *dir = fresh_two("stale", &st);
    /* a crashed save of step 9 (newer than LATEST) and of step 3, with junk inside */
    CHECK(mkdir(join(dir, "step_00000009.tmp"), 0755) == 0);
    CHECK(tf_write_file(join(dir, "step_00000009.tmp/meta.h5"), "junk", 4) == 0);
    CHECK(mkdir(join(dir, "step_00000003.tmp"), 0755) == 0);
    CHECK(mkdir(join(dir, "step_00000001.del"), 0755) == 0);
    dd2_ckpt_result res;
    int64_t eq;
    CHECK_OK(load_check(dir, &res, &eq, &st), &st);
    CHECK(res.step == 2 && eq == 2 && res.skipped == NULL);
    dd2_ckpt_result_free(&res);
    CHECK(tf_file_exists(join(dir, "step_00000009.tmp"))); /* load deletes nothing */
    CHECK_OK(save_step(dir, 3, 5, &st), &st);
    CHECK(!tf_file_exists(join(dir, "step_00000009.tmp")) && !tf_file_exists(join(dir, "step_00000003.tmp")) &&
          !tf_file_exists(join(dir, "step_00000001.del")));
    CHECK_OK(load_check(dir, &res, &eq, &st), &st);
    CHECK(res.step == 3 && eq == 3);
    dd2_ckpt_result_free(&res);
}

/* no_exchange: the rename-aside way instead of RENAME_EXCHANGE */
static void resave(const char *name, int no_exchange) {
    dd2_status st;
    const char *dir = fresh_two(name, &st);
    if (no_exchange) setenv("DD2_CKPT_NO_EXCHANGE", "1", 1);
    /* step 2 again with other data (e.g. resumed from 1 after step 2 was found damaged) */
    flip_shard(join(dir, "step_00000002"));
    model m;
    model_init(&m, 42, 6);
    CHECK_OK(dd2_ckpt_save(MPI_COMM_WORLD, dir, 2, 5, &m.spec, &st), &st);
    unsetenv("DD2_CKPT_NO_EXCHANGE");
    model b;
    model_init(&b, 0, 6);
    dd2_ckpt_result res;
    CHECK_OK(dd2_ckpt_load(MPI_COMM_WORLD, dir, &b.spec, &res, &st), &st);
    CHECK(res.step == 2 && res.n_skipped == 0 && model_equal(&m, &b));
    dd2_ckpt_result_free(&res);
    CHECK(!tf_file_exists(join(dir, "step_00000002.tmp")) && !tf_file_exists(join(dir, "step_00000002.old")));
    int64_t *steps;
    int n;
    CHECK_OK(dd2_ckpt_list_steps(dir, &steps, &n, &st), &st);
    CHECK(n == 2);
    free(steps);
    model_free(&m);
    model_free(&b);
}

TEST(resave_same_step) {
    resave("resave", 0);
    resave("resave_no_exchange", 1);
}

TEST(mismatch_is_an_error) {
    dd2_status st;
    const char *dir = fresh_two("mismatch", &st);
    dd2_ckpt_result res;
    /* guid.w is [3, 6] in this model, [6, 3] in the checkpoint: no fall-back, names the tensor */
    model m;
    model_init(&m, 0, 3);
    int rc = dd2_ckpt_load(MPI_COMM_WORLD, dir, &m.spec, &res, &st);
    CHECK(rc == DD2_ERR_INPUT && res.found == 0);
    CHECK_MSG(contains(st.msg, "network 'guid': tensor 'w': shape [6, 3] in the checkpoint, [3, 6] in the model") &&
                  contains(st.msg, "step_00000002"),
              "%s", st.msg);
    dd2_ckpt_result_free(&res);
    model_free(&m);
    /* a tensor missing on either side, a buffer that was not saved, a state of another size */
    model_init(&m, 0, 6);
    add(&m.gen, "extra", 1, 4, 0, 0);
    for (int b = 0; b < 4; b++) m.g[b] = realloc(m.g[b], m.gen.numel * sizeof(float));
    m.nets[0] = (dd2_ckpt_net){"gen", &m.gen, m.g[0], m.g[1], m.g[2], m.g[3]};
    m.nets[1].ema = m.u[0];
    m.states[0].count = 2;
    rc = dd2_ckpt_load(MPI_COMM_WORLD, dir, &m.spec, &res, &st);
    CHECK(rc == DD2_ERR_INPUT);
    CHECK_MSG(contains(st.msg, "tensor 'extra' [4] of the model is not in the checkpoint") &&
                  contains(st.msg, "network 'guid': the checkpoint holds no 'ema'") &&
                  contains(st.msg, "state 'data/counters': i64 [3] in the checkpoint, i64 [2] expected"),
              "%s", st.msg);
    dd2_ckpt_result_free(&res);
    model_free(&m);
    /* a checkpoint tensor the model lacks */
    model_init(&m, 0, 6);
    dd2_param_table small;
    dd2_ptable_init(&small);
    add(&small, "embed", 2, 7, 5, 0);
    add(&small, "blocks.0.w", 3, 3, 4, 2);
    m.nets[0].tab = &small; /* the buffers are big enough */
    rc = dd2_ckpt_load(MPI_COMM_WORLD, dir, &m.spec, &res, &st);
    CHECK_MSG(rc == DD2_ERR_INPUT && contains(st.msg, "network 'gen': tensor 'norm' [5] in the checkpoint is not in the model"),
              "%s", st.msg);
    dd2_ckpt_result_free(&res);
    dd2_ptable_free(&small);
    model_free(&m);
    /* an unknown network; a missing optional state is fine, a missing required one is not */
    model_init(&m, 0, 6);
    m.nets[1].name = "critic";
    rc = dd2_ckpt_load(MPI_COMM_WORLD, dir, &m.spec, &res, &st);
    CHECK_MSG(rc == DD2_ERR_INPUT && contains(st.msg, "network 'critic' is not in the checkpoint (it holds: gen,guid)"),
              "%s", st.msg);
    dd2_ckpt_result_free(&res);
    m.nets[1].name = "guid";
    int64_t extra = 5;
    dd2_ckpt_state states[3] = {m.states[0], m.states[1], {"sched/step", DD2_CKPT_I64, 1, &extra, 1, 0}};
    m.spec.states = states;
    m.spec.n_states = 3;
    CHECK_OK(dd2_ckpt_load(MPI_COMM_WORLD, dir, &m.spec, &res, &st), &st);
    CHECK(res.step == 2 && states[0].present == 1 && states[2].present == 0 && extra == 5);
    dd2_ckpt_result_free(&res);
    states[2].optional = 0;
    rc = dd2_ckpt_load(MPI_COMM_WORLD, dir, &m.spec, &res, &st);
    CHECK_MSG(rc == DD2_ERR_INPUT && contains(st.msg, "state 'sched/step' is not in the checkpoint"), "%s", st.msg);
    dd2_ckpt_result_free(&res);
    model_free(&m);
}

TEST(config_text_and_diff) {
    dd2_status st;
    dd2_config *cfg = malloc(sizeof *cfg), *cur = malloc(sizeof *cur);
    CHECK(dd2_config_defaults(cfg) == DD2_OK && dd2_config_defaults(cur) == DD2_OK);
    char *text = NULL;
    size_t len;
    CHECK_OK(dd2_config_to_yaml(cfg, &text, &len, &st), &st);
    const char *dir = tf_path("cfg");
    model m;
    model_init(&m, 3, 6);
    m.spec.config_text = text;
    CHECK_OK(dd2_ckpt_save(MPI_COMM_WORLD, dir, 3, 2, &m.spec, &st), &st);
    dd2_ckpt_result res;
    CHECK_OK(dd2_ckpt_load(MPI_COMM_WORLD, dir, &m.spec, &res, &st), &st);
    CHECK_STREQ(res.config_text, text);
    const char *diff = "x";
    CHECK_OK(dd2_ckpt_config_diff(res.config_text, cur, &diff, &st), &st);
    CHECK(diff == NULL);
    cur->checkpoint.keep = 7;
    CHECK_OK(dd2_ckpt_config_diff(res.config_text, cur, &diff, &st), &st);
    CHECK_STREQ(diff, "checkpoint.keep");
    CHECK(dd2_ckpt_config_diff("nope: 1\n", cur, &diff, &st) == DD2_ERR_INPUT);
    dd2_ckpt_result_free(&res);
    free(text);
    free(cfg);
    free(cur);
    model_free(&m);
}

/* --write-sample DIR: a small checkpoint for looking at with h5ls/h5dump (not a test). */
int main(int argc, char **argv) {
    test_init(argv[0]);
    dd2_mpi_env env;
    dd2_status st;
    if (dd2_mpi_start(&argc, &argv, &env, &st) != DD2_OK) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    dd2_log_init();
    dd2_log_set_level(DD2_LOG_QUIET);
    if (argc == 3 && strcmp(argv[1], "--write-sample") == 0) {
        model m;
        model_init(&m, 12, 6);
        int rc = dd2_ckpt_save(MPI_COMM_WORLD, argv[2], 12, 3, &m.spec, &st);
        if (rc) fprintf(stderr, "%s\n", st.msg);
        model_free(&m);
        dd2_mpi_stop(&env);
        return rc ? 1 : 0;
    }
    tf_make_tmpdir("ckpt");
    RUN(round_trip);
    RUN(no_checkpoint);
    RUN(keep_last_k);
    RUN(damaged_falls_back);
    RUN(all_damaged);
    RUN(latest_pointer);
    RUN(failed_save_leaves_previous);
    RUN(stale_leftovers);
    RUN(resave_same_step);
    RUN(mismatch_is_an_error);
    RUN(config_text_and_diff);
    tf_remove_tmpdir();
    int rc = test_summary();
    dd2_mpi_stop(&env);
    return rc;
}
