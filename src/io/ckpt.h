/* Checkpoints: the training state of a stage, sharded over the learners, checksummed, committed
 * atomically, and re-cut on load for any number of learners. docs/formats.md ("Checkpoints")
 * describes the files; this header is the contract for callers.
 *
 * Layout (one directory per stage, e.g. <run_dir>/distill/):
 *     LATEST                              "step_00001200\n": the newest committed checkpoint
 *     step_00001200/meta.h5               step, layout, config text, tensor tables, state arrays
 *     step_00001200/shard-00000-of-00002.h5   learner 0's slice of every flat buffer
 *     step_00001200/shard-00001-of-00002.h5   learner 1's slice
 *     step_00001100/ ...                  older checkpoints (the last `keep` are kept)
 *
 * What is saved: several networks (dd2_ckpt_net: a name such as "gen" or "guid", its tensor
 * table and its flat buffers params / adam_m / adam_v / ema, each of tab->numel floats with the
 * table's layout; m, v and ema are optional), plus named state arrays (dd2_ckpt_state: int64 or
 * uint32, e.g. data-order position, LR-schedule step, counters, dd2_rng_save words), the
 * resolved config text and a build string. Every learner holds full replicas of the buffers;
 * the write is sharded: each flat buffer [0, numel) is cut into L contiguous near-equal ranges
 * (L = learners = size of `comm`), range r = [floor(r*numel/L), floor((r+1)*numel/L)), and
 * learner r writes, per tensor intersecting range r, that intersection. Alignment padding
 * between tensors is neither saved nor written on load.
 *
 * Collective calls: dd2_ckpt_save / dd2_ckpt_load / dd2_ckpt_resume must be called by every
 * rank of `comm` with the same arguments (the same tables and state list; the buffers' contents
 * may differ only if you want them to - each rank saves its own slice). MPI must be initialised.
 * Every rank returns the same status: a failure on one rank (an I/O error, a damaged file) is
 * agreed on collectively and returned on all ranks with that rank's message, and st->collective
 * is set, so the driver can exit cleanly instead of calling MPI_Abort.
 *
 * Errors: DD2_ERR_RUNTIME for failures while saving (I/O, disk full) and misuse (bad names,
 * NULL params); DD2_ERR_INPUT when no valid checkpoint can be loaded or when the checkpoint does
 * not match the caller's model (tensor names/shapes, buffers, state arrays). Nothing exits.
 */
#ifndef DD2_IO_CKPT_H
#define DD2_IO_CKPT_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "model/params.h"

#define DD2_CKPT_VERSION 1                 /* meta.h5 / shard "version" attribute */
#define DD2_CKPT_FORMAT "dd2-checkpoint"   /* meta.h5 signature ("format" attribute) */
#define DD2_CKPT_SHARD_FORMAT "dd2-checkpoint-shard" /* shard signature */

/* One network: its tensor table and flat buffers (tab->numel floats each, same layout).
 * Save: params must be non-NULL; adam_m / adam_v / ema may be NULL (= not saved); nothing is
 * modified. Load: every non-NULL buffer is filled (each tensor's elements; padding untouched);
 * asking for a buffer the checkpoint does not hold is a mismatch error; buffers the checkpoint
 * holds but the caller passes as NULL are skipped (e.g. sampling loads params + ema only).
 * The name is one HDF5 path component: non-empty, no '/', not "." or "..". Tensor names must
 * contain no '/' or newline (dotted names such as "blocks.0.attn.wqkv" are fine). */
typedef struct dd2_ckpt_net {
    const char *name;
    const dd2_param_table *tab;
    float *params;
    float *adam_m;
    float *adam_v;
    float *ema;
} dd2_ckpt_net;

typedef enum dd2_ckpt_type {
    DD2_CKPT_I64 = 0, /* int64_t[count] */
    DD2_CKPT_U32 = 1  /* uint32_t[count] (e.g. DD2_RNG_STATE_WORDS words of dd2_rng_save) */
} dd2_ckpt_type;

/* A named state array stored in meta.h5 as "state/<name>" (name: an h5io dataset path such as
 * "data/position" or "rng/noise"; unique). Save reads data[0..count); load checks the type and
 * count (a difference is a mismatch error naming the entry) and writes data[0..count) only when
 * the whole checkpoint loaded. `optional` (load): a missing entry is not an error; `present`
 * (load output) says whether it was found and filled. */
typedef struct dd2_ckpt_state {
    const char *name;
    dd2_ckpt_type type;
    size_t count;
    void *data;
    int optional;
    int present;
} dd2_ckpt_state;

/* Everything a checkpoint holds. config_text / build_info are used by save only (NULL = ""). */
typedef struct dd2_ckpt_spec {
    dd2_ckpt_net *nets;
    int n_nets;
    dd2_ckpt_state *states;
    int n_states;
    const char *config_text; /* the resolved config (dd2_config_to_yaml) */
    const char *build_info;  /* e.g. the git revision DD2_GIT_REV */
} dd2_ckpt_spec;

