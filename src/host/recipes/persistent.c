/* Persistent / replay-buffer Langevin training (IGEBM: Du & Mordatch, NeurIPS 2019) as a recipe
 * (run.recipe = persistent), specs/teaching.md 3.3, following the authors' code
 * (openai/ebm_code_release train.py, utils.py ReplayBuffer, data.py) where it and the paper differ:
 *   1. x+ = dequantised data: q/256 + U(0, 1/256) for pixel q (data.py: im * 255/256 + noise)
 *   2. chains: each of the B slots takes a buffer entry (uint8, dequantised) with probability
 *      0.95 once the buffer holds more than one batch, else fresh U[0, 1] noise
 *   3. K = 60 steps: x += N(0, 0.005^2); x <- clamp(x - 10 clip(grad E, +-0.01), 0, 1)
 *   4. L = mean E(x+) - mean E(x-) + l2 (mean E(x+)^2 + mean E(x-)^2), the code's clipped Adam
 *      (custom_adam.py: each gradient element clipped to +-(3 sqrt(v_hat) + 0.1) first; lr 3e-4,
 *      betas (0, 0.999)); x- = the chains' final states
 *   4b. ResNet32Large(train=True): dropout 0.5 after every residual block's c1 in every forward of
 *      training (E(x+), each Langevin step, E(x-)); masks keyed by Philox (stream 12, step 2 it and
 *      2 it + 1 for E(x+), E(x-); stream 11 and the chain's step counter for the chain)
 *   5. the final states go into the buffer (FIFO, 10,000 entries)
 * Spectral norm's power iteration runs once per iteration, as in the TensorFlow code (one
 * u.assign per session run, every forward of the iteration uses the same W/sigma): E(x+) runs
 * first with one power iteration, the chain and E(x-) with none. Randomness: Philox streams
 * keyed by (seed, stream, chain, step, element); data noise and buffer draw by the iteration,
 * the chain by its own device step counter. The buffer (storage, fill count, next slot) and the
 * counter are checkpointed. */
#include "recipes/persistent.h"
#include "train/energy.h"
#include "ebmc/nvtx.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define U 1, 0 /* range unchecked */

/* Defaults: the README's CIFAR-10 unconditional command (--num_steps=60 --batch_size=128
 * --step_lr=10.0 --proj_norm=0.01 --zero_kl --replay_batch --large_model) and train.py's
 * defaults (lr 3e-4, l2_coeff 1, noise 0.005, ReplayBuffer(10000), 5% re-initialisation). */
