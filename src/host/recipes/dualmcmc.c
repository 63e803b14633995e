/* Dual-MCMC teaching (Cui & Han 2023) as a recipe (run.recipe = dualmcmc), specs/teaching.md
 * section 1, following the authors' code where it and the paper differ (the config comments say
 * where):
 *   1. z ~ N(0, I); x0 = G(z), its graph kept
 *   2. x~ = LangevinX(x0; E)                      (k_x steps)
 *   3. (mu, logvar) = I(x); z0 = mu + exp(logvar/2) eps; z~ = LangevinZ(z0; G, x)   (k_z steps)
 *   4. G update: L_G = g_factor |G(z~) - x|^2/B + lambda_s |G(z) - x~|^2/B
 *      (then one logging forward E(x), as the code's `et`, which also advances SN's u)
 *   5. I update: L_I = g_factor mean NLL(z~ | I(x)) + lambda_i mean NLL(z | I(x~))
 *   7a. E(x) for E's update (before 6, as the code orders it: each E forward advances SN's u)
 *   6. x0' = G_new(z); x~' = LangevinX(x0'; E)  (fine_tune)
 *   7. E update: L_E = (mean E(x) - mean E(x~')) / T,  T = (tau/s)^2 (use_temp)
 * Randomness: Philox streams keyed by (seed, stream, chain, step, element); z and eps by the
 * iteration, the chains by their own device step counters. Everything a run needs to continue
 * exactly is in its checkpoint items. */
#include "recipes/dualmcmc.h"
#include "ebmc/nvtx.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_X = 1, STREAM_Z = 3, STREAM_PRIOR = 4, STREAM_EPS = 5, STREAM_SAMPLE = 9 };

#define U 1, 0 /* range unchecked */

/* The recipe's keys. Defaults are the paper's CIFAR-10 values (specs/teaching.md 1(f));
 * configs/ override per data set. */
static const ebmc_cfg_key DM_KEYS[] = {
    {"model", "arch", EBMC_CFG_CHOICE, "dualmcmc_cifar10", "architecture of E, G and I", U,
     "dualmcmc_cifar10|dualmcmc_celeba64|mnist|toy2d"},
    {"model", "nz", EBMC_CFG_INT, "0", "latent size (0: the architecture's default)", 0, 65536, NULL},
    {"model", "ngf", EBMC_CFG_INT, "0", "generator width (0: default)", 0, 65536, NULL},
    {"model", "ndf", EBMC_CFG_INT, "0", "EBM width (0: default)", 0, 65536, NULL},
    {"model", "nif", EBMC_CFG_INT, "0", "inference-model width (0: default)", 0, 65536, NULL},
    {"model", "hidden", EBMC_CFG_INT, "0", "toy2d: MLP width (0: default)", 0, 65536, NULL},

    {"train", "lr_e", EBMC_CFG_FLOAT, "1e-4", "Adam learning rate of E", 0, 1, NULL},
    {"train", "lr_g", EBMC_CFG_FLOAT, "3e-4", "Adam learning rate of G", 0, 1, NULL},
    {"train", "lr_i", EBMC_CFG_FLOAT, "1e-4", "Adam learning rate of I", 0, 1, NULL},
    {"train", "beta1_e", EBMC_CFG_FLOAT, "0", "Adam beta1 of E", 0, 0.999999, NULL},
    {"train", "beta1_g", EBMC_CFG_FLOAT, "0", "Adam beta1 of G", 0, 0.999999, NULL},
    {"train", "beta1_i", EBMC_CFG_FLOAT, "0", "Adam beta1 of I", 0, 0.999999, NULL},
    {"train", "beta2", EBMC_CFG_FLOAT, "0.9", "Adam beta2 of all three", 0, 0.999999, NULL},
    {"train", "wd_e", EBMC_CFG_FLOAT, "0", "Adam L2 weight decay of E", 0, 1, NULL},
    {"train", "wd_g", EBMC_CFG_FLOAT, "5e-4", "Adam L2 weight decay of G", 0, 1, NULL},
    {"train", "wd_i", EBMC_CFG_FLOAT, "5e-4", "Adam L2 weight decay of I", 0, 1, NULL},
    {"train", "gamma_e", EBMC_CFG_FLOAT, "0.998", "ExponentialLR factor per epoch of E", 0, 1, NULL},
    {"train", "gamma_g", EBMC_CFG_FLOAT, "0.998", "ExponentialLR factor per epoch of G", 0, 1, NULL},
    {"train", "gamma_i", EBMC_CFG_FLOAT, "0.998", "ExponentialLR factor per epoch of I", 0, 1, NULL},
    {"train", "lambda_s", EBMC_CFG_FLOAT, "50", "weight of |G(z) - x~|^2 in G's loss (Sfactor; CelebA: 70)", 0, 1e6, NULL},
    {"train", "lambda_i", EBMC_CFG_FLOAT, "0.1", "weight of the NLL of z given x~ in I's loss (Ifactor)", 0, 1e6, NULL},
    {"train", "g_factor", EBMC_CFG_FLOAT, "1", "weight of the data terms of G's and I's losses (Gfactor)", 0, 1e6, NULL},
    {"train", "use_temp", EBMC_CFG_BOOL, "true", "divide E's loss by T = (noise/step_size)^2 of langevin_x", U, NULL},
    {"train", "fine_tune", EBMC_CFG_BOOL, "true", "revise samples of the updated G for E's update (the code's fine_tune)", U, NULL},

    {"langevin_x", "steps", EBMC_CFG_INT, "30", "data-space Langevin steps per chain", 1, 100000, NULL},
    {"langevin_x", "step_size", EBMC_CFG_FLOAT, "0.5", "s: x <- x - (s^2/2) grad E + noise xi (CelebA: 0.3)", 0, 100, NULL},
    {"langevin_x", "noise", EBMC_CFG_FLOAT, "0.001", "tau, the noise scale", 0, 100, NULL},

    {"langevin_z", "steps", EBMC_CFG_INT, "10", "latent Langevin steps", 1, 100000, NULL},
    {"langevin_z", "step_size", EBMC_CFG_FLOAT, "0.1", "s_z: z <- z - (s_z^2/2)(grad |x - G(z)|^2/sigma^2 + z/sp^2) + noise xi", 0, 100, NULL},
    {"langevin_z", "noise", EBMC_CFG_FLOAT, "0.1", "noise scale of the latent chain (the code's n_step_size)", 0, 100, NULL},
    {"langevin_z", "sigma", EBMC_CFG_FLOAT, "0.3", "sigma of the generator's likelihood", 1e-6, 1e6, NULL},
    {"langevin_z", "prior_sigma", EBMC_CFG_FLOAT, "1", "prior std of z", 1e-6, 1e6, NULL},

    {"sample", "steps", EBMC_CFG_INT, "70", "test-time Langevin steps (the paper's FID runs: 70)", 0, 100000, NULL},
    {"sample", "step_size", EBMC_CFG_FLOAT, "0.4", "test-time step size s", 0, 100, NULL},
    {"sample", "noise", EBMC_CFG_FLOAT, "0.001", "test-time noise tau", 0, 100, NULL},
};

