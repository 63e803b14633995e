/* defines: ebmc_recipe (a training algorithm as a table of functions the run shell calls
 * through), ebmc_recipe_env (what the shell hands a recipe), ebmc_metric, ebmc_ckpt_item,
 * ebmc_grid, ebmc_sample_opts, ebmc_plan_row, the recipe registry (ebmc_recipe_find,
 * ebmc_recipe_register, ebmc_recipe_names) and ebmc_run_t (one recipe instance with its device
 * context, data and loader: what `ebmc train`, `ebmc sample`, `ebmc bench` and tests drive).
 *
 * A recipe is one file (src/host/train/<name>.c) that fills one `const ebmc_recipe`. It knows
 * nothing of JSONL, checkpoint folders, signals, progress lines or the divergence guard; the run
 * shell (src/host/train/shell.c, run.c, ckpt.c) knows nothing of any recipe's networks, losses
 * or metric names. The life of a recipe instance:
 *
 *     parse(cfg, typed)             once: every key of the recipe's schema into its typed struct,
 *                                   validated; no key is read by string after this
 *     setup(env, typed, state)      networks, optimisers, chains, tapes, buffers: everything the
 *                                   iterations need is allocated here (the loop never allocates)
 *     iteration(state, ...)  x N    one training iteration on one data batch; then report()
 *     ckpt_items / loaded           what a checkpoint holds; applying loaded counters
 *     grids, sample, reseed, plan, probes
 *     destroy(state)                frees what setup allocated (also after a failed setup)
 */
#ifndef EBMC_RECIPE_H
#define EBMC_RECIPE_H

#include "ebmc/backend.h"
#include "ebmc/config.h"
#include "ebmc/models.h"
#include "ebmc/optim.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the shell hands a recipe at setup. */
typedef struct {
    ebmc_ctx_t *ctx;            /* the device context (run.backend, run.device, run.precision) */
    uint64_t seed;              /* run.seed */
    int batch;                  /* train.batch_size: data examples per iteration */
    bool graphs;                /* run.graphs: capture Langevin chains as CUDA graphs */
    bool share_tapes;           /* run.share_tapes: passes never live together share memory */
    bool has_data;              /* false for `ebmc sample` (no data set is opened) */
    int data_c, data_h, data_w; /* the data's example shape (has_data only) */
    const char *data_name;      /* e.g. "cifar10-train" (has_data only) */
    int ranks;                  /* data-parallel ranks (0 or 1: one process); `batch` is already
                                   this rank's share of train.batch_size */
} ebmc_recipe_env;

/* A rank's share of a global per-iteration count a recipe reads from its config (e.g.
 * train.chains): global / ranks, or an error naming `key` when the ranks cannot split it evenly.
 * With it (and the context's chain rank, ebmc/comm.h) N ranks run what one process runs. */
ebmc_status ebmc_env_share(const ebmc_recipe_env *env, int global, const char *key, int *local, char *err,
                           size_t errlen);

/* One named scalar of an iteration, in the order it is logged (metrics.jsonl, after "iter" and
 * "epoch"). `guard`: a non-finite value is a divergence. */
typedef struct {
    const char *name;
    double value;
    bool guard;
} ebmc_metric;

/* What an iteration reports (filled by ebmc_recipe.report after each iteration). */
#define EBMC_MAX_METRICS 48
typedef struct {
    ebmc_metric m[EBMC_MAX_METRICS];
    int n;
    int gap;               /* index of the metric the divergence guard bounds by guard.max_gap,
                              or -1 */
    double images;         /* examples processed per iteration (images_per_s = images / sec) */
    double chain_steps;    /* Langevin chain-steps per iteration (chain_steps_per_s), 0: none */
    char progress[160];    /* a short summary for the progress line */
} ebmc_report;

/* Adds a metric to a report (at most EBMC_MAX_METRICS: more is a programming error). */
void ebmc_report_add(ebmc_report *r, const char *name, double value, bool guard);

/* One item of a checkpoint. Networks are files of their own (<name>.safetensors, PyTorch
 * state_dict names); everything else is a tensor of state.safetensors. */
