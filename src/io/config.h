/* The run configuration: a typed struct filled from YAML (libyaml) by a schema table.
 *
 * Every key has a path ("teacher.lr", "distill.csd.grad"), a type, a range, a default and a
 * one-line help in the schema table (src/io/config_schema.c); loading writes each value into
 * its typed field of dd2_config through offsetof, so the rest of the code reads cfg->teacher.lr.
 * docs/config.md describes the file format, the error messages and every key.
 *
 * Contracts:
 * - Library code never exits: every loader returns DD2_OK or a status code and fills `st`.
 * - Bad input (unknown or duplicate key, wrong type, out of range, bad enum, bad list, YAML
 *   syntax error) is DD2_ERR_INPUT with exactly one message of the form
 *       FILE:LINE:COL: key.path: what is wrong (expected ...)
 *       FILE:LINE:COL: syntax error: <libyaml problem> (<libyaml context>)
 *   with 1-based line and column; for --set the position is replaced by the assignment:
 *       --set teacher.lr=abc: teacher.lr: 'abc' is not a number (expected a number in (0, 1])
 * - A document (or an assignment) is validated completely before the output struct is touched:
 *   on any failure *cfg is left exactly as it was.
 * - Strings are NUL-terminated fixed arrays; lists are fixed-capacity arrays with a count;
 *   enums are ints holding the C enum values below; numbers are int or double.
 * - Numbers are read and printed in the C locale (the driver never calls setlocale).
 */
#ifndef DD2_IO_CONFIG_H
#define DD2_IO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "core/status.h"

#define DD2_CFG_NAME_MAX 128   /* capacity (with the NUL) of short strings: names, file names */
#define DD2_CFG_PATH_MAX 512   /* capacity (with the NUL) of path strings */
#define DD2_CFG_LIST_MAX 16    /* capacity of list-valued keys */

typedef struct dd2_int_list {
    int n;                     /* number of elements used */
    int v[DD2_CFG_LIST_MAX];
} dd2_int_list;

typedef struct dd2_float_list {
    int n;
    double v[DD2_CFG_LIST_MAX];
} dd2_float_list;

/* Enum-valued keys hold one of these (the schema's value names are in the same order). */
enum dd2_vq_init { DD2_VQ_INIT_KMEANSPP, DD2_VQ_INIT_RANDOM };                 /* vq.init */
enum dd2_input_map { DD2_INPUT_MAP_LINEAR, DD2_INPUT_MAP_MLP };               /* model.input_map */
enum dd2_cfg_rope { DD2_CFG_ROPE_2D, DD2_CFG_ROPE_1D };                        /* model.rope */
enum dd2_cfg_schedule { DD2_SCHEDULE_CONSTANT, DD2_SCHEDULE_COSINE, DD2_SCHEDULE_LINEAR }; /* teacher.schedule, distill.gen_schedule */
enum dd2_teacher_input { DD2_TEACHER_INPUT_CONTINUOUS, DD2_TEACHER_INPUT_QUANTIZED }; /* teacher.input */
enum dd2_sample_model { DD2_SAMPLE_GENERATOR, DD2_SAMPLE_TEACHER, DD2_SAMPLE_ARDIFF }; /* sample.model */
enum dd2_ardiff_loss { DD2_ARDIFF_LOSS_GTS, DD2_ARDIFF_LOSS_DIFFUSION };     /* ardiff.loss */
enum dd2_distill_init { DD2_DISTILL_INIT_ARDIFF, DD2_DISTILL_INIT_TEACHER, DD2_DISTILL_INIT_ODE_PAIRS }; /* distill.init */
enum dd2_csd_grad { DD2_CSD_GRAD_SID, DD2_CSD_GRAD_DMD };                    /* distill.csd.grad */
enum dd2_csd_omega { DD2_CSD_OMEGA_SEQUENCE, DD2_CSD_OMEGA_POSITION, DD2_CSD_OMEGA_POINT }; /* distill.csd.omega */
enum dd2_feature_net { DD2_FEATURE_NET_CLASSIFIER, DD2_FEATURE_NET_INCEPTION }; /* eval.features.net */
enum dd2_resume { DD2_RESUME_AUTO, DD2_RESUME_NEVER };                        /* checkpoint.resume */
enum dd2_matmul { DD2_MATMUL_F32, DD2_MATMUL_BF16 };                         /* distill.matmul */
/* log.level holds DD2_LOG_QUIET / DD2_LOG_INFO / DD2_LOG_DEBUG from core/log.h */

