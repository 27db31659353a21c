/* The FID feature network (model/featnet.h): an MLP classifier built from the ops of model/ops.h. */
#include "model/featnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/rng.h"
#include "io/h5io.h"
#include "model/ops.h"
#include "model/optim.h"

enum { CHUNK = 512 }; /* rows per forward chunk (inference) */

/* ---- construction ---------------------------------------------------------------------------- */

static int add_linear(dd2_featnet *net, const char *prefix, int out, int in, int *tw, int *tb, dd2_status *st) {
    char name[DD2_TENSOR_NAME_MAX];
    int64_t wshape[2] = {out, in}, bshape[1] = {out};
    snprintf(name, sizeof name, "%s.weight", prefix);
    *tw = dd2_ptable_add(&net->tab, name, 2, wshape, DD2_INIT_XAVIER_UNIFORM, 0.0f, 1, st);
    if (*tw < 0) return st ? st->code : DD2_ERR_RUNTIME;
    snprintf(name, sizeof name, "%s.bias", prefix);
    *tb = dd2_ptable_add(&net->tab, name, 1, bshape, DD2_INIT_ZEROS, 0.0f, 0, st);
    if (*tb < 0) return st ? st->code : DD2_ERR_RUNTIME;
    return DD2_OK;
}

/* Register the tensors and allocate the parameters (uninitialised). */
static int build(dd2_featnet *net, int in_dim, int hidden, int dim, int classes, dd2_status *st) {
    memset(net, 0, sizeof *net);
    if (in_dim < 1 || hidden < 1 || dim < 1 || classes < 2 || classes > DD2_FEATNET_MAX_CLASSES)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "feature network: bad dimensions in %d, hidden %d, dim %d, classes %d "
                        "(expected >= 1 each and 2 <= classes <= %d)",
                        in_dim, hidden, dim, classes, DD2_FEATNET_MAX_CLASSES);
    net->in_dim = in_dim;
    net->hidden = hidden;
    net->dim = dim;
    net->classes = classes;
    net->test_accuracy = -1.0;
    snprintf(net->name, sizeof net->name, "mlp%d-%d-%d-%d-gelu", in_dim, hidden, dim, classes);
    dd2_ptable_init(&net->tab);
    int rc = add_linear(net, "fc1", hidden, in_dim, &net->t_w1, &net->t_b1, st);
    if (rc == DD2_OK) rc = add_linear(net, "fc2", dim, hidden, &net->t_w2, &net->t_b2, st);
    if (rc == DD2_OK) rc = add_linear(net, "head", classes, dim, &net->t_w3, &net->t_b3, st);
    if (rc == DD2_OK) {
        net->params = DD2_CALLOC(net->tab.numel, sizeof(float), st);
        if (!net->params) rc = DD2_ERR_RUNTIME;
    }
    if (rc != DD2_OK) {
        dd2_ptable_free(&net->tab);
        memset(net, 0, sizeof *net);
    }
    return rc;
}

int dd2_featnet_init(dd2_featnet *net, int in_dim, int hidden, int dim, int classes, uint64_t seed,
                     dd2_status *st) {
    DD2_TRY(build(net, in_dim, hidden, dim, classes, st));
    int rc = dd2_ptable_init_params(&net->tab, net->params, seed, st);
    if (rc != DD2_OK) {
        dd2_featnet_free(net);
        return rc;
    }
    dd2_featnet_update_checksum(net);
    return DD2_OK;
}

void dd2_featnet_free(dd2_featnet *net) {
    if (!net) return;
    dd2_ptable_free(&net->tab);
    free(net->params);
    free(net->ws);
    memset(net, 0, sizeof *net);
}

static float *tensor(const dd2_featnet *net, int i) { return net->params + net->tab.t[i].offset; }

uint32_t dd2_featnet_compute_checksum(const dd2_featnet *net) {
    uint32_t crc = 0;
    for (int i = 0; i < net->tab.n; i++)
        crc = dd2_h5_crc32(crc, tensor(net, i), net->tab.t[i].numel * sizeof(float));
    return crc;
}

void dd2_featnet_update_checksum(dd2_featnet *net) { net->checksum = dd2_featnet_compute_checksum(net); }

/* ---- forward ----------------------------------------------------------------------------------- */

/* Activations of one chunk of `rows` rows; pointers into one allocation. */
typedef struct acts {
    float *x, *a1, *h1, *a2, *h2, *logits;
} acts;

static size_t acts_floats(const dd2_featnet *net, size_t rows) {
    return rows * (size_t)(net->in_dim + 2 * net->hidden + 2 * net->dim + net->classes);
}

