/* The nn graph, building side: layers added to a net (values, nodes, named tensors), parameter
 * initialisation, finalize (one parameter arena, one buffer arena), the accessors, and the MAC
 * count and memory report. Tapes and their plan are in nn_tape.c, the forward and backward
 * passes through the op table in nn_pass.c; the records they share are in nn_internal.h. */
#include "nn/nn_internal.h"
#include "backend/ctx_internal.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ building */

int nn_fail(ebmc_net_t *net, const char *fmt, ...) {
    if (!net->failed) {
        va_list ap;
        va_start(ap, fmt);
        int k = snprintf(net->err, sizeof net->err, "%s: ", net->name);
        vsnprintf(net->err + k, sizeof net->err - k, fmt, ap);
        va_end(ap);
        net->failed = true;
    }
    return -1;
}

#define GROW(arr, n, cap)                                                                       \
    do {                                                                                        \
        if ((n) == (cap)) {                                                                     \
            int nc_ = (cap) ? 2 * (cap) : 16;                                                   \
            void *p_ = realloc((arr), (size_t)nc_ * sizeof *(arr));                             \
            if (!p_) ebmc_fail("realloc", "out of host memory", __func__, __FILE__, __LINE__);  \
            (arr) = p_;                                                                         \
            (cap) = nc_;                                                                        \
        }                                                                                       \
    } while (0)

ebmc_net_t *ebmc_net_create(const char *name, int c, int h, int w) {
    ebmc_net_t *net = ebmc_xcalloc(1, sizeof *net, "ebmc_net_create");
    snprintf(net->name, sizeof net->name, "%s", name ? name : "net");
    snprintf(net->range_fwd, sizeof net->range_fwd, "%s_fwd", net->name);
    snprintf(net->range_bwd, sizeof net->range_bwd, "%s_bwd", net->name);
    snprintf(net->range_bwd_x, sizeof net->range_bwd_x, "%s_bwd_x", net->name);
    net->sn_iters = 1;
    GROW(net->vals, net->n_vals, net->cap_vals);
    net->vals[0] = (nn_val){c, h, w, 0};
    net->n_vals = 1;
    if (c < 1 || h < 1 || w < 1) nn_fail(net, "bad input shape (%d,%d,%d)", c, h, w);
    return net;
}

static bool val_ok(ebmc_net_t *net, int v) {
    if (net->failed) return false;
    if (net->finalized) {
        nn_fail(net, "layers cannot be added after finalize");
        return false;
    }
    if (v < 0 || v >= net->n_vals) {
        nn_fail(net, "value %d does not exist", v);
        return false;
    }
    return true;
}

static int new_val(ebmc_net_t *net, int c, int h, int w) {
    GROW(net->vals, net->n_vals, net->cap_vals);
    net->vals[net->n_vals] = (nn_val){c, h, w, net->n_vals};
    return net->n_vals++;
}

static nn_node *new_node(ebmc_net_t *net, nn_kind kind, int in0, int in1, int out) {
    GROW(net->nodes, net->n_nodes, net->cap_nodes);
    nn_node *nd = &net->nodes[net->n_nodes++];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    nd->in0 = in0;
    nd->in1 = in1;
    nd->out = out;
    nd->t_w = nd->t_b = nd->t_rm = nd->t_rv = nd->t_u = nd->t_v = -1;
    nd->slot = -1;
    return nd;
}

static int new_tensor(ebmc_net_t *net, const char *prefix, const char *suffix, nn_role role,
                      bool trainable, int ndim, const int64_t *shape, ebmc_init init, int fan_in,
                      int fan_out) {
    GROW(net->tensors, net->n_tensors, net->cap_tensors);
    nn_tensor *t = &net->tensors[net->n_tensors];
    memset(t, 0, sizeof *t);
    int k = snprintf(t->name, sizeof t->name, "%s%s%s", prefix, *prefix ? "." : "", suffix);
    if (k >= (int)sizeof t->name) return nn_fail(net, "tensor name too long: %s.%s", prefix, suffix);
    for (int i = 0; i < net->n_tensors; i++)
        if (!strcmp(net->tensors[i].name, t->name))
            return nn_fail(net, "duplicate tensor name '%s'", t->name);
    t->ndim = ndim;
    t->count = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->count *= (size_t)shape[i];
    }
    t->trainable = trainable;
    t->role = role;
    t->init = init;
    t->fan_in = fan_in;
    t->fan_out = fan_out;
    return net->n_tensors++;
}

