/* Jarzynski-weighted Langevin training with sequential-Monte-Carlo resampling (Carbone, Hua,
 * Coste & Vanden-Eijnden, NeurIPS 2023) as a recipe (run.recipe = jarzynski), specs/particles.md
 * section 1, Algorithm 1 in the authors' order (GMM_code/GMM.py):
 *   1. p = normalised weights e^A / sum e^A                                  (jz_stats)
 *   2. g = mean_data dU/dtheta - sum_i p_i dU/dtheta(X_i)                     (the energy's accumulate)
 *   3. theta' = theta - lr g
 *   4. X' = X - h grad U_theta(X) + sqrt(2h) xi                            (ULA at the OLD theta)
 *   5. A += alpha_theta(X, X') - alpha_theta'(X', X)                         (jz_logw, float64)
 *   6. when ESS/N < threshold: ancestors, gather, A = 0, log Z folded in     (jz_resample, rows_copy)
 * with U and grad U of the walkers cached between iterations (pitfall 9: evaluated once, at the
 * new theta, for the increment and reused for the next move and gradient).
 * Baselines are switches of the same recipe: jarzynski.weights = off (uniform weights, no
 * resampling) with walkers from the data (PCD), and jarzynski.reset_every = n (walkers reset to
 * data every n iterations: CD). The energy (jarzynski.h) is the Gaussian-mixture family
 * (model.arch = gmm, include/ebmc/gmm.h), whose exact log Z makes the logged cross-entropy
 * estimate checkable, or an image EBM (model.arch = mnist | shortrun, jarzynski_net.c).
 * Everything the loop touches is allocated in setup; randomness is Philox keyed by (seed,
 * stream, walker, step); the checkpoint holds theta, the walkers, their float64 log-weights, the
 * statistics (log Z bookkeeping, resampling count) and the noise counter: resume is exact. */
#include "recipes/jarzynski.h"
#include "ebmc/comm.h"
#include "ebmc/gmm.h"
#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/nvtx.h"
#include "ebmc/philox.h"
#include "ebmc/recipe.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_ULA = 21, STREAM_RESAMPLE = 22, STREAM_INIT = 23, STREAM_DATAPICK = 24, STREAM_PARAM = 25,
       STREAM_DATANOISE = 26 };

#define U 1, 0 /* range unchecked */

static const ebmc_cfg_key JZ_KEYS[] = {
    {"model", "arch", EBMC_CFG_CHOICE, "gmm", "the energy: gmm (Gaussian mixture, unit covariances), or an image EBM of models.c", U, "gmm|mnist|shortrun"},
    {"model", "components", EBMC_CFG_INT, "2", "gmm: components of the student", 1, 64, NULL},
    {"model", "dim", EBMC_CFG_INT, "50", "gmm: dimension (= data.dim)", 1, 4096, NULL},
    {"model", "width", EBMC_CFG_INT, "0", "image EBM: channel width ndf (0: the architecture's default)", 0, 65536, NULL},
    {"jarzynski", "walkers", EBMC_CFG_INT, "10000", "N persistent walkers; global: data-parallel ranks split it", 1, 1 << 24, NULL},
    {"jarzynski", "weights", EBMC_CFG_CHOICE, "on", "on: Jarzynski log-weights and resampling; off: uniform weights (PCD/CD)", U, "on|off"},
    {"jarzynski", "init", EBMC_CFG_CHOICE, "model", "walkers start from the model (gmm: exact draws; images: U[-1,1] + init_steps) or from the data", U, "model|data"},
    {"jarzynski", "init_steps", EBMC_CFG_INT, "0", "image EBMs: unweighted ULA steps at theta_0 after a model start (authors: 20000 MNIST, 8000 CIFAR)", 0, 1 << 30, NULL},
    {"jarzynski", "reset_every", EBMC_CFG_INT, "0", "reset the walkers to data every n iterations (CD; 0: never)", 0, 1 << 30, NULL},
    {"jarzynski", "step_size", EBMC_CFG_FLOAT, "0.1", "h: X <- X - h grad U + sigma xi", 1e-12, 1e6, NULL},
    {"jarzynski", "noise", EBMC_CFG_FLOAT, "0", "sigma (0: sqrt(2h), the exact ULA; else the cold kernel's weights, specs/particles.md 1(d).1)", 0, 1e6, NULL},
    {"jarzynski", "steps", EBMC_CFG_INT, "1", "ULA steps per parameter update (after the first the weights are MALA's)", 1, 100000, NULL},
    {"jarzynski", "resample", EBMC_CFG_CHOICE, "multinomial", "resampling scheme (the authors': multinomial)", U, "systematic|multinomial"},
    {"jarzynski", "trigger", EBMC_CFG_CHOICE, "start", "which weights decide a resampling after the move: start (those at the start of the iteration, as GMM.py's varian[i]; one host read per iteration) or after (those after the move)", U, "start|after"},
    {"jarzynski", "ess_threshold", EBMC_CFG_FLOAT, "0.9090909", "resample when ESS/N < this (1/(1+c) for the authors' CV^2 > c; 0: never)", 0, 2, NULL},
    {"train", "lr_means", EBMC_CFG_FLOAT, "0.0025", "gmm: gradient-descent rate of the means (authors: 0.2/8 * h)", 0, 1e3, NULL},
    {"train", "lr_z", EBMC_CFG_FLOAT, "0.0125", "gmm: gradient-descent rate of z_1.. (authors: 1/8 * h; z_0 fixed)", 0, 1e3, NULL},
    {"train", "lr", EBMC_CFG_FLOAT, "1e-4", "image EBMs: Adam learning rate", 0, 1, NULL},
    {"train", "beta1", EBMC_CFG_FLOAT, "0", "image EBMs: Adam beta1", 0, 0.999999, NULL},
    {"train", "beta2", EBMC_CFG_FLOAT, "0.999", "image EBMs: Adam beta2", 0, 0.999999, NULL},
    {"train", "lr_decay_epochs", EBMC_CFG_INT, "0", "image EBMs: lr x max(1 - epoch/n, 1e-10), LambdaLR per epoch (authors: CIFAR-10 600, MNIST 500; 0: constant)", 0, 1 << 30, NULL},
    {"train", "grad_clip", EBMC_CFG_FLOAT, "0", "image EBMs: clip the gradient's L2 norm (Lightning's gradient_clip_val; authors: CIFAR-10 1000, MNIST 1; 0: off)", 0, 1e30, NULL},
    {"train", "l2_coeff", EBMC_CFG_FLOAT, "0", "image EBMs: alpha of the energy regulariser alpha (mean_data U^2 + sum_i p_i U(X_i)^2) (authors: 0.01; 0: off)", 0, 1e6, NULL},
    {"train", "data_noise", EBMC_CFG_FLOAT, "0", "image EBMs: std of N(0, s^2) noise added to each data batch (authors: CIFAR-10 0.03, MNIST 0)", 0, 100, NULL},
};

