/* Gradient checks for every op of model/ops.h (tests/unit/gradcheck.h does the work): central
 * finite differences in double precision for every differentiable input and parameter, the
 * `+=` accumulation rule, NULL gradients, and the float ops against their double twins.
 * Forward values against hand-computed and naive references: test_ops_exact.c. */
#include "gradcheck.h"

/* ---- matmul: out = x·Wᵀ + b ---- */
enum { MM_X, MM_W, MM_B, MM_OUT, MM_DOUT, MM_DX, MM_DW, MM_DB };
#define MM_F(S, T) op_matmul_forward##S(T[MM_OUT], T[MM_X], T[MM_W], c->p[3] ? T[MM_B] : NULL, \
                                        c->p[0], c->p[1], c->p[2])
#define MM_B_(S, T) op_matmul_backward##S(GC_G(T, MM_DX), GC_G(T, MM_DW),                      \
                                          c->p[3] ? GC_G(T, MM_DB) : NULL, T[MM_DOUT], T[MM_X],   \
                                          T[MM_W], c->p[0], c->p[1], c->p[2])
static void mm_fwd(gc_case *c) { GC_DUAL(c, MM_F); }
static void mm_bwd(gc_case *c) { GC_DUAL(c, MM_B_); }

static void matmul_case(int bias) {
    gc_case c;
    gc_init(&c, bias ? "matmul" : "matmul(nobias)");
    int N = 5, IC = 4, OC = 3;
    c.p[0] = N, c.p[1] = IC, c.p[2] = OC, c.p[3] = bias;
    gc_add(&c, MM_X, "dinp", (size_t)N * IC, GC_IN);
    gc_add(&c, MM_W, "dW", (size_t)OC * IC, GC_IN);
    gc_add(&c, MM_B, "dbias", OC, bias ? GC_IN : GC_CONST);
    gc_add(&c, MM_OUT, "out", (size_t)N * OC, GC_OUT);
    gc_add(&c, MM_DOUT, "dout", (size_t)N * OC, GC_DOUT);
    gc_add_grad(&c, MM_DX, "dinp", MM_X);
    gc_add_grad(&c, MM_DW, "dW", MM_W);
    if (bias) gc_add_grad(&c, MM_DB, "dbias", MM_B);
    c.fwd = mm_fwd, c.bwd = mm_bwd;
    gc_run(&c);
}
TEST(matmul) {
    matmul_case(1);
    matmul_case(0);
}

/* ---- add ---- */
enum { AD_A, AD_B, AD_OUT, AD_DOUT, AD_DA, AD_DB };
#define AD_F(S, T) op_add_forward##S(T[AD_OUT], T[AD_A], T[AD_B], c->n[AD_A])
#define AD_B_(S, T) op_add_backward##S(GC_G(T, AD_DA), GC_G(T, AD_DB), T[AD_DOUT], c->n[AD_A])
static void ad_fwd(gc_case *c) { GC_DUAL(c, AD_F); }
static void ad_bwd(gc_case *c) { GC_DUAL(c, AD_B_); }
TEST(add) {
    gc_case c;
    gc_init(&c, "add");
    gc_add(&c, AD_A, "a", 7, GC_IN);
    gc_add(&c, AD_B, "b", 7, GC_IN);
    gc_add(&c, AD_OUT, "out", 7, GC_OUT);
    gc_add(&c, AD_DOUT, "dout", 7, GC_DOUT);
    gc_add_grad(&c, AD_DA, "da", AD_A);
    gc_add_grad(&c, AD_DB, "db", AD_B);
    c.fwd = ad_fwd, c.bwd = ad_bwd;
    gc_run(&c);
}

