/* CSD: generator forward/backward, guidance loss, generator loss (model/csd.h, docs/distill.md). */
#include "model/csd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

void dd2_csd_noise(uint64_t seed, uint64_t first_slot, int B, int n, int C, float *eps) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n; i++) {
            dd2_rng r;
            dd2_rng_init(&r, seed, DD2_RNG_NOISE, first_slot + (uint64_t)b, (uint64_t)i);
            dd2_rng_fill_normal(&r, eps + ((size_t)b * n + i) * C, (size_t)C, 0.0f, 1.0f);
        }
}

void dd2_csd_classes(uint64_t seed, uint64_t first_slot, int B, int n, int K, int *y) {
    for (int b = 0; b < B; b++) {
        dd2_rng r;
        dd2_rng_init(&r, seed, DD2_RNG_NOISE, first_slot + (uint64_t)b, (uint64_t)n);
        y[b] = (int)dd2_rng_below(&r, (uint32_t)K);
    }
}

/* ---- generator -------------------------------------------------------------------------------- */

void dd2_csd_generator_forward(const dd2_ardiff *G, const float *params, dd2_ardiff_work *w, const float *eps,
                               const int *y, int B, float *q) {
    const size_t rows = (size_t)B * (size_t)G->n, C = (size_t)G->C;
    dd2_backbone_forward(&G->bb, params, &w->bacts, eps, y, B, w->f);
    for (size_t r = 0; r < rows; r++) w->t[r] = 1.0f;
    dd2_mlp_head_forward(&G->head, params, &w->hacts, eps, w->t, w->f, (int)rows, w->v);
    for (size_t k = 0; k < rows * C; k++) q[k] = eps[k] - w->v[k];
}

void dd2_csd_generator_backward(const dd2_ardiff *G, const float *params, float *grads, dd2_ardiff_work *w,
                                const float *dq, int B) {
    const size_t rows = (size_t)B * (size_t)G->n, C = (size_t)G->C;
    for (size_t k = 0; k < rows * C; k++) w->dv[k] = -dq[k];
    memset(w->df, 0, rows * (size_t)G->d * sizeof(float));
    dd2_mlp_head_backward(&G->head, params, grads, &w->hacts, w->dv, NULL, w->df, (int)rows);
    dd2_backbone_backward(&G->bb, params, grads, &w->bacts, w->df, NULL, B);
}

/* ---- guidance loss ---------------------------------------------------------------------------- */

double dd2_csd_guidance_loss(const dd2_ardiff *psi, const float *params, float *grads, dd2_ardiff_work *w,
                             const float *q, const int *y, const float *t, const float *eps, int B, int m,
                             float scale) {
    return dd2_ardiff_loss(psi, params, grads, 1, w, NULL, q, y, t, eps, B, m,
                           scale);
}

/* ---- generator loss --------------------------------------------------------------------------- */

int dd2_csd_work_alloc(dd2_csd_work *w, int B, int n, int C, int m, int sid, dd2_status *st) {
    memset(w, 0, sizeof *w);
    if (B < 1 || n < 1 || C < 1 || m < 1)
        return DD2_FAIL(st, DD2_ERR_INPUT, "csd work: bad sizes B=%d n=%d C=%d m=%d", B, n, C, m);
    w->B = B, w->n = n, w->C = C, w->m = m, w->sid = sid;
    w->P = B * n * m;
    const size_t PC = (size_t)w->P * (size_t)C;
    w->v = DD2_MALLOC(PC * sizeof(float), st);
    w->bp = DD2_MALLOC(PC * sizeof(float), st);
    w->omega = DD2_MALLOC((size_t)w->P * sizeof(float), st);
    w->absdiff = DD2_MALLOC((size_t)B * sizeof(double), st);
    int ok = w->v && w->bp && w->omega && w->absdiff;
    if (ok && sid) {
        w->gA = DD2_MALLOC(PC * sizeof(float), st);
        w->gB = DD2_MALLOC(PC * sizeof(float), st);
        w->gx = DD2_MALLOC(PC * sizeof(float), st);
        ok = w->gA && w->gB && w->gx;
    }
    if (!ok) {
        dd2_csd_work_free(w);
        return DD2_ERR_RUNTIME;
    }
    return DD2_OK;
}

void dd2_csd_work_free(dd2_csd_work *w) {
    free(w->v);
    free(w->bp);
    free(w->gB);
    free(w->gx);
    free(w->gA);
    free(w->omega);
    free(w->absdiff);
    memset(w, 0, sizeof *w);
}

static float csd_omega(double mean_absdiff) {
    return (float)(1.0 / (mean_absdiff > DD2_CSD_OMEGA_FLOOR ? mean_absdiff : DD2_CSD_OMEGA_FLOOR));
}

void dd2_csd_omega_positions(const float *q, const float *a, int B, int n, int M, int C, float *omega) {
    for (size_t r = 0; r < (size_t)B * n; r++) {
        double s = 0.0; /* the loss's summation order: draws, then components */
        for (size_t p = r * M; p < (r + 1) * M; p++)
            for (int c = 0; c < C; c++) s += fabs((double)q[r * C + c] - a[p * C + c]);
        omega[r] = csd_omega(s / ((double)M * C));
    }
}