static const ebmc_cfg_key PC_KEYS[] = {
    {"model", "arch", EBMC_CFG_CHOICE, "igebm", "architecture of the EBM", U, "igebm|shortrun|mnist|toy2d"},
    {"model", "ndf", EBMC_CFG_INT, "0", "width (0: the architecture's default; igebm: 128)", 0, 65536, NULL},
    {"model", "hidden", EBMC_CFG_INT, "0", "toy2d: MLP width (0: default)", 0, 65536, NULL},
    {"model", "img_size", EBMC_CFG_INT, "0", "igebm: image size (0: the architecture's, 32)", 0, 4096, NULL},
    {"model", "dropout", EBMC_CFG_FLOAT, "0.5", "igebm: dropout probability after each residual block's c1 conv, in every training forward, Langevin included (the code's ResNet32Large(train=True)); off at test time (ebmc sample, score); 0: no dropout layers", 0, 0.99, NULL},
    {"train", "lr", EBMC_CFG_FLOAT, "3e-4", "Adam learning rate", 0, 1, NULL},
    {"train", "beta1", EBMC_CFG_FLOAT, "0", "Adam beta1", 0, 0.999999, NULL},
    {"train", "beta2", EBMC_CFG_FLOAT, "0.999", "Adam beta2", 0, 0.999999, NULL},
    {"train", "optimizer", EBMC_CFG_CHOICE, "adam_clip", "adam_clip: the code's custom_adam.py (each gradient element clipped to +-(3 sqrt(v_hat) + 0.1) by the second moment before the step, TensorFlow's epsilon on the uncorrected sqrt(v)); adam: torch.optim.Adam", U, "adam_clip|adam"},
    {"train", "clip_std", EBMC_CFG_FLOAT, "3", "adam_clip: the bound's multiple of sqrt(v_hat) (custom_adam.py: 3)", 0, 1e6, NULL},
    {"train", "clip_floor", EBMC_CFG_FLOAT, "0.1", "adam_clip: the bound's constant (custom_adam.py: 0.1)", 0, 1e6, NULL},
    {"train", "gamma", EBMC_CFG_FLOAT, "1", "ExponentialLR factor per epoch (1: constant, as the code)", 0, 1, NULL},
    {"train", "l2_coeff", EBMC_CFG_FLOAT, "1", "weight of the energy regulariser mean E(x+)^2 + mean E(x-)^2", 0, 1e6, NULL},
    {"train", "dequantize", EBMC_CFG_BOOL, "true", "images: train on q/256 + U(0,1/256) in [0,1] (false: data as it is)", U, NULL},
    {"buffer", "size", EBMC_CFG_INT, "10000", "replay buffer entries (FIFO)", 1, 1 << 26, NULL},
    {"buffer", "reinit", EBMC_CFG_FLOAT, "0.05", "probability that a chain starts from fresh noise instead of the buffer", 0, 1, NULL},
    {"buffer", "uint8", EBMC_CFG_BOOL, "true", "store entries as uint8 over [lo, hi] (dequantised on read)", U, NULL},
    {"buffer", "levels", EBMC_CFG_INT, "255", "uint8 quantisation floor(levels (x - lo)/(hi - lo)): 255 as the code's compress_x_mod (read back as (q + u)/256: a 255/256 shrink per round trip), 256 unbiased", 2, 256, NULL},
    {"langevin", "steps", EBMC_CFG_INT, "60", "K: Langevin steps per iteration", 1, 100000, NULL},
    {"langevin", "step_size", EBMC_CFG_FLOAT, "10", "x <- x - step_size * clip(grad E)", 0, 1e6, NULL},
    {"langevin", "clip", EBMC_CFG_FLOAT, "0.01", "element-wise gradient clip (proj_norm; 0: off)", 0, 1e6, NULL},
    {"langevin", "noise", EBMC_CFG_FLOAT, "0.005", "std of the noise added before each gradient", 0, 100, NULL},
    {"langevin", "lo", EBMC_CFG_FLOAT, "0", "the box: clamp, fresh noise U[lo, hi] and the buffer's range", -1e6, 1e6, NULL},
    {"langevin", "hi", EBMC_CFG_FLOAT, "1", "upper end of the box", -1e6, 1e6, NULL},
    {"sample", "steps", EBMC_CFG_INT, "60", "test-time Langevin steps from fresh U[lo, hi] noise", 0, 100000, NULL},
    {"sample", "step_size", EBMC_CFG_FLOAT, "10", "test-time step", 0, 1e6, NULL},
    {"sample", "noise", EBMC_CFG_FLOAT, "0.005", "test-time noise", 0, 100, NULL},
};