static int conv_common(ebmc_net_t *net, int in, const char *prefix, const ebmc_conv_spec *s,
                       bool transposed) {
    if (!val_ok(net, in)) return -1;
    if (!s || !prefix) return nn_fail(net, "conv: NULL spec or prefix");
    nn_val x = net->vals[in];
    ebmc_conv_desc d;
    if (s->same_tf) d = ebmc_conv_desc_same_tf(1, x.c, x.h, x.w, s->c_out, s->k, s->stride, transposed);
    else if (transposed) d = ebmc_convt_desc_make(1, x.c, x.h, x.w, s->c_out, s->k, s->stride, s->pad, s->out_pad);
    else d = ebmc_conv_desc_make(1, x.c, x.h, x.w, s->c_out, s->k, s->stride, s->pad);
    d.has_bias = s->bias;
    int ho, wo;
    if (s->c_out < 1 || s->k < 1 || s->stride < 1 || ebmc_conv_out_hw(&d, &ho, &wo))
        return nn_fail(net, "%s: a %s k%d s%d p%d with %d outputs does not fit the input (%d,%d,%d)",
                       prefix, transposed ? "transposed conv" : "conv", s->k, s->stride, s->pad,
                       s->c_out, x.c, x.h, x.w);
    if (s->sn && transposed) return nn_fail(net, "%s: spectral norm on a transposed conv is not supported", prefix);
    int out = new_val(net, s->c_out, ho, wo);
    nn_node *nd = new_node(net, transposed ? N_CONVT : N_CONV, in, -1, out);
    nd->cd = d;
    nd->bias = s->bias;
    nd->sn = s->sn;
    nd->sn_lb = s->sn && s->sn_lower_bound;
    int64_t wshape[4] = {transposed ? x.c : s->c_out, transposed ? s->c_out : x.c, s->k, s->k};
    int rf = s->k * s->k;
    int fan_in = (int)wshape[1] * rf, fan_out = (int)wshape[0] * rf; /* torch's convention */
    nd->t_w = new_tensor(net, prefix, s->sn ? "weight_orig" : "weight", R_WEIGHT, true, 4, wshape,
                         s->w_init, fan_in, fan_out);
    if (s->bias) {
        int64_t bs[1] = {s->c_out};
        nd->t_b = new_tensor(net, prefix, "bias", R_BIAS, true, 1, bs, s->b_init, fan_in, fan_out);
    }
    if (s->sn) {
        nd->sn_rows = s->c_out;
        nd->sn_cols = x.c * rf;
        int64_t us[1] = {nd->sn_rows}, vs[1] = {nd->sn_cols};
        nd->t_u = new_tensor(net, prefix, "weight_u", R_SNVEC, false, 1, us, (ebmc_init){0}, 0, 0);
        nd->t_v = new_tensor(net, prefix, "weight_v", R_SNVEC, false, 1, vs, (ebmc_init){0}, 0, 0);
        nd->slot = net->n_sn++;
    }
    return net->failed ? -1 : out;
}

int ebmc_nn_conv(ebmc_net_t *net, int in, const char *prefix, const ebmc_conv_spec *s) {
    return conv_common(net, in, prefix, s, false);
}

int ebmc_nn_convt(ebmc_net_t *net, int in, const char *prefix, const ebmc_conv_spec *s) {
    return conv_common(net, in, prefix, s, true);
}

