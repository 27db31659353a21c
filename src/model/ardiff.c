/* The AR-diffusion model Ψ (stage 1 of DD2): registration, the GTS / diffusion loss with its
 * backward, the teacher's log-probabilities by teacher forcing, and token-by-token Euler
 * sampling with the KV cache. See model/ardiff.h and docs/ardiff.md. */
#include "model/ardiff.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/logits_head.h"

int dd2_ardiff_init_dims(dd2_ardiff *a, const dd2_backbone_dims *bd, int W, int depth, const dd2_vq_codebook *cb,
                         dd2_status *st) {
    memset(a, 0, sizeof *a);
    dd2_ptable_init(&a->tab);
    if (cb->dim != bd->C)
        return DD2_FAIL(st, DD2_ERR_INPUT, "ardiff: codebook dimension %d differs from the backbone's C = %d", cb->dim,
                        bd->C);
    a->V = cb->codes;
    a->C = bd->C;
    a->n = bd->n;
    a->K = bd->K;
    a->d = bd->d;
    a->cb = cb;
    DD2_TRY(dd2_backbone_register(&a->bb, bd, NULL, &a->tab, st));
    dd2_mlp_head_dims hd = {bd->C, bd->d, W, depth};
    DD2_TRY(dd2_mlp_head_register(&a->head, &hd, NULL, &a->tab, st));
    return DD2_OK;
}

int dd2_ardiff_init(dd2_ardiff *a, const dd2_config *cfg, const dd2_vq_codebook *cb, int gh, int gw,
                    dd2_status *st) {
    return dd2_ardiff_init_grown(a, cfg, cb, gh, gw, 0, 0, st);
}

int dd2_ardiff_init_grown(dd2_ardiff *a, const dd2_config *cfg, const dd2_vq_codebook *cb, int gh, int gw,
                          int extra_layers, int extra_head_blocks, dd2_status *st) {
    dd2_backbone_dims bd;
    dd2_backbone_dims_from_config(&bd, cfg, cb->dim, gh, gw);
    bd.L += extra_layers;
    return dd2_ardiff_init_dims(a, &bd, cfg->head.width, cfg->head.depth + extra_head_blocks, cb, st);
}

void dd2_ardiff_free(dd2_ardiff *a) { dd2_ptable_free(&a->tab); }

int dd2_ardiff_grow(const dd2_ardiff *dst, float *dparams, const dd2_ardiff *src, const float *sparams, uint64_t seed,
                    dd2_status *st) {
    dd2_backbone_dims a = dst->bb.dims, b = src->bb.dims;
    const int Ld = a.L, Ls = b.L;
    a.L = b.L = 0;
    const dd2_mlp_head_dims *ha = &dst->head.dims, *hb = &src->head.dims;
    if (memcmp(&a, &b, sizeof a) != 0 || ha->C != hb->C || ha->d != hb->d || ha->W != hb->W || Ld < Ls ||
        ha->depth < hb->depth)
        return DD2_FAIL(st, DD2_ERR_INPUT,
                        "cannot grow a network of %d layers, width %d, head %d x %d into one of %d layers, width %d, "
                        "head %d x %d (only more layers and head blocks)",
                        Ls, b.d, hb->W, hb->depth, Ld, a.d, ha->W, ha->depth);
    DD2_TRY(dd2_ptable_init_params(&dst->tab, dparams, seed, st));
    for (int k = 0; k < src->tab.n; k++) {
        const dd2_tensor_info *s = &src->tab.t[k];
        const int j = dd2_ptable_find(&dst->tab, s->name);
        if (j < 0 || dst->tab.t[j].numel != s->numel)
            return DD2_FAIL(st, DD2_ERR_INPUT, "growing a network: tensor '%s' %s", s->name,
                            j < 0 ? "is missing in the larger network" : "has another size there");
        memcpy(dparams + dst->tab.t[j].offset, sparams + s->offset, s->numel * sizeof(float));
    }
    const int d = a.d, F = a.F, W = ha->W;
    for (int l = Ls; l < Ld; l++) {
        const dd2_backbone_layer ly = dd2_backbone_layer_at(&dst->bb, l);
        memset(dparams + ly.wo, 0, (size_t)d * d * sizeof(float));
        memset(dparams + ly.w2, 0, (size_t)d * F * sizeof(float));
    }
    for (int r = hb->depth; r < ha->depth; r++) {
        const dd2_mlp_head_block hbk = dd2_mlp_head_block_at(&dst->head, r);
        memset(dparams + hbk.ada_w, 0, (size_t)3 * W * W * sizeof(float));
        memset(dparams + hbk.ada_b, 0, (size_t)3 * W * sizeof(float));
    }
    return DD2_OK;
}

