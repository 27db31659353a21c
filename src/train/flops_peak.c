#include "train/flops_peak.h"

#include "core/log.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define CHAINS 12 /* independent accumulators: enough to cover FMA latency x ports */

__attribute__((target("avx512f"))) static float fma_loop_avx512(long iters) {
    __m512 acc[CHAINS];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    __m512 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_loop_avx2(long iters) {
    __m256 acc[CHAINS];
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_set1_ps((float)c);
    for (long i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    __m256 s = acc[0];
    for (int c = 1; c < CHAINS; c++) s = _mm256_add_ps(s, acc[c]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}
#endif

static float fma_loop_scalar(long iters) {
    float acc[CHAINS];
    for (int c = 0; c < CHAINS; c++) acc[c] = (float)c;
    for (long i = 0; i < iters; i++)
        for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * 0.999999f + 1e-7f;
    float s = 0;
    for (int c = 0; c < CHAINS; c++) s += acc[c];
    return s;
}

volatile float dd2_peak_sink; /* keeps the loops from being optimised away */

double dd2_measure_fma_peak(double seconds, const char **isa) {
    int lanes = 1;
    float (*loop)(long) = fma_loop_scalar;
    *isa = "scalar";
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        loop = fma_loop_avx512;
        lanes = 16;
        *isa = "avx512";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        loop = fma_loop_avx2;
        lanes = 8;
        *isa = "avx2";
    }
#endif
    long iters = 1 << 16;
    double best = 0.0, t_end = dd2_now() + seconds;
    while (dd2_now() < t_end) {
        double t0 = dd2_now();
        dd2_peak_sink = loop(iters);
        double dt = dd2_now() - t0;
        if (dt < 0.01) {
            iters *= 2;
            continue;
        }
        double gflops = 2.0 * CHAINS * lanes * (double)iters / dt * 1e-9;
        if (gflops > best) best = gflops;
    }
    return best;
}