typedef struct {
    char arch[32];
    int k, dim, width, walkers, reset_every, steps, init_steps;
    bool weights, init_data, gmm;
    bool trigger_start;           /* jarzynski.trigger = start */
    ebmc_resample_scheme scheme;
    double h, sigma, threshold, lr_means, lr_z, lr, beta1, beta2;
    int img_c, img_size;
    int64_t lr_decay_epochs;  /* train.* (image EBMs) */
    double grad_clip, data_noise, l2;
} jz_cfg;

/* per-walker buffers come in pairs (current, next): a move or a gather writes the other one */
typedef struct {
    float *x, *u, *g, *r; /* (N,dim), (N), (N,dim), (N,k) */
} jz_walkers;

typedef struct {
    jz_cfg c;
    ebmc_ctx_t *ctx;
    uint64_t seed;
    uint32_t restarts;
    int B, N, dim, k, aux; /* dim: elements per walker; aux: cached per-walker values for the gradient */
    jz_energy *E;
    ebmc_gmm_t *model; /* model.arch = gmm (owned by E), for the report; else NULL */
    jz_walkers w[2];
    int cur;
    double *logw, *stats, *stats_pre, *cdf; /* (N), 8, 8, (N) */
    int32_t *idx, *pick;                   /* (N) device ancestors; (N) host data picks */
    float *wts, *x_data, *u_data, *r_data, *sum; /* (N), (B,dim), (B), (B,aux), 1 */
    int64_t ula_step, ready;
    bool resample_due;                     /* trigger = start: this iteration's decision */
    double log_z0;                         /* log Z at the walkers' start (exact for the GMM) */
    /* host copies for the report */
    double hstats[EBMC_JZ_STATS_LEN], hpre[EBMC_JZ_STATS_LEN];
    float hsum, *hmeans, *hz;
} jz_t;

