/* What the two cooperative-learning recipes share (coopvaebm.c, coopnets.c; coop.h): the config
 * keys both read, set-up (E, G, and I for the VAE; Adam; tapes; the x-chains at the chain count,
 * which differs from the data batch), the synthesis step z -> G(z) -> Langevin, E's update, the
 * metrics, checkpoint items, grids, `ebmc sample` and the memory plan.
 *
 * The chains: x <- x - (d^2/2)(x/sr^2 - grad f(x)) + c xi (specs/teaching.md 0), i.e. the general
 * kernel with U = -sum f, a = d^2/2, b = d^2/(2 sr^2), noise c (CoopVAEBM's CIFAR code: none).
 * Randomness: Philox streams keyed by (seed, stream, chain, step, element); z and eps by the
 * iteration, the chains by their own step counters. */
#include "recipes/coop.h"
#include "train/energy.h"
#include "ebmc/nvtx.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

ebmc_status coop_sumto(ebmc_ctx_t *ctx, const float *x, size_t n, ebmc_reduce_mode m, float *out) {
    ebmc_reduce_desc r = {1, n, m, 0.0f};
    return ebmc_reduce(ctx, &r, x, out);
}

ebmc_status coop_copy(ebmc_ctx_t *ctx, float *dst, const float *src, size_t n, float a) {
    ebmc_axpby_desc d = {n, a, 0.0f};
    return ebmc_axpby(ctx, &d, src, dst);
}

ebmc_status coop_fill(ebmc_ctx_t *ctx, float *dst, size_t n, float v) {
    ebmc_fill_desc f = {n, v};
    return ebmc_fill(ctx, &f, dst);
}

uint64_t coop_noise_seed(const coop_t *t) { return t->seed ^ ((uint64_t)t->restarts * 0x9E3779B97F4A7C15ull); }

/* ------------------------------------------------------------------ config */

/* lr(epoch) = lr * decay^(epoch / decay_epochs): TF's exponential_decay(lr, epoch, 20, 0.98)
 * without staircase, as ExponentialLR's gamma^epoch with gamma = decay^(1/decay_epochs) */
static ebmc_adam_cfg adam_of(const ebmc_config_t *cfg, const char *lr, const char *b1) {
    double decay = ebmc_config_float(cfg, "train", "lr_decay");
    double every = (double)ebmc_config_int(cfg, "train", "lr_decay_epochs");
    return (ebmc_adam_cfg){ebmc_config_float(cfg, "train", lr), ebmc_config_float(cfg, "train", b1),
                           ebmc_config_float(cfg, "train", "beta2"), 1e-8, 0.0, pow(decay, 1.0 / every)};
}

ebmc_status coop_parse_common(const ebmc_config_t *cfg, coop_cfg *c, char *err, size_t errlen) {
    static const char *const widths[] = {"nz", "ngf", "ndf", "nif", "hidden", NULL};
    ebmc_status st = ebmc_recipe_model_read(cfg, &c->mc, widths, err, errlen);
    if (st) return st;
    c->chains = (int)ebmc_config_int(cfg, "train", "chains");
    c->adam_e = adam_of(cfg, "lr_e", "beta1_e");
    c->adam_g = adam_of(cfg, "lr_g", "beta1_g");
    c->steps = (int)ebmc_config_int(cfg, "langevin", "steps");
    c->delta = ebmc_config_float(cfg, "langevin", "step_size");
    c->sigma_ref = ebmc_config_float(cfg, "langevin", "sigma_ref");
    c->noise = ebmc_config_float(cfg, "langevin", "noise");
    c->sample = ebmc_sample_cfg_read(cfg);
    c->sample_bn_running = !strcmp(ebmc_config_str(cfg, "sample", "bn"), "running");
    return EBMC_OK;
}

/* ------------------------------------------------------------------ set-up */

