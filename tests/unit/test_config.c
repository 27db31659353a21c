/* Tests of the YAML config loader (src/io/config.c): schema sanity, defaults, a good config,
 * print -> parse round trips, --set overrides, cross-key rules, and every malformed config in
 * tests/data/bad-config/ against its exact expected message. Run from the repository root. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/status.h"
#include "io/config.h"
#include "test_util.h"

#define GOOD_DIR "tests/data/good-config"
#define BAD_DIR "tests/data/bad-config"

/* Defaults, then the file at `path` parsed on top. Returns the status code. */
static int load_file(const char *path, dd2_config *cfg, dd2_status *st) {
    char *bytes = NULL;
    size_t len = 0;
    dd2_status_clear(st);
    int rc = dd2_config_defaults(cfg);
    if (rc == DD2_OK) rc = dd2_config_read_file(path, &bytes, &len, st);
    if (rc == DD2_OK) rc = dd2_config_parse(cfg, path, bytes, len, st);
    free(bytes);
    return rc;
}

/* Parse YAML text on top of defaults. */
static int load_text(const char *text, dd2_config *cfg, dd2_status *st) {
    dd2_status_clear(st);
    int rc = dd2_config_defaults(cfg);
    return rc == DD2_OK ? dd2_config_parse(cfg, "t.yaml", text, strlen(text), st) : rc;
}

/* Print cfg, parse the text on top of defaults, and check the result equals cfg. */
static void check_round_trip(const dd2_config *cfg, const char *what) {
    dd2_status st;
    dd2_status_clear(&st);
    char *text = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    CHECK_OK(dd2_config_to_yaml(cfg, &text, &len, &st), &st);
    if (!text) return;
    CHECK(strlen(text) == len);
    dd2_config back;
    int rc = load_text(text, &back, &st);
    CHECK_MSG(rc == DD2_OK, "%s: re-reading the printed config failed: %s\n%s", what, st.msg, text);
    const char *diff = dd2_config_diff(cfg, &back);
    CHECK_MSG(diff == NULL, "%s: %s differs after print -> parse", what, diff);
    CHECK_OK(dd2_config_to_yaml(&back, &again, &len2, &st), &st);
    if (again) CHECK_STREQ(again, text);
    free(text);
    free(again);
}

TEST(schema_is_consistent) {
    dd2_status st;
    dd2_status_clear(&st);
    CHECK_OK(dd2_config_schema_check(&st), &st);
    CHECK(dd2_cfg_schema_len >= 100);
    CHECK(dd2_config_find("teacher.lr") != NULL);
    CHECK(dd2_config_find("distill.csd.grad") != NULL);
    CHECK(dd2_config_find("teacher") == NULL);
}

