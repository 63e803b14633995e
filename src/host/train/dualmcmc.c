/* Dual-MCMC teaching (Cui & Han 2023), specs/teaching.md section 1, following the authors'
 * code where it and the paper differ (the config comments say where):
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
 * exactly is in its checkpoints. */
#include "ebmc/checkpoint.h"
#include "ebmc/data.h"
#include "ebmc/fileio.h"
#include "ebmc/image.h"
#include "ebmc/log.h"
#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/nvtx.h"
#include "ebmc/optim.h"
#include "ebmc/safetensors.h"
#include "ebmc/train.h"
#include "train/train_internal.h"
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { STREAM_X = 1, STREAM_Z = 3, STREAM_PRIOR = 4, STREAM_EPS = 5, STREAM_SAMPLE = 7 };

static volatile sig_atomic_t g_stop = 0; /* the one process-wide flag a signal handler may set */
static void on_signal(int sig) { g_stop = sig; }

#define TRYS(call)                                                                              \
    do {                                                                                        \
        ebmc_status s_ = (call);                                                                \
        if (s_ != EBMC_OK) return s_;                                                           \
    } while (0)

/* ------------------------------------------------------------------ set-up */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int mkdir_p(const char *path) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
    return 0;
}

ebmc_status dm_model_cfg(const ebmc_config_t *cfg, ebmc_model_cfg *mc, char *err, size_t errlen) {
    const char *arch = ebmc_config_str(cfg, "model", "arch");
    if (!ebmc_model_defaults(arch, mc)) {
        snprintf(err, errlen, "model.arch: unknown architecture '%s'", arch);
        return EBMC_E_INVALID;
    }
    if (ebmc_config_int(cfg, "model", "nz")) mc->nz = (int)ebmc_config_int(cfg, "model", "nz");
    if (ebmc_config_int(cfg, "model", "ngf")) mc->ngf = (int)ebmc_config_int(cfg, "model", "ngf");
    if (ebmc_config_int(cfg, "model", "ndf")) mc->ndf = (int)ebmc_config_int(cfg, "model", "ndf");
    if (ebmc_config_int(cfg, "model", "nif")) mc->nif = (int)ebmc_config_int(cfg, "model", "nif");
    if (ebmc_config_int(cfg, "model", "hidden")) mc->hidden = (int)ebmc_config_int(cfg, "model", "hidden");
    return EBMC_OK;
}

ebmc_status dm_open_data(const ebmc_config_t *cfg, ebmc_dataset_t **ds, char *err, size_t errlen) {
    const char *kind = ebmc_config_str(cfg, "data", "dataset");
    const char *path = ebmc_config_str(cfg, "data", "path");
    uint64_t seed = (uint64_t)ebmc_config_int(cfg, "run", "seed");
    int size = (int)ebmc_config_int(cfg, "data", "size");
    int count = (int)ebmc_config_int(cfg, "data", "count");
    bool needs_path = !strcmp(kind, "cifar10") || !strcmp(kind, "mnist") || !strcmp(kind, "images");
    if (needs_path && !*path) {
        snprintf(err, errlen, "data.path is required for data.dataset = %s (HINT: scripts/download_%s.sh "
                 "fetches it; then pass data.path=DIR)", kind, !strcmp(kind, "images") ? "celeba" : kind);
        return EBMC_E_INVALID;
    }
    if (!strcmp(kind, "shapes")) return ebmc_data_shapes(count, size, seed, ds, err, errlen);
    if (!strcmp(kind, "cifar10")) return ebmc_data_cifar10(path, true, ds, err, errlen);
    if (!strcmp(kind, "mnist"))
        return ebmc_data_mnist(path, true, (int)ebmc_config_int(cfg, "data", "mnist_pad"), ds, err, errlen);
    if (!strcmp(kind, "toy2d")) return ebmc_data_toy2d(ebmc_config_str(cfg, "data", "toy"), count, seed, ds, err, errlen);
    /* images */
    float box[4];
    const char *crop = ebmc_config_str(cfg, "data", "crop");
    bool has_box = *crop != 0;
    if (has_box && sscanf(crop, "%f,%f,%f,%f", &box[0], &box[1], &box[2], &box[3]) != 4) {
        snprintf(err, errlen, "data.crop: expected x0,y0,x1,y1, got '%s'", crop);
        return EBMC_E_INVALID;
    }
    char cache[PATH_MAX];
    const char *c = ebmc_config_str(cfg, "data", "cache");
    if (*c) snprintf(cache, sizeof cache, "%s", c);
    else {
        size_t n = strlen(path);
        while (n > 1 && path[n - 1] == '/') n--;
        snprintf(cache, sizeof cache, "%.*s.ebmc-%d.cache", (int)n, path, size);
    }
    return ebmc_data_images(path, size, has_box ? box : NULL, cache, false, ds, err, errlen);
}

void dm_free(dm_t *t) {
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
        if (t->ctx) ebmc_free(t->ctx, bufs[i]);
    ebmc_net_free(t->E);
    ebmc_net_free(t->G);
    ebmc_net_free(t->I);
    ebmc_loader_free(t->loader);
    ebmc_data_free(t->ds);
    free(t->host_x);
    free(t->host_img);
    if (t->ctx) ebmc_ctx_free(t->ctx);
    memset(t, 0, sizeof *t);
}

static ebmc_langevin_params x_params(const ebmc_config_t *cfg) {
    return ebmc_langevin_dualmcmc_x((float)ebmc_config_float(cfg, "langevin_x", "step_size"),
                                    (float)ebmc_config_float(cfg, "langevin_x", "noise"),
                                    (int)ebmc_config_int(cfg, "langevin_x", "steps"));
}