static ebmc_status pc_parse(const ebmc_config_t *cfg, void *typed, char *err, size_t errlen) {
    pc_cfg *c = typed;
    static const char *const widths[] = {"ndf", "hidden", NULL};
    ebmc_status st = ebmc_recipe_model_read(cfg, &c->mc, widths, err, errlen);
    if (st) return st;
    const char *arch = ebmc_config_str(cfg, "model", "arch");
    if (ebmc_config_int(cfg, "model", "img_size")) {
        if (strcmp(arch, "igebm")) {
            snprintf(err, errlen, "model.img_size: only model.arch = igebm takes another image size");
            return EBMC_E_INVALID;
        }
        c->mc.img_size = (int)ebmc_config_int(cfg, "model", "img_size");
    }
    if (!strcmp(arch, "igebm")) c->mc.dropout = (float)ebmc_config_float(cfg, "model", "dropout");
    c->adam = (ebmc_adam_cfg){ebmc_config_float(cfg, "train", "lr"), ebmc_config_float(cfg, "train", "beta1"),
                              ebmc_config_float(cfg, "train", "beta2"), 1e-8, 0.0,
                              ebmc_config_float(cfg, "train", "gamma")};
    c->clip_adam = !strcmp(ebmc_config_str(cfg, "train", "optimizer"), "adam_clip");
    c->clip_std = ebmc_config_float(cfg, "train", "clip_std");
    c->clip_floor = ebmc_config_float(cfg, "train", "clip_floor");
    c->l2 = ebmc_config_float(cfg, "train", "l2_coeff");
    c->dequant = ebmc_config_bool(cfg, "train", "dequantize");
    c->buf_size = (int)ebmc_config_int(cfg, "buffer", "size");
    c->p_reinit = ebmc_config_float(cfg, "buffer", "reinit");
    c->u8 = ebmc_config_bool(cfg, "buffer", "uint8");
    c->levels = (int)ebmc_config_int(cfg, "buffer", "levels");
    c->steps = (int)ebmc_config_int(cfg, "langevin", "steps");
    c->step = ebmc_config_float(cfg, "langevin", "step_size");
    c->clip = ebmc_config_float(cfg, "langevin", "clip");
    c->noise = ebmc_config_float(cfg, "langevin", "noise");
    c->lo = ebmc_config_float(cfg, "langevin", "lo");
    c->hi = ebmc_config_float(cfg, "langevin", "hi");
    if (!(c->lo < c->hi)) {
        snprintf(err, errlen, "langevin.lo (%g) must be below langevin.hi (%g)", c->lo, c->hi);
        return EBMC_E_INVALID;
    }
    c->sample = ebmc_sample_cfg_read(cfg);
    return EBMC_OK;
}

static void pc_destroy(void *state) {
    pc_t *t = state;
    ebmc_chain_free(t->chain);
    ebmc_potential_free(t->pot);
    ebmc_replay_free(t->buf);
    ebmc_tape_free(t->tP);
    ebmc_tape_free(t->tN);
    ebmc_adam_free(t->opt);
    float *bufs[] = {t->x_pos, t->dy, t->grid, t->metrics};
    for (int i = 0; i < 4; i++)
        if (bufs[i]) ebmc_free(t->ctx, bufs[i]);
    ebmc_net_free(t->E);
    memset(t, 0, sizeof *t);
}

static ebmc_langevin_params chain_params(const pc_cfg *c, double step, double noise, int steps) {
    ebmc_langevin_params p = ebmc_langevin_igebm((float)step, (float)c->clip, (float)noise, steps);
    p.lo = (float)c->lo;
    p.hi = (float)c->hi;
    if (p.c == 0.0f) p.noise = EBMC_NOISE_OFF;
    return p;
}

/* the net, Adam, the chain (own tape), E(x+)'s tape (its own: it lives across the chain run),
 * E(x-)'s (sharing the chain's when asked), the buffer (its first reuse once it holds more than
 * one batch, as the code's len(buffer) > batch_size), the batch and grid buffers */
static ebmc_status build(pc_t *t, bool share, char *err, size_t errlen) {
    ebmc_ctx_t *ctx = t->ctx;
    int B = t->B;
    t->E = ebmc_model_build(&t->c.mc, EBMC_NET_E, err, errlen);
    if (!t->E) return EBMC_E_INVALID;
    ebmc_status s = ebmc_net_finalize(t->E, ctx, true, t->seed + 101);
    if (s) {
        snprintf(err, errlen, "%s", ebmc_net_error(t->E));
        return s;
    }
    if (ebmc_net_value_count(t->E, ebmc_net_output_value(t->E, 0)) != 1) {
        snprintf(err, errlen, "model.arch %s: the EBM must output one value per example", t->c.mc.arch);
        return EBMC_E_INVALID;
    }
    ebmc_langevin_params p = chain_params(&t->c, t->c.step, t->c.noise, t->c.steps);
    if ((s = ebmc_adam_create(t->E, &t->c.adam, &t->opt)) || (s = ebmc_potential_energy(t->E, B, 1.0f, &t->pot)) ||
        (s = ebmc_potential_energy_trace(t->pot, t->c.steps)) ||
        (s = ebmc_chain_create(t->pot, &p, B, t->seed, PC_STREAM_X, &t->chain)) ||
        (s = ebmc_tape_create(t->E, B, true, &t->tP)) ||
        (s = share ? ebmc_tape_create_shared(t->E, B, true, ebmc_potential_tape(t->pot), &t->tN)
                   : ebmc_tape_create(t->E, B, true, &t->tN)) ||
        (s = ebmc_replay_create(ctx, t->c.buf_size, t->img, t->c.u8, (float)t->c.lo, (float)t->c.hi,
                                (float)(1.0 - t->c.p_reinit), B + 1, &t->buf)) ||
        (s = ebmc_alloc(ctx, (void **)&t->x_pos, (size_t)B * t->img * sizeof(float))) ||
        (s = ebmc_alloc(ctx, (void **)&t->grid, (size_t)B * t->img * sizeof(float))) ||
        (s = ebmc_alloc(ctx, (void **)&t->dy, (size_t)B * sizeof(float))) ||
        (s = ebmc_alloc(ctx, (void **)&t->metrics, 16 * sizeof(float)))) {
        snprintf(err, errlen, "set-up: %s", ebmc_ctx_error(ctx));
        return s;
    }
    ebmc_potential_dropout(t->pot, true, PC_STREAM_DROP_X); /* the chains' masks (model.dropout) */
    if (t->c.clip_adam) ebmc_adam_set_tf(t->opt, t->c.clip_std, t->c.clip_floor, true); /* custom_adam.py:155-156 */
    return EBMC_OK;
}

