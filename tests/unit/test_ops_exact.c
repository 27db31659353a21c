/* Forward values of the ops of model/ops.h against hand-computed cases and naive references:
 * GEMM vs loops, attention mask semantics, KV-cache decoding == full attention, RoPE tables,
 * cross-entropy, norms, activations, AdaLN pieces, embedding, losses. (Gradients: test_ops.c.) */
#include "gradcheck.h"

#define NEAR_ALL(got, want, n, tol, what)                                                          \
    do {                                                                                           \
        double e_ = 0;                                                                             \
        size_t at_ = 0;                                                                            \
        for (size_t i_ = 0; i_ < (size_t)(n); i_++)                                                \
            if (fabs((double)(got)[i_] - (double)(want)[i_]) > e_) {                               \
                e_ = fabs((double)(got)[i_] - (double)(want)[i_]);                                 \
                at_ = i_;                                                                          \
            }                                                                                      \
        CHECK_MSG(e_ <= (tol), "%s: max error %.3g at %zu (got %.9g want %.9g)", what, e_, at_,    \
                  (double)(got)[at_], (double)(want)[at_]);                                        \
    } while (0)

static double *rnd(size_t n, double lo, double hi) {
    double *x = malloc(n * sizeof(double));
    gc_fill(x, n, lo, hi);
    return x;
}
static float *to_f(const double *x, size_t n) {
    float *y = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

/* ---- matmul: BLAS vs loops, forward and backward, sizes that cover GEMM blocking ---- */
TEST(matmul_vs_naive) {
    size_t N = 37;
    int IC = 53, OC = 70;
    double *x = rnd(N * IC, -1, 1), *W = rnd((size_t)OC * IC, -1, 1), *b = rnd(OC, -1, 1);
    double *g = rnd(N * OC, -1, 1);
    float *xf = to_f(x, N * IC), *Wf = to_f(W, (size_t)OC * IC), *bf = to_f(b, OC);
    float *gf = to_f(g, N * OC);
    for (size_t i = 0; i < N * IC; i++) x[i] = xf[i];
    for (size_t i = 0; i < (size_t)OC * IC; i++) W[i] = Wf[i];
    for (int i = 0; i < OC; i++) b[i] = bf[i];
    for (size_t i = 0; i < N * OC; i++) g[i] = gf[i];
    double *o1 = malloc(N * OC * sizeof(double)), *o2 = malloc(N * OC * sizeof(double));
    float *of = malloc(N * OC * sizeof(float)), *onf = malloc(N * OC * sizeof(float));
    for (int bias = 0; bias < 2; bias++) {
        const double *bb = bias ? b : NULL;
        op_matmul_forward_f64(o1, x, W, bb, N, IC, OC);
        op_matmul_forward_naive_f64(o2, x, W, bb, N, IC, OC);
        NEAR_ALL(o1, o2, N * OC, 1e-13, "dgemm vs naive");
        op_matmul_forward(of, xf, Wf, bias ? bf : NULL, N, IC, OC);
        op_matmul_forward_naive(onf, xf, Wf, bias ? bf : NULL, N, IC, OC);
        NEAR_ALL(of, o2, N * OC, 2e-5, "sgemm vs double");
        NEAR_ALL(onf, o2, N * OC, 2e-6, "naive float vs double");
        /* a hand-checked element */
        double s = bias ? b[3] : 0;
        for (int i = 0; i < IC; i++) s += x[5 * IC + i] * W[3 * IC + i];
        CHECK_NEAR(o1[5 * OC + 3], s, 1e-12);
    }
    /* backward vs loops: dinp = g·W, dW = gᵀ·x, dbias = Σ g (accumulated onto 1s) */
    double *dx = malloc(N * IC * sizeof(double)), *dW = malloc((size_t)OC * IC * sizeof(double));
    double *db = malloc(OC * sizeof(double));
    float *dxf = malloc(N * IC * sizeof(float)), *dWf = malloc((size_t)OC * IC * sizeof(float));
    float *dbf = malloc(OC * sizeof(float));
    for (size_t i = 0; i < N * IC; i++) dx[i] = dxf[i] = 1;
    for (size_t i = 0; i < (size_t)OC * IC; i++) dW[i] = dWf[i] = 1;
    for (int i = 0; i < OC; i++) db[i] = dbf[i] = 1;
    op_matmul_backward(dxf, dWf, dbf, gf, xf, Wf, N, IC, OC);
    op_matmul_backward_f64(dx, dW, db, g, x, W, N, IC, OC);
    double *rx = calloc(N * IC, sizeof(double)), *rW = calloc((size_t)OC * IC, sizeof(double));
    double *rb = calloc(OC, sizeof(double));
    for (size_t n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double gv = g[n * OC + o];
            rb[o] += gv;
            for (int i = 0; i < IC; i++) {
                rx[n * IC + i] += gv * W[(size_t)o * IC + i];
                rW[(size_t)o * IC + i] += gv * x[n * IC + i];
            }
        }
    for (size_t i = 0; i < N * IC; i++) rx[i] += 1;
    for (size_t i = 0; i < (size_t)OC * IC; i++) rW[i] += 1;
    for (int i = 0; i < OC; i++) rb[i] += 1;
    NEAR_ALL(dx, rx, N * IC, 1e-12, "dinp f64");
    NEAR_ALL(dW, rW, (size_t)OC * IC, 1e-12, "dW f64");
    NEAR_ALL(db, rb, OC, 1e-12, "dbias f64");
    NEAR_ALL(dxf, rx, N * IC, 2e-5, "dinp f32");
    NEAR_ALL(dWf, rW, (size_t)OC * IC, 2e-5, "dW f32");
    NEAR_ALL(dbf, rb, OC, 2e-5, "dbias f32");
    free(x), free(W), free(b), free(g), free(xf), free(Wf), free(bf), free(gf);
    free(o1), free(o2), free(of), free(onf), free(dx), free(dW), free(db), free(dxf), free(dWf);
    free(dbf), free(rx), free(rW), free(rb);
}

/* ---- attention ---- */

/* Straightforward reference: loops per (b, h, p), double. */
static void attention_naive(double *out, const double *qkv, const int *step, int same_step, int B,
                            int T, int d, int H) {
    int hd = d / H;
    double sc = 1.0 / sqrt(hd), *w = malloc((size_t)T * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int p = 0; p < T; p++) {
                const double *q = qkv + ((size_t)b * T + p) * 3 * d + h * hd;
                double mx = -INFINITY, sum = 0;
                for (int k = 0; k < T; k++) {
                    int ok = step[k] < step[p] || (same_step && step[k] == step[p]);
                    const double *kk = qkv + ((size_t)b * T + k) * 3 * d + d + h * hd;
                    double s = 0;
                    for (int i = 0; i < hd; i++) s += q[i] * kk[i];
                    w[k] = ok ? s * sc : -INFINITY;
                    if (w[k] > mx) mx = w[k];
                }
                for (int k = 0; k < T; k++) {
                    w[k] = w[k] == -INFINITY ? 0 : exp(w[k] - mx);
                    sum += w[k];
                }
                double *o = out + ((size_t)b * T + p) * d + h * hd;
                for (int i = 0; i < hd; i++) {
                    double s = 0;
                    for (int k = 0; k < T; k++)
                        s += w[k] * qkv[((size_t)b * T + k) * 3 * d + 2 * d + h * hd + i];
                    o[i] = sum > 0 ? s / sum : 0;
                }
            }
    free(w);
}

/* q = 0: every allowed key has the same score, so out[p] = mean of the allowed v. */
TEST(attention_mask_hand) {
    enum { T = 4, d = 4, H = 2 };
    double qkv[T * 3 * d] = {0}, out[T * d], att[H * T * T], vals[T][d];
    for (int p = 0; p < T; p++)
        for (int i = 0; i < d; i++) qkv[p * 3 * d + 2 * d + i] = vals[p][i] = 10 * p + i + 1;
    static const int causal[T] = {0, 1, 2, 3}, block[T] = {0, 1, 1, 2};
    /* allowed[mask][p][q] */
    static const int allowed[3][T][T] = {
        {{1, 0, 0, 0}, {1, 1, 0, 0}, {1, 1, 1, 0}, {1, 1, 1, 1}}, /* causal */
        {{1, 0, 0, 0}, {1, 1, 1, 0}, {1, 1, 1, 0}, {1, 1, 1, 1}}, /* block, same_step */
        {{0, 0, 0, 0}, {1, 0, 0, 0}, {1, 0, 0, 0}, {1, 1, 1, 0}}, /* block, strict */
    };
    for (int m = 0; m < 3; m++) {
        op_attention_forward_f64(out, att, qkv, m == 0 ? causal : block, m < 2, 1, T, d, H);
        for (int p = 0; p < T; p++) {
            int cnt = 0;
            for (int q = 0; q < T; q++) cnt += allowed[m][p][q];
            for (int i = 0; i < d; i++) {
                double want = 0;
                for (int q = 0; q < T; q++)
                    if (allowed[m][p][q]) want += vals[q][i] / cnt;
                CHECK_MSG(fabs(out[p * d + i] - want) < 1e-12, "mask %d p %d i %d: %g vs %g", m,
                          p, i, out[p * d + i], want);
            }
            for (int h = 0; h < H; h++)
                for (int q = 0; q < T; q++) {
                    double want = allowed[m][p][q] ? 1.0 / cnt : 0;
                    CHECK_NEAR(att[(h * T + p) * T + q], want, 1e-15);
                }
        }
    }
    /* the 1/sqrt(hd) scale: T 2, one head of 2: q1 = (1,1), k0 = (1,0), k1 = (0,2) */
    double q2[2 * 6] = {1, 0, 1, 0, 1, 0, /**/ 1, 1, 0, 2, 0, 1}, o2[4], a2[4];
    static const int st[2] = {0, 1};
    op_attention_forward_f64(o2, a2, q2, st, 1, 1, 2, 2, 1);
    double s = 1 / sqrt(2.0), w0 = exp(1 * s) / (exp(1 * s) + exp(2 * s));
    CHECK_NEAR(o2[0], 1, 1e-15);
    CHECK_NEAR(o2[1], 0, 1e-15);
    CHECK_NEAR(o2[2], w0, 1e-15);
    CHECK_NEAR(o2[3], 1 - w0, 1e-15);
}

TEST(attention_vs_naive) {
    enum { B = 2, T = 40, d = 32, H = 4 };
    static int causal[T], blocks[T];
    for (int p = 0; p < T; p++) causal[p] = p, blocks[p] = p < 1 ? 0 : p < 5 ? 1 : p < 14 ? 2 : 3;
    size_t nq = (size_t)B * T * 3 * d, no = (size_t)B * T * d, na = (size_t)B * H * T * T;
    double *qkv = rnd(nq, -2, 2), *ref = malloc(no * sizeof(double));
    double *out = malloc(no * sizeof(double)), *att = malloc(na * sizeof(double));
    float *qf = to_f(qkv, nq), *of = malloc(no * sizeof(float)), *af = malloc(na * sizeof(float));
    for (size_t i = 0; i < nq; i++) qkv[i] = qf[i];
    for (int m = 0; m < 3; m++) {
        const int *step = m == 0 ? causal : blocks;
        int same = m < 2;
        attention_naive(ref, qkv, step, same, B, T, d, H);
        op_attention_forward_f64(out, att, qkv, step, same, B, T, d, H);
        NEAR_ALL(out, ref, no, 1e-13, "attention f64 vs naive");
        op_attention_forward(of, af, qf, step, same, B, T, d, H);
        NEAR_ALL(of, ref, no, 1e-5, "attention f32 vs naive");
    }
    /* backward at this size: f32 against f64 */
    double *g = rnd(no, -1, 1), *dq = calloc(nq, sizeof(double));
    double *scr = malloc(OP_ATTENTION_SCRATCH_BWD(T) * sizeof(double));
    float *gf = to_f(g, no), *dqf = calloc(nq, sizeof(float));
    float *scrf = malloc(OP_ATTENTION_SCRATCH_BWD(T) * sizeof(float));
    for (size_t i = 0; i < no; i++) g[i] = gf[i];
    op_attention_forward_f64(out, att, qkv, blocks, 1, B, T, d, H);
    op_attention_backward_f64(dq, scr, g, qkv, att, B, T, d, H);
    op_attention_forward(of, af, qf, blocks, 1, B, T, d, H);
    op_attention_backward(dqf, scrf, gf, qf, af, B, T, d, H);
    double mx = gc_maxabs(dq, nq);
    NEAR_ALL(dqf, dq, nq, 1e-5 * mx, "attention backward f32 vs f64");
    free(qkv), free(ref), free(out), free(att), free(qf), free(of), free(af), free(g), free(dq);
    free(scr), free(gf), free(dqf), free(scrf);
}

/* Decode [0, T) in calls of the given block sizes with the KV cache; compare to the full
 * forward. Both precisions. */
static void kv_case(const char *what, const int *step, int same_step, const int *blocks,
                    int nblocks) {
    enum { B = 2, T = 10, Tmax = 12, d = 8, H = 2 };
    size_t nq = (size_t)B * T * 3 * d, no = (size_t)B * T * d;
    double *qkv = rnd(nq, -2, 2);
    float *qf = to_f(qkv, nq);
    double *full = malloc(no * sizeof(double)), *att = malloc((size_t)B * H * T * T * 8);
    float *fullf = malloc(no * sizeof(float)), *attf = malloc((size_t)B * H * T * T * 4);
    op_attention_forward_f64(full, att, qkv, step, same_step, B, T, d, H);
    op_attention_forward(fullf, attf, qf, step, same_step, B, T, d, H);
    size_t nc = (size_t)B * Tmax * d;
    double *kc = calloc(nc, 8), *vc = calloc(nc, 8), *inc = calloc(no, 8);
    double *nq_ = malloc((size_t)B * T * 3 * d * 8), *no_ = malloc((size_t)B * T * d * 8);
    double *scr = malloc(OP_ATTENTION_SCRATCH_KV(T, Tmax) * 8);
    float *kcf = calloc(nc, 4), *vcf = calloc(nc, 4), *incf = calloc(no, 4);
    float *nqf = malloc((size_t)B * T * 3 * d * 4), *nof = malloc((size_t)B * T * d * 4);
    float *scrf = malloc(OP_ATTENTION_SCRATCH_KV(T, Tmax) * 4);
    int t0 = 0;
    for (int k = 0; k < nblocks; k++) {
        int m = blocks[k];
        for (int b = 0; b < B; b++) /* gather the new rows [B,m,3d] */
            for (int i = 0; i < m; i++)
                for (int j = 0; j < 3 * d; j++) {
                    size_t src = ((size_t)b * T + t0 + i) * 3 * d + j, dst = ((size_t)b * m + i) * 3 * d + j;
                    nq_[dst] = qkv[src];
                    nqf[dst] = qf[src];
                }
        op_attention_forward_kv_f64(no_, kc, vc, scr, nq_, step, same_step, t0, m, B, Tmax, d, H);
        op_attention_forward_kv(nof, kcf, vcf, scrf, nqf, step, same_step, t0, m, B, Tmax, d, H);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < d; j++) {
                    inc[((size_t)b * T + t0 + i) * d + j] = no_[((size_t)b * m + i) * d + j];
                    incf[((size_t)b * T + t0 + i) * d + j] = nof[((size_t)b * m + i) * d + j];
                }
        t0 += m;
    }
    CHECK(t0 == T);
    char msg[128];
    snprintf(msg, sizeof msg, "%s: incremental vs full (f64)", what);
    NEAR_ALL(inc, full, no, 1e-13, msg);
    snprintf(msg, sizeof msg, "%s: incremental vs full (f32)", what);
    NEAR_ALL(incf, fullf, no, 1e-6, msg);
    /* the caches hold k and v of every position, rows ≥ T untouched */
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < Tmax; p++)
            for (int j = 0; j < d; j++) {
                size_t c = ((size_t)b * Tmax + p) * d + j, r = ((size_t)b * T + p) * 3 * d + d + j;
                double wk = p < T ? qkv[r] : 0, wv = p < T ? qkv[r + d] : 0;
                bad += kc[c] != wk || vc[c] != wv || kcf[c] != (float)wk || vcf[c] != (float)wv;
            }
    CHECK_MSG(bad == 0, "%s: %d cache entries wrong", what, bad);
    free(qkv), free(qf), free(full), free(att), free(fullf), free(attf), free(kc), free(vc);
    free(inc), free(nq_), free(no_), free(scr), free(kcf), free(vcf), free(incf), free(nqf);
    free(nof), free(scrf);
}