TEST(defaults) {
    dd2_config c;
    dd2_status st;
    dd2_status_clear(&st);
    CHECK(dd2_config_defaults(&c) == DD2_OK);
    CHECK_STREQ(c.run.name, "fmnist");
    CHECK_STREQ(c.run.out_dir, "checkpoints");
    CHECK_STREQ(c.data.dir, "/usr/share/datasets/fashion-mnist");
    CHECK_STREQ(c.data.train_images, "train-images-idx3-ubyte.gz");
    CHECK(c.data.n_classes == 10 && c.data.image_size == 28 && c.data.channels == 1);
    CHECK(c.vq.codes == 512 && c.vq.patch == 4 && c.vq.init == DD2_VQ_INIT_KMEANSPP);
    CHECK_STREQ(c.vq.codebook, "");
    CHECK(c.model.d_model == 128 && c.model.n_layers == 4 && c.model.n_heads == 4);
    CHECK(c.model.input_map == DD2_INPUT_MAP_LINEAR);
    CHECK(c.head.width == 128 && c.head.depth == 3);
    CHECK(c.teacher.epochs == 3 && c.teacher.steps == 0);
    CHECK_NEAR(c.teacher.lr, 3e-4, 0);
    CHECK_NEAR(c.teacher.class_dropout, 0.1, 0);
    CHECK(c.teacher.betas.n == 2);
    CHECK_NEAR(c.teacher.betas.v[0], 0.9, 0);
    CHECK_NEAR(c.teacher.betas.v[1], 0.95, 0);
    CHECK(c.teacher.input == DD2_TEACHER_INPUT_CONTINUOUS);
    CHECK_NEAR(c.sample.cfg_scale, 2.0, 0);
    CHECK_NEAR(c.sample.temperature, 1.0, 0);
    CHECK(c.sample.top_k == 64 && c.sample.snap);
    CHECK_NEAR(c.sample.top_p, 1.0, 0);
    CHECK(c.ardiff.loss == DD2_ARDIFF_LOSS_GTS);
    CHECK_NEAR(c.ardiff.t_min, 0.02, 0);
    CHECK_NEAR(c.ardiff.t_max, 0.98, 0);
    CHECK(c.distill.init == DD2_DISTILL_INIT_ARDIFF && c.distill.csd.grad == DD2_CSD_GRAD_DMD);
    CHECK_NEAR(c.distill.csd.alpha, 1.0, 0);
    CHECK_NEAR(c.distill.gen_warmup_from, 1e-6, 0);
    CHECK_NEAR(c.distill.ema_decay, 0.9999, 0);
    CHECK_NEAR(c.distill.pos_weight.start, 1.0, 0);
    CHECK_NEAR(c.distill.pos_weight.end, 1.0, 0);
    CHECK(c.distill.betas.n == 2);
    CHECK(c.eval.steps.n == 4 && c.eval.steps.v[0] == 1 && c.eval.steps.v[3] == 4);
    CHECK(c.checkpoint.keep == 3 && c.checkpoint.resume == DD2_RESUME_AUTO);
    CHECK(c.log.level == DD2_LOG_INFO && c.log.metrics);
    CHECK_OK(dd2_config_check(&c, &st), &st);
}

TEST(good_config_values) {
    dd2_config c;
    dd2_status st;
    CHECK_OK(load_file(GOOD_DIR "/full.yaml", &c, &st), &st);
    CHECK_STREQ(c.run.name, "full test");
    CHECK_STREQ(c.run.out_dir, "/tmp/dd2-runs");
    CHECK(c.run.seed == 42);
    CHECK_STREQ(c.data.dir, "/data/fmnist");
    CHECK(c.data.train_limit == 1000 && c.data.test_limit == 0);
    CHECK(c.vq.codes == 256 && c.vq.patch == 7 && c.vq.init == DD2_VQ_INIT_RANDOM);
    CHECK(c.model.d_model == 96 && c.model.n_heads == 6 && c.model.input_map == DD2_INPUT_MAP_MLP);
    CHECK(c.model.mlp_hidden == 256);
    CHECK(c.head.width == 64 && c.head.depth == 2);
    CHECK(c.teacher.steps == 10000);
    CHECK_NEAR(c.teacher.lr, 5e-4, 0);
    CHECK(c.teacher.betas.n == 2);
    CHECK_NEAR(c.teacher.betas.v[0], 0.8, 0);
    CHECK_NEAR(c.teacher.betas.v[1], 0.99, 0);
    CHECK_NEAR(c.teacher.class_dropout, 0.0, 0);
    CHECK_NEAR(c.sample.cfg_scale, 3.0, 0);
    CHECK(c.sample.top_k == 0 && !c.sample.snap);
    CHECK_NEAR(c.ardiff.lr, 5e-4, 0); /* through the alias */
    CHECK_NEAR(c.ardiff.t_min, 0.05, 0);
    CHECK(c.distill.init == DD2_DISTILL_INIT_ODE_PAIRS && c.distill.csd.grad == DD2_CSD_GRAD_SID);
    CHECK_NEAR(c.distill.csd.alpha, 1.2, 0);
    CHECK_NEAR(c.distill.pos_weight.start, 3.0, 0);
    CHECK(c.distill.align.steps == 50 && c.distill.k == 5);
    CHECK(c.eval.steps.n == 2 && c.eval.steps.v[0] == 1 && c.eval.steps.v[1] == 3);
    CHECK(c.eval.features.net == DD2_FEATURE_NET_INCEPTION && c.eval.features.dim == 2048);
    CHECK(c.checkpoint.keep == 5);
    CHECK(c.log.level == DD2_LOG_DEBUG && !c.log.metrics);
    /* keys the file does not name keep their defaults */
    CHECK(c.teacher.batch == 128 && c.distill.m == 2);
    CHECK_OK(dd2_config_check(&c, &st), &st);
}

