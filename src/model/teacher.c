#include "model/teacher.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/ops.h"

void dd2_backbone_dims_from_config(dd2_backbone_dims *dims, const dd2_config *cfg, int C, int gh, int gw) {
    memset(dims, 0, sizeof *dims);
    dims->C = C;
    dims->d = cfg->model.d_model;
    dims->H = cfg->model.n_heads;
    dims->L = cfg->model.n_layers;
    dims->F = cfg->model.mlp_hidden ? cfg->model.mlp_hidden : 4 * cfg->model.d_model;
    dims->K = cfg->data.n_classes;
    dims->n = gh * gw;
    dims->gh = gh;
    dims->gw = gw;
    dims->input_map = cfg->model.input_map == DD2_INPUT_MAP_MLP ? DD2_INPUT_MLP : DD2_INPUT_LINEAR;
    dims->rope = cfg->model.rope == DD2_CFG_ROPE_1D ? DD2_ROPE_1D : DD2_ROPE_2D;
}

int dd2_teacher_init(dd2_teacher *t, const dd2_config *cfg, const float *codebook, int V, int C, int gh, int gw,
                     dd2_status *st) {
    memset(t, 0, sizeof *t);
    dd2_ptable_init(&t->tab);
    dd2_backbone_dims dims;
    dd2_backbone_dims_from_config(&dims, cfg, C, gh, gw);
    t->V = V;
    t->C = C;
    t->n = dims.n;
    t->K = dims.K;
    t->codebook = codebook;
    DD2_TRY(dd2_backbone_register(&t->bb, &dims, NULL, &t->tab, st));
    DD2_TRY(dd2_logits_head_register(&t->head, V, dims.d, NULL, &t->tab, st));
    return DD2_OK;
}

void dd2_teacher_free(dd2_teacher *t) { dd2_ptable_free(&t->tab); }

int dd2_teacher_work_alloc(dd2_teacher_work *w, const dd2_teacher *t, int B, dd2_status *st) {
    memset(w, 0, sizeof *w);
    w->B = B;
    const size_t rows = (size_t)B * (size_t)t->n, d = (size_t)t->bb.dims.d;
    DD2_TRY(dd2_backbone_acts_alloc(&w->acts, &t->bb, B, st));
    w->x = DD2_MALLOC(rows * (size_t)t->C * sizeof(float), st);
    w->f = DD2_MALLOC(rows * d * sizeof(float), st);
    w->df = DD2_MALLOC(rows * d * sizeof(float), st);
    w->logits = DD2_MALLOC(rows * (size_t)t->V * sizeof(float), st);
    w->dlogits = DD2_MALLOC(rows * (size_t)t->V * sizeof(float), st);
    w->losses = DD2_MALLOC(rows * sizeof(float), st);
    w->dlosses = DD2_MALLOC(rows * sizeof(float), st);
    if (!w->x || !w->f || !w->df || !w->logits || !w->dlogits || !w->losses || !w->dlosses) {
        dd2_teacher_work_free(w);
        return DD2_ERR_RUNTIME;
    }
    return DD2_OK;
}

void dd2_teacher_work_free(dd2_teacher_work *w) {
    dd2_backbone_acts_free(&w->acts);
    free(w->x);
    free(w->f);
    free(w->df);
    free(w->logits);
    free(w->dlogits);
    free(w->losses);
    free(w->dlosses);
    memset(w, 0, sizeof *w);
}

void dd2_teacher_embed_tokens(const dd2_teacher *t, const int32_t *tokens, int B, float *x) {
    const size_t C = (size_t)t->C;
    for (size_t i = 0; i < (size_t)B * (size_t)t->n; i++) memcpy(x + i * C, t->codebook + (size_t)tokens[i] * C, C * sizeof *x);
}