void coop_destroy(void *state) {
    coop_t *t = state;
    ebmc_chain_free(t->cx);
    ebmc_chain_free(t->cz);
    ebmc_potential_free(t->px);
    ebmc_potential_free(t->pz);
    ebmc_tape_t *tapes[] = {t->tG, t->tGu, t->tI, t->tEd, t->tEs};
    for (int i = 0; i < 5; i++) ebmc_tape_free(tapes[i]);
    ebmc_adam_free(t->oE);
    ebmc_adam_free(t->oG);
    ebmc_adam_free(t->oI);
    float *bufs[] = {t->x_real, t->z, t->eps, t->zenc, t->gen, t->dyG, t->dz, t->dmu, t->ds, t->dyE, t->rowloss, t->metrics};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) ebmc_free(t->ctx, bufs[i]);
    ebmc_net_free(t->E);
    ebmc_net_free(t->G);
    ebmc_net_free(t->I);
    memset(t, 0, sizeof *t);
}

static ebmc_status build_nets(coop_t *t, char *err, size_t errlen) {
    ebmc_net_t **nets[3] = {&t->E, &t->G, &t->I};
    for (int r = 0; r < (t->c.vae ? 3 : 2); r++) {
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

static ebmc_langevin_params x_params(const coop_cfg *c, int steps, double delta, double noise) {
    ebmc_langevin_params p = ebmc_langevin_coop((float)delta, (float)c->sigma_ref, noise > 0, steps);
    p.c = (float)noise;
    return p;
}

/* Tapes of passes never live together share memory: E(x) and E(x~) run after the chain; G's
 * update pass after the chain (and, in coopnets, after the latent chain). G(z) keeps its own:
 * x0 is the generator grid. */
static ebmc_status tape_on(ebmc_net_t *net, int n, ebmc_tape_t *base, int base_max, ebmc_tape_t **out) {
    if (!base || n > base_max) return ebmc_tape_create(net, n, true, out);
    return ebmc_tape_create_shared(net, n, true, base, out);
}

static ebmc_status build_passes(coop_t *t, bool share) {
    const coop_cfg *c = &t->c;
    ebmc_ctx_t *ctx = t->ctx;
    int N = t->N, B = t->B, M = B > N ? B : N;
    EBMC_TRY(ebmc_adam_create(t->E, &c->adam_e, &t->oE));
    EBMC_TRY(ebmc_adam_create(t->G, &c->adam_g, &t->oG));
    if (c->vae) EBMC_TRY(ebmc_adam_create(t->I, &c->adam_g, &t->oI));
    EBMC_TRY(ebmc_potential_energy(t->E, N, -1.0f, &t->px));
    EBMC_TRY(ebmc_potential_energy_trace(t->px, c->steps > 0 ? c->steps : 1));
    ebmc_tape_t *pe = share ? ebmc_potential_tape(t->px) : NULL;
    EBMC_TRY(ebmc_tape_create(t->G, N, true, &t->tG));
    EBMC_TRY(tape_on(t->E, N, pe, N, &t->tEs));
    EBMC_TRY(tape_on(t->E, B, pe, N, &t->tEd));
    ebmc_langevin_params px = x_params(c, c->steps, c->delta, c->noise);
    EBMC_TRY(ebmc_chain_create(t->px, &px, N, t->seed, COOP_STREAM_X, &t->cx));
    if (!c->vae && c->gen_steps > 0) { /* U(z) = sum_b |x~_b - G(z_b)|^2 / (2 sigma_g^2 N) */
        float sg = (float)c->sigma_g;
        EBMC_TRY(ebmc_potential_latent(t->G, N, 1.0f / (sg * sg * (float)N), &t->pz));
        ebmc_langevin_params pz = ebmc_langevin_dualmcmc_z((float)c->gen_step, 1.0f, c->gen_steps);
        EBMC_TRY(ebmc_chain_create(t->pz, &pz, N, t->seed, COOP_STREAM_Z, &t->cz));
    }
    EBMC_TRY(tape_on(t->G, N, share && t->pz ? ebmc_potential_tape(t->pz) : NULL, N, &t->tGu));
    if (c->vae) EBMC_TRY(ebmc_tape_create(t->I, N, true, &t->tI));
    size_t nimg = (size_t)N * t->img, nzb = (size_t)N * t->nz;
    float **ib[] = {&t->gen, &t->dyG};
    for (int i = 0; i < 2; i++) EBMC_TRY(ebmc_alloc(ctx, (void **)ib[i], nimg * sizeof(float)));
    EBMC_TRY(ebmc_alloc(ctx, (void **)&t->x_real, (size_t)B * t->img * sizeof(float)));
    float **zb[] = {&t->z, &t->eps, &t->zenc, &t->dz, &t->dmu, &t->ds};
    for (int i = 0; i < 6; i++) EBMC_TRY(ebmc_alloc(ctx, (void **)zb[i], nzb * sizeof(float)));
    EBMC_TRY(ebmc_alloc(ctx, (void **)&t->dyE, (size_t)M * sizeof(float)));
    EBMC_TRY(ebmc_alloc(ctx, (void **)&t->rowloss, (size_t)N * sizeof(float)));
    EBMC_TRY(ebmc_alloc(ctx, (void **)&t->metrics, C_COUNT * sizeof(float)));
    return coop_fill(ctx, t->metrics, C_COUNT, 0.0f);
}

ebmc_status coop_setup(void *state, const void *typed, const ebmc_recipe_env *env, char *err, size_t errlen) {
    coop_t *t = state;
    t->c = *(const coop_cfg *)typed;
    t->ctx = env->ctx;
    t->seed = env->seed;
    t->B = env->batch;
    EBMC_TRY(ebmc_env_share(env, t->c.chains, "train.chains", &t->N, err, errlen)); /* a rank's share */
    const ebmc_model_cfg *mc = &t->c.mc;
    if (env->has_data && (env->data_c != mc->img_c || env->data_h != mc->img_size || env->data_w != mc->img_size)) {
        snprintf(err, errlen, "data %s gives %dx%dx%d examples but model.arch %s needs %dx%dx%d "
                 "(HINT: data.size, data.mnist_pad or another model.arch)", env->data_name, env->data_c,
                 env->data_h, env->data_w, mc->arch, mc->img_c, mc->img_size, mc->img_size);
        return EBMC_E_INVALID;
    }
    EBMC_TRY(build_nets(t, err, errlen));
    t->nz = mc->nz;
    t->img = (size_t)mc->img_c * mc->img_size * mc->img_size;
    ebmc_status s = build_passes(t, env->share_tapes);
    if (s) {
        snprintf(err, errlen, "set-up: %s", ebmc_ctx_error(t->ctx));
        return s;
    }
    ebmc_chain_set_graph(t->cx, env->graphs);
    if (t->cz) ebmc_chain_set_graph(t->cz, env->graphs);
    return EBMC_OK;
}

/* ------------------------------------------------------------------ the shared steps */

ebmc_status coop_synthesise(coop_t *t, const float *batch, int64_t it) {
    ebmc_ctx_t *ctx = t->ctx;
    int N = t->N;
    size_t nimg = (size_t)N * t->img;
    float *M = t->metrics, *xs = ebmc_chain_state(t->cx);
    EBMC_TRY(ebmc_copy(ctx, t->x_real, batch, (size_t)t->B * t->img * sizeof(float), EBMC_COPY_H2D));
    ebmc_rng_key kz = {coop_noise_seed(t), COOP_STREAM_PRIOR, NULL, (uint32_t)it};
    EBMC_TRY(ebmc_init_normal(ctx, t->z, N, (size_t)t->nz, 1.0f, kz));
    EBMC_TRY(ebmc_net_forward(t->G, t->tG, N, t->z));
    EBMC_TRY(coop_copy(ctx, xs, ebmc_tape_output(t->tG, 0), nimg, 1.0f));
    EBMC_TRY(coop_copy(ctx, t->gen, xs, nimg, 1.0f));
    if (t->c.steps == 0) return coop_fill(ctx, M + C_EGEN, 2, NAN);
    EBMC_TRY(ebmc_chain_run(t->cx, N));
    const float *tr = ebmc_potential_trace(t->px);
    EBMC_TRY(coop_copy(ctx, M + C_EGEN, tr, 1, 1.0f));
    return coop_copy(ctx, M + C_ELAST, tr + t->c.steps - 1, 1, 1.0f);
}

/* L_E = mean_N f(x~) - mean_B f(x): dL/df(x~_i) = 1/N, dL/df(x_b) = -1/B */
ebmc_status coop_update_E(coop_t *t, int64_t epoch) {
    ebmc_ctx_t *ctx = t->ctx;
    float *M = t->metrics, *xs = ebmc_chain_state(t->cx);
    const float *dy[1] = {t->dyE};
    EBMC_TRY(ebmc_net_zero_grad(t->E));
    EBMC_TRY(ebmc_net_forward(t->E, t->tEs, t->N, xs));
    EBMC_TRY(coop_sumto(ctx, ebmc_tape_output(t->tEs, 0), (size_t)t->N, EBMC_REDUCE_SUM, M + C_EREV));
    EBMC_TRY(coop_fill(ctx, t->dyE, (size_t)t->N, (float)(1.0 / t->N)));
    EBMC_TRY(ebmc_net_backward(t->E, t->tEs, dy, EBMC_GRAD_FULL, NULL, 0.0f));
    EBMC_TRY(ebmc_net_forward(t->E, t->tEd, t->B, t->x_real));
    EBMC_TRY(coop_sumto(ctx, ebmc_tape_output(t->tEd, 0), (size_t)t->B, EBMC_REDUCE_SUM, M + C_EDATA));
    EBMC_TRY(coop_fill(ctx, t->dyE, (size_t)t->B, (float)(-1.0 / t->B)));
    EBMC_TRY(ebmc_net_backward(t->E, t->tEd, dy, EBMC_GRAD_FULL, NULL, 0.0f));
    return ebmc_adam_step(t->oE, epoch);
}

ebmc_status coop_fetch_metrics(coop_t *t) {
    return ebmc_copy(t->ctx, t->hmet, t->metrics, C_COUNT * sizeof(float), EBMC_COPY_D2H);
}

/* ------------------------------------------------------------------ what the shell reads */

void coop_report_common(coop_t *t, int64_t epoch, ebmc_report *r) {
    const float *m = t->hmet;
    double e_data = m[C_EDATA] / t->B, e_rev = m[C_EREV] / t->N;
    ebmc_report_add(r, "loss_e", e_rev - e_data, true);
    ebmc_report_add(r, "f_data", e_data, false);
    ebmc_report_add(r, "f_gen", m[C_EGEN] / t->N, false);
    ebmc_report_add(r, "f_revised", e_rev, false);
    r->gap = r->n;
    ebmc_report_add(r, "f_gap", e_data - e_rev, false);
    ebmc_report_add(r, "f_chain_last", m[C_ELAST] / t->N, false);
    ebmc_report_add(r, "lr_e", ebmc_adam_lr(t->oE, epoch), false);
    ebmc_report_add(r, "lr_g", ebmc_adam_lr(t->oG, epoch), false);
    r->images = t->B;
    r->chain_steps = (double)t->N * t->c.steps;
}

int coop_ckpt_items(void *state, ebmc_ckpt_item *it, int max) {
    coop_t *t = state;
    t->steps_x = ebmc_chain_step(t->cx);
    t->steps_z = t->cz ? ebmc_chain_step(t->cz) : 0;
    int n = 0;
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "E", .ptr = t->E};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "G", .ptr = t->G};
    if (t->I) it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "I", .ptr = t->I};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_ADAM, .name = "optE", .ptr = t->oE};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_ADAM, .name = "optG", .ptr = t->oG};
    if (t->oI) it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_ADAM, .name = "optI", .ptr = t->oI};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "chain_x.step", .ptr = &t->steps_x, .lo = 0, .hi = UINT32_MAX};
    if (t->cz)
        it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "chain_z.step", .ptr = &t->steps_z, .lo = 0, .hi = UINT32_MAX};
    EBMC_ASSERT(n <= max);
    return n;
}

