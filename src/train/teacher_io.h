/* The final teacher file <run>/teacher/teacher.h5: "params/<tensor>" datasets (docs/model.md
 * names) plus attributes describing the network, and the loader used by later stages. */
#ifndef DD2_TRAIN_TEACHER_IO_H
#define DD2_TRAIN_TEACHER_IO_H

#include "core/status.h"
#include "model/teacher.h"
#include "train/stage.h"
#include "train/token_data.h"

/* Write atomically (rank 0 only). */
int dd2_teacher_save(const char *path, const dd2_teacher *t, const float *params, double test_nll_bits,
                     dd2_status *st);

/* Build the teacher from the config and the token data, then read <run>/teacher/teacher.h5 into
 * a new buffer *params (caller frees). A missing file says to run `dd2 teacher` first; a model
 * that does not match the config names the tensor. */
int dd2_teacher_load(const dd2_stage_ctx *ctx, const dd2_token_data *td, dd2_teacher *t, float **params,
                     dd2_status *st);

#endif