/* ---- copy2d: rows 3, cols 4, dst stride 6, src stride 5 ---- */
enum { CP_SRC, CP_OUT, CP_DOUT, CP_DSRC };
#define CP_F(S, T) op_copy2d_forward##S(T[CP_OUT], T[CP_SRC], 3, 4, 6, 5)
#define CP_B_(S, T) op_copy2d_backward##S(GC_G(T, CP_DSRC), T[CP_DOUT], 3, 4, 6, 5)
static void cp_fwd(gc_case *c) { GC_DUAL(c, CP_F); }
static void cp_bwd(gc_case *c) { GC_DUAL(c, CP_B_); }
TEST(copy2d) {
    gc_case c;
    gc_init(&c, "copy2d");
    gc_add(&c, CP_SRC, "src", 15, GC_IN);
    gc_add(&c, CP_OUT, "dst", 18, GC_OUT);
    gc_add(&c, CP_DOUT, "ddst", 18, GC_DOUT);
    gc_add_grad(&c, CP_DSRC, "dsrc", CP_SRC);
    c.fwd = cp_fwd, c.bwd = cp_bwd;
    gc_run(&c);
}

/* ---- RMSNorm ---- */
enum { RM_X, RM_W, RM_OUT, RM_RSTD, RM_DOUT, RM_DX, RM_DW };
#define RM_F(S, T) op_rmsnorm_forward##S(T[RM_OUT], T[RM_RSTD], T[RM_X], T[RM_W], 1e-5, c->p[0], \
                                         c->p[1])
#define RM_B_(S, T) op_rmsnorm_backward##S(GC_G(T, RM_DX), GC_G(T, RM_DW), T[RM_DOUT], T[RM_X], \
                                           T[RM_W], T[RM_RSTD], c->p[0], c->p[1])
static void rm_fwd(gc_case *c) { GC_DUAL(c, RM_F); }
static void rm_bwd(gc_case *c) { GC_DUAL(c, RM_B_); }
TEST(rmsnorm) {
    gc_case c;
    gc_init(&c, "rmsnorm");
    int N = 4, C = 6;
    c.p[0] = N, c.p[1] = C;
    gc_add(&c, RM_X, "dinp", (size_t)N * C, GC_IN);
    gc_add(&c, RM_W, "dw", C, GC_IN);
    gc_add(&c, RM_OUT, "out", (size_t)N * C, GC_OUT);
    gc_add(&c, RM_RSTD, "rstd", N, GC_CACHE);
    gc_add(&c, RM_DOUT, "dout", (size_t)N * C, GC_DOUT);
    gc_add_grad(&c, RM_DX, "dinp", RM_X);
    gc_add_grad(&c, RM_DW, "dw", RM_W);
    c.fwd = rm_fwd, c.bwd = rm_bwd;
    gc_run(&c);
}

/* ---- LayerNorm, with affine (w, b) and without (NULL) ---- */
enum { LN_X, LN_W, LN_B, LN_OUT, LN_MEAN, LN_RSTD, LN_DOUT, LN_DX, LN_DW, LN_DB };
#define LN_F(S, T) op_layernorm_forward##S(T[LN_OUT], T[LN_MEAN], T[LN_RSTD], T[LN_X],            \
                                           c->p[2] ? T[LN_W] : NULL, c->p[2] ? T[LN_B] : NULL,    \
                                           1e-6, c->p[0], c->p[1])
#define LN_B_(S, T)                                                                                \
    op_layernorm_backward##S(GC_G(T, LN_DX), c->p[2] ? GC_G(T, LN_DW) : NULL,                     \
                             c->p[2] ? GC_G(T, LN_DB) : NULL, T[LN_DOUT], T[LN_X],                 \
                             c->p[2] ? T[LN_W] : NULL, T[LN_MEAN], T[LN_RSTD], c->p[0], c->p[1])
