/* Variational MCMC teaching (Xie, Zheng & Li, AAAI 2021, "CoopVAEBM") as a recipe
 * (run.recipe = coopvaebm), specs/teaching.md 2, following the authors' code (jianwen-xie/
 * CoopVAEBM b0a48c0, model/model.py train()) where it and the paper differ:
 *   1. z ~ N(0, I) for `chains` chains (900 = 30 x 30); x0 = G(z) (BatchNorm in train mode)
 *   2. x~ = 15 Langevin steps x <- x - (d^2/2)(x/sr^2 - grad f(x)) from x0: NO noise (the CIFAR
 *      code has its noise term commented out)
 *   3. E update (Step D2, before the VAE's): L_E = mean_N f(x~) - mean_B f(x), B = 250 data images
 *   4. VAE update on x~ only (Step G2): (mu, s) = I(x~), s the log-std (0.5 x the second dense
 *      head); z_enc = mu + eps e^s; L_VAE = mean_N [ |G(z_enc) - x~|^2 + w KL(q(z|x~) || N(0, I)) ]
 *      with KL = -0.5 sum (1 + 2s - mu^2 - e^{2s}); one Adam over I and G together (two Adam
 *      states with the same settings: Adam is element-wise, so this is the same update)
 * Test time (`ebmc sample`): z -> G -> 30 Langevin steps, in batches of the training chain count. */
#include "recipes/coop.h"
#include "ebmc/nvtx.h"
#include <stdio.h>
#include <string.h>

#define U 1, 0 /* range unchecked */

/* Defaults: the authors' CIFAR-10 main.py flags (specs/teaching.md 2(c)). */
static const ebmc_cfg_key CV_KEYS[] = {
    {"model", "arch", EBMC_CFG_CHOICE, "coopvaebm", "architecture of E, G and I (the encoder)", U,
     "coopvaebm|mnist|toy2d"},
    {"model", "nz", EBMC_CFG_INT, "0", "latent size (0: the architecture's default)", 0, 65536, NULL},
    {"model", "ngf", EBMC_CFG_INT, "0", "generator width (0: default)", 0, 65536, NULL},
    {"model", "ndf", EBMC_CFG_INT, "0", "EBM width (0: default)", 0, 65536, NULL},
    {"model", "nif", EBMC_CFG_INT, "0", "encoder width (0: default)", 0, 65536, NULL},
    {"model", "hidden", EBMC_CFG_INT, "0", "toy2d: MLP width (0: default)", 0, 65536, NULL},

    {"train", "chains", EBMC_CFG_INT, "900", "synthesised chains per iteration (nTileRow x nTileCol); global: data-parallel ranks split it", 1, 1 << 20, NULL},
    {"train", "lr_e", EBMC_CFG_FLOAT, "0.009", "Adam learning rate of E (d_lr)", 0, 1, NULL},
    {"train", "lr_g", EBMC_CFG_FLOAT, "2e-4", "Adam learning rate of the VAE, G and I (vae_lr)", 0, 1, NULL},
    {"train", "beta1_e", EBMC_CFG_FLOAT, "0.5", "Adam beta1 of E", 0, 0.999999, NULL},
    {"train", "beta1_g", EBMC_CFG_FLOAT, "0.5", "Adam beta1 of the VAE", 0, 0.999999, NULL},
    {"train", "beta2", EBMC_CFG_FLOAT, "0.999", "Adam beta2 (TF's default)", 0, 0.999999, NULL},
    {"train", "lr_decay", EBMC_CFG_FLOAT, "0.98", "lr(epoch) = lr * lr_decay^(epoch / lr_decay_epochs)", 0, 1, NULL},
    {"train", "lr_decay_epochs", EBMC_CFG_INT, "20", "epochs per factor lr_decay (continuous)", 1, 1 << 30, NULL},
    {"train", "kl_weight", EBMC_CFG_FLOAT, "2", "weight of the KL term in the VAE loss (weight_latent_loss)", 0, 1e6, NULL},

    {"langevin", "steps", EBMC_CFG_INT, "15", "Langevin steps per iteration (des_sample_steps)", 0, 100000, NULL},
    {"langevin", "step_size", EBMC_CFG_FLOAT, "0.002", "delta: x <- x - (delta^2/2)(x/sigma_ref^2 - grad f) + noise xi", 0, 100, NULL},
    {"langevin", "sigma_ref", EBMC_CFG_FLOAT, "0.016", "std of the Gaussian reference (des_refsig)", 1e-9, 1e9, NULL},
    {"langevin", "noise", EBMC_CFG_FLOAT, "0", "noise scale (the code: none; CoopNets: delta)", 0, 100, NULL},

    {"sample", "steps", EBMC_CFG_INT, "30", "test-time Langevin steps (sampling(sample_step=30))", 0, 100000, NULL},
    {"sample", "step_size", EBMC_CFG_FLOAT, "0.002", "test-time delta", 0, 100, NULL},
    {"sample", "noise", EBMC_CFG_FLOAT, "0", "test-time noise scale", 0, 100, NULL},
    {"sample", "bn", EBMC_CFG_CHOICE, "batch", "G's BatchNorm at test time: each batch's statistics, as in training (the authors' TF graph), or running statistics", U, "batch|running"},
};

static ebmc_status cv_parse(const ebmc_config_t *cfg, void *typed, char *err, size_t errlen) {
    coop_cfg *c = typed;
    EBMC_TRY(coop_parse_common(cfg, c, err, errlen));
    c->vae = true;
    c->kl_weight = ebmc_config_float(cfg, "train", "kl_weight");
    /* the authors' encoder scales its second head by 0.5 and uses it as the log-std; ebmc's own
     * mnist and toy2d encoders output a log-variance */
    c->enc_k = !strcmp(c->mc.arch, "coopvaebm") ? 1.0 : 0.5;
    return EBMC_OK;
}

