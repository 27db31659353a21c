/* The configuration schema: every key of dd2_config with its type, range, default and help, and
 * the rules between keys. Adding a key = a field in config.h + one line here (keep the keys of a
 * section together: printing nests them in table order). Defaults fit the embedded
 * Fashion-MNIST run (docs/method.md section 8). The loader itself is in config.c. */
#include <limits.h>
#include <math.h>
#include <stddef.h>

#include "core/log.h"
#include "io/config.h"

/* offsetof(dd2_config, member), plus a compile-time warning when the member is not of type T
 * (comparison of distinct pointer types); sizeof does not evaluate its operand. */
#define OFF_AS(member, T) (offsetof(dd2_config, member) + 0 * sizeof(&((dd2_config *)0)->member == (T *)0))
/* the same for a char array member (decays to char *) */
#define OFF_STR(member) (offsetof(dd2_config, member) + 0 * sizeof(((dd2_config *)0)->member == (char *)0))
#define SIZE_OF(member) sizeof(((dd2_config *)0)->member)

#define NO_MAX INFINITY
#define IMAX ((double)INT_MAX)
#define OPEN_MIN DD2_CFG_MIN_EXCL
#define OPEN_MAX DD2_CFG_MAX_EXCL
#define OPEN_BOTH (DD2_CFG_MIN_EXCL | DD2_CFG_MAX_EXCL)

#define K_INT(p, m, lo, hi, d, h)                                                                  \
    {.path = p, .type = DD2_CFG_INT, .offset = OFF_AS(m, int), .size = SIZE_OF(m), .min = lo,      \
     .max = hi, .def = d, .help = h}
#define K_FLOAT(p, m, lo, hi, fl, d, h)                                                            \
    {.path = p, .type = DD2_CFG_FLOAT, .offset = OFF_AS(m, double), .size = SIZE_OF(m), .min = lo, \
     .max = hi, .flags = fl, .def = d, .help = h}
#define K_BOOL(p, m, d, h)                                                                         \
    {.path = p, .type = DD2_CFG_BOOL, .offset = OFF_AS(m, bool), .size = SIZE_OF(m), .def = d, .help = h}
/* d is the literal default string; it is quoted here so the default is YAML text like the others */
#define K_STR(p, m, minlen, d, h)                                                                  \
    {.path = p, .type = DD2_CFG_STRING, .offset = OFF_STR(m), .size = SIZE_OF(m), .min = minlen,   \
     .def = "\"" d "\"", .help = h}
#define K_ENUM(p, m, names, d, h)                                                                  \
    {.path = p, .type = DD2_CFG_ENUM, .offset = OFF_AS(m, int), .size = SIZE_OF(m),                \
     .enum_values = names, .def = d, .help = h}
#define K_INTS(p, m, lo, hi, nmin, nmax, d, h)                                                     \
    {.path = p, .type = DD2_CFG_INT_LIST, .offset = OFF_AS(m, dd2_int_list), .size = SIZE_OF(m),   \
     .min = lo, .max = hi, .min_len = nmin, .max_len = nmax, .def = d, .help = h}
#define K_FLOATS(p, m, lo, hi, fl, nmin, nmax, d, h)                                               \
    {.path = p, .type = DD2_CFG_FLOAT_LIST, .offset = OFF_AS(m, dd2_float_list),                   \
     .size = SIZE_OF(m), .min = lo, .max = hi, .flags = fl, .min_len = nmin, .max_len = nmax,      \
     .def = d, .help = h}

/* Adam betas: two numbers in [0, 1) */
#define K_BETAS(p, m) K_FLOATS(p, m, 0, 1, OPEN_MAX, 2, 2, "[0.9, 0.95]", "Adam (beta1, beta2)")