static void ln_fwd(gc_case *c) { GC_DUAL(c, LN_F); }
static void ln_bwd(gc_case *c) { GC_DUAL(c, LN_B_); }
static void layernorm_case(int affine) {
    gc_case c;
    gc_init(&c, affine ? "layernorm" : "layernorm(noaffine)");
    int N = 4, C = 6;
    c.p[0] = N, c.p[1] = C, c.p[2] = affine;
    int r = affine ? GC_IN : GC_CONST;
    gc_add(&c, LN_X, "dinp", (size_t)N * C, GC_IN);
    gc_add(&c, LN_W, "dw", C, r);
    gc_add(&c, LN_B, "db", C, r);
    gc_add(&c, LN_OUT, "out", (size_t)N * C, GC_OUT);
    gc_add(&c, LN_MEAN, "mean", N, GC_CACHE);
    gc_add(&c, LN_RSTD, "rstd", N, GC_CACHE);
    gc_add(&c, LN_DOUT, "dout", (size_t)N * C, GC_DOUT);
    gc_add_grad(&c, LN_DX, "dinp", LN_X);
    if (affine) {
        gc_add_grad(&c, LN_DW, "dw", LN_W);
        gc_add_grad(&c, LN_DB, "db", LN_B);
    }
    c.fwd = ln_fwd, c.bwd = ln_bwd;
    gc_run(&c);
}
TEST(layernorm) {
    layernorm_case(1);
    layernorm_case(0);
}

/* ---- SiLU, GELU (element-wise, inputs in [-4, 4]) ---- */
enum { EW_X, EW_OUT, EW_DOUT, EW_DX };
#define SI_F(S, T) op_silu_forward##S(T[EW_OUT], T[EW_X], c->n[EW_X])
#define SI_B_(S, T) op_silu_backward##S(GC_G(T, EW_DX), T[EW_DOUT], T[EW_X], c->n[EW_X])
#define GE_F(S, T) op_gelu_forward##S(T[EW_OUT], T[EW_X], c->n[EW_X])
#define GE_B_(S, T) op_gelu_backward##S(GC_G(T, EW_DX), T[EW_DOUT], T[EW_X], c->n[EW_X])
static void si_fwd(gc_case *c) { GC_DUAL(c, SI_F); }
static void si_bwd(gc_case *c) { GC_DUAL(c, SI_B_); }
static void ge_fwd(gc_case *c) { GC_DUAL(c, GE_F); }
static void ge_bwd(gc_case *c) { GC_DUAL(c, GE_B_); }
static void elementwise_case(const char *op, void (*fwd)(gc_case *), void (*bwd)(gc_case *)) {
    gc_case c;
    gc_init(&c, op);
    gc_add(&c, EW_X, "dinp", 24, GC_IN);
    gc_fill(c.d[EW_X], 24, -4, 4);
    gc_add(&c, EW_OUT, "out", 24, GC_OUT);
    gc_add(&c, EW_DOUT, "dout", 24, GC_DOUT);
    gc_add_grad(&c, EW_DX, "dinp", EW_X);
    c.fwd = fwd, c.bwd = bwd;
    gc_run(&c);
}
TEST(silu) { elementwise_case("silu", si_fwd, si_bwd); }
TEST(gelu) { elementwise_case("gelu", ge_fwd, ge_bwd); }

/* ---- SwiGLU on the halves of one [N,2F] array, and on separate [N,F] arrays ---- */
enum { SH_H, SH_OUT, SH_DOUT, SH_DH };
#define SH_F(S, T) op_swiglu_forward##S(T[SH_OUT], T[SH_H], T[SH_H] + c->p[1], c->p[0], c->p[1], \
                                        2 * (size_t)c->p[1])
#define SH_B_(S, T)                                                                                \
    op_swiglu_backward##S(GC_G(T, SH_DH), c->nullg[SH_DH] ? NULL : T[SH_DH] + c->p[1], T[SH_DOUT], \
                          T[SH_H], T[SH_H] + c->p[1], c->p[0], c->p[1], 2 * (size_t)c->p[1])
