#include "train/generator_sampler.h"

#include <string.h>

#include "train/generate_onestep.h"

int dd2_generator_sampler_init(dd2_generator_sampler *g, const dd2_ardiff *G, const float *gparams, const dd2_teacher *t,
                               const float *tparams, const dd2_config *cfg, int k, int cap, dd2_status *st) {
    memset(g, 0, sizeof *g);
    if (k < 1 || k > G->bb.dims.n)
        return DD2_FAIL(st, DD2_ERR_INPUT, "--steps %d: the few-step sampler takes 1 to %d steps", k, G->bb.dims.n);
    if (k > 1 && !t) return DD2_FAIL(st, DD2_ERR_RUNTIME, "few-step sampling needs the teacher");
    *g = (dd2_generator_sampler){G, gparams, t, tparams, dd2_sampling_from_config(cfg), k,
                                 cfg->sample.snap || cfg->teacher.input == DD2_TEACHER_INPUT_QUANTIZED,
                                 (uint64_t)cfg->run.seed, cap, {0}, NULL, 0};
    return dd2_ardiff_work_alloc(&g->w, G, cap, 1, st);
}

void dd2_generator_sampler_free(dd2_generator_sampler *g) {
    dd2_ardiff_work_free(&g->w);
    memset(g, 0, sizeof *g);
}

int dd2_generator_sample_batch(void *model, const int *y, int B, uint64_t first_index, int32_t *tokens, dd2_status *st) {
    dd2_generator_sampler *g = model;
    for (int b0 = 0; b0 < B; b0 += g->cap) {
        int b = B - b0 < g->cap ? B - b0 : g->cap;
        int32_t *tok = tokens + (size_t)b0 * g->G->bb.dims.n;
        float *q = g->q ? g->q + (first_index + b0 - g->q_first) * (size_t)g->G->n * g->G->C : NULL;
        int rc = g->k == 1 ? dd2_generator_sample(g->G, g->gparams, &g->w, y + b0, b, g->seed, first_index + b0, tok,
                                                  q, st)
                           : dd2_fewstep_sample(g->G, g->gparams, &g->w, g->t, g->tparams, &g->s, g->k, g->snap, y + b0,
                                                b, g->seed, first_index + b0, tok, st);
        if (rc != DD2_OK) return rc;
    }
    return DD2_OK;
}
