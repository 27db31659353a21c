/* Generic finite-difference gradient check and float-vs-double comparison for the ops of
 * model/ops.h, shared by the tests/unit/test_ops*.c binaries.
 *
 * A case (gc_case) lists the tensors of one op call by role: differentiable inputs (GC_IN, each
 * with its gradient tensor, GC_GRAD), constant inputs (GC_CONST), the output that defines the
 * loss (GC_OUT), caches (GC_CACHE), the output gradient (GC_DOUT) and scratch (GC_SCRATCH).
 * Every tensor exists twice, double (c->d[i]) and float (c->f[i]); the case's fwd/bwd callbacks
 * call the _f64 ops on c->d when c->f32 == 0 and the float ops on c->f otherwise (GC_DUAL).
 *
 * gc_run(c) then
 *  1. gradient check in double: loss = Σ out ⊙ g (g random, passed as dout); every gradient
 *     buffer is pre-filled with random values first, so an op that writes `=` instead of
 *     accumulating `+=` fails (cases with c->assign, RoPE, start from zero instead); the
 *     numeric gradient of every GC_IN element is the central difference with step GC_EPS;
 *     rel = max|analytic − numeric| / max(max|numeric|, 1e-30) must be ≤ c->tol_fd; one line
 *     per tensor is printed ("rmsnorm dw rel 3.1e-10");
 *  2. NULL gradients: each gradient computed alone (the others passed as NULL) must equal,
 *     bitwise, the one computed with all of them, and the NULL ones must stay untouched;
 *  3. float vs double: inputs rounded to float, then every output, cache and gradient of the
 *     float ops must agree with the double ops within rel ≤ c->tol_32 (same rel definition).
 */
#ifndef DD2_TESTS_GRADCHECK_H
#define DD2_TESTS_GRADCHECK_H

#include <stdint.h>

#include "model/ops.h"
#include "model/ops_f64.h"
#include "test_util.h"

#define GC_MAXT 16
#define GC_EPS 1e-6

enum { GC_IN, GC_CONST, GC_OUT, GC_CACHE, GC_DOUT, GC_GRAD, GC_SCRATCH };

typedef struct gc_case gc_case;
struct gc_case {
    const char *op;                /* name printed in the report lines */
    int nt;                        /* number of tensors */
    const char *name[GC_MAXT];
    size_t n[GC_MAXT];             /* elements */
    int role[GC_MAXT];
    int grad_of[GC_MAXT];          /* GC_GRAD: index of its input */
    double *d[GC_MAXT];
    float *f[GC_MAXT];
    int nullg[GC_MAXT];            /* 1: the callbacks pass NULL for this gradient */
    int f32;                       /* precision the callbacks run in */
    int p[8];                      /* op dimensions, per case */
    int *iv;                       /* int inputs (indices, targets, step ids), per case */
    int assign;                    /* backward writes its gradient with `=` (RoPE) */
    double tol_fd, tol_32;
    void (*fwd)(gc_case *);
    void (*bwd)(gc_case *);        /* NULL: forward-only op (step 3 only) */
    double max_rel_fd;             /* worst gradient-check error of the case (report) */
};

/* Call macro M(suffix, tensor-array) in the case's current precision. */
#define GC_DUAL(c, M)                                                                              \
    do {                                                                                           \
        if ((c)->f32) {                                                                            \
            float **T = (c)->f;                                                                    \
            M(, T);                                                                                \
        } else {                                                                                   \
            double **T = (c)->d;                                                                   \
            M(_f64, T);                                                                            \
        }                                                                                          \
    } while (0)

/* A gradient argument: NULL when the case says so (used inside the callbacks, where c is set). */
#define GC_G(T, i) (c->nullg[i] ? NULL : (T)[i])

