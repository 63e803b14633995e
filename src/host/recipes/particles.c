/* Particle Dynamics for Learning EBMs (Neklyudov, Jaini & Welling 2021) as a recipe
 * (run.recipe = particles), specs/particles.md section 2, following necludov/particle-EBMs:
 *   alpha   (alpha_toy.py)  P <- E; one Adam step on L = mean E(data) - mean E(particles);
 *           x += grad E_old(x) - grad E_new(x); K Langevin steps of E_new
 *   beta    (beta_toy.py, beta_MNIST.py)  the same with the linearised field
 *           x -= grad_x [grad_theta E_new(x) . (theta_new - theta_old)] (particles_moves.c);
 *           optionally a fraction re-initialised first by descent of E_old from noise (MNIST)
 *   pcd     (zero_toy.py, pcd_MNIST.py)  no transport; K Langevin steps (optional re-init)
 *   replay  (baseline_toy.py)  N entries of a replay buffer, a fraction re-initialised from the
 *           first base Gaussian, K Langevin steps, added back to the buffer; then the update
 * Langevin: x += (step/2)(-grad E) + noise xi. At the first iteration the learnable base takes
 * the data batch's mean and std (unbiased, as torch.std) and the particles are drawn from it
 * (N(0, I) without a base) and run init_steps Langevin steps. Everything a run needs to continue
 * exactly (E, E_prev, Adam, particles, replay buffer, counters) is in its checkpoint. */
#include "recipes/particles.h"
#include "train/energy.h"
#include "ebmc/comm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_LD = 11, STREAM_RE = 12, STREAM_INIT = 13 };

#define U 1, 0

/* Defaults: the toy scripts' (alpha_toy.py); configs/ set the others. */
static const ebmc_cfg_key PD_KEYS[] = {
    {"model", "arch", EBMC_CFG_CHOICE, "pd_mlp", "energy network", U, "pd_mlp|pd_mnist"},
    {"model", "hidden", EBMC_CFG_INT, "0", "pd_mlp: width (0: 300)", 0, 65536, NULL},
    {"model", "ndf", EBMC_CFG_INT, "0", "pd_mnist: channels (0: 64)", 0, 65536, NULL},
    {"model", "dims", EBMC_CFG_INT, "2", "pd_mlp: input dimension (2 for the 2-D data)", 1, 65536, NULL},
    {"train", "lr", EBMC_CFG_FLOAT, "1e-4", "Adam learning rate", 0, 1, NULL},
    {"train", "beta1", EBMC_CFG_FLOAT, "0", "Adam beta1", 0, 0.999999, NULL},
    {"train", "beta2", EBMC_CFG_FLOAT, "0.999", "Adam beta2", 0, 0.999999, NULL},
    {"particles", "method", EBMC_CFG_CHOICE, "alpha", "particle update", U, "alpha|beta|pcd|replay"},
    {"particles", "count", EBMC_CFG_INT, "1000", "number of particles N; global: data-parallel ranks split it", 1, 1 << 24, NULL},
    {"particles", "steps", EBMC_CFG_INT, "10", "Langevin steps per iteration K (pcd, replay: 20)", 0, 100000, NULL},
    {"particles", "step_size", EBMC_CFG_FLOAT, "1e-2", "epsilon: x += (eps/2)(-grad E) + noise xi", 0, 100, NULL},
    {"particles", "noise", EBMC_CFG_FLOAT, "0.1", "Langevin noise std (sqrt(eps) for exact Langevin)", 0, 100, NULL},
    {"particles", "init_steps", EBMC_CFG_INT, "1000", "Langevin steps from the base at the start", 0, 1000000, NULL},
    {"particles", "init_step_size", EBMC_CFG_FLOAT, "1e-4", "their epsilon (alpha_toy: 1e-4, others 1e-2)", 0, 100, NULL},
    {"particles", "init_noise", EBMC_CFG_FLOAT, "0.01", "their noise std", 0, 100, NULL},
    {"particles", "reinit", EBMC_CFG_FLOAT, "0", "fraction of particles re-initialised per iteration", 0, 1, NULL},
    {"particles", "reinit_steps", EBMC_CFG_INT, "0", "descent steps of the previous model after the noise (0: noise)", 0, 100000, NULL},
    {"particles", "reinit_step_size", EBMC_CFG_FLOAT, "1", "their epsilon (beta_MNIST: 1)", 0, 100, NULL},
    {"particles", "reinit_noise", EBMC_CFG_FLOAT, "0.005", "their noise std (beta_MNIST: 0.005)", 0, 100, NULL},
    {"particles", "init_base", EBMC_CFG_BOOL, "true", "pd_mlp: base mean/std from the first batch", U, NULL},
    {"particles", "max_move", EBMC_CFG_FLOAT, "0", "> 0: cap each coordinate of the transport (spec 2(d)1; 0: off, as the authors)", 0, 1e6, NULL},
    {"replay", "capacity", EBMC_CFG_INT, "10000", "replay method: buffer entries", 1, 1 << 24, NULL},
};

