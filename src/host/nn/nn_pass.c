/* The forward and backward passes of the nn graph, through the op table only: spectral norm's
 * power iteration before the layer that uses it, values written into the tape, gradients
 * accumulated into the tape's slots (beta 0 for a value's first writer, 1 after), parameter
 * gradients in full mode. Each pass runs in one NVTX range named after the net. */
#include "nn/nn_internal.h"
#include "backend/ctx_internal.h"
#include "ebmc/nvtx.h"
#include <string.h>

/* ------------------------------------------------------------------ forward */

static float *P(ebmc_net_t *net, int t) { return t < 0 ? NULL : net->tensors[t].pub.data; }
static float *G(ebmc_net_t *net, int t) { return t < 0 ? NULL : net->tensors[t].pub.grad; }

static ebmc_status copy_dev(ebmc_ctx_t *ctx, float *dst, const float *src, size_t n) {
    ebmc_axpby_desc d = {.count = n, .a = 1.0f, .b = 0.0f};
    return ebmc_axpby(ctx, &d, src, dst);
}

/* W/sigma after this pass's power iterations; u, v as used, kept in the tape for backward */
static ebmc_status sn_forward(ebmc_net_t *net, ebmc_tape_t *t, const nn_node *nd) {
    tape_sn *s = &t->sn[nd->slot];
    ebmc_sn_desc d = {nd->sn_rows, nd->sn_cols, net->sn_iters, 1e-12f, nd->sn_lb};
    EBMC_TRY(ebmc_sn_power(net->ctx, &d, P(net, nd->t_w), P(net, nd->t_u), P(net, nd->t_v), s->sigma,
                      s->w_sn));
    EBMC_TRY(copy_dev(net->ctx, s->u, P(net, nd->t_u), (size_t)nd->sn_rows));
    return copy_dev(net->ctx, s->v, P(net, nd->t_v), (size_t)nd->sn_cols);
}

static ebmc_status net_forward(ebmc_net_t *net, ebmc_tape_t *t, int n, const float *x);
/* A dropout layer with the masks of the tape's forward (the forward: x -> y, beta 0; the
 * backward: dy -> dx, the same masks): the identity when that forward had dropout off */
static ebmc_status dropout_pass(ebmc_net_t *net, const ebmc_tape_t *t, const nn_node *nd, int n, const float *x,
                                float *y, float beta) {
    nn_val vo = net->vals[nd->out];
    size_t per = (size_t)vo.c * vo.h * vo.w;
    if (!t->drop_on) {
        ebmc_axpby_desc d = {(size_t)n * per, 1.0f, beta};
        return ebmc_axpby(net->ctx, &d, x, y);
    }
    ebmc_dropout_desc d = {n, per, nd->drop_group, nd->scale, beta, t->drop_key};
    return ebmc_dropout(net->ctx, &d, x, y);
}


/* The passes run inside one NVTX range each: "<net>_fwd", "<net>_bwd" (full: parameter
 * gradients too) or "<net>_bwd_x" (input gradients only, the Langevin case). */
ebmc_status ebmc_net_forward(ebmc_net_t *net, ebmc_tape_t *t, int n, const float *x) {
    EBMC_RANGE_PUSH(net->range_fwd);
    ebmc_status s = net_forward(net, t, n, x);
    EBMC_RANGE_POP();
    return s;
}