typedef enum {
    EBMC_ITEM_NET = 0, /* ptr: ebmc_net_t *                      -> <name>.safetensors */
    EBMC_ITEM_ADAM,    /* ptr: ebmc_adam_t *  -> <name>.exp_avg, <name>.exp_avg_sq, <name>.step */
    EBMC_ITEM_I64,     /* ptr: int64_t * (host), a scalar in [lo, hi] */
    EBMC_ITEM_F32,     /* ptr: float * (count elements; device memory of the context if device) */
    EBMC_ITEM_F64,     /* ptr: double * (count) */
    EBMC_ITEM_U8       /* ptr: uint8_t * (count) */
} ebmc_item_kind;

typedef struct {
    ebmc_item_kind kind;
    const char *name;
    void *ptr;
    size_t count;   /* F32/F64/U8 */
    bool device;    /* F32/F64/U8: ptr is device memory */
    int64_t lo, hi; /* I64: the valid range, checked on load */
    bool shared;    /* F32/F64/U8: a parameter every data-parallel rank holds alike (networks'
                       trainable tensors always are): compared across the ranks at each
                       checkpoint (ebmc_run_check_ranks) */
} ebmc_ckpt_item;

#define EBMC_MAX_CKPT_ITEMS 64

/* A sample grid of the last iteration: n images (C,H,W) in [-1, 1] at `dev` (device memory),
 * written as <run>/samples/iter_<N>_<name>.png. */
typedef struct {
    const char *name;
    const float *dev;
    int n, c, h, w;
} ebmc_grid;
#define EBMC_MAX_GRIDS 8

/* `ebmc sample`: test-time settings (a negative value: the recipe's own default from its
 * config) and where to write. The recipe fills `outs` (host, n * C*H*W floats each, in [-1, 1]
 * for images; raw points for 2-D data), one array per name of ebmc_recipe.sample_names. */
typedef struct {
    int n;
    double steps, step_size, noise; /* < 0: the recipe's default */
    uint64_t seed;
} ebmc_sample_opts;

/* One line of the memory plan: bytes of device memory by category for one network (or a
 * recipe-level buffer with net == NULL). Tapes shared between passes are counted once. */
typedef struct {
    const char *name;   /* "E", "G", "I", "chains", ... */
    size_t params;      /* parameter count (0 for buffers) */
    size_t param_bytes, grad_bytes, optim_bytes, tape_bytes, other_bytes;
    int tapes;          /* passes planned on this net */
    int arenas;         /* distinct tape arenas (shared tapes counted once) */
} ebmc_plan_row;
#define EBMC_MAX_PLAN_ROWS 16

