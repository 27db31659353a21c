/* Whole-network gradient checks: central finite differences in double precision (the _f64
 * networks of model/nets_f64.h) for every parameter tensor and every differentiable input of
 *   - the backbone (linear and mlp input maps, 2D and 1D RoPE, fused and split w1/w3),
 *     loss = Σ f ⊙ w with fixed random w,
 *   - the backbone + logits head with the mean cross-entropy (the teacher),
 *   - the MLP diffusion head (params, x_t, c), loss = Σ v ⊙ w,
 * on tiny shapes; then the NULL-gradient paths, and the float networks against the double ones.
 * The activations are allocated for a larger capacity than used (B + 1 sequences, P + 2 points),
 * so the per-block strides of a partly used capacity are exercised too.
 *
 * Per tensor: rel = max|analytic − numeric| / max|numeric| ≤ 1e-6 (as for the ops, docs/ops.md:
 * the central difference's round-off is ~ε·|L|/step ≈ 1e-9 absolute, its truncation ~step² —
 * real mistakes give 1e-3 or more). Gradient buffers are pre-filled with random values and the
 * pre-fill subtracted afterwards, so a `=` instead of `+=` fails. Float vs double on the same
 * float-rounded inputs: rel ≤ 1e-5 for every output and gradient. */
#include "gradcheck.h" /* gc_uniform, gc_seed, gc_rel, gc_maxabs, test_util.h */
#include "model/backbone.h"
#include "model/logits_head.h"
#include "model/mlp_head.h"
#include "model/nets_f64.h"
#include "model/params.h"

#define FD_EPS 1e-6
#define TOL_FD 1e-6
#define TOL_32 1e-5

enum { K_BB, K_TEACHER, K_HEAD };

/* One network case; the buffers of one precision are in a work struct. */
typedef struct {
    const char *label;
    int kind;
    dd2_param_table tab;
    dd2_backbone bb;
    dd2_logits_head lh;
    dd2_mlp_head hd;
    int B, V, P;   /* batch (backbones), vocabulary (teacher), points (head) */
    int y[8], targets[256];
    int nin;       /* differentiable inputs: x (backbones); x_t, c (head) */
    const char *in_name[2];
    size_t in_n[2];
    size_t out_n;  /* features [B,n,d] / logits [B·n,V] / v [P,C] */
    size_t f_n;    /* features (teacher) */
} net_case;

#define WORK_FIELDS(real)                                                                          \
    real *p, *g;           /* params, grads (table layout) */                                      \
    real *in[2], *gin[2];  /* differentiable inputs and their gradients */                         \
    real *t;               /* head: t [P] */                                                       \
    real *out, *w;         /* output and the loss weights (Σ out ⊙ w) */                           \
    real *f, *df;          /* teacher: features, their gradient */                                 \
    real *probs, *losses, *dlosses, *dlogits;

typedef struct {
    WORK_FIELDS(double)
    dd2_backbone_acts_f64 ba;
    dd2_mlp_head_acts_f64 ha;
} work64;

typedef struct {
    WORK_FIELDS(float)
    dd2_backbone_acts ba;
    dd2_mlp_head_acts ha;
} work32;

/* Forward; with backward = 1 also the backward pass, accumulating into w->g and w->gin (either
 * may be NULL / have NULL entries: that gradient is not requested). Returns the loss. */