TEST(kv_cache_equals_full) {
    static const int causal[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    static const int ones[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    static const int chunks[3] = {3, 5, 2};
    static const int scales[10] = {0, 1, 1, 2, 2, 2, 2, 3, 3, 3}; /* VAR-like: 1, 2, 4, 3 */
    static const int sblocks[4] = {1, 2, 4, 3};
    kv_case("causal, token by token", causal, 1, ones, 10);
    kv_case("causal, in chunks", causal, 1, chunks, 3);
    kv_case("block-causal, scale by scale", scales, 1, sblocks, 4);
    kv_case("block-causal strict, scale by scale", scales, 0, sblocks, 4);
}

/* ---- RoPE ---- */
TEST(rope_tables_hand) {
    enum { hd = 8, gh = 2, gw = 3, T = 7, half = hd / 2 };
    double c[T * half], s[T * half];
    for (int i = 0; i < T * half; i++) c[i] = s[i] = 99;
    op_rope_tables_2d_f64(c, s, T, hd, gh, gw);
    /* freq_0 = 1, freq_1 = 10000^(-2/4) = 0.01; pairs 0,1 use the row, pairs 2,3 the column */
    for (int j = 0; j < half; j++) {
        CHECK(c[j] == 0 && s[j] == 0); /* class token */
    }
    static const double freq[2] = {1, 0.01};
    for (int p = 1; p < T; p++) {
        int row = (p - 1) / gw, col = (p - 1) % gw;
        for (int j = 0; j < half; j++) {
            double ang = (j < 2 ? row : col) * freq[j % 2];
            CHECK_NEAR(c[p * half + j], cos(ang), 1e-15);
            CHECK_NEAR(s[p * half + j], sin(ang), 1e-15);
        }
    }
    /* position 5 = cell 4 = (row 1, col 1): angles 1, 0.01, 1, 0.01 */
    CHECK_NEAR(s[5 * half + 0], sin(1.0), 1e-15);
    CHECK_NEAR(s[5 * half + 1], sin(0.01), 1e-15);
    CHECK_NEAR(s[5 * half + 2], sin(1.0), 1e-15);
    /* position 3 = cell 2 = (row 0, col 2): angles 0, 0, 2, 0.02 */
    CHECK(c[3 * half + 0] == 1 && s[3 * half + 1] == 0);
    CHECK_NEAR(c[3 * half + 2], cos(2.0), 1e-15);
    CHECK_NEAR(s[3 * half + 3], sin(0.02), 1e-15);
    /* float tables = rounded double tables */
    float cf[T * half], sf[T * half];
    op_rope_tables_2d(cf, sf, T, hd, gh, gw);
    for (int i = 0; i < T * half; i++) CHECK(cf[i] == (float)c[i] && sf[i] == (float)s[i]);
    /* 1D: hd 4, position 0 (class token) zero, pair j at p >= 1 turns by (p-1)·10000^(-2j/4) */
    double c1[4 * 2], s1[4 * 2];
    op_rope_tables_1d_f64(c1, s1, 4, 4);
    CHECK(c1[0] == 0 && s1[0] == 0 && c1[1] == 0 && s1[1] == 0);
    CHECK(c1[2] == 1 && s1[2] == 0 && c1[3] == 1 && s1[3] == 0);
    CHECK_NEAR(c1[3 * 2 + 0], cos(2.0), 1e-15);
    CHECK_NEAR(s1[3 * 2 + 1], sin(0.02), 1e-15);
}

TEST(rope_apply) {
    /* one head of 4 at T = 2 (1D tables, rows 1 and 2): position 1 angle 0, position 2: pair 0
     * turns by 1, pair 1 by 0.01 */
    double cs3[6], sn3[6];
    op_rope_tables_1d_f64(cs3, sn3, 3, 4);
    const double *cs = cs3 + 2, *sn = sn3 + 2;
    double x[8] = {5, 6, 7, 8, 1, 2, 3, 4}, y[8];
    op_rope_forward_f64(y, x, cs, sn, 1, 2, 1, 4, 4);
    for (int i = 0; i < 4; i++) CHECK(y[i] == x[i]); /* position 1: angle 0 */
    CHECK_NEAR(y[4], cos(1.0) - 2 * sin(1.0), 1e-15);
    CHECK_NEAR(y[5], sin(1.0) + 2 * cos(1.0), 1e-15);
    CHECK_NEAR(y[6], 3 * cos(0.01) - 4 * sin(0.01), 1e-15);
    CHECK_NEAR(y[7], 3 * sin(0.01) + 4 * cos(0.01), 1e-15);

    /* fused qkv [B,T,3d] with 2D tables: in place == out of place, v untouched, backward inverts
     * (except the class token, which the tables zero), backward in place */
    enum { B = 2, gh = 2, gw = 2, T = 5, H = 2, hd = 4, d = H * hd };
    size_t n = (size_t)B * T * 3 * d;
    double c2[T * hd / 2], s2[T * hd / 2];
    op_rope_tables_2d_f64(c2, s2, T, hd, gh, gw);
    double *q = rnd(n, -1, 1), *a = malloc(n * 8), *ip = malloc(n * 8), *back = malloc(n * 8);
    memcpy(a, q, n * 8);
    memcpy(ip, q, n * 8);
    for (int part = 0; part < 2; part++) {
        op_rope_forward_f64(a + part * d, q + part * d, c2, s2, B, T, H, hd, 3 * d);
        op_rope_forward_f64(ip + part * d, ip + part * d, c2, s2, B, T, H, hd, 3 * d);
    }
    CHECK(memcmp(a, ip, n * 8) == 0);
    memcpy(back, ip, n * 8);
    for (int part = 0; part < 2; part++)
        op_rope_backward_f64(back + part * d, back + part * d, c2, s2, B, T, H, hd, 3 * d);
    int bad_v = 0, bad_inv = 0, bad_cls = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int j = 0; j < 3 * d; j++) {
                size_t i = ((size_t)b * T + t) * 3 * d + j;
                if (j >= 2 * d) bad_v += a[i] != q[i] || back[i] != q[i];
                else if (t == 0) bad_cls += a[i] != 0 || back[i] != 0;
                else bad_inv += fabs(back[i] - q[i]) > 1e-15;
            }
    CHECK_MSG(bad_v == 0, "%d v entries touched", bad_v);
    CHECK_MSG(bad_cls == 0, "%d class-token entries not zero", bad_cls);
    CHECK_MSG(bad_inv == 0, "%d entries not restored by the backward rotation", bad_inv);
    /* backward writes with `=`: a garbage-filled dinp is overwritten */
    double *dq = malloc(n * 8);
    for (size_t i = 0; i < n; i++) dq[i] = 1e6;
    op_rope_backward_f64(dq, a, c2, s2, B, T, H, hd, 3 * d);
    CHECK(fabs(dq[3 * d + 1]) < 10); /* row t = 1 of batch 0, q part */
    free(q), free(a), free(ip), free(back), free(dq);
}

/* ---- losses ---- */
TEST(crossentropy_hand) {
    double logits[2 * 3] = {1, 2, 3, 1000, 1001, 0}, probs[6], loss[2], dl[6] = {0};
    int tgt[2] = {2, 0};
    op_crossentropy_forward_f64(loss, probs, logits, tgt, 2, 3);
    CHECK_NEAR(loss[0], 0.4076059644443804, 1e-15); /* log(1 + e⁻¹ + e⁻²) */
    CHECK_NEAR(loss[1], 1.3132616875182228, 1e-12); /* log(1 + e), no overflow */
    double z = 1 + exp(-1.0) + exp(-2.0);
    CHECK_NEAR(probs[0], exp(-2.0) / z, 1e-15);
    CHECK_NEAR(probs[2], 1 / z, 1e-15);
    CHECK(probs[5] == 0 || probs[5] < 1e-300);
    double dloss[2] = {0.5, 2};
    op_crossentropy_backward_f64(dl, dloss, probs, tgt, 2, 3);
    CHECK_NEAR(dl[2], 0.5 * (1 / z - 1), 1e-15);
    CHECK_NEAR(dl[1], 0.5 * exp(-1.0) / z, 1e-15);
    CHECK_NEAR(dl[3], 2 * (1 / (1 + exp(1.0)) - 1), 1e-12);
    /* float: same, and probs may alias logits; an ignored row has loss 0 and no gradient */
    float lf[6] = {1, 2, 3, 1000, 1001, 0}, lossf[2], dlf[6] = {0};
    int tg2[2] = {2, -1};
    float dloss2[2] = {1, 1};
    op_crossentropy_forward(lossf, lf, lf, tg2, 2, 3);
    CHECK_NEAR(lossf[0], 0.4076059644443804, 1e-6);
    CHECK(lossf[1] == 0);
    CHECK_NEAR(lf[2], 1 / z, 1e-7);
    op_crossentropy_backward(dlf, dloss2, lf, tg2, 2, 3);
    CHECK(dlf[3] == 0 && dlf[4] == 0 && dlf[5] == 0);
    CHECK_NEAR(dlf[2], 1 / z - 1, 1e-7);
}

TEST(softmax_mse_hand) {
    double x[3] = {0, log(2.0), -INFINITY}, y[3];
    op_softmax_forward_f64(y, x, 1, 3);
    CHECK_NEAR(y[0], 1.0 / 3, 1e-15);
    CHECK_NEAR(y[1], 2.0 / 3, 1e-15);
    CHECK(y[2] == 0);
    float big[2] = {1e4f, 1e4f - 1}, yb[2];
    op_softmax_forward(yb, big, 1, 2);
    CHECK_NEAR(yb[0], 1 / (1 + exp(-1.0)), 1e-7);
    /* Σ_i w_i ‖a_i − b_i‖² / norm: a = [[1,2],[3,4]], b = 0, w = [1,2], norm 4 → 55/4 */
    double a[4] = {1, 2, 3, 4}, b[4] = {0}, w[2] = {1, 2}, loss, da[4] = {0}, db[4] = {0};
    op_mse_forward_f64(&loss, a, b, w, 2, 2, 4);
    CHECK_NEAR(loss, 13.75, 1e-15);
    op_mse_forward_f64(&loss, a, b, NULL, 2, 2, 4);
    CHECK_NEAR(loss, 7.5, 1e-15);
    op_mse_backward_f64(da, db, 2.0, a, b, w, 2, 2, 4);
    CHECK_NEAR(da[3], 2.0 * 2 * 2 * 4 / 4, 1e-15);
    CHECK_NEAR(db[3], -8, 1e-15);
}

/* ---- norms, activations ---- */
TEST(norms_hand) {
    double x[4] = {3, 4, 1, 1}, w[2] = {1, 2}, y[4], r[2];
    op_rmsnorm_forward_f64(y, r, x, w, 1e-5, 2, 2);
    double rs = 1 / sqrt(12.5 + 1e-5);
    CHECK_NEAR(r[0], rs, 1e-15);
    CHECK_NEAR(y[0], 3 * rs, 1e-15);
    CHECK_NEAR(y[1], 8 * rs, 1e-15);
    CHECK_NEAR(y[3], 2 / sqrt(1 + 1e-5), 1e-15);
    double z[4] = {1, 2, 3, 4}, o[4], m, rr, lw[4] = {1, -1, 2, 0}, lb[4] = {0, 0, 0, 5};
    op_layernorm_forward_f64(o, &m, &rr, z, NULL, NULL, 1e-6, 1, 4);
    double sd = 1 / sqrt(1.25 + 1e-6);
    CHECK_NEAR(m, 2.5, 1e-15);
    CHECK_NEAR(rr, sd, 1e-15);
    for (int i = 0; i < 4; i++) CHECK_NEAR(o[i], (z[i] - 2.5) * sd, 1e-15);
    op_layernorm_forward_f64(o, &m, &rr, z, lw, lb, 1e-6, 1, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(o[i], (z[i] - 2.5) * sd * lw[i] + lb[i], 1e-15);
    float zf[4] = {1, 2, 3, 4}, of[4], mf, rf;
    op_layernorm_forward(of, &mf, &rf, zf, NULL, NULL, 1e-6f, 1, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(of[i], (z[i] - 2.5) * sd, 1e-6);
}

TEST(activations_hand) {
    double x[3] = {1, -2, -0.5}, y[3];
    op_silu_forward_f64(y, x, 3);
    CHECK_NEAR(y[0], 0.7310585786300049, 1e-15);
    CHECK_NEAR(y[1], -0.2384058440442351, 1e-15);
    op_gelu_forward_f64(y, x, 3);
    CHECK_NEAR(y[0], 0.8411919906082768, 1e-15);
    CHECK_NEAR(y[2], -0.15428599017485606, 1e-15);
    float big[2] = {-100, 100}, yb[2], db[2] = {0}, g[2] = {1, 1};
    op_silu_forward(yb, big, 2);
    op_silu_backward(db, g, big, 2);
    CHECK(yb[0] == 0 && yb[1] == 100 && db[0] == 0 && db[1] == 1); /* no NaN at the tails */
    /* swiglu on halves: row [a0 a1 | b0 b1] */
    double h[4] = {1, -2, 3, 0.5}, o[2];
    op_swiglu_forward_f64(o, h, h + 2, 1, 2, 4);
    CHECK_NEAR(o[0], 0.7310585786300049 * 3, 1e-15);
    CHECK_NEAR(o[1], -0.2384058440442351 * 0.5, 1e-15);
}

/* ---- AdaLN pieces, timestep embedding ---- */
TEST(adaln_hand) {
    /* P 4, W 2, group 2: ada rows [shift(2) scale(2) gate(2)] for rows {0,1} and {2,3} */
    double x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, ada[12] = {1, 0, 0, 1, 2, 3, /**/ 0, 0, -1, 0.5, 1, 1};
    double hh[8] = {1, 1, 1, 1, 2, 2, 2, 2}, out[8];
    op_modulate_forward_f64(out, x, ada, ada + 2, 4, 2, 6, 2);
    static const double want[8] = {2, 4, 4, 8, 0, 9, 0, 12};
    NEAR_ALL(out, want, 8, 1e-15, "modulate");
    op_gated_residual_forward_f64(out, x, ada + 4, hh, 4, 2, 6, 2);
    static const double want2[8] = {3, 5, 5, 7, 7, 8, 9, 10};
    NEAR_ALL(out, want2, 8, 1e-15, "gated residual");
    /* in place (out = x) is allowed for both */
    op_gated_residual_forward_f64(x, x, ada + 4, hh, 4, 2, 6, 2);
    NEAR_ALL(x, want2, 8, 1e-15, "gated residual in place");
}

TEST(timestep_embedding_hand) {
    /* dim 4: half 2, freqs exp(-ln(1e4)·k/2) = 1, 0.01; t 0.5·1000 → args 500, 5 */
    double t[2] = {0.5, 0}, y[2 * 5];
    op_timestep_embedding_forward_f64(y, t, 1000, 1, 4);
    CHECK_NEAR(y[0], cos(500.0), 1e-12);
    CHECK_NEAR(y[1], cos(5.0), 1e-14);
    CHECK_NEAR(y[2], sin(500.0), 1e-12);
    CHECK_NEAR(y[3], sin(5.0), 1e-14);
    for (int i = 0; i < 10; i++) y[i] = 7;
    op_timestep_embedding_forward_f64(y, t, 1000, 2, 5); /* odd dim: zero last column */
    CHECK(y[4] == 0 && y[9] == 0 && y[5] == 1 && y[6] == 1 && y[7] == 0);
    float tf = 0.5f, yf[4];
    op_timestep_embedding_forward(yf, &tf, 1000, 1, 4);
    CHECK_NEAR(yf[0], cos(500.0), 1e-7);
    CHECK_NEAR(yf[2], sin(500.0), 1e-7);
}

/* ---- embedding, copy2d ---- */
TEST(gather_copy_hand) {
    double table[3 * 2] = {1, 2, 3, 4, 5, 6}, out[3 * 3], dt[6] = {0};
    for (int i = 0; i < 9; i++) out[i] = -1;
    int idx[3] = {2, 0, 2};
    op_embedding_forward_f64(out, idx, table, 3, 2, 3);
    static const double want[9] = {5, 6, -1, 1, 2, -1, 5, 6, -1};
    NEAR_ALL(out, want, 9, 0, "embedding gather (stride 3)");
    double g[9] = {1, 1, 9, 2, 2, 9, 3, 3, 9};
    op_embedding_backward_f64(dt, g, idx, 3, 2, 3);
    static const double wantd[6] = {2, 2, 0, 0, 4, 4};
    NEAR_ALL(dt, wantd, 6, 0, "embedding scatter-add");
    float src[6] = {1, 2, 3, 4, 5, 6}, dst[8], dsrc[6] = {0};
    for (int i = 0; i < 8; i++) dst[i] = -1;
    op_copy2d_forward(dst, src, 2, 2, 4, 3);
    static const float wantc[8] = {1, 2, -1, -1, 4, 5, -1, -1};
    NEAR_ALL(dst, wantc, 8, 0, "copy2d");
    op_copy2d_backward(dsrc, dst, 2, 2, 4, 3);
    static const float wantcb[6] = {1, 2, 0, 4, 5, 0};
    NEAR_ALL(dsrc, wantcb, 6, 0, "copy2d backward");
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    gc_seed(777);
    RUN(matmul_vs_naive);
    RUN(attention_mask_hand);
    RUN(attention_vs_naive);
    RUN(kv_cache_equals_full);
    RUN(rope_tables_hand);
    RUN(rope_apply);
    RUN(crossentropy_hand);
    RUN(softmax_mse_hand);
    RUN(norms_hand);
    RUN(activations_hand);
    RUN(adaln_hand);
    RUN(timestep_embedding_hand);
    RUN(gather_copy_hand);
    return test_summary();
}