static ebmc_status pc_setup(void *state, const void *typed, const ebmc_recipe_env *env, char *err, size_t errlen) {
    pc_t *t = state;
    t->c = *(const pc_cfg *)typed;
    t->ctx = env->ctx;
    t->seed = env->seed;
    t->B = env->batch;
    const ebmc_model_cfg *mc = &t->c.mc;
    if (t->c.buf_size < t->B) { /* each iteration pushes the batch's final states */
        snprintf(err, errlen, "buffer.size = %d is smaller than the batch (%d chains): the replay buffer takes a "
                 "whole batch of final states each iteration (HINT: buffer.size >= train.batch_size)", t->c.buf_size,
                 t->B);
        return EBMC_E_INVALID;
    }
    if (env->has_data && (env->data_c != mc->img_c || env->data_h != mc->img_size || env->data_w != mc->img_size)) {
        snprintf(err, errlen, "data %s gives %dx%dx%d examples but model.arch %s needs %dx%dx%d "
                 "(HINT: data.size, data.mnist_pad or another model.arch)", env->data_name, env->data_c,
                 env->data_h, env->data_w, mc->arch, mc->img_c, mc->img_size, mc->img_size);
        return EBMC_E_INVALID;
    }
    t->img = (size_t)mc->img_c * mc->img_size * mc->img_size;
    t->images = mc->img_size > 1;
    if (t->images && t->c.dequant && (t->c.lo != 0 || t->c.hi != 1)) {
        snprintf(err, errlen, "langevin.lo/hi must be 0 and 1 with train.dequantize (images in [0,1])");
        return EBMC_E_INVALID;
    }
    EBMC_TRY(build(t, env->share_tapes, err, errlen));
    ebmc_chain_set_graph(t->chain, env->graphs);
    ebmc_replay_set_push_levels(t->buf, (float)t->c.levels);
    return EBMC_OK;
}

/* ------------------------------------------------------------------ one iteration */

static uint64_t noise_seed(const pc_t *t) { return t->seed ^ ((uint64_t)t->restarts * 0x9E3779B97F4A7C15ull); }

static ebmc_status reduce_to(ebmc_ctx_t *ctx, const float *x, size_t n, ebmc_reduce_mode m, float *out) {
    ebmc_reduce_desc r = {1, n, m, 0.0f};
    return ebmc_reduce(ctx, &r, x, out);
}

static ebmc_status copy_f(ebmc_ctx_t *ctx, float *dst, const float *src, size_t n) {
    ebmc_axpby_desc d = {n, 1.0f, 0.0f};
    return ebmc_axpby(ctx, &d, src, dst);
}