#define DEFINE_RUN(S, WORK, real)                                                                  \
    static double run##S(const net_case *c, WORK *w, int backward, real *g, real *gin0,          \
                         real *gin1) {                                                             \
        double loss = 0;                                                                           \
        if (c->kind == K_BB) {                                                                     \
            dd2_backbone_forward##S(&c->bb, w->p, &w->ba, w->in[0], c->y, c->B, w->out);         \
            for (size_t i = 0; i < c->out_n; i++) loss += (double)w->out[i] * w->w[i];            \
            if (backward) dd2_backbone_backward##S(&c->bb, w->p, g, &w->ba, w->w, gin0, c->B);    \
        } else if (c->kind == K_TEACHER) {                                                         \
            size_t N = (size_t)c->B * c->bb.dims.n;                                                \
            dd2_backbone_forward##S(&c->bb, w->p, &w->ba, w->in[0], c->y, c->B, w->f);           \
            dd2_logits_forward##S(&c->lh, w->p, w->f, N, w->out);                                 \
            op_crossentropy_forward##S(w->losses, w->probs, w->out, c->targets, N, c->V);        \
            for (size_t i = 0; i < N; i++) loss += w->losses[i];                                   \
            loss /= (double)N;                                                                     \
            if (backward) {                                                                        \
                memset(w->dlogits, 0, c->out_n * sizeof(real));                                    \
                memset(w->df, 0, c->f_n * sizeof(real));                                           \
                for (size_t i = 0; i < N; i++) w->dlosses[i] = (real)(1.0 / (double)N);            \
                op_crossentropy_backward##S(w->dlogits, w->dlosses, w->probs, c->targets, N,      \
                                            c->V);                                                 \
                dd2_logits_backward##S(&c->lh, w->p, g, w->f, w->dlogits, N, w->df);              \
                dd2_backbone_backward##S(&c->bb, w->p, g, &w->ba, w->df, gin0, c->B);             \
            }                                                                                      \
        } else {                                                                                   \
            dd2_mlp_head_forward##S(&c->hd, w->p, &w->ha, w->in[0], w->t, w->in[1], c->P,        \
                                    w->out);                                                       \
            for (size_t i = 0; i < c->out_n; i++) loss += (double)w->out[i] * w->w[i];            \
            if (backward)                                                                          \
                dd2_mlp_head_backward##S(&c->hd, w->p, g, &w->ha, w->w, gin0, gin1, c->P);        \
        }                                                                                          \
        return loss;                                                                               \
    }
DEFINE_RUN(_f64, work64, double)
DEFINE_RUN(, work32, float)

#define ALLOC_WORK(c, W_, real)                                                                     \
    do {                                                                                           \
        (W_)->p = calloc((c)->tab.numel, sizeof(real));                                             \
        (W_)->g = calloc((c)->tab.numel, sizeof(real));                                             \
        for (int i_ = 0; i_ < (c)->nin; i_++) {                                                    \
            (W_)->in[i_] = calloc((c)->in_n[i_], sizeof(real));                                     \
            (W_)->gin[i_] = calloc((c)->in_n[i_], sizeof(real));                                    \
        }                                                                                          \
        (W_)->t = calloc((size_t)(c)->P + 1, sizeof(real));                                         \
        (W_)->out = calloc((c)->out_n, sizeof(real));                                               \
        (W_)->w = calloc((c)->out_n, sizeof(real));                                                 \
        (W_)->f = calloc((c)->f_n + 1, sizeof(real));                                               \
        (W_)->df = calloc((c)->f_n + 1, sizeof(real));                                              \
        (W_)->probs = calloc((c)->out_n, sizeof(real));                                             \
        (W_)->losses = calloc((c)->out_n, sizeof(real));                                            \
        (W_)->dlosses = calloc((c)->out_n, sizeof(real));                                           \
        (W_)->dlogits = calloc((c)->out_n, sizeof(real));                                           \
    } while (0)

#define FREE_WORK(c, W_)                                                                            \
    do {                                                                                           \
        free((W_)->p), free((W_)->g), free((W_)->t), free((W_)->out), free((W_)->w), free((W_)->f);      \
        free((W_)->df), free((W_)->probs), free((W_)->losses), free((W_)->dlosses);                    \
        free((W_)->dlogits);                                                                        \
        for (int i_ = 0; i_ < (c)->nin; i_++) free((W_)->in[i_]), free((W_)->gin[i_]);              \
    } while (0)

static double unif(double lo, double hi) { return lo + (hi - lo) * 0.5 * (gc_uniform() + 1.0); }

/* Random, non-degenerate weights: matrices U(±sqrt(3/fan_in)), norm gains 1 ± 0.2, other
 * vectors ± 0.3 (all tensors random, including those that train from zero). */