double dd2_teacher_loss(const dd2_teacher *t, const float *params, float *grads, dd2_teacher_work *w,
                        const int32_t *tokens, const int *y, int B, float scale) {
    const size_t rows = (size_t)B * (size_t)t->n;
    dd2_teacher_embed_tokens(t, tokens, B, w->x);
    dd2_backbone_forward(&t->bb, params, &w->acts, w->x, y, B, w->f);
    dd2_logits_forward(&t->head, params, w->f, rows, w->logits);
    op_crossentropy_forward(w->losses, w->logits, w->logits, (const int *)tokens, rows, t->V);
    double sum = 0.0;
    for (size_t i = 0; i < rows; i++) sum += w->losses[i];
    if (!grads) return sum;
    for (size_t i = 0; i < rows; i++) w->dlosses[i] = scale;
    memset(w->dlogits, 0, rows * (size_t)t->V * sizeof(float));
    op_crossentropy_backward(w->dlogits, w->dlosses, w->logits, (const int *)tokens, rows, t->V);
    memset(w->df, 0, rows * (size_t)t->bb.dims.d * sizeof(float));
    dd2_logits_backward(&t->head, params, grads, w->f, w->dlogits, rows, w->df);
    dd2_backbone_backward(&t->bb, params, grads, &w->acts, w->df, NULL, B);
    return sum;
}

int dd2_teacher_sample_naive(const dd2_teacher *t, const float *params, const int *y, int B, const dd2_sampling *s,
                             uint64_t seed, uint64_t first_index, int32_t *tokens, dd2_status *st) {
    const int guided = s->cfg_scale != 1.0f;
    const int R = guided ? 2 * B : B, n = t->n, V = t->V, C = t->C, d = t->bb.dims.d;
    /* one causal pass over all n positions through the inference (KV-cache) path: no training
     * activations are kept */
    dd2_backbone_cache cache;
    DD2_TRY(dd2_backbone_cache_alloc(&cache, &t->bb, R, n, st));
    int *yy = DD2_MALLOC((size_t)R * sizeof *yy, st);
    float *x = DD2_MALLOC((size_t)R * n * C * sizeof(float), st);
    float *f = DD2_MALLOC((size_t)R * n * d * sizeof(float), st);
    float *logits = DD2_MALLOC((size_t)R * n * V * sizeof(float), st);
    float *p = DD2_MALLOC((size_t)n * V * sizeof(float), st);
    float *scratch = DD2_MALLOC(DD2_SAMPLING_SCRATCH(V) * sizeof(float), st);
    int rc = (yy && x && f && logits && p && scratch) ? DD2_OK : DD2_ERR_RUNTIME;
    for (int b = 0; rc == DD2_OK && b < B; b++) {
        yy[b] = y[b];
        dd2_rng r;
        dd2_rng_init(&r, seed, DD2_RNG_NOISE, first_index + (uint64_t)b, 0);
        dd2_rng_fill_normal(&r, x + (size_t)b * n * C, (size_t)n * C, 0.0f, 1.0f);
        if (guided) {
            yy[B + b] = t->K;
            memcpy(x + (size_t)(B + b) * n * C, x + (size_t)b * n * C, (size_t)n * C * sizeof(float));
        }
    }
    if (rc == DD2_OK) {
        dd2_backbone_step(&t->bb, params, &cache, x, yy, 0, n, R, f); /* row i of x feeds position i */
        dd2_logits_forward(&t->head, params, f, (size_t)R * n, logits);
    }
    for (int b = 0; rc == DD2_OK && b < B; b++) {
        const float *lc = logits + (size_t)b * n * V, *lu = guided ? logits + (size_t)(B + b) * n * V : NULL;
        dd2_teacher_probs(p, lc, lu, (size_t)n, V, s, scratch);
        for (int pos = 0; pos < n; pos++) {
            dd2_rng rng;
            dd2_rng_init(&rng, seed, DD2_RNG_SAMPLE, first_index + (uint64_t)b, (uint64_t)pos);
            tokens[(size_t)b * n + pos] = dd2_sample_categorical(p + (size_t)pos * V, V, dd2_rng_uniform(&rng));
        }
    }
    dd2_backbone_cache_free(&cache);
    free(yy);
    free(x);
    free(f);
    free(logits);
    free(p);
    free(scratch);
    return rc;
}