static ebmc_status pd_parse(const ebmc_config_t *cfg, void *typed, char *err, size_t errlen) {
    pd_cfg *c = typed;
    static const char *const widths[] = {"hidden", "ndf", NULL};
    ebmc_status st = ebmc_recipe_model_read(cfg, &c->mc, widths, err, errlen);
    if (st) return st;
    const char *arch = ebmc_config_str(cfg, "model", "arch");
    if (!strcmp(arch, "pd_mlp")) c->mc.img_c = (int)ebmc_config_int(cfg, "model", "dims");
    c->adam = (ebmc_adam_cfg){ebmc_config_float(cfg, "train", "lr"), ebmc_config_float(cfg, "train", "beta1"),
                              ebmc_config_float(cfg, "train", "beta2"), 1e-8, 0.0, 1.0};
    const char *m = ebmc_config_str(cfg, "particles", "method");
    c->method = !strcmp(m, "alpha") ? PD_ALPHA : !strcmp(m, "beta") ? PD_BETA : !strcmp(m, "pcd") ? PD_PCD : PD_REPLAY;
    c->n = (int)ebmc_config_int(cfg, "particles", "count");
    c->k = (int)ebmc_config_int(cfg, "particles", "steps");
    c->step = ebmc_config_float(cfg, "particles", "step_size");
    c->noise = ebmc_config_float(cfg, "particles", "noise");
    c->init_k = (int)ebmc_config_int(cfg, "particles", "init_steps");
    c->init_step = ebmc_config_float(cfg, "particles", "init_step_size");
    c->init_noise = ebmc_config_float(cfg, "particles", "init_noise");
    c->reinit = ebmc_config_float(cfg, "particles", "reinit");
    c->reinit_k = (int)ebmc_config_int(cfg, "particles", "reinit_steps");
    c->reinit_step = ebmc_config_float(cfg, "particles", "reinit_step_size");
    c->reinit_noise = ebmc_config_float(cfg, "particles", "reinit_noise");
    c->init_base = ebmc_config_bool(cfg, "particles", "init_base");
    c->max_move = ebmc_config_float(cfg, "particles", "max_move");
    c->capacity = (int)ebmc_config_int(cfg, "replay", "capacity");
    if (c->method == PD_REPLAY && c->capacity < c->n) {
        snprintf(err, errlen, "replay.capacity = %d is smaller than particles.count = %d", c->capacity, c->n);
        return EBMC_E_INVALID;
    }
    return EBMC_OK;
}