static void random_params(const net_case *c, double *p) {
    for (int i = 0; i < c->tab.n; i++) {
        const dd2_tensor_info *t = &c->tab.t[i];
        double *q = p + t->offset;
        for (size_t j = 0; j < t->numel; j++) {
            if (t->ndim == 2)
                q[j] = unif(-1, 1) * sqrt(3.0 / (double)t->shape[1]);
            else if (t->init == DD2_INIT_ONES)
                q[j] = 1 + unif(-0.2, 0.2);
            else
                q[j] = unif(-0.3, 0.3);
        }
    }
}

/* Set up the case's sizes and the double work buffers with random values. */
static void setup(net_case *c, work64 *w) {
    dd2_status st;
    dd2_status_clear(&st);
    if (c->kind != K_HEAD) {
        const dd2_backbone_dims *m = &c->bb.dims;
        size_t N = (size_t)c->B * m->n;
        c->nin = 1;
        c->in_name[0] = "x";
        c->in_n[0] = N * m->C;
        c->f_n = N * m->d;
        c->out_n = c->kind == K_TEACHER ? N * c->V : N * m->d;
        for (int b = 0; b < c->B; b++) c->y[b] = b == 1 ? m->K : (2 * b) % (m->K + 1);
        for (size_t i = 0; i < N; i++) c->targets[i] = (int)((i * 7 + 3) % (size_t)(c->V ? c->V : 1));
    } else {
        const dd2_mlp_head_dims *m = &c->hd.dims;
        c->nin = 2;
        c->in_name[0] = "x_t";
        c->in_name[1] = "c";
        c->in_n[0] = (size_t)c->P * m->C;
        c->in_n[1] = (size_t)c->P * m->d;
        c->out_n = (size_t)c->P * m->C;
    }
    ALLOC_WORK(c, w, double);
    random_params(c, w->p);
    for (int i = 0; i < c->nin; i++)
        for (size_t j = 0; j < c->in_n[i]; j++) w->in[i][j] = unif(-1, 1);
    for (size_t j = 0; j < c->out_n; j++) w->w[j] = unif(-1, 1);
    for (int j = 0; j < c->P; j++) w->t[j] = unif(0, 1);
    if (c->kind != K_HEAD)
        CHECK_OK(dd2_backbone_acts_alloc_f64(&w->ba, &c->bb, c->B + 1, &st), &st);
    else
        CHECK_OK(dd2_mlp_head_acts_alloc_f64(&w->ha, &c->hd, c->P + 2, &st), &st);
}

static void fd_report(const char *label, const char *name, const double *ana, const double *num,
                      size_t n, double *worst) {
    double rel = gc_rel(ana, num, n), mx = gc_maxabs(num, n);
    printf("  %-20s %-26s rel %.1e  (max|grad| %.2g)\n", label, name, rel, mx);
    CHECK_MSG(rel <= TOL_FD, "%s %s: gradient check rel %.3g > %.0e", label, name, rel, TOL_FD);
    CHECK_MSG(mx > 1e-6, "%s %s: numeric gradient is zero: the check would be vacuous", label,
              name);
    if (!(rel <= *worst)) *worst = rel;
}