/* enum value names, indexed by the C enum constants of config.h */
static const char *const vq_init_names[] = {[DD2_VQ_INIT_KMEANSPP] = "kmeans++", [DD2_VQ_INIT_RANDOM] = "random", NULL};
static const char *const input_map_names[] = {[DD2_INPUT_MAP_LINEAR] = "linear", [DD2_INPUT_MAP_MLP] = "mlp", NULL};
static const char *const matmul_names[] = {[DD2_MATMUL_F32] = "f32", [DD2_MATMUL_BF16] = "bf16", NULL};
static const char *const rope_names[] = {[DD2_CFG_ROPE_2D] = "2d", [DD2_CFG_ROPE_1D] = "1d", NULL};
static const char *const schedule_names[] = {[DD2_SCHEDULE_CONSTANT] = "constant", [DD2_SCHEDULE_COSINE] = "cosine", [DD2_SCHEDULE_LINEAR] = "linear", NULL};
static const char *const teacher_input_names[] = {[DD2_TEACHER_INPUT_CONTINUOUS] = "continuous",
                                                  [DD2_TEACHER_INPUT_QUANTIZED] = "quantized", NULL};
static const char *const sample_model_names[] = {[DD2_SAMPLE_GENERATOR] = "generator", [DD2_SAMPLE_TEACHER] = "teacher",
                                                 [DD2_SAMPLE_ARDIFF] = "ardiff", NULL};
static const char *const ardiff_loss_names[] = {[DD2_ARDIFF_LOSS_GTS] = "gts", [DD2_ARDIFF_LOSS_DIFFUSION] = "diffusion", NULL};
static const char *const distill_init_names[] = {[DD2_DISTILL_INIT_ARDIFF] = "ardiff", [DD2_DISTILL_INIT_TEACHER] = "teacher",
                                                 [DD2_DISTILL_INIT_ODE_PAIRS] = "ode-pairs", NULL};
static const char *const csd_grad_names[] = {[DD2_CSD_GRAD_SID] = "sid", [DD2_CSD_GRAD_DMD] = "dmd", NULL};
static const char *const csd_omega_names[] = {[DD2_CSD_OMEGA_SEQUENCE] = "sequence", [DD2_CSD_OMEGA_POSITION] = "position",
                                              [DD2_CSD_OMEGA_POINT] = "point", NULL};
static const char *const feature_net_names[] = {[DD2_FEATURE_NET_CLASSIFIER] = "classifier",
                                                [DD2_FEATURE_NET_INCEPTION] = "inception", NULL};
static const char *const resume_names[] = {[DD2_RESUME_AUTO] = "auto", [DD2_RESUME_NEVER] = "never", NULL};
static const char *const log_level_names[] = {[DD2_LOG_QUIET] = "quiet", [DD2_LOG_INFO] = "info", [DD2_LOG_DEBUG] = "debug", NULL};