static void acts_carve(const dd2_featnet *net, float *base, size_t rows, acts *a) {
    a->x = base;
    a->a1 = a->x + rows * (size_t)net->in_dim;
    a->h1 = a->a1 + rows * (size_t)net->hidden;
    a->a2 = a->h1 + rows * (size_t)net->hidden;
    a->h2 = a->a2 + rows * (size_t)net->dim;
    a->logits = a->h2 + rows * (size_t)net->dim;
}

static int ensure_ws(dd2_featnet *net, size_t rows, dd2_status *st) {
    if (net->ws && net->ws_rows >= rows) return DD2_OK;
    float *p = DD2_MALLOC(acts_floats(net, rows) * sizeof(float), st);
    if (!p) return DD2_ERR_RUNTIME;
    free(net->ws);
    net->ws = p;
    net->ws_rows = rows;
    return DD2_OK;
}

/* x -> a1, h1, a2, h2 (h2 may be given elsewhere), logits (skipped when NULL). */
static void forward_rows(const dd2_featnet *net, const float *x, size_t n, float *a1, float *h1, float *a2,
                         float *h2, float *logits) {
    op_matmul_forward(a1, x, tensor(net, net->t_w1), tensor(net, net->t_b1), n, net->in_dim, net->hidden);
    op_gelu_forward(h1, a1, n * (size_t)net->hidden);
    op_matmul_forward(a2, h1, tensor(net, net->t_w2), tensor(net, net->t_b2), n, net->hidden, net->dim);
    op_gelu_forward(h2, a2, n * (size_t)net->dim);
    if (logits)
        op_matmul_forward(logits, h2, tensor(net, net->t_w3), tensor(net, net->t_b3), n, net->dim, net->classes);
}

static int forward_any(dd2_featnet *net, const float *x, const uint8_t *img, size_t n, float *feat, float *logits,
                       dd2_status *st) {
    if (n == 0) return DD2_OK;
    size_t cap = n < CHUNK ? n : CHUNK;
    DD2_TRY(ensure_ws(net, cap, st));
    acts a;
    acts_carve(net, net->ws, cap, &a);
    const size_t in = (size_t)net->in_dim;
    for (size_t r0 = 0; r0 < n; r0 += cap) {
        size_t m = n - r0 < cap ? n - r0 : cap;
        const float *xin;
        if (img) {
            const uint8_t *src = img + r0 * in;
            for (size_t k = 0; k < m * in; k++) a.x[k] = dd2_featnet_pixel(src[k]);
            xin = a.x;
        } else {
            xin = x + r0 * in;
        }
        float *h2 = feat ? feat + r0 * (size_t)net->dim : a.h2;
        float *lg = logits ? logits + r0 * (size_t)net->classes : NULL;
        forward_rows(net, xin, m, a.a1, a.h1, a.a2, h2, lg);
    }
    return DD2_OK;
}

int dd2_featnet_forward(dd2_featnet *net, const float *x, size_t n, float *feat, float *logits, dd2_status *st) {
    return forward_any(net, x, NULL, n, feat, logits, st);
}

int dd2_featnet_forward_u8(dd2_featnet *net, const uint8_t *img, size_t n, float *feat, float *logits,
                           dd2_status *st) {
    return forward_any(net, NULL, img, n, feat, logits, st);
}

static int check_data(const dd2_featnet *net, const dd2_featnet_data *d, dd2_status *st) {
    if (!d || (!d->u8) == (!d->f32) || !d->labels)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "feature network: data needs labels and exactly one of u8 / f32 images");
    for (size_t i = 0; i < d->n; i++)
        if (d->labels[i] >= net->classes)
            return DD2_FAIL(st, DD2_ERR_INPUT, "feature network: label %u of example %zu is not below %d classes",
                            (unsigned)d->labels[i], i, net->classes);
    return DD2_OK;
}

static int argmax(const float *v, int n) {
    int best = 0;
    for (int j = 1; j < n; j++)
        if (v[j] > v[best]) best = j;
    return best;
}