/* Finite differences against the analytic gradients (params and inputs), in double. */
static double fd_check(net_case *c, work64 *w) {
    size_t np = c->tab.numel;
    double *pre = malloc(np * sizeof(double)), *prein[2] = {0};
    for (size_t j = 0; j < np; j++) w->g[j] = pre[j] = unif(-1, 1);
    for (int i = 0; i < c->nin; i++) {
        prein[i] = malloc(c->in_n[i] * sizeof(double));
        for (size_t j = 0; j < c->in_n[i]; j++) w->gin[i][j] = prein[i][j] = unif(-1, 1);
    }
    run_f64(c, w, 1, w->g, w->gin[0], c->nin > 1 ? w->gin[1] : NULL);
    for (size_t j = 0; j < np; j++) w->g[j] -= pre[j];
    for (int i = 0; i < c->nin; i++)
        for (size_t j = 0; j < c->in_n[i]; j++) w->gin[i][j] -= prein[i][j];
    double worst = 0;
    for (int k = 0; k < c->tab.n + c->nin; k++) {
        const dd2_tensor_info *t = k < c->tab.n ? &c->tab.t[k] : NULL;
        double *x = t ? w->p + t->offset : w->in[k - c->tab.n];
        const double *ana = t ? w->g + t->offset : w->gin[k - c->tab.n];
        size_t n = t ? t->numel : c->in_n[k - c->tab.n];
        double *num = malloc(n * sizeof(double));
        for (size_t j = 0; j < n; j++) {
            double x0 = x[j];
            x[j] = x0 + FD_EPS;
            double lp = run_f64(c, w, 0, NULL, NULL, NULL);
            x[j] = x0 - FD_EPS;
            double lm = run_f64(c, w, 0, NULL, NULL, NULL);
            x[j] = x0;
            num[j] = (lp - lm) / (2 * FD_EPS);
        }
        fd_report(c->label, t ? t->name : c->in_name[k - c->tab.n], ana, num, n, &worst);
        free(num);
    }
    if (c->kind != K_HEAD) { /* the last token is never read: exactly zero gradient */
        const dd2_backbone_dims *m = &c->bb.dims;
        double s = 0;
        for (int b = 0; b < c->B; b++)
            for (int j = 0; j < m->C; j++) s += fabs(w->gin[0][((size_t)b * m->n + m->n - 1) * m->C + j]);
        CHECK_MSG(s == 0, "%s: dx[:, n-1] = %g, expected exactly 0", c->label, s);
    }
    printf("  %-20s worst rel %.1e over %d tensors\n", c->label, worst, c->tab.n + c->nin);
    free(pre);
    for (int i = 0; i < c->nin; i++) free(prein[i]);
    return worst;
}

/* Each gradient alone (others NULL) equals, bitwise, the one computed with all of them. */
static void null_check(net_case *c, work64 *w) {
    size_t np = c->tab.numel;
    double *g_all = calloc(np, sizeof(double)), *gi_all[2] = {0};
    for (int i = 0; i < c->nin; i++) gi_all[i] = calloc(c->in_n[i], sizeof(double));
    run_f64(c, w, 1, g_all, gi_all[0], c->nin > 1 ? gi_all[1] : NULL);
    for (int k = 0; k <= c->nin; k++) { /* k = 0: params only; k = i+1: input i only */
        memset(w->g, 0, np * sizeof(double));
        for (int i = 0; i < c->nin; i++) memset(w->gin[i], 0, c->in_n[i] * sizeof(double));
        run_f64(c, w, 1, k == 0 ? w->g : NULL, k == 1 ? w->gin[0] : NULL,
                k == 2 ? w->gin[1] : NULL);
        if (k == 0)
            CHECK_MSG(memcmp(w->g, g_all, np * sizeof(double)) == 0,
                      "%s: parameter gradients alone differ from those computed with dx", c->label);
        else
            CHECK_MSG(memcmp(w->gin[k - 1], gi_all[k - 1], c->in_n[k - 1] * sizeof(double)) == 0,
                      "%s: d%s alone (grads NULL) differs", c->label, c->in_name[k - 1]);
        if (k != 0) CHECK_MSG(gc_maxabs(w->g, np) == 0, "%s: grads written though NULL", c->label);
        for (int i = 0; i < c->nin; i++)
            if (k != i + 1)
                CHECK_MSG(gc_maxabs(w->gin[i], c->in_n[i]) == 0, "%s: d%s written though NULL",
                          c->label, c->in_name[i]);
    }
    free(g_all);
    for (int i = 0; i < c->nin; i++) free(gi_all[i]);
    printf("  %-20s NULL-gradient paths ok\n", c->label);
}

static double rel32(const float *a, const double *b, size_t n) {
    double e = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        double dd = fabs((double)a[i] - b[i]);
        if (dd > e || dd != dd) e = dd;
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return e / (m > 1e-30 ? m : 1e-30);
}