int dd2_ardiff_copy_tensors(const dd2_param_table *dst_tab, float *dst, const char *dst_prefix, int first, int count,
                            const dd2_param_table *src_tab, const float *src, const char *src_prefix, dd2_status *st) {
    const char *dp = dst_prefix ? dst_prefix : "", *sp = src_prefix ? src_prefix : "";
    const size_t dl = strlen(dp);
    for (int k = first; k < first + count && k < dst_tab->n; k++) {
        const dd2_tensor_info *d = &dst_tab->t[k];
        if (strncmp(d->name, dp, dl) != 0) continue;
        char name[2 * DD2_TENSOR_NAME_MAX];
        snprintf(name, sizeof name, "%s%s", sp, d->name + dl);
        int j = dd2_ptable_find(src_tab, name);
        if (j < 0) return DD2_FAIL(st, DD2_ERR_INPUT, "tensor '%s' (for '%s') not found in the source", name, d->name);
        const dd2_tensor_info *s = &src_tab->t[j];
        int same = s->ndim == d->ndim;
        for (int i = 0; same && i < d->ndim; i++) same = s->shape[i] == d->shape[i];
        if (!same) {
            char a[160], b[160];
            dd2_tensor_describe(s, a, sizeof a);
            dd2_tensor_describe(d, b, sizeof b);
            return DD2_FAIL(st, DD2_ERR_INPUT, "tensor shapes differ: source %s, destination %s", a, b);
        }
        memcpy(dst + d->offset, src + s->offset, d->numel * sizeof(float));
    }
    return DD2_OK;
}

/* ---- the training loss ------------------------------------------------------------------- */

void dd2_ardiff_draw(uint64_t seed, uint64_t first_slot, int B, int n, int m, int C, float t_min, float t_max,
                     bool stratified, bool shared, float *t, float *eps) {
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n; i++)
            for (int j = 0; j < m; j++) {
                const size_t p = ((size_t)b * n + i) * m + j;
                const uint64_t step = (uint64_t)i * (uint64_t)m + (uint64_t)j;
                dd2_rng r;
                dd2_rng_init(&r, seed, DD2_RNG_TIMESTEP, first_slot + (uint64_t)b, step);
                if (shared && j > 0) {
                    t[p] = t[p - (size_t)j]; /* draw 0's timestep */
                } else if (stratified) {
                    float u;
                    dd2_rng_fill_uniform(&r, &u, 1, 0.0f, 1.0f);
                    t[p] = (float)(t_min + ((double)t_max - t_min) * (((double)j + u) / m));
                    if (!(t[p] < t_max)) t[p] = nextafterf(t_max, t_min); /* rounding at the top */
                } else {
                    dd2_rng_fill_uniform(&r, t + p, 1, t_min, t_max);
                }
                dd2_rng_init(&r, seed, DD2_RNG_NOISE, first_slot + (uint64_t)b, step);
                dd2_rng_fill_normal(&r, eps + p * C, (size_t)C, 0.0f, 1.0f);
            }
}

void dd2_ardiff_noised_points(const float *q, const float *t, const float *eps, int B, int n, int m, int C,
                              float *x_t) {
    const size_t P = (size_t)B * n * m;
    for (size_t p = 0; p < P; p++) {
        const float *qp = q + (p / (size_t)m) * C, *ep = eps + p * C;
        const float tp = t[p], s = 1.0f - tp;
        for (int c = 0; c < C; c++) x_t[p * C + c] = s * qp[c] + tp * ep[c];
    }
}

/* vstar [M,C]: (x_t − μ)/t when mu != NULL (GTS), else eps − q[row] (diffusion). */
static void targets_from_mu(const float *mu, const int *row, const float *q, const float *eps, const float *x_t,
                            const float *t, size_t M, int C, float *vstar) {
    for (size_t p = 0; p < M; p++) {
        if (!mu) {
            const float *qp = q + (size_t)row[p] * C, *ep = eps + p * C;
            for (int c = 0; c < C; c++) vstar[p * C + c] = ep[c] - qp[c];
            continue;
        }
        const double inv = 1.0 / (double)t[p];
        for (int c = 0; c < C; c++) {
            const size_t k = p * C + c;
            vstar[k] = (float)(((double)x_t[k] - (double)mu[k]) * inv);
        }
    }
}