static void sh_fwd(gc_case *c) { GC_DUAL(c, SH_F); }
static void sh_bwd(gc_case *c) { GC_DUAL(c, SH_B_); }
enum { SS_A, SS_B, SS_OUT, SS_DOUT, SS_DA, SS_DB };
#define SS_F(S, T) op_swiglu_forward##S(T[SS_OUT], T[SS_A], T[SS_B], c->p[0], c->p[1], c->p[1])
#define SS_B_(S, T) op_swiglu_backward##S(GC_G(T, SS_DA), GC_G(T, SS_DB), T[SS_DOUT], T[SS_A], \
                                          T[SS_B], c->p[0], c->p[1], c->p[1])
static void ss_fwd(gc_case *c) { GC_DUAL(c, SS_F); }
static void ss_bwd(gc_case *c) { GC_DUAL(c, SS_B_); }
TEST(swiglu) {
    int N = 3, F = 4;
    gc_case c;
    gc_init(&c, "swiglu(halves)");
    c.p[0] = N, c.p[1] = F;
    gc_add(&c, SH_H, "dh", (size_t)N * 2 * F, GC_IN);
    gc_fill(c.d[SH_H], (size_t)N * 2 * F, -3, 3);
    gc_add(&c, SH_OUT, "out", (size_t)N * F, GC_OUT);
    gc_add(&c, SH_DOUT, "dout", (size_t)N * F, GC_DOUT);
    gc_add_grad(&c, SH_DH, "dh", SH_H);
    c.fwd = sh_fwd, c.bwd = sh_bwd;
    gc_run(&c);

    gc_init(&c, "swiglu(separate)");
    c.p[0] = N, c.p[1] = F;
    gc_add(&c, SS_A, "da", (size_t)N * F, GC_IN);
    gc_fill(c.d[SS_A], (size_t)N * F, -3, 3);
    gc_add(&c, SS_B, "db", (size_t)N * F, GC_IN);
    gc_add(&c, SS_OUT, "out", (size_t)N * F, GC_OUT);
    gc_add(&c, SS_DOUT, "dout", (size_t)N * F, GC_DOUT);
    gc_add_grad(&c, SS_DA, "da", SS_A);
    gc_add_grad(&c, SS_DB, "db", SS_B);
    c.fwd = ss_fwd, c.bwd = ss_bwd;
    gc_run(&c);
}

/* ---- RoPE on q and k inside a fused qkv [B,T,3d] (two calls, row stride 3d) ---- */
enum { RP_X, RP_COS, RP_SIN, RP_OUT, RP_DOUT, RP_DX };
/* p: B, T, H, hd */
#define RP_F(S, T)                                                                                 \
    do {                                                                                           \
        size_t d_ = (size_t)c->p[2] * c->p[3];                                                     \
        for (int part = 0; part < 2; part++)                                                       \
            op_rope_forward##S(T[RP_OUT] + part * d_, T[RP_X] + part * d_, T[RP_COS], T[RP_SIN],  \
                               c->p[0], c->p[1], c->p[2], c->p[3], 3 * d_);                        \
    } while (0)
#define RP_B_(S, T)                                                                                \
    do {                                                                                           \
        size_t d_ = (size_t)c->p[2] * c->p[3];                                                     \
        for (int part = 0; part < 2; part++)                                                       \
            op_rope_backward##S(c->nullg[RP_DX] ? NULL : T[RP_DX] + part * d_,                     \
                                T[RP_DOUT] + part * d_, T[RP_COS], T[RP_SIN], c->p[0], c->p[1],    \
                                c->p[2], c->p[3], 3 * d_);                                         \
    } while (0)
