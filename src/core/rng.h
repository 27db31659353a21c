/* Counter-based random numbers: Philox-4x32-10 (Salmon, Moraes, Dror, Shaw, SC'11; Random123).
 *
 * A stream is named by the tuple (seed, purpose, index, step), not by a position in a global
 * sequence: the noise for sample i at step s is init(seed, DD2_RNG_NOISE, i, s) on whichever
 * rank handles sample i, so results do not depend on the number of MPI ranks or on how the
 * samples are split among them. docs/rng.md describes the scheme; in short:
 *
 *   key[2] = { seed lo32, seed hi32 }                          (Philox key)
 *   ctr[4] = { block, index lo32, step lo32,
 *              purpose (bits 0..15) | index bits 32..39 << 16 | step bits 32..39 << 24 }
 *
 * which is injective for purpose < 2^16, index < 2^40, step < 2^40 (each stream holds 2^32
 * blocks = 2^34 u32 before its block counter wraps). Bits that do not fit (index/step bits 40..63,
 * purpose bits 16..31) are not dropped: when any is set, the key becomes
 * Philox({index>>40, step>>40, purpose>>16, "DD2K"}; seed) words 0..1 instead of the seed, so
 * every tuple gets its own stream (distinct from all others up to a 2^-64 key collision).
 *
 * Every draw function consumes whole u32 words from the stream, in order, with no hidden state
 * beyond dd2_rng (which holds no pointers): dd2_rng_save/restore round-trip it exactly.
 * Not thread-safe per stream (one dd2_rng per thread); streams are cheap to create (no work).
 */
#ifndef DD2_CORE_RNG_H
#define DD2_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

/* The raw Philox-4x32-10 block function: out = Philox(ctr; key), bit-exact with Random123's
 * philox4x32_R(10, ctr, key) (known-answer vectors in tests/unit/test_rng.c). out may alias ctr. */
void dd2_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* What a stream is used for; the "purpose" word of the tuple. Values are part of the stream
 * definition (changing one changes results): append new ones, never renumber. */
typedef enum dd2_rng_purpose {
    DD2_RNG_DATA_ORDER = 1,    /* shuffling the training set (index = epoch or rank) */
    DD2_RNG_INIT = 2,          /* parameter initialisation (index = tensor id) */
    DD2_RNG_NOISE = 3,         /* diffusion / generator noise (index = sample) */
    DD2_RNG_TIMESTEP = 4,      /* diffusion time sampling (index = sample) */
    DD2_RNG_CLASS_DROPOUT = 5, /* label dropout for classifier-free guidance (index = sample) */
    DD2_RNG_SAMPLE = 6,        /* categorical sampling from the teacher (index = sequence) */
    DD2_RNG_DROPOUT = 7,       /* activation dropout (index = sample) */
    DD2_RNG_KMEANS = 8,        /* k-means seeding of the VQ tokenizer */
    DD2_RNG_EVAL = 9,          /* evaluation / FID sample generation (index = sample) */
    DD2_RNG_TEST = 0xFFFF      /* reserved for tests */
} dd2_rng_purpose;

typedef struct dd2_rng {
    uint32_t key[2];      /* Philox key (from seed, see above) */
    uint32_t ctr[4];      /* ctr[0] = counter of the NEXT block to generate; [1..3] fixed */
    uint32_t buf[4];      /* the current block = Philox(ctr with ctr[0]-1) when pos < 4 */
    uint32_t pos;         /* next unread word of buf, 0..4 (4 = none left) */
    uint32_t has_normal;  /* 1 when `normal` holds the second value of a Box-Muller pair */
    double normal;
} dd2_rng;

/* Start the stream (seed, purpose, index, step) at its first word. Deterministic, no I/O. */
void dd2_rng_init(dd2_rng *r, uint64_t seed, uint32_t purpose, uint64_t index, uint64_t step);

uint32_t dd2_rng_u32(dd2_rng *r);
/* Two u32 words: the first is the low half. */
uint64_t dd2_rng_u64(dd2_rng *r);

/* Uniform in [0,1) from one u32: top 24 bits * 2^-24 (every float k*2^-24, k < 2^24, equally
 * likely; the largest value is 1 - 2^-24, never 1.0). */
float dd2_rng_uniform_f(dd2_rng *r);
/* Uniform in [0,1) from one u64: top 53 bits * 2^-53 (largest 1 - 2^-53, never 1.0). */
double dd2_rng_uniform(dd2_rng *r);

/* The conversions used above, exposed for tests: exact, never 1.0. */
static inline float dd2_rng_u32_to_unit_f(uint32_t x) { return (float)(x >> 8) * 0x1.0p-24f; }
static inline double dd2_rng_u64_to_unit(uint64_t x) { return (double)(x >> 11) * 0x1.0p-53; }

/* Standard normal N(0,1), Box-Muller in double: u1 = (top 53 bits of a u64 + 1) * 2^-53 in
 * (0,1], u2 = top 53 bits of the next u64 * 2^-53 in [0,1); z0 = sqrt(-2 ln u1) cos(2 pi u2),
 * z1 = sqrt(-2 ln u1) sin(2 pi u2). A call returns z0 and caches z1 in the state (serialised);
 * the next call returns z1 without drawing. So each pair costs one Philox block (4 words).
 * |z| <= sqrt(2 * 53 ln 2) ~ 8.57. */
double dd2_rng_normal(dd2_rng *r);

/* Uniform integer in [0, n) with no modulo bias (rejection: draws u32 x until
 * x >= 2^32 mod n, returns x mod n; rejects with probability < n / 2^32). n == 0 returns 0. */
uint32_t dd2_rng_below(dd2_rng *r, uint32_t n);

/* x[i] = mean + std * (float)dd2_rng_normal(r), i = 0..n-1 in order: the same values as n
 * successive dd2_rng_normal calls. */
void dd2_rng_fill_normal(dd2_rng *r, float *x, size_t n, float mean, float std);
/* x[i] = lo + (hi - lo) * dd2_rng_uniform_f(r), computed in double, clamped below hi, so each
 * x[i] is in [lo, hi) for lo < hi. */
void dd2_rng_fill_uniform(dd2_rng *r, float *x, size_t n, float lo, float hi);
/* perm[0..n) = a uniformly random permutation of 0..n-1 (Fisher-Yates with dd2_rng_below). */
void dd2_rng_permutation(dd2_rng *r, uint32_t *perm, uint32_t n);

/* Save/restore the complete state (for checkpoints) as DD2_RNG_STATE_WORDS uint32:
 *   [0]     format tag DD2_RNG_STATE_TAG
 *   [1..2]  key[0], key[1]
 *   [3..6]  ctr[0..3]   (ctr[0] = next block counter)
 *   [7]     pos (0..4)
 *   [8]     has_normal (0 or 1)
 *   [9..10] cached normal, IEEE-754 double bits: low word, high word (0 when has_normal = 0)
 *   [11]    reserved, 0
 * The buffered block is not stored: restore recomputes it from key and ctr. */
enum { DD2_RNG_STATE_WORDS = 12 };
#define DD2_RNG_STATE_TAG 0xDD2A0001u
void dd2_rng_save(const dd2_rng *r, uint32_t state[DD2_RNG_STATE_WORDS]);
/* DD2_ERR_INPUT (r unchanged) when the words are not a valid saved state. */
int dd2_rng_restore(dd2_rng *r, const uint32_t state[DD2_RNG_STATE_WORDS], dd2_status *st);

#endif
