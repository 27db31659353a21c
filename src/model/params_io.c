#include "model/params_io.h"

#include <stdio.h>
#include <string.h>

static int dataset_name(const char *group, const char *tensor, char *out, size_t n, dd2_status *st) {
    if ((size_t)snprintf(out, n, "%s/%s", group, tensor) >= n)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "dataset name too long: %s/%s", group, tensor);
    return DD2_OK;
}

int dd2_params_write_h5(dd2_h5 *h, const char *group, const dd2_param_table *tab, const float *buf, dd2_status *st) {
    char name[256];
    for (int i = 0; i < tab->n; i++) {
        const dd2_tensor_info *t = &tab->t[i];
        DD2_TRY(dataset_name(group, t->name, name, sizeof name, st));
        DD2_TRY(dd2_h5_write_f32(h, name, t->ndim, t->shape, buf + t->offset, st));
    }
    return DD2_OK;
}

typedef struct known_ctx {
    const dd2_param_table *tab;
    size_t prefix; /* strlen(group) + 1 */
} known_ctx;

/* A dataset of the file's group that the model does not have: the file holds a larger network
 * (more blocks), which would otherwise load as a silently truncated one. */
static int check_known(const char *name, void *ctx, dd2_status *st) {
    const known_ctx *k = ctx;
    if (dd2_ptable_find(k->tab, name + k->prefix) >= 0) return DD2_OK;
    return DD2_FAIL(st, DD2_ERR_INPUT, "tensor '%s' is in the file but not in the model (the file's network is larger)",
                    name + k->prefix);
}

int dd2_params_read_h5(dd2_h5 *h, const char *group, const dd2_param_table *tab, float *buf, dd2_status *st) {
    char name[256];
    for (int i = 0; i < tab->n; i++) {
        const dd2_tensor_info *t = &tab->t[i];
        DD2_TRY(dataset_name(group, t->name, name, sizeof name, st));
        DD2_TRY(dd2_h5_read_f32(h, name, t->ndim, t->shape, buf + t->offset, st));
    }
    known_ctx k = {tab, strlen(group) + 1};
    return dd2_h5_list_datasets(h, group, check_known, &k, st);
}