static void rp_fwd(gc_case *c) { GC_DUAL(c, RP_F); }
static void rp_bwd(gc_case *c) { GC_DUAL(c, RP_B_); }
static void rope_case(int two_d) {
    int B = 2, gh = 2, gw = 3, T = gh * gw + 1, H = 2, hd = 8, d = H * hd;
    gc_case c;
    gc_init(&c, two_d ? "rope2d(qkv)" : "rope1d(qkv)");
    c.p[0] = B, c.p[1] = T, c.p[2] = H, c.p[3] = hd;
    c.assign = 1;
    size_t n = (size_t)B * T * 3 * d;
    gc_add(&c, RP_X, "dinp", n, GC_IN);
    gc_add(&c, RP_COS, "cos", (size_t)T * hd / 2, GC_CONST);
    gc_add(&c, RP_SIN, "sin", (size_t)T * hd / 2, GC_CONST);
    if (two_d)
        op_rope_tables_2d_f64(c.d[RP_COS], c.d[RP_SIN], T, hd, gh, gw);
    else
        op_rope_tables_1d_f64(c.d[RP_COS], c.d[RP_SIN], T, hd);
    gc_add(&c, RP_OUT, "out", n, GC_OUT);
    gc_add(&c, RP_DOUT, "dout", n, GC_DOUT);
    gc_add_grad(&c, RP_DX, "dinp", RP_X);
    c.fwd = rp_fwd, c.bwd = rp_bwd;
    gc_run(&c);
}
TEST(rope) {
    rope_case(1);
    rope_case(0);
}

/* ---- attention (p: B, T, d, H, same_step; iv = step ids) ---- */
enum { AT_QKV, AT_OUT, AT_ATT, AT_SCR, AT_DOUT, AT_DQKV };
#define AT_F(S, T) op_attention_forward##S(T[AT_OUT], T[AT_ATT], T[AT_QKV], c->iv, c->p[4],       \
                                           c->p[0], c->p[1], c->p[2], c->p[3])
#define AT_B_(S, T) op_attention_backward##S(GC_G(T, AT_DQKV), T[AT_SCR], T[AT_DOUT], T[AT_QKV],  \
                                             T[AT_ATT], c->p[0], c->p[1], c->p[2], c->p[3])
static void at_fwd(gc_case *c) { GC_DUAL(c, AT_F); }
static void at_bwd(gc_case *c) { GC_DUAL(c, AT_B_); }
static void attention_case(const char *op, const int *step, int T, int same_step) {
    int B = 2, H = 2, d = 8;
    gc_case c;
    gc_init(&c, op);
    c.p[0] = B, c.p[1] = T, c.p[2] = d, c.p[3] = H, c.p[4] = same_step;
    c.iv = malloc((size_t)T * sizeof(int));
    memcpy(c.iv, step, (size_t)T * sizeof(int));
    gc_add(&c, AT_QKV, "dqkv", (size_t)B * T * 3 * d, GC_IN);
    gc_fill(c.d[AT_QKV], c.n[AT_QKV], -1.5, 1.5);
    gc_add(&c, AT_OUT, "out", (size_t)B * T * d, GC_OUT);
    gc_add(&c, AT_ATT, "att", (size_t)B * H * T * T, GC_CACHE);
    gc_add(&c, AT_SCR, "scratch", OP_ATTENTION_SCRATCH_BWD(T), GC_SCRATCH);
    gc_add(&c, AT_DOUT, "dout", (size_t)B * T * d, GC_DOUT);
    gc_add_grad(&c, AT_DQKV, "dqkv", AT_QKV);
    c.fwd = at_fwd, c.bwd = at_bwd;
    gc_run(&c);
}
TEST(attention) {
    static const int causal[5] = {0, 1, 2, 3, 4};
    static const int blocks[6] = {0, 1, 1, 2, 2, 2};
    attention_case("attention(causal)", causal, 5, 1);
    attention_case("attention(block)", blocks, 6, 1);
    /* strict: the first block attends to nothing (output 0, no gradient) */
    attention_case("attention(block,strict)", blocks, 6, 0);
}

/* ---- AdaLN modulate and gated residual on a strided ada [P/group, 3W] ---- */
enum { MO_X, MO_ADA, MO_OUT, MO_DOUT, MO_DX, MO_DADA };
/* p: P, W, group; shift = ada, scale = ada + W, stride 3W */
#define MO_F(S, T) op_modulate_forward##S(T[MO_OUT], T[MO_X], T[MO_ADA], T[MO_ADA] + c->p[1],     \
                                          c->p[0], c->p[1], 3 * (size_t)c->p[1], c->p[2])
