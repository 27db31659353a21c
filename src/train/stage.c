#include "train/stage.h"

#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "model/gemm_bf16.h"

int dd2_mkdir_p(const char *path, dd2_status *st) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return DD2_FAIL(st, DD2_ERR_INPUT, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "cannot create directory %s: %s", buf, strerror(errno));
    struct stat sb;
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s exists and is not a directory", buf);
    return DD2_OK;
}

int dd2_file_exists(const char *path) { return access(path, F_OK) == 0; }

int dd2_stage_path(const dd2_stage_ctx *ctx, const char *rel, char *out, size_t n, dd2_status *st) {
    if ((size_t)snprintf(out, n, "%s/%s", ctx->run_dir, rel) >= n)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "path too long: %s/%s", ctx->run_dir, rel);
    return DD2_OK;
}

/* Run a rank-0 action and share its status with every rank. */
static int rank0_then_share(int rc, dd2_status *st) {
    int all = rc;
    MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (all != DD2_OK && rc == DD2_OK) return DD2_FAIL(st, all, "rank 0 could not prepare the run directory");
    return all;
}

int dd2_stage_set_matmul(int precision, const char *key, dd2_status *st) {
    const int want = precision == DD2_MATMUL_BF16;
    int missing = want && !dd2_gemm_bf16_supported(), any = missing;
    MPI_Allreduce(&missing, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any) {
        dd2_status why;
        dd2_status_clear(&why);
        if (missing) dd2_gemm_bf16_enable(1, &why);
        DD2_FAIL(st, DD2_ERR_INPUT, "%s = bf16: %s; use %s: f32", key,
                 missing ? why.msg : "another rank's CPU or kernel lacks the bf16 path (Intel AMX-BF16)", key);
        st->collective = 1;
        return DD2_ERR_INPUT;
    }
    if (want) dd2_info0("%s = bf16: the network matmuls round their inputs to bfloat16 (Intel AMX, fp32 sums)", key);
    return dd2_gemm_bf16_enable(want, st);
}

int dd2_stage_mkdir(const dd2_stage_ctx *ctx, const char *rel, dd2_status *st) {
    char path[1024];
    DD2_TRY(dd2_stage_path(ctx, rel, path, sizeof path, st));
    int rc = ctx->env->rank == 0 ? dd2_mkdir_p(path, st) : DD2_OK;
    return rank0_then_share(rc, st);
}

int dd2_stage_ctx_init(dd2_stage_ctx *ctx, const dd2_config *cfg, const dd2_mpi_env *env, dd2_status *st) {
    memset(ctx, 0, sizeof *ctx);
    ctx->cfg = cfg;
    ctx->comm = MPI_COMM_WORLD;
    ctx->env = env;
    if ((size_t)snprintf(ctx->run_dir, sizeof ctx->run_dir, "%s/%s", cfg->run.out_dir, cfg->run.name) >=
        sizeof ctx->run_dir)
        return DD2_FAIL(st, DD2_ERR_INPUT, "run.out_dir/run.name is too long");
    int rc = env->rank == 0 ? dd2_mkdir_p(ctx->run_dir, st) : DD2_OK;
    return rank0_then_share(rc, st);
}

int dd2_metrics_append(const dd2_stage_ctx *ctx, const char *stage, long step, const char *json_fields,
                       dd2_status *st) {
    if (ctx->env->rank != 0 || !ctx->cfg->log.metrics) return DD2_OK;
    char path[1100];
    DD2_TRY(dd2_stage_path(ctx, "metrics.jsonl", path, sizeof path, st));
    FILE *f = fopen(path, "a");
    if (!f) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: cannot open for appending: %s", path, strerror(errno));
    fprintf(f, "{\"stage\": \"%s\", \"step\": %ld, \"time\": %.3f, \"unix_time\": %ld%s%s}\n", stage, step,
            dd2_elapsed(), (long)time(NULL), json_fields && json_fields[0] ? ", " : "", json_fields ? json_fields : "");
    if (fclose(f) != 0) return DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: write failed: %s", path, strerror(errno));
    return DD2_OK;
}

int dd2_stage_files(const dd2_stage_ctx *ctx, const char *stage, const char *final_name, char *dir, size_t dir_n,
                    char *final_path, size_t final_n, dd2_status *st) {
    char rel[256];
    DD2_TRY(dd2_stage_mkdir(ctx, stage, st));
    DD2_TRY(dd2_stage_path(ctx, stage, dir, dir_n, st));
    snprintf(rel, sizeof rel, "%s/%s", stage, final_name);
    return dd2_stage_path(ctx, rel, final_path, final_n, st);
}
