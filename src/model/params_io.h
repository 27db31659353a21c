/* A flat parameter buffer as named HDF5 datasets "<group>/<tensor name>" (one per tensor, with
 * its shape), for final model files such as teacher/teacher.h5. Checkpoints use io/ckpt.h. */
#ifndef DD2_MODEL_PARAMS_IO_H
#define DD2_MODEL_PARAMS_IO_H

#include "core/status.h"
#include "io/h5io.h"
#include "model/params.h"

int dd2_params_write_h5(dd2_h5 *h, const char *group, const dd2_param_table *tab, const float *buf, dd2_status *st);
/* Reads every tensor of `tab` (shapes must match: the error names the tensor); a dataset in the
 * group that `tab` lacks (a larger network in the file) is DD2_ERR_INPUT naming it. */
int dd2_params_read_h5(dd2_h5 *h, const char *group, const dd2_param_table *tab, float *buf, dd2_status *st);

#endif