/* Builds everything from the config (fresh weights from run.seed). */
ebmc_status dm_setup(dm_t *t, ebmc_config_t *cfg, bool need_data, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->seed = (uint64_t)ebmc_config_int(cfg, "run", "seed");
    ebmc_ctx_opts o = ebmc_ctx_opts_default();
    const char *be = ebmc_config_str(cfg, "run", "backend");
    o.kind = !strcmp(be, "cpu") ? EBMC_BACKEND_CPU : !strcmp(be, "cuda") ? EBMC_BACKEND_CUDA : EBMC_BACKEND_AUTO;
    o.device = (int)ebmc_config_int(cfg, "run", "device");
    o.precision = !strcmp(ebmc_config_str(cfg, "run", "precision"), "fp32") ? EBMC_PREC_FP32 : EBMC_PREC_TF32;
    o.deterministic = true; /* as the reference (cudnn.deterministic = True); resume is exact */
    ebmc_status s = ebmc_ctx_create(&o, &t->ctx, err, errlen);
    if (s) return s;
    s = dm_model_cfg(cfg, &t->mc, err, errlen);
    if (s) return s;
    t->B = (int)ebmc_config_int(cfg, "train", "batch_size");
    if (need_data) {
        s = dm_open_data(cfg, &t->ds, err, errlen);
        if (s) return s;
        int c, h, w;
        ebmc_data_shape(t->ds, &c, &h, &w);
        if (c != t->mc.img_c || h != t->mc.img_size || w != t->mc.img_size) {
            snprintf(err, errlen, "data %s gives %dx%dx%d examples but model.arch %s needs %dx%dx%d "
                     "(HINT: data.size, data.mnist_pad or another model.arch)", ebmc_data_name(t->ds), c, h, w,
                     t->mc.arch, t->mc.img_c, t->mc.img_size, t->mc.img_size);
            return EBMC_E_INVALID;
        }
        ebmc_loader_opts lo = {true, ebmc_config_bool(cfg, "data", "hflip"), true};
        s = ebmc_loader_create(t->ds, t->B, t->seed, lo, &t->loader, err, errlen);
        if (s) return s;
    }
    ebmc_net_t **nets[3] = {&t->E, &t->G, &t->I};
    for (int r = 0; r < 3; r++) {
        *nets[r] = ebmc_model_build(&t->mc, (ebmc_net_role)r, err, errlen);
        if (!*nets[r]) return EBMC_E_INVALID;
        s = ebmc_net_finalize(*nets[r], t->ctx, true, t->seed + 101 * (uint64_t)(r + 1));
        if (s) {
            snprintf(err, errlen, "%s", ebmc_net_error(*nets[r]));
            return s;
        }
    }
    t->nz = t->mc.nz;
    t->img = (size_t)t->mc.img_c * t->mc.img_size * t->mc.img_size;
    double b2 = ebmc_config_float(cfg, "train", "beta2");
    ebmc_adam_cfg ae = {ebmc_config_float(cfg, "train", "lr_e"), ebmc_config_float(cfg, "train", "beta1_e"), b2, 1e-8,
                        ebmc_config_float(cfg, "train", "wd_e"), ebmc_config_float(cfg, "train", "gamma_e")};
    ebmc_adam_cfg ag = {ebmc_config_float(cfg, "train", "lr_g"), ebmc_config_float(cfg, "train", "beta1_g"), b2, 1e-8,
                        ebmc_config_float(cfg, "train", "wd_g"), ebmc_config_float(cfg, "train", "gamma_g")};
    ebmc_adam_cfg ai = {ebmc_config_float(cfg, "train", "lr_i"), ebmc_config_float(cfg, "train", "beta1_i"), b2, 1e-8,
                        ebmc_config_float(cfg, "train", "wd_i"), ebmc_config_float(cfg, "train", "gamma_i")};
    int B = t->B;
    ebmc_ctx_t *ctx = t->ctx;
#define CK(call)                                                                                \
    do {                                                                                        \
        s = (call);                                                                             \
        if (s) {                                                                                \
            snprintf(err, errlen, "set-up: %s", ebmc_ctx_error(ctx));                           \
            return s;                                                                           \
        }                                                                                       \
    } while (0)
    CK(ebmc_adam_create(t->E, &ae, &t->oE));
    CK(ebmc_adam_create(t->G, &ag, &t->oG));
    CK(ebmc_adam_create(t->I, &ai, &t->oI));
    /* tapes: every activation of the iteration, planned once */
    CK(ebmc_tape_create(t->G, B, true, &t->tG));
    CK(ebmc_tape_create(t->G, B, true, &t->tGr));
    CK(ebmc_tape_create(t->I, B, true, &t->tIr));
    CK(ebmc_tape_create(t->I, B, true, &t->tIf));
    CK(ebmc_tape_create(t->E, B, true, &t->tEr));
    CK(ebmc_tape_create(t->E, B, true, &t->tEf));
    /* chains */
    t->kx = (int)ebmc_config_int(cfg, "langevin_x", "steps");
    t->kz = (int)ebmc_config_int(cfg, "langevin_z", "steps");
    CK(ebmc_potential_energy(t->E, B, 1.0f, &t->px));
    CK(ebmc_potential_energy_trace(t->px, t->kx));
    float sigma = (float)ebmc_config_float(cfg, "langevin_z", "sigma");
    CK(ebmc_potential_latent(t->G, B, 2.0f / (sigma * sigma), &t->pz));
    ebmc_langevin_params px = x_params(cfg);
    ebmc_langevin_params pz = ebmc_langevin_dualmcmc_z((float)ebmc_config_float(cfg, "langevin_z", "step_size"),
                                                       (float)ebmc_config_float(cfg, "langevin_z", "prior_sigma"), t->kz);
    pz.c = (float)ebmc_config_float(cfg, "langevin_z", "noise");
    if (pz.c == 0) pz.noise = EBMC_NOISE_OFF;
    CK(ebmc_chain_create(t->px, &px, B, t->seed, STREAM_X, &t->cx));
    CK(ebmc_chain_create(t->pz, &pz, B, t->seed, STREAM_Z, &t->cz));
    bool graphs = ebmc_config_bool(cfg, "run", "graphs");
    ebmc_chain_set_graph(t->cx, graphs);
    ebmc_chain_set_graph(t->cz, graphs);
    double tau = ebmc_config_float(cfg, "langevin_x", "noise"), sx = ebmc_config_float(cfg, "langevin_x", "step_size");
    t->T = ebmc_config_bool(cfg, "train", "use_temp") && tau > 0 ? (tau / sx) * (tau / sx) : 1.0;
    /* buffers */
    size_t nimg = (size_t)B * t->img, nzb = (size_t)B * t->nz;
    float **bufs[] = {&t->x_real, &t->gen, &t->dyG, &t->dyG2};
    for (int i = 0; i < 4; i++) CK(ebmc_alloc(ctx, (void **)bufs[i], nimg * sizeof(float)));
    float **zb[] = {&t->z, &t->dmu, &t->dlv};
    for (int i = 0; i < 3; i++) CK(ebmc_alloc(ctx, (void **)zb[i], nzb * sizeof(float)));
    CK(ebmc_alloc(ctx, (void **)&t->dyE, (size_t)B * sizeof(float)));
    CK(ebmc_alloc(ctx, (void **)&t->rowloss, (size_t)B * sizeof(float)));
    CK(ebmc_alloc(ctx, (void **)&t->metrics, 64 * sizeof(float)));
    t->host_x = ebmc_xmalloc(nimg * sizeof(float), "batch");
    t->host_img = ebmc_xmalloc(nimg * sizeof(float), "grid");
#undef CK
    ebmc_ctx_freeze_workspace(ctx); /* planned: from here on nothing allocates */
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

/* NVTX: dm_iteration opens "dm_iteration" and one range per phase (sample, update_G, update_I,
 * update_E; the chains, passes and Adam steps nest inside them); PHASE closes the previous phase
 * and opens the next, and TRYI closes every open range before returning an error. */
#define PHASE(name)                                                                             \
    do {                                                                                        \
        if (open > 1) {                                                                         \
            EBMC_RANGE_POP();                                                                   \
            open--;                                                                             \
        }                                                                                       \
        EBMC_RANGE_PUSH(name);                                                                  \
        open++;                                                                                 \
    } while (0)
#define TRYI(call)                                                                              \
    do {                                                                                        \
        ebmc_status s_ = (call);                                                                \
        if (s_ != EBMC_OK) {                                                                    \
            while (open-- > 0) EBMC_RANGE_POP();                                                \
            return s_;                                                                          \
        }                                                                                       \
    } while (0)

ebmc_status dm_iteration(dm_t *t, int64_t it, int64_t epoch, bool keep_gen) {
    ebmc_ctx_t *ctx = t->ctx;
    const ebmc_config_t *cfg = t->cfg;
    int B = t->B;
    size_t nimg = (size_t)B * t->img;
    float gf = (float)ebmc_config_float(cfg, "train", "g_factor");
    float ls = (float)ebmc_config_float(cfg, "train", "lambda_s");
    float li = (float)ebmc_config_float(cfg, "train", "lambda_i");
    uint64_t seed = t->seed ^ ((uint64_t)t->restarts * 0x9E3779B97F4A7C15ull);
    float *M = t->metrics;
    float *xs = ebmc_chain_state(t->cx), *zs = ebmc_chain_state(t->cz);
    int open = 0; /* NVTX ranges open: "dm_iteration" and the current phase */
    EBMC_RANGE_PUSH("dm_iteration");
    open++;
    PHASE("sample");

    TRYI(ebmc_copy(ctx, t->x_real, t->host_x, nimg * sizeof(float), EBMC_COPY_H2D));
    /* 1-2. z ~ N(0, I); x0 = G(z); x~ = LangevinX(x0) */
    ebmc_rng_key kz = {seed, STREAM_PRIOR, NULL, (uint32_t)it};
    TRYI(ebmc_init_normal(ctx, t->z, B, (size_t)t->nz, 1.0f, kz));
    TRYI(ebmc_net_forward(t->G, t->tG, B, t->z));
    TRYI(copy_f(ctx, xs, ebmc_tape_output(t->tG, 0), nimg, 1.0f));
    TRYI(ebmc_chain_run(t->cx, B));
    const float *tr = ebmc_potential_trace(t->px);
    TRYI(copy_f(ctx, M + M_EX0, tr, 1, 1.0f));
    TRYI(copy_f(ctx, M + M_EX1, tr + t->kx - 1, 1, 1.0f));
    /* 3. (mu, logvar) = I(x); z0 reparameterised; z~ = LangevinZ(z0; G, x) */
    TRYI(ebmc_net_forward(t->I, t->tIr, B, t->x_real));
    const float *mu = ebmc_tape_output(t->tIr, 0), *lv = ebmc_tape_output(t->tIr, 1);
    ebmc_rng_key ke = {seed, STREAM_EPS, NULL, (uint32_t)it};
    TRYI(ebmc_init_reparam(ctx, zs, mu, lv, B, (size_t)t->nz, 0.5f, ke));
    TRYI(copy_f(ctx, ebmc_potential_latent_target(t->pz), t->x_real, nimg, 1.0f));
    TRYI(ebmc_chain_run(t->cz, B));
    /* 4. G update */
    PHASE("update_G");
    TRYI(ebmc_net_zero_grad(t->G));
    TRYI(ebmc_net_forward(t->G, t->tGr, B, zs));
    ebmc_scaled_diff_desc sd = {nimg, 1.0f, 0.0f};
    TRYI(ebmc_scaled_diff(ctx, &sd, ebmc_tape_output(t->tGr, 0), t->x_real, t->dyG));
    TRYI(sumto(ctx, t->dyG, nimg, EBMC_REDUCE_SUMSQ, M + M_RECON));
    TRYI(copy_f(ctx, t->dyG, t->dyG, nimg, 2.0f * gf / B));
    const float *dy1[1] = {t->dyG};
    TRYI(ebmc_net_backward(t->G, t->tGr, dy1, EBMC_GRAD_FULL, NULL, 0.0f));
    TRYI(ebmc_scaled_diff(ctx, &sd, ebmc_tape_output(t->tG, 0), xs, t->dyG2));
    TRYI(sumto(ctx, t->dyG2, nimg, EBMC_REDUCE_SUMSQ, M + M_SAMPLE));
    TRYI(copy_f(ctx, t->dyG2, t->dyG2, nimg, 2.0f * ls / B));
    const float *dy2[1] = {t->dyG2};
    TRYI(ebmc_net_backward(t->G, t->tG, dy2, EBMC_GRAD_FULL, NULL, 0.0f));
    TRYI(ebmc_adam_step(t->oG, epoch));
    TRYI(ebmc_net_forward(t->E, t->tEr, B, t->x_real)); /* the code's logging `et` (advances SN) */
    TRYI(sumto(ctx, ebmc_tape_output(t->tEr, 0), (size_t)B, EBMC_REDUCE_SUM, M + M_ETLOG));
    /* 5. I update */
    PHASE("update_I");
    TRYI(ebmc_net_zero_grad(t->I));
    ebmc_gauss_nll_desc nd = {B, (size_t)t->nz, 1e-6f, gf / B, 0.0f};
    TRYI(ebmc_gauss_nll(ctx, &nd, zs, mu, lv, t->rowloss, t->dmu, t->dlv));
    TRYI(sumto(ctx, t->rowloss, (size_t)B, EBMC_REDUCE_SUM, M + M_NLLQ));
    const float *dyi[2] = {t->dmu, t->dlv};
    TRYI(ebmc_net_backward(t->I, t->tIr, dyi, EBMC_GRAD_FULL, NULL, 0.0f));
    TRYI(ebmc_net_forward(t->I, t->tIf, B, xs));
    nd.scale = li / B;
    TRYI(ebmc_gauss_nll(ctx, &nd, t->z, ebmc_tape_output(t->tIf, 0), ebmc_tape_output(t->tIf, 1), t->rowloss,
                        t->dmu, t->dlv));
    TRYI(sumto(ctx, t->rowloss, (size_t)B, EBMC_REDUCE_SUM, M + M_NLLL));
    TRYI(ebmc_net_backward(t->I, t->tIf, dyi, EBMC_GRAD_FULL, NULL, 0.0f));
    TRYI(ebmc_adam_step(t->oI, epoch));
    /* 7 (begins). E update: E(x) comes before G_new(z) and the fine-tune chain, as in the
     * code (every E forward advances spectral norm's u, so the order matters) */
    PHASE("update_E");
    TRYI(ebmc_net_zero_grad(t->E));
    TRYI(ebmc_net_forward(t->E, t->tEr, B, t->x_real));
    TRYI(sumto(ctx, ebmc_tape_output(t->tEr, 0), (size_t)B, EBMC_REDUCE_SUM, M + M_ET));
    TRYI(fill_f(ctx, t->dyE, (size_t)B, (float)(1.0 / (B * t->T))));
    const float *dye[1] = {t->dyE};
    TRYI(ebmc_net_backward(t->E, t->tEr, dye, EBMC_GRAD_FULL, NULL, 0.0f));
    /* 6. x0' = G_new(z); x~' = LangevinX(x0') */
    TRYI(ebmc_net_forward(t->G, t->tG, B, t->z));
    TRYI(copy_f(ctx, xs, ebmc_tape_output(t->tG, 0), nimg, 1.0f));
    if (keep_gen) TRYI(copy_f(ctx, t->gen, xs, nimg, 1.0f));
    if (ebmc_config_bool(cfg, "train", "fine_tune")) {
        TRYI(ebmc_chain_run(t->cx, B));
        TRYI(copy_f(ctx, M + M_EGEN0, tr, 1, 1.0f));
        TRYI(copy_f(ctx, M + M_EGEN1, tr + t->kx - 1, 1, 1.0f));
    } else {
        TRYI(fill_f(ctx, M + M_EGEN0, 2, NAN));
    }
    /* 7 (cont.). E update: E(x~') and the step */
    TRYI(ebmc_net_forward(t->E, t->tEf, B, xs));
    TRYI(sumto(ctx, ebmc_tape_output(t->tEf, 0), (size_t)B, EBMC_REDUCE_SUM, M + M_EF));
    TRYI(fill_f(ctx, t->dyE, (size_t)B, (float)(-1.0 / (B * t->T))));
    TRYI(ebmc_net_backward(t->E, t->tEf, dye, EBMC_GRAD_FULL, NULL, 0.0f));
    TRYI(ebmc_adam_step(t->oE, epoch));
    /* one host synchronisation per iteration: the metrics */
    ebmc_status s = ebmc_copy(ctx, t->hmet, M, M_COUNT * sizeof(float), EBMC_COPY_D2H);
    while (open-- > 0) EBMC_RANGE_POP();
    return s;
}
#undef PHASE
#undef TRYI

/* ------------------------------------------------------------------ checkpoints */

static const char *NET_FILES[3] = {"E.safetensors", "G.safetensors", "I.safetensors"};

ebmc_status dm_save(dm_t *t, const char *ckpt_dir, int64_t it, int64_t lpos_epoch, int64_t lpos,
                    char *err, size_t errlen) {
    char tmp[PATH_MAX + 8], path[PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s.tmp", ckpt_dir);
    if (mkdir_p(tmp)) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return EBMC_E_IO;
    }
    char *cfg_json = ebmc_config_to_json(t->cfg);
    char its[32];
    snprintf(its, sizeof its, "%" PRId64, it);
    const char *meta[][2] = {{"iteration", its}, {"config", cfg_json ? cfg_json : "{}"}};
    ebmc_net_t *nets[3] = {t->E, t->G, t->I};
    ebmc_status s = EBMC_OK;
    for (int i = 0; i < 3 && !s; i++) {
        snprintf(path, sizeof path, "%s/%s", tmp, NET_FILES[i]);
        s = ebmc_net_save(nets[i], path, meta, 2, err, errlen);
    }
    /* optimiser, sampler and RNG state */
    if (!s) {
        ebmc_adam_t *opt[3] = {t->oE, t->oG, t->oI};
        const char *pre[3] = {"optE", "optG", "optI"};
        size_t tot = 0;
        for (int i = 0; i < 3; i++) tot += 2 * ebmc_adam_state_count(opt[i]);
        float *host = malloc((tot ? tot : 1) * sizeof(float));
        char names[3][3][160];
        int64_t steps[3], counters[8];
        ebmc_st_tensor st[16];
        int n = 0;
        size_t off = 0;
        for (int i = 0; i < 3 && !s && host; i++) {
            s = ebmc_adam_state_get(opt[i], pre[i], names[i], host + off, &steps[i], st + n);
            off += 2 * ebmc_adam_state_count(opt[i]);
            n += 3;
        }
        counters[0] = it;
        counters[1] = ebmc_chain_step(t->cx);
        counters[2] = ebmc_chain_step(t->cz);
        counters[3] = lpos_epoch;
        counters[4] = lpos;
        counters[5] = t->restarts;
        const char *cn[6] = {"iteration", "chain_x.step", "chain_z.step", "loader.epoch", "loader.pos", "restarts"};
        for (int i = 0; i < 6; i++) st[n++] = (ebmc_st_tensor){cn[i], EBMC_DT_I64, 0, {0}, &counters[i]};
        snprintf(path, sizeof path, "%s/state.safetensors", tmp);
        if (!host) {
            snprintf(err, errlen, "%s: out of host memory", path);
            s = EBMC_E_NOMEM;
        } else if (!s) {
            s = ebmc_st_write(path, st, n, meta, 2, err, errlen);
        } else {
            snprintf(err, errlen, "%s: %s", path, ebmc_ctx_error(t->ctx));
        }
        free(host);
    }
    free(cfg_json);
    if (!s && rename(tmp, ckpt_dir)) {
        snprintf(err, errlen, "%s: cannot rename into place: %s", ckpt_dir, strerror(errno));
        s = EBMC_E_IO;
    }
    return s;
}

static int64_t read_i64(const ebmc_st_file *f, const char *name, bool *ok) {
    const ebmc_st_tensor *x = ebmc_st_find(f, name);
    if (!x || x->dtype != EBMC_DT_I64 || x->ndim != 0) {
        *ok = false;
        return 0;
    }
    int64_t v;
    memcpy(&v, x->data, sizeof v);
    return v;
}

ebmc_status dm_load(dm_t *t, const char *ckpt_dir, int64_t *it, int64_t *lep, int64_t *lpos,
                    char *err, size_t errlen) {
    char path[PATH_MAX + 64];
    ebmc_net_t *nets[3] = {t->E, t->G, t->I};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", ckpt_dir, NET_FILES[i]);
        TRYS(ebmc_net_load(nets[i], path, err, errlen));
    }
    snprintf(path, sizeof path, "%s/state.safetensors", ckpt_dir);
    ebmc_st_file *f;
    TRYS(ebmc_st_open(path, &f, err, errlen));
    ebmc_status s = ebmc_adam_state_set(t->oE, "optE", f, err, errlen);
    if (!s) s = ebmc_adam_state_set(t->oG, "optG", f, err, errlen);
    if (!s) s = ebmc_adam_state_set(t->oI, "optI", f, err, errlen);
    bool ok = true;
    int64_t v[6];
    const char *cn[6] = {"iteration", "chain_x.step", "chain_z.step", "loader.epoch", "loader.pos", "restarts"};
    for (int i = 0; i < 6; i++) v[i] = read_i64(f, cn[i], &ok);
    ebmc_st_close(f);
    if (s) return s;
    if (!ok) {
        snprintf(err, errlen, "%s: a counter (iteration, chain steps, loader position, restarts) is "
                 "missing or malformed", path);
        return EBMC_E_IO;
    }
    *it = v[0];
    TRYS(ebmc_chain_set_step(t->cx, (uint32_t)v[1]));
    TRYS(ebmc_chain_set_step(t->cz, (uint32_t)v[2]));
    *lep = v[3];
    *lpos = v[4];
    t->restarts = (uint32_t)v[5];
    uint64_t seed = t->seed ^ ((uint64_t)t->restarts * 0x9E3779B97F4A7C15ull);
    ebmc_chain_set_seed(t->cx, seed);
    ebmc_chain_set_seed(t->cz, seed);
    return EBMC_OK;
}

