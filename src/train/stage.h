/* What every pipeline stage gets: the resolved config, the MPI layout and the run directory.
 *
 * Run directory layout (docs/pipeline.md):  <run.out_dir>/<run.name>/
 *     config.yaml          the resolved config of the last command (rank 0 writes it)
 *     metrics.jsonl        one JSON object per logged step, all stages (rank 0 appends)
 *     vq/                  tokenizer: codebook.h5, tokens.h5
 *     fid/                 feature network and reference statistics
 *     teacher/             checkpoints (step_XXXXXXXX/, LATEST) and the final teacher.h5
 *     samples/             sampled tokens (.h5) and PNG grids
 *     eval/                the FID / speed table
 * A stage is finished when its final output file exists (written atomically); `dd2 pipeline`
 * skips finished stages.
 */
#ifndef DD2_TRAIN_STAGE_H
#define DD2_TRAIN_STAGE_H

#include <mpi.h>
#include <stddef.h>

#include "core/status.h"
#include "dist/mpi_env.h"
#include "io/config.h"

typedef struct dd2_stage_ctx {
    const dd2_config *cfg;
    const dd2_mpi_env *env;
    char run_dir[1024];         /* <out_dir>/<name>, created by dd2_stage_ctx_init on rank 0 */
    const char *model;          /* --model NAME from the command line, or NULL */
    const char *out;            /* --out PATH from the command line, or NULL */
    int steps;                  /* --steps K from the command line, or 0 */
    MPI_Comm comm;              /* the ranks that share this stage's work and collectives:
                                   MPI_COMM_WORLD, or the learners (dist/roles.h) */
} dd2_stage_ctx;

/* Fill ctx and create the run directory (rank 0; everyone waits for it). */
int dd2_stage_ctx_init(dd2_stage_ctx *ctx, const dd2_config *cfg, const dd2_mpi_env *env, dd2_status *st);

/* out = <run_dir>/<rel> (rel may contain '/'); DD2_ERR_RUNTIME if it does not fit. */
int dd2_stage_path(const dd2_stage_ctx *ctx, const char *rel, char *out, size_t n, dd2_status *st);

/* mkdir -p <run_dir>/<rel> (rank 0 only; call on all ranks, it synchronises). */
int dd2_stage_mkdir(const dd2_stage_ctx *ctx, const char *rel, dd2_status *st);

/* A training stage's directory: creates <run_dir>/<stage> (collective) and fills dir with its
 * path and final_path with <run_dir>/<stage>/<final_name>. */
int dd2_stage_files(const dd2_stage_ctx *ctx, const char *stage, const char *final_name, char *dir, size_t dir_n,
                    char *final_path, size_t final_n, dd2_status *st);

/* The precision of the f32 matmul ops (model/gemm_bf16.h) on every rank: precision is an enum
 * dd2_matmul, key the config key that chose it (for messages). bf16 where any rank's CPU or
 * kernel lacks the bf16 path fails on every rank (DD2_ERR_INPUT). Collective (MPI_COMM_WORLD). */
int dd2_stage_set_matmul(int precision, const char *key, dd2_status *st);

/* mkdir -p for any path (no MPI). */
int dd2_mkdir_p(const char *path, dd2_status *st);

/* 1 if the file exists (any rank). */
int dd2_file_exists(const char *path);

/* Append one line of JSON to <run_dir>/metrics.jsonl (rank 0 only; others return at once).
 * `json_fields` is the inside of the object without braces, e.g. "\"loss\": 2.31"; the stage
 * name, step and wall time are added. */
int dd2_metrics_append(const dd2_stage_ctx *ctx, const char *stage, long step, const char *json_fields,
                       dd2_status *st);

#endif
