/* Command-line arguments shared by every subcommand, and config loading under MPI. */
#ifndef DD2_TRAIN_CLI_H
#define DD2_TRAIN_CLI_H

#include "core/status.h"
#include "io/config.h"

#define DD2_VERSION "0.1.0"
#define DD2_CLI_MAX_SETS 64
#define DD2_CLI_MAX_POSITIONAL 8

typedef struct dd2_cli {
    const char *command;                          /* argv[1], or NULL */
    const char *positional[DD2_CLI_MAX_POSITIONAL];
    int n_positional;
    const char *sets[DD2_CLI_MAX_SETS];           /* "key.path=value" from --set */
    int n_sets;
    const char *model;                            /* --model NAME */
    const char *out;                              /* --out PATH */
    int steps;                                    /* --steps K (0: unset) */
    int schema;                                   /* --schema */
    int help;                                     /* -h / --help / --version maps to command "version" */
    int log_level;                                /* DD2_LOG_* from -q / -v */
} dd2_cli;

/* Parse argv. Unknown flags and missing flag values are DD2_ERR_INPUT. */
int dd2_cli_parse(int argc, char **argv, dd2_cli *cli, dd2_status *st);

/* Load the config file `path` (NULL: defaults only): rank 0 reads the file, the bytes are
 * broadcast, every rank parses them and applies the --set overrides, then the cross-key rules are
 * checked. Failures are collective (every rank returns the same error). Requires MPI. */
int dd2_cli_load_config(const dd2_cli *cli, const char *path, dd2_config *cfg, dd2_status *st);

#endif