/* The newest complete checkpoint directory of a run (iter_NNNNNNNN), or -1. */
int64_t dm_latest_checkpoint(const char *run_dir, char *out, size_t outlen) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    DIR *d = opendir(dir);
    if (!d) return -1;
    int64_t best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        long long v;
        char tail[8];
        if (sscanf(e->d_name, "iter_%lld%7s", &v, tail) == 1 && v > best) best = v;
    }
    closedir(d);
    if (best >= 0) snprintf(out, outlen, "%s/iter_%08" PRId64, dir, best);
    return best;
}

static void prune_checkpoints(const char *run_dir, int keep) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    for (;;) {
        DIR *d = opendir(dir);
        if (!d) return;
        int count = 0;
        long long oldest = LLONG_MAX;
        struct dirent *e;
        while ((e = readdir(d))) {
            long long v;
            char tail[8];
            if (sscanf(e->d_name, "iter_%lld%7s", &v, tail) == 1) {
                count++;
                if (v < oldest) oldest = v;
            }
        }
        closedir(d);
        if (count <= keep) return;
        char victim[PATH_MAX + 32], f[PATH_MAX + 64];
        snprintf(victim, sizeof victim, "%s/iter_%08lld", dir, oldest);
        const char *files[] = {"E.safetensors", "G.safetensors", "I.safetensors", "state.safetensors"};
        for (int i = 0; i < 4; i++) {
            snprintf(f, sizeof f, "%s/%s", victim, files[i]);
            unlink(f);
        }
        if (rmdir(victim)) return; /* unexpected content: leave it */
    }
}