void dd2_ardiff_targets(int loss, const dd2_mixture *mx, const float *logp, const int *row, const float *q,
                        const float *eps, const float *t, size_t M, int C, float *x_t, float *vstar) {
    for (size_t p = 0; p < M; p++) {
        const float *qp = q + (size_t)row[p] * C, *ep = eps + p * C;
        const float tp = t[p], s = 1.0f - tp;
        for (int c = 0; c < C; c++) x_t[p * C + c] = s * qp[c] + tp * ep[c];
    }
    if (loss == DD2_ARDIFF_LOSS_GTS) {
        dd2_mixture_posterior(mx, logp, row, x_t, t, M, vstar, NULL); /* μ into vstar, then in place */
        targets_from_mu(vstar, row, q, eps, x_t, t, M, C, vstar);
    } else {
        targets_from_mu(NULL, row, q, eps, x_t, t, M, C, vstar);
    }
}

double dd2_ardiff_mse(const float *v, const float *vstar, size_t M, int C, float scale, float *dv) {
    double sum = 0.0;
    const float g = 2.0f * scale / (float)C;
    for (size_t p = 0; p < M; p++) {
        double s = 0.0;
        for (int c = 0; c < C; c++) {
            const size_t k = p * C + c;
            const float e = v[k] - vstar[k];
            s += (double)e * e;
            if (dv) dv[k] = g * e;
        }
        sum += s / C;
    }
    return sum;
}

int dd2_ardiff_work_alloc(dd2_ardiff_work *w, const dd2_ardiff *a, int B, int m, dd2_status *st) {
    memset(w, 0, sizeof *w);
    const size_t R = (size_t)B * a->n, P = R * (size_t)m, C = (size_t)a->C, d = (size_t)a->d;
    if (P > (size_t)0x7fffffff) return DD2_FAIL(st, DD2_ERR_INPUT, "ardiff: %zu points per batch is too many", P);
    w->B = B;
    w->m = m;
    w->P = (int)P;
    int rc = dd2_backbone_acts_alloc(&w->bacts, &a->bb, B, st);
    if (rc == DD2_OK) rc = dd2_mlp_head_acts_alloc(&w->hacts, &a->head, (int)P, st);
    if (rc != DD2_OK) {
        dd2_ardiff_work_free(w);
        return rc;
    }
    w->f = DD2_MALLOC(R * d * sizeof(float), st);
    w->df = DD2_MALLOC(R * d * sizeof(float), st);
    w->cond = DD2_MALLOC(P * d * sizeof(float), st);
    w->dc = DD2_MALLOC(P * d * sizeof(float), st);
    w->t = DD2_MALLOC(P * sizeof(float), st);
    w->eps = DD2_MALLOC(P * C * sizeof(float), st);
    w->x_t = DD2_MALLOC(P * C * sizeof(float), st);
    w->vstar = DD2_MALLOC(P * C * sizeof(float), st);
    w->v = DD2_MALLOC(P * C * sizeof(float), st);
    w->dv = DD2_MALLOC(P * C * sizeof(float), st);
    w->row = DD2_MALLOC(P * sizeof(int), st);
    w->t_tok = DD2_MALLOC(R * sizeof(float), st);
    if (!w->f || !w->df || !w->cond || !w->dc || !w->t || !w->eps || !w->x_t || !w->vstar || !w->v || !w->dv ||
        !w->row || !w->t_tok) {
        dd2_ardiff_work_free(w);
        return DD2_ERR_RUNTIME;
    }
    return DD2_OK;
}

void dd2_ardiff_work_free(dd2_ardiff_work *w) {
    dd2_backbone_acts_free(&w->bacts);
    dd2_mlp_head_acts_free(&w->hacts);
    free(w->f);
    free(w->df);
    free(w->cond);
    free(w->dc);
    free(w->t);
    free(w->eps);
    free(w->x_t);
    free(w->vstar);
    free(w->v);
    free(w->dv);
    free(w->row);
    free(w->t_tok);
    memset(w, 0, sizeof *w);
}

int dd2_ardiff_t_per_token(const float *t, size_t R, int m, float *t_tok) {
    if (m < 2) return 0;
    for (size_t r = 0; r < R; r++)
        for (int j = 1; j < m; j++)
            if (t[r * m + j] != t[r * m]) return 0;
    for (size_t r = 0; r < R; r++) t_tok[r] = t[r * m];
    return 1;
}

int dd2_ardiff_head_forward(const dd2_ardiff *a, const float *params, dd2_ardiff_work *w, const float *x_t,
                            const float *t, int B, int m, float *v) {
    const size_t d = (size_t)a->d, R = (size_t)B * a->n, P = R * (size_t)m;
    if (dd2_ardiff_t_per_token(t, R, m, w->t_tok)) {
        dd2_mlp_head_forward_grouped(&a->head, params, &w->hacts, x_t, w->t_tok, w->f, (int)P, m, v);
        return m;
    }
    for (size_t p = 0; p < P; p++) memcpy(w->cond + p * d, w->f + (p / (size_t)m) * d, d * sizeof(float));
    dd2_mlp_head_forward(&a->head, params, &w->hacts, x_t, t, w->cond, (int)P, v);
    return 1;
}

