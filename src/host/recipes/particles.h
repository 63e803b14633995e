/* defines: pd_cfg (the particle-dynamics recipe's typed config), pd_t (its state) and the moves
 * the recipe is made of: private to the recipe (particles.c, particles_moves.c), its evaluation
 * (particles_eval.c, `ebmc loglik`) and its white-box tests (tests/test_particles*.c), which
 * reach the state through ebmc_run_state(). specs/particles.md section 2. */
#ifndef EBMC_TRAIN_PARTICLES_H
#define EBMC_TRAIN_PARTICLES_H

#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/optim.h"
#include "ebmc/recipe.h"

typedef enum {
    PD_ALPHA = 0, /* x += grad E_old(x) - grad E_new(x) (finite difference against E_old) */
    PD_BETA,      /* x -= grad_x [grad_theta E_new(x) . dtheta] (a central difference in theta) */
    PD_PCD,       /* no transport: K Langevin steps ("zero") */
    PD_REPLAY     /* replay buffer + re-initialisation, sampled before the update ("baseline") */
} pd_method;

/* per-iteration device scalars: sums over the batch / particles */
enum { PM_EDATA = 0, PM_EPART, PM_MOVE, PM_COUNT };

typedef struct {
    ebmc_model_cfg mc;
    ebmc_adam_cfg adam;
    pd_method method;
    int n;                        /* particles.count */
    int k;                        /* particles.steps: Langevin steps per iteration */
    double step, noise;           /* x += (step/2)(-grad E) + noise xi */
    int init_k;                   /* particles.init_steps at the first iteration */
    double init_step, init_noise;
    double reinit;                /* fraction re-initialised per iteration */
    int reinit_k;                 /* descent steps of the previous model (0: plain noise) */
    double reinit_step, reinit_noise;
    int capacity;                 /* replay.capacity */
    bool init_base;               /* base mean/std from the first data batch */
    double max_move;              /* > 0: each coordinate of the transport capped (0: off, the authors') */
} pd_cfg;

typedef struct {
    pd_cfg c;
    ebmc_ctx_t *ctx;
    ebmc_net_t *E, *P;            /* the model and the previous model (a second parameter arena) */
    ebmc_adam_t *opt;
    ebmc_tape_t *tD, *tX;         /* E(data) (B), E(particles) (N): the loss passes */
    ebmc_potential *pE, *pP;      /* sum E and sum E_prev, for Langevin and the transport */
    ebmc_chain_t *chain;          /* the particles: its state (N, D) */
    ebmc_chain_t *rchain;         /* re-initialisation by descent on E_prev (max_re chains) */
    int B, N, D, max_re;
    bool has_base;
    uint64_t seed;
    uint32_t restarts;
    int64_t started;              /* the particles exist (first iteration done) */
    int64_t steps, rsteps;        /* checkpoint copies of the chains' counters */
    int64_t rb_count;             /* replay: entries filled */
    float *x_data;                /* (B, D) */
    float *g_old, *g_new, *move;  /* (N, D) */
    float *dy;                    /* (max(B, N)) */
    float *rb;                    /* replay buffer (capacity, D) */
    int32_t *d_idx, *h_idx;       /* (2 * max(N, capacity)): gather/scatter indices */
    float *h_stage;               /* host (max(N, max_re), D): drawn starting points */
    float *base0;                 /* host (2 D): the base's first mean and std (replay's noise: its
                                   * std, with the learned mean, as the authors' shared loc) */
    double *h_sums;               /* host (2 D): the base's sums (over the ranks, init_base) */
    float *metrics;               /* device (PM_COUNT) */
    float hmet[PM_COUNT];
    int64_t it;                   /* the last iteration run */
} pd_t;

extern const ebmc_recipe ebmc_recipe_particles;

/* ---- particles_moves.c ---- */
/* Copies every tensor of E (parameters and buffers such as spectral norm's u, v) into P. */
ebmc_status pd_copy_model(pd_t *t);
/* The Alpha / Beta transport of the first n particles x (N, D) after the update of E (P holds
 * the parameters before it); the displacement goes to t->move, its sum of squares to M[PM_MOVE].
 * Beta overwrites P's parameters (with 2 theta_new - theta_old). */
ebmc_status pd_transport(pd_t *t, float *x, int n);
/* Re-initialises a set of particles: fraction c.reinit of them (exactly, a random subset; for
 * the replay method each one independently with that probability) from N(mu, sigma) (the base's
 * or, for replay, the first base; N(0, I) without a base), then reinit_k descent steps of E_prev.
 * Randomness from (seed, it). */
ebmc_status pd_reinit(pd_t *t, int64_t it);
/* Replay: N entries drawn without replacement into the particles; then (after Langevin) the
 * particles added, keeping a uniformly random subset of the capacity when it overflows. */
ebmc_status pd_replay_draw(pd_t *t, int64_t it);
ebmc_status pd_replay_add(pd_t *t, int64_t it);
/* Host N(mean_d, std_d) rows into dev (n, D) through h_stage; mean/std NULL: N(0, 1). */
ebmc_status pd_draw_normal(pd_t *t, float *dev, int n, const float *mean, const float *std, uint64_t key,
                           uint32_t stream);

#endif

/* ---- particles_eval.c: the paper's evaluation (specs/particles.md 2(b), utils/utils.py) ---- */
/* Grid log-likelihood of a 2-D model, as log_likelihood_2d: E on the grid torch.linspace(-5, 5,
 * g) x the same (g x g points), log Z = LSE(-E) + 2 log(10 / g) (the authors' cell area, whose
 * spacing is 10/g while the grid's is 10/(g-1)), logl = -mean E(data) - log Z over n data points
 * (host (n, 2)). E runs in chunks of N points on t->tX. */
ebmc_status pd_grid_loglik(pd_t *t, int g, const float *data, int n, double *logl, double *logz);
/* Unbiased MMD^2 (Gretton et al.; MMDStatistic) of x (n, d) and y (m, d), kernel exp(-alpha |a-b|^2),
 * in double. */
double pd_mmd2(const float *x, int n, const float *y, int m, int d, double alpha);
/* AIS from N(0, I) to exp(-E) (eval_MNIST.py): beta_i = i/(steps-1), one MALA step of
 * log p_i = beta_i (-E) + (1 - beta_i) log N(0, I) (step dt, noise sqrt(dt)) per temperature, for
 * `chains` chains (<= N, run on E's potential). log Z = LSE(log w) - log chains; se: its delta-method
 * standard error sd(w) / (sqrt(chains) mean(w)); acc: the mean acceptance rate. */
typedef struct {
    int chains, steps;
    double dt;
    uint64_t seed;
} pd_ais_opts;
ebmc_status pd_ais(pd_t *t, const pd_ais_opts *o, double *logz, double *se, double *acc);
/* mean E over n host examples (chunks of N) */
ebmc_status pd_mean_energy(pd_t *t, const float *x, int n, double *mean);