/* ------------------------------------------------------------------ config and set-up */

static ebmc_status dm_parse(const ebmc_config_t *cfg, void *typed, char *err, size_t errlen) {
    dm_cfg *c = typed;
    static const char *const widths[] = {"nz", "ngf", "ndf", "nif", "hidden", NULL};
    ebmc_status st = ebmc_recipe_model_read(cfg, &c->mc, widths, err, errlen);
    if (st) return st;
    double b2 = ebmc_config_float(cfg, "train", "beta2");
    const char *r = "egi";
    for (int i = 0; i < 3; i++) {
        char k[5][16];
        const char *base[5] = {"lr", "beta1", "wd", "gamma"};
        for (int j = 0; j < 4; j++) snprintf(k[j], sizeof k[j], "%s_%c", base[j], r[i]);
        c->adam[i] = (ebmc_adam_cfg){ebmc_config_float(cfg, "train", k[0]), ebmc_config_float(cfg, "train", k[1]), b2,
                                     1e-8, ebmc_config_float(cfg, "train", k[2]), ebmc_config_float(cfg, "train", k[3])};
    }
    c->g_factor = ebmc_config_float(cfg, "train", "g_factor");
    c->lambda_s = ebmc_config_float(cfg, "train", "lambda_s");
    c->lambda_i = ebmc_config_float(cfg, "train", "lambda_i");
    c->use_temp = ebmc_config_bool(cfg, "train", "use_temp");
    c->fine_tune = ebmc_config_bool(cfg, "train", "fine_tune");
    c->kx = (int)ebmc_config_int(cfg, "langevin_x", "steps");
    c->x_step = ebmc_config_float(cfg, "langevin_x", "step_size");
    c->x_noise = ebmc_config_float(cfg, "langevin_x", "noise");
    c->kz = (int)ebmc_config_int(cfg, "langevin_z", "steps");
    c->z_step = ebmc_config_float(cfg, "langevin_z", "step_size");
    c->z_noise = ebmc_config_float(cfg, "langevin_z", "noise");
    c->z_sigma = ebmc_config_float(cfg, "langevin_z", "sigma");
    c->z_prior = ebmc_config_float(cfg, "langevin_z", "prior_sigma");
    c->sample = ebmc_sample_cfg_read(cfg);
    return EBMC_OK;
}

