/* Short-run, non-persistent, noise-initialised Langevin MLE (Nijkamp, Hill, Zhu & Wu, NeurIPS
 * 2019) as a recipe (run.recipe = shortrun), specs/teaching.md 3.2, following the authors' code
 * (enijkamp/short_run train_cifar10_minimal.py) step for step:
 *   1. x_p_d = data batch + sigma * N(0, I)                  (sample_p_d: sigma = 0.03)
 *   2. x_q: M chains from U[-1, 1], K steps x <- x + grad f(x) + eps xi   (sample_q: K = 100,
 *      eps = 0.01; no persistence, no clipping, no clamp)
 *   3. L = mean f(x_p_d) - mean f(x_q); Adam step on -L       (lr 1e-4, betas (0.9, 0.999))
 * The net outputs the score f (= -E); the chains descend U = -sum f. Randomness: Philox streams
 * keyed by (seed, stream, chain, step, element); the data noise and the start by the iteration,
 * the chain by its own device step counter (checkpointed). */
#include "recipes/shortrun.h"
#include "train/energy.h"
#include "ebmc/nvtx.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define U 1, 0 /* range unchecked */

/* Defaults: the authors' CIFAR-10 values (train_cifar10_minimal.py); configs/ override. */
static const ebmc_cfg_key SR_KEYS[] = {
    {"model", "arch", EBMC_CFG_CHOICE, "shortrun", "architecture of the score net f", U, "shortrun|mnist|toy2d"},
    {"model", "ndf", EBMC_CFG_INT, "0", "width n_f (0: the architecture's default, 64)", 0, 65536, NULL},
    {"model", "hidden", EBMC_CFG_INT, "0", "toy2d: MLP width (0: default)", 0, 65536, NULL},
    {"train", "lr", EBMC_CFG_FLOAT, "1e-4", "Adam learning rate", 0, 1, NULL},
    {"train", "beta1", EBMC_CFG_FLOAT, "0.9", "Adam beta1", 0, 0.999999, NULL},
    {"train", "beta2", EBMC_CFG_FLOAT, "0.999", "Adam beta2", 0, 0.999999, NULL},
    {"train", "gamma", EBMC_CFG_FLOAT, "1", "ExponentialLR factor per epoch (1: constant, as the code)", 0, 1, NULL},
    {"train", "data_noise", EBMC_CFG_FLOAT, "0.03", "sigma of the Gaussian noise added to each data batch", 0, 100, NULL},
    {"train", "chains", EBMC_CFG_INT, "0", "chains per iteration m (0: the batch size, as the code); global: data-parallel ranks split it", 0, 1 << 20, NULL},
    {"langevin", "steps", EBMC_CFG_INT, "100", "K: Langevin steps per iteration", 1, 100000, NULL},
    {"langevin", "step_size", EBMC_CFG_FLOAT, "1", "drift: x <- x + step_size * grad f + noise * xi", 0, 1e6, NULL},
    {"langevin", "noise", EBMC_CFG_FLOAT, "0.01", "eps, the noise scale", 0, 100, NULL},
    {"langevin", "init_lo", EBMC_CFG_FLOAT, "-1", "the chains start from U[init_lo, init_hi]", -1e6, 1e6, NULL},
    {"langevin", "init_hi", EBMC_CFG_FLOAT, "1", "upper end of the uniform start", -1e6, 1e6, NULL},
    {"sample", "steps", EBMC_CFG_INT, "100", "test-time Langevin steps (the code samples as it trains: K = 100)", 0, 100000, NULL},
    {"sample", "step_size", EBMC_CFG_FLOAT, "1", "test-time drift", 0, 1e6, NULL},
    {"sample", "noise", EBMC_CFG_FLOAT, "0.01", "test-time noise", 0, 100, NULL},
};