/* Save step `step` (>= 0) into <stage_dir>/step_%08lld/ (stage_dir is created if missing).
 * Protocol: rank 0 removes stale step_*.tmp / .old / .del directories left by a crash and
 * creates step_X.tmp/; every rank writes and fsyncs its shard (rank 0 also meta.h5), each
 * through an atomic file commit; all ranks agree on success; rank 0 then commits the directory
 * (fsync, rename step_X.tmp -> step_X, fsync the parent), atomically replaces LATEST, and only
 * then deletes checkpoints beyond the last `keep` (see below). If any rank fails, step_X.tmp is
 * removed, LATEST and every committed checkpoint are untouched, and all ranks return the error.
 * Re-saving an existing step (e.g. after a resume, possibly over a damaged copy) replaces it:
 * where the file system supports it (Linux renameat2 RENAME_EXCHANGE: ext4, xfs, btrfs, tmpfs)
 * step_X.tmp and step_X are swapped atomically and the old copy is removed after LATEST is
 * written; elsewhere step_X is renamed to step_X.old just before step_X.tmp is renamed into
 * place (a crash between those two renames leaves no step_X, so the loader falls back to the
 * previous checkpoint; nothing committed is damaged). DD2_CKPT_NO_EXCHANGE=1 forces the second
 * way (for tests).
 * Keep: after a successful save, committed checkpoints with a step below `step` are kept only
 * for the `keep - 1` highest steps (keep >= 1; 0 = keep all). The new one is never deleted, and
 * directories with a step above `step` (from an abandoned run, e.g. after resume: never or a
 * fall-back past a damaged checkpoint) are left alone; a failed deletion is only a warning.
 * Test hook: when the environment variable DD2_CKPT_FAIL_RANK equals this rank in `comm`, that
 * rank's shard write fails halfway (to test the failure path). */
int dd2_ckpt_save(MPI_Comm comm, const char *stage_dir, int64_t step, int keep, const dd2_ckpt_spec *spec,
                  dd2_status *st);

/* What dd2_ckpt_load found. Free with dd2_ckpt_result_free (also after an error). */
typedef struct dd2_ckpt_result {
    int found;            /* 0: there is no checkpoint at all (not an error); the rest is empty */
    int64_t step;         /* the loaded step */
    char *dir;            /* the loaded directory, e.g. "runs/x/distill/step_00001200" */
    char *config_text;    /* the stored resolved config (compare it: dd2_ckpt_config_diff) */
    char *build_info;     /* the stored build string */
    int saved_learners;   /* learners that wrote it (the number of shards) */
    int n_skipped;        /* damaged newer checkpoints skipped before this one */
    char *skipped;        /* one line per skipped checkpoint or note ("<dir>: <what is wrong>\n"),
                             also logged as warnings; NULL when none */
} dd2_ckpt_result;

void dd2_ckpt_result_free(dd2_ckpt_result *res);

/* Load the newest valid checkpoint of <stage_dir> into spec's buffers and state arrays.
 * Candidates: the step named by LATEST, then the committed step_* directories with a lower step,
 * newest first; when LATEST is missing or unreadable, every step_* directory, newest first.
 * step_*.tmp / .old / .del directories are ignored (load never deletes anything). A candidate is
 * valid when meta.h5 has the right signature, version, step and end marker, every shard named
 * by it is present with its signature and end marker (attribute complete = 1), and every
 * dataset read passes its CRC-32 (h5io) and slice attributes. A damaged candidate is logged as
 * a warning naming the file and dataset, added to res->skipped, and the previous one is tried.
 * Each rank reads every requested tensor from all shards (any number of saved learners loads
 * on any number of learners).
 * Returns DD2_OK with res->found = 0 when stage_dir holds no step_* directory (or does not
 * exist); DD2_ERR_INPUT listing what was wrong with each candidate when none is valid; and
 * DD2_ERR_INPUT at once (no fall-back: an older checkpoint of another model is no better) when a
 * valid checkpoint does not match the caller: a network, a tensor (name or shape), a requested
 * buffer or a state array missing or different, naming it, e.g.
 *   "<dir>: network 'gen': tensor 'w': shape [3, 5] in the checkpoint, [5, 3] in the model".
 * On error, the buffers may hold partial data (state arrays are untouched). */
int dd2_ckpt_load(MPI_Comm comm, const char *stage_dir, dd2_ckpt_spec *spec, dd2_ckpt_result *res,
                  dd2_status *st);

/* checkpoint.resume for callers: resume == DD2_RESUME_NEVER (io/config.h) returns DD2_OK with
 * res->found = 0 without reading or deleting anything (old checkpoints stay; see keep above);
 * DD2_RESUME_AUTO is dd2_ckpt_load. */
int dd2_ckpt_resume(MPI_Comm comm, const char *stage_dir, int resume, dd2_ckpt_spec *spec, dd2_ckpt_result *res,
                    dd2_status *st);

/* ---- helpers (no MPI) ----------------------------------------------------------------------- */

/* out = "<stage_dir>/step_%08lld"; DD2_ERR_RUNTIME if it does not fit in n bytes. */
int dd2_ckpt_step_dir(const char *stage_dir, int64_t step, char *out, size_t n, dd2_status *st);

/* The steps of the committed step_* directories in stage_dir, ascending (malloc'd, *n may be 0,
 * *steps NULL then). A missing stage_dir gives *n = 0. The caller frees *steps. */
int dd2_ckpt_list_steps(const char *stage_dir, int64_t **steps, int *n, dd2_status *st);

/* Compare a stored config text with the current config: parses `stored_text` over the schema
 * defaults, then *first_diff = the first key path whose value differs (dd2_config_diff), or
 * NULL when they are equal. DD2_ERR_INPUT when the stored text does not parse (e.g. a key that
 * no longer exists). The caller decides what a difference means. */
struct dd2_config;
int dd2_ckpt_config_diff(const char *stored_text, const struct dd2_config *current, const char **first_diff,
                         dd2_status *st);

#endif
