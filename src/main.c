/* dd2: the command-line driver. Parses the subcommand and flags, starts MPI, loads the config,
 * runs the stage, and turns a failure status into an exit code (0 ok, 1 runtime, 2 bad input).
 * This is the only place that exits or calls MPI_Abort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/blas_setup.h"

void openblas_set_num_threads(int n);
#include "core/log.h"
#include "core/signals.h"
#include "core/status.h"
#include "dist/mpi_env.h"
#include "io/config.h"
#include "io/atomic_file.h"
#include "train/bench.h"
#include "train/ardiff_io.h"
#include "train/distill_io.h"
#include "train/fid_stage.h"
#include "train/stage.h"
#include "train/stages.h"
#include "train/cli.h"

#ifdef DD2_CUDA
#include "cuda/cuda_info.h"
#endif

#ifndef DD2_GIT_REV
#define DD2_GIT_REV "unknown"
#endif

typedef int (*cmd_fn)(const dd2_cli *cli, dd2_status *st);
typedef int (*stage_fn)(const dd2_stage_ctx *ctx, dd2_status *st);

typedef struct {
    const char *name;
    const char *args;
    const char *help;
    cmd_fn run;     /* a command with its own argument handling, or */
    stage_fn stage; /* a pipeline stage: `dd2 <name> CONFIG [--set k=v]...` */
} command;

static int cmd_config(const dd2_cli *cli, dd2_status *st);
static int cmd_version(const dd2_cli *cli, dd2_status *st);
static int cmd_bench(const dd2_cli *cli, dd2_status *st);