static void pd_destroy(void *state) {
    pd_t *t = state;
    ebmc_chain_free(t->chain);
    ebmc_chain_free(t->rchain);
    ebmc_potential_free(t->pE);
    ebmc_potential_free(t->pP);
    ebmc_tape_free(t->tD);
    ebmc_tape_free(t->tX);
    ebmc_adam_free(t->opt);
    void *dev[] = {t->x_data, t->g_old, t->g_new, t->move, t->dy, t->rb, t->d_idx, t->metrics};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) ebmc_free(t->ctx, dev[i]);
    free(t->h_idx);
    free(t->h_stage);
    free(t->base0);
    free(t->h_sums);
    ebmc_net_free(t->E);
    ebmc_net_free(t->P);
    memset(t, 0, sizeof *t);
}

static ebmc_langevin_params ld(double step, double noise, int k) {
    ebmc_langevin_params p = {.steps = k, .a = (float)(step / 2), .c = (float)noise, .noise = EBMC_NOISE_AFTER};
    if (noise == 0) p.noise = EBMC_NOISE_OFF;
    return p;
}

static ebmc_status build_nets(pd_t *t, char *err, size_t errlen) {
    for (int r = 0; r < 2; r++) {
        ebmc_net_t *net = ebmc_model_build(&t->c.mc, EBMC_NET_E, err, errlen);
        if (!net) return EBMC_E_INVALID;
        *(r ? &t->P : &t->E) = net;
        ebmc_status s = ebmc_net_finalize(net, t->ctx, r == 0, t->seed + 101);
        if (s) {
            snprintf(err, errlen, "%s", ebmc_net_error(net));
            return s;
        }
    }
    t->has_base = ebmc_net_tensor_find(t->E, "base_mu") != NULL;
    return EBMC_OK;
}

static ebmc_status build_rest(pd_t *t) {
    const pd_cfg *c = &t->c;
    ebmc_ctx_t *ctx = t->ctx;
    int N = t->N, D = t->D, C = c->method == PD_REPLAY ? c->capacity : 1;
    t->max_re = (int)(N * c->reinit) > 0 ? (c->method == PD_REPLAY ? N : (int)(N * c->reinit)) : 1;
    EBMC_TRY(ebmc_adam_create(t->E, &c->adam, &t->opt));
    EBMC_TRY(ebmc_tape_create(t->E, t->B, true, &t->tD));
    EBMC_TRY(ebmc_tape_create(t->E, N, true, &t->tX));
    EBMC_TRY(ebmc_potential_energy(t->E, N, 1.0f, &t->pE));
    EBMC_TRY(ebmc_potential_energy(t->P, N > t->max_re ? N : t->max_re, 1.0f, &t->pP));
    /* a chain needs >= 1 step: one of 0 steps is never run */
    ebmc_langevin_params p = ld(c->step, c->noise, c->k > 0 ? c->k : 1);
    ebmc_langevin_params r = ld(c->reinit_step, c->reinit_noise, c->reinit_k > 0 ? c->reinit_k : 1);
    EBMC_TRY(ebmc_chain_create(t->pE, &p, N, t->seed, STREAM_LD, &t->chain));
    EBMC_TRY(ebmc_chain_create(t->pP, &r, t->max_re, t->seed, STREAM_RE, &t->rchain));
    size_t nd = (size_t)N * D;
    float **bufs[] = {&t->g_old, &t->g_new, &t->move};
    for (int i = 0; i < 3; i++) EBMC_TRY(ebmc_alloc(ctx, (void **)bufs[i], nd * sizeof(float)));
    EBMC_TRY(ebmc_alloc(ctx, (void **)&t->x_data, (size_t)t->B * D * sizeof(float)));
    EBMC_TRY(ebmc_alloc(ctx, (void **)&t->dy, (size_t)(N > t->B ? N : t->B) * sizeof(float)));
    EBMC_TRY(ebmc_alloc(ctx, (void **)&t->rb, (size_t)C * D * sizeof(float)));
    EBMC_TRY(ebmc_alloc(ctx, (void **)&t->d_idx, 2 * (size_t)N * sizeof(int32_t)));
    EBMC_TRY(ebmc_alloc(ctx, (void **)&t->metrics, PM_COUNT * sizeof(float)));
    size_t nidx = 3 * (size_t)N + 2 * (size_t)C + ((size_t)C + N) / 4 + 8;
    t->h_idx = ebmc_xmalloc(nidx * sizeof(int32_t), "particle indices");
    t->h_stage = ebmc_xmalloc((size_t)(N > t->max_re ? N : t->max_re) * D * sizeof(float), "particle staging");
    t->base0 = ebmc_xcalloc(2 * (size_t)D, sizeof(float), "base");
    t->h_sums = ebmc_xcalloc(2 * (size_t)D, sizeof(double), "base sums");
    ebmc_fill_desc f = {PM_COUNT, 0.0f};
    return ebmc_fill(ctx, &f, t->metrics);
}

