/* bf16 GEMM on Intel AMX: model/gemm_bf16.h.
 *
 * Layout. C is computed in blocks of 32×32 (2×2 tiles of 16×16 fp32). K runs in chunks of kc
 * (a multiple of 32); for each chunk, op(B)'s rows [k0, k0+kc) are packed once into the VNNI
 * layout the tile unit reads (Bp[k/2][n][k%2], bf16, zero rows past K), then for each block of
 * 32 rows of C, op(A)'s block is packed row-major (Ap[i][k], bf16, zero past M and K) and the
 * tiles run over the chunk for every 32 columns. Partial row blocks go through a 32×32 staging
 * buffer. Every element of C is summed over k in the same order (chunk by chunk, 32 at a time)
 * whatever M is, so splitting rows between ranks does not change results.
 */
#include "model/gemm_bf16.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define DD2_HAVE_AMX_BUILD 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

static int g_enabled;

float dd2_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u; /* subnormal: zero, as the hardware reads it */
    else if ((u & 0x7f800000u) != 0x7f800000u) u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

int dd2_gemm_bf16_enabled(void) { return g_enabled; }

#ifndef DD2_HAVE_AMX_BUILD

int dd2_gemm_bf16_supported(void) { return 0; }

int dd2_gemm_bf16_enable(int on, dd2_status *st) {
    if (!on) return g_enabled = 0, DD2_OK;
    return DD2_FAIL(st, DD2_ERR_INPUT, "the bf16 matmul needs an x86-64 build with GCC 12 or later (Intel AMX); this build has none");
}

int dd2_gemm_bf16(int ta, int tb, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    return 0;
}

#else

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define KC_BYTES (512u * 1024u) /* a packed B chunk fits in L2 */

static const char *missing_feature(void) {
    const char *off = getenv("DD2_NO_AMX");
    if (off && *off && strcmp(off, "0") != 0) return "the AMX path (the environment sets DD2_NO_AMX)";
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return "CPUID leaf 7";
    if (!(b & (1u << 16))) return "AVX-512F";
    if (!(b & (1u << 30))) return "AVX-512BW";
    if (!(d & (1u << 24))) return "AMX-TILE";
    if (!(d & (1u << 22))) return "AMX-BF16";
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return "AVX512-BF16";
    /* the kernel must grant the tile data state (Linux 5.16+) */
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0)
        return "the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM refused: Linux 5.16 or later is needed)";
    return NULL;
}

static int g_checked = -1; /* -1 not yet, 0 missing, 1 present */
static const char *g_missing;

int dd2_gemm_bf16_supported(void) {
    if (g_checked < 0) {
        g_missing = missing_feature();
        g_checked = g_missing == NULL;
    }
    return g_checked;
}

/* ---- scratch ---------------------------------------------------------------------------------- */

static uint16_t *g_scratch;
static size_t g_scratch_n;

static uint16_t *scratch(size_t n) {
    if (n > g_scratch_n) {
        free(g_scratch);
        g_scratch = aligned_alloc(64, (n * sizeof(uint16_t) + 63) / 64 * 64);
        g_scratch_n = g_scratch ? n : 0;
    }
    return g_scratch;
}

int dd2_gemm_bf16_enable(int on, dd2_status *st) {
    if (!on) {
        g_enabled = 0;
        free(g_scratch);
        g_scratch = NULL, g_scratch_n = 0;
        return DD2_OK;
    }
    if (!dd2_gemm_bf16_supported())
        return DD2_FAIL(st, DD2_ERR_INPUT, "this CPU or kernel lacks %s, which the bf16 matmul needs", g_missing);
    g_enabled = 1;
    return DD2_OK;
}

/* ---- packing ---------------------------------------------------------------------------------- */

#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