static ebmc_status net_forward(ebmc_net_t *net, ebmc_tape_t *t, int n, const float *x) {
    ebmc_ctx_t *ctx = net->ctx;
    if (t->net != net || n < 1 || n > t->max_batch || !x)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "%s: forward with batch %d on a tape planned for %d%s",
                                      net->name, n, t->max_batch, x ? "" : " (NULL input)");
    t->n = n;
    t->drop_on = net->drop_on && net->n_drop > 0;
    t->bn_eval = net->bn_eval;
    t->drop_key = net->drop_key;
    for (int v = 0; v < net->n_vals; v++) /* the input and views of it */
        if (net->vals[v].storage == 0) t->val[v] = (float *)x;
    for (int i = 0; i < net->n_nodes; i++) {
        nn_node *nd = &net->nodes[i];
        float *xin = t->val[nd->in0], *y = t->val[nd->out];
        nn_val vo = net->vals[nd->out];
        size_t cnt = (size_t)n * vo.c * vo.h * vo.w;
        switch (nd->kind) {
        case N_INPUT: break;
        case N_CONV:
        case N_CONVT: {
            ebmc_conv_desc d = nd->cd;
            d.n = n;
            const float *w = P(net, nd->t_w);
            if (nd->sn) {
                EBMC_TRY(sn_forward(net, t, nd));
                w = t->sn[nd->slot].w_sn;
            }
            if (nd->kind == N_CONV) EBMC_TRY(ebmc_conv2d_fwd(ctx, &d, xin, w, y));
            else EBMC_TRY(ebmc_convt2d_fwd(ctx, &d, xin, w, y));
            if (nd->bias) {
                ebmc_t4_desc b = {n, vo.c, vo.h, vo.w};
                EBMC_TRY(ebmc_bias_fwd(ctx, &b, P(net, nd->t_b), y));
            }
            break;
        }
        case N_LINEAR: {
            ebmc_linear_desc d = {n, nd->lin_in, nd->lin_out};
            const float *w = P(net, nd->t_w);
            if (nd->sn) {
                EBMC_TRY(sn_forward(net, t, nd));
                w = t->sn[nd->slot].w_sn;
            }
            EBMC_TRY(ebmc_linear_fwd(ctx, &d, xin, w, P(net, nd->t_b), y));
            break;
        }
        case N_ACT: {
            ebmc_act_desc d = {nd->act, nd->slope, cnt};
            EBMC_TRY(ebmc_act_fwd(ctx, &d, xin, y));
            break;
        }
        case N_BN: {
            if (net->bn_eval) { /* y = x scale[c] + shift[c], from the running statistics */
                ebmc_t4_desc d = {n, vo.c, vo.h, vo.w};
                const float *sc = net->bn_st + nd->bn_st;
                EBMC_TRY(ebmc_chan_scale_fwd(ctx, &d, xin, sc, y));
                EBMC_TRY(ebmc_bias_fwd(ctx, &d, sc + vo.c, y));
                break;
            }
            ebmc_bn_desc d = {n, vo.c, vo.h, vo.w, nd->bn_eps, nd->bn_momentum};
            EBMC_TRY(ebmc_bn_fwd(ctx, &d, xin, P(net, nd->t_w), P(net, nd->t_b), y,
                            t->bn[nd->slot].mean, t->bn[nd->slot].invstd, P(net, nd->t_rm),
                            P(net, nd->t_rv)));
            break;
        }
        case N_UPSAMPLE: {
            nn_val vi = net->vals[nd->in0];
            ebmc_upsample_desc d = {n, vi.c, vi.h, vi.w, nd->up};
            EBMC_TRY(ebmc_upsample_fwd(ctx, &d, xin, y));
            break;
        }
        case N_AVGPOOL2: {
            nn_val vi = net->vals[nd->in0];
            ebmc_t4_desc d = {n, vi.c, vi.h, vi.w};
            EBMC_TRY(ebmc_avgpool2_fwd(ctx, &d, xin, y));
            break;
        }
        case N_GPOOL: {
            nn_val vi = net->vals[nd->in0];
            ebmc_gpool_desc d = {n, vi.c, vi.h, vi.w, nd->gp};
            EBMC_TRY(ebmc_gpool_fwd(ctx, &d, xin, y));
            break;
        }
        case N_ADD: {
            ebmc_axpby_desc d = {cnt, 1.0f, 0.0f};
            EBMC_TRY(ebmc_axpby(ctx, &d, xin, y));
            d.b = 1.0f;
            EBMC_TRY(ebmc_axpby(ctx, &d, t->val[nd->in1], y));
            break;
        }
        case N_SCALE: {
            ebmc_axpby_desc d = {cnt, nd->scale, 0.0f};
            EBMC_TRY(ebmc_axpby(ctx, &d, xin, y));
            break;
        }
        case N_RESHAPE: break; /* a view */
        case N_CBIAS: {
            ebmc_axpby_desc d = {cnt, 1.0f, 0.0f};
            ebmc_t4_desc b = {n, vo.c, vo.h, vo.w};
            EBMC_TRY(ebmc_axpby(ctx, &d, xin, y));
            EBMC_TRY(ebmc_bias_fwd(ctx, &b, P(net, nd->t_w), y));
            break;
        }
        case N_CSCALE: {
            ebmc_t4_desc d = {n, vo.c, vo.h, vo.w};
            EBMC_TRY(ebmc_chan_scale_fwd(ctx, &d, xin, P(net, nd->t_w), y));
            break;
        }

        case N_PSWISH: {
            ebmc_pswish_desc d = {n, vo.c, (size_t)vo.h * vo.w};
            EBMC_TRY(ebmc_pswish_fwd(ctx, &d, xin, P(net, nd->t_w), y));
            break;
        }
        case N_GBASE: {
            nn_val vi = net->vals[nd->in0];
            ebmc_gbase_desc d = {n, vi.c * vi.h * vi.w};
            EBMC_TRY(ebmc_gbase_fwd(ctx, &d, xin, P(net, nd->t_w), P(net, nd->t_b), y));
            break;
        }
        case N_DROPOUT: EBMC_TRY(dropout_pass(net, t, nd, n, xin, y, 0.0f)); break;
        }
    }
    if (net->n_bn && !net->bn_eval) net->bn_batches++; /* eval mode leaves the statistics */
    t->ran = true;
    return EBMC_OK;
}