static void dm_destroy(void *state) {
    dm_t *t = state;
    ebmc_chain_free(t->cx);
    ebmc_chain_free(t->cz);
    ebmc_potential_free(t->px);
    ebmc_potential_free(t->pz);
    ebmc_tape_t *tapes[] = {t->tG, t->tGr, t->tIr, t->tIf, t->tEr, t->tEf};
    for (int i = 0; i < 6; i++) ebmc_tape_free(tapes[i]);
    ebmc_adam_free(t->oE);
    ebmc_adam_free(t->oG);
    ebmc_adam_free(t->oI);
    float *bufs[] = {t->x_real, t->z, t->gen, t->dyG, t->dyG2, t->dmu, t->dlv, t->dyE, t->metrics, t->rowloss};
    for (int i = 0; i < 10; i++)
        if (bufs[i]) ebmc_free(t->ctx, bufs[i]);
    ebmc_net_free(t->E);
    ebmc_net_free(t->G);
    ebmc_net_free(t->I);
    memset(t, 0, sizeof *t);
}

static ebmc_langevin_params x_params(const dm_cfg *c) {
    return ebmc_langevin_dualmcmc_x((float)c->x_step, (float)c->x_noise, c->kx);
}

static ebmc_status build_nets(dm_t *t, const ebmc_recipe_env *env, char *err, size_t errlen) {
    ebmc_net_t **nets[3] = {&t->E, &t->G, &t->I};
    for (int r = 0; r < 3; r++) {
        *nets[r] = ebmc_model_build(&t->c.mc, (ebmc_net_role)r, err, errlen);
        if (!*nets[r]) return EBMC_E_INVALID;
        ebmc_status s = ebmc_net_finalize(*nets[r], t->ctx, true, t->seed + 101 * (uint64_t)(r + 1));
        if (s) {
            snprintf(err, errlen, "%s", ebmc_net_error(*nets[r]));
            return s;
        }
    }
    return EBMC_OK;
}

/* Optimisers, tapes (activations of every pass of the iteration, planned once), chains and
 * buffers. Tapes never live at the same time share one arena: E's three passes (the x-chain's,
 * E(x), E(x~')) run one after another; G(z~) follows the latent chain; I(x~) follows I(x)'s
 * backward. G(z) is not shared: its output x0 stays in use until G's update. */
static ebmc_status tape_on(ebmc_net_t *net, int B, ebmc_tape_t *base, ebmc_tape_t **out) {
    if (!base) return ebmc_tape_create(net, B, true, out);
    return ebmc_tape_create_shared(net, B, true, base, out);
}

static ebmc_status build_passes(dm_t *t, bool share, char *err, size_t errlen) {
    const dm_cfg *c = &t->c;
    ebmc_ctx_t *ctx = t->ctx;
    int B = t->B;
    ebmc_status s;
#define CK(call)                                                                                \
    do {                                                                                        \
        s = (call);                                                                             \
        if (s) {                                                                                \
            snprintf(err, errlen, "set-up: %s", ebmc_ctx_error(ctx));                           \
            return s;                                                                           \
        }                                                                                       \
    } while (0)
    CK(ebmc_adam_create(t->E, &c->adam[0], &t->oE));
    CK(ebmc_adam_create(t->G, &c->adam[1], &t->oG));
    CK(ebmc_adam_create(t->I, &c->adam[2], &t->oI));
    CK(ebmc_potential_energy(t->E, B, 1.0f, &t->px));
    CK(ebmc_potential_energy_trace(t->px, t->kx));
    float sigma = (float)c->z_sigma;
    CK(ebmc_potential_latent(t->G, B, 2.0f / (sigma * sigma), &t->pz));
    CK(ebmc_tape_create(t->G, B, true, &t->tG));
    CK(tape_on(t->G, B, share ? ebmc_potential_tape(t->pz) : NULL, &t->tGr));
    CK(ebmc_tape_create(t->I, B, true, &t->tIr));
    CK(tape_on(t->I, B, share ? t->tIr : NULL, &t->tIf));
    CK(tape_on(t->E, B, share ? ebmc_potential_tape(t->px) : NULL, &t->tEr));
    CK(tape_on(t->E, B, share ? ebmc_potential_tape(t->px) : NULL, &t->tEf));
    ebmc_langevin_params px = x_params(c);
    ebmc_langevin_params pz = ebmc_langevin_dualmcmc_z((float)c->z_step, (float)c->z_prior, t->kz);
    pz.c = (float)c->z_noise;
    if (pz.c == 0) pz.noise = EBMC_NOISE_OFF;
    CK(ebmc_chain_create(t->px, &px, B, t->seed, STREAM_X, &t->cx));
    CK(ebmc_chain_create(t->pz, &pz, B, t->seed, STREAM_Z, &t->cz));
    size_t nimg = (size_t)B * t->img, nzb = (size_t)B * t->nz;
    float **bufs[] = {&t->x_real, &t->gen, &t->dyG, &t->dyG2};
    for (int i = 0; i < 4; i++) CK(ebmc_alloc(ctx, (void **)bufs[i], nimg * sizeof(float)));
    float **zb[] = {&t->z, &t->dmu, &t->dlv};
    for (int i = 0; i < 3; i++) CK(ebmc_alloc(ctx, (void **)zb[i], nzb * sizeof(float)));
    CK(ebmc_alloc(ctx, (void **)&t->dyE, (size_t)B * sizeof(float)));
    CK(ebmc_alloc(ctx, (void **)&t->rowloss, (size_t)B * sizeof(float)));
    CK(ebmc_alloc(ctx, (void **)&t->metrics, 64 * sizeof(float)));
#undef CK
    return EBMC_OK;
}