/* One section per pipeline concern; `dd2 config --schema` (or docs/config.md) documents each key. */
typedef struct dd2_config {
    struct {
        char name[DD2_CFG_NAME_MAX];
        char out_dir[DD2_CFG_PATH_MAX];
        int seed;
    } run;
    struct {
        char dir[DD2_CFG_PATH_MAX];
        char train_images[DD2_CFG_NAME_MAX];
        char train_labels[DD2_CFG_NAME_MAX];
        char test_images[DD2_CFG_NAME_MAX];
        char test_labels[DD2_CFG_NAME_MAX];
        int n_classes;
        int image_size;
        int channels;
        int train_limit;   /* 0: all */
        int test_limit;    /* 0: all */
    } data;
    struct {
        int codes;         /* V */
        int patch;
        int iters;
        int sample_patches; /* 0: all */
        int init;          /* enum dd2_vq_init */
        char codebook[DD2_CFG_PATH_MAX];
    } vq;
    struct {
        int d_model;
        int n_layers;
        int n_heads;
        int mlp_hidden;    /* 0: 4 * d_model */
        int input_map;     /* enum dd2_input_map */
        int rope;          /* enum dd2_cfg_rope */
    } model;
    struct {
        int width;
        int depth;
    } head;
    struct {
        int epochs;
        int steps;         /* 0: use epochs */
        int batch;
        double lr;
        int warmup;
        int schedule;      /* enum dd2_cfg_schedule */
        double weight_decay;
        double grad_clip;  /* 0: off */
        double class_dropout;
        dd2_float_list betas;
        int input;         /* enum dd2_teacher_input */
        char weights[DD2_CFG_PATH_MAX];
    } teacher;
    struct {
        double cfg_scale;
        double temperature;
        int top_k;         /* 0: off */
        double top_p;      /* 1: off */
        bool snap;
        int n;
        int batch;
        int steps;
        int model;         /* enum dd2_sample_model */
        char out[DD2_CFG_PATH_MAX];
    } sample;
    struct {
        int n;
        int batch;
    } teacher_sample;
    struct {
        int loss;          /* enum dd2_ardiff_loss */
        int m;
        int steps;
        int head_only_steps;
        int batch;
        double lr;
        int warmup;
        double weight_decay;
        double grad_clip;
        dd2_float_list betas;
        double t_min;
        double t_max;
        int euler_steps;
        int eval_every;    /* 0: only at the end */
    } ardiff;
    struct {
        int init;          /* enum dd2_distill_init */
        struct {
            int extra_layers;      /* backbone blocks beyond Ψ's (identity at init) */
            int extra_head_blocks; /* MLP-head residual blocks beyond Ψ's (identity at init) */
        } generator, guidance;     /* G and ψ */
        struct {
            int pairs;
            int steps;
            double lr;
            double reg_weight;
        } ode;
        struct {
            int grad;      /* enum dd2_csd_grad */
            double alpha;
            int omega;     /* enum dd2_csd_omega */
        } csd;
        int k;
        int m;
        int steps;
        int batch;
        double lr_gen;
        double lr_guid;
        int gen_warmup;
        double gen_warmup_from;
        int gen_schedule;  /* enum dd2_cfg_schedule */
        int gen_decay_steps; /* > 0: the decay spans only the last gen_decay_steps steps */
        double ema_decay;
        int ema_ramp;      /* progressive EMA: (it+1)/(it+ema_ramp) */
        struct {
            double start;
            double end;
        } pos_weight;
        struct {
            int after;     /* 0: off */
            int steps;
        } align;
        dd2_float_list betas;
        double weight_decay;
        double grad_clip;
        double t_min;
        double t_max;
        bool t_stratified; /* draw j of m at a position in stratum j of [t_min, t_max) */
        bool t_shared;     /* a token's m draws share one timestep (grouped head) */
        int omega_draws;   /* extra draws per token for ω per position only */
        int m_guid;        /* draws per token in the guidance loss; 0: m */
        int matmul;        /* enum dd2_matmul: the stage's network GEMMs */
        int eval_every;    /* 0: off */
        int eval_n;
    } distill;
    struct {
        int n;
        int batch;
        dd2_int_list steps;
        bool teacher;
        bool ardiff;
        char stats[DD2_CFG_PATH_MAX];
        struct {
            int net;       /* enum dd2_feature_net */
            char weights[DD2_CFG_PATH_MAX];
            int dim;
            int epochs;
            int batch;
            double lr;
        } features;
    } eval;
    struct {
        int every;         /* 0: only at the end of a stage */
        int keep;
        int resume;        /* enum dd2_resume */
    } checkpoint;
    struct {
        int teacher_ranks;
        bool overlap;
        int max_bad_steps;
    } dist;
    struct {
        int every;
        int level;         /* DD2_LOG_* */
        bool metrics;
    } log;
} dd2_config;

/* The guidance loss's draws per token: distill.m_guid, or distill.m when that is 0. */
static inline int dd2_distill_guid_draws(const dd2_config *c) {
    return c->distill.m_guid > 0 ? c->distill.m_guid : c->distill.m;
}

/* ---- loading ---- */

/* Fill every field with its schema default. Returns DD2_OK, or DD2_ERR_RUNTIME when a default
 * in the schema table is itself invalid (a programming error; dd2_config_schema_check names it). */