ebmc_status coop_loaded(void *state, char *err, size_t errlen) {
    coop_t *t = state;
    ebmc_status s = ebmc_chain_set_step(t->cx, (uint32_t)t->steps_x);
    if (!s && t->cz) s = ebmc_chain_set_step(t->cz, (uint32_t)t->steps_z);
    if (s) snprintf(err, errlen, "restoring the chains' counters: %s", ebmc_ctx_error(t->ctx));
    return s;
}

void coop_reseed(void *state, uint32_t restarts) {
    coop_t *t = state;
    t->restarts = restarts;
    ebmc_chain_set_seed(t->cx, coop_noise_seed(t));
    if (t->cz) ebmc_chain_set_seed(t->cz, coop_noise_seed(t));
}

int coop_grids(void *state, ebmc_grid *g, int max) {
    coop_t *t = state;
    const ebmc_model_cfg *mc = &t->c.mc;
    if (mc->img_size == 1) return 0; /* 2-D points: no images */
    const float *bufs[4] = {t->x_real, t->gen, ebmc_chain_state(t->cx), ebmc_tape_output(t->tGu, 0)};
    const char *names[4] = {"data", "generator", "revised", t->c.vae ? "reconstruction" : "generator_fit"};
    int counts[4] = {t->B, t->N, t->N, t->N};
    int n = 0;
    for (int i = 0; i < 4 && n < max; i++)
        g[n++] = (ebmc_grid){names[i], bufs[i], counts[i], mc->img_c, mc->img_size, mc->img_size};
    return n;
}

