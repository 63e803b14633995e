/* defines: jz_energy_net -- an image EBM of src/host/nn/models.c as the jarzynski recipe's
 * energy (jarzynski.h): U(x) = E(x) (model.arch = mnist) or -f(x) for an architecture whose net
 * outputs the score f (shortrun: the authors' CIFAR-10 net, Conv 3-64-128-256-512-1 with
 * LeakyReLU 0.2, is the short-run net). Walkers are evaluated in chunks on one tape; the weighted
 * parameter gradient sum_i w_i dU/dtheta(x_i) is one backward per chunk with dU/dout = scale w_i
 * (no per-walker gradients, specs/particles.md K3); Adam steps the net. With the authors' energy
 * regulariser alpha (mean_data U^2 + sum_i p_i U(X_i)^2) (train.l2_coeff), each point's upstream
 * gradient dL/dU_i = scale w_i gains 2 alpha |scale w_i| U_i (specs/particles.md K3: "plus the
 * regulariser terms 2 alpha U/n and 2 alpha p_i U_i"; w_i >= 0). */
#include "recipes/jarzynski.h"
#include "ebmc/mcmc.h"
#include "ebmc/models.h"
#include "ebmc/optim.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    jz_energy base;
    ebmc_ctx_t *ctx;
    ebmc_net_t *E;
    ebmc_adam_t *opt;
    ebmc_tape_t *tape;
    float *dy, *tmp; /* (chunk) */
    float sign; /* U = sign * net output */
    float l2;   /* the regulariser's alpha (0: none) */
    int chunk;
} jz_net;

static ebmc_status net_eval(jz_energy *e, int n, const float *x, float *u, float *grad, float *aux) {
    jz_net *t = (jz_net *)e;
    for (int off = 0; off < n; off += t->chunk) {
        int m = n - off < t->chunk ? n - off : t->chunk;
        EBMC_TRY(ebmc_net_forward(t->E, t->tape, m, x + (size_t)off * e->elems));
        ebmc_axpby_desc cp = {(size_t)m, t->sign, 0.0f};
        if (u) EBMC_TRY(ebmc_axpby(t->ctx, &cp, ebmc_tape_output(t->tape, 0), u + off));
        if (!grad) continue;
        ebmc_fill_desc f = {(size_t)m, t->sign};
        EBMC_TRY(ebmc_fill(t->ctx, &f, t->dy));
        const float *dy[1] = {t->dy};
        EBMC_TRY(ebmc_net_backward(t->E, t->tape, dy, EBMC_GRAD_INPUT, grad + (size_t)off * e->elems, 0.0f));
    }
    return EBMC_OK;
}

static ebmc_status net_accumulate(jz_energy *e, int n, const float *x, const float *aux, const float *w, float scale,
                                  float beta) {
    jz_net *t = (jz_net *)e;
    if (beta == 0.0f) EBMC_TRY(ebmc_net_zero_grad(t->E));
    for (int off = 0; off < n; off += t->chunk) {
        int m = n - off < t->chunk ? n - off : t->chunk;
        EBMC_TRY(ebmc_net_forward(t->E, t->tape, m, x + (size_t)off * e->elems));
        /* dL/dout = sign dL/dU: sign scale w_i, plus 2 alpha |scale| w_i U_i with U_i = sign out_i,
         * i.e. 2 alpha |scale| w_i out_i (sign^2 = 1) */
        const float *out = ebmc_tape_output(t->tape, 0);
        if (w) {
            ebmc_axpby_desc d = {(size_t)m, t->sign * scale, 0.0f};
            EBMC_TRY(ebmc_axpby(t->ctx, &d, w + off, t->dy));
            if (t->l2 > 0) {
                ebmc_t4_desc pd = {1, m, 1, 1}; /* w_i out_i: a per-"channel" scale of m channels */
                EBMC_TRY(ebmc_chan_scale_fwd(t->ctx, &pd, out, w + off, t->tmp));
                ebmc_axpby_desc r = {(size_t)m, 2.0f * t->l2 * fabsf(scale), 1.0f};
                EBMC_TRY(ebmc_axpby(t->ctx, &r, t->tmp, t->dy));
            }
        } else {
            ebmc_fill_desc f = {(size_t)m, t->sign * scale};
            EBMC_TRY(ebmc_fill(t->ctx, &f, t->dy));
            if (t->l2 > 0) {
                ebmc_axpby_desc r = {(size_t)m, 2.0f * t->l2 * fabsf(scale), 1.0f};
                EBMC_TRY(ebmc_axpby(t->ctx, &r, out, t->dy));
            }
        }
        const float *dy[1] = {t->dy};
        EBMC_TRY(ebmc_net_backward(t->E, t->tape, dy, EBMC_GRAD_FULL, NULL, 0.0f));
    }
    return EBMC_OK;
}