static ebmc_status jz_parse(const ebmc_config_t *cfg, void *typed, char *err, size_t errlen) {
    jz_cfg *c = typed;
    snprintf(c->arch, sizeof c->arch, "%s", ebmc_config_str(cfg, "model", "arch"));
    c->gmm = !strcmp(c->arch, "gmm");
    if (!c->gmm) {
        ebmc_model_cfg mc;
        ebmc_model_defaults(c->arch, &mc);
        c->img_c = mc.img_c, c->img_size = mc.img_size;
    }
    c->width = (int)ebmc_config_int(cfg, "model", "width");
    c->init_steps = (int)ebmc_config_int(cfg, "jarzynski", "init_steps");
    c->sigma = ebmc_config_float(cfg, "jarzynski", "noise");
    c->lr = ebmc_config_float(cfg, "train", "lr");
    c->beta1 = ebmc_config_float(cfg, "train", "beta1");
    c->beta2 = ebmc_config_float(cfg, "train", "beta2");
    c->lr_decay_epochs = ebmc_config_int(cfg, "train", "lr_decay_epochs");
    c->grad_clip = ebmc_config_float(cfg, "train", "grad_clip");
    c->l2 = ebmc_config_float(cfg, "train", "l2_coeff");
    c->data_noise = ebmc_config_float(cfg, "train", "data_noise");
    c->k = (int)ebmc_config_int(cfg, "model", "components");
    c->dim = (int)ebmc_config_int(cfg, "model", "dim");
    if (c->gmm && (double)c->k * c->dim > EBMC_GMM_MAX_KD) {
        snprintf(err, errlen, "model.components * model.dim = %d * %d exceeds %d", c->k, c->dim, (int)EBMC_GMM_MAX_KD);
        return EBMC_E_INVALID;
    }
    c->walkers = (int)ebmc_config_int(cfg, "jarzynski", "walkers");
    c->weights = !strcmp(ebmc_config_str(cfg, "jarzynski", "weights"), "on");
    c->init_data = !strcmp(ebmc_config_str(cfg, "jarzynski", "init"), "data");
    c->reset_every = (int)ebmc_config_int(cfg, "jarzynski", "reset_every");
    c->h = ebmc_config_float(cfg, "jarzynski", "step_size");
    if (c->sigma == 0) c->sigma = sqrt(2 * c->h);
    c->steps = (int)ebmc_config_int(cfg, "jarzynski", "steps");
    c->scheme = !strcmp(ebmc_config_str(cfg, "jarzynski", "resample"), "multinomial") ? EBMC_RESAMPLE_MULTINOMIAL
                                                                                       : EBMC_RESAMPLE_SYSTEMATIC;
    c->threshold = ebmc_config_float(cfg, "jarzynski", "ess_threshold");
    c->trigger_start = !strcmp(ebmc_config_str(cfg, "jarzynski", "trigger"), "start");
    c->lr_means = ebmc_config_float(cfg, "train", "lr_means");
    c->lr_z = ebmc_config_float(cfg, "train", "lr_z");
    return EBMC_OK;
}

static void jz_data_shape(const void *typed, int *c, int *h, int *w) {
    const jz_cfg *t = typed;
    if (t->gmm) *c = t->dim, *h = *w = 1;
    else *c = t->img_c, *h = *w = t->img_size;
}

static void jz_destroy(void *state) {
    jz_t *t = state;
    if (!t->ctx) return;
    if (t->E) t->E->destroy(t->E);
    for (int p = 0; p < 2; p++) {
        float *b[] = {t->w[p].x, t->w[p].u, t->w[p].g, t->w[p].r};
        for (int i = 0; i < 4; i++)
            if (b[i]) ebmc_free(t->ctx, b[i]);
    }
    void *d[] = {t->logw, t->stats, t->stats_pre, t->cdf, t->idx, t->wts, t->x_data, t->u_data, t->r_data, t->sum};
    for (int i = 0; i < 10; i++)
        if (d[i]) ebmc_free(t->ctx, d[i]);
    free(t->pick), free(t->hmeans), free(t->hz);
    memset(t, 0, sizeof *t);
}

static ebmc_status alloc_all(jz_t *t) {
    const size_t N = (size_t)t->N, D = (size_t)t->dim, K = (size_t)(t->aux ? t->aux : 1), B = (size_t)t->B;
    for (int p = 0; p < 2; p++) {
        EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->w[p].x, N * D * sizeof(float)));
        EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->w[p].u, N * sizeof(float)));
        EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->w[p].g, N * D * sizeof(float)));
        EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->w[p].r, N * K * sizeof(float)));
    }
    EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->logw, N * sizeof(double)));
    EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->stats, EBMC_JZ_STATS_LEN * sizeof(double)));
    EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->stats_pre, EBMC_JZ_STATS_LEN * sizeof(double)));
    EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->cdf, N * sizeof(double)));
    EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->idx, N * sizeof(int32_t)));
    EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->wts, N * sizeof(float)));
    EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->x_data, B * D * sizeof(float)));
    EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->u_data, B * sizeof(float)));
    EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->r_data, B * K * sizeof(float)));
    EBMC_TRY(ebmc_alloc(t->ctx, (void **)&t->sum, sizeof(float)));
    t->pick = calloc(N, sizeof(int32_t));
    t->hmeans = calloc((size_t)t->k * (t->c.gmm ? D : 1), sizeof(float));
    t->hz = calloc((size_t)t->k, sizeof(float));
    return t->pick && t->hmeans && t->hz ? EBMC_OK : EBMC_E_NOMEM;
}

static ebmc_status zero_weights(jz_t *t) {
    double z[EBMC_JZ_STATS_LEN] = {0, (double)t->N, (double)t->N, 0, (double)t->N, 0, 0, 0};
    EBMC_TRY(ebmc_copy(t->ctx, t->stats, z, sizeof z, EBMC_COPY_H2D));
    /* A = 0: the double zero is all-zero bytes, so a float fill of twice the count writes it */
    ebmc_fill_desc f = {2 * (size_t)t->N, 0.0f};
    return ebmc_fill(t->ctx, &f, (float *)t->logw);
}

/* ---- the Gaussian mixture as the recipe's energy (aux: the responsibilities) ---- */

typedef struct {
    jz_energy base;
    ebmc_gmm_t *m;
    double lr_means, lr_z;
} jz_gmm;