/* ------------------------------------------------------------------ grids and logs */

static ebmc_status save_grid(dm_t *t, const float *dev, const char *path, char *err, size_t errlen) {
    size_t nimg = (size_t)t->B * t->img;
    TRYS(ebmc_copy(t->ctx, t->host_img, dev, nimg * sizeof(float), EBMC_COPY_D2H));
    ebmc_grid_opts o = ebmc_grid_opts_default();
    o.nrow = (int)ebmc_config_int(t->cfg, "log", "grid_nrow");
    if (t->mc.img_size == 1) return EBMC_OK; /* 2-D points: no images */
    return ebmc_save_grid_png(path, t->host_img, t->B, t->mc.img_c, t->mc.img_size, t->mc.img_size, &o, err, errlen);
}

static ebmc_status write_grids(dm_t *t, const char *run_dir, int64_t it, char *err, size_t errlen) {
    char dir[PATH_MAX], p[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/samples", run_dir);
    if (mkdir_p(dir)) {
        snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(errno));
        return EBMC_E_IO;
    }
    struct { const float *buf; const char *name; } g[4] = {
        {t->x_real, "data"}, {t->gen, "generator"}, {ebmc_chain_state(t->cx), "revised"},
        {ebmc_tape_output(t->tGr, 0), "reconstruction"}};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/iter_%08" PRId64 "_%s.png", dir, it, g[i].name);
        TRYS(save_grid(t, g[i].buf, p, err, errlen));
    }
    return EBMC_OK;
}