int dd2_featnet_accuracy(dd2_featnet *net, const dd2_featnet_data *data, double *accuracy, dd2_status *st) {
    DD2_TRY(check_data(net, data, st));
    if (data->n == 0) return DD2_FAIL(st, DD2_ERR_INPUT, "feature network: accuracy of an empty data set");
    const size_t C = (size_t)net->classes, in = (size_t)net->in_dim;
    float *logits = DD2_MALLOC(CHUNK * C * sizeof(float), st);
    if (!logits) return DD2_ERR_RUNTIME;
    size_t correct = 0;
    int rc = DD2_OK;
    for (size_t r0 = 0; r0 < data->n && rc == DD2_OK; r0 += CHUNK) {
        size_t m = data->n - r0 < CHUNK ? data->n - r0 : CHUNK;
        rc = data->u8 ? dd2_featnet_forward_u8(net, data->u8 + r0 * in, m, NULL, logits, st)
                      : dd2_featnet_forward(net, data->f32 + r0 * in, m, NULL, logits, st);
        for (size_t i = 0; rc == DD2_OK && i < m; i++)
            correct += argmax(logits + i * C, net->classes) == data->labels[r0 + i];
    }
    free(logits);
    if (rc == DD2_OK) *accuracy = (double)correct / (double)data->n;
    return rc;
}

/* ---- training ----------------------------------------------------------------------------------- */

int dd2_featnet_train(dd2_featnet *net, const dd2_featnet_data *data, const dd2_featnet_train_opts *opts,
                      double *final_loss, dd2_status *st) {
    DD2_TRY(check_data(net, data, st));
    if (opts->epochs < 1 || opts->batch < 1 || !(opts->lr > 0) || !(opts->weight_decay >= 0))
        return DD2_FAIL(st, DD2_ERR_INPUT, "feature network: bad training options (epochs %d, batch %d, lr %g, wd %g)",
                        opts->epochs, opts->batch, opts->lr, opts->weight_decay);
    if (data->n == 0 || data->n > UINT32_MAX)
        return DD2_FAIL(st, DD2_ERR_INPUT, "feature network: training set of %zu examples", data->n);
    const size_t N = data->n, in = (size_t)net->in_dim, H = (size_t)net->hidden, D = (size_t)net->dim,
                 C = (size_t)net->classes, P = net->tab.numel;
    const size_t B = (size_t)opts->batch < N ? (size_t)opts->batch : N;
    const long steps_per_epoch = (long)(N / B);
    const long total = steps_per_epoch * opts->epochs;

    /* one allocation for: activations, their gradients (dlogits, dh2, da2, dh1, da1), losses,
     * grads, Adam m, v; plus targets, the permutation and the decay mask */
    size_t nf = acts_floats(net, B) + B * (C + 2 * D + 2 * H) + 2 * B + 3 * P;
    float *buf = DD2_CALLOC(nf, sizeof(float), st);
    int *targets = DD2_MALLOC(B * sizeof(int), st);
    uint32_t *perm = DD2_MALLOC(N * sizeof(uint32_t), st);
    uint8_t *mask = dd2_ptable_decay_mask(&net->tab, st);
    int rc = (buf && targets && perm && mask) ? DD2_OK : DD2_ERR_RUNTIME;
    acts a = {0};
    float *dlogits = NULL, *dh2 = NULL, *da2 = NULL, *dh1 = NULL, *da1 = NULL, *losses = NULL, *dlosses = NULL,
          *grads = NULL, *m = NULL, *v = NULL;
    if (rc == DD2_OK) {
        acts_carve(net, buf, B, &a);
        dlogits = buf + acts_floats(net, B);
        dh2 = dlogits + B * C;
        da2 = dh2 + B * D;
        dh1 = da2 + B * D;
        da1 = dh1 + B * H;
        losses = da1 + B * H;
        dlosses = losses + B;
        grads = dlosses + B;
        m = grads + P;
        v = m + P;
        for (size_t i = 0; i < B; i++) dlosses[i] = 1.0f / (float)B;
    }
    const dd2_adam_cfg adam = {0.9f, 0.999f, 1e-8f, (float)opts->weight_decay};
    dd2_lr_schedule sched = {DD2_LR_COSINE, opts->lr, opts->lr / 100.0, 0.0, total / 20, total, 0};
    dd2_progress prog;
    if (!opts->quiet) dd2_progress_begin(&prog, opts->label ? opts->label : "featnet", 0, total, 10.0);
    double epoch_loss = NAN;
    long step = 0;
    for (int ep = 0; ep < opts->epochs && rc == DD2_OK; ep++) {
        dd2_rng rng;
        dd2_rng_init(&rng, opts->seed, DD2_RNG_DATA_ORDER, (uint64_t)ep, DD2_FEATNET_RNG_STEP);
        dd2_rng_permutation(&rng, perm, (uint32_t)N);
        double loss_sum = 0.0;
        for (long s = 0; s < steps_per_epoch && rc == DD2_OK; s++, step++) {
            /* gather the batch */
            for (size_t i = 0; i < B; i++) {
                size_t r = perm[(size_t)s * B + i];
                if (data->u8)
                    for (size_t k = 0; k < in; k++) a.x[i * in + k] = dd2_featnet_pixel(data->u8[r * in + k]);
                else
                    memcpy(a.x + i * in, data->f32 + r * in, in * sizeof(float));
                targets[i] = data->labels[r];
            }
            forward_rows(net, a.x, B, a.a1, a.h1, a.a2, a.h2, a.logits);
            op_crossentropy_forward(losses, a.logits, a.logits, targets, B, (int)C); /* logits -> probs */
            double l = 0.0;
            for (size_t i = 0; i < B; i++) l += losses[i];
            l /= (double)B;
            if (!isfinite(l)) {
                rc = DD2_FAIL(st, DD2_ERR_RUNTIME, "feature network: loss is %g at step %ld (lr %g too high?)", l,
                              step, opts->lr);
                break;
            }
            loss_sum += l;
            /* backward (gradients accumulate: zero them first) */
            memset(dlogits, 0, B * (C + 2 * D + 2 * H) * sizeof(float));
            memset(grads, 0, P * sizeof(float));
            op_crossentropy_backward(dlogits, dlosses, a.logits, targets, B, (int)C);
            op_matmul_backward(dh2, grads + net->tab.t[net->t_w3].offset, grads + net->tab.t[net->t_b3].offset,
                               dlogits, a.h2, tensor(net, net->t_w3), B, (int)D, (int)C);
            op_gelu_backward(da2, dh2, a.a2, B * D);
            op_matmul_backward(dh1, grads + net->tab.t[net->t_w2].offset, grads + net->tab.t[net->t_b2].offset,
                               da2, a.h1, tensor(net, net->t_w2), B, (int)H, (int)D);
            op_gelu_backward(da1, dh1, a.a1, B * H);
            op_matmul_backward(NULL, grads + net->tab.t[net->t_w1].offset, grads + net->tab.t[net->t_b1].offset,
                               da1, a.x, tensor(net, net->t_w1), B, (int)in, (int)H);
            dd2_adamw_step(net->params, grads, m, v, mask, P, (float)dd2_lr_at(&sched, step), &adam, step + 1);
            if (!opts->quiet) {
                char extra[64];
                snprintf(extra, sizeof extra, "epoch %d loss %.4f", ep + 1, l);
                dd2_progress_update(&prog, step + 1, extra);
            }
        }
        if (rc != DD2_OK) break;
        epoch_loss = loss_sum / (double)steps_per_epoch;
        if (opts->eval && !opts->quiet) {
            double acc;
            rc = dd2_featnet_accuracy(net, opts->eval, &acc, st);
            if (rc == DD2_OK) dd2_info("featnet: epoch %d/%d: train loss %.4f, test accuracy %.2f%%", ep + 1,
                                       opts->epochs, epoch_loss, 100.0 * acc);
        }
    }
    if (!opts->quiet) {
        char extra[64];
        snprintf(extra, sizeof extra, "loss %.4f", epoch_loss);
        dd2_progress_end(&prog, extra);
    }
    free(buf);
    free(targets);
    free(perm);
    free(mask);
    dd2_featnet_update_checksum(net);
    if (rc != DD2_OK) return rc;
    if (!dd2_all_finite(net->params, P))
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "feature network: non-finite weights after training");
    net->train_epochs = opts->epochs;
    net->train_batch = opts->batch;
    net->train_lr = opts->lr;
    net->train_seed = (int64_t)opts->seed;
    net->train_n = (int64_t)N;
    net->test_accuracy = -1.0; /* the caller measures it */
    if (final_loss) *final_loss = epoch_loss;
    return DD2_OK;
}