/* ---- deterministic random numbers (splitmix64) ---- */
static uint64_t gc_rng_state = 0x9e3779b97f4a7c15ull;
static inline void gc_seed(uint64_t s) { gc_rng_state = s * 0x9e3779b97f4a7c15ull + 1; }
static inline double gc_uniform(void) { /* [-1, 1) */
    uint64_t z = (gc_rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-52 - 1.0;
}
static inline void gc_fill(double *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * 0.5 * (gc_uniform() + 1.0);
}

static inline void gc_init(gc_case *c, const char *op) {
    memset(c, 0, sizeof *c);
    c->op = op;
    c->tol_fd = 1e-6;
    c->tol_32 = 1e-5;
}

/* Add a tensor of n elements; inputs get uniform values in [-1, 1), the rest zeros. Returns its
 * index, which must equal `expect` (the case's enum), so the callbacks' indices stay honest. */
static inline int gc_add(gc_case *c, int expect, const char *name, size_t n, int role) {
    int i = c->nt++;
    if (i != expect || i >= GC_MAXT) {
        fprintf(stderr, "gradcheck: %s: tensor %s has index %d, expected %d\n", c->op, name, i,
                expect);
        abort();
    }
    c->name[i] = name;
    c->n[i] = n;
    c->role[i] = role;
    c->grad_of[i] = -1;
    c->d[i] = calloc(n ? n : 1, sizeof(double));
    c->f[i] = calloc(n ? n : 1, sizeof(float));
    if (!c->d[i] || !c->f[i]) abort();
    if (role == GC_IN || role == GC_CONST) gc_fill(c->d[i], n, -1, 1);
    return i;
}

/* Add the gradient tensor of input `of` (same size). */
static inline int gc_add_grad(gc_case *c, int expect, const char *name, int of) {
    int i = gc_add(c, expect, name, c->n[of], GC_GRAD);
    c->grad_of[i] = of;
    return i;
}

static inline void gc_free(gc_case *c) {
    for (int i = 0; i < c->nt; i++) {
        free(c->d[i]);
        free(c->f[i]);
    }
    free(c->iv);
    c->nt = 0;
    c->iv = NULL;
}

static inline int gc_find(const gc_case *c, int role) {
    for (int i = 0; i < c->nt; i++)
        if (c->role[i] == role) return i;
    return -1;
}

static inline double gc_maxabs(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

static inline double gc_loss(const gc_case *c, int out, int dout) {
    double s = 0;
    for (size_t i = 0; i < c->n[out]; i++) s += c->d[out][i] * c->d[dout][i];
    return s;
}

/* max|a − b| / max(max|b|, 1e-30) */
static inline double gc_rel(const double *a, const double *b, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i] - b[i]) > e) e = fabs(a[i] - b[i]);
    double m = gc_maxabs(b, n);
    return e / (m > 1e-30 ? m : 1e-30);
}

static inline void gc_zero_grads(gc_case *c) {
    for (int i = 0; i < c->nt; i++)
        if (c->role[i] == GC_GRAD) {
            memset(c->d[i], 0, c->n[i] * sizeof(double));
            memset(c->f[i], 0, c->n[i] * sizeof(float));
        }
}

static inline void gc_gradcheck(gc_case *c) {
    int out = gc_find(c, GC_OUT), dout = gc_find(c, GC_DOUT);
    c->f32 = 0;
    gc_fill(c->d[dout], c->n[dout], -1, 1);
    double *pre[GC_MAXT] = {0};
    for (int i = 0; i < c->nt; i++)
        if (c->role[i] == GC_GRAD) {
            pre[i] = calloc(c->n[i], sizeof(double));
            if (!c->assign) gc_fill(pre[i], c->n[i], -1, 1);
            memcpy(c->d[i], pre[i], c->n[i] * sizeof(double));
        }
    c->fwd(c);
    c->bwd(c);
    for (int gi = 0; gi < c->nt; gi++) {
        if (c->role[gi] != GC_GRAD) continue;
        int in = c->grad_of[gi];
        size_t n = c->n[in];
        double *ana = malloc(n * sizeof(double)), *num = malloc(n * sizeof(double));
        for (size_t j = 0; j < n; j++) ana[j] = c->d[gi][j] - pre[gi][j];
        for (size_t j = 0; j < n; j++) {
            double x0 = c->d[in][j];
            c->d[in][j] = x0 + GC_EPS;
            c->fwd(c);
            double lp = gc_loss(c, out, dout);
            c->d[in][j] = x0 - GC_EPS;
            c->fwd(c);
            double lm = gc_loss(c, out, dout);
            c->d[in][j] = x0;
            num[j] = (lp - lm) / (2 * GC_EPS);
        }
        double rel = gc_rel(ana, num, n), mx = gc_maxabs(num, n);
        if (rel > c->max_rel_fd) c->max_rel_fd = rel;
        printf("  %-24s %-7s rel %.1e  (max|grad| %.2g)\n", c->op, c->name[gi], rel, mx);
        CHECK_MSG(rel <= c->tol_fd, "%s %s: gradient check rel %.3g > %.1g", c->op, c->name[gi],
                  rel, c->tol_fd);
        CHECK_MSG(mx > 1e-6, "%s %s: numeric gradient is zero: the check would be vacuous", c->op,
                  c->name[gi]);
        free(ana);
        free(num);
    }
    c->fwd(c); /* restore outputs and caches at the unperturbed inputs */
    for (int i = 0; i < c->nt; i++) free(pre[i]);
}

