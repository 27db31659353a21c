#include "train/cli.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "dist/mpi_env.h"

static int parse_int(const char *flag, const char *v, int *out, dd2_status *st) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || x < 0 || x > 1000000000)
        return DD2_FAIL(st, DD2_ERR_INPUT, "%s: expected a non-negative integer, got '%s'", flag, v);
    *out = (int)x;
    return DD2_OK;
}

int dd2_cli_parse(int argc, char **argv, dd2_cli *cli, dd2_status *st) {
    memset(cli, 0, sizeof *cli);
    cli->log_level = DD2_LOG_INFO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* flags that take a value: "--flag value" or "--flag=value" */
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        char flag[64] = "";
        if (a[0] == '-' && a[1] == '-') {
            size_t n = eq ? (size_t)(eq - a) : strlen(a);
            if (n >= sizeof flag) n = sizeof flag - 1;
            memcpy(flag, a, n);
            flag[n] = 0;
        }
        int takes_value = !strcmp(flag, "--set") || !strcmp(flag, "--model") || !strcmp(flag, "--out") ||
                          !strcmp(flag, "--steps");
        if (takes_value) {
            if (eq) {
                val = eq + 1;
            } else {
                if (i + 1 >= argc) return DD2_FAIL(st, DD2_ERR_INPUT, "%s needs a value", flag);
                val = argv[++i];
            }
        }
        if (!strcmp(flag, "--set")) {
            if (cli->n_sets == DD2_CLI_MAX_SETS)
                return DD2_FAIL(st, DD2_ERR_INPUT, "too many --set options (at most %d)", DD2_CLI_MAX_SETS);
            if (!strchr(val, '='))
                return DD2_FAIL(st, DD2_ERR_INPUT, "--set %s: expected key.path=value", val);
            cli->sets[cli->n_sets++] = val;
        } else if (!strcmp(flag, "--model")) {
            cli->model = val;
        } else if (!strcmp(flag, "--out")) {
            cli->out = val;
        } else if (!strcmp(flag, "--steps")) {
            DD2_TRY(parse_int("--steps", val, &cli->steps, st));
        } else if (!strcmp(a, "--schema")) {
            cli->schema = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            cli->help = 1;
        } else if (!strcmp(a, "--version")) {
            if (!cli->command) cli->command = "version";
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            cli->log_level = DD2_LOG_QUIET;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            cli->log_level = DD2_LOG_DEBUG;
        } else if (a[0] == '-' && a[1] != 0) {
            return DD2_FAIL(st, DD2_ERR_INPUT, "unknown option '%s'", a);
        } else if (!cli->command) {
            cli->command = a;
        } else {
            if (cli->n_positional == DD2_CLI_MAX_POSITIONAL)
                return DD2_FAIL(st, DD2_ERR_INPUT, "too many arguments ('%s')", a);
            cli->positional[cli->n_positional++] = a;
        }
    }
    return DD2_OK;
}

int dd2_cli_load_config(const dd2_cli *cli, const char *path, dd2_config *cfg, dd2_status *st) {
    char *bytes = NULL;
    size_t len = 0;
    int rc = DD2_OK;
    if (path) {
        if (dd2_rank() <= 0) rc = dd2_config_read_file(path, &bytes, &len, st);
        rc = dd2_bcast_bytes(&bytes, &len, 0, rc, st);
    }
    if (rc == DD2_OK) rc = dd2_config_defaults(cfg);
    if (rc == DD2_OK && path) rc = dd2_config_parse(cfg, path, bytes, len, st);
    for (int i = 0; rc == DD2_OK && i < cli->n_sets; i++) rc = dd2_config_set(cfg, cli->sets[i], st);
    if (rc == DD2_OK) rc = dd2_config_check(cfg, st); /* rules between keys, after all overrides */
    free(bytes);
    st->collective = 1; /* every rank parsed the same bytes with the same overrides */
    return rc;
}