/* ---- files -------------------------------------------------------------------------------------- */

static int save_body(const dd2_featnet *net, dd2_h5 *h, dd2_status *st) {
    for (int i = 0; i < net->tab.n; i++) {
        const dd2_tensor_info *t = &net->tab.t[i];
        char name[DD2_TENSOR_NAME_MAX + 16];
        snprintf(name, sizeof name, "params/%s", t->name);
        DD2_TRY(dd2_h5_write_f32(h, name, t->ndim, t->shape, tensor(net, i), st));
    }
    DD2_TRY(dd2_h5_attr_set_str(h, NULL, "format", DD2_FEATNET_FORMAT, st));
    DD2_TRY(dd2_h5_attr_set_str(h, NULL, "name", net->name, st));
    DD2_TRY(dd2_h5_attr_set_str(h, NULL, "activation", "gelu", st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "in_dim", net->in_dim, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "hidden", net->hidden, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "dim", net->dim, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "classes", net->classes, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "feature_extractor_checksum", (int64_t)dd2_featnet_compute_checksum(net), st));
    DD2_TRY(dd2_h5_attr_set_f64(h, NULL, "test_accuracy", net->test_accuracy, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "train_epochs", net->train_epochs, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "train_batch", net->train_batch, st));
    DD2_TRY(dd2_h5_attr_set_f64(h, NULL, "train_lr", net->train_lr, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "train_seed", net->train_seed, st));
    DD2_TRY(dd2_h5_attr_set_i64(h, NULL, "train_n", net->train_n, st));
    return DD2_OK;
}