static ebmc_status gmm_eval(jz_energy *e, int n, const float *x, float *u, float *g, float *aux) {
    return ebmc_gmm_eval(((jz_gmm *)e)->m, n, x, u, g, aux);
}
static ebmc_status gmm_acc(jz_energy *e, int n, const float *x, const float *aux, const float *w, float scale,
                           float beta) {
    return ebmc_gmm_accumulate(((jz_gmm *)e)->m, n, x, aux, w, scale, beta);
}
static ebmc_status gmm_descend(jz_energy *e, int64_t epoch) {
    jz_gmm *g = (jz_gmm *)e;
    return ebmc_gmm_descend(g->m, g->lr_means, g->lr_z);
}
static ebmc_status gmm_init(jz_energy *e, int n, float *x, uint64_t seed) {
    return ebmc_gmm_sample(((jz_gmm *)e)->m, n, x, seed);
}
static double gmm_log_z(jz_energy *e) {
    ebmc_gmm_t *m = ((jz_gmm *)e)->m;
    float z[64];
    if (ebmc_gmm_fetch(m, NULL, z)) return NAN;
    return ebmc_gmm_log_z(z, ebmc_gmm_k(m), ebmc_gmm_dim(m));
}
static int gmm_ckpt_items(jz_energy *e, ebmc_ckpt_item *it, int max) {
    ebmc_gmm_t *m = ((jz_gmm *)e)->m;
    EBMC_ASSERT(max >= 2);
    it[0] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F32, .name = "gmm.means", .ptr = ebmc_gmm_means(m),
                             .count = (size_t)ebmc_gmm_k(m) * ebmc_gmm_dim(m), .device = true, .shared = true};
    it[1] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F32, .name = "gmm.z", .ptr = ebmc_gmm_z(m),
                             .count = (size_t)ebmc_gmm_k(m), .device = true, .shared = true};
    return 2;
}
static void gmm_destroy(jz_energy *e) {
    ebmc_gmm_free(((jz_gmm *)e)->m);
    free(e);
}

static ebmc_status energy_gmm(jz_t *t, int most) {
    jz_gmm *g = calloc(1, sizeof *g);
    if (!g) return EBMC_E_NOMEM;
    g->base = (jz_energy){gmm_eval, gmm_acc, gmm_descend, gmm_init, gmm_log_z, gmm_ckpt_items, gmm_destroy,
                          (size_t)t->c.dim, t->c.k, false, t->c.dim, 1, 1};
    g->lr_means = t->c.lr_means, g->lr_z = t->c.lr_z;
    ebmc_status s = ebmc_gmm_create(t->ctx, t->c.k, t->c.dim, most, t->seed ^ STREAM_PARAM, &g->m);
    if (s) {
        free(g);
        return s;
    }
    t->E = &g->base;
    t->model = g->m;
    return EBMC_OK;
}

static ebmc_status jz_setup(void *state, const void *typed, const ebmc_recipe_env *env, char *err, size_t errlen) {
    jz_t *t = state;
    t->c = *(const jz_cfg *)typed;
    t->ctx = env->ctx, t->seed = env->seed, t->B = env->batch;
    t->k = t->c.gmm ? t->c.k : 1; /* walkers: a data-parallel rank weighs and resamples its share */
    EBMC_TRY(ebmc_env_share(env, t->c.walkers, "jarzynski.walkers", &t->N, err, errlen));
    int most = t->N > t->B ? t->N : t->B, dc, dh, dw;
    jz_data_shape(&t->c, &dc, &dh, &dw);
    if (env->has_data && (env->data_c != dc || env->data_h != dh || env->data_w != dw)) {
        snprintf(err, errlen, "data %s gives %dx%dx%d examples but model.arch %s needs %dx%dx%d (HINT: gmm: "
                 "data.dataset = gmm and data.dim = model.dim)", env->data_name, env->data_c, env->data_h,
                 env->data_w, t->c.arch, dc, dh, dw);
        return EBMC_E_INVALID;
    }
    ebmc_status s;
    if (t->c.gmm) {
        s = energy_gmm(t, most);
    } else {
        jz_net_cfg nc = {t->c.arch, t->c.width, most, t->B, t->c.lr, t->c.beta1, t->c.beta2, t->seed + 101,
                         t->c.lr_decay_epochs, t->c.grad_clip, t->c.l2};
        s = jz_energy_net(t->ctx, &nc, &t->E, err, errlen);
        if (s) return s;
    }
    if (!s) t->dim = (int)t->E->elems, t->aux = t->E->aux_elems;
    if (!s) s = alloc_all(t);
    if (!s) s = zero_weights(t);
    if (s) snprintf(err, errlen, "set-up: %s", s == EBMC_E_NOMEM ? "out of memory" : ebmc_ctx_error(t->ctx));
    return s;
}

/* ------------------------------------------------------------------ one iteration */

static uint64_t noise_seed(const jz_t *t) { return t->seed ^ ((uint64_t)t->restarts * 0x9E3779B97F4A7C15ull); }

static ebmc_status eval_walkers(jz_t *t, jz_walkers *w) {
    return t->E->eval(t->E, t->N, w->x, w->u, w->g, w->r);
}

/* walkers <- data points picked uniformly with replacement (the authors' multinomial over the
 * data set), from the current batch; their energies at the current theta; A = 0 */