static ebmc_status sr_parse(const ebmc_config_t *cfg, void *typed, char *err, size_t errlen) {
    sr_cfg *c = typed;
    static const char *const widths[] = {"ndf", "hidden", NULL};
    ebmc_status st = ebmc_recipe_model_read(cfg, &c->mc, widths, err, errlen);
    if (st) return st;
    c->adam = (ebmc_adam_cfg){ebmc_config_float(cfg, "train", "lr"), ebmc_config_float(cfg, "train", "beta1"),
                              ebmc_config_float(cfg, "train", "beta2"), 1e-8, 0.0,
                              ebmc_config_float(cfg, "train", "gamma")};
    c->data_noise = ebmc_config_float(cfg, "train", "data_noise");
    c->chains = (int)ebmc_config_int(cfg, "train", "chains");
    c->steps = (int)ebmc_config_int(cfg, "langevin", "steps");
    c->step = ebmc_config_float(cfg, "langevin", "step_size");
    c->noise = ebmc_config_float(cfg, "langevin", "noise");
    c->init_lo = ebmc_config_float(cfg, "langevin", "init_lo");
    c->init_hi = ebmc_config_float(cfg, "langevin", "init_hi");
    if (!(c->init_lo < c->init_hi)) {
        snprintf(err, errlen, "langevin.init_lo (%g) must be below langevin.init_hi (%g)", c->init_lo, c->init_hi);
        return EBMC_E_INVALID;
    }
    c->sample = ebmc_sample_cfg_read(cfg);
    return EBMC_OK;
}

static void sr_destroy(void *state) {
    sr_t *t = state;
    ebmc_chain_free(t->chain);
    ebmc_potential_free(t->pot);
    ebmc_tape_free(t->tD);
    ebmc_tape_free(t->tQ);
    ebmc_adam_free(t->opt);
    float *bufs[] = {t->x_data, t->dy, t->metrics};
    for (int i = 0; i < 3; i++)
        if (bufs[i]) ebmc_free(t->ctx, bufs[i]);
    ebmc_net_free(t->E);
    memset(t, 0, sizeof *t);
}

static ebmc_langevin_params chain_params(double step, double noise, int steps) {
    ebmc_langevin_params p = ebmc_langevin_shortrun((float)noise, steps);
    p.a = (float)step;
    if (p.c == 0.0f) p.noise = EBMC_NOISE_OFF;
    return p;
}

static ebmc_status tape_on(ebmc_net_t *net, int n, ebmc_tape_t *base, ebmc_tape_t **out) {
    if (!base) return ebmc_tape_create(net, n, true, out);
    return ebmc_tape_create_shared(net, n, true, base, out);
}

/* the net, Adam, the chain (its own tape), the two loss passes (sharing the chain's tape: the
 * passes run one after another), the data buffer and the metrics */
static ebmc_status build(sr_t *t, bool share, char *err, size_t errlen) {
    ebmc_ctx_t *ctx = t->ctx;
    int nmax = t->B > t->M ? t->B : t->M;
    t->E = ebmc_model_build(&t->c.mc, EBMC_NET_E, err, errlen);
    if (!t->E) return EBMC_E_INVALID;
    ebmc_status s = ebmc_net_finalize(t->E, ctx, true, t->seed + 101);
    if (s) {
        snprintf(err, errlen, "%s", ebmc_net_error(t->E));
        return s;
    }
    if (ebmc_net_value_count(t->E, ebmc_net_output_value(t->E, 0)) != 1) {
        snprintf(err, errlen, "model.arch %s: the score net must output one value per example", t->c.mc.arch);
        return EBMC_E_INVALID;
    }
    ebmc_langevin_params p = chain_params(t->c.step, t->c.noise, t->c.steps);
    if ((s = ebmc_adam_create(t->E, &t->c.adam, &t->opt)) || (s = ebmc_potential_energy(t->E, t->M, -1.0f, &t->pot)) ||
        (s = ebmc_potential_energy_trace(t->pot, t->c.steps)) ||
        (s = ebmc_chain_create(t->pot, &p, t->M, t->seed, SR_STREAM_X, &t->chain)) ||
        (s = tape_on(t->E, nmax, share && t->M >= nmax ? ebmc_potential_tape(t->pot) : NULL, &t->tD)) ||
        (s = tape_on(t->E, nmax, share ? t->tD : NULL, &t->tQ)) ||
        (s = ebmc_alloc(ctx, (void **)&t->x_data, (size_t)t->B * t->img * sizeof(float))) ||
        (s = ebmc_alloc(ctx, (void **)&t->dy, (size_t)nmax * sizeof(float))) ||
        (s = ebmc_alloc(ctx, (void **)&t->metrics, 16 * sizeof(float))))
        snprintf(err, errlen, "set-up: %s", ebmc_ctx_error(ctx));
    return s;
}

