#include "model/params_io.h"

#include <stdio.h>

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

int dd2_params_read_h5(dd2_h5 *h, const char *group, const dd2_param_table *tab, float *buf, dd2_status *st) {
    char name[256];
    for (int i = 0; i < tab->n; i++) {
        const dd2_tensor_info *t = &tab->t[i];
        DD2_TRY(dataset_name(group, t->name, name, sizeof name, st));
        DD2_TRY(dd2_h5_read_f32(h, name, t->ndim, t->shape, buf + t->offset, st));
    }
    return DD2_OK;
}