static ebmc_status dm_setup(void *state, const void *typed, const ebmc_recipe_env *env, char *err,
                            size_t errlen) {
    dm_t *t = state;
    t->c = *(const dm_cfg *)typed;
    t->ctx = env->ctx;
    t->seed = env->seed;
    t->B = env->batch;
    const ebmc_model_cfg *mc = &t->c.mc;
    if (env->has_data && (env->data_c != mc->img_c || env->data_h != mc->img_size || env->data_w != mc->img_size)) {
        snprintf(err, errlen, "data %s gives %dx%dx%d examples but model.arch %s needs %dx%dx%d "
                 "(HINT: data.size, data.mnist_pad or another model.arch)", env->data_name, env->data_c,
                 env->data_h, env->data_w, mc->arch, mc->img_c, mc->img_size, mc->img_size);
        return EBMC_E_INVALID;
    }
    EBMC_TRY(build_nets(t, env, err, errlen));
    t->nz = mc->nz;
    t->img = (size_t)mc->img_c * mc->img_size * mc->img_size;
    t->kx = t->c.kx;
    t->kz = t->c.kz;
    double tau = t->c.x_noise, sx = t->c.x_step;
    t->T = t->c.use_temp && tau > 0 ? (tau / sx) * (tau / sx) : 1.0;
    EBMC_TRY(build_passes(t, env->share_tapes, err, errlen));
    ebmc_chain_set_graph(t->cx, env->graphs);
    ebmc_chain_set_graph(t->cz, env->graphs);
    return EBMC_OK;
}

/* ------------------------------------------------------------------ one iteration */

static ebmc_status sumto(ebmc_ctx_t *ctx, const float *x, size_t n, ebmc_reduce_mode m, float *out) {
    ebmc_reduce_desc r = {1, n, m, 0.0f};
    return ebmc_reduce(ctx, &r, x, out);
}

static ebmc_status copy_f(ebmc_ctx_t *ctx, float *dst, const float *src, size_t n, float a) {
    ebmc_axpby_desc d = {n, a, 0.0f};
    return ebmc_axpby(ctx, &d, src, dst);
}

static ebmc_status fill_f(ebmc_ctx_t *ctx, float *dst, size_t n, float v) {
    ebmc_fill_desc f = {n, v};
    return ebmc_fill(ctx, &f, dst);
}

static uint64_t noise_seed(const dm_t *t) { return t->seed ^ ((uint64_t)t->restarts * 0x9E3779B97F4A7C15ull); }

/* 1-3: x~ = LangevinX(G(z)); z~ = LangevinZ(reparameterised I(x); G, x) */
static ebmc_status phase_sample(dm_t *t, const float *batch, int64_t it) {
    ebmc_ctx_t *ctx = t->ctx;
    int B = t->B;
    size_t nimg = (size_t)B * t->img;
    float *M = t->metrics, *xs = ebmc_chain_state(t->cx), *zs = ebmc_chain_state(t->cz);
    EBMC_TRY(ebmc_copy(ctx, t->x_real, batch, nimg * sizeof(float), EBMC_COPY_H2D));
    ebmc_rng_key kz = {noise_seed(t), STREAM_PRIOR, NULL, (uint32_t)it};
    EBMC_TRY(ebmc_init_normal(ctx, t->z, B, (size_t)t->nz, 1.0f, kz));
    EBMC_TRY(ebmc_net_forward(t->G, t->tG, B, t->z));
    EBMC_TRY(copy_f(ctx, xs, ebmc_tape_output(t->tG, 0), nimg, 1.0f));
    EBMC_TRY(ebmc_chain_run(t->cx, B));
    const float *tr = ebmc_potential_trace(t->px);
    EBMC_TRY(copy_f(ctx, M + M_EX0, tr, 1, 1.0f));
    EBMC_TRY(copy_f(ctx, M + M_EX1, tr + t->kx - 1, 1, 1.0f));
    EBMC_TRY(ebmc_net_forward(t->I, t->tIr, B, t->x_real));
    const float *mu = ebmc_tape_output(t->tIr, 0), *lv = ebmc_tape_output(t->tIr, 1);
    ebmc_rng_key ke = {noise_seed(t), STREAM_EPS, NULL, (uint32_t)it};
    EBMC_TRY(ebmc_init_reparam(ctx, zs, mu, lv, B, (size_t)t->nz, 0.5f, ke));
    EBMC_TRY(copy_f(ctx, ebmc_potential_latent_target(t->pz), t->x_real, nimg, 1.0f));
    return ebmc_chain_run(t->cz, B);
}

