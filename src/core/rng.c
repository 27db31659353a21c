#include "core/rng.h"

#include <math.h>
#include <string.h>

/* Philox-4x32 constants (Random123 philox.h): multipliers and Weyl key increments. */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

static inline void philox_round(uint32_t c[4], const uint32_t k[2]) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(PHILOX_M0, c[0], &hi0, &lo0);
    mulhilo32(PHILOX_M1, c[2], &hi1, &lo1);
    uint32_t o0 = hi1 ^ c[1] ^ k[0], o2 = hi0 ^ c[3] ^ k[1];
    c[0] = o0;
    c[1] = lo1;
    c[2] = o2;
    c[3] = lo0;
}

void dd2_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int r = 0; r < 10; r++) {
        if (r > 0) {
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(c, k);
    }
    memcpy(out, c, sizeof c);
}

/* ---- stream keying (docs/rng.md) ---- */

#define LOW40 ((UINT64_C(1) << 40) - 1)
/* Tag in the counter used to derive a key from the bits that do not fit the counter ("DD2K"). */
#define KEY_DERIVE_TAG 0x4444324Bu

static void derive_key(uint64_t seed, uint32_t purpose, uint64_t index, uint64_t step,
                       uint32_t key[2]) {
    key[0] = (uint32_t)seed;
    key[1] = (uint32_t)(seed >> 32);
    uint32_t ihi = (uint32_t)(index >> 40), shi = (uint32_t)(step >> 40), phi = purpose >> 16;
    if (ihi == 0 && shi == 0 && phi == 0) return;
    uint32_t c[4] = {ihi, shi, phi, KEY_DERIVE_TAG};
    uint32_t out[4];
    dd2_philox4x32_10(c, key, out);
    key[0] = out[0];
    key[1] = out[1];
}

void dd2_rng_init(dd2_rng *r, uint64_t seed, uint32_t purpose, uint64_t index, uint64_t step) {
    memset(r, 0, sizeof *r);
    derive_key(seed, purpose, index, step, r->key);
    uint64_t i40 = index & LOW40, s40 = step & LOW40;
    r->ctr[0] = 0;
    r->ctr[1] = (uint32_t)i40;
    r->ctr[2] = (uint32_t)s40;
    r->ctr[3] = (purpose & 0xFFFFu) | ((uint32_t)(i40 >> 32) << 16) | ((uint32_t)(s40 >> 32) << 24);
    r->pos = 4;
}

static void refill(dd2_rng *r) {
    dd2_philox4x32_10(r->ctr, r->key, r->buf);
    r->ctr[0]++;
    r->pos = 0;
}

uint32_t dd2_rng_u32(dd2_rng *r) {
    if (r->pos >= 4) refill(r);
    return r->buf[r->pos++];
}

uint64_t dd2_rng_u64(dd2_rng *r) {
    uint64_t lo = dd2_rng_u32(r);
    uint64_t hi = dd2_rng_u32(r);
    return lo | (hi << 32);
}

float dd2_rng_uniform_f(dd2_rng *r) { return dd2_rng_u32_to_unit_f(dd2_rng_u32(r)); }

double dd2_rng_uniform(dd2_rng *r) { return dd2_rng_u64_to_unit(dd2_rng_u64(r)); }

double dd2_rng_normal(dd2_rng *r) {
    if (r->has_normal) {
        r->has_normal = 0;
        double z = r->normal;
        r->normal = 0.0;
        return z;
    }
    double u1 = (double)((dd2_rng_u64(r) >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    double u2 = dd2_rng_u64_to_unit(dd2_rng_u64(r));              /* [0, 1) */
    double rad = sqrt(-2.0 * log(u1));
    double th = 6.283185307179586476925286766559 * u2;
    r->normal = rad * sin(th);
    r->has_normal = 1;
    return rad * cos(th);
}

uint32_t dd2_rng_below(dd2_rng *r, uint32_t n) {
    if (n <= 1) return 0;
    uint32_t threshold = (uint32_t)(-n) % n; /* = 2^32 mod n: reject [0, threshold) */
    for (;;) {
        uint32_t x = dd2_rng_u32(r);
        if (x >= threshold) return x % n;
    }
}

void dd2_rng_fill_normal(dd2_rng *r, float *x, size_t n, float mean, float std) {
    for (size_t i = 0; i < n; i++) x[i] = mean + std * (float)dd2_rng_normal(r);
}

void dd2_rng_fill_uniform(dd2_rng *r, float *x, size_t n, float lo, float hi) {
    float top = nextafterf(hi, lo);
    for (size_t i = 0; i < n; i++) {
        float v = (float)((double)lo + ((double)hi - (double)lo) * (double)dd2_rng_uniform_f(r));
        x[i] = (lo < hi && v >= hi) ? top : v;
    }
}

void dd2_rng_permutation(dd2_rng *r, uint32_t *perm, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = dd2_rng_below(r, i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

/* ---- checkpoint state ---- */

void dd2_rng_save(const dd2_rng *r, uint32_t s[DD2_RNG_STATE_WORDS]) {
    uint64_t bits = 0;
    if (r->has_normal) memcpy(&bits, &r->normal, sizeof bits);
    s[0] = DD2_RNG_STATE_TAG;
    s[1] = r->key[0];
    s[2] = r->key[1];
    for (int i = 0; i < 4; i++) s[3 + i] = r->ctr[i];
    s[7] = r->pos;
    s[8] = r->has_normal ? 1u : 0u;
    s[9] = (uint32_t)bits;
    s[10] = (uint32_t)(bits >> 32);
    s[11] = 0;
}

int dd2_rng_restore(dd2_rng *r, const uint32_t s[DD2_RNG_STATE_WORDS], dd2_status *st) {
    if (s[0] != DD2_RNG_STATE_TAG)
        return DD2_FAIL(st, DD2_ERR_INPUT, "RNG state: bad format tag 0x%08x (expected 0x%08x)",
                        (unsigned)s[0], (unsigned)DD2_RNG_STATE_TAG);
    if (s[7] > 4 || s[8] > 1 || s[11] != 0)
        return DD2_FAIL(st, DD2_ERR_INPUT, "RNG state: invalid (pos %u, has_normal %u, reserved %u)",
                        (unsigned)s[7], (unsigned)s[8], (unsigned)s[11]);
    uint64_t bits = (uint64_t)s[9] | ((uint64_t)s[10] << 32);
    double z;
    memcpy(&z, &bits, sizeof z);
    if (s[8] && !isfinite(z))
        return DD2_FAIL(st, DD2_ERR_INPUT, "RNG state: cached normal is not finite");
    dd2_rng t;
    memset(&t, 0, sizeof t);
    t.key[0] = s[1];
    t.key[1] = s[2];
    for (int i = 0; i < 4; i++) t.ctr[i] = s[3 + i];
    t.pos = s[7];
    t.has_normal = s[8];
    t.normal = s[8] ? z : 0.0;
    if (t.pos < 4) {
        uint32_t c[4] = {t.ctr[0] - 1, t.ctr[1], t.ctr[2], t.ctr[3]};
        dd2_philox4x32_10(c, t.key, t.buf);
    }
    *r = t;
    return DD2_OK;
}
