/* h5cmp A.h5 B.h5 [GROUP] [RTOL]: compare the float32 datasets under GROUP (default "params")
 * of two HDF5 files written by dd2. Per dataset: err = max|a-b| / max|b| (norm-relative).
 * Prints the worst dataset; exits 0 when every err <= RTOL (default 0: bitwise equal), 1 when
 * not, 2 on a read error or a dataset missing from B. A test tool (tests/cli), not installed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/h5io.h"

typedef struct {
    dd2_h5 *a, *b;
    double rtol, worst;
    char worst_name[256];
    int n, bad;
} cmp_ctx;

static int compare_one(const char *name, void *vctx, dd2_status *st) {
    cmp_ctx *c = vctx;
    dd2_h5_shape sa, sb;
    DD2_TRY(dd2_h5_get_shape(c->a, name, &sa, st));
    if (sa.type != DD2_H5_F32) return DD2_OK;
    DD2_TRY(dd2_h5_get_shape(c->b, name, &sb, st));
    size_t n = (size_t)sa.count;
    float *x = malloc(n * sizeof *x + 1), *y = malloc(n * sizeof *y + 1);
    if (!x || !y) return DD2_FAIL(st, DD2_ERR_RUNTIME, "out of memory");
    int rc = dd2_h5_read_f32(c->a, name, sa.rank, sa.dims, x, st);
    if (rc == DD2_OK) rc = dd2_h5_read_f32(c->b, name, sa.rank, sa.dims, y, st);
    if (rc == DD2_OK) {
        double diff = 0, ref = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)x[i] - (double)y[i]);
            if (!(d <= diff)) diff = d; /* NaN counts as a difference */
            if (fabs(y[i]) > ref) ref = fabs(y[i]);
        }
        double err = diff == 0 ? 0 : diff / (ref > 0 ? ref : 1);
        if (isnan(diff)) err = INFINITY;
        if (err > c->worst || c->n == 0) {
            c->worst = err;
            snprintf(c->worst_name, sizeof c->worst_name, "%s", name);
        }
        if (err > c->rtol) c->bad++;
        c->n++;
    }
    free(x);
    free(y);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: h5cmp A.h5 B.h5 [GROUP] [RTOL]\n");
        return 2;
    }
    const char *group = argc > 3 ? argv[3] : "params";
    cmp_ctx c = {0};
    c.rtol = argc > 4 ? atof(argv[4]) : 0.0;
    dd2_status st;
    dd2_status_clear(&st);
    int rc = dd2_h5_open_read(argv[1], &c.a, &st);
    if (rc == DD2_OK) rc = dd2_h5_open_read(argv[2], &c.b, &st);
    if (rc == DD2_OK) rc = dd2_h5_list_datasets(c.a, group, compare_one, &c, &st);
    if (rc != DD2_OK) {
        fprintf(stderr, "h5cmp: %s\n", st.msg);
        return 2;
    }
    printf("h5cmp: %d datasets under '%s', worst %s: %.3g (rtol %.3g): %s\n", c.n, group, c.worst_name, c.worst, c.rtol,
           c.bad ? "DIFFERENT" : (c.worst == 0 ? "bitwise equal" : "within tolerance"));
    return c.n == 0 ? 2 : (c.bad ? 1 : 0);
}