/* ------------------------------------------------------------------ backward */

/* Where the gradient of value v goes, and with which beta (0 for its first writer). Returns
 * NULL when nobody needs it (the net input without dx). */
static float *grad_target(ebmc_tape_t *t, int v, float *dx, float dx_beta, float *beta) {
    int s = t->net->vals[v].storage;
    if (s == 0) {
        if (!dx) return NULL;
        *beta = t->written[0] ? 1.0f : dx_beta;
        t->written[0] = true;
        return dx;
    }
    *beta = t->written[s] ? 1.0f : 0.0f;
    t->written[s] = true;
    return t->grad[v];
}

static ebmc_status net_backward(ebmc_net_t *net, ebmc_tape_t *t, const float *const *dy,
                                ebmc_grad_mode mode, float *dx, float dx_beta);

ebmc_status ebmc_net_backward(ebmc_net_t *net, ebmc_tape_t *t, const float *const *dy,
                              ebmc_grad_mode mode, float *dx, float dx_beta) {
    EBMC_RANGE_PUSH(mode == EBMC_GRAD_FULL ? net->range_bwd : net->range_bwd_x);
    ebmc_status s = net_backward(net, t, dy, mode, dx, dx_beta);
    EBMC_RANGE_POP();
    return s;
}

static ebmc_status net_backward(ebmc_net_t *net, ebmc_tape_t *t, const float *const *dy,
                                ebmc_grad_mode mode, float *dx, float dx_beta) {
    ebmc_ctx_t *ctx = net->ctx;
    if (t->net != net || !t->ran || !t->with_grad)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "%s: backward needs a tape with gradients and a forward before it",
                                      net->name);
    if (mode == EBMC_GRAD_FULL && !net->grads)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "%s: full backward on a net that is not trainable", net->name);
    int n = t->n;
    bool full = mode == EBMC_GRAD_FULL;
    memset(t->written, 0, (size_t)net->n_vals * sizeof *t->written);
    for (int i = 0; i < net->n_outputs; i++) {
        if (!dy || !dy[i]) continue;
        int v = net->outputs[i];
        float beta;
        float *g = grad_target(t, v, NULL, 0, &beta);
        if (!g) continue;
        ebmc_axpby_desc d = {(size_t)n * ebmc_net_value_count(net, v), 1.0f, beta};
        EBMC_TRY(ebmc_axpby(ctx, &d, dy[i], g));
    }
    for (int i = net->n_nodes - 1; i >= 0; i--) {
        nn_node *nd = &net->nodes[i];
        if (nd->kind == N_RESHAPE || !t->written[net->vals[nd->out].storage]) continue;
        const float *g = t->grad[nd->out];
        nn_val vo = net->vals[nd->out], vi = net->vals[nd->in0];
        size_t cnt = (size_t)n * vo.c * vo.h * vo.w;
        const float *xin = t->val[nd->in0];
        float beta = 0;
        switch (nd->kind) {
        case N_INPUT:
        case N_RESHAPE: break;
        case N_CONV:
        case N_CONVT: {
            ebmc_conv_desc d = nd->cd;
            d.n = n;
            bool tr = nd->kind == N_CONVT;
            const float *w = nd->sn ? t->sn[nd->slot].w_sn : P(net, nd->t_w);
            if (full) {
                if (nd->bias) {
                    ebmc_t4_desc b = {n, vo.c, vo.h, vo.w};
                    EBMC_TRY(ebmc_bias_bwd(ctx, &b, g, G(net, nd->t_b), 1.0f));
                }
                float *dw = nd->sn ? t->sn[nd->slot].dw_sn : G(net, nd->t_w);
                float bw = nd->sn ? 0.0f : 1.0f;
                if (tr) EBMC_TRY(ebmc_convt2d_bwd_filter(ctx, &d, xin, g, dw, bw));
                else EBMC_TRY(ebmc_conv2d_bwd_filter(ctx, &d, xin, g, dw, bw));
                if (nd->sn) {
                    tape_sn *s = &t->sn[nd->slot];
                    ebmc_sn_desc sd = {nd->sn_rows, nd->sn_cols, 0, 1e-12f, nd->sn_lb};
                    EBMC_TRY(ebmc_sn_bwd(ctx, &sd, P(net, nd->t_w), s->u, s->v, s->sigma, s->dw_sn,
                                    G(net, nd->t_w), 1.0f));
                }
            }
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            if (gx) {
                if (tr) EBMC_TRY(ebmc_convt2d_bwd_data(ctx, &d, g, w, gx, beta));
                else EBMC_TRY(ebmc_conv2d_bwd_data(ctx, &d, g, w, gx, beta));
            }
            break;
        }
        case N_LINEAR: {
            ebmc_linear_desc d = {n, nd->lin_in, nd->lin_out};
            const float *w = nd->sn ? t->sn[nd->slot].w_sn : P(net, nd->t_w);
            if (full) {
                if (nd->bias) {
                    ebmc_t4_desc b = {n, nd->lin_out, 1, 1};
                    EBMC_TRY(ebmc_bias_bwd(ctx, &b, g, G(net, nd->t_b), 1.0f));
                }
                float *dw = nd->sn ? t->sn[nd->slot].dw_sn : G(net, nd->t_w);
                EBMC_TRY(ebmc_linear_bwd_filter(ctx, &d, xin, g, dw, NULL, nd->sn ? 0.0f : 1.0f));
                if (nd->sn) {
                    tape_sn *s = &t->sn[nd->slot];
                    ebmc_sn_desc sd = {nd->sn_rows, nd->sn_cols, 0, 1e-12f, nd->sn_lb};
                    EBMC_TRY(ebmc_sn_bwd(ctx, &sd, P(net, nd->t_w), s->u, s->v, s->sigma, s->dw_sn,
                                    G(net, nd->t_w), 1.0f));
                }
            }
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            if (gx) EBMC_TRY(ebmc_linear_bwd_data(ctx, &d, g, w, gx, beta));
            break;
        }
        case N_ACT: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_act_desc d = {nd->act, nd->slope, cnt};
            if (gx) EBMC_TRY(ebmc_act_bwd(ctx, &d, xin, t->val[nd->out], g, gx, beta));
            break;
        }
        case N_BN: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            if (t->bn_eval) { /* the forward was a per-channel affine: dx = dy scale[c] */
                if (full)
                    return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "%s: parameter gradients of a forward with "
                                           "eval-mode BatchNorm (ebmc_net_set_bn_eval)", net->name);
                ebmc_t4_desc d = {n, vo.c, vo.h, vo.w};
                if (gx) EBMC_TRY(ebmc_chan_scale_bwd(ctx, &d, xin, net->bn_st + nd->bn_st, g, gx, NULL, beta, 0.0f));
                break;
            }
            ebmc_bn_desc d = {n, vo.c, vo.h, vo.w, nd->bn_eps, nd->bn_momentum};
            bool learn_g = net->tensors[nd->t_w].trainable;
            float *dg = (full && learn_g) ? G(net, nd->t_w) : t->scratch;
            float *db = full ? G(net, nd->t_b) : t->scratch + vo.c;
            if (gx || full) {
                /* the op always writes dx: without a target (the net input, no dx asked
                 * for) it goes to the input's gradient buffer, which nobody reads */
                float *dxt = gx ? gx : t->grad[nd->in0];
                if (full && !learn_g) { /* gamma fixed: its gradient goes to scratch, beta's not */
                    EBMC_TRY(ebmc_bn_bwd(ctx, &d, xin, g, P(net, nd->t_w), t->bn[nd->slot].mean,
                                    t->bn[nd->slot].invstd, dxt, dg, t->scratch + vo.c,
                                    gx ? beta : 0.0f, 0.0f));
                    ebmc_axpby_desc acc = {(size_t)vo.c, 1.0f, 1.0f};
                    EBMC_TRY(ebmc_axpby(ctx, &acc, t->scratch + vo.c, db));
                    break;
                }
                EBMC_TRY(ebmc_bn_bwd(ctx, &d, xin, g, P(net, nd->t_w), t->bn[nd->slot].mean,
                                t->bn[nd->slot].invstd, dxt, dg, db, gx ? beta : 0.0f,
                                full ? 1.0f : 0.0f));
            }
            break;
        }
        case N_UPSAMPLE: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_upsample_desc d = {n, vi.c, vi.h, vi.w, nd->up};
            if (gx) EBMC_TRY(ebmc_upsample_bwd(ctx, &d, g, gx, beta));
            break;
        }
        case N_AVGPOOL2: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_t4_desc d = {n, vi.c, vi.h, vi.w};
            if (gx) EBMC_TRY(ebmc_avgpool2_bwd(ctx, &d, g, gx, beta));
            break;
        }
        case N_GPOOL: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_gpool_desc d = {n, vi.c, vi.h, vi.w, nd->gp};
            if (gx) EBMC_TRY(ebmc_gpool_bwd(ctx, &d, g, gx, beta));
            break;
        }
        case N_ADD: {
            for (int k = 0; k < 2; k++) {
                int in = k ? nd->in1 : nd->in0;
                float *gx = grad_target(t, in, dx, dx_beta, &beta);
                ebmc_axpby_desc d = {cnt, 1.0f, beta};
                if (gx) EBMC_TRY(ebmc_axpby(ctx, &d, g, gx));
            }
            break;
        }
        case N_SCALE: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_axpby_desc d = {cnt, nd->scale, beta};
            if (gx) EBMC_TRY(ebmc_axpby(ctx, &d, g, gx));
            break;
        }
        case N_CBIAS: {
            ebmc_t4_desc b = {n, vo.c, vo.h, vo.w};
            if (full) EBMC_TRY(ebmc_bias_bwd(ctx, &b, g, G(net, nd->t_w), 1.0f));
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_axpby_desc d = {cnt, 1.0f, beta};
            if (gx) EBMC_TRY(ebmc_axpby(ctx, &d, g, gx));
            break;
        }
        case N_CSCALE: {
            ebmc_t4_desc d = {n, vo.c, vo.h, vo.w};
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            float *gs = full ? G(net, nd->t_w) : NULL;
            if (gx || gs) EBMC_TRY(ebmc_chan_scale_bwd(ctx, &d, xin, P(net, nd->t_w), g, gx, gs, beta, 1.0f));
            break;
        }

        case N_PSWISH: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_pswish_desc d = {n, vo.c, (size_t)vo.h * vo.w};
            if (gx || full)
                EBMC_TRY(ebmc_pswish_bwd(ctx, &d, xin, P(net, nd->t_w), g, gx, full ? G(net, nd->t_w) : NULL,
                                         beta, 1.0f));
            break;
        }
        case N_GBASE: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_gbase_desc d = {n, vi.c * vi.h * vi.w};
            if (gx || full)
                EBMC_TRY(ebmc_gbase_bwd(ctx, &d, xin, P(net, nd->t_w), P(net, nd->t_b), g, gx,
                                        full ? G(net, nd->t_w) : NULL, full ? G(net, nd->t_b) : NULL, beta, 1.0f));
            break;
        }
        case N_DROPOUT: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            if (gx) EBMC_TRY(dropout_pass(net, t, nd, n, g, gx, beta));
            break;
        }
        }
    }
    /* dx requested but the input does not reach any output with a gradient: it is zero */
    if (dx && !t->written[0]) {
        size_t cnt = (size_t)n * ebmc_net_value_count(net, 0);
        if (dx_beta == 0.0f) {
            ebmc_fill_desc f = {cnt, 0.0f};
            EBMC_TRY(ebmc_fill(ctx, &f, dx));
        } else if (dx_beta != 1.0f) {
            ebmc_axpby_desc d = {cnt, dx_beta, 0.0f};
            EBMC_TRY(ebmc_axpby(ctx, &d, dx, dx));
        }
    }
    return EBMC_OK;
}
