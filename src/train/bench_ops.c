#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/blas_setup.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/backbone.h"
#include "model/gemm_bf16.h"
#include "model/teacher.h"
#include "model/ops.h"
#include "model/params.h"
#include "train/bench.h"
#include "train/flops_peak.h"

void openblas_set_num_threads(int n);

typedef struct {
    const char *name;
    size_t N; /* rows (tokens) */
    int IC, OC;
    int kind; /* 0 forward, 1 backward (dinp and dW) */
} gemm_case;

static float *random_buffer(size_t n, uint64_t seed, dd2_status *st) {
    float *x = DD2_MALLOC(n * sizeof *x, st);
    if (!x) return NULL;
    dd2_rng r;
    dd2_rng_init(&r, seed, DD2_RNG_TEST, n, 0);
    dd2_rng_fill_uniform(&r, x, n, -1.0f, 1.0f);
    return x;
}

/* Random operands big enough for every case of a list (freed by gemm_buffers_free). */
typedef struct {
    float *inp, *out, *W, *dinp, *dW;
} gemm_buffers;

static void gemm_buffers_free(gemm_buffers *b) {
    free(b->inp);
    free(b->out);
    free(b->W);
    free(b->dinp);
    free(b->dW);
}

static int gemm_buffers_alloc(gemm_buffers *b, const gemm_case *cases, size_t n_cases, dd2_status *st) {
    size_t max_in = 0, max_out = 0, max_w = 0;
    for (size_t i = 0; i < n_cases; i++) {
        const gemm_case *c = &cases[i];
        if (c->N * (size_t)c->IC > max_in) max_in = c->N * (size_t)c->IC;
        if (c->N * (size_t)c->OC > max_out) max_out = c->N * (size_t)c->OC;
        if ((size_t)c->IC * (size_t)c->OC > max_w) max_w = (size_t)c->IC * (size_t)c->OC;
    }
    b->inp = random_buffer(max_in, 1, st), b->out = random_buffer(max_out, 2, st), b->W = random_buffer(max_w, 3, st);
    b->dinp = random_buffer(max_in, 4, st), b->dW = random_buffer(max_w, 5, st);
    if (b->inp && b->out && b->W && b->dinp && b->dW) return DD2_OK;
    gemm_buffers_free(b);
    return DD2_ERR_RUNTIME;
}

/* Best time of repeated calls of one GEMM case over `seconds`. */
static double time_gemm(const gemm_case *c, float *out, float *inp, float *W, float *dinp, float *dW,
                        double seconds) {
    double best = 1e30, t_end = dd2_now() + seconds;
    int runs = 0;
    while (runs < 3 || dd2_now() < t_end) {
        double t0 = dd2_now();
        if (c->kind == 0)
            op_matmul_forward(out, inp, W, NULL, c->N, c->IC, c->OC);
        else
            op_matmul_backward(dinp, dW, NULL, out, inp, W, c->N, c->IC, c->OC);
        double dt = dd2_now() - t0;
        if (dt < best) best = dt;
        runs++;
    }
    return best;
}

static int bench_gemms(const dd2_config *cfg, double peak1, int threads, double seconds, dd2_status *st) {
    const int d = cfg->model.d_model, F = cfg->model.mlp_hidden ? cfg->model.mlp_hidden : 4 * d;
    const int V = cfg->vq.codes, B = cfg->teacher.batch;
    const int n = (cfg->data.image_size / cfg->vq.patch) * (cfg->data.image_size / cfg->vq.patch);
    const size_t N = (size_t)B * (size_t)n;
    const gemm_case cases[] = {
        {"qkv", N, d, 3 * d, 0},   {"attn.wo", N, d, d, 0},   {"mlp.w1|w3", N, d, 2 * F, 0},
        {"mlp.w2", N, F, d, 0},    {"head (logits)", N, d, V, 0}, {"qkv bwd", N, d, 3 * d, 1},
        {"mlp.w1|w3 bwd", N, d, 2 * F, 1}, {"mlp.w2 bwd", N, F, d, 1}, {"head bwd", N, d, V, 1},
    };
    gemm_buffers b;
    DD2_TRY(gemm_buffers_alloc(&b, cases, sizeof cases / sizeof cases[0], st));
    openblas_set_num_threads(threads);
    double peak = peak1 * threads;
    printf("\nsgemm at the model's shapes (B=%d x n=%d = %zu rows), %d BLAS thread%s, peak %.0f GFLOP/s\n", B, n,
           N, threads, threads > 1 ? "s" : "", peak);
    printf("  %-16s %8s %6s %6s %10s %8s\n", "gemm", "rows", "in", "out", "GFLOP/s", "% peak");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const gemm_case *c = &cases[i];
        double t = time_gemm(c, b.out, b.inp, b.W, b.dinp, b.dW, seconds);
        double flops = 2.0 * (double)c->N * c->IC * c->OC * (c->kind ? 2 : 1);
        double g = flops / t * 1e-9;
        printf("  %-16s %8zu %6d %6d %10.1f %7.0f%%\n", c->name, c->N, c->IC, c->OC, g, 100.0 * g / peak);
    }
    gemm_buffers_free(&b);
    return DD2_OK;
}

