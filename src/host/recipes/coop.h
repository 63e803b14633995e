/* defines: coop_cfg and coop_t, the typed config and state shared by the two cooperative-learning
 * recipes of Xie et al. (specs/teaching.md 2 and 3.1), and the functions they share (coop.c):
 *   coopvaebm  variational MCMC teaching: an EBM with a VAE as its amortised sampler (AAAI 2021)
 *   coopnets   cooperative learning: an EBM with a generator taught by revised samples (2018)
 * Both: z ~ N(0, I) for `chains` chains; x0 = G(z); x~ = Langevin(x0) on p ∝ exp(f) N(0, sr^2 I)
 * (the descriptor net E outputs the score f = -energy); E's update on mean f(x~) - mean f(x); the
 * sampler (VAE or G) learns from x~ alone. Private to the recipes (coopvaebm.c, coopnets.c,
 * coop.c) and their white-box test tools (tests/tools/coop_step_dump.c); the shell and `ebmc
 * sample` use the recipe table. */
#ifndef EBMC_TRAIN_COOP_H
#define EBMC_TRAIN_COOP_H

#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/optim.h"
#include "ebmc/recipe.h"

/* coop_t.hmet (one device-to-host copy per iteration), sums:
 * C_EDATA sum_b f(x_b) (data batch), C_EREV sum f(x~) (chains, E's update), C_EGEN sum f(x0) and
 * C_ELAST sum f at the chain's last gradient evaluation, C_RECON |G(z_enc) - x~|^2 (coopvaebm) or
 * |G(z) - x~|^2 (coopnets), C_KL the VAE's KL (coopvaebm; 0 for coopnets). */
enum { C_EDATA = 0, C_EREV, C_EGEN, C_ELAST, C_RECON, C_KL, C_COUNT };

typedef struct {
    ebmc_model_cfg mc;
    bool vae;                  /* coopvaebm: G with an encoder I (the VAE); coopnets: G alone */
    int chains;                /* synthesised chains per iteration (nTileRow x nTileCol) */
    ebmc_adam_cfg adam_e, adam_g; /* adam_g also drives I (the VAE's one optimiser) */
    int steps;                 /* langevin.steps */
    double delta, sigma_ref, noise; /* x <- x - (d^2/2)(x/sr^2 - grad f) + noise xi */
    double kl_weight;          /* coopvaebm: weight_latent_loss */
    double enc_k;              /* coopvaebm: I's second head is log-std (1) or log-variance (0.5) */
    double sigma_g;            /* coopnets: G's loss (1/(2 sigma_g^2)) |x~ - G(z)|^2 */
    int gen_steps;             /* coopnets: latent Langevin toward x~ (gen_sample_steps) */
    double gen_step;           /* ... its step size delta_g */
    ebmc_sample_cfg sample;    /* ebmc sample: test-time Langevin (sample.*) */
    bool sample_bn_running;    /* sample.bn: G's BatchNorm from the running statistics at test time */
} coop_cfg;

typedef struct {
    coop_cfg c;
    ebmc_ctx_t *ctx;
    ebmc_net_t *E, *G, *I;     /* I: coopvaebm only */
    ebmc_adam_t *oE, *oG, *oI;
    ebmc_potential *px, *pz;   /* -f (the chains' potential); coopnets' latent posterior */
    ebmc_chain_t *cx, *cz;     /* the x-chains; coopnets' latent chains (gen_steps > 0) */
    ebmc_tape_t *tG;           /* G(z) = x0 (its output is also the generator grid) */
    ebmc_tape_t *tGu;          /* G's update pass: G(z_enc) (coopvaebm) or G(z) (coopnets) */
    ebmc_tape_t *tI;           /* I(x~) (coopvaebm) */
    ebmc_tape_t *tEd, *tEs;    /* E(x) (B), E(x~) (N) */
    int B, N, nz;
    size_t img;
    uint64_t seed;
    uint32_t restarts;
    int64_t steps_x, steps_z;  /* checkpoint copies of the chains' step counters */
    float *x_real;             /* (B, img) */
    float *z, *eps, *zenc;     /* (N, nz): the prior draw, eps and z_enc = mu + eps e^{k s} */
    float *gen;                /* (N, img) x0, kept for the grids */
    float *dyG, *dz, *dmu, *ds;/* (N, img), (N, nz) x3 */
    float *dyE;                /* (max(B, N)) */
    float *rowloss;            /* (N) */
    float *metrics;            /* (C_COUNT) device */
    float hmet[C_COUNT];
} coop_t;

enum { COOP_STREAM_X = 1, COOP_STREAM_Z = 3, COOP_STREAM_PRIOR = 4, COOP_STREAM_EPS = 5,
       COOP_STREAM_SAMPLE = 9 };

/* the keys both recipes read (each recipe adds its own and its defaults through the table) */
ebmc_status coop_parse_common(const ebmc_config_t *cfg, coop_cfg *c, char *err, size_t errlen);
ebmc_status coop_setup(void *state, const void *typed, const ebmc_recipe_env *env, char *err,
                       size_t errlen);
void coop_destroy(void *state);
/* z ~ N(0, I); x0 = G(z); x~ = Langevin(x0) (step 1 and 2 of both recipes) */
ebmc_status coop_synthesise(coop_t *t, const float *batch, int64_t it);
/* E's update: minimise mean_N f(x~) - mean_B f(x) */
ebmc_status coop_update_E(coop_t *t, int64_t epoch);
ebmc_status coop_fetch_metrics(coop_t *t);
void coop_report_common(coop_t *t, int64_t epoch, ebmc_report *r);
int coop_ckpt_items(void *state, ebmc_ckpt_item *items, int max);
ebmc_status coop_loaded(void *state, char *err, size_t errlen);
void coop_reseed(void *state, uint32_t restarts);
int coop_grids(void *state, ebmc_grid *g, int max);
extern const char *const COOP_SAMPLE_NAMES[];
ebmc_status coop_sample(void *state, const ebmc_sample_opts *o, float **outs, char *desc,
                        size_t desclen, char *err, size_t errlen);
int coop_plan(void *state, ebmc_plan_row *rows, int max);
int coop_probes(void *state, const char **names, const float **values);
uint64_t coop_noise_seed(const coop_t *t);
/* the energy entry: -f(x) + |x|^2 / (2 sigma_ref^2) of host examples (recipe.h) */
ebmc_status coop_energy(void *state, const float *x, int n, float *e, char *err, size_t errlen);

/* small device helpers */
ebmc_status coop_sumto(ebmc_ctx_t *ctx, const float *x, size_t n, ebmc_reduce_mode m, float *out);
ebmc_status coop_copy(ebmc_ctx_t *ctx, float *dst, const float *src, size_t n, float a);
ebmc_status coop_fill(ebmc_ctx_t *ctx, float *dst, size_t n, float v);

extern const ebmc_recipe ebmc_recipe_coopvaebm;
extern const ebmc_recipe ebmc_recipe_coopnets;

#endif