void dd2_ardiff_head_backward(const dd2_ardiff *a, const float *params, float *grads, dd2_ardiff_work *w,
                              const float *dv, float *dx_t, int want_df, int B, int m, int group) {
    const size_t d = (size_t)a->d, R = (size_t)B * a->n, P = R * (size_t)m;
    if (!want_df) {
        dd2_mlp_head_backward_grouped(&a->head, params, grads, &w->hacts, dv, dx_t, NULL, (int)P, group);
    } else if (group > 1) { /* one condition row per token: its gradient is the feature's */
        memset(w->df, 0, R * d * sizeof(float));
        dd2_mlp_head_backward_grouped(&a->head, params, grads, &w->hacts, dv, dx_t, w->df, (int)P, group);
    } else {
        memset(w->dc, 0, P * d * sizeof(float));
        dd2_mlp_head_backward(&a->head, params, grads, &w->hacts, dv, dx_t, w->dc, (int)P);
        for (size_t r = 0; r < R; r++) {
            float *df = w->df + r * d;
            memcpy(df, w->dc + r * m * d, d * sizeof(float));
            for (int j = 1; j < m; j++) {
                const float *dc = w->dc + (r * m + j) * d;
                for (size_t k = 0; k < d; k++) df[k] += dc[k];
            }
        }
    }
}

double dd2_ardiff_loss(const dd2_ardiff *a, const float *params, float *grads, int train_backbone, dd2_ardiff_work *w,
                       const float *mu, const float *q, const int *y, const float *t, const float *eps, int B, int m,
                       float scale) {
    const int n = a->n, C = a->C;
    const size_t R = (size_t)B * n, P = R * (size_t)m;
    dd2_backbone_forward(&a->bb, params, &w->bacts, q, y, B, w->f);
    for (size_t p = 0; p < P; p++) w->row[p] = (int)(p / (size_t)m);
    dd2_ardiff_noised_points(q, t, eps, B, n, m, C, w->x_t);
    targets_from_mu(mu, w->row, q, eps, w->x_t, t, P, C, w->vstar);
    const int group = dd2_ardiff_head_forward(a, params, w, w->x_t, t, B, m, w->v);
    const double sum = dd2_ardiff_mse(w->v, w->vstar, P, C, scale, grads ? w->dv : NULL);
    if (!grads) return sum;
    dd2_ardiff_head_backward(a, params, grads, w, w->dv, NULL, train_backbone, B, m, group);
    if (train_backbone) dd2_backbone_backward(&a->bb, params, grads, &w->bacts, w->df, NULL, B);
    return sum;
}

int dd2_ardiff_teacher_logp(const dd2_teacher *t, const float *tparams, dd2_teacher_work *tw, const dd2_sampling *s,
                            const float *x, const int *y, int B, float *logp, dd2_status *st) {
    const int guided = s->cfg_scale != 1.0f;
    const int G = guided ? tw->B / 2 : tw->B; /* sequences per chunk */
    if (G < 1) return DD2_FAIL(st, DD2_ERR_RUNTIME, "ardiff: teacher work capacity %d is too small", tw->B);
    const int n = t->n, V = t->V;
    const size_t seq = (size_t)n * t->C;
    int *yy = DD2_MALLOC((size_t)tw->B * sizeof *yy, st);
    float *scratch = DD2_MALLOC(DD2_SAMPLING_SCRATCH(V) * sizeof(float), st);
    if (!yy || !scratch) {
        free(yy);
        free(scratch);
        return DD2_ERR_RUNTIME;
    }
    for (int b0 = 0; b0 < B; b0 += G) {
        const int g = B - b0 < G ? B - b0 : G, rows = guided ? 2 * g : g;
        memcpy(tw->x, x + (size_t)b0 * seq, (size_t)g * seq * sizeof(float));
        for (int k = 0; k < g; k++) yy[k] = y[b0 + k];
        if (guided) {
            memcpy(tw->x + (size_t)g * seq, x + (size_t)b0 * seq, (size_t)g * seq * sizeof(float));
            for (int k = 0; k < g; k++) yy[g + k] = t->K; /* null class */
        }
        dd2_backbone_forward(&t->bb, tparams, &tw->acts, tw->x, yy, rows, tw->f);
        dd2_logits_forward(&t->head, tparams, tw->f, (size_t)rows * n, tw->logits);
        float *out = logp + (size_t)b0 * n * V;
        const size_t N = (size_t)g * n;
        dd2_teacher_probs(out, tw->logits, guided ? tw->logits + N * V : NULL, N, V, s, scratch);
        dd2_mixture_logp(out, out, N, V);
    }
    free(yy);
    free(scratch);
    return DD2_OK;
}

