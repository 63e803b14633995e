/* defines: struct ebmc_run (private to the run shell: src/host/train/{run,ckpt,shell,sample}.c)
 * and the shell's helpers for checkpoints folders and grids. Recipes never include this. */
#ifndef EBMC_TRAIN_SHELL_H
#define EBMC_TRAIN_SHELL_H

#include "ebmc/data.h"
#include "ebmc/recipe.h"
#include "ebmc/train.h"
#include <errno.h>
#include <inttypes.h>

struct ebmc_run {
    const ebmc_recipe *recipe;
    ebmc_config_t *cfg;
    void *typed;              /* the recipe's typed config */
    void *state;              /* the recipe's state */
    bool set_up;              /* setup() was called: destroy() must be */
    ebmc_ctx_t *ctx;
    ebmc_dataset_t *ds;       /* NULL without data (ebmc sample) */
    ebmc_loader_t *loader;
    uint64_t seed;
    int batch;
    uint32_t restarts;        /* divergence recoveries so far (checkpointed) */
    float *host_batch;        /* (batch, C, H, W) the current data batch */
    float *host_grid;         /* the largest grid, for PNG writing */
    ebmc_report report;       /* of the last iteration */
};

/* The data set data.* (and run.seed) of cfg describe, read or generated. */
ebmc_status ebmc_run_open_data(const ebmc_config_t *cfg, ebmc_dataset_t **ds, char *err, size_t errlen);

/* <run>/samples/iter_<it>_<name>.png for each of the recipe's grids */
ebmc_status ebmc_run_write_grids(ebmc_run_t *r, const char *run_dir, int64_t it, int nrow, char *err,
                                 size_t errlen);

/* Checkpoint folders of a run directory: removes what a killed process left half-made or
 * half-deleted (iter_N.tmp, iter_N.del); keeps the newest `keep` iter_N folders, each removed
 * by renaming it away first, so it disappears whole. */
void ebmc_ckpt_clean(const char *run_dir);
void ebmc_ckpt_prune(const char *run_dir, int keep);
/* Loads the newest checkpoint of run_dir that loads whole, trying older ones when a newer one is
 * unusable (each skipped one is reported on stderr with the reason). *it: its iteration;
 * path (n bytes): its folder. EBMC_E_IO when none loads (err: the newest one's problem). */
ebmc_status ebmc_ckpt_load_newest(ebmc_run_t *r, const char *run_dir, int64_t *it, char *path, size_t n,
                                  char *err, size_t errlen);
/* Rewrites metrics.jsonl without the iteration records after `last` (a resumed or recovered
 * run repeats them); event lines are kept. A missing file is fine. */
ebmc_status ebmc_metrics_truncate(const char *path, int64_t last, char *err, size_t errlen);

#endif
