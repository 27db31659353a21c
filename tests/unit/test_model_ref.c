/* The float networks against the PyTorch reference tests/data/ref_model.h5 (docs/reference.md):
 * for each case (/teacher, /backbone_mlp, /diffhead) build the network from the group's config
 * attributes, copy the stored parameters into the flat buffer by name, run the forward and
 * backward passes in float, and compare every output, every parameter gradient and every input
 * gradient with err = max|a − b| / max|b| ≤ 1e-4 (one line per tensor). The debug tensors (the
 * residual stream after the embedding and after each block, the RoPE tables, the head's
 * condition) are compared too, to locate a mismatch. Run from the repository root. */
#include <stdint.h>

#include "core/status.h"
#include "io/h5io.h"
#include "model/backbone.h"
#include "model/logits_head.h"
#include "model/mlp_head.h"
#include "model/ops.h"
#include "model/params.h"
#include "test_util.h"

#define REF_FILE "tests/data/ref_model.h5"
#define TOL 1e-4

typedef struct {
    const char *group;
    double worst;
    char worst_name[160];
    int ntensors;
} cmp_state;

/* err = max|a − b| / max|b|; prints one line and checks the bound. */
static double cmp(cmp_state *cs, const char *name, const float *a, const float *b, size_t n) {
    double e = 0, mb = 0;
    for (size_t i = 0; i < n; i++) {
        double dd = fabs((double)a[i] - (double)b[i]);
        if (dd > e || dd != dd) e = dd;
        if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
    }
    double err = e / (mb > 0 ? mb : 1e-30);
    printf("  %-14s %-34s err %.2e  (max|ref| %.3g)\n", cs->group, name, err, mb);
    CHECK_MSG(err <= TOL, "%s %s: err %.3g > %.0e", cs->group, name, err, TOL);
    CHECK_MSG(mb > 0, "%s %s: reference is all zero", cs->group, name);
    if (!(err <= cs->worst)) {
        cs->worst = err;
        snprintf(cs->worst_name, sizeof cs->worst_name, "%s", name);
    }
    cs->ntensors++;
    return err;
}

static int64_t attr_i64(dd2_h5 *h, const char *group, const char *name, dd2_status *st) {
    int64_t v = -1;
    CHECK_OK(dd2_h5_attr_get_i64(h, group, name, &v, st), st);
    return v;
}

/* Read group/<sub>/<name> [count floats] with the given shape into buf. */
static int read_f32(dd2_h5 *h, const char *group, const char *sub, const char *name, int rank,
                    const int64_t *dims, float *buf, dd2_status *st) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s/%s", group, sub, name);
    int rc = dd2_h5_read_f32(h, path, rank, dims, buf, st);
    CHECK_MSG(rc == 0, "%s: %s", path, st->msg);
    return rc;
}

/* Count the datasets under a group (to check that the table and the file list the same names). */
static int count_cb(const char *name, void *ctx, dd2_status *st) {
    (void)name, (void)st;
    (*(int *)ctx)++;
    return 0;
}

/* Copy every table tensor from group/params/<name>; the file must hold exactly these names. */
static void load_params(dd2_h5 *h, const char *group, const dd2_param_table *tab, float *params,
                        dd2_status *st) {
    for (int i = 0; i < tab->n; i++)
        read_f32(h, group, "params", tab->t[i].name, tab->t[i].ndim, tab->t[i].shape,
                 params + tab->t[i].offset, st);
    char g[128];
    snprintf(g, sizeof g, "%s/params", group);
    int count = 0;
    CHECK_OK(dd2_h5_list_datasets(h, g, count_cb, &count, st), st);
    CHECK_MSG(count == tab->n, "%s: %d stored parameters, the C network has %d", group, count,
              tab->n);
}

