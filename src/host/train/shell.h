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
    /* data-parallel ranks (ebmc/comm.h): batch is the global batch (the loader's, the same on
     * every rank); this rank trains on examples [rank * local_batch, (rank+1) * local_batch) */
    struct ebmc_comm *comm;   /* the world when training (NULL: ebmc sample, bench) */
    int rank, ranks, local_batch;
    size_t example_elems;     /* C*H*W of one example */
    /* the TensorBoard event file a checkpoint records (written into and read from its
     * state.safetensors metadata): its name in <run>/tb and its length when the checkpoint was
     * written (-1: none); a resume cuts the file back to that length */
    char tb_file[256];
    int64_t tb_bytes;
};

/* The report's metrics averaged over the ranks (images and chain-steps summed), so that every
 * rank logs and guards the same numbers; *flag (in: this rank's, e.g. a stop request) becomes
 * the ranks' sum. A no-op in one process. */
ebmc_status ebmc_run_reduce_report(ebmc_run_t *r, double *flag);
/* Rank r > 0 of a data-parallel run: its own state items (everything ebmc_run_save writes to
 * state.safetensors) into <dir>.tmp/state.rank<r>.safetensors, which rank 0 then renames into
 * place with the rest; ebmc_run_load on rank r reads them back from there. */
ebmc_status ebmc_run_save_rank(ebmc_run_t *r, const char *dir, int64_t iteration, char *err, size_t errlen);
/* That every rank holds rank 0's parameters (networks' trainable tensors, items marked shared):
 * collective, at each checkpoint; a difference is an error naming the item. No-op in one process. */
ebmc_status ebmc_run_check_ranks(ebmc_run_t *r, int64_t iteration, char *err, size_t errlen);
/* Rank 0 of the run's world (true without one): only it writes the run directory. */
bool ebmc_run_is_root(const ebmc_run_t *r);

/* The data set data.* (and run.seed) of cfg describe, read or generated. */
ebmc_status ebmc_run_open_data(const ebmc_config_t *cfg, ebmc_dataset_t **ds, char *err, size_t errlen);

/* <run>/samples/iter_<it>_<name>.png for each of the recipe's grids; the same PNGs as images
 * tagged samples/<name> into tb at step it (NULL: none) */
struct ebmc_tb;
ebmc_status ebmc_run_write_grids(ebmc_run_t *r, const char *run_dir, int64_t it, int nrow, int scale, struct ebmc_tb *tb,
                                 char *err, size_t errlen);

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
/* The data-parallel ranks a checkpoint folder was trained with ("ranks" in its metadata; 1 for
 * checkpoints written before there were ranks); -1 when its state cannot be read. */
int ebmc_ckpt_ranks(const char *ckpt_dir);
/* The precision the checkpoint in ckpt_dir was computed in ("fp32", "tf32_conv", "tf32") into
 * buf; false when it is unreadable or older than the record (nothing to compare). */
bool ebmc_ckpt_precision(const char *ckpt_dir, char *buf, size_t n);
/* Rewrites metrics.jsonl without the iteration records after `last` (a resumed or recovered
 * run repeats them); event lines are kept. A missing file is fine. */
ebmc_status ebmc_metrics_truncate(const char *path, int64_t last, char *err, size_t errlen);

#endif
