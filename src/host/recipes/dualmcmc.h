/* defines: dm_cfg (the Dual-MCMC recipe's typed config) and dm_t (its state): private to the
 * recipe (src/host/recipes/dualmcmc.c) and to its white-box tests (tests/test_train.c,
 * tests/tools/dm_step_dump.c), which reach it through ebmc_run_state(). Nothing else includes
 * this header: the run shell, `ebmc sample` and `ebmc bench` use the recipe table. */
#ifndef EBMC_TRAIN_DUALMCMC_H
#define EBMC_TRAIN_DUALMCMC_H

#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/optim.h"
#include "ebmc/recipe.h"

/* dm_t.hmet (the per-iteration metrics, one device-to-host copy), sums over the batch:
 * M_RECON |G(z~) - x|^2, M_SAMPLE |G(z) - x~|^2, M_NLLQ NLL(z~ | I(x)), M_NLLL NLL(z | I(x~)),
 * M_ET E(x) of E's update, M_EF E(x~'), M_ETLOG the logging E(x) after G's update,
 * M_EGEN0/1 and M_EX0/1 the energies at the first/last gradient evaluation of the fine-tune
 * chain (NaN when fine_tune is off) and of the first x-chain. */
enum { M_RECON = 0, M_SAMPLE, M_NLLQ, M_NLLL, M_ET, M_EF, M_ETLOG, M_EGEN0, M_EGEN1, M_EX0,
       M_EX1, M_COUNT };

typedef struct {
    ebmc_model_cfg mc;
    ebmc_adam_cfg adam[3];       /* E, G, I */
    double g_factor, lambda_s, lambda_i;
    bool use_temp, fine_tune;
    int kx, kz;                  /* langevin_x.steps, langevin_z.steps */
    double x_step, x_noise;      /* langevin_x.step_size, .noise */
    double z_step, z_noise, z_sigma, z_prior;
    ebmc_sample_cfg sample;      /* sample.steps, .step_size, .noise (ebmc sample) */
} dm_cfg;

typedef struct {
    dm_cfg c;
    ebmc_ctx_t *ctx;
    ebmc_net_t *E, *G, *I;
    ebmc_adam_t *oE, *oG, *oI;
    ebmc_potential *px, *pz;   /* E's energy; G's posterior */
    ebmc_chain_t *cx, *cz;     /* data-space and latent chains (own states) */
    ebmc_tape_t *tG;           /* G(z): x0, kept for L_G's second term; then G_new(z) */
    ebmc_tape_t *tGr;          /* G(z~) (shares the latent chain's G tape) */
    ebmc_tape_t *tIr, *tIf;    /* I(x), I(x~) (one arena) */
    ebmc_tape_t *tEr, *tEf;    /* E(x), E(x~') (share the x-chain's E tape) */
    int B, nz, kx, kz;
    size_t img;                /* values per image */
    double T;                  /* EBM loss temperature */
    uint64_t seed;
    uint32_t restarts;         /* divergence recoveries so far: mixed into the noise seed */
    int64_t steps_x, steps_z;  /* checkpoint copies of the chains' step counters */
    float *x_real, *z, *gen;   /* (B, img), (B, nz), (B, img) */
    float *dyG, *dyG2;         /* (B, img) */
    float *dmu, *dlv;          /* (B, nz) */
    float *dyE, *rowloss;      /* (B) */
    float *metrics;            /* device scalars, one copy to the host per iteration */
    float hmet[64];
} dm_t;

extern const ebmc_recipe ebmc_recipe_dualmcmc;

#endif
