#include "model/params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

#define ALIGN_FLOATS 16

void dd2_ptable_init(dd2_param_table *tab) { memset(tab, 0, sizeof *tab); }

void dd2_ptable_free(dd2_param_table *tab) {
    free(tab->t);
    memset(tab, 0, sizeof *tab);
}

int dd2_ptable_find(const dd2_param_table *tab, const char *name) {
    for (int i = 0; i < tab->n; i++)
        if (strcmp(tab->t[i].name, name) == 0) return i;
    return -1;
}

int dd2_ptable_add(dd2_param_table *tab, const char *name, int ndim, const int64_t *shape, int init, float std,
                   int decay, dd2_status *st) {
    if (strlen(name) >= DD2_TENSOR_NAME_MAX) {
        DD2_FAIL(st, DD2_ERR_RUNTIME, "tensor name too long: '%s'", name);
        return -1;
    }
    if (dd2_ptable_find(tab, name) >= 0) {
        DD2_FAIL(st, DD2_ERR_RUNTIME, "tensor '%s' registered twice", name);
        return -1;
    }
    if (ndim < 1 || ndim > DD2_TENSOR_MAX_DIMS) {
        DD2_FAIL(st, DD2_ERR_RUNTIME, "tensor '%s': %d dimensions (1..%d allowed)", name, ndim, DD2_TENSOR_MAX_DIMS);
        return -1;
    }
    if (tab->n == tab->cap) {
        int cap = tab->cap ? 2 * tab->cap : 32;
        dd2_tensor_info *t = realloc(tab->t, (size_t)cap * sizeof *t);
        if (!t) {
            DD2_FAIL(st, DD2_ERR_RUNTIME, "out of memory registering tensor '%s'", name);
            return -1;
        }
        tab->t = t;
        tab->cap = cap;
    }
    dd2_tensor_info *t = &tab->t[tab->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0) {
            DD2_FAIL(st, DD2_ERR_RUNTIME, "tensor '%s': dimension %d is %lld", name, d, (long long)shape[d]);
            return -1;
        }
        t->shape[d] = shape[d];
        t->numel *= (size_t)shape[d];
    }
    t->offset = (tab->numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    t->init = init;
    t->std = std;
    t->decay = decay;
    tab->numel = t->offset + t->numel;
    return tab->n++;
}

uint8_t *dd2_ptable_decay_mask(const dd2_param_table *tab, dd2_status *st) {
    uint8_t *mask = DD2_CALLOC(tab->numel, 1, st);
    if (!mask) return NULL;
    for (int i = 0; i < tab->n; i++)
        if (tab->t[i].decay) memset(mask + tab->t[i].offset, 1, tab->t[i].numel);
    return mask;
}

/* FNV-1a: the tensor's RNG stream is keyed by its name, not its position in the table. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static void init_tensor(const dd2_tensor_info *t, float *p, uint64_t seed) {
    dd2_rng rng;
    dd2_rng_init(&rng, seed, DD2_RNG_INIT, name_hash(t->name), 0);
    switch (t->init) {
    case DD2_INIT_ZEROS:
        memset(p, 0, t->numel * sizeof *p);
        break;
    case DD2_INIT_ONES:
        for (size_t i = 0; i < t->numel; i++) p[i] = 1.0f;
        break;
    case DD2_INIT_NORMAL:
        for (size_t i = 0; i < t->numel; i++) p[i] = t->std * (float)dd2_rng_normal(&rng);
        break;
    case DD2_INIT_XAVIER_UNIFORM: {
        double fan_out = (double)t->shape[0];
        double fan_in = t->ndim > 1 ? (double)(t->numel / (size_t)t->shape[0]) : 1.0;
        double a = sqrt(6.0 / (fan_in + fan_out));
        for (size_t i = 0; i < t->numel; i++) p[i] = (float)(a * (2.0 * dd2_rng_uniform(&rng) - 1.0));
        break;
    }
    }
}

int dd2_ptable_init_params(const dd2_param_table *tab, float *params, uint64_t seed, dd2_status *st) {
    memset(params, 0, tab->numel * sizeof *params);
    for (int i = 0; i < tab->n; i++) {
        if (tab->t[i].init < DD2_INIT_ZEROS || tab->t[i].init > DD2_INIT_XAVIER_UNIFORM)
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "tensor '%s': unknown init rule %d", tab->t[i].name, tab->t[i].init);
        init_tensor(&tab->t[i], params + tab->t[i].offset, seed);
    }
    return DD2_OK;
}

void dd2_tensor_describe(const dd2_tensor_info *t, char *buf, int n) {
    int k = snprintf(buf, (size_t)n, "%s [", t->name);
    for (int d = 0; d < t->ndim && k < n; d++)
        k += snprintf(buf + k, (size_t)(n - k), d ? ",%lld" : "%lld", (long long)t->shape[d]);
    if (k < n) snprintf(buf + k, (size_t)(n - k), "]");
}