static ebmc_status walkers_from_data(jz_t *t, int64_t it) {
    uint32_t rank_key = ebmc_ctx_chain_base(t->ctx, 1); /* 0 in one process; a rank's own picks */
    for (int i = 0; i < t->N; i += 4) {
        float u[4];
        ebmc_philox_uniform4(noise_seed(t), (uint32_t)(i / 4), rank_key, (uint32_t)it, STREAM_DATAPICK, u);
        for (int l = 0; l < 4 && i + l < t->N; l++) {
            int j = (int)(u[l] * (float)t->B);
            t->pick[i + l] = j < t->B ? j : t->B - 1;
        }
    }
    EBMC_TRY(ebmc_copy(t->ctx, t->idx, t->pick, (size_t)t->N * sizeof(int32_t), EBMC_COPY_H2D));
    ebmc_rows_desc gd = {t->N, (size_t)t->dim, t->B, t->N};
    EBMC_TRY(ebmc_rows_copy(t->ctx, &gd, t->x_data, t->idx, NULL, t->w[t->cur].x));
    EBMC_TRY(eval_walkers(t, &t->w[t->cur]));
    return zero_weights(t);
}

/* a second SIGINT/SIGTERM stops the walkers' loops between steps, as it stops the chains
 * (mcmc.c); the shell reports the iteration and exits 5 */
static ebmc_status stop_requested(void) { return ebmc_interrupt_level() >= 2 ? EBMC_E_INTERRUPTED : EBMC_OK; }

/* unweighted ULA at theta_0 (the authors' burn-in of image walkers started from noise) */
static ebmc_status burn_in(jz_t *t) {
    jz_walkers *a = &t->w[t->cur];
    for (int s = 0; s < t->c.init_steps; s++) {
        EBMC_TRY(stop_requested());
        EBMC_TRY(eval_walkers(t, a));
        ebmc_langevin_desc ld = {t->N, (size_t)t->dim, (float)t->c.h, 0, (float)t->c.sigma, 0, false, 0, 0,
                                 EBMC_NOISE_AFTER, {noise_seed(t), STREAM_INIT, NULL, (uint32_t)s}};
        EBMC_TRY(ebmc_langevin(t->ctx, &ld, a->x, a->g));
    }
    return EBMC_OK;
}

static ebmc_status init_walkers(jz_t *t, int64_t it) {
    t->ready = 1;
    t->log_z0 = t->E->log_z(t->E); /* NAN for an image EBM: its CE is logged up to log Z0 */
    if (t->c.init_data) return walkers_from_data(t, it);
    EBMC_TRY(t->E->init(t->E, t->N, t->w[t->cur].x, noise_seed(t) ^ STREAM_INIT));
    EBMC_TRY(burn_in(t));
    EBMC_TRY(eval_walkers(t, &t->w[t->cur]));
    return zero_weights(t);
}

/* 1-3: theta' = theta - lr (mean_data dU/dtheta - sum_i p_i dU/dtheta(X_i)) */
static ebmc_status update_params(jz_t *t, int64_t epoch) {
    ebmc_ctx_t *ctx = t->ctx;
    jz_walkers *w = &t->w[t->cur];
    jz_energy *E = t->E;
    EBMC_TRY(E->eval(E, t->B, t->x_data, t->u_data, NULL, t->r_data));
    ebmc_reduce_desc rd = {1, (size_t)t->B, EBMC_REDUCE_SUM, 0.0f};
    EBMC_TRY(ebmc_reduce(ctx, &rd, t->u_data, t->sum));
    EBMC_TRY(E->accumulate(E, t->B, t->x_data, t->r_data, NULL, 1.0f / t->B, 0.0f));
    if (t->c.weights) {
        ebmc_jz_stats_desc sd = {t->N, 1.0f};
        EBMC_TRY(ebmc_jz_stats(ctx, &sd, t->logw, t->stats, t->wts));
        if (t->c.trigger_start) { /* GMM.py: varian[i] from the weights before the move decides */
            double ess;
            EBMC_TRY(ebmc_copy(ctx, &ess, t->stats + 4, sizeof ess, EBMC_COPY_D2H));
            t->resample_due = ess / t->N < t->c.threshold;
        }
    } else {
        ebmc_fill_desc f = {(size_t)t->N, 1.0f / t->N};
        EBMC_TRY(ebmc_fill(ctx, &f, t->wts));
    }
    EBMC_TRY(E->accumulate(E, t->N, w->x, w->r, t->wts, -1.0f, 1.0f));
    return E->descend(E, epoch);
}

/* 4-5: ULA moves from the cached gradient (theta for the first step, theta' after), the new
 * energies at theta', the log-weight increment */