int ebmc_nn_linear(ebmc_net_t *net, int in, const char *prefix, int out_f, bool bias, bool sn,
                   ebmc_init w_init, ebmc_init b_init) {
    if (!val_ok(net, in)) return -1;
    nn_val x = net->vals[in];
    int in_f = x.c * x.h * x.w;
    if (out_f < 1) return nn_fail(net, "%s: linear with %d outputs", prefix, out_f);
    int out = new_val(net, out_f, 1, 1);
    nn_node *nd = new_node(net, N_LINEAR, in, -1, out);
    nd->lin_in = in_f;
    nd->lin_out = out_f;
    nd->bias = bias;
    nd->sn = sn;
    int64_t ws[2] = {out_f, in_f};
    nd->t_w = new_tensor(net, prefix, sn ? "weight_orig" : "weight", R_WEIGHT, true, 2, ws, w_init,
                         in_f, out_f);
    if (bias) {
        int64_t bs[1] = {out_f};
        nd->t_b = new_tensor(net, prefix, "bias", R_BIAS, true, 1, bs, b_init, in_f, out_f);
    }
    if (sn) {
        nd->sn_rows = out_f;
        nd->sn_cols = in_f;
        int64_t us[1] = {out_f}, vs[1] = {in_f};
        nd->t_u = new_tensor(net, prefix, "weight_u", R_SNVEC, false, 1, us, (ebmc_init){0}, 0, 0);
        nd->t_v = new_tensor(net, prefix, "weight_v", R_SNVEC, false, 1, vs, (ebmc_init){0}, 0, 0);
        nd->slot = net->n_sn++;
    }
    return net->failed ? -1 : out;
}

int ebmc_nn_act(ebmc_net_t *net, int in, ebmc_act_kind kind, float slope) {
    if (!val_ok(net, in)) return -1;
    nn_val x = net->vals[in];
    int out = new_val(net, x.c, x.h, x.w);
    nn_node *nd = new_node(net, N_ACT, in, -1, out);
    nd->act = kind;
    nd->slope = slope;
    return out;
}

int ebmc_nn_pswish(ebmc_net_t *net, int in, const char *prefix) {
    if (!val_ok(net, in)) return -1;
    nn_val x = net->vals[in];
    int out = new_val(net, x.c, x.h, x.w);
    nn_node *nd = new_node(net, N_PSWISH, in, -1, out);
    int64_t cs[1] = {x.c};
    nd->t_w = new_tensor(net, prefix, "beta", R_WEIGHT, true, 1, cs, (ebmc_init){EBMC_INIT_ONE, 0}, 0, 0);
    return net->failed ? -1 : out;
}

int ebmc_nn_gauss_base(ebmc_net_t *net, int in, const char *prefix) {
    if (!val_ok(net, in)) return -1;
    nn_val x = net->vals[in];
    int64_t ds[1] = {(int64_t)x.c * x.h * x.w};
    char mu[64], ls[64];
    snprintf(mu, sizeof mu, "%smu", prefix);
    snprintf(ls, sizeof ls, "%slogstd", prefix);
    int out = new_val(net, 1, 1, 1);
    nn_node *nd = new_node(net, N_GBASE, in, -1, out);
    nd->t_w = new_tensor(net, "", mu, R_WEIGHT, true, 1, ds, (ebmc_init){EBMC_INIT_ZERO, 0}, 0, 0);
    nd->t_b = new_tensor(net, "", ls, R_BIAS, true, 1, ds, (ebmc_init){EBMC_INIT_ZERO, 0}, 0, 0);
    return net->failed ? -1 : out;
}

int ebmc_nn_bn(ebmc_net_t *net, int in, const char *prefix, ebmc_init gamma_init) {
    ebmc_bn_spec s = {gamma_init, 1e-5f, 0.1f, false};
    return ebmc_nn_bn_ex(net, in, prefix, &s);
}

int ebmc_nn_bn_ex(ebmc_net_t *net, int in, const char *prefix, const ebmc_bn_spec *sp) {
    if (!val_ok(net, in)) return -1;
    if (!(sp->eps > 0) || !(sp->momentum >= 0 && sp->momentum <= 1))
        return nn_fail(net, "%s: BatchNorm eps %g must be > 0, momentum %g in [0,1]", prefix, sp->eps, sp->momentum);
    nn_val x = net->vals[in];
    int out = new_val(net, x.c, x.h, x.w);
    nn_node *nd = new_node(net, N_BN, in, -1, out);
    nd->bn_eps = sp->eps;
    nd->bn_momentum = sp->momentum;
    int64_t cs[1] = {x.c};
    ebmc_init gi = sp->fixed_gamma ? (ebmc_init){EBMC_INIT_ONE, 0} : sp->gamma_init;
    nd->t_w = new_tensor(net, prefix, "weight", R_GAMMA, !sp->fixed_gamma, 1, cs, gi, 0, 0);
    nd->t_b = new_tensor(net, prefix, "bias", R_BETA, true, 1, cs, (ebmc_init){EBMC_INIT_ZERO, 0}, 0, 0);
    nd->t_rm = new_tensor(net, prefix, "running_mean", R_RMEAN, false, 1, cs, (ebmc_init){0}, 0, 0);
    nd->t_rv = new_tensor(net, prefix, "running_var", R_RVAR, false, 1, cs, (ebmc_init){0}, 0, 0);
    new_tensor(net, prefix, "num_batches_tracked", R_COUNTER, false, 0, NULL, (ebmc_init){0}, 0, 0);
    nd->slot = net->n_bn++;
    return net->failed ? -1 : out;
}