double dd2_csd_generator_loss(const dd2_ardiff *psi, const float *pparams, dd2_ardiff_work *pw, dd2_csd_work *w,
                              const float *a_all, const float *cov, const float *q, const int *y, const float *t,
                              const float *x_t, int B, int m, const dd2_csd_opts *o, const float *omega_in,
                              float scale, float *dq, dd2_csd_stats *stats) {
    const int n = psi->n, C = psi->C;
    const size_t P = (size_t)B * n * m;
    const int sid = o->grad == DD2_CSD_GRAD_SID;
    const double alpha = o->alpha;

    /* guidance x0-prediction: backbone on the detached prefix, head on every point */
    dd2_backbone_forward(&psi->bb, pparams, &pw->bacts, q, y, B, pw->f);
    const int group = dd2_ardiff_head_forward(psi, pparams, pw, x_t, t, B, m, w->v);
    for (size_t p = 0; p < P; p++)
        for (int c = 0; c < C; c++) w->bp[p * C + c] = x_t[p * C + c] - t[p] * w->v[p * C + c];

    /* ω per point: 1 / max(mean |q − a|, floor) over the n·m·C elements of sequence b
     * (DD2_CSD_OMEGA_SEQUENCE), the m·C elements of position i (DD2_CSD_OMEGA_POSITION) or the C
     * elements of the point itself (DD2_CSD_OMEGA_POINT) */
    double omega_sum = 0.0, absdiff_sum = 0.0;
    for (int b = 0; b < B; b++) {
        double s_seq = 0.0, om_seq = 0.0; /* s_seq: one running sum (sequence mode as before the option) */
        for (int i = 0; i < n; i++) {
            const size_t r = (size_t)b * n + i;
            double s_pos = 0.0;
            for (size_t p = r * m; p < (r + 1) * m; p++) {
                double s_pt = 0.0;
                for (int c = 0; c < C; c++) {
                    const double e = fabs((double)q[r * C + c] - a_all[p * C + c]);
                    s_pt += e, s_pos += e, s_seq += e;
                }
                if (o->omega == DD2_CSD_OMEGA_POINT) {
                    w->omega[p] = csd_omega(s_pt / C);
                    om_seq += w->omega[p];
                }
            }
            if (o->omega == DD2_CSD_OMEGA_POSITION) {
                const float om = omega_in ? omega_in[r] : csd_omega(s_pos / ((double)m * C));
                for (size_t p = r * m; p < (r + 1) * m; p++) w->omega[p] = om;
                om_seq += (double)om * m;
            }
        }
        const double mean = s_seq / ((double)n * m * C);
        if (o->omega == DD2_CSD_OMEGA_SEQUENCE) {
            const float om = csd_omega(mean);
            for (size_t p = (size_t)b * n * m; p < (size_t)(b + 1) * n * m; p++) w->omega[p] = om;
            om_seq = (double)om * n * m;
        }
        w->absdiff[b] = mean;
        omega_sum += om_seq / ((double)n * m);
        absdiff_sum += mean;
    }

    /* per-point loss; explicit gradient into dq; sid: A and Bg */
    memset(dq, 0, (size_t)B * n * C * sizeof(float));
    double loss = 0.0;
    for (size_t p = 0; p < P; p++) {
        const size_t r = p / (size_t)m;
        const int i = (int)(r % (size_t)n);
        const double om = w->omega[p], wi = dd2_csd_pos_weight(o, i, n), wgt = om * wi;
        const float *a = a_all + p * C, *bp = w->bp + p * C, *qi = q + r * C;
        double dot = 0.0, sq = 0.0;
        for (int c = 0; c < C; c++) {
            const double ab = (double)a[c] - bp[c];
            dot += ab * ((double)bp[c] - qi[c]);
            sq += ab * ab;
        }
        loss += wgt * (dot + (1.0 - alpha) * sq);
        float *g = dq + r * C;
        for (int c = 0; c < C; c++) g[c] += (float)(scale * wgt * ((double)bp[c] - a[c]));
        if (!sid) continue;
        for (int c = 0; c < C; c++) {
            const double ab = (double)a[c] - bp[c];
            w->gA[p * C + c] = (float)(wgt * (((double)bp[c] - qi[c]) + 2.0 * (1.0 - alpha) * ab));
            w->gB[p * C + c] = (float)(wgt * (((double)a[c] - 2.0 * bp[c] + qi[c]) - 2.0 * (1.0 - alpha) * ab));
        }
    }
    if (sid) {
        /* gx = J_Φᵀ A + Bg − t (∂v_ψ/∂x_t)ᵀ Bg; then dq_i += scale (1−t) gx */
        const size_t PC = P * (size_t)C;
        memcpy(w->gx, w->gB, PC * sizeof(float));
        dd2_mixture_jt_apply(cov, t, w->gA, P, C, w->gx);
        for (size_t p = 0; p < P; p++)
            for (int c = 0; c < C; c++) w->gB[p * C + c] *= -t[p]; /* the head's dv */
        dd2_ardiff_head_backward(psi, pparams, NULL, pw, w->gB, w->gx, 0, B, m, group);
        for (size_t p = 0; p < P; p++) {
            const size_t r = p / (size_t)m;
            const float f = scale * (1.0f - t[p]);
            for (int c = 0; c < C; c++) dq[r * C + c] += f * w->gx[p * C + c];
        }
    }
    if (stats) *stats = (dd2_csd_stats){loss, omega_sum, absdiff_sum};
    return loss;
}