const dd2_cfg_key dd2_cfg_schema[] = {
    /* run */
    K_STR("run.name", run.name, 1, "fmnist", "run name: outputs go to <run.out_dir>/<run.name>/"),
    K_STR("run.out_dir", run.out_dir, 1, "checkpoints", "directory holding the run directories"),
    K_INT("run.seed", run.seed, 0, IMAX, "1", "seed of every random stream (counter-based RNG)"),

    /* data */
    K_STR("data.dir", data.dir, 1, "/usr/share/datasets/fashion-mnist", "directory of the IDX dataset files"),
    K_STR("data.train_images", data.train_images, 1, "train-images-idx3-ubyte.gz", "training images (IDX, optionally gzipped), relative to data.dir"),
    K_STR("data.train_labels", data.train_labels, 1, "train-labels-idx1-ubyte.gz", "training labels, relative to data.dir"),
    K_STR("data.test_images", data.test_images, 1, "t10k-images-idx3-ubyte.gz", "test images (FID reference), relative to data.dir"),
    K_STR("data.test_labels", data.test_labels, 1, "t10k-labels-idx1-ubyte.gz", "test labels, relative to data.dir"),
    K_INT("data.n_classes", data.n_classes, 1, 1000000, "10", "number of classes (class-conditional models)"),
    K_INT("data.image_size", data.image_size, 1, 65536, "28", "image height = width in pixels"),
    K_INT("data.channels", data.channels, 1, 4, "1", "image channels"),
    K_INT("data.train_limit", data.train_limit, 0, IMAX, "0", "use only the first N training images (0: all)"),
    K_INT("data.test_limit", data.test_limit, 0, IMAX, "0", "use only the first N test images (0: all)"),

    /* vq: the patch k-means tokenizer */
    K_INT("vq.codes", vq.codes, 2, 1048576, "512", "codebook size V"),
    K_INT("vq.patch", vq.patch, 1, 64, "4", "patch side in pixels; token dimension C = patch^2 * channels"),
    K_INT("vq.iters", vq.iters, 1, 100000, "20", "k-means iterations"),
    K_INT("vq.sample_patches", vq.sample_patches, 0, IMAX, "0", "the k-means initialisation draws from a random subset of this many patches (0: all)"),
    K_ENUM("vq.init", vq.init, vq_init_names, "kmeans++", "k-means initialisation"),
    K_STR("vq.codebook", vq.codebook, 0, "", "HDF5 file with an imported codebook [V,C] (empty: train k-means)"),

    /* model: the transformer backbone shared by teacher, AR-diffusion model, generator, guidance */
    K_INT("model.d_model", model.d_model, 8, 65536, "128", "model width"),
    K_INT("model.n_layers", model.n_layers, 1, 1024, "4", "transformer blocks"),
    K_INT("model.n_heads", model.n_heads, 1, 1024, "4", "attention heads (must divide model.d_model)"),
    K_INT("model.mlp_hidden", model.mlp_hidden, 0, 1048576, "0", "hidden width of the block MLP (0: 4 * model.d_model)"),
    K_ENUM("model.input_map", model.input_map, input_map_names, "linear", "map from a continuous token in R^C to the model width: Linear or Linear-SiLU-Linear"),
    K_ENUM("model.rope", model.rope, rope_names, "2d", "rotary position embedding: 2d over the token grid (LlamaGen) or 1d over the sequence"),

    /* head: the MLP diffusion head (MAR's SimpleMLPAdaLN) */
    K_INT("head.width", head.width, 8, 65536, "128", "width W of the MLP head of Psi, the generator and the guidance network (configs/fmnist.yaml: 256, docs/distill.md)"),
    K_INT("head.depth", head.depth, 1, 256, "3", "residual AdaLN blocks"),

    /* teacher: training the AR teacher */
    K_INT("teacher.epochs", teacher.epochs, 0, 1000000, "3", "training epochs (used when teacher.steps is 0)"),
    K_INT("teacher.steps", teacher.steps, 0, IMAX, "0", "optimizer steps (0: teacher.epochs over the training set)"),
    K_INT("teacher.batch", teacher.batch, 1, 1048576, "128", "global batch size (sequences)"),
    K_FLOAT("teacher.lr", teacher.lr, 0, 1, OPEN_MIN, "3e-4", "peak learning rate"),
    K_INT("teacher.warmup", teacher.warmup, 0, IMAX, "100", "linear learning-rate warm-up steps"),
    K_ENUM("teacher.schedule", teacher.schedule, schedule_names, "cosine", "learning rate after warm-up: constant, or cosine or linear decay to 0"),
    K_FLOAT("teacher.weight_decay", teacher.weight_decay, 0, 10, 0, "0.05", "AdamW weight decay"),
    K_FLOAT("teacher.grad_clip", teacher.grad_clip, 0, NO_MAX, 0, "1", "gradient-norm clip (0: off)"),
    K_FLOAT("teacher.class_dropout", teacher.class_dropout, 0, 1, 0, "0.1", "probability of dropping the class (for classifier-free guidance)"),
    K_BETAS("teacher.betas", teacher.betas),
    K_ENUM("teacher.input", teacher.input, teacher_input_names, "continuous", "teacher inputs: continuous vectors, or snapped to the nearest code first (DD1)"),
    K_STR("teacher.weights", teacher.weights, 0, "", "HDF5 file of converted teacher weights (empty: train the teacher)"),

    /* sample: the teacher's sampling distribution p (also used by the score service) and sampling */
    K_FLOAT("sample.cfg_scale", sample.cfg_scale, 0, 100, 0, "2.0", "classifier-free guidance scale s"),
    K_FLOAT("sample.temperature", sample.temperature, 0, 100, OPEN_MIN, "1.0", "softmax temperature"),
    K_INT("sample.top_k", sample.top_k, 0, 1048576, "64", "keep the k most likely codes (0: off; at most vq.codes)"),
    K_FLOAT("sample.top_p", sample.top_p, 0, 1, OPEN_MIN, "1.0", "nucleus sampling mass (1: off)"),
    K_BOOL("sample.snap", sample.snap, "true", "snap generator outputs to the nearest code before decoding"),
    K_INT("sample.n", sample.n, 1, IMAX, "100", "images to sample (a grid with one row per class)"),
    K_INT("sample.batch", sample.batch, 1, 1048576, "100", "sampling batch size"),
    K_INT("sample.steps", sample.steps, 1, 65536, "1", "generator steps: 1 = one step, k > 1 = teacher re-samples the last k-1 AR steps"),
    K_ENUM("sample.model", sample.model, sample_model_names, "generator", "which model `dd2 sample` uses"),
    K_STR("sample.out", sample.out, 1, "samples.png", "PNG grid, relative to the run directory"),

    /* teacher_sample: the training set of stage 1 */
    K_INT("teacher_sample.n", teacher_sample.n, 1, IMAX, "10000", "sequences sampled from the teacher"),
    K_INT("teacher_sample.batch", teacher_sample.batch, 1, 1048576, "256", "sampling batch size"),

    /* ardiff: stage 1, the AR-diffusion model */
    K_ENUM("ardiff.loss", ardiff.loss, ardiff_loss_names, "gts", "ground-truth-score loss or the plain diffusion loss"),
    K_INT("ardiff.m", ardiff.m, 1, 1024, "2", "noise draws per token"),
    K_INT("ardiff.steps", ardiff.steps, 0, IMAX, "500", "optimizer steps"),
    K_INT("ardiff.head_only_steps", ardiff.head_only_steps, 0, IMAX, "0", "first train the head alone for this many steps (backbone frozen)"),
    K_INT("ardiff.batch", ardiff.batch, 1, 1048576, "64", "global batch size (sequences)"),
    K_FLOAT("ardiff.lr", ardiff.lr, 0, 1, OPEN_MIN, "1e-4", "learning rate"),
    K_INT("ardiff.warmup", ardiff.warmup, 0, IMAX, "50", "linear learning-rate warm-up steps"),
    K_FLOAT("ardiff.weight_decay", ardiff.weight_decay, 0, 10, 0, "0", "AdamW weight decay"),
    K_FLOAT("ardiff.grad_clip", ardiff.grad_clip, 0, NO_MAX, 0, "1", "gradient-norm clip (0: off)"),
    K_BETAS("ardiff.betas", ardiff.betas),
    K_FLOAT("ardiff.t_min", ardiff.t_min, 0, 1, OPEN_BOTH, "0.02", "smallest timestep drawn (t ~ U[t_min, t_max])"),
    K_FLOAT("ardiff.t_max", ardiff.t_max, 0, 1, OPEN_MIN, "0.98", "largest timestep drawn"),
    K_INT("ardiff.euler_steps", ardiff.euler_steps, 1, 100000, "10", "Euler steps per token when sampling the AR-diffusion model (eval, ode-pairs)"),
    K_INT("ardiff.eval_every", ardiff.eval_every, 0, IMAX, "500", "fixed-noise eval losses on training and held-out teacher samples every N steps (0: only at the end)"),

    /* distill: stage 2, conditional score distillation */
    K_ENUM("distill.init", distill.init, distill_init_names, "ardiff", "generator and guidance start from the AR-diffusion model, the teacher backbone, or ODE-pair regression"),
    K_INT("distill.generator.extra_layers", distill.generator.extra_layers, 0, 64, "0", "backbone blocks the generator has beyond the AR-diffusion model's, appended as identities (zero output projections; docs/distill.md)"),
    K_INT("distill.generator.extra_head_blocks", distill.generator.extra_head_blocks, 0, 64, "0", "MLP-head residual blocks the generator has beyond the AR-diffusion model's, appended as identities (zero AdaLN)"),
    K_INT("distill.guidance.extra_layers", distill.guidance.extra_layers, 0, 64, "0", "backbone blocks the guidance network has beyond the AR-diffusion model's, appended as identities"),
    K_INT("distill.guidance.extra_head_blocks", distill.guidance.extra_head_blocks, 0, 64, "0", "MLP-head residual blocks the guidance network has beyond the AR-diffusion model's, appended as identities"),
    K_INT("distill.ode.pairs", distill.ode.pairs, 1, IMAX, "2000", "(noise, sequence) pairs sampled from the AR-diffusion ODE (init: ode-pairs)"),
    K_INT("distill.ode.steps", distill.ode.steps, 0, IMAX, "200", "regression steps on the pairs (init: ode-pairs)"),
    K_FLOAT("distill.ode.lr", distill.ode.lr, 0, 1, OPEN_MIN, "1e-4", "regression learning rate (init: ode-pairs)"),
    K_FLOAT("distill.ode.reg_weight", distill.ode.reg_weight, 0, 1e6, 0, "0", "weight of the regression loss on the ODE pairs kept beside the CSD loss (DMD's regression term; init: ode-pairs; 0: off)"),
    K_ENUM("distill.csd.grad", distill.csd.grad, csd_grad_names, "dmd", "generator gradient: through the score Jacobians (sid) or detached scores (dmd)"),
    K_FLOAT("distill.csd.alpha", distill.csd.alpha, 0, 10, 0, "1.0", "SiD's alpha in the generator loss"),
    K_ENUM("distill.csd.omega", distill.csd.omega, csd_omega_names, "sequence", "SiD's normaliser 1 / mean |q - a|: over each sequence (method.md), each position, or each point (one t, as SiD's per image)"),
    K_INT("distill.k", distill.k, 1, 1000, "2", "guidance updates per generator update (K)"),
    K_INT("distill.m", distill.m, 1, 1024, "2", "noise draws per token (m)"),
    K_INT("distill.omega_draws", distill.omega_draws, 0, 1024, "0", "extra noise draws per token used only for the per-position normaliser omega (csd.omega: position): the teacher's x0-prediction at m + omega_draws points per token, no network (measured: no gain at m = 8, docs/distill.md)"),
    K_ENUM("distill.matmul", distill.matmul, matmul_names, "f32", "precision of the distill stage's network matrix products (ODE pairs, regression, CSD updates, its FID checks): f32, or bf16 (inputs rounded to bfloat16, fp32 sums, on Intel AMX; docs/model.md \"bf16 matmul\"); the rest of the math, and the other stages, stay f32"),
    K_INT("distill.m_guid", distill.m_guid, 0, 1024, "0", "noise draws per token in the guidance loss (0: distill.m); the generator loss always uses distill.m"),
    K_INT("distill.steps", distill.steps, 0, IMAX, "2000", "generator updates"),
    K_INT("distill.batch", distill.batch, 1, 1048576, "64", "global batch size (sequences)"),
    K_FLOAT("distill.lr_gen", distill.lr_gen, 0, 1, OPEN_MIN, "2e-4", "generator learning rate (after warm-up)"),
    K_FLOAT("distill.lr_guid", distill.lr_guid, 0, 1, OPEN_MIN, "2e-4", "guidance network learning rate"),
    K_INT("distill.gen_warmup", distill.gen_warmup, 0, IMAX, "200", "generator updates of linear LR warm-up"),
    K_FLOAT("distill.gen_warmup_from", distill.gen_warmup_from, 0, 1, 0, "1e-6", "generator learning rate at the start of warm-up"),
    K_ENUM("distill.gen_schedule", distill.gen_schedule, schedule_names, "constant", "generator learning rate after warm-up: constant, or cosine or linear decay to 0 at distill.steps"),
    K_INT("distill.gen_decay_steps", distill.gen_decay_steps, 0, IMAX, "0", "with gen_schedule cosine or linear: the decay runs over the last gen_decay_steps generator steps only, lr_gen constant before it (warmup-stable-decay); 0: from the end of the warm-up"),
    K_FLOAT("distill.ema_decay", distill.ema_decay, 0, 1, OPEN_MAX, "0.9999", "generator EMA decay (rate min(decay, (it+1)/(it+ema_ramp)))"),
    K_INT("distill.ema_ramp", distill.ema_ramp, 2, 1000000, "10", "progressive EMA: rate min(ema_decay, (it+1)/(it+ema_ramp)), iterate s weighted about s^(ema_ramp-2): smaller averages over more of the run"),
    K_FLOAT("distill.pos_weight.start", distill.pos_weight.start, 0, 1000, 0, "1", "loss weight of the first token (linear to pos_weight.end)"),
    K_FLOAT("distill.pos_weight.end", distill.pos_weight.end, 0, 1000, 0, "1", "loss weight of the last token"),
    K_INT("distill.align.after", distill.align.after, 0, IMAX, "0", "performance alignment after this many generator updates (0: off)"),
    K_INT("distill.align.steps", distill.align.steps, 0, IMAX, "0", "guidance-only updates in the alignment phase"),
    K_BETAS("distill.betas", distill.betas),
    K_FLOAT("distill.weight_decay", distill.weight_decay, 0, 10, 0, "0", "AdamW weight decay"),
    K_FLOAT("distill.grad_clip", distill.grad_clip, 0, NO_MAX, 0, "1", "gradient-norm clip (0: off)"),
    K_FLOAT("distill.t_min", distill.t_min, 0, 1, OPEN_BOTH, "0.02", "smallest timestep drawn"),
    K_FLOAT("distill.t_max", distill.t_max, 0, 1, OPEN_MIN, "0.98", "largest timestep drawn"),
    K_BOOL("distill.t_stratified", distill.t_stratified, "false", "stratified timesteps: draw j of a position's m in [t_min + (t_max - t_min) j/m, ... (j+1)/m)"),
    K_BOOL("distill.t_shared", distill.t_shared, "false", "one timestep per token for its m noise draws: the MLP head's condition path then runs once per token (guidance update 1.7x faster at m = 8, but the training is worse: docs/distill.md)"),
    K_INT("distill.eval_every", distill.eval_every, 0, IMAX, "500", "FID of the EMA generator every N generator updates (0: off)"),
    K_INT("distill.eval_n", distill.eval_n, 1, IMAX, "2000", "samples for that periodic FID"),

    /* eval: the FID table */
    K_INT("eval.n", eval.n, 1, IMAX, "10000", "samples per FID row"),
    K_INT("eval.batch", eval.batch, 1, 1048576, "500", "sampling and feature batch size"),
    K_INTS("eval.steps", eval.steps, 1, 65536, 1, 8, "[1, 2, 3, 4]", "generator step counts, one FID row each (1: one step; k > 1: the teacher re-samples the last k-1 tokens)"),
    K_BOOL("eval.teacher", eval.teacher, "true", "add the teacher row and the naive one-pass row (false: neither; no speed-up column, no side-by-side grid)"),
    K_BOOL("eval.ardiff", eval.ardiff, "true", "add the AR-diffusion model row (eval uses ardiff.euler_steps)"),
    K_STR("eval.stats", eval.stats, 0, "", "HDF5 file of reference FID statistics (empty: compute from the test set)"),
    K_ENUM("eval.features.net", eval.features.net, feature_net_names, "classifier", "feature network: a small classifier trained on the training set, or imported Inception weights"),
    K_STR("eval.features.weights", eval.features.weights, 0, "", "HDF5 weights of the feature network (empty: train the classifier)"),
    K_INT("eval.features.dim", eval.features.dim, 2, 65536, "128", "feature dimension D of the classifier"),
    K_INT("eval.features.epochs", eval.features.epochs, 1, 1000, "5", "classifier training epochs"),
    K_INT("eval.features.batch", eval.features.batch, 1, 1048576, "256", "classifier training batch size"),
    K_FLOAT("eval.features.lr", eval.features.lr, 0, 1, OPEN_MIN, "1e-3", "classifier learning rate"),

    /* checkpoint */
    K_INT("checkpoint.every", checkpoint.every, 0, IMAX, "500", "checkpoint every N steps (0: only at the end of a stage)"),
    K_INT("checkpoint.keep", checkpoint.keep, 1, 1000, "3", "checkpoints kept per stage"),
    K_ENUM("checkpoint.resume", checkpoint.resume, resume_names, "auto", "resume from LATEST when present, or always start fresh"),

    /* dist */
    K_INT("dist.teacher_ranks", dist.teacher_ranks, 0, 1048576, "0", "MPI ranks serving teacher scores, the last ranks (0: each learner computes its own)"),
    K_BOOL("dist.overlap", dist.overlap, "true", "learners do the guidance updates while the teacher scores the generator batch"),
    K_INT("dist.max_bad_steps", dist.max_bad_steps, 1, IMAX, "10", "stop after this many NaN/Inf steps in a row"),

    /* log */
    K_INT("log.every", log.every, 1, IMAX, "10", "progress line every N steps"),
    K_ENUM("log.level", log.level, log_level_names, "info", "verbosity (-q / -v override it)"),
    K_BOOL("log.metrics", log.metrics, "true", "append metrics to <run dir>/metrics.jsonl"),
};
const size_t dd2_cfg_schema_len = sizeof dd2_cfg_schema / sizeof dd2_cfg_schema[0];