#define MO_B_(S, T)                                                                                \
    op_modulate_backward##S(GC_G(T, MO_DX), GC_G(T, MO_DADA),                                      \
                            c->nullg[MO_DADA] ? NULL : T[MO_DADA] + c->p[1], T[MO_DOUT], T[MO_X],  \
                            T[MO_ADA] + c->p[1], c->p[0], c->p[1], 3 * (size_t)c->p[1], c->p[2])
static void mo_fwd(gc_case *c) { GC_DUAL(c, MO_F); }
static void mo_bwd(gc_case *c) { GC_DUAL(c, MO_B_); }
enum { GR_X, GR_ADA, GR_H, GR_OUT, GR_DOUT, GR_DX, GR_DADA, GR_DH };
/* gate = ada + 2W */
#define GR_F(S, T) op_gated_residual_forward##S(T[GR_OUT], T[GR_X], T[GR_ADA] + 2 * c->p[1],      \
                                                T[GR_H], c->p[0], c->p[1], 3 * (size_t)c->p[1],    \
                                                c->p[2])
#define GR_B_(S, T)                                                                                \
    op_gated_residual_backward##S(GC_G(T, GR_DX),                                                  \
                                  c->nullg[GR_DADA] ? NULL : T[GR_DADA] + 2 * c->p[1],             \
                                  GC_G(T, GR_DH), T[GR_DOUT], T[GR_ADA] + 2 * c->p[1], T[GR_H],    \
                                  c->p[0], c->p[1], 3 * (size_t)c->p[1], c->p[2])
static void gr_fwd(gc_case *c) { GC_DUAL(c, GR_F); }
static void gr_bwd(gc_case *c) { GC_DUAL(c, GR_B_); }
static void adaln_cases(int group) {
    int P = 6, W = 4;
    size_t nada = (size_t)(P / group) * 3 * W;
    gc_case c;
    gc_init(&c, group == 1 ? "modulate" : "modulate(group2)");
    c.p[0] = P, c.p[1] = W, c.p[2] = group;
    gc_add(&c, MO_X, "dx", (size_t)P * W, GC_IN);
    gc_add(&c, MO_ADA, "dada", nada, GC_IN);
    gc_add(&c, MO_OUT, "out", (size_t)P * W, GC_OUT);
    gc_add(&c, MO_DOUT, "dout", (size_t)P * W, GC_DOUT);
    gc_add_grad(&c, MO_DX, "dx", MO_X);
    gc_add_grad(&c, MO_DADA, "dada", MO_ADA);
    c.fwd = mo_fwd, c.bwd = mo_bwd;
    gc_run(&c);

    gc_init(&c, group == 1 ? "gated_residual" : "gated_residual(group2)");
    c.p[0] = P, c.p[1] = W, c.p[2] = group;
    gc_add(&c, GR_X, "dx", (size_t)P * W, GC_IN);
    gc_add(&c, GR_ADA, "dada", nada, GC_IN);
    gc_add(&c, GR_H, "dh", (size_t)P * W, GC_IN);
    gc_add(&c, GR_OUT, "out", (size_t)P * W, GC_OUT);
    gc_add(&c, GR_DOUT, "dout", (size_t)P * W, GC_DOUT);
    gc_add_grad(&c, GR_DX, "dx", GR_X);
    gc_add_grad(&c, GR_DADA, "dada", GR_ADA);
    gc_add_grad(&c, GR_DH, "dh", GR_H);
    c.fwd = gr_fwd, c.bwd = gr_bwd;
    gc_run(&c);
}
TEST(adaln) {
    adaln_cases(1);
    adaln_cases(2);
}

