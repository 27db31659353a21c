/* The image dataset of the config's `data` section (train/dataset.h). */
#include "train/dataset.h"

#include <stdio.h>
#include <string.h>

void dd2_image_split_free(dd2_image_split *s) {
    if (!s) return;
    dd2_idx_free(&s->img);
    dd2_idx_free(&s->lab);
    memset(s, 0, sizeof *s);
}

static int join(const char *dir, const char *name, char *out, size_t n, dd2_status *st) {
    int m = name[0] == '/' ? snprintf(out, n, "%s", name) : snprintf(out, n, "%s/%s", dir, name);
    if (m < 0 || (size_t)m >= n) return DD2_FAIL(st, DD2_ERR_INPUT, "path too long: %s/%s", dir, name);
    return DD2_OK;
}

int dd2_dataset_load(const dd2_config *cfg, int test, dd2_image_split *s, dd2_status *st) {
    memset(s, 0, sizeof *s);
    const char *images = test ? cfg->data.test_images : cfg->data.train_images;
    const char *labels = test ? cfg->data.test_labels : cfg->data.train_labels;
    const int limit = test ? cfg->data.test_limit : cfg->data.train_limit;
    char lpath[1100];
    DD2_TRY(join(cfg->data.dir, images, s->path, sizeof s->path, st));
    DD2_TRY(join(cfg->data.dir, labels, lpath, sizeof lpath, st));
    DD2_TRY(dd2_idx_read(s->path, &s->img, st));
    int rc = dd2_idx_read(lpath, &s->lab, st);
    if (rc != DD2_OK) {
        dd2_image_split_free(s);
        return rc;
    }
    const int S = cfg->data.image_size, ch = cfg->data.channels;
    int img_ch = s->img.ndim == 4 ? (int)s->img.dims[3] : 1;
    if (s->img.ndim != 3 && s->img.ndim != 4)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: expected images [N,H,W] or [N,H,W,C], found %d dims", s->path,
                      s->img.ndim);
    else if (s->lab.ndim != 1)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: expected labels [N], found %d dims", lpath, s->lab.ndim);
    else if ((int)s->img.dims[1] != S || (int)s->img.dims[2] != S)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: images are %ux%u, but data.image_size = %d", s->path, s->img.dims[1],
                      s->img.dims[2], S);
    else if (img_ch != ch)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: images have %d channel(s), but data.channels = %d", s->path, img_ch, ch);
    else if (s->img.dims[0] != s->lab.dims[0])
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: %u images but %s has %u labels", s->path, s->img.dims[0], lpath,
                      s->lab.dims[0]);
    else if (s->img.dims[0] < 1)
        rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: no images", s->path);
    if (rc == DD2_OK) {
        s->n = s->img.dims[0];
        if (limit > 0 && (size_t)limit < s->n) s->n = (size_t)limit;
        s->in_dim = (size_t)s->img.dims[1] * s->img.dims[2] * (size_t)img_ch;
        for (size_t i = 0; rc == DD2_OK && i < s->n; i++)
            if (s->lab.data[i] >= cfg->data.n_classes)
                rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: label %u of example %zu is not below data.n_classes = %d", lpath,
                              (unsigned)s->lab.data[i], i, cfg->data.n_classes);
    }
    if (rc != DD2_OK) dd2_image_split_free(s);
    return rc;
}