int dd2_featnet_save(const dd2_featnet *net, const char *path, dd2_status *st) {
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_create_atomic(path, &h, st));
    int rc = save_body(net, h, st);
    if (rc != DD2_OK) {
        dd2_h5_abort(h);
        return rc;
    }
    return dd2_h5_close(h, st);
}

static int get_dim(dd2_h5 *h, const char *attr, int *out, dd2_status *st) {
    int64_t v;
    DD2_TRY(dd2_h5_attr_get_i64(h, NULL, attr, &v, st));
    if (v < 1 || v > (1 << 24))
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: attribute '%s' = %lld is out of range", dd2_h5_path(h), attr,
                        (long long)v);
    *out = (int)v;
    return DD2_OK;
}

static int load_body(dd2_h5 *h, dd2_featnet *net, dd2_status *st) {
    const char *path = dd2_h5_path(h);
    char *fmt = NULL;
    DD2_TRY(dd2_h5_attr_get_str(h, NULL, "format", &fmt, st));
    int ok = strcmp(fmt, DD2_FEATNET_FORMAT) == 0;
    if (!ok) {
        int rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: not a feature network (format '%s', expected '%s')", path, fmt,
                          DD2_FEATNET_FORMAT);
        free(fmt);
        return rc;
    }
    free(fmt);
    int in_dim, hidden, dim, classes;
    DD2_TRY(get_dim(h, "in_dim", &in_dim, st));
    DD2_TRY(get_dim(h, "hidden", &hidden, st));
    DD2_TRY(get_dim(h, "dim", &dim, st));
    DD2_TRY(get_dim(h, "classes", &classes, st));
    DD2_TRY_CTX(build(net, in_dim, hidden, dim, classes, st), st, "%s", path);
    for (int i = 0; i < net->tab.n; i++) {
        const dd2_tensor_info *t = &net->tab.t[i];
        char name[DD2_TENSOR_NAME_MAX + 16];
        snprintf(name, sizeof name, "params/%s", t->name);
        DD2_TRY(dd2_h5_read_f32(h, name, t->ndim, t->shape, tensor(net, i), st));
    }
    int64_t stored, v;
    DD2_TRY(dd2_h5_attr_get_i64(h, NULL, "feature_extractor_checksum", &stored, st));
    dd2_featnet_update_checksum(net);
    if ((uint64_t)stored != (uint64_t)net->checksum)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "%s: feature-extractor checksum mismatch (stored 0x%08llx, computed 0x%08x from the weights)",
                        path, (unsigned long long)stored, (unsigned)net->checksum);
    if (!dd2_all_finite(net->params, net->tab.numel))
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: non-finite weights", path);
    DD2_TRY(dd2_h5_attr_get_f64(h, NULL, "test_accuracy", &net->test_accuracy, st));
    DD2_TRY(dd2_h5_attr_get_i64(h, NULL, "train_epochs", &v, st));
    net->train_epochs = (int)v;
    DD2_TRY(dd2_h5_attr_get_i64(h, NULL, "train_batch", &v, st));
    net->train_batch = (int)v;
    DD2_TRY(dd2_h5_attr_get_f64(h, NULL, "train_lr", &net->train_lr, st));
    DD2_TRY(dd2_h5_attr_get_i64(h, NULL, "train_seed", &net->train_seed, st));
    DD2_TRY(dd2_h5_attr_get_i64(h, NULL, "train_n", &net->train_n, st));
    return DD2_OK;
}

int dd2_featnet_load(const char *path, dd2_featnet *net, dd2_status *st) {
    memset(net, 0, sizeof *net);
    dd2_h5 *h = NULL;
    DD2_TRY(dd2_h5_open_read(path, &h, st));
    int rc = load_body(h, net, st);
    if (rc != DD2_OK) {
        dd2_featnet_free(net);
        dd2_h5_abort(h);
        return rc;
    }
    rc = dd2_h5_close(h, st);
    if (rc != DD2_OK) dd2_featnet_free(net);
    return rc;
}