static ebmc_status sr_setup(void *state, const void *typed, const ebmc_recipe_env *env, char *err, size_t errlen) {
    sr_t *t = state;
    t->c = *(const sr_cfg *)typed;
    t->ctx = env->ctx;
    t->seed = env->seed;
    t->B = env->batch;
    t->M = env->batch; /* train.chains is global: each data-parallel rank runs its share */
    if (t->c.chains) EBMC_TRY(ebmc_env_share(env, t->c.chains, "train.chains", &t->M, err, errlen));
    const ebmc_model_cfg *mc = &t->c.mc;
    if (env->has_data && (env->data_c != mc->img_c || env->data_h != mc->img_size || env->data_w != mc->img_size)) {
        snprintf(err, errlen, "data %s gives %dx%dx%d examples but model.arch %s needs %dx%dx%d "
                 "(HINT: data.size, data.mnist_pad or another model.arch)", env->data_name, env->data_c,
                 env->data_h, env->data_w, mc->arch, mc->img_c, mc->img_size, mc->img_size);
        return EBMC_E_INVALID;
    }
    t->img = (size_t)mc->img_c * mc->img_size * mc->img_size;
    EBMC_TRY(build(t, env->share_tapes, err, errlen));
    ebmc_chain_set_graph(t->chain, env->graphs);
    return EBMC_OK;
}

/* ------------------------------------------------------------------ one iteration */

static uint64_t noise_seed(const sr_t *t) { return t->seed ^ ((uint64_t)t->restarts * 0x9E3779B97F4A7C15ull); }

static ebmc_status sum_to(ebmc_ctx_t *ctx, const float *x, size_t n, float *out) {
    ebmc_reduce_desc r = {1, n, EBMC_REDUCE_SUM, 0.0f};
    return ebmc_reduce(ctx, &r, x, out);
}

static ebmc_status copy_f(ebmc_ctx_t *ctx, float *dst, const float *src, size_t n) {
    ebmc_axpby_desc d = {n, 1.0f, 0.0f};
    return ebmc_axpby(ctx, &d, src, dst);
}

/* 1-2: x_p_d = x + sigma xi (stream DATA, step = it); x_q = K steps from U[lo, hi] (stream
 * INIT, step = it) */
static ebmc_status phase_sample(sr_t *t, const float *batch, int64_t it) {
    ebmc_ctx_t *ctx = t->ctx;
    EBMC_TRY(ebmc_copy(ctx, t->x_data, batch, (size_t)t->B * t->img * sizeof(float), EBMC_COPY_H2D));
    if (t->c.data_noise > 0) {
        ebmc_rng_desc r = {t->B, t->img, EBMC_RNG_NORMAL, 0.0f, (float)t->c.data_noise, true,
                           {noise_seed(t), SR_STREAM_DATA, NULL, (uint32_t)it}};
        EBMC_TRY(ebmc_rng(ctx, &r, t->x_data));
    }
    ebmc_rng_key ki = {noise_seed(t), SR_STREAM_INIT, NULL, (uint32_t)it};
    EBMC_TRY(ebmc_init_uniform(ctx, ebmc_chain_state(t->chain), t->M, t->img, (float)t->c.init_lo,
                               (float)t->c.init_hi, ki));
    EBMC_TRY(ebmc_chain_run(t->chain, t->M));
    const float *tr = ebmc_potential_trace(t->pot);
    EBMC_TRY(copy_f(ctx, t->metrics + SR_U0, tr, 1));
    return copy_f(ctx, t->metrics + SR_U1, tr + t->c.steps - 1, 1);
}