/* ---- sampling ---------------------------------------------------------------------------- */

void dd2_ardiff_euler(float *x, int B, int C, int E, float t_min, dd2_velocity_fn fn, void *ctx, float *tbuf, float *v) {
    const float dt = (float)(1.0 / E);
    for (int k = 0; k < E; k++) {
        double tk = 1.0 - (double)k / E;
        const float th = (float)(tk < t_min ? t_min : tk);
        for (int b = 0; b < B; b++) tbuf[b] = th;
        fn(ctx, x, tbuf, B, v);
        for (size_t i = 0; i < (size_t)B * C; i++) x[i] -= dt * v[i];
    }
}

typedef struct head_field {
    const dd2_ardiff *a;
    const float *params;
    dd2_mlp_head_acts *acts;
    const float *f; /* [B,d] conditions */
} head_field;

static void head_velocity(void *vctx, const float *x, const float *t, int B, float *v) {
    head_field *h = vctx;
    dd2_mlp_head_forward(&h->a->head, h->params, h->acts, x, t, h->f, B, v);
}

int dd2_ardiff_sample(const dd2_ardiff *a, const float *params, const int *y, int B, int euler_steps, float t_min,
                      int snap, uint64_t seed, uint64_t first_index, int32_t *tokens, float *q, float *eps,
                      dd2_status *st) {
    const int n = a->n, C = a->C, d = a->d;
    dd2_backbone_cache cache;
    dd2_mlp_head_acts hacts;
    memset(&cache, 0, sizeof cache);
    memset(&hacts, 0, sizeof hacts);
    int rc = dd2_backbone_cache_alloc(&cache, &a->bb, B, 1, st);
    if (rc == DD2_OK) rc = dd2_mlp_head_acts_alloc(&hacts, &a->head, B, st);
    float *xprev = DD2_CALLOC((size_t)B * C, sizeof(float), st);
    float *f = DD2_MALLOC((size_t)B * d * sizeof(float), st);
    float *x = DD2_MALLOC((size_t)B * C * sizeof(float), st);
    float *v = DD2_MALLOC((size_t)B * C * sizeof(float), st);
    float *tb = DD2_MALLOC((size_t)B * sizeof(float), st);
    int32_t *idx = DD2_MALLOC((size_t)B * sizeof(int32_t), st);
    if (rc == DD2_OK && (!xprev || !f || !x || !v || !tb || !idx)) rc = DD2_ERR_RUNTIME;
    head_field field = {a, params, &hacts, f};
    for (int pos = 0; rc == DD2_OK && pos < n; pos++) {
        dd2_backbone_step(&a->bb, params, &cache, xprev, y, pos, 1, B, f);
        for (int b = 0; b < B; b++) {
            dd2_rng r;
            dd2_rng_init(&r, seed, DD2_RNG_NOISE, first_index + (uint64_t)b, (uint64_t)pos);
            dd2_rng_fill_normal(&r, x + (size_t)b * C, (size_t)C, 0.0f, 1.0f);
            if (eps) memcpy(eps + ((size_t)b * n + pos) * C, x + (size_t)b * C, (size_t)C * sizeof(float));
        }
        dd2_ardiff_euler(x, B, C, euler_steps, t_min, head_velocity, &field, tb, v);
        rc = dd2_vq_nearest(a->cb, x, (size_t)B, idx, NULL, st);
        if (rc != DD2_OK) {
            dd2_status_prefix(st, "ardiff sampling, position %d", pos);
            break;
        }
        for (int b = 0; b < B; b++) {
            tokens[(size_t)b * n + pos] = idx[b];
            const float *src = snap ? a->cb->c + (size_t)idx[b] * C : x + (size_t)b * C;
            memcpy(xprev + (size_t)b * C, src, (size_t)C * sizeof(float));
            if (q) memcpy(q + ((size_t)b * n + pos) * C, x + (size_t)b * C, (size_t)C * sizeof(float));
        }
    }
    dd2_backbone_cache_free(&cache);
    dd2_mlp_head_acts_free(&hacts);
    free(xprev);
    free(f);
    free(x);
    free(v);
    free(tb);
    free(idx);
    return rc;
}
