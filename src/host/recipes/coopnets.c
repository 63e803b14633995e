/* Cooperative learning via MCMC teaching (Xie, Lu, Gao, Wu & Zhu, "CoopNets", AAAI 2018 / TPAMI
 * 2018) as a recipe (run.recipe = coopnets), specs/teaching.md 3.1, following the authors' code
 * (jianwen-xie/CoopNets model/model.py train()):
 *   1. z ~ N(0, I) for `chains` chains; x0 = G(z) (BatchNorm in train mode)
 *   2. x~ = Langevin x <- x - (d^2/2)(x/sr^2 - grad f(x)) + d xi from x0 (15 steps, with noise)
 *   3. optional (gen_sample_steps, default 0): z <- z - (dg^2/2)(z + grad_z L) + dg xi toward x~,
 *      L = mean over the batch of |x~ - G(z)|^2 / (2 sigma_g^2) (so each chain's gradient is 1/N)
 *   4. E update: L_E = mean_N f(x~) - mean_B f(x)
 *   5. G update ("MCMC teaching", no data term): L_G = mean_N |x~ - G(z)|^2 / (2 sigma_g^2) with
 *      the same z (or step 3's), a fresh forward of G
 * The generator learns from the revised samples alone: it never sees a data image.
 * Test time (`ebmc sample`): z -> G -> Langevin, in batches of the training chain count. */
#include "recipes/coop.h"
#include "ebmc/nvtx.h"
#include <stdio.h>
#include <string.h>

#define U 1, 0 /* range unchecked */

/* Defaults: the authors' TF main.py flags (specs/teaching.md 3.1; the scene setting) */
static const ebmc_cfg_key CN_KEYS[] = {
    {"model", "arch", EBMC_CFG_CHOICE, "coopnets_cifar", "architecture of E and G", U,
     "coopnets_cifar|coopvaebm|mnist|toy2d"},
    {"model", "nz", EBMC_CFG_INT, "0", "latent size (0: the architecture's default)", 0, 65536, NULL},
    {"model", "ngf", EBMC_CFG_INT, "0", "generator width (0: default)", 0, 65536, NULL},
    {"model", "ndf", EBMC_CFG_INT, "0", "EBM width (0: default)", 0, 65536, NULL},
    {"model", "nif", EBMC_CFG_INT, "0", "unused (no encoder)", 0, 65536, NULL},
    {"model", "hidden", EBMC_CFG_INT, "0", "toy2d: MLP width (0: default)", 0, 65536, NULL},

    {"train", "chains", EBMC_CFG_INT, "144", "synthesised chains per iteration (nTileRow x nTileCol); global: data-parallel ranks split it", 1, 1 << 20, NULL},
    {"train", "lr_e", EBMC_CFG_FLOAT, "0.007", "Adam learning rate of E (d_lr)", 0, 1, NULL},
    {"train", "lr_g", EBMC_CFG_FLOAT, "1e-4", "Adam learning rate of G (g_lr)", 0, 1, NULL},
    {"train", "beta1_e", EBMC_CFG_FLOAT, "0.5", "Adam beta1 of E", 0, 0.999999, NULL},
    {"train", "beta1_g", EBMC_CFG_FLOAT, "0.5", "Adam beta1 of G", 0, 0.999999, NULL},
    {"train", "beta2", EBMC_CFG_FLOAT, "0.999", "Adam beta2 (TF's default)", 0, 0.999999, NULL},
    {"train", "lr_decay", EBMC_CFG_FLOAT, "1", "lr(epoch) = lr * lr_decay^(epoch / lr_decay_epochs) (the code: constant)", 0, 1, NULL},
    {"train", "lr_decay_epochs", EBMC_CFG_INT, "1", "epochs per factor lr_decay", 1, 1 << 30, NULL},
    {"train", "sigma_g", EBMC_CFG_FLOAT, "0.3", "G's loss |x~ - G(z)|^2 / (2 sigma_g^2) (gen_refsig)", 1e-9, 1e9, NULL},
    {"train", "gen_steps", EBMC_CFG_INT, "0", "latent Langevin steps toward x~ before G's update (gen_sample_steps)", 0, 100000, NULL},
    {"train", "gen_step_size", EBMC_CFG_FLOAT, "0.1", "their step size delta_g (gen_step_size)", 0, 100, NULL},

    {"langevin", "steps", EBMC_CFG_INT, "15", "Langevin steps per iteration (des_sample_steps)", 0, 100000, NULL},
    {"langevin", "step_size", EBMC_CFG_FLOAT, "0.002", "delta: x <- x - (delta^2/2)(x/sigma_ref^2 - grad f) + noise xi", 0, 100, NULL},
    {"langevin", "sigma_ref", EBMC_CFG_FLOAT, "0.016", "std of the Gaussian reference (des_refsig)", 1e-9, 1e9, NULL},
    {"langevin", "noise", EBMC_CFG_FLOAT, "0.002", "noise scale (the code: delta)", 0, 100, NULL},

    {"sample", "steps", EBMC_CFG_INT, "15", "test-time Langevin steps (the code samples as it trains)", 0, 100000, NULL},
    {"sample", "step_size", EBMC_CFG_FLOAT, "0.002", "test-time delta", 0, 100, NULL},
    {"sample", "noise", EBMC_CFG_FLOAT, "0.002", "test-time noise scale", 0, 100, NULL},
    {"sample", "bn", EBMC_CFG_CHOICE, "running", "G's BatchNorm at test time: running statistics (the port's test(): G.eval()) or each batch's, as in training", U, "running|batch"},
};