/* 4. L_G = g_factor |G(z~) - x|^2/B + lambda_s |G(z) - x~|^2/B; then the code's logging E(x) */
static ebmc_status phase_update_G(dm_t *t, int64_t epoch) {
    ebmc_ctx_t *ctx = t->ctx;
    int B = t->B;
    size_t nimg = (size_t)B * t->img;
    float *M = t->metrics, *xs = ebmc_chain_state(t->cx), *zs = ebmc_chain_state(t->cz);
    float gf = (float)t->c.g_factor, ls = (float)t->c.lambda_s;
    EBMC_TRY(ebmc_net_zero_grad(t->G));
    EBMC_TRY(ebmc_net_forward(t->G, t->tGr, B, zs));
    ebmc_scaled_diff_desc sd = {nimg, 1.0f, 0.0f};
    EBMC_TRY(ebmc_scaled_diff(ctx, &sd, ebmc_tape_output(t->tGr, 0), t->x_real, t->dyG));
    EBMC_TRY(sumto(ctx, t->dyG, nimg, EBMC_REDUCE_SUMSQ, M + M_RECON));
    EBMC_TRY(copy_f(ctx, t->dyG, t->dyG, nimg, 2.0f * gf / B));
    const float *dy1[1] = {t->dyG};
    EBMC_TRY(ebmc_net_backward(t->G, t->tGr, dy1, EBMC_GRAD_FULL, NULL, 0.0f));
    EBMC_TRY(ebmc_scaled_diff(ctx, &sd, ebmc_tape_output(t->tG, 0), xs, t->dyG2));
    EBMC_TRY(sumto(ctx, t->dyG2, nimg, EBMC_REDUCE_SUMSQ, M + M_SAMPLE));
    EBMC_TRY(copy_f(ctx, t->dyG2, t->dyG2, nimg, 2.0f * ls / B));
    const float *dy2[1] = {t->dyG2};
    EBMC_TRY(ebmc_net_backward(t->G, t->tG, dy2, EBMC_GRAD_FULL, NULL, 0.0f));
    EBMC_TRY(ebmc_adam_step(t->oG, epoch));
    EBMC_TRY(ebmc_net_forward(t->E, t->tEr, B, t->x_real)); /* the code's logging `et` (advances SN) */
    return sumto(ctx, ebmc_tape_output(t->tEr, 0), (size_t)B, EBMC_REDUCE_SUM, M + M_ETLOG);
}

/* 5. L_I = g_factor mean NLL(z~ | I(x)) + lambda_i mean NLL(z | I(x~)) */
static ebmc_status phase_update_I(dm_t *t, int64_t epoch) {
    ebmc_ctx_t *ctx = t->ctx;
    int B = t->B;
    float *M = t->metrics, *xs = ebmc_chain_state(t->cx), *zs = ebmc_chain_state(t->cz);
    const float *mu = ebmc_tape_output(t->tIr, 0), *lv = ebmc_tape_output(t->tIr, 1);
    EBMC_TRY(ebmc_net_zero_grad(t->I));
    ebmc_gauss_nll_desc nd = {B, (size_t)t->nz, 1e-6f, (float)t->c.g_factor / B, 0.0f};
    EBMC_TRY(ebmc_gauss_nll(ctx, &nd, zs, mu, lv, t->rowloss, t->dmu, t->dlv));
    EBMC_TRY(sumto(ctx, t->rowloss, (size_t)B, EBMC_REDUCE_SUM, M + M_NLLQ));
    const float *dyi[2] = {t->dmu, t->dlv};
    EBMC_TRY(ebmc_net_backward(t->I, t->tIr, dyi, EBMC_GRAD_FULL, NULL, 0.0f));
    EBMC_TRY(ebmc_net_forward(t->I, t->tIf, B, xs));
    nd.scale = (float)t->c.lambda_i / B;
    EBMC_TRY(ebmc_gauss_nll(ctx, &nd, t->z, ebmc_tape_output(t->tIf, 0), ebmc_tape_output(t->tIf, 1), t->rowloss,
                            t->dmu, t->dlv));
    EBMC_TRY(sumto(ctx, t->rowloss, (size_t)B, EBMC_REDUCE_SUM, M + M_NLLL));
    EBMC_TRY(ebmc_net_backward(t->I, t->tIf, dyi, EBMC_GRAD_FULL, NULL, 0.0f));
    return ebmc_adam_step(t->oI, epoch);
}

/* 7a, 6, 7: E(x) first (as the code: every E forward advances spectral norm's u), then
 * x~' = LangevinX(G_new(z)), E(x~') and the step of L_E = (mean E(x) - mean E(x~')) / T */