typedef struct ebmc_recipe {
    const char *name;        /* run.recipe = <name> */
    const char *summary;     /* one line for --help and the plan */
    /* run.precision = auto resolves to this (ebmc_recipe_precision): EBMC_PREC_FP32 (0, also
     * when unset) for recipes that subtract nearly equal quantities (a difference of two
     * gradients after a small step, log-weight increments U_old - U_new), whose differences
     * TF32's 2^-11 operand rounding would swamp; EBMC_PREC_TF32_CONV (PyTorch's defaults: TF32
     * convolutions, fp32 matmuls) for the image recipes. */
    ebmc_precision precision;
    const ebmc_cfg_key *keys; /* the recipe's config keys (the shell adds run.*, data.*, log.*,
                                guard.*, train.iterations/epochs/batch_size) */
    int n_keys;
    size_t config_size;      /* sizeof the typed config struct */
    size_t state_size;       /* sizeof the state struct (zeroed by the shell) */
    /* cfg -> typed config (every recipe key read once, validated). EBMC_E_INVALID + err. */
    ebmc_status (*parse)(const ebmc_config_t *cfg, void *typed, char *err, size_t errlen);
    /* Optional: the example shape (C,H,W) the recipe needs from the data, known from the typed
     * config alone; the shell compares it with what data.* will give before reading any data
     * (a mismatch is reported before, say, an image cache is built). */
    void (*data_shape)(const void *typed, int *c, int *h, int *w);
    /* Builds the instance; on failure returns non-OK with err set (destroy is still called). */
    ebmc_status (*setup)(void *state, const void *typed, const ebmc_recipe_env *env, char *err,
                         size_t errlen);
    /* One iteration on `batch` (host, env.batch examples of the data's shape, in [-1, 1]).
     * it: 1-based iteration number; epoch: the loader's epoch (LR schedules); grids: the grids
     * will be written after this iteration (keep what they show). Errors: the context's. */
    ebmc_status (*iteration)(void *state, const float *batch, int64_t it, int64_t epoch, bool grids);
    void (*report)(void *state, int64_t epoch, ebmc_report *r);
    /* Lists the checkpoint's items (called before every save and load: refresh host copies of
     * counters here). Returns the count. */
    int (*ckpt_items)(void *state, ebmc_ckpt_item *items, int max);
    /* After a load: apply loaded counters to chains etc. NULL: nothing to do. */
    ebmc_status (*loaded)(void *state, char *err, size_t errlen);
    int (*grids)(void *state, ebmc_grid *g, int max);
    /* A new noise stream after a divergence recovery (restarts: recoveries so far, >= 1). */
    void (*reseed)(void *state, uint32_t restarts);
    const char *const *sample_names; /* NULL-terminated: the arrays `sample` writes */
    /* desc: a one-line description of the settings used ("70 Langevin steps of size 0.4 ...") */
    ebmc_status (*sample)(void *state, const ebmc_sample_opts *o, float **outs, char *desc,
                          size_t desclen, char *err, size_t errlen);
    /* The shape (C,H,W) of one sample (2-D points: (2,1,1)). */
    void (*sample_shape)(void *state, int *c, int *h, int *w);
    int (*plan)(void *state, ebmc_plan_row *rows, int max);
    /* Optional: raw values of the last iteration that a reference implementation reproduces
     * (bench/run.py's gates); names comma-separated. */
    int (*probes)(void *state, const char **names, const float **values);
    void (*destroy)(void *state);
    /* Optional (addition; NULL: `ebmc score` refuses the recipe): the energy E(x) of n examples
     * x (host, (n, C,H,W) of the sample shape; images in [-1, 1]) into e (host, n), in batches the
     * recipe's tapes hold (the training batch; particles: the particle count), without changing
     * the model (no spectral-norm power
     * iteration, no running statistics). Errors: EBMC_E_* with err set. */
    ebmc_status (*energy)(void *state, const float *x, int n, float *e, char *err, size_t errlen);
} ebmc_recipe;

/* ---- the registry: the built-in recipes, and any a program adds (tests register fixtures) */
const ebmc_recipe *ebmc_recipe_find(const char *name); /* NULL when unknown */
/* run.precision of cfg, with auto resolved to the recipe's default (rc->precision) */
ebmc_precision ebmc_recipe_precision(const ebmc_recipe *rc, const ebmc_config_t *cfg);
/* Helpers for recipes. A test-time chain's settings: sample.steps, .step_size, .noise of a
 * recipe's config (read), and what `ebmc sample` runs: the command's values (>= 0) over them. */
typedef struct {
    int steps;
    double step, noise;
} ebmc_sample_cfg;
ebmc_sample_cfg ebmc_sample_cfg_read(const ebmc_config_t *cfg);
ebmc_sample_cfg ebmc_sample_cfg_apply(ebmc_sample_cfg c, const ebmc_sample_opts *o);
/* model.arch's defaults (ebmc_model_defaults) into mc, then each model.<key> of the NULL-ended
 * list `widths` (nz, ngf, ndf, nif, hidden) that is not 0; err names an unknown architecture */
ebmc_status ebmc_recipe_model_read(const ebmc_config_t *cfg, ebmc_model_cfg *mc,
                                   const char *const *widths, char *err, size_t errlen);
/* data_shape for a recipe whose typed config begins with its ebmc_model_cfg (ebmc/models.h):
 * (img_c, img_size, img_size) */
void ebmc_recipe_model_data_shape(const void *typed, int *c, int *h, int *w);
/* sample_shape for a recipe whose state begins with its typed config (so with its
 * ebmc_model_cfg): (img_c, img_size, img_size) */
void ebmc_recipe_model_sample_shape(void *state, int *c, int *h, int *w);
/* plan's row of one trained net: parameters, their gradients, Adam's two moments (opt), and its
 * tapes (NULL entries skipped; a tape sharing another's arena counts as a pass, not an arena) */
ebmc_plan_row ebmc_plan_net_row(const char *name, ebmc_net_t *net, const ebmc_adam_t *opt,
                                ebmc_tape_t *const *tapes, int nt);

/* Adds a recipe (its name must be new; at most 32 in all). false when full or taken. */
bool ebmc_recipe_register(const ebmc_recipe *r);
/* "dualmcmc|..." for messages */
const char *ebmc_recipe_names(char *buf, size_t n);