/* The float networks against the double ones on float-rounded inputs. */
static void compare32(net_case *c, work64 *w) {
    dd2_status st;
    dd2_status_clear(&st);
    work32 v;
    memset(&v, 0, sizeof v);
    ALLOC_WORK(c, &v, float);
#define ROUND(dst, src, n)                                                                         \
    for (size_t j_ = 0; j_ < (n); j_++) (dst)[j_] = (float)(src)[j_], (src)[j_] = (dst)[j_]
    ROUND(v.p, w->p, c->tab.numel);
    for (int i = 0; i < c->nin; i++) ROUND(v.in[i], w->in[i], c->in_n[i]);
    ROUND(v.t, w->t, (size_t)c->P);
    ROUND(v.w, w->w, c->out_n);
#undef ROUND
    if (c->kind != K_HEAD)
        CHECK_OK(dd2_backbone_acts_alloc(&v.ba, &c->bb, c->B + 1, &st), &st);
    else
        CHECK_OK(dd2_mlp_head_acts_alloc(&v.ha, &c->hd, c->P + 2, &st), &st);
    memset(w->g, 0, c->tab.numel * sizeof(double));
    for (int i = 0; i < c->nin; i++) memset(w->gin[i], 0, c->in_n[i] * sizeof(double));
    double l64 = run_f64(c, w, 1, w->g, w->gin[0], c->nin > 1 ? w->gin[1] : NULL);
    double l32 = run(c, &v, 1, v.g, v.gin[0], c->nin > 1 ? v.gin[1] : NULL);
    double worst = 0, r;
    const char *wname = "";
#define CMP(name, a, b, n)                                                                         \
    do {                                                                                           \
        r = rel32((a), (b), (n));                                                                  \
        CHECK_MSG(r <= TOL_32, "%s %s: float vs double rel %.3g > %.0e", c->label, (name), r,     \
                  TOL_32);                                                                         \
        if (!(r <= worst)) worst = r, wname = (name);                                              \
    } while (0)
    float l32f = (float)l32;
    CMP("loss", &l32f, &l64, 1);
    CMP("output", v.out, w->out, c->out_n);
    if (c->kind == K_TEACHER) CMP("features", v.f, w->f, c->f_n);
    for (int k = 0; k < c->tab.n; k++) {
        const dd2_tensor_info *t = &c->tab.t[k];
        CMP(t->name, v.g + t->offset, w->g + t->offset, t->numel);
    }
    for (int i = 0; i < c->nin; i++) CMP(c->in_name[i], v.gin[i], w->gin[i], c->in_n[i]);
#undef CMP
    printf("  %-20s float vs double: worst rel %.1e (%s) over %d tensors\n", c->label, worst,
           wname, c->tab.n + c->nin + 2);
    dd2_backbone_acts_free(&v.ba);
    dd2_mlp_head_acts_free(&v.ha);
    FREE_WORK(c, &v);
}

static void run_case(net_case *c) {
    work64 w;
    memset(&w, 0, sizeof w);
    setup(c, &w);
    fd_check(c, &w);
    null_check(c, &w);
    compare32(c, &w);
    dd2_backbone_acts_free_f64(&w.ba);
    dd2_mlp_head_acts_free_f64(&w.ha);
    FREE_WORK(c, &w);
    dd2_ptable_free(&c->tab);
}

static void backbone_case(const char *label, int input_map, int rope, int F, int with_head,
                          int expect_fused) {
    dd2_status st;
    dd2_status_clear(&st);
    net_case c;
    memset(&c, 0, sizeof c);
    c.label = label;
    c.kind = with_head ? K_TEACHER : K_BB;
    dd2_backbone_dims m = {.C = 3, .d = 8, .H = 2, .L = 2, .F = F, .K = 3, .n = 6, .gh = 2,
                           .gw = 3, .input_map = input_map, .rope = rope};
    if (rope == DD2_ROPE_1D) m.n = 7, m.gh = m.gw = 0, m.L = 3;
    c.B = 2;
    dd2_ptable_init(&c.tab);
    CHECK_OK(dd2_backbone_register(&c.bb, &m, "net.", &c.tab, &st), &st);
    CHECK_MSG(c.bb.layer0.fused13 == expect_fused, "%s: fused13 = %d", label,
              c.bb.layer0.fused13);
    if (with_head) {
        c.V = 5;
        CHECK_OK(dd2_logits_head_register(&c.lh, c.V, m.d, "net.head.", &c.tab, &st), &st);
    }
    gc_seed(0x5eed0000u + (uint64_t)(input_map * 4 + rope * 2 + with_head));
    run_case(&c);
}