static ebmc_status pd_setup(void *state, const void *typed, const ebmc_recipe_env *env, char *err, size_t errlen) {
    pd_t *t = state;
    t->c = *(const pd_cfg *)typed;
    t->ctx = env->ctx;
    t->seed = env->seed;
    t->B = env->batch;
    EBMC_TRY(ebmc_env_share(env, t->c.n, "particles.count", &t->N, err, errlen)); /* a rank's share */
    const ebmc_model_cfg *mc = &t->c.mc;
    t->D = mc->img_c * mc->img_size * mc->img_size;
    EBMC_TRY(build_nets(t, err, errlen));
    ebmc_status s = build_rest(t);
    if (s) snprintf(err, errlen, "set-up: %s", ebmc_ctx_error(t->ctx));
    return s;
}

/* ------------------------------------------------------------------ the first iteration */

static ebmc_status set_tensor(pd_t *t, const char *name, const float *host) {
    const ebmc_net_tensor *x = ebmc_net_tensor_find(t->E, name);
    return ebmc_copy(t->ctx, x->data, host, x->count * sizeof(float), EBMC_COPY_H2D);
}

/* sums over the data-parallel ranks (the same bits on each: ebmc_comm_sum_f64) */
static ebmc_status rank_sum(pd_t *t, double *v, int n) {
    ebmc_comm_t *c = ebmc_ctx_comm(t->ctx);
    return c ? ebmc_comm_sum_f64(c, v, n, "the particles' base statistics") : EBMC_OK;
}

/* the base from the batch's mean and unbiased std (alpha_toy.py: train_batch.mean(0), .std(0));
 * with ranks, of the global batch (every rank sets the same parameters) */
static ebmc_status init_base(pd_t *t, const float *batch) {
    int D = t->D, B = t->B;
    float *ls = t->h_stage; /* scratch */
    double *s = t->h_sums, n[1] = {B};
    EBMC_TRY(rank_sum(t, n, 1));
    for (int d = 0; d < D; d++) {
        s[d] = 0, s[D + d] = 0;
        for (int i = 0; i < B; i++) s[d] += batch[(size_t)i * D + d];
    }
    EBMC_TRY(rank_sum(t, s, D));
    for (int d = 0; d < D; d++) {
        double m = s[d] / n[0];
        for (int i = 0; i < B; i++) s[D + d] += (batch[(size_t)i * D + d] - m) * (batch[(size_t)i * D + d] - m);
    }
    EBMC_TRY(rank_sum(t, s + D, D));
    for (int d = 0; d < D; d++) {
        t->base0[d] = (float)(s[d] / n[0]);
        t->base0[D + d] = (float)sqrt(n[0] > 1 ? s[D + d] / (n[0] - 1) : 1.0);
        ls[d] = logf(t->base0[D + d]);
    }
    EBMC_TRY(set_tensor(t, "base_mu", t->base0));
    return set_tensor(t, "base_logstd", ls);
}