int dd2_config_defaults(dd2_config *cfg);

/* Apply the YAML document in bytes[0..len) on top of *cfg (normally fresh defaults). Keys not in
 * the document keep their value. `filename` is used only in messages. An empty document (or one
 * holding only comments, or a lone `~`) changes nothing. Cross-key rules (e.g. model.d_model a
 * multiple of model.n_heads) are checked for every rule one of whose keys the document sets.
 * On failure *cfg is unchanged. */
int dd2_config_parse(dd2_config *cfg, const char *filename, const char *bytes, size_t len,
                     dd2_status *st);

/* Read a whole file into a malloc'd buffer (NUL-terminated; *len excludes the NUL); the caller
 * frees *bytes. A missing or unreadable file is DD2_ERR_INPUT naming the path. */
int dd2_config_read_file(const char *path, char **bytes, size_t *len, dd2_status *st);

/* Apply one "key.path=value" override. The value is YAML (a scalar, a flow list "[1, 2]", or for
 * a section path a flow mapping "{lr: 1e-3, batch: 32}") validated like a file value. Errors
 * start with "--set key.path=value: ". Cross-key rules are not checked here (the order of
 * several --set must not matter): call dd2_config_check after the last one. */
int dd2_config_set(dd2_config *cfg, const char *assignment, dd2_status *st);

/* Check the cross-key rules on a complete config (after file and overrides). DD2_ERR_INPUT
 * "config: model.d_model = 100 and model.n_heads = 3 conflict (expected ...)" on failure. */
int dd2_config_check(const dd2_config *cfg, dd2_status *st);

/* ---- output ---- */

/* Print the resolved config as YAML (sections nested, schema order); dd2_config_parse reads it
 * back to an identical struct (floats are printed with the fewest digits that round-trip). */
void dd2_config_print(FILE *f, const dd2_config *cfg);

/* The same text in a malloc'd NUL-terminated string (for checkpoints); the caller frees *text. */
int dd2_config_to_yaml(const dd2_config *cfg, char **text, size_t *len, dd2_status *st);

/* Print every key: path, type with range or enum values, default, and help. */
void dd2_config_print_schema(FILE *f);

/* The path of the first key whose value differs between a and b (schema order), or NULL when
 * they are equal (e.g. to tell what changed between a checkpoint's config and the current one). */
const char *dd2_config_diff(const dd2_config *a, const dd2_config *b);

/* ---- the schema (defined in config_schema.c) ---- */

typedef enum dd2_cfg_type {
    DD2_CFG_INT,        /* int */
    DD2_CFG_FLOAT,      /* double; accepts integers */
    DD2_CFG_BOOL,       /* bool; true/false only */
    DD2_CFG_STRING,     /* char[size] */
    DD2_CFG_ENUM,       /* int: index into enum_values */
    DD2_CFG_INT_LIST,   /* dd2_int_list */
    DD2_CFG_FLOAT_LIST  /* dd2_float_list */
} dd2_cfg_type;

enum { DD2_CFG_MIN_EXCL = 1, DD2_CFG_MAX_EXCL = 2 }; /* dd2_cfg_key.flags: open range ends */

typedef struct dd2_cfg_key {
    const char *path;      /* "teacher.lr": sections joined by '.', the last part is the key */
    dd2_cfg_type type;
    size_t offset;         /* offsetof(dd2_config, <field>) */
    size_t size;           /* sizeof the field (for strings: capacity including the NUL) */
    double min, max;       /* numbers and list elements: value range (+-INFINITY: none);
                              strings: min = minimum length */
    unsigned flags;        /* DD2_CFG_MIN_EXCL / DD2_CFG_MAX_EXCL */
    int min_len, max_len;  /* lists: element count limits */
    const char *const *enum_values; /* enums: NULL-terminated names, index = stored value */
    const char *def;       /* default as YAML text ("3e-4", "[0.9, 0.95]", "\"checkpoints\"") */
    const char *help;      /* one line */
} dd2_cfg_key;

/* A rule between two keys, checked after a document is applied. */
typedef struct dd2_cfg_rule {
    const char *a, *b;     /* the two key paths it relates */
    const char *relation;  /* as in "expected <a> <relation> <b>", e.g. "to be a multiple of" */
    int (*holds)(const dd2_config *cfg);
} dd2_cfg_rule;

extern const dd2_cfg_key dd2_cfg_schema[];
extern const size_t dd2_cfg_schema_len;
extern const dd2_cfg_rule dd2_cfg_rules[];
extern const size_t dd2_cfg_rules_len;

/* The schema entry for a key path, or NULL. */
const dd2_cfg_key *dd2_config_find(const char *path);

/* Self-check of the schema table (for tests): unique paths, no path both a key and a section,
 * each section's keys contiguous, sizes and ranges sane, every default valid. */
int dd2_config_schema_check(dd2_status *st);

#endif