/* y = a x + b (elementwise; y and x distinct) */
static ebmc_status affine(ebmc_ctx_t *ctx, float *y, const float *x, size_t n, float a, float b) {
    ebmc_fill_desc f = {n, b};
    ebmc_axpby_desc d = {n, a, 1.0f};
    EBMC_TRY(ebmc_fill(ctx, &f, y));
    return ebmc_axpby(ctx, &d, x, y);
}

/* 1: x+ = q/256 + U(0, 1/256) for images given as x = q/127.5 - 1 (dequantize), else x */
static ebmc_status positive_batch(pc_t *t, const float *batch, int64_t it) {
    ebmc_ctx_t *ctx = t->ctx;
    size_t n = (size_t)t->B * t->img;
    if (!t->images || !t->c.dequant) return ebmc_copy(ctx, t->x_pos, batch, n * sizeof(float), EBMC_COPY_H2D);
    /* the batch lands in the grid buffer (free until the iteration's end): affine is not in place */
    EBMC_TRY(ebmc_copy(ctx, t->grid, batch, n * sizeof(float), EBMC_COPY_H2D));
    EBMC_TRY(affine(ctx, t->x_pos, t->grid, n, 127.5f / 256.0f, 127.5f / 256.0f));
    ebmc_rng_desc r = {t->B, t->img, EBMC_RNG_UNIFORM, 0.0f, 1.0f / 256.0f, true,
                       {noise_seed(t), PC_STREAM_DATA, NULL, (uint32_t)it}};
    return ebmc_rng(ctx, &r, t->x_pos);
}

/* The dropout masks of E(x+) (pass 0) and E(x-) (pass 1) of iteration `it` (the chain's come
 * from its step counter, ebmc_potential_dropout) */
static void pass_dropout(pc_t *t, int64_t it, uint32_t pass) {
    ebmc_rng_key k = {noise_seed(t), PC_STREAM_DROP, NULL, (uint32_t)(2 * it) + pass};
    ebmc_net_set_dropout(t->E, true, k);
}

/* E(x+) with this iteration's one power iteration; then the chains from the buffer */
static ebmc_status phase_sample(pc_t *t, int64_t it) {
    ebmc_ctx_t *ctx = t->ctx;
    pass_dropout(t, it, 0);
    ebmc_net_set_sn_iters(t->E, 1);
    EBMC_TRY(ebmc_net_forward(t->E, t->tP, t->B, t->x_pos));
    ebmc_net_set_sn_iters(t->E, 0);
    ebmc_rng_key k = {noise_seed(t), PC_STREAM_REPLAY, NULL, (uint32_t)it};
    EBMC_TRY(ebmc_replay_sample(t->buf, ebmc_chain_state(t->chain), t->B, k));
    EBMC_TRY(ebmc_chain_run(t->chain, t->B));
    const float *tr = ebmc_potential_trace(t->pot);
    EBMC_TRY(copy_f(ctx, t->metrics + PC_E0, tr, 1));
    return copy_f(ctx, t->metrics + PC_E1, tr + t->c.steps - 1, 1);
}

/* dL/dE_i = sign/B + 2 l2 E_i / B for the batch's energies E (sign +1: data, -1: samples) */
static ebmc_status backward_energy(pc_t *t, ebmc_tape_t *tape, float sign, float *msum) {
    ebmc_ctx_t *ctx = t->ctx;
    const float *e = ebmc_tape_output(tape, 0);
    int B = t->B;
    EBMC_TRY(reduce_to(ctx, e, (size_t)B, EBMC_REDUCE_SUM, msum));
    EBMC_TRY(reduce_to(ctx, e, (size_t)B, EBMC_REDUCE_SUMSQ, msum + 1));
    EBMC_TRY(affine(ctx, t->dy, e, (size_t)B, (float)(2.0 * t->c.l2 / B), sign / (float)B));
    const float *dy[1] = {t->dy};
    return ebmc_net_backward(t->E, tape, dy, EBMC_GRAD_FULL, NULL, 0.0f);
}

static ebmc_status phase_update(pc_t *t, int64_t it, int64_t epoch) {
    EBMC_TRY(ebmc_net_zero_grad(t->E));
    pass_dropout(t, it, 1);
    EBMC_TRY(ebmc_net_forward(t->E, t->tN, t->B, ebmc_chain_state(t->chain)));
    EBMC_TRY(backward_energy(t, t->tN, -1.0f, t->metrics + PC_ENEG));
    EBMC_TRY(backward_energy(t, t->tP, 1.0f, t->metrics + PC_EPOS));
    EBMC_TRY(ebmc_adam_step(t->opt, epoch));
    return ebmc_replay_push(t->buf, ebmc_chain_state(t->chain), t->B);
}

