/* The named-tensor table and deterministic initialisation. */
#include <math.h>

#include "model/params.h"
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

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(layout_and_lookup);
    RUN(init_rules_and_determinism);
    return test_summary();
}