static ebmc_status phase_update_E(dm_t *t, int64_t epoch, bool keep_gen) {
    ebmc_ctx_t *ctx = t->ctx;
    int B = t->B;
    size_t nimg = (size_t)B * t->img;
    float *M = t->metrics, *xs = ebmc_chain_state(t->cx);
    const float *tr = ebmc_potential_trace(t->px);
    EBMC_TRY(ebmc_net_zero_grad(t->E));
    EBMC_TRY(ebmc_net_forward(t->E, t->tEr, B, t->x_real));
    EBMC_TRY(sumto(ctx, ebmc_tape_output(t->tEr, 0), (size_t)B, EBMC_REDUCE_SUM, M + M_ET));
    EBMC_TRY(fill_f(ctx, t->dyE, (size_t)B, (float)(1.0 / (B * t->T))));
    const float *dye[1] = {t->dyE};
    EBMC_TRY(ebmc_net_backward(t->E, t->tEr, dye, EBMC_GRAD_FULL, NULL, 0.0f));
    EBMC_TRY(ebmc_net_forward(t->G, t->tG, B, t->z));
    EBMC_TRY(copy_f(ctx, xs, ebmc_tape_output(t->tG, 0), nimg, 1.0f));
    if (keep_gen) EBMC_TRY(copy_f(ctx, t->gen, xs, nimg, 1.0f));
    if (t->c.fine_tune) {
        EBMC_TRY(ebmc_chain_run(t->cx, B));
        EBMC_TRY(copy_f(ctx, M + M_EGEN0, tr, 1, 1.0f));
        EBMC_TRY(copy_f(ctx, M + M_EGEN1, tr + t->kx - 1, 1, 1.0f));
    } else {
        EBMC_TRY(fill_f(ctx, M + M_EGEN0, 2, NAN));
    }
    EBMC_TRY(ebmc_net_forward(t->E, t->tEf, B, xs));
    EBMC_TRY(sumto(ctx, ebmc_tape_output(t->tEf, 0), (size_t)B, EBMC_REDUCE_SUM, M + M_EF));
    EBMC_TRY(fill_f(ctx, t->dyE, (size_t)B, (float)(-1.0 / (B * t->T))));
    EBMC_TRY(ebmc_net_backward(t->E, t->tEf, dye, EBMC_GRAD_FULL, NULL, 0.0f));
    return ebmc_adam_step(t->oE, epoch);
}

/* NVTX: "dm_iteration" and one range per phase (the chains, passes and Adam steps nest inside) */
static ebmc_status dm_iteration(void *state, const float *batch, int64_t it, int64_t epoch, bool grids) {
    dm_t *t = state;
    EBMC_RANGE_PUSH("dm_iteration");
    EBMC_RANGE_PUSH("sample");
    ebmc_status s = phase_sample(t, batch, it);
    EBMC_RANGE_POP();
    if (!s) {
        EBMC_RANGE_PUSH("update_G");
        s = phase_update_G(t, epoch);
        EBMC_RANGE_POP();
    }
    if (!s) {
        EBMC_RANGE_PUSH("update_I");
        s = phase_update_I(t, epoch);
        EBMC_RANGE_POP();
    }
    if (!s) {
        EBMC_RANGE_PUSH("update_E");
        s = phase_update_E(t, epoch, grids);
        EBMC_RANGE_POP();
    }
    /* one host synchronisation per iteration: the metrics */
    if (!s) s = ebmc_copy(t->ctx, t->hmet, t->metrics, M_COUNT * sizeof(float), EBMC_COPY_D2H);
    EBMC_RANGE_POP();
    return s;
}

/* ------------------------------------------------------------------ what the shell reads */

static void dm_report(void *state, int64_t epoch, ebmc_report *r) {
    dm_t *t = state;
    const float *m = t->hmet;
    double B = t->B;
    double e_data = m[M_ET] / B, e_rev = m[M_EF] / B, gap = e_data - e_rev;
    double loss_g = t->c.g_factor * m[M_RECON] / B + t->c.lambda_s * m[M_SAMPLE] / B;
    double loss_i = t->c.g_factor * m[M_NLLQ] / B + t->c.lambda_i * m[M_NLLL] / B;
    double loss_e = gap / t->T;
    ebmc_report_add(r, "loss_e", loss_e, true);
    ebmc_report_add(r, "loss_g", loss_g, true);
    ebmc_report_add(r, "loss_i", loss_i, true);
    ebmc_report_add(r, "e_data", e_data, false);
    ebmc_report_add(r, "e_gen", m[M_EGEN0] / B, false);
    ebmc_report_add(r, "e_revised", e_rev, false);
    r->gap = r->n;
    ebmc_report_add(r, "e_gap", gap, false);
    ebmc_report_add(r, "e_chain_first", m[M_EX0] / B, false);
    ebmc_report_add(r, "e_chain_last", m[M_EX1] / B, false);
    ebmc_report_add(r, "recon_err", m[M_RECON] / B, false);
    ebmc_report_add(r, "sample_err", m[M_SAMPLE] / B, false);
    ebmc_report_add(r, "nll_q", m[M_NLLQ] / B, false);
    ebmc_report_add(r, "nll_latent", m[M_NLLL] / B, false);
    ebmc_report_add(r, "lr_e", ebmc_adam_lr(t->oE, epoch), false);
    ebmc_report_add(r, "lr_g", ebmc_adam_lr(t->oG, epoch), false);
    ebmc_report_add(r, "lr_i", ebmc_adam_lr(t->oI, epoch), false);
    r->images = B;
    r->chain_steps = B * (2.0 * t->kx + t->kz);
    snprintf(r->progress, sizeof r->progress, "E %.3g (gap %.3g) G %.4g I %.4g", loss_e, gap, loss_g, loss_i);
}

