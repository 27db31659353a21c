/* The named-tensor table and deterministic initialisation. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "model/params.h"
#include "model/params_io.h"
#include "test_util.h"

static int add(dd2_param_table *t, const char *name, int64_t a, int64_t b, int init, float std, int decay,
               dd2_status *st) {
    int64_t shape[2] = {a, b};
    return dd2_ptable_add(t, name, b ? 2 : 1, shape, init, std, decay, st);
}

TEST(layout_and_lookup) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_param_table t;
    dd2_ptable_init(&t);
    CHECK(add(&t, "a.w", 3, 5, DD2_INIT_XAVIER_UNIFORM, 0, 1, &st) == 0);
    CHECK(add(&t, "a.b", 3, 0, DD2_INIT_ZEROS, 0, 0, &st) == 1);
    CHECK(add(&t, "norm", 7, 0, DD2_INIT_ONES, 0, 0, &st) == 2);
    CHECK(t.t[0].offset == 0 && t.t[0].numel == 15);
    CHECK(t.t[1].offset == 16 && t.t[1].numel == 3); /* 64-byte aligned */
    CHECK(t.t[2].offset == 32 && t.numel == 39);
    CHECK(dd2_ptable_find(&t, "norm") == 2);
    CHECK(dd2_ptable_find(&t, "nope") == -1);
    CHECK(add(&t, "a.w", 1, 0, DD2_INIT_ZEROS, 0, 0, &st) == -1);
    CHECK(strstr(st.msg, "registered twice") != NULL);
    CHECK(add(&t, "bad", 0, 0, DD2_INIT_ZEROS, 0, 0, &st) == -1);
    char buf[64];
    dd2_tensor_describe(&t.t[0], buf, sizeof buf);
    CHECK_STREQ(buf, "a.w [3,5]");
    uint8_t *mask = dd2_ptable_decay_mask(&t, &st);
    CHECK(mask && mask[0] == 1 && mask[14] == 1 && mask[15] == 0 && mask[16] == 0 && mask[32] == 0);
    free(mask);
    dd2_ptable_free(&t);
}

TEST(init_rules_and_determinism) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_param_table t1, t2;
    dd2_ptable_init(&t1);
    dd2_ptable_init(&t2);
    add(&t1, "w", 64, 32, DD2_INIT_XAVIER_UNIFORM, 0, 1, &st);
    add(&t1, "e", 1000, 0, DD2_INIT_NORMAL, 0.02f, 0, &st);
    add(&t1, "one", 4, 0, DD2_INIT_ONES, 0, 0, &st);
    /* same tensors registered in another order, with an extra one first */
    add(&t2, "extra", 5, 0, DD2_INIT_NORMAL, 1.0f, 0, &st);
    add(&t2, "e", 1000, 0, DD2_INIT_NORMAL, 0.02f, 0, &st);
    add(&t2, "w", 64, 32, DD2_INIT_XAVIER_UNIFORM, 0, 1, &st);
    float *p1 = calloc(t1.numel, sizeof(float)), *p2 = calloc(t2.numel, sizeof(float));
    CHECK_OK(dd2_ptable_init_params(&t1, p1, 42, &st), &st);
    CHECK_OK(dd2_ptable_init_params(&t2, p2, 42, &st), &st);
    const dd2_tensor_info *w1 = &t1.t[0], *w2 = &t2.t[dd2_ptable_find(&t2, "w")];
    CHECK(memcmp(p1 + w1->offset, p2 + w2->offset, w1->numel * sizeof(float)) == 0);
    const dd2_tensor_info *e1 = &t1.t[1], *e2 = &t2.t[1];
    CHECK(memcmp(p1 + e1->offset, p2 + e2->offset, e1->numel * sizeof(float)) == 0);
    /* xavier bound and spread; normal std */
    double a = sqrt(6.0 / (64 + 32)), maxabs = 0, ss = 0;
    for (size_t i = 0; i < w1->numel; i++) maxabs = fmax(maxabs, fabs(p1[w1->offset + i]));
    CHECK(maxabs <= a && maxabs > 0.9 * a);
    for (size_t i = 0; i < e1->numel; i++) ss += (double)p1[e1->offset + i] * p1[e1->offset + i];
    CHECK_NEAR(sqrt(ss / e1->numel), 0.02, 0.002);
    CHECK(p1[t1.t[2].offset] == 1.0f && p1[t1.t[2].offset + 3] == 1.0f);
    /* another seed gives other values */
    CHECK_OK(dd2_ptable_init_params(&t2, p2, 43, &st), &st);
    CHECK(memcmp(p1 + w1->offset, p2 + w2->offset, w1->numel * sizeof(float)) != 0);
    free(p1);
    free(p2);
    dd2_ptable_free(&t1);
    dd2_ptable_free(&t2);
}

/* params_io: a file whose group holds a tensor the model lacks (a larger network) is refused,
 * naming it, instead of loading as a truncated network; the exact table reads back. */
TEST(read_refuses_a_larger_file) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_param_table big, small;
    dd2_ptable_init(&big);
    dd2_ptable_init(&small);
    CHECK(add(&big, "blocks.0.w", 2, 3, DD2_INIT_ZEROS, 0, 1, &st) == 0);
    CHECK(add(&big, "blocks.1.w", 2, 3, DD2_INIT_ZEROS, 0, 1, &st) == 1);
    CHECK(add(&small, "blocks.0.w", 2, 3, DD2_INIT_ZEROS, 0, 1, &st) == 0);
    float data[32], back[32];
    for (int i = 0; i < 32; i++) data[i] = (float)i;
    char path[64];
    snprintf(path, sizeof path, "/tmp/dd2-test-params-%d.h5", (int)getpid());
    dd2_h5 *h = NULL;
    CHECK_OK(dd2_h5_create(path, &h, &st), &st);
    CHECK_OK(dd2_params_write_h5(h, "params", &big, data, &st), &st);
    CHECK_OK(dd2_h5_close(h, &st), &st);
    CHECK_OK(dd2_h5_open_read(path, &h, &st), &st);
    CHECK_OK(dd2_params_read_h5(h, "params", &big, back, &st), &st);
    CHECK(memcmp(back + big.t[1].offset, data + big.t[1].offset, 6 * sizeof(float)) == 0);
    CHECK(dd2_params_read_h5(h, "params", &small, back, &st) == DD2_ERR_INPUT);
    CHECK_MSG(strstr(st.msg, "blocks.1.w") != NULL, "%s", st.msg);
    dd2_status st2;
    dd2_status_clear(&st2);
    dd2_h5_close(h, &st2);
    remove(path);
    dd2_ptable_free(&big);
    dd2_ptable_free(&small);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(layout_and_lookup);
    RUN(init_rules_and_determinism);
    RUN(read_refuses_a_larger_file);
    return test_summary();
}
