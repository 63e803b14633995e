/* defines: sr_cfg (the short-run recipe's typed config) and sr_t (its state): private to the
 * recipe (src/host/recipes/shortrun.c) and its white-box tests (tests/test_shortrun.c,
 * tests/tools/sr_step_dump.c), which reach it through ebmc_run_state(). */
#ifndef EBMC_TRAIN_SHORTRUN_H
#define EBMC_TRAIN_SHORTRUN_H

#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/optim.h"
#include "ebmc/recipe.h"

/* sr_t.hmet, sums over the batch / chains: f of the noisy data batch, f of the chains' final
 * states, and f summed over the chains at their first and last gradient evaluation */
enum { SR_FDATA = 0, SR_FQ, SR_U0, SR_U1, SR_COUNT };

/* Philox streams: the chains' noise, the uniform start, the data noise, `ebmc sample`'s start */
enum { SR_STREAM_X = 1, SR_STREAM_INIT = 2, SR_STREAM_DATA = 6, SR_STREAM_SAMPLE = 9 };

typedef struct {
    ebmc_model_cfg mc;
    ebmc_adam_cfg adam;
    double data_noise;           /* train.data_noise: sigma of the Gaussian added to data */
    int chains;                  /* train.chains (0: the batch size) */
    int steps;                   /* langevin.steps */
    double step, noise;          /* langevin.step_size (drift on grad f), .noise */
    double init_lo, init_hi;     /* langevin.init_lo/hi: the uniform start */
    ebmc_sample_cfg sample;      /* sample.* (ebmc sample) */
} sr_cfg;

typedef struct {
    sr_cfg c;
    ebmc_ctx_t *ctx;
    ebmc_net_t *E;             /* the score f (= -E) */
    ebmc_adam_t *opt;
    ebmc_potential *pot;       /* U = -sum f */
    ebmc_chain_t *chain;
    ebmc_tape_t *tD, *tQ;      /* f(x_data), f(x_q) (share the chain's tape when asked) */
    int B, M;                  /* data batch, chains */
    size_t img;
    uint64_t seed;
    uint32_t restarts;
    int64_t steps_x;           /* checkpoint copy of the chain's step counter */
    float *x_data;             /* (B, img): the batch plus data noise */
    float *dy;                 /* (max(B, M)) */
    float *metrics;            /* device scalars */
    float hmet[SR_COUNT];
} sr_t;

extern const ebmc_recipe ebmc_recipe_shortrun;

#endif