TEST(empty_documents_are_defaults) {
    static const char *const texts[] = {"", "# only a comment\n", "~\n", "---\n", "---\n...\n", "\n\n"};
    dd2_config def, c;
    dd2_status st;
    CHECK(dd2_config_defaults(&def) == DD2_OK);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        CHECK_OK(load_text(texts[i], &c, &st), &st);
        CHECK_MSG(dd2_config_diff(&def, &c) == NULL, "text %zu", i);
    }
    CHECK_OK(load_file(GOOD_DIR "/empty.yaml", &c, &st), &st);
    CHECK(dd2_config_diff(&def, &c) == NULL);
    /* an empty section is allowed too */
    CHECK_OK(load_text("teacher:\nsample: ~\n", &c, &st), &st);
    CHECK(dd2_config_diff(&def, &c) == NULL);
}

TEST(round_trip) {
    dd2_config c;
    dd2_status st;
    CHECK(dd2_config_defaults(&c) == DD2_OK);
    check_round_trip(&c, "defaults");
    /* awkward values: quotes, backslashes, control characters, UTF-8, YAML look-alikes,
     * floats that need 17 digits, tiny and huge numbers, full lists */
    snprintf(c.run.name, sizeof c.run.name, "a \"quoted\" \\ name: #1\twith\ttabs");
    snprintf(c.run.out_dir, sizeof c.run.out_dir, "true");
    snprintf(c.data.dir, sizeof c.data.dir, "/dätä/Ψ/%s", "[not a list]");
    snprintf(c.vq.codebook, sizeof c.vq.codebook, "- 12: {x}\nline\r\x01\x7f'end'");
    c.teacher.lr = 1.0 / 3.0;
    c.ardiff.lr = 1e-300;
    c.teacher.grad_clip = 1.2345678901234567e300;
    c.distill.csd.alpha = 0.1 + 0.2;
    c.distill.t_min = 0.1;
    c.sample.snap = false;
    c.log.level = DD2_LOG_QUIET;
    c.eval.steps.n = 8;
    for (int i = 0; i < 8; i++) c.eval.steps.v[i] = 1 + 3 * i;
    c.teacher.betas.v[1] = 0.999999999999;
    check_round_trip(&c, "modified");
    /* and every good config file */
    DIR *d = opendir(GOOD_DIR);
    CHECK_MSG(d != NULL, "cannot open %s (run from the repository root)", GOOD_DIR);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".yaml")) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", GOOD_DIR, e->d_name);
        CHECK_OK(load_file(path, &c, &st), &st);
        check_round_trip(&c, path);
    }
    if (d) closedir(d);
}

TEST(printed_layout) {
    dd2_config c;
    dd2_status st;
    char *text = NULL;
    size_t len;
    CHECK(dd2_config_defaults(&c) == DD2_OK);
    CHECK_OK(dd2_config_to_yaml(&c, &text, &len, &st), &st);
    if (!text) return;
    CHECK(strncmp(text, "run:\n  name: \"fmnist\"\n", 22) == 0);
    CHECK(strstr(text, "\ndistill:\n  init: ardiff\n") != NULL);
    CHECK(strstr(text, "\n  csd:\n    grad: dmd\n    alpha: 1\n    omega: sequence\n  k: 2\n") != NULL);
    CHECK(strstr(text, "\n  betas: [0.9, 0.95]\n") != NULL);
    CHECK(strstr(text, "\n  ema_decay: 0.9999\n") != NULL);
    CHECK(strstr(text, "\n  gen_warmup_from: 1e-06\n") != NULL);
    free(text);
}