const char *const COOP_SAMPLE_NAMES[] = {"generator", "revised", NULL};

/* z ~ N(0, I) -> G -> `steps` Langevin steps, in full batches of the training chain count. G's
 * BatchNorm: sample.bn = running uses the running statistics (coopnets' default: the port's
 * test() samples with G.eval()), batch each batch's, as in training (specs/teaching.md 4.2). */
ebmc_status coop_sample(void *state, const ebmc_sample_opts *o, float **outs, char *desc, size_t desclen,
                        char *err, size_t errlen) {
    coop_t *t = state;
    ebmc_sample_cfg sc = ebmc_sample_cfg_apply(t->c.sample, o);
    ebmc_langevin_params p = x_params(&t->c, sc.steps, sc.step, sc.noise);
    ebmc_chain_set_params(t->cx, &p);
    ebmc_chain_set_seed(t->cx, o->seed);
    ebmc_status s = ebmc_chain_set_step(t->cx, 0);
    int N = t->N;
    size_t img = t->img;
    float *xs = ebmc_chain_state(t->cx);
    if (!s && t->c.sample_bn_running) s = ebmc_net_set_bn_eval(t->G, true);
    for (int done = 0; !s && done < o->n; done += N) {
        int take = o->n - done < N ? o->n - done : N;
        ebmc_rng_key kz = {o->seed, COOP_STREAM_SAMPLE, NULL, (uint32_t)(done / N)};
        s = ebmc_init_normal(t->ctx, t->z, N, (size_t)t->nz, 1.0f, kz);
        if (!s) s = ebmc_net_forward(t->G, t->tG, N, t->z);
        if (!s) s = coop_copy(t->ctx, xs, ebmc_tape_output(t->tG, 0), (size_t)N * img, 1.0f);
        if (!s) s = ebmc_copy(t->ctx, outs[0] + (size_t)done * img, xs, (size_t)take * img * sizeof(float), EBMC_COPY_D2H);
        if (!s && sc.steps > 0) s = ebmc_chain_run(t->cx, N);
        if (!s) s = ebmc_copy(t->ctx, outs[1] + (size_t)done * img, xs, (size_t)take * img * sizeof(float), EBMC_COPY_D2H);
    }
    ebmc_status off = ebmc_net_set_bn_eval(t->G, false);
    if (!s) s = off;
    if (s) snprintf(err, errlen, "sampling: %s", ebmc_ctx_error(t->ctx));
    snprintf(desc, desclen, "%d Langevin steps of size %g (sigma_ref %g), noise %g, in batches of %d chains, G's "
             "BatchNorm from %s statistics", sc.steps, sc.step, t->c.sigma_ref, sc.noise, N,
             t->c.sample_bn_running ? "running" : "batch");
    return s;
}