static ebmc_status move_walkers(jz_t *t) {
    ebmc_ctx_t *ctx = t->ctx;
    const size_t nd = (size_t)t->N * t->dim;
    const double h = t->c.h, sigma = t->c.sigma;
    for (int s = 0; s < t->c.steps; s++) {
        EBMC_TRY(stop_requested());
        jz_walkers *a = &t->w[t->cur], *b = &t->w[1 - t->cur];
        ebmc_axpby_desc cp = {nd, 1.0f, 0.0f};
        EBMC_TRY(ebmc_axpby(ctx, &cp, a->x, b->x));
        ebmc_langevin_desc ld = {t->N, (size_t)t->dim, (float)h, 0, (float)sigma, 0, false, 0, 0, EBMC_NOISE_AFTER,
                                 {noise_seed(t), STREAM_ULA, NULL, (uint32_t)t->ula_step++}};
        EBMC_TRY(ebmc_langevin(ctx, &ld, b->x, a->g));
        EBMC_TRY(eval_walkers(t, b));
        if (t->c.weights) {
            ebmc_jz_logw_desc jd = {t->N, (size_t)t->dim, EBMC_JZ_ULA, h, sigma};
            EBMC_TRY(ebmc_jz_logw(ctx, &jd, a->x, b->x, a->u, a->g, b->u, b->g, t->logw));
        }
        t->cur = 1 - t->cur;
    }
    return EBMC_OK;
}

/* 6: the statistics after the move (kept for the report), then resampling when ESS/N is below
 * the threshold; every cached per-walker row follows its ancestor (identity otherwise) */
static ebmc_status resample_walkers(jz_t *t, int64_t it) {
    ebmc_ctx_t *ctx = t->ctx;
    ebmc_jz_stats_desc sd = {t->N, 1.0f};
    EBMC_TRY(ebmc_jz_stats(ctx, &sd, t->logw, t->stats, NULL));
    EBMC_TRY(ebmc_copy(ctx, t->stats_pre, t->stats, EBMC_JZ_STATS_LEN * sizeof(double), EBMC_COPY_D2D));
    /* trigger = start: the decision of the weights before the move (threshold 2: always, 0: never) */
    double th = t->c.trigger_start ? (t->resample_due ? 2.0 : 0.0) : t->c.threshold;
    ebmc_jz_resample_desc rd = {t->N, t->c.scheme, th, {noise_seed(t), STREAM_RESAMPLE, NULL, (uint32_t)it}};
    EBMC_TRY(ebmc_jz_resample(ctx, &rd, t->logw, t->stats, t->cdf, t->idx));
    jz_walkers *a = &t->w[t->cur], *b = &t->w[1 - t->cur];
    float *src[4] = {a->x, a->u, a->g, a->r}, *dst[4] = {b->x, b->u, b->g, b->r};
    size_t row[4] = {(size_t)t->dim, 1, (size_t)t->dim, (size_t)t->aux};
    for (int i = 0; i < (t->aux ? 4 : 3); i++) {
        ebmc_rows_desc gd = {t->N, row[i], t->N, t->N};
        EBMC_TRY(ebmc_rows_copy(ctx, &gd, src[i], t->idx, NULL, dst[i]));
    }
    t->cur = 1 - t->cur;
    return EBMC_OK;
}

static ebmc_status jz_iteration(void *state, const float *batch, int64_t it, int64_t epoch, bool grids) {
    jz_t *t = state;
    ebmc_ctx_t *ctx = t->ctx;
    EBMC_RANGE_PUSH("jz_iteration");
    ebmc_status s = ebmc_copy(ctx, t->x_data, batch, (size_t)t->B * t->dim * sizeof(float), EBMC_COPY_H2D);
    if (!s && t->c.data_noise > 0) { /* the CIFAR-10 notebook's real_imgs + N(0, 0.03^2) */
        ebmc_rng_desc r = {t->B, (size_t)t->dim, EBMC_RNG_NORMAL, 0.0f, (float)t->c.data_noise, true,
                           {noise_seed(t), STREAM_DATANOISE, NULL, (uint32_t)it}};
        s = ebmc_rng(ctx, &r, t->x_data);
    }
    if (!s && !t->ready) s = init_walkers(t, it);
    if (!s) s = update_params(t, epoch);
    if (!s) s = move_walkers(t);
    if (!s && t->c.weights) s = resample_walkers(t, it);
    if (!s && t->c.reset_every > 0 && (it - 1) % t->c.reset_every == 0) s = walkers_from_data(t, it);
    if (!s && !t->c.weights) s = ebmc_copy(ctx, t->stats_pre, t->stats, EBMC_JZ_STATS_LEN * sizeof(double), EBMC_COPY_D2D);
    /* the metrics: one synchronisation per iteration */
    if (!s) s = ebmc_copy(ctx, t->hstats, t->stats, sizeof t->hstats, EBMC_COPY_D2H);
    if (!s) s = ebmc_copy(ctx, t->hpre, t->stats_pre, sizeof t->hpre, EBMC_COPY_D2H);
    if (!s) s = ebmc_copy(ctx, &t->hsum, t->sum, sizeof(float), EBMC_COPY_D2H);
    if (!s && t->model) s = ebmc_gmm_fetch(t->model, t->hmeans, t->hz);
    EBMC_RANGE_POP();
    return s;
}

/* ------------------------------------------------------------------ what the shell reads */