TEST(schema_listing) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    if (!f) return;
    dd2_config_print_schema(f);
    fclose(f);
    for (size_t i = 0; i < dd2_cfg_schema_len; i++) {
        char line[256];
        snprintf(line, sizeof line, "\n%s: ", dd2_cfg_schema[i].path);
        CHECK_MSG(strstr(text, line) != NULL, "%s missing from the schema listing", dd2_cfg_schema[i].path);
    }
    CHECK(strstr(text, "\nteacher.lr: a number in (0, 1]; default 3e-4\n") != NULL);
    CHECK(strstr(text, "\ndistill.csd.grad: one of: sid, dmd; default dmd\n") != NULL);
    CHECK(strstr(text, "\ndistill.betas: a list of 2 numbers in [0, 1); default [0.9, 0.95]\n") != NULL);
    free(text);
}

TEST(set_overrides) {
    dd2_config c;
    dd2_status st;
    dd2_status_clear(&st);
    CHECK(dd2_config_defaults(&c) == DD2_OK);
    CHECK_OK(dd2_config_set(&c, "teacher.lr=1e-3", &st), &st);
    CHECK_NEAR(c.teacher.lr, 1e-3, 0);
    CHECK_OK(dd2_config_set(&c, "distill.csd.grad=sid", &st), &st);
    CHECK(c.distill.csd.grad == DD2_CSD_GRAD_SID);
    CHECK_OK(dd2_config_set(&c, "distill.betas=[0.5, 0.6]", &st), &st);
    CHECK(c.distill.betas.n == 2);
    CHECK_NEAR(c.distill.betas.v[1], 0.6, 0);
    CHECK_OK(dd2_config_set(&c, "run.name=hello world=2", &st), &st);
    CHECK_STREQ(c.run.name, "hello world=2");
    CHECK_OK(dd2_config_set(&c, "vq.codebook=/x/cb.h5", &st), &st);
    CHECK_OK(dd2_config_set(&c, "vq.codebook=\"\"", &st), &st); /* an empty string must be quoted */
    CHECK_STREQ(c.vq.codebook, "");
    CHECK_OK(dd2_config_set(&c, "sample.snap=false", &st), &st);
    CHECK(!c.sample.snap);
    CHECK_OK(dd2_config_set(&c, "teacher={batch: 7, warmup: 0}", &st), &st);
    CHECK(c.teacher.batch == 7 && c.teacher.warmup == 0);
    CHECK_NEAR(c.teacher.lr, 1e-3, 0); /* a section override changes only the keys it names */
    CHECK_OK(dd2_config_set(&c, "teacher.lr=2e-3", &st), &st); /* setting twice is fine */
    CHECK_NEAR(c.teacher.lr, 2e-3, 0);
    CHECK_OK(dd2_config_set(&c, "eval.features.dim=64", &st), &st);
    CHECK(c.eval.features.dim == 64);
    /* the order of --set does not matter: rules are checked afterwards */
    CHECK_OK(dd2_config_set(&c, "model.n_heads=6", &st), &st);
    CHECK(dd2_config_check(&c, &st) == DD2_ERR_INPUT);
    CHECK_STREQ(st.msg, "config: model.d_model = 128 and model.n_heads = 6 conflict (expected model.d_model to be "
                        "a multiple of model.n_heads)");
    CHECK_OK(dd2_config_set(&c, "model.d_model=96", &st), &st);
    CHECK_OK(dd2_config_check(&c, &st), &st);
}