int coop_plan(void *state, ebmc_plan_row *rows, int max) {
    coop_t *t = state;
    ebmc_tape_t *te[3] = {ebmc_potential_tape(t->px), t->tEs, t->tEd};
    ebmc_tape_t *tg[3] = {t->tG, t->pz ? ebmc_potential_tape(t->pz) : NULL, t->tGu};
    EBMC_ASSERT(max >= 4);
    int n = 0;
    rows[n++] = ebmc_plan_net_row("E", t->E, t->oE, te, 3);
    rows[n++] = ebmc_plan_net_row("G", t->G, t->oG, tg, 3);
    if (t->I) rows[n++] = ebmc_plan_net_row("I", t->I, t->oI, &t->tI, 1);
    size_t nimg = (size_t)t->N * t->img, nzb = (size_t)t->N * t->nz;
    rows[n] = (ebmc_plan_row){.name = "buffers"};
    /* x0, dL/dG, the chain's state and gradient (N images); the data batch; z, eps, z_enc, dz,
     * dmu, ds (+ the latent chain's state and gradient); dE, row losses, metrics, the trace */
    rows[n++].other_bytes = (4 * nimg + (size_t)t->B * t->img + 8 * nzb + 3 * (size_t)(t->N + t->B) +
                             C_COUNT + (size_t)t->c.steps) * sizeof(float) + 128;
    return n;
}