/* The MLP head's GEMMs at a distill update's rows (distill.batch × n × m points), fp32 against
 * bf16 (distill.matmul) in the same run, one thread; skipped where the CPU has no bf16 path. */
static int bench_head_bf16(const dd2_config *cfg, double seconds, dd2_status *st) {
    if (!dd2_gemm_bf16_supported()) {
        printf("\nhead GEMMs in bf16: skipped (no AMX-BF16 on this CPU or kernel)\n");
        return DD2_OK;
    }
    const int W = cfg->head.width, g = cfg->data.image_size / cfg->vq.patch;
    const size_t N = (size_t)cfg->distill.batch * (size_t)(g * g) * (size_t)cfg->distill.m;
    const gemm_case cases[] = {
        {"ada (W->3W)", N, W, 3 * W, 0}, {"fc (W->W)", N, W, W, 0},    {"time.w1 (256->W)", N, 256, W, 0},
        {"ada bwd", N, W, 3 * W, 1},     {"fc bwd", N, W, W, 1},       {"time.w1 bwd", N, 256, W, 1},
    };
    gemm_buffers b;
    DD2_TRY(gemm_buffers_alloc(&b, cases, sizeof cases / sizeof cases[0], st));
    int rc = DD2_OK;
    const int was = dd2_gemm_bf16_enabled();
    openblas_set_num_threads(1);
    printf("\nhead GEMMs at a distill update's rows (batch %d x n %d x m %d = %zu), W = %d, 1 thread: f32 "
           "(OpenBLAS) vs bf16 (AMX, distill.matmul)\n",
           cfg->distill.batch, g * g, cfg->distill.m, N, W);
    printf("  %-18s %10s %10s %8s\n", "gemm", "f32 GF/s", "bf16 GF/s", "speed-up");
    double t32_all = 0, t16_all = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0] && rc == DD2_OK; i++) {
        const gemm_case *c = &cases[i];
        double flops = 2.0 * (double)c->N * c->IC * c->OC * (c->kind ? 2 : 1), t[2];
        for (int bf = 0; bf < 2 && rc == DD2_OK; bf++) {
            rc = dd2_gemm_bf16_enable(bf, st);
            t[bf] = time_gemm(c, b.out, b.inp, b.W, b.dinp, b.dW, seconds);
        }
        t32_all += t[0], t16_all += t[1];
        printf("  %-18s %10.1f %10.1f %7.2fx\n", c->name, flops / t[0] * 1e-9, flops / t[1] * 1e-9, t[0] / t[1]);
    }
    printf("  all six: %.2fx\n", t32_all / t16_all);
    dd2_status ignore;
    dd2_gemm_bf16_enable(was, &ignore);
    gemm_buffers_free(&b);
    return rc;
}

