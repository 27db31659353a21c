#include "model/mixture.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int dd2_mixture_init(dd2_mixture *mx, const float *codebook, int V, int C, dd2_status *st) {
    memset(mx, 0, sizeof *mx);
    mx->V = V;
    mx->C = C;
    mx->codebook = codebook;
    mx->cnorm2 = DD2_MALLOC((size_t)V * sizeof(float), st);
    mx->scratch = DD2_MALLOC((size_t)DD2_MIXTURE_BLOCK * V * sizeof(float), st);
    if (!mx->cnorm2 || !mx->scratch) {
        dd2_mixture_free(mx);
        return DD2_ERR_RUNTIME;
    }
    for (int v = 0; v < V; v++) {
        double s = 0.0;
        for (int c = 0; c < C; c++) s += (double)codebook[(size_t)v * C + c] * codebook[(size_t)v * C + c];
        mx->cnorm2[v] = (float)s;
    }
    return DD2_OK;
}

void dd2_mixture_free(dd2_mixture *mx) {
    free(mx->cnorm2);
    free(mx->scratch);
    memset(mx, 0, sizeof *mx);
}

void dd2_mixture_logp(float *logp, const float *p, size_t R, int V) {
    for (size_t i = 0; i < R * (size_t)V; i++) logp[i] = p[i] > 0.0f ? logf(p[i]) : -INFINITY;
}

/* Row j of the block: on entry a [V] holds x·c_v; on exit the posterior weights. The scores
 * a_v = logp_v + ((1−t) x·c_v − (1−t)²‖c_v‖²/2) / t² (‖x‖² dropped) are formed in double twice
 * (for the maximum, then for the exponentials) rather than stored in float. */
static inline double score(const dd2_mixture *mx, float logp, float xc, int v, double s, double inv_t2) {
    return (double)logp + (s * xc - 0.5 * s * s * mx->cnorm2[v]) * inv_t2;
}

static void weights_row(const dd2_mixture *mx, const float *logp_row, float t, float *a) {
    const int V = mx->V;
    const double s = 1.0 - (double)t, inv_t2 = 1.0 / ((double)t * t);
    double mx_a = -INFINITY;
    for (int v = 0; v < V; v++) {
        if (logp_row[v] == -INFINITY) continue;
        double val = score(mx, logp_row[v], a[v], v, s, inv_t2);
        if (val > mx_a) mx_a = val;
    }
    double sum = 0.0;
    for (int v = 0; v < V; v++) {
        double e = logp_row[v] == -INFINITY ? 0.0 : exp(score(mx, logp_row[v], a[v], v, s, inv_t2) - mx_a);
        a[v] = (float)e;
        sum += e;
    }
    const float inv = (float)(1.0 / sum);
    for (int v = 0; v < V; v++) a[v] *= inv;
}

void dd2_mixture_posterior(const dd2_mixture *mx, const float *logp, const int *row, const float *x, const float *t,
                           size_t M, float *mu, float *cov) {
    const int V = mx->V, C = mx->C;
    float *w = mx->scratch;
    for (size_t j0 = 0; j0 < M; j0 += DD2_MIXTURE_BLOCK) {
        const int b = (int)(M - j0 < DD2_MIXTURE_BLOCK ? M - j0 : DD2_MIXTURE_BLOCK);
        /* x·c_v for the block: [b,C] x [V,C]^T -> [b,V] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, V, C, 1.0f, x + j0 * C, C, mx->codebook, C, 0.0f, w, V);
        for (int k = 0; k < b; k++) weights_row(mx, logp + (size_t)row[j0 + k] * V, t[j0 + k], w + (size_t)k * V);
        /* mu = w · codebook: [b,V] x [V,C] -> [b,C] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, C, V, 1.0f, w, V, mx->codebook, C, 0.0f, mu + j0 * C,
                    C);
        if (!cov) continue;
        for (int k = 0; k < b; k++) {
            const float *wk = w + (size_t)k * V, *m = mu + (j0 + k) * C;
            float *S = cov + (j0 + k) * (size_t)C * C;
            double acc[C * C];
            memset(acc, 0, sizeof acc);
            for (int v = 0; v < V; v++) {
                if (wk[v] == 0.0f) continue;
                const float *cv = mx->codebook + (size_t)v * C;
                double d[C];
                for (int c = 0; c < C; c++) d[c] = (double)cv[c] - m[c];
                for (int c1 = 0; c1 < C; c1++)
                    for (int c2 = 0; c2 <= c1; c2++) acc[c1 * C + c2] += wk[v] * d[c1] * d[c2];
            }
            for (int c1 = 0; c1 < C; c1++)
                for (int c2 = 0; c2 <= c1; c2++) S[c1 * C + c2] = S[c2 * C + c1] = (float)acc[c1 * C + c2];
        }
    }
}

void dd2_mixture_velocity_score(const float *x, const float *t, const float *mu, size_t M, int C, float *v,
                                float *s) {
    for (size_t j = 0; j < M; j++) {
        const double tj = t[j];
        for (int c = 0; c < C; c++) {
            size_t i = j * C + c;
            if (v) v[i] = (float)(((double)x[i] - mu[i]) / tj);
            if (s) s[i] = (float)(-((double)x[i] - (1.0 - tj) * mu[i]) / (tj * tj));
        }
    }
}

void dd2_mixture_jt_apply(const float *cov, const float *t, const float *a, size_t M, int C, float *out) {
    for (size_t j = 0; j < M; j++) {
        const double f = (1.0 - t[j]) / ((double)t[j] * t[j]);
        const float *S = cov + j * (size_t)C * C, *aj = a + j * C;
        for (int c1 = 0; c1 < C; c1++) {
            double acc = 0.0;
            for (int c2 = 0; c2 < C; c2++) acc += (double)S[c1 * C + c2] * aj[c2];
            out[j * C + c1] += (float)(f * acc);
        }
    }
}
