/* Checkpoints under MPI: save with N learners, load with M (re-cut), bitwise.
 *
 * Usage (tests/cli/ckpt_mpi.sh runs these under mpirun):
 *   test_ckpt_mpi                       singleton self-test (the runner runs it without mpirun)
 *   test_ckpt_mpi save DIR STEP         save deterministic data for STEP into DIR (keep 3)
 *   test_ckpt_mpi load DIR STEP         load DIR; check it is STEP and bitwise equal on every rank
 * save/load print one line on rank 0 and exit 0 when it worked, 1 otherwise (with the message).
 * DD2_CKPT_FAIL_RANK=r makes rank r's shard write fail (the library's test hook).
 *
 * The model has tensors whose sizes do not divide by 2 or 3, a one-element tensor, and a network
 * ("tiny", 2 floats) smaller than the number of learners, so shards cut tensors in the middle and
 * some shards hold nothing of a network. */
#include <mpi.h>
#include <stdint.h>

#include "core/log.h"
#include "core/rng.h"
#include "dist/mpi_env.h"
#include "io/ckpt.h"
#include "model/params.h"
#include "test_files.h"
#include "test_util.h"

typedef struct model {
    dd2_param_table tab[3];
    float *buf[3][4];
    int64_t pos[2];
    uint32_t rng[DD2_RNG_STATE_WORDS];
    dd2_ckpt_net nets[3];
    dd2_ckpt_state states[2];
    dd2_ckpt_spec spec;
} model;

static void add(dd2_param_table *t, const char *name, int64_t a, int64_t b) {
    dd2_status st;
    int64_t shape[2] = {a, b};
    if (dd2_ptable_add(t, name, b ? 2 : 1, shape, DD2_INIT_ZEROS, 0, 0, &st) < 0) fprintf(stderr, "%s\n", st.msg);
}

/* seed 0: zeros (a model to load into). */
static void model_init(model *m, uint64_t seed) {
    memset(m, 0, sizeof *m);
    static const char *names[3] = {"gen", "guid", "tiny"};
    for (int k = 0; k < 3; k++) dd2_ptable_init(&m->tab[k]);
    add(&m->tab[0], "wte", 37, 11);
    add(&m->tab[0], "blocks.0.attn.wqkv", 13, 7);
    add(&m->tab[0], "scale", 1, 0);
    add(&m->tab[0], "blocks.0.norm", 29, 0);
    add(&m->tab[1], "w", 17, 5);
    add(&m->tab[1], "b", 3, 0);
    add(&m->tab[2], "t", 2, 0);
    for (int k = 0; k < 3; k++) {
        for (int b = 0; b < 4; b++) {
            if (k == 2 && b > 0) continue; /* tiny: params only */
            m->buf[k][b] = calloc(m->tab[k].numel, sizeof(float));
            if (!seed) continue;
            dd2_rng r;
            dd2_rng_init(&r, seed, DD2_RNG_TEST, (uint64_t)(10 * k + b), 0);
            for (int t = 0; t < m->tab[k].n; t++)
                dd2_rng_fill_normal(&r, m->buf[k][b] + m->tab[k].t[t].offset, m->tab[k].t[t].numel, 0, 1);
        }
        m->nets[k] = (dd2_ckpt_net){names[k], &m->tab[k], m->buf[k][0], m->buf[k][1], m->buf[k][2], m->buf[k][3]};
    }
    if (seed) {
        m->pos[0] = (int64_t)seed;
        m->pos[1] = (int64_t)seed * 7919 + 1;
        dd2_rng r;
        dd2_rng_init(&r, seed, DD2_RNG_DATA_ORDER, 1, 2);
        dd2_rng_normal(&r);
        dd2_rng_save(&r, m->rng);
    }
    m->states[0] = (dd2_ckpt_state){"data/position", DD2_CKPT_I64, 2, m->pos, 0, 0};
    m->states[1] = (dd2_ckpt_state){"rng/data", DD2_CKPT_U32, DD2_RNG_STATE_WORDS, m->rng, 0, 0};
    m->spec = (dd2_ckpt_spec){m->nets, 3, m->states, 2, "run:\n  name: mpi-test\n", "test"};
}