/* ------------------------------------------------------------------ the command */

static int usage_train(void) {
    fprintf(stderr,
            "usage: ebmc train CONFIG [section.key=value ...]\n"
            "       ebmc train --resume RUN_DIR [section.key=value ...]\n"
            "       ebmc train --print-config [CONFIG] [section.key=value ...]\n");
    return EBMC_EXIT_USAGE;
}

static int status_exit(ebmc_status s) {
    return s == EBMC_E_INVALID ? EBMC_EXIT_CONFIG : s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_ERROR;
}

static const char *base_name(const char *path, char *buf, size_t n) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(buf, n, "%s", b);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf) *dot = 0;
    return buf;
}

int ebmc_train_main(int argc, char **argv) {
    char err[1024] = "";
    const char *resume = NULL, *config_path = NULL;
    bool print_only = false;
    int first_override = argc;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--resume")) {
            if (i + 1 >= argc) return usage_train();
            resume = argv[++i];
        } else if (!strcmp(argv[i], "--print-config")) {
            print_only = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage_train();
            return EBMC_EXIT_OK;
        } else if (strchr(argv[i], '=')) {
            first_override = i;
            break;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ebmc train: unknown option '%s'\n", argv[i]);
            return usage_train();
        } else if (!config_path) {
            config_path = argv[i];
        } else {
            fprintf(stderr, "ebmc train: unexpected argument '%s'\n", argv[i]);
            return usage_train();
        }
    }
    if (!config_path && !resume && !print_only) return usage_train();
    int nk;
    const ebmc_cfg_key *schema = ebmc_dualmcmc_schema(&nk);
    ebmc_config_t *cfg = ebmc_config_create(schema, nk);
    char run_dir[PATH_MAX] = "", cfgfile[PATH_MAX + 32];
    if (resume) {
        snprintf(run_dir, sizeof run_dir, "%s", resume);
        snprintf(cfgfile, sizeof cfgfile, "%s/config.ini", resume);
        config_path = cfgfile;
    }
    ebmc_status s = config_path ? ebmc_config_load(cfg, config_path, err, sizeof err) : EBMC_OK;
    for (int i = first_override; !s && i < argc; i++) s = ebmc_config_set_arg(cfg, argv[i], err, sizeof err);
    if (!s) s = ebmc_config_check_required(cfg, err, sizeof err);
    if (s) {
        fprintf(stderr, "ebmc train: %s\n", err);
        ebmc_config_free(cfg);
        return s == EBMC_E_IO ? EBMC_EXIT_DATA : EBMC_EXIT_CONFIG;
    }
    if (print_only) {
        char *ini = ebmc_config_to_ini(cfg);
        fputs(ini ? ini : "", stdout);
        free(ini);
        ebmc_config_free(cfg);
        return EBMC_EXIT_OK;
    }
    if (!resume) {
        const char *name = ebmc_config_str(cfg, "run", "name");
        char nb[256];
        if (!*name) {
            time_t now = time(NULL);
            struct tm tmv;
            localtime_r(&now, &tmv);
            char stamp[64];
            strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tmv);
            snprintf(nb, sizeof nb, "%.100s-%.60s", base_name(config_path, cfgfile, sizeof cfgfile), stamp);
            name = nb;
        }
        if (snprintf(run_dir, sizeof run_dir, "%s/%s", ebmc_config_str(cfg, "run", "out_dir"), name) >=
            (int)sizeof run_dir) {
            fprintf(stderr, "ebmc train: run.out_dir/run.name is too long\n");
            ebmc_config_free(cfg);
            return EBMC_EXIT_CONFIG;
        }
        char probe[PATH_MAX + 32];
        snprintf(probe, sizeof probe, "%s/config.ini", run_dir);
        if (access(probe, F_OK) == 0) {
            fprintf(stderr, "ebmc train: %s already holds a run (HINT: ebmc train --resume %s, or "
                    "another run.name)\n", run_dir, run_dir);
            ebmc_config_free(cfg);
            return EBMC_EXIT_USAGE;
        }
    }
    int rc = dm_run(cfg, run_dir, resume != NULL, err, sizeof err);
    ebmc_config_free(cfg);
    return rc;
}

