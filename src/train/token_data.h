/* The tokenized dataset written by `dd2 vq`: codebook [V,C] and token sequences with labels.
 * Every rank reads the files itself (read-only HDF5 access is safe concurrently). */
#ifndef DD2_TRAIN_TOKEN_DATA_H
#define DD2_TRAIN_TOKEN_DATA_H

#include <stdint.h>

#include "core/status.h"
#include "model/vq.h"
#include "train/stage.h"

typedef struct dd2_token_split {
    int64_t N;           /* sequences */
    int32_t *tokens;     /* [N,n] code indices */
    int32_t *labels;     /* [N] classes */
} dd2_token_split;

typedef struct dd2_token_data {
    dd2_vq_codebook cb;  /* V = cb.codes, C = cb.dim */
    dd2_vq_geom geom;    /* image <-> patches */
    int n, gh, gw;       /* tokens per image and grid */
    dd2_token_split train, test;
} dd2_token_data;

/* Load <run_dir>/vq/codebook.h5 and vq/tokens.h5; a missing file says to run `dd2 vq` first. */
int dd2_token_data_load(const dd2_stage_ctx *ctx, dd2_token_data *td, dd2_status *st);
void dd2_token_data_free(dd2_token_data *td);

#endif