static void model_free(model *m) {
    for (int k = 0; k < 3; k++) {
        for (int b = 0; b < 4; b++) free(m->buf[k][b]);
        dd2_ptable_free(&m->tab[k]);
    }
}

static int model_equal(const model *a, const model *b) {
    for (int k = 0; k < 3; k++)
        for (int q = 0; q < 4; q++)
            if (a->buf[k][q] && memcmp(a->buf[k][q], b->buf[k][q], a->tab[k].numel * sizeof(float))) return 0;
    return !memcmp(a->pos, b->pos, sizeof a->pos) && !memcmp(a->rng, b->rng, sizeof a->rng);
}

static int do_save(const char *dir, int64_t step, dd2_status *st) {
    model m;
    model_init(&m, (uint64_t)step);
    int rc = dd2_ckpt_save(MPI_COMM_WORLD, dir, step, 3, &m.spec, st);
    model_free(&m);
    return rc;
}

/* Load; *ok = 1 when every rank got `step` bitwise. */
static int do_load(const char *dir, int64_t step, int *ok, dd2_ckpt_result *res, dd2_status *st) {
    model m, want;
    model_init(&m, 0);
    model_init(&want, (uint64_t)step);
    int rc = dd2_ckpt_load(MPI_COMM_WORLD, dir, &m.spec, res, st);
    int mine = rc == DD2_OK && res->found && res->step == step && model_equal(&m, &want);
    MPI_Allreduce(&mine, ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    model_free(&m);
    model_free(&want);
    return rc;
}

TEST(singleton_round_trip) {
    dd2_status st;
    const char *dir = tf_path("stage");
    CHECK_OK(do_save(dir, 5, &st), &st);
    CHECK_OK(do_save(dir, 6, &st), &st);
    dd2_ckpt_result res;
    int ok = 0;
    CHECK_OK(do_load(dir, 6, &ok, &res, &st), &st);
    CHECK(ok && res.saved_learners == 1);
    dd2_ckpt_result_free(&res);
}

int main(int argc, char **argv) {
    test_init(argv[0]);
    dd2_mpi_env env;
    dd2_status st;
    dd2_status_clear(&st);
    if (dd2_mpi_start(&argc, &argv, &env, &st) != DD2_OK) {
        fprintf(stderr, "%s\n", st.msg);
        return 1;
    }
    dd2_log_init();
    dd2_log_set_level(DD2_LOG_QUIET);
    int rc = 0;
    if (argc == 1) {
        tf_make_tmpdir("ckpt-mpi");
        RUN(singleton_round_trip);
        tf_remove_tmpdir();
        rc = test_summary();
    } else if (argc == 4 && (!strcmp(argv[1], "save") || !strcmp(argv[1], "load"))) {
        int64_t step = strtoll(argv[3], NULL, 10);
        if (!strcmp(argv[1], "save")) {
            rc = do_save(argv[2], step, &st) != DD2_OK;
            if (env.rank == 0) {
                if (rc) printf("save failed: %s\n", st.msg);
                else printf("saved step %lld with %d learners\n", (long long)step, env.size);
            }
        } else {
            dd2_ckpt_result res;
            int ok = 0;
            int lrc = do_load(argv[2], step, &ok, &res, &st);
            rc = !ok;
            if (env.rank == 0) {
                if (lrc) printf("load failed: %s\n", st.msg);
                else printf("loaded step %lld (saved by %d learners) with %d learners: %s\n", (long long)res.step,
                            res.saved_learners, env.size, ok ? "bitwise equal on every rank" : "DIFFERENT");
            }
            dd2_ckpt_result_free(&res);
        }
        fflush(stdout);
    } else {
        fprintf(stderr, "usage: %s [save|load DIR STEP]\n", argv[0]);
        rc = 2;
    }
    dd2_mpi_stop(&env);
    return rc;
}
