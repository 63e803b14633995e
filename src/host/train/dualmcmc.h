/* defines: dm_t, the Dual-MCMC trainer's state, and the pieces `ebmc train`, `ebmc sample` and
 * the tests share (private to src/host). */
#ifndef EBMC_TRAIN_INTERNAL_H
#define EBMC_TRAIN_INTERNAL_H

#include "ebmc/data.h"
#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/optim.h"
#include "ebmc/train.h"

/* dm_t.hmet (the per-iteration metrics, one device-to-host copy), sums over the batch:
 * M_RECON |G(z~) - x|^2, M_SAMPLE |G(z) - x~|^2, M_NLLQ NLL(z~ | I(x)), M_NLLL NLL(z | I(x~)),
 * M_ET E(x) of E's update, M_EF E(x~'), M_ETLOG the logging E(x) after G's update,
 * M_EGEN0/1 and M_EX0/1 the energies at the first/last gradient evaluation of the fine-tune
 * chain (NaN when fine_tune is off) and of the first x-chain. */
enum { M_RECON = 0, M_SAMPLE, M_NLLQ, M_NLLL, M_ET, M_EF, M_ETLOG, M_EGEN0, M_EGEN1, M_EX0,
       M_EX1, M_COUNT };

typedef struct {
    ebmc_config_t *cfg;
    ebmc_ctx_t *ctx;
    ebmc_dataset_t *ds;
    ebmc_loader_t *loader;
    ebmc_model_cfg mc;
    ebmc_net_t *E, *G, *I;
    ebmc_adam_t *oE, *oG, *oI;
    ebmc_potential *px, *pz;   /* E's energy; G's posterior */
    ebmc_chain_t *cx, *cz;     /* data-space and latent chains (own states) */
    ebmc_tape_t *tG;           /* G(z): x0, kept for L_G's second term; then G_new(z) */
    ebmc_tape_t *tGr;          /* G(z~) */
    ebmc_tape_t *tIr, *tIf;    /* I(x), I(x~) */
    ebmc_tape_t *tEr, *tEf;    /* E(x), E(x~') */
    int B, nz, kx, kz;
    size_t img;                /* values per image */
    double T;                  /* EBM loss temperature */
    uint64_t seed;
    uint32_t restarts;         /* divergence recoveries so far: mixed into the noise seed */
    float *x_real, *z, *gen;   /* (B, img), (B, nz), (B, img) */
    float *dyG, *dyG2;         /* (B, img) */
    float *dmu, *dlv;          /* (B, nz) */
    float *dyE, *rowloss;      /* (B) */
    float *metrics;            /* device scalars, one copy to the host per iteration */
    float hmet[64];
    float *host_x, *host_img;  /* (B, img) host */
} dm_t;

ebmc_status dm_model_cfg(const ebmc_config_t *cfg, ebmc_model_cfg *mc, char *err, size_t errlen);
ebmc_status dm_open_data(const ebmc_config_t *cfg, ebmc_dataset_t **ds, char *err, size_t errlen);
ebmc_status dm_setup(dm_t *t, ebmc_config_t *cfg, bool need_data, char *err, size_t errlen);
void dm_free(dm_t *t);
ebmc_status dm_iteration(dm_t *t, int64_t it, int64_t epoch, bool keep_gen);
ebmc_status dm_save(dm_t *t, const char *ckpt_dir, int64_t it, int64_t loader_epoch,
                    int64_t loader_pos, char *err, size_t errlen);
ebmc_status dm_load(dm_t *t, const char *ckpt_dir, int64_t *it, int64_t *loader_epoch,
                    int64_t *loader_pos, char *err, size_t errlen);
int64_t dm_latest_checkpoint(const char *run_dir, char *out, size_t outlen);
int dm_run(ebmc_config_t *cfg, const char *run_dir, bool resume, char *err, size_t errlen);

#endif