/* run.profile_iters "W:N" -> *w, *n (0, 0 when empty); false when malformed */
static bool parse_profile(const char *v, int64_t *w, int64_t *n) {
    *w = *n = 0;
    if (!*v) return true;
    long long a, b;
    char tail;
    if (sscanf(v, "%lld:%lld%c", &a, &b, &tail) != 2 || a < 0 || b < 1) return false;
    *w = a, *n = b;
    return true;
}

int dm_run(ebmc_config_t *cfg, const char *run_dir, bool resume, char *err, size_t errlen) {
    int64_t prof_w, prof_n;
    if (!parse_profile(ebmc_config_str(cfg, "run", "profile_iters"), &prof_w, &prof_n)) {
        fprintf(stderr, "ebmc train: run.profile_iters: expected W:N (W >= 0 warm iterations, then N >= 1 "
                "profiled ones), got '%s'\n", ebmc_config_str(cfg, "run", "profile_iters"));
        return EBMC_EXIT_CONFIG;
    }
    bool prof_on = false;
    dm_t t;
    ebmc_status s = dm_setup(&t, cfg, true, err, errlen);
    if (s) {
        fprintf(stderr, "ebmc train: %s\n", err);
        dm_free(&t);
        return status_exit(s);
    }
    char cfgpath[PATH_MAX + 32], mpath[PATH_MAX + 32], ckpt[PATH_MAX + 64];
    if (mkdir_p(run_dir)) {
        fprintf(stderr, "ebmc train: %s: cannot create the run directory: %s\n", run_dir, strerror(errno));
        dm_free(&t);
        return EBMC_EXIT_DATA;
    }
    snprintf(cfgpath, sizeof cfgpath, "%s/config.ini", run_dir);
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", run_dir);
    int64_t start = 0, lep = 0, lpos = 0;
    if (resume) {
        char latest[PATH_MAX];
        if (dm_latest_checkpoint(run_dir, latest, sizeof latest) < 0) {
            fprintf(stderr, "ebmc train: %s has no checkpoint to resume from\n", run_dir);
            dm_free(&t);
            return EBMC_EXIT_DATA;
        }
        int64_t it;
        s = dm_load(&t, latest, &it, &lep, &lpos, err, errlen);
        if (!s) s = ebmc_loader_set_state(t.loader, lep, lpos);
        if (s) {
            fprintf(stderr, "ebmc train: resuming from %s: %s\n", latest, err);
            dm_free(&t);
            return EBMC_EXIT_DATA;
        }
        start = it;
        fprintf(stderr, "ebmc train: resuming %s at iteration %" PRId64 "\n", run_dir, start);
    }
    s = ebmc_config_write(cfg, cfgpath, err, errlen); /* the resolved config, overrides included */
    if (s) {
        fprintf(stderr, "ebmc train: %s\n", err);
        dm_free(&t);
        return EBMC_EXIT_DATA;
    }
    int64_t per_epoch = ebmc_loader_batches_per_epoch(t.loader);
    int64_t total = ebmc_config_int(cfg, "train", "iterations");
    if (total == 0) total = ebmc_config_int(cfg, "train", "epochs") * per_epoch;
    int64_t grid_every = ebmc_config_int(cfg, "log", "grid_every"), ckpt_every = ebmc_config_int(cfg, "log", "ckpt_every");
    int keep = (int)ebmc_config_int(cfg, "log", "keep"), max_rec = (int)ebmc_config_int(cfg, "guard", "max_recoveries");
    double max_gap = ebmc_config_float(cfg, "guard", "max_gap");
    int recoveries = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    g_stop = 0;
    fprintf(stderr, "ebmc train: run %s: %s on %s (%s), %" PRId64 " iterations of batch %d, %" PRId64
            " per epoch\n", run_dir, ebmc_config_str(cfg, "model", "arch"), ebmc_ctx_ops(t.ctx)->name,
            ebmc_data_name(t.ds), total, t.B, per_epoch);
    ebmc_progress_t *prog = ebmc_progress_create(total, start, (int)ebmc_config_int(cfg, "log", "progress_every"),
                                                 ebmc_config_bool(cfg, "log", "quiet"));
    int rc = EBMC_EXIT_OK;
    int64_t it = start, last_saved = resume ? start : -1;
    double t_run = now_s();
    while (it < total && !g_stop) {
        int64_t epoch;
        int n;
        s = ebmc_loader_next(t.loader, t.host_x, &n, &epoch);
        if (s) {
            snprintf(err, errlen, "data: %s", "reading a batch failed");
            rc = EBMC_EXIT_DATA;
            break;
        }
        int64_t next = it + 1;
        bool grid_due = (grid_every && next % grid_every == 0) || next == total;
        if (prof_n && !prof_on && next - start == prof_w + 1) { /* the profiler's window opens */
            if (ebmc_profiler_start(t.ctx) == EBMC_OK) {
                prof_on = true;
                fprintf(stderr, "\nebmc train: profiler window open for iterations %" PRId64 "..%" PRId64 "\n",
                        next, next + prof_n - 1);
            } else {
                fprintf(stderr, "\nebmc train: run.profile_iters: %s\n", ebmc_ctx_error(t.ctx));
                prof_n = 0;
            }
        }
        double t0 = now_s();
        s = dm_iteration(&t, next, epoch, grid_due);
        double dt = now_s() - t0;
        if (prof_on && (s || next - start == prof_w + prof_n)) {
            ebmc_profiler_stop(t.ctx);
            prof_on = false;
            fprintf(stderr, "\nebmc train: profiler window closed after iteration %" PRId64 "\n", next);
        }
        if (s) {
            snprintf(err, errlen, "iteration %" PRId64 ": %s", next, ebmc_ctx_error(t.ctx));
            rc = EBMC_EXIT_ERROR;
            break;
        }
        const float *m = t.hmet;
        double B = t.B;
        double e_data = m[M_ET] / B, e_rev = m[M_EF] / B, gap = e_data - e_rev;
        double loss_g = ebmc_config_float(cfg, "train", "g_factor") * m[M_RECON] / B +
                        ebmc_config_float(cfg, "train", "lambda_s") * m[M_SAMPLE] / B;
        double loss_i = ebmc_config_float(cfg, "train", "g_factor") * m[M_NLLQ] / B +
                        ebmc_config_float(cfg, "train", "lambda_i") * m[M_NLLL] / B;
        double loss_e = gap / t.T;
        bool bad = !isfinite(loss_g) || !isfinite(loss_i) || !isfinite(loss_e) || fabs(gap) > max_gap;
        ebmc_jsonl l;
        ebmc_jsonl_begin(&l);
        ebmc_jsonl_int(&l, "iter", next);
        ebmc_jsonl_int(&l, "epoch", epoch);
        ebmc_jsonl_num(&l, "loss_e", loss_e);
        ebmc_jsonl_num(&l, "loss_g", loss_g);
        ebmc_jsonl_num(&l, "loss_i", loss_i);
        ebmc_jsonl_num(&l, "e_data", e_data);
        ebmc_jsonl_num(&l, "e_gen", m[M_EGEN0] / B);
        ebmc_jsonl_num(&l, "e_revised", e_rev);
        ebmc_jsonl_num(&l, "e_gap", gap);
        ebmc_jsonl_num(&l, "e_chain_first", m[M_EX0] / B);
        ebmc_jsonl_num(&l, "e_chain_last", m[M_EX1] / B);
        ebmc_jsonl_num(&l, "recon_err", m[M_RECON] / B);
        ebmc_jsonl_num(&l, "sample_err", m[M_SAMPLE] / B);
        ebmc_jsonl_num(&l, "nll_q", m[M_NLLQ] / B);
        ebmc_jsonl_num(&l, "nll_latent", m[M_NLLL] / B);
        ebmc_jsonl_num(&l, "lr_e", ebmc_adam_lr(t.oE, epoch));
        ebmc_jsonl_num(&l, "lr_g", ebmc_adam_lr(t.oG, epoch));
        ebmc_jsonl_num(&l, "lr_i", ebmc_adam_lr(t.oI, epoch));
        ebmc_jsonl_num(&l, "sec", dt);
        ebmc_jsonl_num(&l, "images_per_s", B / dt);
        ebmc_jsonl_num(&l, "chain_steps_per_s", B * (2.0 * t.kx + t.kz) / dt);
        ebmc_jsonl_append(&l, mpath, err, errlen);
        if (bad) {
            recoveries++;
            char latest[PATH_MAX];
            bool have = dm_latest_checkpoint(run_dir, latest, sizeof latest) >= 0;
            fprintf(stderr, "\nebmc train: divergence at iteration %" PRId64 " (E gap %.4g, losses E %.4g G %.4g "
                    "I %.4g)%s\n", next, gap, loss_e, loss_g, loss_i,
                    recoveries > max_rec ? "" : have ? "; reloading the last good checkpoint" : "");
            ebmc_jsonl_begin(&l);
            ebmc_jsonl_str(&l, "event", "divergence");
            ebmc_jsonl_int(&l, "iter", next);
            ebmc_jsonl_num(&l, "e_gap", gap);
            ebmc_jsonl_int(&l, "recovery", recoveries);
            ebmc_jsonl_append(&l, mpath, err, errlen);
            if (recoveries > max_rec || !have) {
                snprintf(err, errlen, "diverged at iteration %" PRId64 " %s", next,
                         have ? "after the allowed recoveries (guard.max_recoveries)" : "before the first checkpoint");
                rc = EBMC_EXIT_DIVERGED;
                break;
            }
            int64_t rit;
            s = dm_load(&t, latest, &rit, &lep, &lpos, err, errlen);
            if (!s) s = ebmc_loader_set_state(t.loader, lep, lpos);
            if (s) {
                rc = EBMC_EXIT_DATA;
                break;
            }
            t.restarts++; /* a new noise stream from here, so the trajectory differs */
            uint64_t seed = t.seed ^ ((uint64_t)t.restarts * 0x9E3779B97F4A7C15ull);
            ebmc_chain_set_seed(t.cx, seed);
            ebmc_chain_set_seed(t.cz, seed);
            it = rit;
            continue;
        }
        it = next;
        char txt[160];
        snprintf(txt, sizeof txt, "E %.3g (gap %.3g) G %.4g I %.4g", loss_e, gap, loss_g, loss_i);
        ebmc_progress_update(prog, it, txt);
        if (grid_due) {
            s = write_grids(&t, run_dir, it, err, errlen);
            if (s) {
                rc = EBMC_EXIT_DATA;
                break;
            }
        }
        if ((ckpt_every && it % ckpt_every == 0) || it == total) {
            int64_t ep, pos;
            ebmc_loader_get_state(t.loader, &ep, &pos);
            snprintf(ckpt, sizeof ckpt, "%s/checkpoints/iter_%08" PRId64, run_dir, it);
            s = dm_save(&t, ckpt, it, ep, pos, err, errlen);
            if (s) {
                rc = EBMC_EXIT_DATA;
                break;
            }
            last_saved = it;
            prune_checkpoints(run_dir, keep);
        }
    }
    if (prof_on) ebmc_profiler_stop(t.ctx);
    ebmc_progress_finish(prog);
    ebmc_progress_free(prog);
    if (rc == EBMC_EXIT_OK && g_stop && last_saved != it) { /* finish cleanly: checkpoint, exit 0 */
        int64_t ep, pos;
        ebmc_loader_get_state(t.loader, &ep, &pos);
        snprintf(ckpt, sizeof ckpt, "%s/checkpoints/iter_%08" PRId64, run_dir, it);
        s = dm_save(&t, ckpt, it, ep, pos, err, errlen);
        if (s) rc = EBMC_EXIT_DATA;
        else fprintf(stderr, "ebmc train: stopped by signal %d after iteration %" PRId64 "; checkpoint %s\n",
                     (int)g_stop, it, ckpt);
    }
    if (rc != EBMC_EXIT_OK) fprintf(stderr, "ebmc train: %s\n", err);
    else
        fprintf(stderr, "ebmc train: done: %" PRId64 " iterations in %.1f s; samples in %s/samples, "
                "checkpoints in %s/checkpoints\n", it - start, now_s() - t_run, run_dir, run_dir);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    dm_free(&t);
    return rc;
}