TEST(backbone_linear_rope2d) { backbone_case("bb linear 2d", DD2_INPUT_LINEAR, DD2_ROPE_2D, 12, 0, 1); }
TEST(backbone_mlp_rope2d) { backbone_case("bb mlp 2d", DD2_INPUT_MLP, DD2_ROPE_2D, 12, 0, 1); }
TEST(backbone_mlp_rope1d_split13) { backbone_case("bb mlp 1d split", DD2_INPUT_MLP, DD2_ROPE_1D, 5, 0, 0); }
TEST(backbone_linear_rope1d_split13) { backbone_case("bb linear 1d split", DD2_INPUT_LINEAR, DD2_ROPE_1D, 5, 0, 0); }
TEST(teacher_ce) { backbone_case("teacher ce", DD2_INPUT_LINEAR, DD2_ROPE_2D, 12, 1, 1); }

TEST(mlp_head) {
    dd2_status st;
    dd2_status_clear(&st);
    net_case c;
    memset(&c, 0, sizeof c);
    c.label = "mlp head";
    c.kind = K_HEAD;
    dd2_mlp_head_dims m = {.C = 3, .d = 5, .W = 6, .depth = 2};
    c.P = 4;
    dd2_ptable_init(&c.tab);
    CHECK_OK(dd2_mlp_head_register(&c.hd, &m, NULL, &c.tab, &st), &st);
    gc_seed(0x5eed1000u);
    run_case(&c);
}

/* The grouped head (one condition row per `group` points: distill.t_shared) equals the plain
 * head on the rows repeated, in double to 1e-12 (so the plain head's gradient check above covers
 * it): v, parameter gradients, dx_t, and dc summed over each group; and with only dx_t requested
 * (the CSD generator loss's backward). The float version against the double one. */
