/* defines: pc_cfg (the persistent / replay-buffer recipe's typed config) and pc_t (its state):
 * private to the recipe (src/host/recipes/persistent.c) and its white-box tests
 * (tests/test_persistent.c, tests/tools/pc_step_dump.c). */
#ifndef EBMC_TRAIN_PERSISTENT_H
#define EBMC_TRAIN_PERSISTENT_H

#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/optim.h"
#include "ebmc/recipe.h"

/* pc_t.hmet: sums over the batch of E(x+), E(x+)^2, E(x-), E(x-)^2; the chain's energy sum at
 * its first and last gradient evaluation; the buffer's fill count */
enum { PC_EPOS = 0, PC_EPOS2, PC_ENEG, PC_ENEG2, PC_E0, PC_E1, PC_COUNT };

/* Philox streams: the chains' noise, the buffer draw (reuse mask, entry, fresh noise,
 * dequantisation), the data's dequantisation noise, `ebmc sample`'s start and buffer draw, the
 * chains' dropout masks (step: the chain's counter + k) and those of E(x+), E(x-) (step 2 it,
 * 2 it + 1) */
enum { PC_STREAM_X = 1, PC_STREAM_REPLAY = 2, PC_STREAM_DATA = 6, PC_STREAM_SAMPLE = 9, PC_STREAM_SBUF = 10,
       PC_STREAM_DROP_X = 11, PC_STREAM_DROP = 12 };

typedef struct {
    ebmc_model_cfg mc;
    ebmc_adam_cfg adam;
    bool clip_adam;              /* train.optimizer = adam_clip (the code's custom_adam.py) */
    double clip_std, clip_floor; /* its bound: train.clip_std sqrt(v_hat) + train.clip_floor */
    double l2;                   /* train.l2_coeff */
    bool dequant;                /* train.dequantize: images to [0,1] as the code (else as is) */
    int buf_size;                /* buffer.size */
    double p_reinit;             /* buffer.reinit */
    bool u8;                     /* buffer.uint8 */
    int levels;                  /* buffer.levels */
    int steps;                   /* langevin.* */
    double step, clip, noise, lo, hi;
    ebmc_sample_cfg sample;      /* sample.* */
} pc_cfg;

typedef struct {
    pc_cfg c;
    ebmc_ctx_t *ctx;
    ebmc_net_t *E;
    ebmc_adam_t *opt;
    ebmc_potential *pot;       /* U = sum E */
    ebmc_chain_t *chain;
    ebmc_replay_t *buf;
    ebmc_tape_t *tP, *tN;      /* E(x+) (its own arena: alive across the chain), E(x-) */
    int B;
    size_t img;
    bool images;               /* image data: the recipe works in [0,1], grids in [-1,1] */
    uint64_t seed;
    uint32_t restarts;
    int64_t steps_x, buf_count, buf_head; /* checkpoint copies */
    float *x_pos;              /* (B, img) the dequantised batch */
    float *dy, *grid;          /* (B); (B, img) grids in [-1,1] */
    float *metrics;
    float hmet[PC_COUNT];
} pc_t;

extern const ebmc_recipe ebmc_recipe_persistent;

#endif
