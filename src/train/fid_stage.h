/* `dd2 fid-stats CONFIG`: the FID feature network and the reference statistics (docs/fid.md).
 *
 * Writes (rank 0 computes and writes; every other rank waits and gets rank 0's status):
 *     <run_dir>/fid/featnet.h5      the feature network (trained unless eval.features.weights is
 *                                   set; reused when it exists and matches the config)
 *     <run_dir>/fid/test_stats.h5   reference statistics of the test set; when eval.stats is set
 *                                   that path is used instead: an existing file there is checked
 *                                   (same feature extractor) and kept, a missing one is written
 *     <run_dir>/fid/train_stats.h5  statistics of the training set (for the train-vs-test floor)
 * and prints the feature network's test accuracy and the floor FID (train vs test) on stdout.
 * data.train_limit / data.test_limit apply (the first N images).
 */
#ifndef DD2_TRAIN_FID_STAGE_H
#define DD2_TRAIN_FID_STAGE_H

#include <stddef.h>

#include "core/status.h"
#include "model/featnet.h"
#include "train/stage.h"

int dd2_stage_fid_stats(const dd2_stage_ctx *ctx, dd2_status *st);

/* Where the feature network is read from: eval.features.weights if set, else
 * <run_dir>/fid/featnet.h5. */
int dd2_fid_featnet_path(const dd2_stage_ctx *ctx, char *out, size_t n, dd2_status *st);
/* Reference statistics: eval.stats if set, else <run_dir>/fid/test_stats.h5. */
int dd2_fid_ref_stats_path(const dd2_stage_ctx *ctx, char *out, size_t n, dd2_status *st);
/* <run_dir>/fid/train_stats.h5 */
int dd2_fid_train_stats_path(const dd2_stage_ctx *ctx, char *out, size_t n, dd2_status *st);

/* Load the feature network of this run (the path above); a missing file is DD2_ERR_INPUT asking
 * to run `dd2 fid-stats` first. For the eval stage. Any rank (no MPI). */
int dd2_fid_load_featnet(const dd2_stage_ctx *ctx, dd2_featnet *net, dd2_status *st);

#endif