/* the Gaussian mixture's exact quantities: the mass and place of its modes, the exact CE */
static void report_gmm(jz_t *t, double u_data, ebmc_report *r) {
    double p[64], log_z = ebmc_gmm_log_z(t->hz, t->k, t->dim);
    ebmc_gmm_masses(t->hz, t->k, p);
    int lo = 0, hi = 0; /* the components with the lowest / highest first coordinate */
    for (int c = 1; c < t->k; c++) {
        if (t->hmeans[(size_t)c * t->dim] < t->hmeans[(size_t)lo * t->dim]) lo = c;
        if (t->hmeans[(size_t)c * t->dim] > t->hmeans[(size_t)hi * t->dim]) hi = c;
    }
    ebmc_report_add(r, "mass_low", p[lo], false);
    ebmc_report_add(r, "mean_low_x1", t->hmeans[(size_t)lo * t->dim], false);
    ebmc_report_add(r, "mean_high_x1", t->hmeans[(size_t)hi * t->dim], false);
    ebmc_report_add(r, "z_last", t->hz[t->k - 1], false);
    ebmc_report_add(r, "ce_exact", log_z + u_data, true);
    ebmc_report_add(r, "log_z", log_z, false);
    snprintf(r->progress, sizeof r->progress, "p(low) %.3f CE %.4f ESS/N %.2f", p[lo], log_z + u_data,
             t->hpre[4] / t->N);
}

static void jz_report(void *state, int64_t epoch, ebmc_report *r) {
    jz_t *t = state;
    double u_data = t->hsum / t->B;
    if (t->model) report_gmm(t, u_data, r);
    /* log Zhat = log Z_theta0 + the resamplings' log means + log mean e^A; Z0 is exact for the
     * mixture, unknown for an image EBM (there: ce_est - log Z0) */
    double z0 = isfinite(t->log_z0) ? t->log_z0 : 0, log_zhat = z0 + t->hstats[5] + t->hstats[3];
    ebmc_report_add(r, "e_data", u_data, !t->model);
    ebmc_report_add(r, "ce_est", t->c.weights ? log_zhat + u_data : NAN, false);
    ebmc_report_add(r, "log_zhat", t->c.weights ? log_zhat : NAN, false);
    ebmc_report_add(r, "ess_frac", t->c.weights ? t->hpre[4] / t->N : NAN, false);
    ebmc_report_add(r, "cv2", t->c.weights ? t->N / t->hpre[4] - 1 : NAN, false);
    ebmc_report_add(r, "resamplings", t->hstats[6], false);
    r->images = t->B;
    r->chain_steps = (double)t->N * t->c.steps;
    if (!t->model)
        snprintf(r->progress, sizeof r->progress, "E(data) %.4g ESS/N %.2f resamplings %.0f", u_data,
                 t->hpre[4] / t->N, t->hstats[6]);
}

/* theta, the walkers (positions and cached energies and gradients), the float64
 * log-weights and statistics (log Z bookkeeping, resampling count), the noise counter */
static int jz_ckpt_items(void *state, ebmc_ckpt_item *it, int max) {
    jz_t *t = state;
    const size_t N = (size_t)t->N;
    int n = t->E->ckpt_items(t->E, it, max);
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F32, .name = "walkers.x", .ptr = t->w[t->cur].x,
                               .count = N * t->dim, .device = true};
    /* the cached U, grad U (and aux) of the walkers: recomputing them on load would not be bit-exact
     * for a net, whose per-sample results depend on the chunk a walker is evaluated in */
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F32, .name = "walkers.u", .ptr = t->w[t->cur].u, .count = N,
                               .device = true};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F32, .name = "walkers.grad", .ptr = t->w[t->cur].g,
                               .count = N * t->dim, .device = true};
    if (t->aux)
        it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F32, .name = "walkers.aux", .ptr = t->w[t->cur].r,
                                   .count = N * t->aux, .device = true};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F64, .name = "walkers.logw", .ptr = t->logw, .count = N, .device = true};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F64, .name = "walkers.stats", .ptr = t->stats,
                               .count = EBMC_JZ_STATS_LEN, .device = true};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F64, .name = "walkers.log_z0", .ptr = &t->log_z0, .count = 1};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "walkers.ula_step", .ptr = &t->ula_step, .lo = 0,
                               .hi = UINT32_MAX};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "walkers.ready", .ptr = &t->ready, .lo = 0, .hi = 1};
    EBMC_ASSERT(n <= max);
    return n;
}

static void jz_reseed(void *state, uint32_t restarts) { ((jz_t *)state)->restarts = restarts; }

static const char *const JZ_SAMPLE_NAMES[] = {"model", NULL};

/* gmm: exact draws from the learned mixture; an image EBM: the first n walkers (resampled by
 * their weights when they carry any: jz_resample leaves them unweighted) */
