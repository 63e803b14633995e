/* defines: ebmc_train_main, ebmc_sample_main, ebmc_data_main (the `ebmc train`, `ebmc sample` and
 * `ebmc data` commands), and the exit statuses of a run. The recipes and the run shell: ebmc/recipe.h. */
#ifndef EBMC_TRAIN_H
#define EBMC_TRAIN_H

#include "ebmc/config.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    EBMC_EXIT_OK = 0,
    EBMC_EXIT_ERROR = 1,      /* a run-time failure (device, I/O during training) */
    EBMC_EXIT_USAGE = 2,      /* bad command line */
    EBMC_EXIT_CONFIG = 64,    /* bad configuration (unknown key, wrong type, range) */
    EBMC_EXIT_DATA = 65,      /* missing or malformed data, checkpoint or config file */
    EBMC_EXIT_DIVERGED = 4,   /* the divergence guard gave up after its recoveries */
    EBMC_EXIT_INTERRUPTED = 5 /* a second SIGINT/SIGTERM stopped the run part-way through an
                                 iteration; the last checkpoint is kept as it was */
};

/* ebmc train CONFIG [section.key=value ...] | ebmc train --resume RUN_DIR [section.key=value]
 * Returns the process exit status. */
int ebmc_train_main(int argc, char **argv);
/* ebmc sample CKPT_DIR [--n N] [--out DIR] [--steps K] [--step-size S] [--seed S] ... */
int ebmc_sample_main(int argc, char **argv);
/* ebmc data CONFIG [--n N] [--first I] --out FILE.npy [section.key=value ...]: examples of the
 * data set the config's data.* describe, as uint8 NHWC .npy (images) or float32 (N, 2) (points) */
int ebmc_data_main(int argc, char **argv);
/* ebmc loglik RUN_DIR [--points K] [--grid G] [--ais-chains C] ...: a particles run's
 * log-likelihood (grid or AIS) and MMD^2 (src/host/train/loglik.c) */
int ebmc_loglik_main(int argc, char **argv);
/* ebmc eval RUN_DIR [--n N] [--ref STATS] ... | --npy F --ref R | --stats DATA --out F.npz:
 * FID, IS and KID with the protocol as JSON (src/host/eval/eval_cmd.c) */
int ebmc_eval_main(int argc, char **argv);
/* ebmc score RUN_DIR INPUT [--out F.jsonl|F.npy]: the energy of each example (score_cmd.c) */
int ebmc_score_main(int argc, char **argv);
int ebmc_plot_main(int argc, char **argv); /* ebmc plot (src/host/cli/plot_cmd.c) */
/* ebmc import CONFIG WEIGHTS_DIR --out RUN_DIR: a run from network weights alone (import_cmd.c) */
int ebmc_import_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