int dd2_teacher_continue(const dd2_teacher *t, const float *params, const int *y, int B, const dd2_sampling *s,
                         uint64_t seed, uint64_t first_index, const float *prefix, int P0, int32_t *tokens,
                         dd2_status *st) {
    const int guided = s->cfg_scale != 1.0f;
    const int R = guided ? 2 * B : B; /* rows: conditional, then unconditional */
    const int n = t->n, V = t->V, C = t->C, d = t->bb.dims.d, m0 = P0 + 1;
    if (P0 < 0 || P0 >= n) return DD2_FAIL(st, DD2_ERR_RUNTIME, "teacher sampling: prefix of %d tokens (n = %d)", P0, n);
    dd2_backbone_cache cache;
    DD2_TRY(dd2_backbone_cache_alloc(&cache, &t->bb, R, m0, st));
    int *yy = DD2_MALLOC((size_t)R * sizeof *yy, st);
    float *xprev = DD2_CALLOC((size_t)R * m0 * C, sizeof(float), st);
    float *f = DD2_MALLOC((size_t)R * m0 * d * sizeof(float), st);
    float *lastf = DD2_MALLOC((size_t)R * d * sizeof(float), st);
    float *logits = DD2_MALLOC((size_t)R * (size_t)V * sizeof(float), st);
    float *p = DD2_MALLOC((size_t)B * (size_t)V * sizeof(float), st);
    float *scratch = DD2_MALLOC(DD2_SAMPLING_SCRATCH(V) * sizeof(float), st);
    int rc = (yy && xprev && f && lastf && logits && p && scratch) ? DD2_OK : DD2_ERR_RUNTIME;
    for (int b = 0; rc == DD2_OK && b < B; b++) {
        yy[b] = y[b];
        if (guided) yy[B + b] = t->K; /* null class */
        /* row i of the first call holds the input of position i: prefix token i-1 (row 0 unused) */
        for (int i = 1; i <= P0; i++) {
            const float *src = prefix + ((size_t)b * P0 + i - 1) * C;
            memcpy(xprev + ((size_t)b * m0 + i) * C, src, (size_t)C * sizeof(float));
            if (guided) memcpy(xprev + ((size_t)(B + b) * m0 + i) * C, src, (size_t)C * sizeof(float));
        }
    }
    for (int pos = P0; rc == DD2_OK && pos < n; pos++) {
        if (pos == P0) { /* the prefix and position P0 in one call */
            dd2_backbone_step(&t->bb, params, &cache, xprev, yy, 0, m0, R, f);
            for (int r = 0; r < R; r++)
                memcpy(lastf + (size_t)r * d, f + ((size_t)r * m0 + P0) * d, (size_t)d * sizeof(float));
        } else {
            dd2_backbone_step(&t->bb, params, &cache, xprev, yy, pos, 1, R, lastf);
        }
        dd2_logits_forward(&t->head, params, lastf, (size_t)R, logits);
        dd2_teacher_probs(p, logits, guided ? logits + (size_t)B * V : NULL, (size_t)B, V, s, scratch);
        for (int b = 0; b < B; b++) {
            dd2_rng rng;
            dd2_rng_init(&rng, seed, DD2_RNG_SAMPLE, first_index + (uint64_t)b, (uint64_t)pos);
            int code = dd2_sample_categorical(p + (size_t)b * V, V, dd2_rng_uniform(&rng));
            tokens[(size_t)b * n + pos] = code;
            const float *cv = t->codebook + (size_t)code * C;
            memcpy(xprev + (size_t)b * C, cv, (size_t)C * sizeof(float)); /* the next call's row 0 */
            if (guided) memcpy(xprev + (size_t)(B + b) * C, cv, (size_t)C * sizeof(float));
        }
    }
    dd2_backbone_cache_free(&cache);
    free(yy);
    free(xprev);
    free(f);
    free(lastf);
    free(logits);
    free(p);
    free(scratch);
    return rc;
}

int dd2_teacher_sample(const dd2_teacher *t, const float *params, const int *y, int B, const dd2_sampling *s,
                       uint64_t seed, uint64_t first_index, int32_t *tokens, dd2_status *st) {
    return dd2_teacher_continue(t, params, y, B, s, seed, first_index, NULL, 0, tokens, st);
}