static ebmc_status jz_sample(void *state, const ebmc_sample_opts *o, float **outs, char *desc, size_t desclen,
                             char *err, size_t errlen) {
    jz_t *t = state;
    size_t bytes = (size_t)o->n * t->dim * sizeof(float);
    if (!t->model) {
        if (o->n > t->N) {
            snprintf(err, errlen, "sampling: %d samples asked, the run has %d walkers", o->n, t->N);
            return EBMC_E_INVALID;
        }
        snprintf(desc, desclen, "the first %d of %d persistent walkers", o->n, t->N);
        ebmc_status s = ebmc_copy(t->ctx, outs[0], t->w[t->cur].x, bytes, EBMC_COPY_D2H);
        if (s) snprintf(err, errlen, "sampling: %s", ebmc_ctx_error(t->ctx));
        return s;
    }
    float *dev = NULL;
    ebmc_status s = ebmc_alloc(t->ctx, (void **)&dev, bytes);
    if (!s) s = ebmc_gmm_sample(t->model, o->n, dev, o->seed);
    if (!s) s = ebmc_copy(t->ctx, outs[0], dev, bytes, EBMC_COPY_D2H);
    if (dev) ebmc_free(t->ctx, dev);
    if (s) snprintf(err, errlen, "sampling: %s", ebmc_ctx_error(t->ctx));
    snprintf(desc, desclen, "exact draws from the learned %d-component mixture", t->k);
    return s;
}

static int jz_grids(void *state, ebmc_grid *g, int max) {
    jz_t *t = state;
    if (!t->E || !t->E->is_image || max < 2) return 0;
    int n = t->N < 64 ? t->N : 64, nb = t->B < 64 ? t->B : 64;
    g[0] = (ebmc_grid){"walkers", t->w[t->cur].x, n, t->E->c, t->E->h, t->E->w};
    g[1] = (ebmc_grid){"data", t->x_data, nb, t->E->c, t->E->h, t->E->w};
    return 2;
}

static void jz_sample_shape(void *state, int *c, int *h, int *w) {
    jz_t *t = state;
    *c = t->E->c, *h = t->E->h, *w = t->E->w;
}

static int jz_plan(void *state, ebmc_plan_row *rows, int max) {
    jz_t *t = state;
    const size_t N = (size_t)t->N, D = (size_t)t->dim, K = (size_t)t->aux, B = (size_t)t->B;
    EBMC_ASSERT(max >= 2);
    size_t np = t->model ? (size_t)t->k * D + (size_t)t->k : 0;
    rows[0] = (ebmc_plan_row){.name = t->model ? "gmm" : "E", .params = np};
    rows[0].param_bytes = rows[0].grad_bytes = np * sizeof(float);
    rows[1] = (ebmc_plan_row){.name = "walkers"};
    /* two copies of x, u, grad, resp; log-weights, CDF; ancestors, weights; the data batch */
    rows[1].other_bytes = 2 * N * (2 * D + 1 + K) * sizeof(float) + 2 * N * sizeof(double) + 2 * N * 4 +
                          B * (D + 1 + K) * sizeof(float) + 2 * EBMC_JZ_STATS_LEN * sizeof(double);
    return 2;
}

/* `ebmc score`: the energy U the walkers descend, through the energy's own eval (the GMM:
 * U(x) = -log sum_k exp(-|x - a_k|^2/2 - z_k), analytic; an image EBM: E, or -f for the shortrun
 * net, which outputs the score f: jarzynski_net.c), batches of at most B through the data buffer */
static ebmc_status jz_score_energy(void *state, const float *x, int n, float *e, char *err, size_t errlen) {
    jz_t *t = state;
    ebmc_status s = EBMC_OK;
    for (int done = 0; !s && done < n; done += t->B) {
        int take = n - done < t->B ? n - done : t->B;
        s = ebmc_copy(t->ctx, t->x_data, x + (size_t)done * t->dim, (size_t)take * t->dim * sizeof(float),
                      EBMC_COPY_H2D);
        if (!s) s = t->E->eval(t->E, take, t->x_data, t->u_data, NULL, NULL);
        if (!s) s = ebmc_copy(t->ctx, e + done, t->u_data, (size_t)take * sizeof(float), EBMC_COPY_D2H);
    }
    if (!s) s = ebmc_sync(t->ctx);
    if (s) snprintf(err, errlen, "energy: %s", ebmc_ctx_error(t->ctx));
    return s;
}

const ebmc_recipe ebmc_recipe_jarzynski = {
    .name = "jarzynski",
    .summary = "Jarzynski-weighted Langevin with SMC resampling (Carbone et al., NeurIPS 2023); PCD/CD as switches",
    .precision = EBMC_PREC_FP32, /* log-weight increments U_old - U_new (float64 sums of fp32 energies) */
    .keys = JZ_KEYS,
    .n_keys = (int)(sizeof JZ_KEYS / sizeof JZ_KEYS[0]),
    .config_size = sizeof(jz_cfg),
    .state_size = sizeof(jz_t),
    .parse = jz_parse,
    .data_shape = jz_data_shape,
    .setup = jz_setup,
    .iteration = jz_iteration,
    .report = jz_report,
    .ckpt_items = jz_ckpt_items,
    .reseed = jz_reseed,
    .grids = jz_grids,
    .sample_names = JZ_SAMPLE_NAMES,
    .sample = jz_sample,
    .sample_shape = jz_sample_shape,
    .plan = jz_plan,
    .destroy = jz_destroy,
    .energy = jz_score_energy,
};