/* Compare every parameter gradient with group/grads/<name>. */
static void cmp_param_grads(cmp_state *cs, dd2_h5 *h, const dd2_param_table *tab,
                            const float *grads, dd2_status *st) {
    for (int i = 0; i < tab->n; i++) {
        const dd2_tensor_info *t = &tab->t[i];
        float *ref = malloc(t->numel * sizeof(float));
        char nm[160];
        snprintf(nm, sizeof nm, "grads/%s", t->name);
        if (read_f32(h, cs->group, "grads", t->name, t->ndim, t->shape, ref, st) == 0)
            cmp(cs, nm, grads + t->offset, ref, t->numel);
        free(ref);
    }
}

/* Compare a computed tensor with group/<sub>/<name> of the given shape. */
static void cmp_stored(cmp_state *cs, dd2_h5 *h, const char *sub, const char *name, int rank,
                       const int64_t *dims, const float *a, dd2_status *st) {
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    float *ref = malloc(n * sizeof(float));
    char nm[160];
    snprintf(nm, sizeof nm, "%s/%s", sub, name);
    if (read_f32(h, cs->group, sub, name, rank, dims, ref, st) == 0) cmp(cs, nm, a, ref, n);
    free(ref);
}

static void report(const cmp_state *cs) {
    printf("  %-14s %d tensors, max err %.2e (%s)\n", cs->group, cs->ntensors, cs->worst,
           cs->worst_name);
}

/* /teacher (linear input map + logits head + mean CE) and /backbone_mlp (mlp input map,
 * loss = sum(f ⊙ g)). */