static ebmc_status net_descend(jz_energy *e, int64_t epoch) { return ebmc_adam_step(((jz_net *)e)->opt, epoch); }

/* U[-1, 1] pixels (the authors' start, before their unweighted ULA burn-in) */
static ebmc_status net_init(jz_energy *e, int n, float *x, uint64_t seed) {
    ebmc_rng_key k = {seed, 31, NULL, 0};
    return ebmc_init_uniform(((jz_net *)e)->ctx, x, n, e->elems, -1.0f, 1.0f, k);
}

static double net_log_z(jz_energy *e) { return NAN; }

static int net_ckpt_items(jz_energy *e, ebmc_ckpt_item *it, int max) {
    jz_net *t = (jz_net *)e;
    EBMC_ASSERT(max >= 2);
    it[0] = (ebmc_ckpt_item){.kind = EBMC_ITEM_NET, .name = "E", .ptr = t->E};
    it[1] = (ebmc_ckpt_item){.kind = EBMC_ITEM_ADAM, .name = "optE", .ptr = t->opt};
    return 2;
}

static void net_destroy(jz_energy *e) {
    jz_net *t = (jz_net *)e;
    if (t->dy) ebmc_free(t->ctx, t->dy);
    if (t->tmp) ebmc_free(t->ctx, t->tmp);
    ebmc_tape_free(t->tape);
    ebmc_adam_free(t->opt);
    ebmc_net_free(t->E);
    free(t);
}

ebmc_status jz_energy_net(ebmc_ctx_t *ctx, const jz_net_cfg *c, jz_energy **out, char *err, size_t errlen) {
    *out = NULL;
    ebmc_model_cfg mc;
    if (!ebmc_model_defaults(c->arch, &mc)) {
        snprintf(err, errlen, "model.arch: unknown architecture '%s'", c->arch);
        return EBMC_E_INVALID;
    }
    if (c->width) mc.ndf = c->width;
    jz_net *t = calloc(1, sizeof *t);
    if (!t) return EBMC_E_NOMEM;
    t->ctx = ctx, t->chunk = c->chunk, t->sign = !strcmp(c->arch, "shortrun") ? -1.0f : 1.0f;
    t->l2 = (float)c->l2;
    jz_energy *e = &t->base;
    *e = (jz_energy){net_eval, net_accumulate, net_descend, net_init, net_log_z, net_ckpt_items, net_destroy,
                     (size_t)mc.img_c * mc.img_size * mc.img_size, 0, true, mc.img_c, mc.img_size, mc.img_size};
    t->E = ebmc_model_build(&mc, EBMC_NET_E, err, errlen);
    ebmc_status s = t->E ? EBMC_OK : EBMC_E_INVALID;
    if (!s && (s = ebmc_net_finalize(t->E, ctx, true, c->seed))) snprintf(err, errlen, "%s", ebmc_net_error(t->E));
    ebmc_adam_cfg ac = {c->lr, c->beta1, c->beta2, 1e-8, 0, 1};
    if (!s) s = ebmc_adam_create(t->E, &ac, &t->opt);
    if (!s) s = ebmc_adam_set_schedule(t->opt, c->lr_decay_epochs, c->grad_clip);
    if (!s) s = ebmc_tape_create(t->E, t->chunk, true, &t->tape);
    if (!s) s = ebmc_alloc(ctx, (void **)&t->dy, (size_t)t->chunk * sizeof(float));
    if (!s) s = ebmc_alloc(ctx, (void **)&t->tmp, (size_t)t->chunk * sizeof(float));
    if (s && !err[0]) snprintf(err, errlen, "set-up of the EBM: %s", ebmc_ctx_error(ctx));
    if (s) {
        net_destroy(e);
        return s;
    }
    *out = e;
    return EBMC_OK;
}
