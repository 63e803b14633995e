/* defines: jz_energy -- what the jarzynski recipe (jarzynski.c) trains: an energy with an input
 * gradient and a weighted parameter gradient, either the Gaussian mixture (include/ebmc/gmm.h,
 * in jarzynski.c) or an image EBM of src/host/nn/models.c (jarzynski_net.c). Private to the
 * recipe. */
#ifndef EBMC_TRAIN_JARZYNSKI_H
#define EBMC_TRAIN_JARZYNSKI_H

#include "ebmc/recipe.h"

typedef struct jz_energy jz_energy;
struct jz_energy {
    /* u (n), grad (n, elems) and aux (n, aux_elems; what accumulate needs) at the current theta */
    ebmc_status (*eval)(jz_energy *e, int n, const float *x, float *u, float *grad, float *aux);
    /* parameter gradient: g = beta g + scale sum_i w_i dU/dtheta(x_i) (w NULL: 1; beta 0 or 1) */
    ebmc_status (*accumulate)(jz_energy *e, int n, const float *x, const float *aux, const float *w, float scale,
                              float beta);
    /* theta <- the optimiser's step on g */
    ebmc_status (*descend)(jz_energy *e, int64_t epoch);
    /* x (n, elems): walkers from the model at the start (exact draws when the family has them) */
    ebmc_status (*init)(jz_energy *e, int n, float *x, uint64_t seed);
    /* exact log Z (NAN when unknown) */
    double (*log_z)(jz_energy *e);
    int (*ckpt_items)(jz_energy *e, ebmc_ckpt_item *it, int max);
    void (*destroy)(jz_energy *e);
    size_t elems;    /* per walker */
    int aux_elems;   /* per walker */
    bool is_image;   /* (C,H,W) images in [-1, 1]: grids */
    int c, h, w;
};

/* The image EBM of model.arch (jarzynski_net.c): max_n points per call (evaluated in chunks of
 * chunk), Adam with the given hyper-parameters. err set on failure. */
typedef struct {
    const char *arch;
    int width;             /* model.width: the EBM's channel width (0: default) */
    int max_n, chunk;
    double lr, beta1, beta2;
    uint64_t seed;
    int64_t lr_decay_epochs; /* ebmc_adam_set_schedule */
    double grad_clip;
    double l2; /* alpha of the energy regulariser alpha (mean_data U^2 + sum_i p_i U(X_i)^2) */
} jz_net_cfg;
ebmc_status jz_energy_net(ebmc_ctx_t *ctx, const jz_net_cfg *c, jz_energy **out, char *err, size_t errlen);

#endif