static const char *const COOP_PROBES = "edata,erev,egen,elast,recon,kl";

int coop_probes(void *state, const char **names, const float **values) {
    *names = COOP_PROBES;
    *values = ((coop_t *)state)->hmet;
    return C_COUNT;
}

/* `ebmc score` (both recipes): the energy the chains descend, -f(x) + |x|^2 / (2 sr^2): the
 * descriptor outputs the score f and the model is p(x) ∝ exp(f(x)) N(x; 0, sr^2 I) (the
 * reference's term is the kernel's b x, specs/teaching.md 0; its log-normaliser is a constant and
 * left out). -f in batches of at most B through the data buffer on E(x)'s tape; the reference
 * term in double on the host. */
ebmc_status coop_energy(void *state, const float *x, int n, float *e, char *err, size_t errlen) {
    coop_t *t = state;
    ebmc_energy_pass p = {t->E, t->tEd, t->x_real, NULL, 1.0f, 0.0f, t->B, t->img, -1.0f};
    EBMC_TRY(ebmc_net_energy(&p, x, n, e, err, errlen));
    double k = 0.5 / (t->c.sigma_ref * t->c.sigma_ref);
    for (int i = 0; i < n; i++) {
        double q = 0;
        for (size_t j = 0; j < t->img; j++) q += (double)x[(size_t)i * t->img + j] * x[(size_t)i * t->img + j];
        e[i] = (float)((double)e[i] + k * q);
    }
    return EBMC_OK;
}