TEST(mlp_head_grouped) {
    dd2_status st;
    dd2_status_clear(&st);
    net_case c;
    memset(&c, 0, sizeof c);
    dd2_mlp_head_dims m = {.C = 3, .d = 5, .W = 6, .depth = 2};
    enum { G = 3, Q = 3, P = G * Q };
    dd2_ptable_init(&c.tab);
    CHECK_OK(dd2_mlp_head_register(&c.hd, &m, NULL, &c.tab, &st), &st);
    gc_seed(0x5eed2000u);
    const size_t np = c.tab.numel;
    double *p = calloc(np, sizeof *p), *g1 = calloc(np, sizeof *g1), *g2 = calloc(np, sizeof *g2);
    double x[P * 3], tq[Q], cq[Q * 5], tr[P], cr[P * 5], dv[P * 3], v1[P * 3], v2[P * 3];
    double dx1[P * 3] = {0}, dx2[P * 3] = {0}, dx3[P * 3] = {0}, dc1[P * 5] = {0}, dc2[Q * 5] = {0};
    random_params(&c, p);
    for (int k = 0; k < P * 3; k++) x[k] = unif(-1.5, 1.5), dv[k] = unif(-1, 1);
    for (int q = 0; q < Q; q++) {
        tq[q] = unif(0.05, 0.95);
        for (int k = 0; k < 5; k++) cq[q * 5 + k] = unif(-1, 1);
    }
    for (int r = 0; r < P; r++) {
        tr[r] = tq[r / G];
        memcpy(cr + r * 5, cq + (r / G) * 5, 5 * sizeof(double));
    }
    dd2_mlp_head_acts_f64 a1, a2;
    CHECK_OK(dd2_mlp_head_acts_alloc_f64(&a1, &c.hd, P, &st), &st);
    CHECK_OK(dd2_mlp_head_acts_alloc_f64(&a2, &c.hd, P + 2, &st), &st); /* capacity above P */
    dd2_mlp_head_forward_f64(&c.hd, p, &a1, x, tr, cr, P, v1);
    dd2_mlp_head_forward_grouped_f64(&c.hd, p, &a2, x, tq, cq, P, G, v2);
    double e = 0;
    for (int k = 0; k < P * 3; k++) e = fmax(e, fabs(v1[k] - v2[k]));
    CHECK_MSG(e < 1e-12, "grouped forward differs by %g", e);
    dd2_mlp_head_backward_f64(&c.hd, p, g1, &a1, dv, dx1, dc1, P);
    dd2_mlp_head_backward_grouped_f64(&c.hd, p, g2, &a2, dv, dx2, dc2, P, G);
    double eg = 0, ex = 0, ec = 0, scale = 0;
    for (size_t k = 0; k < np; k++) eg = fmax(eg, fabs(g1[k] - g2[k])), scale = fmax(scale, fabs(g1[k]));
    for (int k = 0; k < P * 3; k++) ex = fmax(ex, fabs(dx1[k] - dx2[k]));
    for (int q = 0; q < Q; q++)
        for (int k = 0; k < 5; k++) {
            double sum = 0;
            for (int j = 0; j < G; j++) sum += dc1[(q * G + j) * 5 + k];
            ec = fmax(ec, fabs(sum - dc2[q * 5 + k]));
        }
    CHECK_MSG(scale > 1e-3 && eg < 1e-12 && ex < 1e-12 && ec < 1e-12,
              "grouped backward differs: params %g (scale %g), dx %g, dc %g", eg, scale, ex, ec);
    dd2_mlp_head_backward_grouped_f64(&c.hd, p, NULL, &a2, dv, dx3, NULL, P, G); /* dx_t only */
    ex = 0;
    for (int k = 0; k < P * 3; k++) ex = fmax(ex, fabs(dx1[k] - dx3[k]));
    CHECK_MSG(ex < 1e-12, "grouped dx-only backward differs by %g", ex);
    /* float against double */
    float *pf = malloc(np * sizeof *pf), *gf = calloc(np, sizeof *gf);
    float xf[P * 3], tf[Q], cf[Q * 5], dvf[P * 3], vf[P * 3], dxf[P * 3] = {0}, dcf[Q * 5] = {0};
    for (size_t k = 0; k < np; k++) pf[k] = (float)p[k];
    for (int k = 0; k < P * 3; k++) xf[k] = (float)x[k], dvf[k] = (float)dv[k];
    for (int k = 0; k < Q; k++) tf[k] = (float)tq[k];
    for (int k = 0; k < Q * 5; k++) cf[k] = (float)cq[k];
    dd2_mlp_head_acts af;
    CHECK_OK(dd2_mlp_head_acts_alloc(&af, &c.hd, P, &st), &st);
    dd2_mlp_head_forward_grouped(&c.hd, pf, &af, xf, tf, cf, P, G, vf);
    dd2_mlp_head_backward_grouped(&c.hd, pf, gf, &af, dvf, dxf, dcf, P, G);
    double r32 = fmax(fmax(rel32(vf, v2, P * 3), rel32(gf, g2, np)), fmax(rel32(dxf, dx2, P * 3), rel32(dcf, dc2, Q * 5)));
    CHECK_MSG(r32 < TOL_32, "grouped float vs double: %g", r32);
    dd2_mlp_head_acts_free(&af);
    dd2_mlp_head_acts_free_f64(&a1);
    dd2_mlp_head_acts_free_f64(&a2);
    free(p), free(g1), free(g2), free(pf), free(gf);
    dd2_ptable_free(&c.tab);
}