TEST(set_errors) {
    static const char *const cases[][2] = {
        {"teacher.lr=abc", "--set teacher.lr=abc: teacher.lr: 'abc' is not a number (expected a number in (0, 1])"},
        {"teacher.lr=", "--set teacher.lr=: teacher.lr: missing value (expected a number in (0, 1])"},
        {"teacher.lr", "--set teacher.lr: expected KEY=VALUE (e.g. --set teacher.lr=1e-4)"},
        {"=5", "--set =5: expected KEY=VALUE (e.g. --set teacher.lr=1e-4)"},
        {"teacher.lrr=1", "--set teacher.lrr=1: teacher.lrr: unknown key (did you mean 'teacher.lr'?)"},
        {"teacher.LR=1", "--set teacher.LR=1: teacher.LR: unknown key (did you mean 'teacher.lr'?)"},
        {"distil.csd.grad=sid", "--set distil.csd.grad=sid: distil.csd.grad: unknown key (did you mean "
                                "'distill.csd.grad'?)"},
        {"nosuch=1", "--set nosuch=1: nosuch: unknown section (expected one of the sections: run, data, vq, model, "
                     "head, teacher, sample, teacher_sample, ardiff, distill, eval, checkpoint, dist, log)"},
        {"teacher.batch=1.5", "--set teacher.batch=1.5: teacher.batch: 1.5 is not an integer (expected an integer in "
                              "[1, 1048576])"},
        {"run.seed=abc", "--set run.seed=abc: run.seed: 'abc' is not an integer (expected an integer in [0, "
                         "2147483647])"},
        {"distill.betas=[1,", "--set distill.betas=[1,: syntax error: did not find expected node content (while "
                              "parsing a flow node)"},
        {"distill.betas=[0.9]", "--set distill.betas=[0.9]: distill.betas: list has 1 element (expected a list of 2 "
                                "numbers in [0, 1))"},
        {"distill.csd.grad=both", "--set distill.csd.grad=both: distill.csd.grad: 'both' is not a valid choice "
                                  "(expected one of: sid, dmd)"},
        {"teacher=5", "--set teacher=5: teacher: got a scalar where a section belongs (expected a mapping with keys: "
                      "epochs, steps, batch, lr, warmup, schedule, weight_decay, grad_clip, class_dropout, betas, "
                      "input, weights)"},
        {"teacher={lr: 1, lr: 2}", "--set teacher={lr: 1, lr: 2}: teacher.lr: duplicate key (first defined at line 1, "
                                   "column 2)"},
        {"sample.snap=yes", "--set sample.snap=yes: sample.snap: 'yes' is not a boolean (expected true or false)"},
    };
    dd2_config c, before;
    dd2_status st;
    CHECK(dd2_config_defaults(&c) == DD2_OK);
    before = c;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dd2_status_clear(&st);
        int rc = dd2_config_set(&c, cases[i][0], &st);
        CHECK_MSG(rc == DD2_ERR_INPUT, "%s: rc %d", cases[i][0], rc);
        CHECK_STREQ(st.msg, cases[i][1]);
        CHECK_MSG(dd2_config_diff(&before, &c) == NULL, "--set %s changed the config", cases[i][0]);
    }
}

TEST(failed_parse_leaves_config_untouched) {
    /* valid keys before the error (events before a libyaml error are still delivered) */
    static const char *const texts[] = {
        "run:\n  name: changed\nteacher:\n  lr: 0.5\n  batch: [1\n",
        "run:\n  name: changed\nteacher:\n  lr: 0.5\n  batch: x\n",
        "run:\n  name: changed\n---\nrun:\n  name: other\n",
        "model:\n  d_model: 100\n  n_heads: 3\n",
    };
    dd2_config c, before;
    dd2_status st;
    CHECK(dd2_config_defaults(&c) == DD2_OK);
    c.run.seed = 77;
    before = c;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        dd2_status_clear(&st);
        CHECK(dd2_config_parse(&c, "t.yaml", texts[i], strlen(texts[i]), &st) == DD2_ERR_INPUT);
        CHECK_MSG(dd2_config_diff(&before, &c) == NULL, "text %zu changed the config", i);
    }
    /* a successful parse keeps values the document does not name */
    CHECK_OK(dd2_config_parse(&c, "t.yaml", "run: {name: x}\n", 15, &st), &st);
    CHECK(c.run.seed == 77);
}