/* 3: minimise -(mean f(x_p_d) - mean f(x_q)): dL/df(x_p_d) = -1/B, dL/df(x_q) = +1/M */
static ebmc_status phase_update(sr_t *t, int64_t epoch) {
    ebmc_ctx_t *ctx = t->ctx;
    const float *dy[1] = {t->dy};
    ebmc_fill_desc fd = {(size_t)t->B, -1.0f / t->B};
    EBMC_TRY(ebmc_net_zero_grad(t->E));
    EBMC_TRY(ebmc_net_forward(t->E, t->tD, t->B, t->x_data));
    EBMC_TRY(sum_to(ctx, ebmc_tape_output(t->tD, 0), (size_t)t->B, t->metrics + SR_FDATA));
    EBMC_TRY(ebmc_fill(ctx, &fd, t->dy));
    EBMC_TRY(ebmc_net_backward(t->E, t->tD, dy, EBMC_GRAD_FULL, NULL, 0.0f));
    EBMC_TRY(ebmc_net_forward(t->E, t->tQ, t->M, ebmc_chain_state(t->chain)));
    EBMC_TRY(sum_to(ctx, ebmc_tape_output(t->tQ, 0), (size_t)t->M, t->metrics + SR_FQ));
    fd = (ebmc_fill_desc){(size_t)t->M, 1.0f / t->M};
    EBMC_TRY(ebmc_fill(ctx, &fd, t->dy));
    EBMC_TRY(ebmc_net_backward(t->E, t->tQ, dy, EBMC_GRAD_FULL, NULL, 0.0f));
    return ebmc_adam_step(t->opt, epoch);
}

static ebmc_status sr_iteration(void *state, const float *batch, int64_t it, int64_t epoch, bool grids) {
    sr_t *t = state;
    (void)grids; /* the grids show x_data and the chain state, both kept */
    EBMC_RANGE_PUSH("sr_iteration");
    ebmc_status s = phase_sample(t, batch, it);
    if (!s) s = phase_update(t, epoch);
    if (!s) s = ebmc_copy(t->ctx, t->hmet, t->metrics, SR_COUNT * sizeof(float), EBMC_COPY_D2H);
    EBMC_RANGE_POP();
    return s;
}

/* ------------------------------------------------------------------ what the shell reads */

static void sr_report(void *state, int64_t epoch, ebmc_report *r) {
    sr_t *t = state;
    double f_data = t->hmet[SR_FDATA] / t->B, f_q = t->hmet[SR_FQ] / t->M;
    double loss = -(f_data - f_q);
    ebmc_report_add(r, "loss", loss, true);
    ebmc_report_add(r, "f_data", f_data, false);
    ebmc_report_add(r, "f_q", f_q, false);
    r->gap = r->n;
    ebmc_report_add(r, "e_gap", f_q - f_data, false); /* E = -f: mean E(data) - mean E(samples) */
    ebmc_report_add(r, "f_chain_first", t->hmet[SR_U0] / t->M, false);
    ebmc_report_add(r, "f_chain_last", t->hmet[SR_U1] / t->M, false);
    ebmc_report_add(r, "lr", ebmc_adam_lr(t->opt, epoch), false);
    r->images = t->B;
    r->chain_steps = (double)t->M * t->c.steps;
    snprintf(r->progress, sizeof r->progress, "loss %.4g f(data) %.4g f(q) %.4g", loss, f_data, f_q);
}

static int sr_ckpt_items(void *state, ebmc_ckpt_item *it, int max) {
    sr_t *t = state;
    t->steps_x = ebmc_chain_step(t->chain);
    int n = 0;
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "E", .ptr = t->E};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_ADAM, .name = "optE", .ptr = t->opt};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "chain_x.step", .ptr = &t->steps_x, .lo = 0, .hi = UINT32_MAX};
    EBMC_ASSERT(n <= max);
    return n;
}

static ebmc_status sr_loaded(void *state, char *err, size_t errlen) {
    sr_t *t = state;
    ebmc_status s = ebmc_chain_set_step(t->chain, (uint32_t)t->steps_x);
    if (s) snprintf(err, errlen, "restoring the chain's counter: %s", ebmc_ctx_error(t->ctx));
    return s;
}

static void sr_reseed(void *state, uint32_t restarts) {
    sr_t *t = state;
    t->restarts = restarts;
    ebmc_chain_set_seed(t->chain, noise_seed(t));
}

static int sr_grids(void *state, ebmc_grid *g, int max) {
    sr_t *t = state;
    const ebmc_model_cfg *mc = &t->c.mc;
    if (mc->img_size == 1 || max < 2) return 0; /* 2-D points: no images */
    g[0] = (ebmc_grid){"data", t->x_data, t->B, mc->img_c, mc->img_size, mc->img_size};
    g[1] = (ebmc_grid){"samples", ebmc_chain_state(t->chain), t->M, mc->img_c, mc->img_size, mc->img_size};
    return 2;
}

static const char *const SR_SAMPLE_NAMES[] = {"samples", NULL};