/* dst[0..padded) = bf16(src[0..len)), zeros after; padded a multiple of 32. */
BF16_TARGET static void cvt_row(uint16_t *dst, const float *src, size_t len, size_t padded) {
    for (size_t k = 0; k < padded; k += 32) {
        size_t r = k < len ? len - k : 0;
        __mmask16 m0 = r >= 16 ? 0xffff : (__mmask16)((1u << r) - 1u);
        __mmask16 m1 = r >= 32 ? 0xffff : r > 16 ? (__mmask16)((1u << (r - 16)) - 1u) : 0;
        __m512 lo = _mm512_maskz_loadu_ps(m0, src + k), hi = _mm512_maskz_loadu_ps(m1, src + k + 16);
        _mm512_store_si512((void *)(dst + k), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    }
}

/* The 16 (r0[i], r1[i]) bf16 pairs of 16 columns as 32-bit words (low half r0); NULL rows and
 * masked-off columns read as zero. */
BF16_TARGET static __m512i pair_row(const float *r0, const float *r1, __mmask16 mask) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                         23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512 lo = r0 ? _mm512_maskz_loadu_ps(mask, r0) : _mm512_setzero_ps();
    __m512 hi = r1 ? _mm512_maskz_loadu_ps(mask, r1) : _mm512_setzero_ps();
    return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

/* r[i] word j <- r[j] word i (16×16 32-bit words) */
BF16_TARGET static void transpose_16x16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_i32x4(u[i], u[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_i32x4(u[i], u[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_i32x4(u[i + 8], u[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_i32x4(u[i + 8], u[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], 0xdd);
    }
}

/* Ap [32][kp] = op(A)[m0 .. m0+rows)[k0 .. k0+kc), zero-padded (rows ≤ 32, kc ≤ kp). */
BF16_TARGET static void pack_a(uint16_t *Ap, int ta, const float *A, size_t lda, size_t m0, size_t rows,
                               size_t k0, size_t kc, size_t kp) {
    if (!ta) {
        for (size_t i = 0; i < 32; i++) {
            if (i < rows) cvt_row(Ap + i * kp, A + (m0 + i) * lda + k0, kc, kp);
            else memset(Ap + i * kp, 0, kp * sizeof(uint16_t));
        }
        return;
    }
    /* op(A)[i][k] = A[k][i]. Rows k, k+1 of A give, for 16 columns i, the 16 pairs
     * (A[k][i], A[k+1][i]) as 32-bit words (the VNNI interleave of pack_b); 16 such pair rows
     * transposed as a 16×16 block of words are 16 rows of Ap over 32 values of k. */
    for (size_t h = 0; h < 32; h += 16) {
        const size_t left = rows > h ? rows - h : 0;
        const __mmask16 mask = left >= 16 ? 0xffff : (__mmask16)((1u << left) - 1u);
        for (size_t kk = 0; kk < kp; kk += 32) {
            __m512i r[16];
            for (int j = 0; j < 16; j++) {
                const size_t k = kk + 2 * (size_t)j;
                r[j] = pair_row(k < kc ? A + (k0 + k) * lda + m0 + h : NULL,
                                k + 1 < kc ? A + (k0 + k + 1) * lda + m0 + h : NULL, mask);
            }
            transpose_16x16(r);
            for (int i = 0; i < 16; i++) _mm512_store_si512((void *)(Ap + (h + (size_t)i) * kp + kk), r[i]);
        }
    }
}

/* Bp [kp/2][N][2] = VNNI of op(B)[k0 .. k0+kc)[0 .. N), zero rows past kc. */
BF16_TARGET static void pack_b(uint16_t *Bp, int tb, const float *B, size_t ldb, size_t N, size_t k0,
                               size_t kc, size_t kp, uint16_t *row) {
    uint32_t *Bp32 = (uint32_t *)Bp; /* one (k even, k odd) pair per 32-bit word */
    if (tb) {
        /* op(B)[k][n] = B[n][k]: row n of B gives column n of every pair row */
        for (size_t n = 0; n < N; n++) {
            cvt_row(row, B + n * ldb + k0, kc, kp);
            const uint32_t *pairs = (const uint32_t *)row;
            for (size_t k2 = 0; k2 < kp / 2; k2++) Bp32[k2 * N + n] = pairs[k2];
        }
        return;
    }
    /* op(B)[k][n] = B[k][n]: interleave rows k and k+1 */
    for (size_t k = 0; k < kp; k += 2) {
        const float *r0 = k < kc ? B + (k0 + k) * ldb : NULL;
        const float *r1 = k + 1 < kc ? B + (k0 + k + 1) * ldb : NULL;
        uint32_t *dst = Bp32 + k / 2 * N; /* pair row k/2: N words */
        for (size_t n = 0; n < N; n += 16)
            _mm512_storeu_si512((void *)(dst + n), pair_row(r0 ? r0 + n : NULL, r1 ? r1 + n : NULL, 0xffff));
    }
}

/* ---- the tile kernel -------------------------------------------------------------------------- */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16")))

/* Tiles 0-3: C (16 rows × 16 fp32), 4-5: A (16 × 32 bf16), 6-7: B (16 pair rows × 16 × 2 bf16).
 * In static memory: ldtilecfg reads all 64 bytes, which an asm operand cannot tell the compiler
 * (a local would have its stores dropped). */
static const tile_config g_tile_config __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = {64, 64, 64, 64, 64, 64, 64, 64},
    .rows = {16, 16, 16, 16, 16, 16, 16, 16},
};

AMX_TARGET static void load_tile_config(void) { _tile_loadconfig(&g_tile_config); }

/* C block [32,32] (row stride ldc floats) (+)= Ap [32][kp] · Bp columns [n, n+32) over kp. */
AMX_TARGET static void block_32x32(const uint16_t *Ap, const uint16_t *Bp, size_t kp, size_t N, size_t n,
                                   float *C, size_t ldc, int load_c) {
    const size_t sc = ldc * sizeof(float), sa = kp * sizeof(uint16_t), sb = N * 2 * sizeof(uint16_t);
    if (load_c) {
        _tile_loadd(0, C, sc);
        _tile_loadd(1, C + 16, sc);
        _tile_loadd(2, C + 16 * ldc, sc);
        _tile_loadd(3, C + 16 * ldc + 16, sc);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (size_t k = 0; k < kp; k += 32) {
        const uint16_t *b = Bp + (k / 2 * N + n) * 2;
        _tile_loadd(4, Ap + k, sa);
        _tile_loadd(5, Ap + 16 * kp + k, sa);
        _tile_loadd(6, b, sb);
        _tile_loadd(7, b + 32, sb);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, C, sc);
    _tile_stored(1, C + 16, sc);
    _tile_stored(2, C + 16 * ldc, sc);
    _tile_stored(3, C + 16 * ldc + 16, sc);
}

AMX_TARGET static void release_tiles(void) { _tile_release(); }

int dd2_gemm_bf16(int ta, int tb, size_t M, size_t N, size_t K, const float *A, size_t lda,
                  const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    if (!g_enabled || (ta && tb) || (beta != 0.0f && beta != 1.0f)) return 0;
    if (N % 32 != 0 || N == 0 || M < 32 || K < 16) return 0;
    size_t kc = KC_BYTES / (N * sizeof(uint16_t)) / 32 * 32;
    if (kc < 64) kc = 64;
    const size_t kc_all = (K + 31) / 32 * 32;
    if (kc > kc_all) kc = kc_all;
    /* scratch: Bp [kc/2][N][2], Ap [32][kc], one converted row of kc for pack_b */
    uint16_t *Bp = scratch(kc * N + 32 * kc + kc);
    if (!Bp) return 0;
    uint16_t *Ap = Bp + kc * N, *row = Ap + 32 * kc;
    float stage[32 * 32] __attribute__((aligned(64)));
    load_tile_config();
    for (size_t k0 = 0; k0 < K; k0 += kc) {
        const size_t klen = K - k0 < kc ? K - k0 : kc, kp = (klen + 31) / 32 * 32;
        const int load_c = beta != 0.0f || k0 > 0;
        pack_b(Bp, tb, B, ldb, N, k0, klen, kp, row);
        for (size_t m0 = 0; m0 < M; m0 += 32) {
            const size_t rows = M - m0 < 32 ? M - m0 : 32;
            pack_a(Ap, ta, A, lda, m0, rows, k0, klen, kp);
            for (size_t n = 0; n < N; n += 32) {
                float *c = C + m0 * ldc + n;
                if (rows == 32) {
                    block_32x32(Ap, Bp, kp, N, n, c, ldc, load_c);
                    continue;
                }
                for (size_t i = 0; i < 32; i++) {
                    if (i < rows && load_c) memcpy(stage + i * 32, c + i * ldc, 32 * sizeof(float));
                    else memset(stage + i * 32, 0, 32 * sizeof(float));
                }
                block_32x32(Ap, Bp, kp, N, n, stage, 32, 1);
                for (size_t i = 0; i < rows; i++) memcpy(c + i * ldc, stage + i * 32, 32 * sizeof(float));
            }
        }
    }
    release_tiles();
    return 1;
}

#endif