static ebmc_status pc_iteration(void *state, const float *batch, int64_t it, int64_t epoch, bool grids) {
    pc_t *t = state;
    EBMC_RANGE_PUSH("pc_iteration");
    ebmc_status s = positive_batch(t, batch, it);
    if (!s) s = phase_sample(t, it);
    if (!s) s = phase_update(t, it, epoch);
    if (!s && grids && t->images) /* the chains' final states in [-1, 1] for the grid */
        s = affine(t->ctx, t->grid, ebmc_chain_state(t->chain), (size_t)t->B * t->img, 2.0f, -1.0f);
    if (!s) s = ebmc_copy(t->ctx, t->hmet, t->metrics, PC_COUNT * sizeof(float), EBMC_COPY_D2H);
    EBMC_RANGE_POP();
    return s;
}

/* ------------------------------------------------------------------ what the shell reads */

static void pc_report(void *state, int64_t epoch, ebmc_report *r) {
    pc_t *t = state;
    double B = t->B, ep = t->hmet[PC_EPOS] / B, en = t->hmet[PC_ENEG] / B;
    double reg = t->hmet[PC_EPOS2] / B + t->hmet[PC_ENEG2] / B;
    double loss = ep - en + t->c.l2 * reg;
    ebmc_report_add(r, "loss", loss, true);
    ebmc_report_add(r, "e_data", ep, false);
    ebmc_report_add(r, "e_samples", en, false);
    r->gap = r->n;
    ebmc_report_add(r, "e_gap", ep - en, false);
    ebmc_report_add(r, "e_sq", reg, false);
    ebmc_report_add(r, "e_chain_first", t->hmet[PC_E0] / B, false);
    ebmc_report_add(r, "e_chain_last", t->hmet[PC_E1] / B, false);
    ebmc_report_add(r, "buffer_fill", ebmc_replay_count(t->buf), false);
    ebmc_report_add(r, "lr", ebmc_adam_lr(t->opt, epoch), false);
    r->images = B;
    r->chain_steps = B * t->c.steps;
    snprintf(r->progress, sizeof r->progress, "loss %.4g E+ %.4g E- %.4g buf %d", loss, ep, en, ebmc_replay_count(t->buf));
}

static int pc_ckpt_items(void *state, ebmc_ckpt_item *it, int max) {
    pc_t *t = state;
    t->steps_x = ebmc_chain_step(t->chain);
    t->buf_count = ebmc_replay_count(t->buf);
    t->buf_head = ebmc_replay_head(t->buf);
    size_t cnt = (size_t)t->c.buf_size * t->img;
    int n = 0;
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "E", .ptr = t->E};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_ADAM, .name = "optE", .ptr = t->opt};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "chain_x.step", .ptr = &t->steps_x, .lo = 0, .hi = UINT32_MAX};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "buffer.count", .ptr = &t->buf_count, .lo = 0, .hi = t->c.buf_size};
    it[n++] = (ebmc_ckpt_item){.kind = EBMC_ITEM_I64, .name = "buffer.head", .ptr = &t->buf_head, .lo = 0, .hi = t->c.buf_size - 1};
    it[n++] = t->c.u8 ? (ebmc_ckpt_item){.kind = EBMC_ITEM_U8, .name = "buffer.data", .ptr = ebmc_replay_storage(t->buf), .count = cnt, .device = true}
                      : (ebmc_ckpt_item){.kind = EBMC_ITEM_F32, .name = "buffer.data", .ptr = ebmc_replay_storage(t->buf), .count = cnt, .device = true};
    EBMC_ASSERT(n <= max);
    return n;
}

