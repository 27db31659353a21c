/* The bf16 GEMM on Intel AMX (model/gemm_bf16.h) against a double reference on the same
 * bf16-rounded inputs, for the three forms of a linear layer, shapes that cover the row, K and
 * column blocking (partial row blocks, K tails, several K chunks), beta 0 and 1; the cases it
 * declines leave C untouched; splitting the rows does not change a bit; the f32 matmul ops route
 * through it when enabled. On a CPU without AMX-BF16 the kernel tests report a skip and only
 * the rounding and the refusal to enable are checked. */
#include <stdint.h>

#include "model/gemm_bf16.h"
#include "model/ops.h"
#include "test_util.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float urand(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((g_rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static float *rnd(size_t n) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = urand();
    return x;
}

static float f_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

TEST(round_to_nearest_even) {
    CHECK(dd2_bf16_round(1.0f) == 1.0f);
    CHECK(dd2_bf16_round(-2.5f) == -2.5f);
    /* bf16 keeps 7 mantissa bits: spacing 2^-7 at 1 */
    CHECK(dd2_bf16_round(1.0f + 0x1p-8f) == 1.0f);                  /* tie, to even (down) */
    CHECK(dd2_bf16_round(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);    /* tie, to even (up) */
    CHECK(dd2_bf16_round(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f); /* above the tie */
    CHECK(dd2_bf16_round(f_of(0x00400000u)) == 0.0f);               /* subnormal reads as zero */
    CHECK(dd2_bf16_round(f_of(0x7f7fffffu)) == f_of(0x7f800000u));  /* FLT_MAX rounds to inf */
}

/* op(X)[r][c] of a row-major X with leading dimension ld */
static double at(const float *X, size_t ld, int trans, size_t r, size_t c) {
    return trans ? X[c * ld + r] : X[r * ld + c];
}

/* C (+)= op(A)·op(B) by the kernel vs in double on rounded inputs; returns the worst error
 * relative to Σ|a||b| of its element (fp32 summation over K: ~K·2^-24 at worst). */
static double check_case(int ta, int tb, size_t M, size_t N, size_t K, float beta) {
    const size_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7;
    const size_t ar = ta ? K : M, br = tb ? N : K;
    float *A = rnd(ar * lda), *B = rnd(br * ldb), *C = rnd(M * ldc), *C0 = malloc(M * ldc * sizeof(float));
    memcpy(C0, C, M * ldc * sizeof(float));
    int done = dd2_gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    CHECK_MSG(done == 1, "ta %d tb %d M %zu N %zu K %zu: not computed", ta, tb, M, N, K);
    double worst = 0;
    for (size_t i = 0; i < M && done; i++)
        for (size_t j = 0; j < N; j++) {
            double s = beta != 0 ? C0[i * ldc + j] : 0, mag = fabs(s);
            for (size_t k = 0; k < K; k++) {
                double p = (double)dd2_bf16_round((float)at(A, lda, ta, i, k)) *
                           (double)dd2_bf16_round((float)at(B, ldb, tb, k, j));
                s += p, mag += fabs(p);
            }
            double e = fabs(C[i * ldc + j] - s) / (mag + 1e-30);
            if (e > worst) worst = e;
        }
    /* the padding between rows of C is not written */
    int pad_ok = 1;
    for (size_t i = 0; i < M; i++)
        for (size_t j = N; j < ldc; j++) pad_ok &= C[i * ldc + j] == C0[i * ldc + j];
    CHECK_MSG(pad_ok, "ta %d tb %d M %zu N %zu K %zu: wrote past column N", ta, tb, M, N, K);
    CHECK_MSG(worst <= 1e-6, "ta %d tb %d M %zu N %zu K %zu beta %g: relative error %.3g", ta, tb, M, N, K,
              (double)beta, worst);
    free(A), free(B), free(C), free(C0);
    return worst;
}

static int skip_without_amx(const char *what) {
    if (dd2_gemm_bf16_supported()) return 0;
    printf("  skip %s: no AMX-BF16 on this CPU or kernel\n", what);
    return 1;
}

TEST(three_forms_vs_double) {
    if (skip_without_amx("three_forms_vs_double")) return;
    dd2_status st;
    CHECK_OK(dd2_gemm_bf16_enable(1, &st), &st);
    /* forward (0,1), input gradient (0,0), weight gradient (1,0); M partial blocks, K tails,
     * N = 800 makes K run in several chunks, K = 2500 for the weight gradient too */
    const size_t shapes[][3] = {{37, 32, 16}, {64, 96, 48}, {100, 256, 300}, {33, 800, 1000}, {96, 64, 2500}};
    const int forms[][2] = {{0, 1}, {0, 0}, {1, 0}};
    double worst = 0;
    for (int f = 0; f < 3; f++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int b = 0; b < 2; b++) {
                double e = check_case(forms[f][0], forms[f][1], shapes[s][0], shapes[s][1], shapes[s][2], (float)b);
                if (e > worst) worst = e;
            }
    printf("  worst relative error against the double sum of rounded inputs: %.3g\n", worst);
    dd2_gemm_bf16_enable(0, &st);
}

TEST(declined_cases_untouched) {
    if (skip_without_amx("declined_cases_untouched")) return;
    dd2_status st;
    float *A = rnd(64 * 64), *B = rnd(64 * 64), *C = rnd(64 * 64), *C0 = malloc(64 * 64 * sizeof(float));
    memcpy(C0, C, 64 * 64 * sizeof(float));
    CHECK(dd2_gemm_bf16(0, 1, 64, 64, 64, A, 64, B, 64, 0, C, 64) == 0); /* not enabled */
    CHECK_OK(dd2_gemm_bf16_enable(1, &st), &st);
    CHECK(dd2_gemm_bf16(0, 1, 64, 48, 64, A, 64, B, 64, 0, C, 64) == 0); /* N not a multiple of 32 */
    CHECK(dd2_gemm_bf16(0, 1, 16, 64, 64, A, 64, B, 64, 0, C, 64) == 0); /* M < 32 */
    CHECK(dd2_gemm_bf16(0, 1, 64, 64, 8, A, 64, B, 64, 0, C, 64) == 0);  /* K < 16 */
    CHECK(dd2_gemm_bf16(1, 1, 64, 64, 64, A, 64, B, 64, 0, C, 64) == 0); /* both transposed */
    CHECK(dd2_gemm_bf16(0, 1, 64, 64, 64, A, 64, B, 64, 0.5f, C, 64) == 0); /* beta not 0 or 1 */
    CHECK(memcmp(C, C0, 64 * 64 * sizeof(float)) == 0);
    dd2_gemm_bf16_enable(0, &st);
    free(A), free(B), free(C), free(C0);
}

/* rows computed in two calls equal rows computed in one, bit for bit (ranks split rows) */
TEST(row_split_bitwise) {
    if (skip_without_amx("row_split_bitwise")) return;
    dd2_status st;
    CHECK_OK(dd2_gemm_bf16_enable(1, &st), &st);
    const size_t M = 150, N = 96, K = 700;
    float *A = rnd(M * K), *B = rnd(N * K), *C1 = calloc(M * N, sizeof(float)), *C2 = calloc(M * N, sizeof(float));
    CHECK(dd2_gemm_bf16(0, 1, M, N, K, A, K, B, K, 0, C1, N) == 1);
    CHECK(dd2_gemm_bf16(0, 1, 70, N, K, A, K, B, K, 0, C2, N) == 1);
    CHECK(dd2_gemm_bf16(0, 1, M - 70, N, K, A + 70 * K, K, B, K, 0, C2 + 70 * N, N) == 1);
    CHECK(memcmp(C1, C2, M * N * sizeof(float)) == 0);
    dd2_gemm_bf16_enable(0, &st);
    free(A), free(B), free(C1), free(C2);
}

/* op_matmul_forward / _backward go through the bf16 path when enabled: close to the fp32 result
 * at bf16's precision, and not equal to it (so the routing is real) */
TEST(matmul_ops_route) {
    if (skip_without_amx("matmul_ops_route")) return;
    dd2_status st;
    const size_t N = 200;
    const int IC = 128, OC = 96;
    float *x = rnd(N * IC), *W = rnd((size_t)OC * IC), *b = rnd(OC), *dy = rnd(N * OC);
    float *y32 = malloc(N * OC * sizeof(float)), *y16 = malloc(N * OC * sizeof(float));
    float *dx32 = calloc(N * IC, sizeof(float)), *dx16 = calloc(N * IC, sizeof(float));
    float *dW32 = calloc((size_t)OC * IC, sizeof(float)), *dW16 = calloc((size_t)OC * IC, sizeof(float));
    float *db32 = calloc(OC, sizeof(float)), *db16 = calloc(OC, sizeof(float));
    op_matmul_forward(y32, x, W, b, N, IC, OC);
    op_matmul_backward(dx32, dW32, db32, dy, x, W, N, IC, OC);
    CHECK_OK(dd2_gemm_bf16_enable(1, &st), &st);
    op_matmul_forward(y16, x, W, b, N, IC, OC);
    op_matmul_backward(dx16, dW16, db16, dy, x, W, N, IC, OC);
    dd2_gemm_bf16_enable(0, &st);
    struct { const float *a, *b; size_t n; double scale; const char *what; } cmp[] = {
        {y16, y32, N * OC, IC, "forward"}, {dx16, dx32, N * IC, OC, "input gradient"},
        {dW16, dW32, (size_t)OC * IC, (double)N, "weight gradient"}};
    for (int c = 0; c < 3; c++) {
        double e = 0;
        for (size_t i = 0; i < cmp[c].n; i++) e = fmax(e, fabs((double)cmp[c].a[i] - cmp[c].b[i]));
        /* inputs in [-1,1]: each product off by ≤ 2·2^-9, sums of `scale` terms with random signs */
        CHECK_MSG(e > 0 && e < 0.02 * sqrt(cmp[c].scale), "%s: max |bf16 - f32| %.3g", cmp[c].what, e);
    }
    CHECK(memcmp(db16, db32, OC * sizeof(float)) == 0); /* the bias sum stays f32 */
    free(x), free(W), free(b), free(dy), free(y32), free(y16), free(dx32), free(dx16);
    free(dW32), free(dW16), free(db32), free(db16);
}

TEST(enable_refused_without_amx) {
    dd2_status st;
    dd2_status_clear(&st);
    int rc = dd2_gemm_bf16_enable(1, &st);
    if (dd2_gemm_bf16_supported()) {
        CHECK(rc == DD2_OK && dd2_gemm_bf16_enabled());
    } else {
        CHECK(rc == DD2_ERR_INPUT && !dd2_gemm_bf16_enabled());
        CHECK_MSG(strstr(st.msg, "which the bf16 matmul needs") != NULL, "%s", st.msg);
    }
    dd2_gemm_bf16_enable(0, &st);
    CHECK(!dd2_gemm_bf16_enabled());
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    RUN(round_to_nearest_even);
    RUN(three_forms_vs_double);
    RUN(declined_cases_untouched);
    RUN(row_split_bitwise);
    RUN(matmul_ops_route);
    RUN(enable_refused_without_amx);
    return test_summary();
}