/* Registration: names, shapes, order, init rules and the dims checks. */
TEST(register_names_and_errors) {
    dd2_status st;
    dd2_status_clear(&st);
    dd2_param_table tab;
    dd2_ptable_init(&tab);
    dd2_backbone g, q;
    dd2_mlp_head h;
    dd2_backbone_dims m = {.C = 4, .d = 16, .H = 2, .L = 2, .F = 24, .K = 3, .n = 9, .gh = 3,
                           .gw = 3, .input_map = DD2_INPUT_MLP, .rope = DD2_ROPE_2D};
    CHECK_OK(dd2_backbone_register(&g, &m, "gen.", &tab, &st), &st);
    CHECK_OK(dd2_backbone_register(&q, &m, "guid.", &tab, &st), &st);
    dd2_mlp_head_dims hm = {.C = 4, .d = 16, .W = 12, .depth = 2};
    CHECK_OK(dd2_mlp_head_register(&h, &hm, "gen.head_mlp.", &tab, &st), &st);
    CHECK(g.first == 0 && g.count == 1 + 4 + 7 * 2 + 1);
    CHECK(q.first == g.count && q.off_begin == g.off_end);
    int i = dd2_ptable_find(&tab, "guid.blocks.1.mlp.w3");
    CHECK(i >= 0 && tab.t[i].shape[0] == 24 && tab.t[i].shape[1] == 16 && tab.t[i].decay == 1);
    dd2_backbone_layer l1 = dd2_backbone_layer_at(&q, 1);
    CHECK(i >= 0 && tab.t[i].offset == l1.w3 && l1.w3 == l1.w1 + 24 * 16 && l1.fused13);
    i = dd2_ptable_find(&tab, "guid.blocks.1.mlp.w2");
    CHECK(i >= 0 && tab.t[i].offset == l1.w2);
    i = dd2_ptable_find(&tab, "gen.head_mlp.res.1.fc2.b");
    CHECK(i >= 0 && tab.t[i].offset == dd2_mlp_head_block_at(&h, 1).fc2_b);
    i = dd2_ptable_find(&tab, "gen.cls_emb");
    CHECK(i >= 0 && tab.t[i].shape[0] == 4 && tab.t[i].init == DD2_INIT_NORMAL && !tab.t[i].decay);
    CHECK(dd2_ptable_find(&tab, "gen.in_proj.w2") >= 0 && dd2_ptable_find(&tab, "gen.in_proj.w") < 0);
    i = dd2_ptable_find(&tab, "gen.head_mlp.res.1.ada.w");
    CHECK(i >= 0 && tab.t[i].init == DD2_INIT_ZEROS && tab.t[i].shape[0] == 36);
    i = dd2_ptable_find(&tab, "gen.head_mlp.time.w1");
    CHECK(i >= 0 && tab.t[i].shape[1] == 256 && tab.t[i].init == DD2_INIT_NORMAL);
    CHECK(dd2_ptable_find(&tab, "gen.head_mlp.final.b") == tab.n - 1 && h.off_end == tab.numel);
    CHECK(dd2_backbone_register(&g, &m, "gen.", &tab, &st) != 0); /* duplicate names */
    m.H = 4; /* hd = 4: fine for 2D RoPE */
    CHECK(dd2_backbone_register(&g, &m, "x.", &tab, &st) == 0);
    m.H = 8; /* hd = 2 */
    CHECK(dd2_backbone_register(&g, &m, "y.", &tab, &st) == DD2_ERR_INPUT);
    CHECK(strstr(st.msg, "divisible by 4") != NULL);
    m.H = 2, m.gw = 4;
    CHECK(dd2_backbone_register(&g, &m, "y.", &tab, &st) == DD2_ERR_INPUT);
    m.gw = 3, m.L = 0;
    CHECK(dd2_backbone_register(&g, &m, "y.", &tab, &st) == DD2_ERR_INPUT);
    hm.depth = 0;
    CHECK(dd2_mlp_head_register(&h, &hm, NULL, &tab, &st) == DD2_ERR_INPUT);
    dd2_ptable_free(&tab);
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(register_names_and_errors);
    RUN(backbone_linear_rope2d);
    RUN(backbone_mlp_rope2d);
    RUN(backbone_mlp_rope1d_split13);
    RUN(backbone_linear_rope1d_split13);
    RUN(teacher_ce);
    RUN(mlp_head);
    RUN(mlp_head_grouped);
    return test_summary();
}