static ebmc_status cn_parse(const ebmc_config_t *cfg, void *typed, char *err, size_t errlen) {
    coop_cfg *c = typed;
    EBMC_TRY(coop_parse_common(cfg, c, err, errlen));
    c->vae = false;
    c->sigma_g = ebmc_config_float(cfg, "train", "sigma_g");
    c->gen_steps = (int)ebmc_config_int(cfg, "train", "gen_steps");
    c->gen_step = ebmc_config_float(cfg, "train", "gen_step_size");
    return EBMC_OK;
}

/* 3. z <- latent Langevin toward x~ (gen_steps > 0): the chain's state is the z used by G's update */
static ebmc_status revise_z(coop_t *t, const float **zu) {
    *zu = t->z;
    if (!t->cz) return EBMC_OK;
    size_t nimg = (size_t)t->N * t->img;
    float *zs = ebmc_chain_state(t->cz);
    EBMC_TRY(coop_copy(t->ctx, zs, t->z, (size_t)t->N * t->nz, 1.0f));
    EBMC_TRY(coop_copy(t->ctx, ebmc_potential_latent_target(t->pz), ebmc_chain_state(t->cx), nimg, 1.0f));
    EBMC_TRY(ebmc_chain_run(t->cz, t->N));
    *zu = zs;
    return EBMC_OK;
}

/* 5. L_G = mean_N |x~ - G(z)|^2 / (2 sigma_g^2): dL/dG(z) = (G(z) - x~) / (sigma_g^2 N) */
static ebmc_status update_G(coop_t *t, const float *zu, int64_t epoch) {
    ebmc_ctx_t *ctx = t->ctx;
    int N = t->N;
    size_t nimg = (size_t)N * t->img;
    float *M = t->metrics, *xs = ebmc_chain_state(t->cx);
    double sg = t->c.sigma_g;
    EBMC_TRY(ebmc_net_zero_grad(t->G));
    EBMC_TRY(ebmc_net_forward(t->G, t->tGu, N, zu));
    ebmc_scaled_diff_desc sd = {nimg, 1.0f, 0.0f};
    EBMC_TRY(ebmc_scaled_diff(ctx, &sd, ebmc_tape_output(t->tGu, 0), xs, t->dyG));
    EBMC_TRY(coop_sumto(ctx, t->dyG, nimg, EBMC_REDUCE_SUMSQ, M + C_RECON));
    EBMC_TRY(coop_copy(ctx, t->dyG, t->dyG, nimg, (float)(1.0 / (sg * sg * N))));
    const float *dyg[1] = {t->dyG};
    EBMC_TRY(ebmc_net_backward(t->G, t->tGu, dyg, EBMC_GRAD_FULL, NULL, 0.0f));
    return ebmc_adam_step(t->oG, epoch);
}

static ebmc_status cn_iteration(void *state, const float *batch, int64_t it, int64_t epoch, bool grids) {
    coop_t *t = state;
    const float *zu = NULL;
    EBMC_RANGE_PUSH("coopnets_iteration");
    EBMC_RANGE_PUSH("synthesise");
    ebmc_status s = coop_synthesise(t, batch, it);
    if (!s) s = revise_z(t, &zu);
    EBMC_RANGE_POP();
    if (!s) {
        EBMC_RANGE_PUSH("update_E");
        s = coop_update_E(t, epoch);
        EBMC_RANGE_POP();
    }
    if (!s) {
        EBMC_RANGE_PUSH("update_G");
        s = update_G(t, zu, epoch);
        EBMC_RANGE_POP();
    }
    if (!s) s = coop_fetch_metrics(t); /* one host synchronisation per iteration */
    EBMC_RANGE_POP();
    return s;
}

static void cn_report(void *state, int64_t epoch, ebmc_report *r) {
    coop_t *t = state;
    double sse = t->hmet[C_RECON] / t->N, sg = t->c.sigma_g;
    double e_rev = t->hmet[C_EREV] / t->N, e_data = t->hmet[C_EDATA] / t->B;
    coop_report_common(t, epoch, r);
    ebmc_report_add(r, "loss_g", sse / (2 * sg * sg), true);
    ebmc_report_add(r, "teach_err", sse, false);
    r->chain_steps = (double)t->N * (t->c.steps + t->c.gen_steps);
    snprintf(r->progress, sizeof r->progress, "E %.4g (gap %.3g) G %.5g", e_rev - e_data, e_data - e_rev,
             sse / (2 * sg * sg));
}

const ebmc_recipe ebmc_recipe_coopnets = {
    .name = "coopnets",
    .summary = "cooperative learning (Xie et al., AAAI/TPAMI 2018): EBM E, generator G taught by revised samples",
    .precision = EBMC_PREC_TF32_CONV, /* an image recipe: PyTorch's defaults */
    .keys = CN_KEYS,
    .n_keys = (int)(sizeof CN_KEYS / sizeof CN_KEYS[0]),
    .config_size = sizeof(coop_cfg),
    .state_size = sizeof(coop_t),
    .parse = cn_parse,
    .data_shape = ebmc_recipe_model_data_shape,
    .setup = coop_setup,
    .iteration = cn_iteration,
    .report = cn_report,
    .ckpt_items = coop_ckpt_items,
    .loaded = coop_loaded,
    .grids = coop_grids,
    .reseed = coop_reseed,
    .sample_names = COOP_SAMPLE_NAMES,
    .sample = coop_sample,
    .sample_shape = ebmc_recipe_model_sample_shape,
    .plan = coop_plan,
    .probes = coop_probes,
    .destroy = coop_destroy,
    .energy = coop_energy,
};