/* E, G, I as files; their Adam states, the chains' step counters (and, from the shell, the
 * iteration, loader position and restarts) in state.safetensors */
static int dm_ckpt_items(void *state, ebmc_ckpt_item *it, int max) {
    dm_t *t = state;
    t->steps_x = ebmc_chain_step(t->cx);
    t->steps_z = ebmc_chain_step(t->cz);
    int n = 0;
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "E", .ptr = t->E};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "G", .ptr = t->G};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "I", .ptr = t->I};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_ADAM, .name = "optE", .ptr = t->oE};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_ADAM, .name = "optG", .ptr = t->oG};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_ADAM, .name = "optI", .ptr = t->oI};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "chain_x.step", .ptr = &t->steps_x, .lo = 0, .hi = UINT32_MAX};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "chain_z.step", .ptr = &t->steps_z, .lo = 0, .hi = UINT32_MAX};
    EBMC_ASSERT(n <= max);
    return n;
}

static ebmc_status dm_loaded(void *state, char *err, size_t errlen) {
    dm_t *t = state;
    ebmc_status s = ebmc_chain_set_step(t->cx, (uint32_t)t->steps_x);
    if (!s) s = ebmc_chain_set_step(t->cz, (uint32_t)t->steps_z);
    if (s) snprintf(err, errlen, "restoring the chains' counters: %s", ebmc_ctx_error(t->ctx));
    return s;
}

static void dm_reseed(void *state, uint32_t restarts) {
    dm_t *t = state;
    t->restarts = restarts;
    ebmc_chain_set_seed(t->cx, noise_seed(t));
    ebmc_chain_set_seed(t->cz, noise_seed(t));
}

static int dm_grids(void *state, ebmc_grid *g, int max) {
    dm_t *t = state;
    const ebmc_model_cfg *mc = &t->c.mc;
    if (mc->img_size == 1) return 0; /* 2-D points: no images */
    const float *bufs[4] = {t->x_real, t->gen, ebmc_chain_state(t->cx), ebmc_tape_output(t->tGr, 0)};
    const char *names[4] = {"data", "generator", "revised", "reconstruction"};
    int n = 0;
    for (int i = 0; i < 4 && n < max; i++)
        g[n++] = (ebmc_grid){names[i], bufs[i], t->B, mc->img_c, mc->img_size, mc->img_size};
    return n;
}

static const char *const DM_SAMPLE_NAMES[] = {"generator", "revised", NULL};

/* specs/teaching.md 1(g): z ~ N(0,I) -> G -> Langevin (70 steps of size 0.4, noise 1e-3), in full
 * batches of the training batch size: G's BatchNorm uses batch statistics, as in training */
static ebmc_status dm_sample(void *state, const ebmc_sample_opts *o, float **outs, char *desc, size_t desclen,
                             char *err, size_t errlen) {
    dm_t *t = state;
    ebmc_sample_cfg sc = ebmc_sample_cfg_apply(t->c.sample, o);
    ebmc_langevin_params p = ebmc_langevin_dualmcmc_x((float)sc.step, (float)sc.noise, sc.steps);
    ebmc_chain_set_params(t->cx, &p);
    ebmc_chain_set_seed(t->cx, o->seed);
    ebmc_status s = ebmc_chain_set_step(t->cx, 0);
    int B = t->B;
    size_t img = t->img;
    float *xs = ebmc_chain_state(t->cx);
    for (int done = 0; !s && done < o->n; done += B) {
        int take = o->n - done < B ? o->n - done : B;
        ebmc_rng_key kz = {o->seed, STREAM_SAMPLE, NULL, (uint32_t)(done / B)};
        s = ebmc_init_normal(t->ctx, t->z, B, (size_t)t->nz, 1.0f, kz);
        if (!s) s = ebmc_net_forward(t->G, t->tG, B, t->z);
        if (!s) s = copy_f(t->ctx, xs, ebmc_tape_output(t->tG, 0), (size_t)B * img, 1.0f);
        if (!s) s = ebmc_copy(t->ctx, outs[0] + (size_t)done * img, xs, (size_t)take * img * sizeof(float), EBMC_COPY_D2H);
        if (!s && p.steps > 0) s = ebmc_chain_run(t->cx, B);
        if (!s) s = ebmc_copy(t->ctx, outs[1] + (size_t)done * img, xs, (size_t)take * img * sizeof(float), EBMC_COPY_D2H);
    }
    if (s) snprintf(err, errlen, "sampling: %s", ebmc_ctx_error(t->ctx));
    snprintf(desc, desclen, "%d Langevin steps of size %g, noise %g", p.steps, (double)sqrtf(2 * p.a), (double)p.c);
    return s;
}