TEST(read_file_errors) {
    char *bytes = (char *)1;
    size_t len = 5;
    dd2_status st;
    dd2_status_clear(&st);
    CHECK(dd2_config_read_file("/nonexistent/dir/run.yaml", &bytes, &len, &st) == DD2_ERR_INPUT);
    CHECK(bytes == NULL && len == 0);
    CHECK_STREQ(st.msg, "/nonexistent/dir/run.yaml: cannot open config file: No such file or directory");
    dd2_status_clear(&st);
    CHECK(dd2_config_read_file(GOOD_DIR, &bytes, &len, &st) == DD2_ERR_INPUT);
    CHECK(strstr(st.msg, GOOD_DIR) != NULL);
    CHECK_OK(dd2_config_read_file(GOOD_DIR "/minimal.yaml", &bytes, &len, &st), &st);
    CHECK(bytes && len > 0 && bytes[len] == 0 && strlen(bytes) == len);
    free(bytes);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Each BAD_DIR/NAME.yaml fails with exactly the one line in NAME.expected, and leaves the
 * config untouched. */
TEST(bad_configs) {
    char *names[256];
    int n = 0;
    DIR *d = opendir(BAD_DIR);
    CHECK_MSG(d != NULL, "cannot open %s (run from the repository root)", BAD_DIR);
    for (struct dirent *e; d && (e = readdir(d)) && n < 256;) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".yaml")) names[n++] = strdup(e->d_name);
    }
    if (d) closedir(d);
    qsort(names, (size_t)n, sizeof names[0], by_name);
    CHECK_MSG(n >= 20, "only %d bad configs", n);
    dd2_config def;
    CHECK(dd2_config_defaults(&def) == DD2_OK);
    for (int i = 0; i < n; i++) {
        char path[512], expected_path[512], *expected = NULL;
        size_t elen = 0;
        dd2_status st;
        snprintf(path, sizeof path, "%s/%s", BAD_DIR, names[i]);
        snprintf(expected_path, sizeof expected_path, "%.*s.expected", (int)strlen(path) - 5, path);
        CHECK_OK(dd2_config_read_file(expected_path, &expected, &elen, &st), &st);
        while (expected && elen > 0 && expected[elen - 1] == '\n') expected[--elen] = 0;
        CHECK_MSG(!expected || !strchr(expected, '\n'), "%s: more than one line", expected_path);
        char *bytes = NULL;
        size_t len = 0;
        dd2_config c = def;
        dd2_status_clear(&st);
        CHECK_OK(dd2_config_read_file(path, &bytes, &len, &st), &st);
        int rc = dd2_config_parse(&c, path, bytes, len, &st);
        CHECK_MSG(rc == DD2_ERR_INPUT, "%s: rc %d", path, rc);
        if (expected) CHECK_STREQ(st.msg, expected);
        CHECK_MSG(dd2_config_diff(&def, &c) == NULL, "%s changed the config", path);
        free(bytes);
        free(expected);
        free(names[i]);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(schema_is_consistent);
    RUN(defaults);
    RUN(good_config_values);
    RUN(empty_documents_are_defaults);
    RUN(round_trip);
    RUN(printed_layout);
    RUN(schema_listing);
    RUN(set_overrides);
    RUN(set_errors);
    RUN(failed_parse_leaves_config_untouched);
    RUN(read_file_errors);
    RUN(bad_configs);
    return test_summary();
}