/* ---- timestep embedding (forward only: float vs double) ---- */
enum { TE_T, TE_OUT };
#define TE_F(S, T) op_timestep_embedding_forward##S(T[TE_OUT], T[TE_T], 1000, c->p[0], c->p[1])
static void te_fwd(gc_case *c) { GC_DUAL(c, TE_F); }
TEST(timestep_embedding) {
    for (int dim = 7; dim <= 16; dim += 9) {
        gc_case c;
        gc_init(&c, dim == 16 ? "timestep_emb" : "timestep_emb(odd)");
        c.p[0] = 5, c.p[1] = dim;
        gc_add(&c, TE_T, "t", 5, GC_CONST);
        gc_fill(c.d[TE_T], 5, 0, 1);
        gc_add(&c, TE_OUT, "out", (size_t)5 * dim, GC_OUT);
        c.fwd = te_fwd;
        gc_run(&c);
    }
}

/* ---- embedding gather into a strided output (p: N, C, out_stride; iv = idx) ---- */
enum { EM_TAB, EM_OUT, EM_DOUT, EM_DTAB };
#define EM_F(S, T) op_embedding_forward##S(T[EM_OUT], c->iv, T[EM_TAB], c->p[0], c->p[1], c->p[2])
#define EM_B_(S, T) op_embedding_backward##S(GC_G(T, EM_DTAB), T[EM_DOUT], c->iv, c->p[0],      \
                                             c->p[1], c->p[2])
static void em_fwd(gc_case *c) { GC_DUAL(c, EM_F); }
static void em_bwd(gc_case *c) { GC_DUAL(c, EM_B_); }
TEST(embedding) {
    static const int idx[5] = {2, 0, 2, 3, 2}; /* repeats; row 1 unused */
    int N = 5, V = 4, C = 3, stride = 5;
    gc_case c;
    gc_init(&c, "embedding");
    c.p[0] = N, c.p[1] = C, c.p[2] = stride;
    c.iv = malloc(sizeof idx);
    memcpy(c.iv, idx, sizeof idx);
    gc_add(&c, EM_TAB, "dtable", (size_t)V * C, GC_IN);
    gc_add(&c, EM_OUT, "out", (size_t)N * stride, GC_OUT);
    gc_add(&c, EM_DOUT, "dout", (size_t)N * stride, GC_DOUT);
    gc_add_grad(&c, EM_DTAB, "dtable", EM_TAB);
    c.fwd = em_fwd, c.bwd = em_bwd;
    gc_run(&c);
}

/* ---- softmax ---- */
enum { SM_X, SM_OUT, SM_DOUT, SM_DX };
#define SM_F(S, T) op_softmax_forward##S(T[SM_OUT], T[SM_X], c->p[0], c->p[1])
#define SM_B_(S, T) op_softmax_backward##S(GC_G(T, SM_DX), T[SM_DOUT], T[SM_OUT], c->p[0], c->p[1])
static void sm_fwd(gc_case *c) { GC_DUAL(c, SM_F); }
static void sm_bwd(gc_case *c) { GC_DUAL(c, SM_B_); }
TEST(softmax) {
    gc_case c;
    gc_init(&c, "softmax");
    c.p[0] = 3, c.p[1] = 5;
    gc_add(&c, SM_X, "dinp", 15, GC_IN);
    gc_fill(c.d[SM_X], 15, -3, 3);
    gc_add(&c, SM_OUT, "out", 15, GC_OUT);
    gc_add(&c, SM_DOUT, "dout", 15, GC_DOUT);
    gc_add_grad(&c, SM_DX, "dinp", SM_X);
    c.fwd = sm_fwd, c.bwd = sm_bwd;
    gc_run(&c);
}

/* ---- cross-entropy (iv = targets, one ignored row) ---- */
enum { CE_LOGITS, CE_LOSS, CE_PROBS, CE_DLOSS, CE_DLOGITS };
#define CE_F(S, T) op_crossentropy_forward##S(T[CE_LOSS], T[CE_PROBS], T[CE_LOGITS], c->iv,        \
                                              c->p[0], c->p[1])