int ebmc_nn_upsample(ebmc_net_t *net, int in, ebmc_upsample_mode mode) {
    if (!val_ok(net, in)) return -1;
    nn_val x = net->vals[in];
    int out = new_val(net, x.c, 2 * x.h, 2 * x.w);
    new_node(net, N_UPSAMPLE, in, -1, out)->up = mode;
    return out;
}

int ebmc_nn_avgpool2(ebmc_net_t *net, int in) {
    if (!val_ok(net, in)) return -1;
    nn_val x = net->vals[in];
    if (x.h < 2 || x.w < 2) return nn_fail(net, "avgpool2 on a %dx%d map", x.h, x.w);
    int out = new_val(net, x.c, x.h / 2, x.w / 2);
    new_node(net, N_AVGPOOL2, in, -1, out);
    return out;
}

int ebmc_nn_gpool(ebmc_net_t *net, int in, ebmc_gpool_mode mode) {
    if (!val_ok(net, in)) return -1;
    nn_val x = net->vals[in];
    int out = new_val(net, x.c, 1, 1);
    new_node(net, N_GPOOL, in, -1, out)->gp = mode;
    return out;
}

int ebmc_nn_add(ebmc_net_t *net, int a, int b) {
    if (!val_ok(net, a) || !val_ok(net, b)) return -1;
    nn_val x = net->vals[a], y = net->vals[b];
    if (x.c != y.c || x.h != y.h || x.w != y.w)
        return nn_fail(net, "add of (%d,%d,%d) and (%d,%d,%d)", x.c, x.h, x.w, y.c, y.h, y.w);
    int out = new_val(net, x.c, x.h, x.w);
    new_node(net, N_ADD, a, b, out);
    return out;
}

int ebmc_nn_scale(ebmc_net_t *net, int in, float s) {
    if (!val_ok(net, in)) return -1;
    nn_val x = net->vals[in];
    int out = new_val(net, x.c, x.h, x.w);
    new_node(net, N_SCALE, in, -1, out)->scale = s;
    return out;
}

int ebmc_nn_dropout(ebmc_net_t *net, int in, float p) {
    if (!val_ok(net, in)) return -1;
    if (!(p >= 0.0f && p < 1.0f)) return nn_fail(net, "dropout probability %g outside [0, 1)", p);
    nn_val x = net->vals[in];
    uint32_t groups = (uint32_t)(((size_t)x.c * x.h * x.w + 3) / 4);
    int out = new_val(net, x.c, x.h, x.w);
    nn_node *nd = new_node(net, N_DROPOUT, in, -1, out);
    nd->scale = p;
    nd->drop_group = net->drop_groups;
    net->drop_groups += groups;
    net->n_drop++;
    return out;
}

void ebmc_net_set_dropout(ebmc_net_t *net, bool on, ebmc_rng_key key) {
    net->drop_on = on;
    net->drop_key = key;
}

int ebmc_net_dropout_layers(const ebmc_net_t *net) { return net->n_drop; }