/* E(x) of host examples through the E(x) tape, batch by batch; spectral norm's u, v frozen (as
 * PyTorch's eval mode) so that scoring leaves the model as it was */
static ebmc_status dm_energy(void *state, const float *x, int n, float *e, char *err, size_t errlen) {
    dm_t *t = state;
    int iters = ebmc_net_sn_iters(t->E);
    ebmc_net_set_sn_iters(t->E, 0);
    ebmc_status s = EBMC_OK;
    for (int done = 0; !s && done < n; done += t->B) {
        int take = n - done < t->B ? n - done : t->B;
        s = ebmc_copy(t->ctx, t->x_real, x + (size_t)done * t->img, (size_t)take * t->img * sizeof(float),
                      EBMC_COPY_H2D);
        if (!s) s = ebmc_net_forward(t->E, t->tEr, take, t->x_real);
        if (!s) s = ebmc_copy(t->ctx, e + done, ebmc_tape_output(t->tEr, 0), (size_t)take * sizeof(float),
                              EBMC_COPY_D2H);
    }
    if (!s) s = ebmc_sync(t->ctx);
    ebmc_net_set_sn_iters(t->E, iters);
    if (s) snprintf(err, errlen, "energy: %s", ebmc_ctx_error(t->ctx));
    return s;
}

static int dm_plan(void *state, ebmc_plan_row *rows, int max) {
    dm_t *t = state;
    ebmc_tape_t *te[3] = {ebmc_potential_tape(t->px), t->tEr, t->tEf};
    ebmc_tape_t *tg[3] = {t->tG, ebmc_potential_tape(t->pz), t->tGr};
    ebmc_tape_t *ti[2] = {t->tIr, t->tIf};
    EBMC_ASSERT(max >= 4);
    rows[0] = ebmc_plan_net_row("E", t->E, t->oE, te, 3);
    rows[1] = ebmc_plan_net_row("G", t->G, t->oG, tg, 3);
    rows[2] = ebmc_plan_net_row("I", t->I, t->oI, ti, 2);
    size_t nimg = (size_t)t->B * t->img, nzb = (size_t)t->B * t->nz;
    rows[3] = (ebmc_plan_row){.name = "buffers"};
    /* x, G(z) kept for grids, dL/dG twice, the x-chain's state and gradient, the latent
     * chain's target and dy (images); z, dmu, dlv, the latent chain's state and gradient; dE,
     * row losses, the energy's dy; metrics, the energy trace and two step counters */
    rows[3].other_bytes = (8 * nimg + 5 * nzb + 3 * (size_t)t->B + 64 + (size_t)t->kx) * sizeof(float) + 128;
    return 4;
}

static const char *const DM_PROBES = "recon,sample,nllq,nlll,et,ef,etlog,egen0,egen1,ex0,ex1";

static int dm_probes(void *state, const char **names, const float **values) {
    *names = DM_PROBES;
    *values = ((dm_t *)state)->hmet;
    return M_COUNT;
}

const ebmc_recipe ebmc_recipe_dualmcmc = {
    .name = "dualmcmc",
    .summary = "Dual-MCMC teaching (Cui & Han, NeurIPS 2023): EBM E, generator G, inference model I",
    .precision = EBMC_PREC_TF32_CONV, /* an image recipe: PyTorch's defaults */
    .keys = DM_KEYS,
    .n_keys = (int)(sizeof DM_KEYS / sizeof DM_KEYS[0]),
    .config_size = sizeof(dm_cfg),
    .state_size = sizeof(dm_t),
    .parse = dm_parse,
    .data_shape = ebmc_recipe_model_data_shape,
    .setup = dm_setup,
    .iteration = dm_iteration,
    .report = dm_report,
    .ckpt_items = dm_ckpt_items,
    .loaded = dm_loaded,
    .grids = dm_grids,
    .reseed = dm_reseed,
    .sample_names = DM_SAMPLE_NAMES,
    .sample = dm_sample,
    .sample_shape = ebmc_recipe_model_sample_shape,
    .plan = dm_plan,
    .probes = dm_probes,
    .destroy = dm_destroy,
    .energy = dm_energy,
};