static void backbone_case(const char *group, int with_head) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_h5 *h = NULL;
    CHECK_OK(dd2_h5_open_read(REF_FILE, &h, &st), &st);
    if (!h) return;
    dd2_backbone_dims m = {0};
    m.C = (int)attr_i64(h, group, "C", &st);
    m.d = (int)attr_i64(h, group, "d", &st);
    m.H = (int)attr_i64(h, group, "H", &st);
    m.L = (int)attr_i64(h, group, "L", &st);
    m.F = (int)attr_i64(h, group, "F", &st);
    m.K = (int)attr_i64(h, group, "K", &st);
    m.n = (int)attr_i64(h, group, "n", &st);
    m.gh = (int)attr_i64(h, group, "gh", &st);
    m.gw = (int)attr_i64(h, group, "gw", &st);
    int B = (int)attr_i64(h, group, "B", &st);
    char *imap = NULL;
    CHECK_OK(dd2_h5_attr_get_str(h, group, "input_map", &imap, &st), &st);
    m.input_map = imap && strcmp(imap, "mlp") == 0 ? DD2_INPUT_MLP : DD2_INPUT_LINEAR;
    CHECK(imap && (strcmp(imap, "mlp") == 0 || strcmp(imap, "linear") == 0));
    CHECK(m.input_map == (with_head ? DD2_INPUT_LINEAR : DD2_INPUT_MLP));
    free(imap);
    m.rope = DD2_ROPE_2D;
    int V = with_head ? (int)attr_i64(h, group, "V", &st) : 0;
    const int n = m.n, d = m.d, C = m.C;
    const size_t N = (size_t)B * n;

    dd2_param_table tab;
    dd2_ptable_init(&tab);
    dd2_backbone bb;
    dd2_logits_head lh;
    CHECK_OK(dd2_backbone_register(&bb, &m, NULL, &tab, &st), &st);
    if (with_head) CHECK_OK(dd2_logits_head_register(&lh, V, d, NULL, &tab, &st), &st);
    float *params = calloc(tab.numel, sizeof(float)), *grads = calloc(tab.numel, sizeof(float));
    load_params(h, group, &tab, params, &st);

    int64_t dx3[3] = {B, n, C}, df3[3] = {B, n, d}, dB[1] = {B}, dBn[2] = {B, n};
    int64_t dl3[3] = {B, n, V}, one[1] = {1};
    float *x = malloc(N * C * sizeof(float)), *f = malloc(N * d * sizeof(float));
    float *df = calloc(N * d, sizeof(float)), *dx = calloc(N * C, sizeof(float));
    int32_t y[64], targets[1024];
    CHECK(B <= 64 && N <= 1024);
    read_f32(h, group, "inputs", "x", 3, dx3, x, &st);
    char path[128];
    snprintf(path, sizeof path, "%s/inputs/y", group);
    CHECK_OK(dd2_h5_read_i32(h, path, 1, dB, y, &st), &st);

    dd2_backbone_acts acts;
    CHECK_OK(dd2_backbone_acts_alloc(&acts, &bb, B, &st), &st);
    dd2_backbone_forward(&bb, params, &acts, x, y, B, f);

    double loss = 0;
    float *logits = NULL, *probs = NULL;
    if (with_head) {
        snprintf(path, sizeof path, "%s/inputs/targets", group);
        CHECK_OK(dd2_h5_read_i32(h, path, 2, dBn, targets, &st), &st);
        logits = malloc(N * V * sizeof(float));
        probs = malloc(N * V * sizeof(float));
        float *losses = malloc(N * sizeof(float)), *dlosses = malloc(N * sizeof(float));
        float *dlogits = calloc(N * V, sizeof(float));
        dd2_logits_forward(&lh, params, f, N, logits);
        op_crossentropy_forward(losses, probs, logits, targets, N, V);
        for (size_t i = 0; i < N; i++) loss += losses[i], dlosses[i] = 1.0f / (float)N;
        loss /= (double)N;
        op_crossentropy_backward(dlogits, dlosses, probs, targets, N, V);
        dd2_logits_backward(&lh, params, grads, f, dlogits, N, df);
        free(losses);
        free(dlosses);
        free(dlogits);
    } else {
        read_f32(h, group, "inputs", "g", 3, df3, df, &st);
        for (size_t i = 0; i < N * d; i++) loss += (double)f[i] * df[i];
    }
    dd2_backbone_backward(&bb, params, grads, &acts, df, dx, B);

    cmp_state cs = {group, 0, "", 0};
    float lossf = (float)loss;
    cmp_stored(&cs, h, "outputs", "loss", 1, one, &lossf, &st);
    cmp_stored(&cs, h, "outputs", "features", 3, df3, f, &st);
    if (with_head) cmp_stored(&cs, h, "outputs", "logits", 3, dl3, logits, &st);
    cmp_param_grads(&cs, h, &tab, grads, &st);
    cmp_stored(&cs, h, "grads", "x", 3, dx3, dx, &st);
    /* the last token is never read: its gradient is exactly zero */
    double last = 0;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) last += fabs(dx[((size_t)b * n + n - 1) * C + c]);
    CHECK_MSG(last == 0, "%s: grads/x[:, n-1] is not zero (%g)", group, last);
    /* debug tensors: residual stream after the embedding and after each block, RoPE tables */
    for (int l = 0; l <= m.L; l++) {
        char nm[32];
        if (l == 0)
            snprintf(nm, sizeof nm, "h.in");
        else
            snprintf(nm, sizeof nm, "h.%d", l - 1);
        cmp_stored(&cs, h, "debug", nm, 3, df3, acts.res + (size_t)l * N * d, &st);
    }
    int64_t dr[2] = {n, d / m.H / 2};
    float *ref = malloc((size_t)n * (d / m.H / 2) * sizeof(float));
    for (int k = 0; k < 2; k++) {
        const char *nm = k ? "rope_sin" : "rope_cos";
        if (read_f32(h, group, "debug", nm, 2, dr, ref, &st) == 0) {
            /* absolute error: the class-token row is exactly zero */
            double e = 0;
            const float *a = k ? acts.sin : acts.cos;
            for (size_t i = 0; i < (size_t)n * dr[1]; i++)
                if (fabs(a[i] - ref[i]) > e) e = fabs(a[i] - ref[i]);
            printf("  %-14s debug/%-28s abs err %.2e\n", group, nm, e);
            CHECK_MSG(e <= 1e-6, "%s debug/%s: %g", group, nm, e);
        }
    }
    free(ref);
    report(&cs);

    dd2_backbone_acts_free(&acts);
    free(x), free(f), free(df), free(dx), free(logits), free(probs);
    free(params), free(grads);
    dd2_ptable_free(&tab);
    CHECK_OK(dd2_h5_close(h, &st), &st);
}