ebmc_status ebmc_net_set_bn_eval(ebmc_net_t *net, bool on) {
    if (!net->finalized)
        return EBMC_E_INVALID;
    net->bn_eval = false;
    if (!on || !net->n_bn) return EBMC_OK;
    ebmc_ctx_t *ctx = net->ctx;
    size_t total = 0;
    for (int i = 0; i < net->n_nodes; i++)
        if (net->nodes[i].kind == N_BN) {
            net->nodes[i].bn_st = total;
            total += 2 * (size_t)net->vals[net->nodes[i].out].c;
        }
    if (!net->bn_st) EBMC_TRY(ebmc_alloc(ctx, (void **)&net->bn_st, total * sizeof(float)));
    float *h = malloc(total * 3 * sizeof(float)); /* scale/shift, then one layer's gamma, beta, mean, var */
    float *tmp = h ? h + total : NULL;
    if (!h) return ebmc_ctx_seterr(ctx, EBMC_E_NOMEM, "%s: eval-mode BatchNorm: out of host memory", net->name);
    ebmc_status st = EBMC_OK;
    for (int i = 0; i < net->n_nodes && !st; i++) {
        nn_node *nd = &net->nodes[i];
        if (nd->kind != N_BN) continue;
        size_t c = (size_t)net->vals[nd->out].c;
        int ts[4] = {nd->t_w, nd->t_b, nd->t_rm, nd->t_rv};
        for (int k = 0; k < 4 && !st; k++)
            st = ebmc_copy(ctx, tmp + k * c, net->tensors[ts[k]].pub.data, c * sizeof(float), EBMC_COPY_D2H);
        if (!st) st = ebmc_sync(ctx);
        for (size_t j = 0; j < c && !st; j++) {
            double sc = (double)tmp[j] / sqrt((double)tmp[3 * c + j] + (double)nd->bn_eps);
            h[nd->bn_st + j] = (float)sc;
            h[nd->bn_st + c + j] = (float)((double)tmp[c + j] - (double)tmp[2 * c + j] * sc);
        }
    }
    if (!st) st = ebmc_copy(ctx, net->bn_st, h, total * sizeof(float), EBMC_COPY_H2D);
    if (!st) st = ebmc_sync(ctx);
    free(h);
    if (!st) net->bn_eval = true;
    return st;
}

bool ebmc_net_bn_eval(const ebmc_net_t *net) { return net->bn_eval; }

int ebmc_nn_reshape(ebmc_net_t *net, int in, int c, int h, int w) {
    if (!val_ok(net, in)) return -1;
    nn_val x = net->vals[in];
    if ((long)c * h * w != (long)x.c * x.h * x.w || c < 1 || h < 1 || w < 1)
        return nn_fail(net, "reshape (%d,%d,%d) -> (%d,%d,%d)", x.c, x.h, x.w, c, h, w);
    int out = new_val(net, c, h, w);
    net->vals[out].storage = net->vals[in].storage;
    new_node(net, N_RESHAPE, in, -1, out);
    return out;
}

static int chan_layer(ebmc_net_t *net, int in, nn_kind kind, const char *prefix, const char *name, ebmc_init init) {
    if (!val_ok(net, in)) return -1;
    nn_val x = net->vals[in];
    int out = new_val(net, x.c, x.h, x.w);
    nn_node *nd = new_node(net, kind, in, -1, out);
    int64_t cs[1] = {x.c};
    nd->t_w = new_tensor(net, prefix, name, R_BIAS, true, 1, cs, init, 0, 0);
    return net->failed ? -1 : out;
}

int ebmc_nn_chan_bias(ebmc_net_t *net, int in, const char *prefix, const char *name, ebmc_init init) {
    return chan_layer(net, in, N_CBIAS, prefix, name, init);
}

int ebmc_nn_chan_scale(ebmc_net_t *net, int in, const char *prefix, const char *name, ebmc_init init) {
    return chan_layer(net, in, N_CSCALE, prefix, name, init);
}

void ebmc_net_output(ebmc_net_t *net, int v) {
    if (!val_ok(net, v)) return;
    if (net->n_outputs == (int)(sizeof net->outputs / sizeof net->outputs[0])) {
        nn_fail(net, "too many outputs");
        return;
    }
    net->outputs[net->n_outputs++] = v;
}