static ebmc_status start(pd_t *t, const float *batch, int64_t epoch) {
    const pd_cfg *c = &t->c;
    if (t->has_base && c->init_base) EBMC_TRY(init_base(t, batch));
    else if (t->has_base) { /* the base as initialised (mean 0, std 1), for replay's noise */
        for (int d = 0; d < t->D; d++) t->base0[d] = 0.0f, t->base0[t->D + d] = 1.0f;
    }
    float *x = ebmc_chain_state(t->chain);
    EBMC_TRY(pd_draw_normal(t, x, t->N, t->has_base ? t->base0 : NULL, t->base0 + t->D, 0, STREAM_INIT));
    ebmc_langevin_params p0 = ld(c->init_step, c->init_noise, c->init_k), p = ld(c->step, c->noise, c->k > 0 ? c->k : 1);
    if (c->init_k > 0) {
        ebmc_chain_set_params(t->chain, &p0);
        EBMC_TRY(ebmc_chain_run(t->chain, t->N));
        ebmc_chain_set_params(t->chain, &p);
    }
    if (c->method == PD_REPLAY) EBMC_TRY(pd_replay_add(t, 0));
    t->started = 1;
    (void)epoch;
    return EBMC_OK;
}

/* ------------------------------------------------------------------ one iteration */

static ebmc_status fill(ebmc_ctx_t *ctx, float *y, size_t n, float v) {
    ebmc_fill_desc f = {n, v};
    return ebmc_fill(ctx, &f, y);
}

static ebmc_status energy_pass(pd_t *t, ebmc_tape_t *tape, int n, const float *x, float dy, float *sum) {
    EBMC_TRY(ebmc_net_forward(t->E, tape, n, x));
    ebmc_reduce_desc r = {1, (size_t)n, EBMC_REDUCE_SUM, 0.0f};
    EBMC_TRY(ebmc_reduce(t->ctx, &r, ebmc_tape_output(tape, 0), sum));
    EBMC_TRY(fill(t->ctx, t->dy, (size_t)n, dy));
    const float *d[1] = {t->dy};
    return ebmc_net_backward(t->E, tape, d, EBMC_GRAD_FULL, NULL, 0.0f);
}

/* one Adam step on L = mean E(data) - mean E(particles) */
static ebmc_status update(pd_t *t, int64_t epoch) {
    EBMC_TRY(ebmc_net_zero_grad(t->E));
    EBMC_TRY(energy_pass(t, t->tD, t->B, t->x_data, 1.0f / t->B, t->metrics + PM_EDATA));
    EBMC_TRY(energy_pass(t, t->tX, t->N, ebmc_chain_state(t->chain), -1.0f / t->N, t->metrics + PM_EPART));
    return ebmc_adam_step(t->opt, epoch);
}

static ebmc_status step(pd_t *t, const float *batch, int64_t it, int64_t epoch) {
    const pd_cfg *c = &t->c;
    if (!t->started) EBMC_TRY(start(t, batch, epoch));
    EBMC_TRY(ebmc_copy(t->ctx, t->x_data, batch, (size_t)t->B * t->D * sizeof(float), EBMC_COPY_H2D));
    float *x = ebmc_chain_state(t->chain);
    if (c->method == PD_REPLAY) {
        EBMC_TRY(pd_replay_draw(t, it));
        if (c->reinit > 0) EBMC_TRY(pd_reinit(t, it));
        if (c->k > 0) EBMC_TRY(ebmc_chain_run(t->chain, t->N));
        EBMC_TRY(pd_replay_add(t, it));
        EBMC_TRY(fill(t->ctx, t->metrics + PM_MOVE, 1, 0.0f));
        return update(t, epoch);
    }
    bool transport = c->method == PD_ALPHA || c->method == PD_BETA;
    if (transport || c->reinit_k > 0) EBMC_TRY(pd_copy_model(t));
    EBMC_TRY(update(t, epoch));
    if (c->reinit > 0) EBMC_TRY(pd_reinit(t, it));
    if (transport) EBMC_TRY(pd_transport(t, x, t->N));
    else EBMC_TRY(fill(t->ctx, t->metrics + PM_MOVE, 1, 0.0f));
    return c->k > 0 ? ebmc_chain_run(t->chain, t->N) : EBMC_OK;
}

