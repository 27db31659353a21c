/* Branch-free float exp that compilers can vectorise (libm's expf is a call, which blocks
 * vectorisation of element-wise loops such as SiLU/SwiGLU and softmax).
 *
 * Cephes' expf scheme: n = round(x·log2 e), r = x − n·ln 2 (split in two constants), degree-6
 * polynomial for e^r on |r| <= ln2/2, times 2^n built in the exponent bits. Max relative error
 * ~2 ulp (1.2e-7) over the normal range (tests/unit/test_fastmath.c); x < -87.33 gives 0 exactly
 * (so exp(-inf) = 0), x > 88.72 gives +inf like expf. NaN propagates. */
#ifndef DD2_CORE_FASTMATH_H
#define DD2_CORE_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float dd2_pow2i(int32_t n) { /* 2^n for n in [-126, 127] */
    int32_t bits = (n + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline float dd2_expf(float x) {
    const float hi = 88.72283f, lo = -87.33654f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    float fn = xc * 1.44269504088896341f;
    fn = (float)(int32_t)(fn + (fn >= 0.0f ? 0.5f : -0.5f)); /* round to nearest, in [-126, 128] */
    float r = xc - fn * 0.693359375f;
    r = r - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t n = (int32_t)fn, n1 = n >> 1; /* 2^n as two factors: both exponents stay in range */
    y = y * dd2_pow2i(n1) * dd2_pow2i(n - n1);
    y = x < lo ? 0.0f : y;
    y = x > hi ? (float)INFINITY : y;
    return x != x ? x : y; /* NaN in, NaN out */
}

#endif