#define CE_B_(S, T) op_crossentropy_backward##S(GC_G(T, CE_DLOGITS), T[CE_DLOSS], T[CE_PROBS],     \
                                                c->iv, c->p[0], c->p[1])
static void ce_fwd(gc_case *c) { GC_DUAL(c, CE_F); }
static void ce_bwd(gc_case *c) { GC_DUAL(c, CE_B_); }
TEST(crossentropy) {
    static const int tgt[4] = {3, 0, -1, 5};
    int N = 4, V = 6;
    gc_case c;
    gc_init(&c, "crossentropy");
    c.p[0] = N, c.p[1] = V;
    c.iv = malloc(sizeof tgt);
    memcpy(c.iv, tgt, sizeof tgt);
    gc_add(&c, CE_LOGITS, "dlogits", (size_t)N * V, GC_IN);
    gc_fill(c.d[CE_LOGITS], (size_t)N * V, -3, 3);
    gc_add(&c, CE_LOSS, "losses", N, GC_OUT);
    gc_add(&c, CE_PROBS, "probs", (size_t)N * V, GC_CACHE);
    gc_add(&c, CE_DLOSS, "dlosses", N, GC_DOUT);
    gc_add_grad(&c, CE_DLOGITS, "dlogits", CE_LOGITS);
    c.fwd = ce_fwd, c.bwd = ce_bwd;
    gc_run(&c);
}

/* ---- weighted MSE (p: N, C, weighted) ---- */
enum { MS_A, MS_B, MS_W, MS_LOSS, MS_DLOSS, MS_DA, MS_DB };
#define MS_F(S, T) op_mse_forward##S(T[MS_LOSS], T[MS_A], T[MS_B], c->p[2] ? T[MS_W] : NULL,       \
                                     c->p[0], c->p[1], (double)c->p[0] * c->p[1])
#define MS_B_(S, T) op_mse_backward##S(GC_G(T, MS_DA), GC_G(T, MS_DB), T[MS_DLOSS][0], T[MS_A],    \
                                       T[MS_B], c->p[2] ? T[MS_W] : NULL, c->p[0], c->p[1],        \
                                       (double)c->p[0] * c->p[1])
static void ms_fwd(gc_case *c) { GC_DUAL(c, MS_F); }
static void ms_bwd(gc_case *c) { GC_DUAL(c, MS_B_); }
TEST(mse) {
    for (int weighted = 1; weighted >= 0; weighted--) {
        int N = 4, C = 3;
        gc_case c;
        gc_init(&c, weighted ? "mse(weighted)" : "mse");
        c.p[0] = N, c.p[1] = C, c.p[2] = weighted;
        gc_add(&c, MS_A, "da", (size_t)N * C, GC_IN);
        gc_add(&c, MS_B, "db", (size_t)N * C, GC_IN);
        gc_add(&c, MS_W, "w", N, GC_CONST);
        gc_fill(c.d[MS_W], N, 0.5, 3);
        gc_add(&c, MS_LOSS, "loss", 1, GC_OUT);
        gc_add(&c, MS_DLOSS, "dloss", 1, GC_DOUT);
        gc_add_grad(&c, MS_DA, "da", MS_A);
        gc_add_grad(&c, MS_DB, "db", MS_B);
        c.fwd = ms_fwd, c.bwd = ms_bwd;
        gc_run(&c);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    test_init(argv[0]);
    gc_seed(12345);
    RUN(matmul);
    RUN(add);
    RUN(copy2d);
    RUN(rmsnorm);
    RUN(layernorm);
    RUN(silu);
    RUN(gelu);
    RUN(swiglu);
    RUN(rope);
    RUN(attention);
    RUN(adaln);
    RUN(timestep_embedding);
    RUN(embedding);
    RUN(softmax);
    RUN(crossentropy);
    RUN(mse);
    return test_summary();
}