/* Backbone forward and forward+backward tokens/s at the config's model size and teacher batch. */
static int bench_backbone(const dd2_config *cfg, int threads, double seconds, dd2_status *st) {
    const int g = cfg->data.image_size / cfg->vq.patch, C = cfg->vq.patch * cfg->vq.patch, B = cfg->teacher.batch;
    dd2_backbone_dims dims;
    dd2_backbone_dims_from_config(&dims, cfg, C, g, g);
    dd2_param_table tab;
    dd2_ptable_init(&tab);
    dd2_backbone bb;
    dd2_backbone_acts acts = {0};
    float *params = NULL, *grads = NULL, *x = NULL, *f = NULL, *df = NULL;
    int *y = NULL;
    int rc = dd2_backbone_register(&bb, &dims, NULL, &tab, st);
    if (rc == DD2_OK) rc = dd2_backbone_acts_alloc(&acts, &bb, B, st);
    const size_t nx = (size_t)B * dims.n * C, nf = (size_t)B * dims.n * dims.d;
    if (rc == DD2_OK) {
        params = DD2_MALLOC(tab.numel * sizeof(float), st);
        grads = DD2_CALLOC(tab.numel, sizeof(float), st);
        x = random_buffer(nx, 7, st);
        f = DD2_MALLOC(nf * sizeof(float), st);
        df = random_buffer(nf, 8, st);
        y = DD2_MALLOC((size_t)B * sizeof(int), st);
        rc = (params && grads && x && f && df && y) ? DD2_OK : DD2_ERR_RUNTIME;
    }
    if (rc == DD2_OK) rc = dd2_ptable_init_params(&tab, params, 1, st);
    if (rc == DD2_OK) {
        for (int b = 0; b < B; b++) y[b] = b % (dims.K + 1);
        openblas_set_num_threads(threads);
        double best_f = 1e30, best_fb = 1e30;
        for (int pass = 0; pass < 2; pass++) {
            double t_end = dd2_now() + seconds;
            int runs = 0;
            while (runs < 2 || dd2_now() < t_end) {
                double t0 = dd2_now();
                dd2_backbone_forward(&bb, params, &acts, x, y, B, f);
                if (pass) dd2_backbone_backward(&bb, params, grads, &acts, df, NULL, B);
                double dt = dd2_now() - t0;
                if (pass == 0 && dt < best_f) best_f = dt;
                if (pass == 1 && dt < best_fb) best_fb = dt;
                runs++;
            }
        }
        double tokens = (double)B * dims.n;
        printf("\nbackbone d=%d L=%d H=%d F=%d n=%d, batch %d (%.2fM params), %d BLAS thread%s\n", dims.d, dims.L,
               dims.H, dims.F, dims.n, B, (double)tab.numel / 1e6, threads, threads > 1 ? "s" : "");
        printf("  forward            %10.0f tokens/s  (%.1f ms per batch)\n", tokens / best_f, 1e3 * best_f);
        printf("  forward+backward   %10.0f tokens/s  (%.1f ms per batch)\n", tokens / best_fb, 1e3 * best_fb);
        printf("BENCH dims d=%d L=%d H=%d F=%d gh=%d gw=%d C=%d K=%d batch=%d\n", dims.d, dims.L, dims.H, dims.F,
               dims.gh, dims.gw, dims.C, dims.K, B);
        printf("BENCH backbone threads=%d fwd_tokens_per_s=%.1f fwdbwd_tokens_per_s=%.1f\n", threads, tokens / best_f,
               tokens / best_fb);
    }
    dd2_backbone_acts_free(&acts);
    dd2_ptable_free(&tab);
    free(params);
    free(grads);
    free(x);
    free(f);
    free(df);
    free(y);
    return rc;
}

int dd2_bench_backbone(const dd2_config *cfg, double seconds, dd2_status *st) {
    for (int threads = 1; threads <= 2; threads++) DD2_TRY(bench_backbone(cfg, threads, seconds, st));
    return DD2_OK;
}

int dd2_bench_ops(const dd2_config *cfg, double seconds, dd2_status *st) {
    const char *isa;
    double peak1 = dd2_measure_fma_peak(0.5, &isa);
    printf("dd2 bench ops: OpenBLAS core %s; measured FMA peak %.1f GFLOP/s per core (%s fp32)\n",
           dd2_blas_corename(), peak1, isa);
    for (int threads = 1; threads <= 2; threads++) DD2_TRY(bench_gemms(cfg, peak1, threads, seconds, st));
    for (int threads = 1; threads <= 2; threads++) DD2_TRY(bench_backbone(cfg, threads, seconds, st));
    DD2_TRY(bench_head_bf16(cfg, seconds, st));
    return DD2_OK;
}
