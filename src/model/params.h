/* Named tensors in one flat buffer.
 *
 * A network registers its tensors (name, shape, init rule, weight-decay flag) in a table; every
 * tensor gets an offset into one flat float array. Parameters, gradients, Adam moments and the
 * EMA copy are each one flat array of `numel` floats with the same layout, so: one memset, one
 * all-reduce, one shard rule (by offset), one HDF5 dataset per tensor in checkpoints.
 */
#ifndef DD2_MODEL_PARAMS_H
#define DD2_MODEL_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define DD2_TENSOR_NAME_MAX 96
#define DD2_TENSOR_MAX_DIMS 4

enum {
    DD2_INIT_ZEROS = 0,
    DD2_INIT_ONES,
    DD2_INIT_NORMAL,         /* normal(0, std) */
    DD2_INIT_XAVIER_UNIFORM, /* U(-a, a), a = sqrt(6 / (fan_in + fan_out)) for shape [out, in] */
};

typedef struct dd2_tensor_info {
    char name[DD2_TENSOR_NAME_MAX];
    int ndim;
    int64_t shape[DD2_TENSOR_MAX_DIMS];
    size_t offset; /* in floats, into the flat buffers */
    size_t numel;
    int init;      /* DD2_INIT_* */
    float std;     /* for DD2_INIT_NORMAL */
    int decay;     /* 1: AdamW weight decay applies (matrices); 0: norms, biases, embeddings */
} dd2_tensor_info;

typedef struct dd2_param_table {
    dd2_tensor_info *t;
    int n, cap;
    size_t numel; /* total floats */
} dd2_param_table;

void dd2_ptable_init(dd2_param_table *tab);
void dd2_ptable_free(dd2_param_table *tab);

/* Register a tensor; returns its index (>= 0) or -1 with st set (duplicate name, bad shape).
 * Offsets are assigned in registration order, each aligned to 16 floats (64 bytes). */
int dd2_ptable_add(dd2_param_table *tab, const char *name, int ndim, const int64_t *shape, int init, float std,
                   int decay, dd2_status *st);

/* Index of the tensor called `name`, or -1. */
int dd2_ptable_find(const dd2_param_table *tab, const char *name);

/* One byte per float: 1 where weight decay applies (for dd2_adamw_step). Caller frees. */
uint8_t *dd2_ptable_decay_mask(const dd2_param_table *tab, dd2_status *st);

/* Deterministic initialisation of params[0..numel) following each tensor's rule. Each tensor
 * draws from the RNG stream (seed, DD2_RNG_INIT, hash(name), 0), so its values do not depend on
 * which other tensors exist or in which order they were registered. Padding is zeroed. */
int dd2_ptable_init_params(const dd2_param_table *tab, float *params, uint64_t seed, dd2_status *st);

/* "wqkv [48,16]" style description of tensor i into buf. */
void dd2_tensor_describe(const dd2_tensor_info *t, char *buf, int n);

#endif