static const command commands[] = {
    {"pipeline", "CONFIG", "run every stage in order, skipping finished ones", NULL, dd2_stage_pipeline},
    {"vq", "CONFIG", "train the patch tokenizer (k-means) and tokenize the dataset", NULL, dd2_stage_vq},
    {"teacher", "CONFIG", "train the AR teacher (data parallel, checkpoints, resume)", NULL, dd2_stage_teacher},
    {"sample", "CONFIG [--model M] [--steps k] [--out F.png]", "sample images (M: teacher, ardiff, generator)", NULL,
     dd2_stage_sample},
    {"eval", "CONFIG", "FID table: real floor, VQ reconstructions, teacher samples (+ speed)", NULL,
     dd2_stage_eval},
    {"teacher-sample", "CONFIG", "sample the teacher's training set for stage 1 (AR-diffusion)", NULL,
     dd2_stage_teacher_sample},
    {"ardiff", "CONFIG", "stage 1: train the AR-diffusion model on teacher samples (GTS loss)", NULL,
     dd2_stage_ardiff},
    {"distill", "CONFIG", "stage 2: conditional score distillation into a one-step generator", NULL,
     dd2_stage_distill},
    {"fid-stats", "CONFIG", "train the FID feature network; reference statistics of the test set", NULL,
     dd2_stage_fid_stats},
    {"config", "CONFIG [--set k=v]... | --schema", "print the resolved config (defaults filled in) or the schema",
     cmd_config, NULL},
    {"bench", "ops|backbone [CONFIG] | distill CONFIG [--steps K]",
     "speed tables: sgemm vs FMA peak, backbone tokens/s; distill overlap (under mpirun)", cmd_bench, NULL},
    {"version", "", "print version, build and backend information", cmd_version, NULL},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void print_usage(FILE *f) {
    fprintf(f,
            "dd2 — Distilled Decoding 2: distil an image AR model into a one-step generator\n\n"
            "usage: dd2 <command> [args] [--set key.path=value]... [-q|-v]\n"
            "       mpirun -np N dd2 <command> ...   (or srun --mpi=pmix under Slurm)\n\n"
            "commands:\n");
    for (int i = 0; i < n_commands; i++) {
        char lhs[96];
        snprintf(lhs, sizeof lhs, "%s %s", commands[i].name, commands[i].args);
        fprintf(f, "  %-44s %s\n", lhs, commands[i].help);
    }
    fprintf(f,
            "\noptions:\n"
            "  --set key.path=value   override a config key (repeatable; see `dd2 config --schema`)\n"
            "  -q, --quiet            only warnings and errors\n"
            "  -v, --verbose          debug output\n"
            "  -h, --help             this help\n"
            "  --version              same as `dd2 version`\n"
            "\nexit codes: 0 ok, 1 runtime failure, 2 bad usage, config or input\n"
            "docs: README.md, docs/ (config keys: docs/config.md)\n");
}

static int cmd_version(const dd2_cli *cli, dd2_status *st) {
    (void)cli;
    (void)st;
    printf("dd2 %s (git %s)\n", DD2_VERSION, DD2_GIT_REV);
    printf("built: %s %s, C %ld, compiler %s\n", __DATE__, __TIME__, (long)__STDC_VERSION__, __VERSION__);
    const char *forced = getenv("OPENBLAS_CORETYPE");
    printf("BLAS: OpenBLAS core %s%s%s\n", dd2_blas_corename(), forced ? ", OPENBLAS_CORETYPE=" : "",
           forced ? forced : "");
#ifdef DD2_CUDA
    char why[256], versions[256];
    int n = dd2_cuda_device_count(why, sizeof why);
    dd2_cuda_versions(versions, sizeof versions);
    printf("backend: CUDA (%s); %s\n", DD2_CUDA_ARCH, versions);
    if (n > 0)
        printf("CUDA devices: %d\n", n);
    else
        printf("CUDA devices: 0 (%s); the CPU backend will be used\n", why[0] ? why : "none found");
#else
    printf("backend: CPU (build with `make CUDA=1` for the CUDA backend)\n");
#endif
    return DD2_OK;
}

static int cmd_config(const dd2_cli *cli, dd2_status *st) {
    if (cli->schema) {
        if (dd2_rank() <= 0) dd2_config_print_schema(stdout);
        return DD2_OK;
    }
    if (cli->n_positional != 1)
        return DD2_FAIL(st, DD2_ERR_INPUT, "usage: dd2 config CONFIG [--set key=value]... | dd2 config --schema");
    dd2_config cfg;
    DD2_TRY(dd2_cli_load_config(cli, cli->positional[0], &cfg, st));
    if (dd2_rank() <= 0) dd2_config_print(stdout, &cfg);
    return DD2_OK;
}

static int cmd_bench(const dd2_cli *cli, dd2_status *st) {
    const int ops = cli->n_positional >= 1 && strcmp(cli->positional[0], "ops") == 0;
    const int backbone = cli->n_positional >= 1 && strcmp(cli->positional[0], "backbone") == 0;
    if (cli->n_positional < 1 || cli->n_positional > 2 || (!ops && !backbone))
        return DD2_FAIL(st, DD2_ERR_INPUT, "usage: dd2 bench ops|backbone [CONFIG] | dd2 bench distill CONFIG");
    if (dd2_world_size() > 1) return DD2_FAIL(st, DD2_ERR_INPUT, "dd2 bench ops runs as a single process");
    dd2_config cfg;
    DD2_TRY(dd2_cli_load_config(cli, cli->n_positional == 2 ? cli->positional[1] : NULL, &cfg, st));
    return ops ? dd2_bench_ops(&cfg, 0.3, st) : dd2_bench_backbone(&cfg, 1.0, st);
}

/* `dd2 bench distill CONFIG`: a collective benchmark on a run directory, run like a stage. */
static int bench_distill_stage(const dd2_stage_ctx *ctx, dd2_status *st) {
    return dd2_bench_distill(ctx, ctx->steps, st);
}

/* A pipeline stage: load the config, prepare the run directory, record the config, run. */
static int run_stage(const command *cmd, const dd2_cli *cli, const dd2_mpi_env *env, dd2_status *st) {
    if (cli->n_positional != 1)
        return DD2_FAIL(st, DD2_ERR_INPUT, "usage: dd2 %s CONFIG [--set key.path=value]...", cmd->name);
    static dd2_config cfg;
    DD2_TRY(dd2_cli_load_config(cli, cli->positional[0], &cfg, st));
    if (cli->log_level == DD2_LOG_INFO) dd2_log_set_level(cfg.log.level);
    dd2_stage_ctx ctx;
    DD2_TRY(dd2_stage_ctx_init(&ctx, &cfg, env, st));
    ctx.model = cli->model;
    ctx.out = cli->out;
    ctx.steps = cli->steps;
    if (env->rank == 0) {
        char *text = NULL, path[1200];
        size_t len = 0;
        int rc = dd2_config_to_yaml(&cfg, &text, &len, st);
        if (rc == DD2_OK) rc = dd2_stage_path(&ctx, "config.yaml", path, sizeof path, st);
        if (rc == DD2_OK) rc = dd2_atomic_write_text(path, text, st);
        free(text);
        if (rc != DD2_OK) dd2_warn("could not record the resolved config: %s", st->msg);
        dd2_info("dd2 %s: run directory %s (%d rank%s)", cmd->name, ctx.run_dir, env->size, env->size == 1 ? "" : "s");
    }
    return cmd->stage(&ctx, st);
}

/* One BLAS thread per rank when the ranks on this node fill its cores (unless the user chose). */
static void choose_blas_threads(const dd2_mpi_env *env) {
    if (getenv("OPENBLAS_NUM_THREADS")) return;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = env->local_size >= cores ? 1 : (int)(cores / env->local_size);
    openblas_set_num_threads(threads);
    dd2_debug("BLAS threads per rank: %d", threads);
}

/* If OpenBLAS picked a slow generic kernel, set OPENBLAS_CORETYPE and re-execute (once). */
static void fix_blas_kernel(char **argv) {
    const char *want = dd2_blas_wanted_coretype();
    if (!want || getenv("DD2_BLAS_REEXEC")) return;
    setenv("DD2_BLAS_REEXEC", dd2_blas_corename(), 1);
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernel, the log below says so */
}

static void log_blas_choice(void) {
    const char *was = getenv("DD2_BLAS_REEXEC");
    if (was)
        dd2_info0("OpenBLAS had picked the slow '%s' kernel for this CPU; restarted with OPENBLAS_CORETYPE=%s",
                  was, dd2_blas_corename());
    else if (dd2_blas_wanted_coretype())
        dd2_warn0("OpenBLAS uses the slow '%s' kernel; set OPENBLAS_CORETYPE=%s for 3-4x faster matmuls",
                  dd2_blas_corename(), dd2_blas_wanted_coretype());
}

static const command *find_command(const char *name) {
    for (int i = 0; i < n_commands; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static int finish(dd2_mpi_env *env, int rc, const dd2_status *st, int collective) {
    if (rc != DD2_OK) {
        char buf[DD2_MSG_MAX + 256];
        dd2_status_format(st, rc != DD2_ERR_INPUT || dd2_log_level() >= DD2_LOG_DEBUG, buf, sizeof buf);
        if (!collective || env->rank == 0) {
            if (env->size > 1)
                fprintf(stderr, "dd2: error (rank %d): %s\n", env->rank, buf);
            else
                fprintf(stderr, "dd2: error: %s\n", buf);
        }
        if (!collective && env->size > 1) dd2_mpi_abort(env, rc);
    }
    dd2_mpi_stop(env);
    return rc;
}

int main(int argc, char **argv) {
    fix_blas_kernel(argv);
    dd2_log_init();
    dd2_status st;
    dd2_status_clear(&st);

    dd2_cli cli;
    int rc = dd2_cli_parse(argc, argv, &cli, &st);
    if (rc != DD2_OK) {
        fprintf(stderr, "dd2: error: %s\n(try `dd2 --help`)\n", st.msg);
        return rc;
    }
    if (cli.help || !cli.command) {
        print_usage(cli.help ? stdout : stderr);
        return cli.help ? 0 : DD2_ERR_INPUT;
    }
    const command *cmd = find_command(cli.command);
    if (!cmd) {
        fprintf(stderr, "dd2: error: unknown command '%s' (try `dd2 --help`)\n", cli.command);
        return DD2_ERR_INPUT;
    }
    dd2_log_set_level(cli.log_level);
    if (strcmp(cmd->name, "version") == 0) return cmd->run(&cli, &st);

    dd2_mpi_env env;
    rc = dd2_mpi_start(&argc, &argv, &env, &st);
    if (rc != DD2_OK) {
        fprintf(stderr, "dd2: error: %s\n", st.msg);
        return rc;
    }
    log_blas_choice();
    choose_blas_threads(&env);
    dd2_signals_install(); /* SIGTERM / SIGUSR1: checkpoint at the next step boundary, exit 0 */
    static const command bench_distill = {"bench distill", "CONFIG", "", NULL, bench_distill_stage};
    if (strcmp(cmd->name, "bench") == 0 && cli.n_positional >= 1 && strcmp(cli.positional[0], "distill") == 0) {
        cmd = &bench_distill; /* positional: distill CONFIG -> CONFIG */
        cli.positional[0] = cli.n_positional > 1 ? cli.positional[1] : NULL;
        cli.n_positional--;
    }
    rc = cmd->stage ? run_stage(cmd, &cli, &env, &st) : cmd->run(&cli, &st);
    return finish(&env, rc, &st, st.collective);
}