void ebmc_net_set_meta(ebmc_net_t *net, const char *key, const char *value) {
    for (int i = 0; i < net->n_meta; i++)
        if (!strcmp(net->meta_k[i], key)) {
            snprintf(net->meta_v[i], sizeof net->meta_v[i], "%s", value);
            return;
        }
    if (net->n_meta == NN_MAX_META) {
        nn_fail(net, "too many metadata entries");
        return;
    }
    snprintf(net->meta_k[net->n_meta], sizeof net->meta_k[0], "%s", key);
    snprintf(net->meta_v[net->n_meta], sizeof net->meta_v[0], "%s", value);
    net->n_meta++;
}

/* ------------------------------------------------------------------ initialisation */

typedef struct {
    uint64_t s;
} nn_rng;

static uint64_t nn_next(nn_rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double nn_unif(nn_rng *r) { return ((double)(nn_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
static double nn_normal(nn_rng *r) {
    return sqrt(-2.0 * log(nn_unif(r))) * cos(6.283185307179586 * nn_unif(r));
}

/* Host values of tensor t, from a stream that depends only on (seed, tensor index). */
static void init_values(const nn_tensor *t, int index, uint64_t seed, float *h) {
    nn_rng r = {seed * 0xD1B54A32D192ED03ull + (uint64_t)index * 0x9E3779B97F4A7C15ull + 1};
    ebmc_init in = t->init;
    switch (t->role) {
    case R_RMEAN: in.kind = EBMC_INIT_ZERO; break;
    case R_RVAR: in.kind = EBMC_INIT_ONE; break;
    case R_SNVEC: { /* normalize(N(0,1)) as torch's spectral_norm */
        double s = 0;
        for (size_t i = 0; i < t->count; i++) {
            h[i] = (float)nn_normal(&r);
            s += (double)h[i] * h[i];
        }
        double nrm = fmax(sqrt(s), 1e-12);
        for (size_t i = 0; i < t->count; i++) h[i] = (float)(h[i] / nrm);
        return;
    }
    case R_GAMMA:
        if (in.kind == EBMC_INIT_DEFAULT) in.kind = EBMC_INIT_ONE;
        break;
    case R_BETA:
        if (in.kind == EBMC_INIT_DEFAULT) in.kind = EBMC_INIT_ZERO;
        break;
    default: break;
    }
    for (size_t i = 0; i < t->count; i++) {
        double v = 0;
        switch (in.kind) {
        case EBMC_INIT_DEFAULT: { /* kaiming_uniform(a=sqrt(5)) == U(+-1/sqrt(fan_in)); bias too */
            double b = t->fan_in > 0 ? 1.0 / sqrt((double)t->fan_in) : 0.0;
            v = (2.0 * nn_unif(&r) - 1.0) * b;
            break;
        }
        case EBMC_INIT_XAVIER_NORMAL:
            v = nn_normal(&r) * sqrt(2.0 / (double)(t->fan_in + t->fan_out));
            break;
        case EBMC_INIT_NORMAL: v = nn_normal(&r) * in.std; break;
        case EBMC_INIT_ZERO: v = 0; break;
        case EBMC_INIT_ONE: v = 1; break;
        case EBMC_INIT_XAVIER_UNIFORM:
            v = (2.0 * nn_unif(&r) - 1.0) * sqrt(6.0 / (double)(t->fan_in + t->fan_out));
            break;
        }
        h[i] = (float)v;
    }
}

size_t nn_align64(size_t n) { return (n + 63) & ~(size_t)63; }

static ebmc_status check_ops(ebmc_net_t *net) {
    ebmc_ctx_t *ctx = net->ctx;
    for (int i = 0; i < net->n_nodes; i++) {
        nn_node *nd = &net->nodes[i];
        if (nd->kind == N_CONV || nd->kind == N_CONVT) {
            ebmc_op ops[3] = {EBMC_OP_CONV2D_FWD, EBMC_OP_CONV2D_BWD_DATA, EBMC_OP_CONV2D_BWD_FILTER};
            for (int k = 0; k < 3; k++) {
                ebmc_op op = (ebmc_op)(ops[k] + (nd->kind == N_CONVT ? 3 : 0));
                if (!ebmc_supports(ctx, op, &nd->cd)) {
                    nn_fail(net, "layer %d (%s): %s", i, ebmc_op_name(op), ebmc_ctx_error(ctx));
                    return EBMC_E_UNSUPPORTED;
                }
            }
        }
    }
    return EBMC_OK;
}

ebmc_status ebmc_net_finalize(ebmc_net_t *net, ebmc_ctx_t *ctx, bool trainable, uint64_t seed) {
    if (net->failed) return EBMC_E_INVALID;
    if (net->finalized) {
        nn_fail(net, "finalized twice");
        return EBMC_E_INVALID;
    }
    if (net->n_outputs == 0) {
        nn_fail(net, "no output marked");
        return EBMC_E_INVALID;
    }
    net->ctx = ctx;
    net->trainable = trainable;
    ebmc_status s = check_ops(net);
    if (s) return s;
    size_t np = 0, nb = 0;
    for (int i = 0; i < net->n_tensors; i++) {
        nn_tensor *t = &net->tensors[i];
        if (t->role == R_COUNTER) continue;
        if (t->trainable) {
            t->offset = np;
            np += t->count; /* contiguous: one optimiser call covers the net */
        } else {
            t->offset = nb;
            nb += nn_align64(t->count);
        }
    }
    net->n_params = np;
    net->n_buffers = nb;
    s = ebmc_alloc(ctx, (void **)&net->params, (np ? np : 1) * sizeof(float));
    if (!s && trainable) s = ebmc_alloc(ctx, (void **)&net->grads, (np ? np : 1) * sizeof(float));
    if (!s) s = ebmc_alloc(ctx, (void **)&net->buffers, (nb ? nb : 1) * sizeof(float));
    if (s) {
        nn_fail(net, "allocating %zu parameters: %s", np, ebmc_ctx_error(ctx));
        return s;
    }
    float *host = NULL;
    size_t host_n = 0;
    for (int i = 0; i < net->n_tensors; i++) {
        nn_tensor *t = &net->tensors[i];
        t->pub.name = t->name;
        t->pub.ndim = t->ndim;
        memcpy(t->pub.shape, t->shape, sizeof t->shape);
        t->pub.count = t->role == R_COUNTER ? 1 : t->count;
        t->pub.trainable = t->trainable;
        t->pub.is_counter = t->role == R_COUNTER;
        if (t->role == R_COUNTER) continue;
        t->pub.data = (t->trainable ? net->params : net->buffers) + t->offset;
        t->pub.grad = (t->trainable && trainable) ? net->grads + t->offset : NULL;
        if (t->count > host_n) {
            free(host);
            host_n = t->count;
            host = ebmc_xmalloc(host_n * sizeof(float), "net init");
        }
        init_values(t, i, seed, host);
        s = ebmc_copy(ctx, t->pub.data, host, t->count * sizeof(float), EBMC_COPY_H2D);
        if (s) break;
    }
    free(host);
    if (s) {
        nn_fail(net, "initialising parameters: %s", ebmc_ctx_error(ctx));
        return s;
    }
    net->finalized = true;
    if (trainable) return ebmc_net_zero_grad(net);
    return EBMC_OK;
}

const char *ebmc_net_error(const ebmc_net_t *net) { return net->err; }

void ebmc_net_free(ebmc_net_t *net) {
    if (!net) return;
    if (net->ctx) {
        ebmc_free(net->ctx, net->params);
        ebmc_free(net->ctx, net->grads);
        ebmc_free(net->ctx, net->buffers);
        ebmc_free(net->ctx, net->bn_st);
    }
    free(net->vals);
    free(net->nodes);
    free(net->tensors);
    free(net);
}

void ebmc_net_set_sn_iters(ebmc_net_t *net, int n) { net->sn_iters = n < 0 ? 0 : n; }
int ebmc_net_sn_iters(const ebmc_net_t *net) { return net->sn_iters; }
const char *ebmc_net_name(const ebmc_net_t *net) { return net->name; }
int ebmc_net_n_outputs(const ebmc_net_t *net) { return net->n_outputs; }
int ebmc_net_output_value(const ebmc_net_t *net, int i) { return net->outputs[i]; }
void ebmc_net_value_shape(const ebmc_net_t *net, int v, int *c, int *h, int *w) {
    *c = net->vals[v].c;
    *h = net->vals[v].h;
    *w = net->vals[v].w;
}
void ebmc_net_input_shape(const ebmc_net_t *net, int *c, int *h, int *w) {
    ebmc_net_value_shape(net, 0, c, h, w);
}
size_t ebmc_net_value_count(const ebmc_net_t *net, int v) {
    return (size_t)net->vals[v].c * net->vals[v].h * net->vals[v].w;
}
size_t ebmc_net_param_count(const ebmc_net_t *net) { return net->n_params; }
float *ebmc_net_params(ebmc_net_t *net) { return net->params; }
float *ebmc_net_grads(ebmc_net_t *net) { return net->grads; }
ebmc_ctx_t *ebmc_net_ctx(const ebmc_net_t *net) { return net->ctx; }
int ebmc_net_tensor_count(const ebmc_net_t *net) { return net->n_tensors; }
const ebmc_net_tensor *ebmc_net_tensor_at(const ebmc_net_t *net, int i) {
    return (i >= 0 && i < net->n_tensors) ? &net->tensors[i].pub : NULL;
}
const ebmc_net_tensor *ebmc_net_tensor_find(const ebmc_net_t *net, const char *name) {
    for (int i = 0; i < net->n_tensors; i++)
        if (!strcmp(net->tensors[i].name, name)) return &net->tensors[i].pub;
    return NULL;
}
int64_t ebmc_net_bn_batches(const ebmc_net_t *net) { return net->bn_batches; }
void ebmc_net_set_bn_batches(ebmc_net_t *net, int64_t n) { net->bn_batches = n; }
int ebmc_net_meta_count(const ebmc_net_t *net) { return net->n_meta; }
void ebmc_net_meta_at(const ebmc_net_t *net, int i, const char **key, const char **value) {
    *key = net->meta_k[i];
    *value = net->meta_v[i];
}

ebmc_status ebmc_net_zero_grad(ebmc_net_t *net) {
    if (!net->grads || !net->n_params) return EBMC_OK;
    ebmc_fill_desc f = {.count = net->n_params, .value = 0.0f};
    return ebmc_fill(net->ctx, &f, net->grads);
}

/* ------------------------------------------------------------------ arithmetic */

double ebmc_net_macs(const ebmc_net_t *net, double *first) {
    double total = 0, at_input = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const nn_node *nd = &net->nodes[i];
        double m = 0;
        if (nd->kind == N_CONV) { /* Cout * Cin * KH * KW per output pixel */
            nn_val vo = net->vals[nd->out];
            m = (double)vo.c * nd->cd.c_in * nd->cd.kh * nd->cd.kw * vo.h * vo.w;
        } else if (nd->kind == N_CONVT) { /* Cin * Cout * KH * KW per input pixel */
            nn_val vi = net->vals[nd->in0];
            m = (double)vi.c * nd->cd.c_out * nd->cd.kh * nd->cd.kw * vi.h * vi.w;
        } else if (nd->kind == N_LINEAR) {
            m = (double)nd->lin_in * nd->lin_out;
        }
        total += m;
        if (net->vals[nd->in0].storage == 0) at_input += m;
    }
    if (first) *first = at_input;
    return total;
}

/* ------------------------------------------------------------------ memory report */

void ebmc_net_memory_report(const ebmc_net_t *net, int batch, FILE *f) {
    const double mib = 1.0 / 1048576.0;
    size_t np = 0, nb = 0;
    for (int i = 0; i < net->n_tensors; i++) {
        const nn_tensor *t = &net->tensors[i];
        if (t->role == R_COUNTER) continue;
        if (t->trainable) np += t->count;
        else nb += t->count;
    }
    size_t tape_fwd = ebmc_tape_plan_bytes(net, batch, false);
    size_t tape_bwd = ebmc_tape_plan_bytes(net, batch, true);
    fprintf(f, "%-24s params %10zu (%8.1f MiB)  grads %8.1f MiB  adam m,v %8.1f MiB  buffers %6.2f MiB\n",
            net->name, np, np * 4 * mib, np * 4 * mib, 2 * np * 4 * mib, nb * 4 * mib);
    fprintf(f, "%-24s tape at batch %d: forward-only %8.1f MiB, with gradients %8.1f MiB\n", "",
            batch, tape_fwd * mib, tape_bwd * mib);
}