static ebmc_status pd_iteration(void *state, const float *batch, int64_t it, int64_t epoch, bool grids) {
    pd_t *t = state;
    (void)grids;
    ebmc_status s = step(t, batch, it, epoch);
    if (!s) s = ebmc_copy(t->ctx, t->hmet, t->metrics, PM_COUNT * sizeof(float), EBMC_COPY_D2H);
    t->it = it;
    return s;
}

/* ------------------------------------------------------------------ what the shell reads */

static void pd_report(void *state, int64_t epoch, ebmc_report *r) {
    pd_t *t = state;
    double ed = t->hmet[PM_EDATA] / t->B, ep = t->hmet[PM_EPART] / t->N;
    r->gap = r->n;
    ebmc_report_add(r, "loss", ed - ep, true);
    ebmc_report_add(r, "e_data", ed, false);
    ebmc_report_add(r, "e_particles", ep, false);
    ebmc_report_add(r, "move_rms", sqrt(t->hmet[PM_MOVE] / t->N), false);
    ebmc_report_add(r, "lr", ebmc_adam_lr(t->opt, epoch), false);
    r->images = t->B;
    r->chain_steps = (double)t->N * t->c.k;
    snprintf(r->progress, sizeof r->progress, "loss %.4g E(data) %.4g E(particles) %.4g", ed - ep, ed, ep);
}

static int pd_ckpt_items(void *state, ebmc_ckpt_item *it, int max) {
    pd_t *t = state;
    t->steps = ebmc_chain_step(t->chain);
    t->rsteps = ebmc_chain_step(t->rchain);
    int n = 0;
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "E", .ptr = t->E};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "E_prev", .ptr = t->P};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_ADAM, .name = "optE", .ptr = t->opt};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F32, .name = "particles", .ptr = ebmc_chain_state(t->chain),
                               .count = (size_t)t->N * t->D, .device = true};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F32, .name = "base0", .ptr = t->base0, .count = 2 * (size_t)t->D};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "started", .ptr = &t->started, .lo = 0, .hi = 1};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "chain.step", .ptr = &t->steps, .lo = 0, .hi = UINT32_MAX};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "reinit_chain.step", .ptr = &t->rsteps, .lo = 0,
                               .hi = UINT32_MAX};
    if (t->c.method == PD_REPLAY) {
        it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_F32, .name = "replay", .ptr = t->rb,
                                   .count = (size_t)t->c.capacity * t->D, .device = true};
        it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "replay.count", .ptr = &t->rb_count, .lo = 0,
                                   .hi = t->c.capacity};
    }
    EBMC_ASSERT(n <= max);
    return n;
}

static ebmc_status pd_loaded(void *state, char *err, size_t errlen) {
    pd_t *t = state;
    ebmc_status s = ebmc_chain_set_step(t->chain, (uint32_t)t->steps);
    if (!s) s = ebmc_chain_set_step(t->rchain, (uint32_t)t->rsteps);
    if (s) snprintf(err, errlen, "restoring the chains' counters: %s", ebmc_ctx_error(t->ctx));
    return s;
}

static uint64_t noise_seed(const pd_t *t) { return t->seed ^ ((uint64_t)t->restarts * 0x9E3779B97F4A7C15ull); }

static void pd_reseed(void *state, uint32_t restarts) {
    pd_t *t = state;
    t->restarts = restarts;
    ebmc_chain_set_seed(t->chain, noise_seed(t));
    ebmc_chain_set_seed(t->rchain, noise_seed(t));
}