/* The full schema of a recipe (the shell's keys, then the recipe's), built once and kept for the
 * life of the process; and a config with every default of it applied. */
const ebmc_cfg_key *ebmc_recipe_schema(const ebmc_recipe *r, int *n);
ebmc_config_t *ebmc_recipe_config_create(const ebmc_recipe *r);

/* The recipe a config file (or a run directory's config.ini) and command-line overrides select:
 * run.recipe, else "dualmcmc". Unknown names: NULL, err names the file and the known recipes. */
const ebmc_recipe *ebmc_recipe_select(const char *config_path, int n_args, char *const *args,
                                      char *err, size_t errlen);

/* The recipe that config_path (NULL: none) and the overrides select, and its config: the file
 * loaded, the "section.key=value" overrides applied in order, required keys checked. On failure
 * *r and *out are NULL and err says why: EBMC_E_IO (the file cannot be read) or EBMC_E_INVALID
 * (an unknown recipe, key or value). */
ebmc_status ebmc_recipe_load_config(const char *config_path, int n_args, char *const *args,
                                    const ebmc_recipe **r, ebmc_config_t **out, char *err,
                                    size_t errlen);

/* ---- a run: one recipe instance with its context, data and loader ---- */
typedef struct ebmc_run ebmc_run_t;

/* Creates the context, opens the data (when need_data), parses the recipe's keys and sets it up.
 * cfg must have been created by ebmc_recipe_config_create for r (and outlive the run). On
 * failure returns non-OK, err set, *out NULL. */
ebmc_status ebmc_run_open(const ebmc_recipe *r, ebmc_config_t *cfg, bool need_data,
                          ebmc_run_t **out, char *err, size_t errlen);
void ebmc_run_free(ebmc_run_t *run); /* NULL is fine */
const ebmc_recipe *ebmc_run_recipe(const ebmc_run_t *run);
void *ebmc_run_state(ebmc_run_t *run);
ebmc_ctx_t *ebmc_run_ctx(ebmc_run_t *run);
const ebmc_config_t *ebmc_run_config(const ebmc_run_t *run);
int ebmc_run_batch_size(const ebmc_run_t *run);
int64_t ebmc_run_batches_per_epoch(const ebmc_run_t *run);
const char *ebmc_run_data_name(const ebmc_run_t *run);

/* The next data batch into the run's host buffer (ebmc_run_batch); *epoch: its epoch. */
ebmc_status ebmc_run_next_batch(ebmc_run_t *run, int64_t *epoch, char *err, size_t errlen);
const float *ebmc_run_batch(const ebmc_run_t *run);
/* One iteration on the current batch; then the report. */
ebmc_status ebmc_run_iteration(ebmc_run_t *run, int64_t it, int64_t epoch, bool grids);
const ebmc_report *ebmc_run_report(const ebmc_run_t *run);

/* Checkpoints: a folder holding one safetensors file per network and state.safetensors (the
 * recipe's other items, the iteration, the loader position and the guard's restart count),
 * written into <dir>.tmp and renamed into place, so it appears whole or not at all. */
ebmc_status ebmc_run_save(ebmc_run_t *run, const char *dir, int64_t it, char *err, size_t errlen);
/* Loads a checkpoint folder into the run (networks validated before anything is copied);
 * *it: its iteration. Restores the loader position when the run has data. */
ebmc_status ebmc_run_load(ebmc_run_t *run, const char *dir, int64_t *it, char *err,
                          size_t errlen);
uint32_t ebmc_run_restarts(const ebmc_run_t *run);
/* Sets the restart count and has the recipe draw the matching noise stream. */
void ebmc_run_set_restarts(ebmc_run_t *run, uint32_t restarts);

/* Writes the memory plan (human-readable to f when not NULL; JSON to json_path when not NULL). */
ebmc_status ebmc_run_print_plan(ebmc_run_t *run, FILE *f, const char *json_path, char *err,
                                size_t errlen);

/* The newest checkpoint folder of a run directory (<run>/checkpoints/iter_NNNNNNNN), its
 * iteration, or -1 when there is none. */
int64_t ebmc_latest_checkpoint(const char *run_dir, char *out, size_t outlen);

#ifdef __cplusplus
}
#endif
#endif