/* 4. the VAE on x~ alone: dL/dG(z_enc) = 2 (G(z_enc) - x~)/N, then the KL and the
 * reparameterisation backward into (mu, s) with dz = dL/dz_enc from G's backward */
static ebmc_status update_vae(coop_t *t, int64_t it, int64_t epoch) {
    ebmc_ctx_t *ctx = t->ctx;
    int N = t->N;
    size_t nimg = (size_t)N * t->img;
    float *M = t->metrics, *xs = ebmc_chain_state(t->cx);
    EBMC_TRY(ebmc_net_zero_grad(t->G));
    EBMC_TRY(ebmc_net_zero_grad(t->I));
    EBMC_TRY(ebmc_net_forward(t->I, t->tI, N, xs));
    const float *mu = ebmc_tape_output(t->tI, 0), *s = ebmc_tape_output(t->tI, 1);
    ebmc_rng_key ke = {coop_noise_seed(t), COOP_STREAM_EPS, NULL, (uint32_t)it};
    EBMC_TRY(ebmc_init_normal(ctx, t->eps, N, (size_t)t->nz, 1.0f, ke));
    EBMC_TRY(ebmc_init_reparam(ctx, t->zenc, mu, s, N, (size_t)t->nz, (float)t->c.enc_k, ke)); /* same eps */
    EBMC_TRY(ebmc_net_forward(t->G, t->tGu, N, t->zenc));
    ebmc_scaled_diff_desc sd = {nimg, 1.0f, 0.0f};
    EBMC_TRY(ebmc_scaled_diff(ctx, &sd, ebmc_tape_output(t->tGu, 0), xs, t->dyG));
    EBMC_TRY(coop_sumto(ctx, t->dyG, nimg, EBMC_REDUCE_SUMSQ, M + C_RECON));
    EBMC_TRY(coop_copy(ctx, t->dyG, t->dyG, nimg, 2.0f / (float)N));
    const float *dyg[1] = {t->dyG};
    EBMC_TRY(ebmc_net_backward(t->G, t->tGu, dyg, EBMC_GRAD_FULL, t->dz, 0.0f));
    ebmc_gauss_kl_desc kd = {N, (size_t)t->nz, (float)t->c.enc_k, (float)(t->c.kl_weight / N), 1.0f, 0.0f};
    EBMC_TRY(ebmc_gauss_kl(ctx, &kd, mu, s, t->eps, t->dz, t->rowloss, t->dmu, t->ds));
    EBMC_TRY(coop_sumto(ctx, t->rowloss, (size_t)N, EBMC_REDUCE_SUM, M + C_KL));
    const float *dyi[2] = {t->dmu, t->ds};
    EBMC_TRY(ebmc_net_backward(t->I, t->tI, dyi, EBMC_GRAD_FULL, NULL, 0.0f));
    EBMC_TRY(ebmc_adam_step(t->oG, epoch));
    return ebmc_adam_step(t->oI, epoch);
}

static ebmc_status cv_iteration(void *state, const float *batch, int64_t it, int64_t epoch, bool grids) {
    coop_t *t = state;
    EBMC_RANGE_PUSH("coopvaebm_iteration");
    EBMC_RANGE_PUSH("synthesise");
    ebmc_status s = coop_synthesise(t, batch, it);
    EBMC_RANGE_POP();
    if (!s) {
        EBMC_RANGE_PUSH("update_E");
        s = coop_update_E(t, epoch);
        EBMC_RANGE_POP();
    }
    if (!s) {
        EBMC_RANGE_PUSH("update_VAE");
        s = update_vae(t, it, epoch);
        EBMC_RANGE_POP();
    }
    if (!s) s = coop_fetch_metrics(t); /* one host synchronisation per iteration */
    EBMC_RANGE_POP();
    return s;
}

static void cv_report(void *state, int64_t epoch, ebmc_report *r) {
    coop_t *t = state;
    double recon = t->hmet[C_RECON] / t->N, kl = t->hmet[C_KL] / t->N;
    double e_rev = t->hmet[C_EREV] / t->N, e_data = t->hmet[C_EDATA] / t->B;
    coop_report_common(t, epoch, r);
    ebmc_report_add(r, "loss_vae", recon + t->c.kl_weight * kl, true);
    ebmc_report_add(r, "recon_err", recon, false);
    ebmc_report_add(r, "kl", kl, false);
    r->chain_steps = (double)t->N * t->c.steps;
    snprintf(r->progress, sizeof r->progress, "E %.4g (gap %.3g) VAE %.5g (recon %.4g, KL %.4g)",
             e_rev - e_data, e_data - e_rev, recon + t->c.kl_weight * kl,
             recon, kl);
}

const ebmc_recipe ebmc_recipe_coopvaebm = {
    .name = "coopvaebm",
    .summary = "variational MCMC teaching (Xie, Zheng & Li, AAAI 2021): EBM E, VAE (G, I) as its amortised sampler",
    .precision = EBMC_PREC_TF32_CONV, /* an image recipe: PyTorch's defaults */
    .keys = CV_KEYS,
    .n_keys = (int)(sizeof CV_KEYS / sizeof CV_KEYS[0]),
    .config_size = sizeof(coop_cfg),
    .state_size = sizeof(coop_t),
    .parse = cv_parse,
    .data_shape = ebmc_recipe_model_data_shape,
    .setup = coop_setup,
    .iteration = cv_iteration,
    .report = cv_report,
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