static int pd_grids(void *state, ebmc_grid *g, int max) {
    pd_t *t = state;
    const ebmc_model_cfg *mc = &t->c.mc;
    if (mc->img_size == 1 || max < 1) return 0; /* 2-D points: no images */
    g[0] = (ebmc_grid){"particles", ebmc_chain_state(t->chain), t->N < 64 ? t->N : 64, mc->img_c, mc->img_size,
                       mc->img_size};
    return 1;
}

static const char *const PD_SAMPLE_NAMES[] = {"particles", NULL};

/* the particle set itself (the model's samples in particle dynamics) */
static ebmc_status pd_sample(void *state, const ebmc_sample_opts *o, float **outs, char *desc, size_t desclen,
                             char *err, size_t errlen) {
    pd_t *t = state;
    if (o->n > t->N) {
        snprintf(err, errlen, "--n %d: the run has %d particles (particles.count)", o->n, t->N);
        return EBMC_E_INVALID;
    }
    snprintf(desc, desclen, "the first %d of the %d particles", o->n, t->N);
    ebmc_status s = ebmc_copy(t->ctx, outs[0], ebmc_chain_state(t->chain), (size_t)o->n * t->D * sizeof(float),
                              EBMC_COPY_D2H);
    if (s) snprintf(err, errlen, "sampling: %s", ebmc_ctx_error(t->ctx));
    return s;
}

static int pd_plan(void *state, ebmc_plan_row *rows, int max) {
    pd_t *t = state;
    EBMC_ASSERT(max >= 3);
    size_t np = ebmc_net_param_count(t->E);
    ebmc_tape_t *te[3] = {t->tD, t->tX, ebmc_potential_tape(t->pE)};
    rows[0] = ebmc_plan_net_row("E", t->E, t->opt, te, 3);
    rows[1] = (ebmc_plan_row){.name = "E_prev", .params = np, .param_bytes = np * 4, .tapes = 1, .arenas = 1,
                              .tape_bytes = ebmc_tape_bytes(ebmc_potential_tape(t->pP))};
    size_t nd = (size_t)t->N * t->D;
    rows[2] = (ebmc_plan_row){.name = "particles"};
    rows[2].other_bytes = (5 * nd + (size_t)t->max_re * t->D + (size_t)t->B * t->D + (size_t)t->N + t->B) * 4 +
                          (t->c.method == PD_REPLAY ? (size_t)t->c.capacity * t->D * 4 : 0);
    return 3;
}

/* `ebmc score`: the energy E itself (the net outputs E, learnable base included; the particles
 * descend it), batches of at most N on the particle pass's tape through the g_old scratch */
static ebmc_status pd_energy(void *state, const float *x, int n, float *e, char *err, size_t errlen) {
    pd_t *t = state;
    ebmc_energy_pass p = {t->E, t->tX, t->g_old, NULL, 1.0f, 0.0f, t->N, (size_t)t->D, 1.0f};
    return ebmc_net_energy(&p, x, n, e, err, errlen);
}

const ebmc_recipe ebmc_recipe_particles = {
    .name = "particles",
    .summary = "Particle dynamics for learning EBMs (Neklyudov, Jaini & Welling 2021): alpha, beta, pcd, replay",
    .precision = EBMC_PREC_FP32, /* moves: the difference of two gradients after a 1e-4 step */
    .keys = PD_KEYS,
    .n_keys = (int)(sizeof PD_KEYS / sizeof PD_KEYS[0]),
    .config_size = sizeof(pd_cfg),
    .state_size = sizeof(pd_t),
    .parse = pd_parse,
    .data_shape = ebmc_recipe_model_data_shape,
    .setup = pd_setup,
    .iteration = pd_iteration,
    .report = pd_report,
    .ckpt_items = pd_ckpt_items,
    .loaded = pd_loaded,
    .grids = pd_grids,
    .reseed = pd_reseed,
    .sample_names = PD_SAMPLE_NAMES,
    .sample = pd_sample,
    .sample_shape = ebmc_recipe_model_sample_shape,
    .plan = pd_plan,
    .destroy = pd_destroy,
    .energy = pd_energy,
};