static ebmc_status pc_loaded(void *state, char *err, size_t errlen) {
    pc_t *t = state;
    ebmc_status s = ebmc_chain_set_step(t->chain, (uint32_t)t->steps_x);
    if (!s) s = ebmc_replay_restore(t->buf, (int)t->buf_count, (int)t->buf_head);
    if (s) snprintf(err, errlen, "restoring the chain's counter and the buffer: %s", ebmc_ctx_error(t->ctx));
    return s;
}

static void pc_reseed(void *state, uint32_t restarts) {
    pc_t *t = state;
    t->restarts = restarts;
    ebmc_chain_set_seed(t->chain, noise_seed(t));
}

static int pc_grids(void *state, ebmc_grid *g, int max) {
    pc_t *t = state;
    const ebmc_model_cfg *mc = &t->c.mc;
    if (!t->images || max < 1) return 0;
    g[0] = (ebmc_grid){"samples", t->grid, t->B, mc->img_c, mc->img_size, mc->img_size};
    return 1;
}

static const char *const PC_SAMPLE_NAMES[] = {"samples", "buffer", NULL};

/* host values of the recipe's box -> the sample's: [0,1] images to [-1,1] */
static void to_output(const pc_t *t, float *x, size_t n) {
    if (t->images)
        for (size_t i = 0; i < n; i++) x[i] = 2.0f * x[i] - 1.0f;
}

/* samples: K test-time steps from fresh U[lo, hi] noise (B chains at a time), dropout off (the
 * code's test_inception.py / ebm_sandbox.py build ResNet32Large(train=False)); buffer: what the
 * code's in-training Inception score used (train.py:347-369): entries drawn uniformly from the
 * replay buffer (dequantised) and K more steps of the training chain (langevin.*), dropout on
 * (its ResNet32Large(train=True)) */
static ebmc_status pc_sample(void *state, const ebmc_sample_opts *o, float **outs, char *desc, size_t desclen,
                             char *err, size_t errlen) {
    pc_t *t = state;
    ebmc_sample_cfg sc = ebmc_sample_cfg_apply(t->c.sample, o);
    ebmc_langevin_params p = chain_params(&t->c, sc.step, sc.noise, sc.steps);
    ebmc_langevin_params pt = chain_params(&t->c, t->c.step, t->c.noise, t->c.steps);
    ebmc_chain_set_params(t->chain, &p);
    ebmc_chain_set_seed(t->chain, o->seed);
    ebmc_net_set_sn_iters(t->E, 0); /* W/sigma of the checkpoint's u, v */
    ebmc_potential_dropout(t->pot, false, PC_STREAM_DROP_X); /* test time: ResNet32Large(train=False) */
    ebmc_status s = ebmc_chain_set_step(t->chain, 0);
    float *xs = ebmc_chain_state(t->chain);
    int B = t->B;
    for (int done = 0; !s && done < o->n; done += B) {
        int take = o->n - done < B ? o->n - done : B;
        size_t off = (size_t)done * t->img, cnt = (size_t)take * t->img;
        ebmc_rng_key k = {o->seed, PC_STREAM_SAMPLE, NULL, (uint32_t)(done / B)};
        s = ebmc_init_uniform(t->ctx, xs, B, t->img, (float)t->c.lo, (float)t->c.hi, k);
        if (!s && p.steps > 0) s = ebmc_chain_run(t->chain, B);
        if (!s) s = ebmc_copy(t->ctx, outs[0] + off, xs, cnt * sizeof(float), EBMC_COPY_D2H);
        ebmc_replay_desc d = {B, t->img, t->c.buf_size, ebmc_replay_count(t->buf), ebmc_replay_head(t->buf), 1.0f,
                              (float)t->c.lo, (float)t->c.hi, t->c.u8, {o->seed, PC_STREAM_SBUF, NULL, (uint32_t)(done / B)},
                              0.0f};
        if (!s) s = ebmc_replay_sample_op(t->ctx, &d, ebmc_replay_storage(t->buf), xs);
        /* the training chain (langevin.*, dropout on) continued for its K steps */
        ebmc_chain_set_params(t->chain, &pt);
        ebmc_potential_dropout(t->pot, true, PC_STREAM_DROP_X);
        if (!s) s = ebmc_chain_run(t->chain, B);
        ebmc_potential_dropout(t->pot, false, PC_STREAM_DROP_X);
        ebmc_chain_set_params(t->chain, &p);
        if (!s) s = ebmc_copy(t->ctx, outs[1] + off, xs, cnt * sizeof(float), EBMC_COPY_D2H);
        if (!s) to_output(t, outs[0] + off, cnt), to_output(t, outs[1] + off, cnt);
    }
    ebmc_potential_dropout(t->pot, true, PC_STREAM_DROP_X);
    ebmc_chain_set_params(t->chain, &pt);
    if (s) snprintf(err, errlen, "sampling: %s", ebmc_ctx_error(t->ctx));
    snprintf(desc, desclen, "%d Langevin steps x <- clamp(x - %g clip(grad E, %g) + N(0, %g^2)) from U[%g, %g]; "
             "buffer: draws from its %d entries + %d steps of the training chain%s", p.steps, (double)p.a,
             (double)p.clip, (double)p.c, t->c.lo, t->c.hi, ebmc_replay_count(t->buf), pt.steps,
             t->c.mc.dropout > 0 ? " (dropout on)" : "");
    return s;
}