/* specs/teaching.md 3.2: the authors sample as they train: M chains from U[-1, 1], K steps */
static ebmc_status sr_sample(void *state, const ebmc_sample_opts *o, float **outs, char *desc, size_t desclen,
                             char *err, size_t errlen) {
    sr_t *t = state;
    ebmc_sample_cfg sc = ebmc_sample_cfg_apply(t->c.sample, o);
    ebmc_langevin_params p = chain_params(sc.step, sc.noise, sc.steps);
    ebmc_chain_set_params(t->chain, &p);
    ebmc_chain_set_seed(t->chain, o->seed);
    ebmc_status s = ebmc_chain_set_step(t->chain, 0);
    float *xs = ebmc_chain_state(t->chain);
    for (int done = 0; !s && done < o->n; done += t->M) {
        int take = o->n - done < t->M ? o->n - done : t->M;
        ebmc_rng_key k = {o->seed, SR_STREAM_SAMPLE, NULL, (uint32_t)(done / t->M)};
        s = ebmc_init_uniform(t->ctx, xs, t->M, t->img, (float)t->c.init_lo, (float)t->c.init_hi, k);
        if (!s && p.steps > 0) s = ebmc_chain_run(t->chain, t->M);
        if (!s) s = ebmc_copy(t->ctx, outs[0] + (size_t)done * t->img, xs, (size_t)take * t->img * sizeof(float), EBMC_COPY_D2H);
    }
    if (s) snprintf(err, errlen, "sampling: %s", ebmc_ctx_error(t->ctx));
    snprintf(desc, desclen, "%d Langevin steps x <- x + %g grad f + %g xi from U[%g, %g]", p.steps, (double)p.a,
             (double)p.c, t->c.init_lo, t->c.init_hi);
    return s;
}

static int sr_plan(void *state, ebmc_plan_row *rows, int max) {
    sr_t *t = state;
    EBMC_ASSERT(max >= 2);
    ebmc_tape_t *tapes[3] = {ebmc_potential_tape(t->pot), t->tD, t->tQ};
    rows[0] = ebmc_plan_net_row("E", t->E, t->opt, tapes, 3);
    /* the data batch, the chain state and gradient, dy, metrics, the energy trace, counter */
    int nmax = t->B > t->M ? t->B : t->M;
    rows[1] = (ebmc_plan_row){.name = "buffers"};
    rows[1].other_bytes = ((size_t)t->B * t->img + 2 * (size_t)t->M * t->img + (size_t)nmax + 16 + (size_t)t->c.steps) *
                              sizeof(float) + 64;
    return 2;
}

static int sr_probes(void *state, const char **names, const float **values) {
    *names = "fdata,fq,u0,u1";
    *values = ((sr_t *)state)->hmet;
    return SR_COUNT;
}

/* `ebmc score`: the energy E = -f (the net outputs the score f; the chains descend -f), batches
 * of at most B through the data buffer on the data pass's tape */
static ebmc_status sr_energy(void *state, const float *x, int n, float *e, char *err, size_t errlen) {
    sr_t *t = state;
    ebmc_energy_pass p = {t->E, t->tD, t->x_data, NULL, 1.0f, 0.0f, t->B, t->img, -1.0f};
    return ebmc_net_energy(&p, x, n, e, err, errlen);
}

const ebmc_recipe ebmc_recipe_shortrun = {
    .name = "shortrun",
    .summary = "short-run noise-initialised Langevin MLE (Nijkamp et al., NeurIPS 2019): one score net f",
    .precision = EBMC_PREC_TF32_CONV, /* an image recipe: PyTorch's defaults */
    .keys = SR_KEYS,
    .n_keys = (int)(sizeof SR_KEYS / sizeof SR_KEYS[0]),
    .config_size = sizeof(sr_cfg),
    .state_size = sizeof(sr_t),
    .parse = sr_parse,
    .data_shape = ebmc_recipe_model_data_shape,
    .setup = sr_setup,
    .iteration = sr_iteration,
    .report = sr_report,
    .ckpt_items = sr_ckpt_items,
    .loaded = sr_loaded,
    .grids = sr_grids,
    .reseed = sr_reseed,
    .sample_names = SR_SAMPLE_NAMES,
    .sample = sr_sample,
    .sample_shape = ebmc_recipe_model_sample_shape,
    .plan = sr_plan,
    .probes = sr_probes,
    .destroy = sr_destroy,
    .energy = sr_energy,
};