static int heads_divide_width(const dd2_config *c) { return c->model.d_model % c->model.n_heads == 0; }
static int patch_divides_image(const dd2_config *c) { return c->data.image_size % c->vq.patch == 0; }
static int top_k_within_codes(const dd2_config *c) { return c->sample.top_k <= c->vq.codes; }
static int ardiff_t_ordered(const dd2_config *c) { return c->ardiff.t_min < c->ardiff.t_max; }
static int distill_t_ordered(const dd2_config *c) { return c->distill.t_min < c->distill.t_max; }
static int distill_t_one_mode(const dd2_config *c) { return !(c->distill.t_stratified && c->distill.t_shared); }
static int distill_decay_has_schedule(const dd2_config *c) {
    return c->distill.gen_decay_steps == 0 || c->distill.gen_schedule != DD2_SCHEDULE_CONSTANT;
}
static int distill_omega_draws_position(const dd2_config *c) {
    return c->distill.omega_draws == 0 || c->distill.csd.omega == DD2_CSD_OMEGA_POSITION;
}

const dd2_cfg_rule dd2_cfg_rules[] = {
    {"model.d_model", "model.n_heads", "to be a multiple of", heads_divide_width},
    {"data.image_size", "vq.patch", "to be a multiple of", patch_divides_image},
    {"sample.top_k", "vq.codes", "to be at most", top_k_within_codes},
    {"ardiff.t_min", "ardiff.t_max", "to be less than", ardiff_t_ordered},
    {"distill.t_min", "distill.t_max", "to be less than", distill_t_ordered},
    {"distill.t_stratified", "distill.t_shared", "not to be true together with", distill_t_one_mode},
    {"distill.omega_draws", "distill.csd.omega", "to be 0 unless 'position' is the value of", distill_omega_draws_position},
    {"distill.gen_decay_steps", "distill.gen_schedule", "to be 0 when 'constant' is the value of", distill_decay_has_schedule},
};
const size_t dd2_cfg_rules_len = sizeof dd2_cfg_rules / sizeof dd2_cfg_rules[0];