static int pc_plan(void *state, ebmc_plan_row *rows, int max) {
    pc_t *t = state;
    EBMC_ASSERT(max >= 2);
    ebmc_tape_t *tapes[3] = {ebmc_potential_tape(t->pot), t->tP, t->tN};
    rows[0] = ebmc_plan_net_row("E", t->E, t->opt, tapes, 3);
    /* the replay buffer; x+, the grid, the chain state and gradient, dy, metrics, trace */
    size_t nimg = (size_t)t->B * t->img;
    rows[1] = (ebmc_plan_row){.name = "buffer+chains"};
    rows[1].other_bytes = (size_t)t->c.buf_size * t->img * (t->c.u8 ? 1 : sizeof(float)) +
                          (4 * nimg + (size_t)t->B + 16 + (size_t)t->c.steps) * sizeof(float) + 64;
    return 2;
}

static int pc_probes(void *state, const char **names, const float **values) {
    *names = "epos,epos2,eneg,eneg2,e0,e1";
    *values = ((pc_t *)state)->hmet;
    return PC_COUNT;
}

/* `ebmc score`: the energy E itself (the net outputs E; the chains descend it), batches of at
 * most B on E(x+)'s tape. Images arrive in [-1, 1] and the model works in [0, 1] (the chains' box,
 * the buffer): x -> (x + 1) / 2 on the device, landing in the grid buffer (free between
 * iterations); no dequantisation noise (scoring is deterministic). Points as they are. */
static ebmc_status pc_energy(void *state, const float *x, int n, float *e, char *err, size_t errlen) {
    pc_t *t = state;
    ebmc_net_set_dropout(t->E, false, (ebmc_rng_key){0}); /* deterministic: no dropout */
    ebmc_energy_pass p = {t->E, t->tP, t->x_pos, t->images ? t->grid : NULL, 0.5f, 0.5f, t->B, t->img, 1.0f};
    return ebmc_net_energy(&p, x, n, e, err, errlen);
}

const ebmc_recipe ebmc_recipe_persistent = {
    .name = "persistent",
    .summary = "persistent / replay-buffer Langevin (IGEBM, Du & Mordatch, NeurIPS 2019): one EBM, a uint8 buffer",
    .precision = EBMC_PREC_TF32_CONV, /* an image recipe: PyTorch's defaults */
    .keys = PC_KEYS,
    .n_keys = (int)(sizeof PC_KEYS / sizeof PC_KEYS[0]),
    .config_size = sizeof(pc_cfg),
    .state_size = sizeof(pc_t),
    .parse = pc_parse,
    .data_shape = ebmc_recipe_model_data_shape,
    .setup = pc_setup,
    .iteration = pc_iteration,
    .report = pc_report,
    .ckpt_items = pc_ckpt_items,
    .loaded = pc_loaded,
    .grids = pc_grids,
    .reseed = pc_reseed,
    .sample_names = PC_SAMPLE_NAMES,
    .sample = pc_sample,
    .sample_shape = ebmc_recipe_model_sample_shape,
    .plan = pc_plan,
    .probes = pc_probes,
    .destroy = pc_destroy,
    .energy = pc_energy,
};