TEST(teacher) { backbone_case("teacher", 1); }
TEST(backbone_mlp) { backbone_case("backbone_mlp", 0); }

/* /diffhead: the MLP head alone, loss = sum(v ⊙ g); gradients of params, x_t and c. */
TEST(diffhead) {
    const char *group = "diffhead";
    dd2_status st;
    dd2_status_clear(&st);
    dd2_h5 *h = NULL;
    CHECK_OK(dd2_h5_open_read(REF_FILE, &h, &st), &st);
    if (!h) return;
    dd2_mlp_head_dims m;
    int P = (int)attr_i64(h, group, "P", &st);
    m.C = (int)attr_i64(h, group, "C", &st);
    m.d = (int)attr_i64(h, group, "d", &st);
    m.W = (int)attr_i64(h, group, "W", &st);
    m.depth = (int)attr_i64(h, group, "depth", &st);
    dd2_param_table tab;
    dd2_ptable_init(&tab);
    dd2_mlp_head hd;
    CHECK_OK(dd2_mlp_head_register(&hd, &m, NULL, &tab, &st), &st);
    float *params = calloc(tab.numel, sizeof(float)), *grads = calloc(tab.numel, sizeof(float));
    load_params(h, group, &tab, params, &st);

    int64_t dPC[2] = {P, m.C}, dPd[2] = {P, m.d}, dP[1] = {P}, dPW[2] = {P, m.W}, one[1] = {1};
    float *x_t = malloc((size_t)P * m.C * sizeof(float)), *t = malloc((size_t)P * sizeof(float));
    float *c = malloc((size_t)P * m.d * sizeof(float)), *g = malloc((size_t)P * m.C * sizeof(float));
    float *v = malloc((size_t)P * m.C * sizeof(float));
    float *dx_t = calloc((size_t)P * m.C, sizeof(float)), *dc = calloc((size_t)P * m.d, sizeof(float));
    read_f32(h, group, "inputs", "x_t", 2, dPC, x_t, &st);
    read_f32(h, group, "inputs", "t", 1, dP, t, &st);
    read_f32(h, group, "inputs", "c", 2, dPd, c, &st);
    read_f32(h, group, "inputs", "g", 2, dPC, g, &st);

    dd2_mlp_head_acts acts;
    CHECK_OK(dd2_mlp_head_acts_alloc(&acts, &hd, P, &st), &st);
    dd2_mlp_head_forward(&hd, params, &acts, x_t, t, c, P, v);
    double loss = 0;
    for (int i = 0; i < P * m.C; i++) loss += (double)v[i] * g[i];
    dd2_mlp_head_backward(&hd, params, grads, &acts, g, dx_t, dc, P);

    cmp_state cs = {group, 0, "", 0};
    float lossf = (float)loss;
    cmp_stored(&cs, h, "outputs", "loss", 1, one, &lossf, &st);
    cmp_stored(&cs, h, "outputs", "v", 2, dPC, v, &st);
    cmp_param_grads(&cs, h, &tab, grads, &st);
    cmp_stored(&cs, h, "grads", "x_t", 2, dPC, dx_t, &st);
    cmp_stored(&cs, h, "grads", "c", 2, dPd, dc, &st);
    cmp_stored(&cs, h, "debug", "y", 2, dPW, acts.y, &st);
    report(&cs);

    dd2_mlp_head_acts_free(&acts);
    free(x_t), free(t), free(c), free(g), free(v), free(dx_t), free(dc);
    free(params), free(grads);
    dd2_ptable_free(&tab);
    CHECK_OK(dd2_h5_close(h, &st), &st);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(teacher);
    RUN(backbone_mlp);
    RUN(diffhead);
    return test_summary();
}