static inline void gc_nullcheck(gc_case *c) {
    c->f32 = 0;
    c->fwd(c);
    gc_zero_grads(c);
    c->bwd(c);
    double *full[GC_MAXT] = {0};
    for (int i = 0; i < c->nt; i++)
        if (c->role[i] == GC_GRAD) {
            full[i] = malloc(c->n[i] * sizeof(double));
            memcpy(full[i], c->d[i], c->n[i] * sizeof(double));
        }
    for (int k = -1; k < c->nt; k++) { /* k: the one gradient computed; -1: none of them */
        if (k >= 0 && c->role[k] != GC_GRAD) continue;
        gc_zero_grads(c);
        for (int i = 0; i < c->nt; i++) c->nullg[i] = c->role[i] == GC_GRAD && i != k;
        c->bwd(c);
        for (int i = 0; i < c->nt; i++) {
            if (c->role[i] != GC_GRAD) continue;
            if (i == k)
                CHECK_MSG(memcmp(c->d[i], full[i], c->n[i] * sizeof(double)) == 0,
                          "%s %s: computed alone differs from computed with the others", c->op,
                          c->name[i]);
            else
                CHECK_MSG(gc_maxabs(c->d[i], c->n[i]) == 0, "%s %s: written although passed as NULL",
                          c->op, c->name[i]);
        }
    }
    for (int i = 0; i < c->nt; i++) {
        c->nullg[i] = 0;
        free(full[i]);
    }
}

static inline void gc_compare32(gc_case *c) {
    int dout = gc_find(c, GC_DOUT);
    if (dout >= 0 && gc_maxabs(c->d[dout], c->n[dout]) == 0) gc_fill(c->d[dout], c->n[dout], -1, 1);
    for (int i = 0; i < c->nt; i++) {
        int r = c->role[i];
        if (r == GC_IN || r == GC_CONST || r == GC_DOUT) {
            for (size_t j = 0; j < c->n[i]; j++) {
                c->f[i][j] = (float)c->d[i][j];
                c->d[i][j] = c->f[i][j];
            }
        } else {
            memset(c->d[i], 0, c->n[i] * sizeof(double));
            memset(c->f[i], 0, c->n[i] * sizeof(float));
        }
    }
    for (int prec = 1; prec >= 0; prec--) {
        c->f32 = prec;
        c->fwd(c);
        if (c->bwd) c->bwd(c);
    }
    c->f32 = 0;
    for (int i = 0; i < c->nt; i++) {
        int r = c->role[i];
        if (r != GC_OUT && r != GC_CACHE && r != GC_GRAD) continue;
        size_t n = c->n[i];
        double *f = malloc(n * sizeof(double));
        for (size_t j = 0; j < n; j++) f[j] = c->f[i][j];
        double rel = gc_rel(f, c->d[i], n);
        printf("  %-24s %-7s f32/f64 rel %.1e\n", c->op, c->name[i], rel);
        CHECK_MSG(rel <= c->tol_32, "%s %s: float vs double rel %.3g > %.1g", c->op, c->name[i],
                  rel, c->tol_32);
        free(f);
    }
}

/* Run the three checks on a prepared case, then free it. */
static inline void gc_run(gc_case *c) {
    if (c->bwd) {
        gc_gradcheck(c);
        gc_nullcheck(c);
    }
    gc_compare32(c);
    gc_free(c);
}

#endif
