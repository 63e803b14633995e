/* The nn graph: layers with parameters in one arena, tapes planned from shapes, forward and
 * backward through the op table only. */
#include "ebmc/nn.h"
#include "backend/ctx_internal.h"
#include "ebmc/nvtx.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    N_INPUT = 0,
    N_CONV,
    N_CONVT,
    N_LINEAR,
    N_ACT,
    N_BN,
    N_UPSAMPLE,
    N_AVGPOOL2,
    N_GPOOL,
    N_ADD,
    N_SCALE,
    N_RESHAPE
} nn_kind;

typedef struct {
    int c, h, w;
    int storage; /* the value whose memory this one uses (itself unless a reshape view) */
} nn_val;

typedef struct {
    nn_kind kind;
    int in0, in1, out;
    ebmc_conv_desc cd;      /* conv/convt, n = 1 at build time */
    int lin_in, lin_out;
    bool bias, sn;
    int t_w, t_b;           /* tensors: weight/bias, or BatchNorm gamma/beta */
    int t_rm, t_rv, t_u, t_v;
    ebmc_act_kind act;
    float slope, scale;
    float bn_eps, bn_momentum;
    ebmc_upsample_mode up;
    ebmc_gpool_mode gp;
    int sn_rows, sn_cols;
    int slot;               /* BatchNorm or spectral-norm slot in the tape */
} nn_node;

typedef enum {
    R_WEIGHT,   /* conv/linear weight */
    R_BIAS,     /* conv/linear bias */
    R_GAMMA,    /* BatchNorm weight */
    R_BETA,     /* BatchNorm bias */
    R_RMEAN,
    R_RVAR,
    R_COUNTER,  /* num_batches_tracked */
    R_SNVEC     /* spectral-norm u or v */
} nn_role;

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[4];
    size_t count;
    bool trainable;
    nn_role role;
    ebmc_init init;
    int fan_in, fan_out;
    size_t offset;          /* floats into the param arena (trainable) or buffer arena */
    ebmc_net_tensor pub;
} nn_tensor;

#define NN_MAX_META 16

struct ebmc_net {
    char name[96];
    char range_fwd[104], range_bwd[104], range_bwd_x[104]; /* NVTX: "<name>_fwd", "_bwd", "_bwd_x" */
    char err[512];
    bool failed, finalized, trainable;
    ebmc_ctx_t *ctx;
    nn_val *vals;
    int n_vals, cap_vals;
    nn_node *nodes;
    int n_nodes, cap_nodes;
    nn_tensor *tensors;
    int n_tensors, cap_tensors;
    int outputs[8];
    int n_outputs;
    int n_bn, n_sn;
    int sn_iters;
    int64_t bn_batches;
    float *params, *grads, *buffers;
    size_t n_params, n_buffers;
    char meta_k[NN_MAX_META][64], meta_v[NN_MAX_META][256];
    int n_meta;
};

typedef struct {
    float *mean, *invstd; /* (C) */
} tape_bn;

typedef struct {
    float *w_sn, *dw_sn, *sigma, *u, *v; /* W/sigma (rows*cols), scratch gradient, u, v used */
} tape_sn;

/* A tape's device memory: owned by the tape that allocated it and by every tape created shared
 * with it; freed with the last of them. */
typedef struct {
    float *ptr;
    size_t bytes;
    int refs;
    ebmc_ctx_t *ctx;
} tape_arena;

struct ebmc_tape {
    ebmc_net_t *net;
    int max_batch, n;
    bool with_grad;
    bool shares;      /* the arena was allocated by another tape (ebmc_tape_create_shared) */
    tape_arena *mem;
    float **val, **grad;
    tape_bn *bn;
    tape_sn *sn;
    float *scratch;   /* 2*max BatchNorm channels: dgamma/dbeta in input-gradient mode */
    bool *written;    /* per value storage, during a backward */
    bool ran;
};

/* ------------------------------------------------------------------ building */

static int nn_fail(ebmc_net_t *net, const char *fmt, ...) {
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
        }
        h[i] = (float)v;
    }
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

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
            nb += align64(t->count);
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

/* ------------------------------------------------------------------ tapes */

/* Gradient-buffer reuse (on unless a test turns it off to compare against the unshared plan). */
static bool nn_grad_reuse = true;
void ebmc_nn_set_grad_reuse(bool on) { nn_grad_reuse = on; }
bool ebmc_nn_grad_reuse(void) { return nn_grad_reuse; }

/* Liveness of the gradient buffers in the backward's order. Step 0 copies dy into the outputs'
 * gradients; the backward of node i is step n_nodes - i (nodes run in reverse). The gradient of
 * a value stored on its own (storage s, views included) is written first by step 0 when s is an
 * output, or by the backward of its first consumer in reverse order (beta 0; later consumers
 * accumulate with beta 1), and read last by the backward of the node that produced s. It is live
 * over the closed interval [first, last]: a node's backward reads its output's gradient and
 * writes its inputs' at the same step, so closed intervals keep every read apart from every
 * write of that step. Gradients whose intervals are disjoint share a slot; slots are assigned
 * greedily by start (best fit among free slots, else grow the largest free one), on per-sample
 * counts so the assignment does not depend on the batch (a smaller batch never needs more).
 * The net input's gradient (grad[0]) keeps its own buffer. Fills slot[v] for every storage value
 * v >= 1 and cap[k] (per-sample floats of slot k); returns the number of slots. */
static int grad_slots(const ebmc_net_t *net, int *slot, size_t *cap) {
    int nv = net->n_vals, nn = net->n_nodes;
    int *first = ebmc_xmalloc((size_t)nv * sizeof *first, "tape plan");
    int *last = ebmc_xmalloc((size_t)nv * sizeof *last, "tape plan");
    int *order = ebmc_xmalloc((size_t)nv * sizeof *order, "tape plan");
    int *end = ebmc_xmalloc((size_t)nv * sizeof *end, "tape plan");
    for (int v = 0; v < nv; v++) {
        first[v] = nn + 1;
        last[v] = -1;
        slot[v] = -1;
    }
    for (int i = 0; i < net->n_outputs; i++) first[net->vals[net->outputs[i]].storage] = 0;
    for (int i = 0; i < nn; i++) {
        const nn_node *nd = &net->nodes[i];
        if (nd->kind == N_RESHAPE || nd->kind == N_INPUT) continue; /* no backward of its own */
        int step = nn - i;
        int in[2] = {nd->in0, nd->kind == N_ADD ? nd->in1 : -1};
        for (int k = 0; k < 2; k++) {
            if (in[k] < 0) continue;
            int s = net->vals[in[k]].storage;
            if (step < first[s]) first[s] = step;
        }
        last[net->vals[nd->out].storage] = step;
    }
    int n = 0;
    for (int v = 1; v < nv; v++) {
        if (net->vals[v].storage != v) continue;
        if (last[v] < 0) last[v] = 0;         /* not produced by a node: cannot happen */
        if (first[v] > last[v]) first[v] = last[v]; /* never written: a one-step interval */
        order[n++] = v;
    }
    for (int i = 1; i < n; i++) { /* insertion sort by (first, value) */
        int v = order[i], j = i - 1;
        while (j >= 0 && first[order[j]] > first[v]) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = v;
    }
    int n_slots = 0;
    for (int i = 0; i < n; i++) {
        int v = order[i];
        size_t need = ebmc_net_value_count(net, v);
        int fit = -1, grow = -1;
        for (int k = 0; k < n_slots; k++) {
            if (end[k] >= first[v]) continue; /* still live */
            if (cap[k] >= need) {
                if (fit < 0 || cap[k] < cap[fit]) fit = k;
            } else if (grow < 0 || cap[k] > cap[grow]) {
                grow = k;
            }
        }
        int k = fit >= 0 ? fit : grow;
        if (k < 0) {
            k = n_slots++;
            cap[k] = 0;
        }
        if (need > cap[k]) cap[k] = need;
        end[k] = last[v];
        slot[v] = k;
    }
    free(first);
    free(last);
    free(order);
    free(end);
    return n_slots;
}

/* Lays out a tape (or only counts it when t == NULL); returns floats. Without reuse every value
 * has its own gradient buffer and every spectral-norm layer its own weight-gradient scratch;
 * with reuse gradients share slots (grad_slots) and the spectral-norm layers one scratch (each
 * is written with beta 0 and read by the same node's backward). */
static size_t tape_layout(const ebmc_net_t *net, int B, bool with_grad, bool reuse,
                          ebmc_tape_t *t, float *base) {
    size_t off = 0;
#define TAKE(ptr, nfloats)                                                                      \
    do {                                                                                        \
        if (base) (ptr) = base + off;                                                           \
        off += align64(nfloats);                                                                \
    } while (0)
    reuse = reuse && with_grad;
    if (with_grad) /* the input's own gradient buffer: scratch when no dx is asked for */
        TAKE(t->grad[0], (size_t)B * ebmc_net_value_count(net, 0));
    for (int v = 1; v < net->n_vals; v++) {
        if (net->vals[v].storage != v) continue;
        size_t n = (size_t)B * ebmc_net_value_count(net, v);
        TAKE(t->val[v], n);
        if (with_grad && !reuse) TAKE(t->grad[v], n);
    }
    if (reuse) {
        int *slot = ebmc_xmalloc((size_t)net->n_vals * sizeof *slot, "tape plan");
        size_t *cap = ebmc_xmalloc((size_t)net->n_vals * sizeof *cap, "tape plan");
        float **at = ebmc_xcalloc((size_t)net->n_vals, sizeof *at, "tape plan");
        int n_slots = grad_slots(net, slot, cap);
        for (int k = 0; k < n_slots; k++) TAKE(at[k], (size_t)B * cap[k]);
        if (base)
            for (int v = 1; v < net->n_vals; v++)
                if (slot[v] >= 0) t->grad[v] = at[slot[v]];
        free(slot);
        free(cap);
        free(at);
    }
    int maxc = 1;
    size_t max_rc = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const nn_node *nd = &net->nodes[i];
        if (nd->kind == N_BN) {
            int c = net->vals[nd->in0].c;
            if (c > maxc) maxc = c;
            TAKE(t->bn[nd->slot].mean, (size_t)c);
            TAKE(t->bn[nd->slot].invstd, (size_t)c);
        } else if (nd->sn) {
            size_t rc = (size_t)nd->sn_rows * nd->sn_cols;
            if (rc > max_rc) max_rc = rc;
            TAKE(t->sn[nd->slot].w_sn, rc);
            if (with_grad && !reuse) TAKE(t->sn[nd->slot].dw_sn, rc);
            TAKE(t->sn[nd->slot].sigma, 1);
            TAKE(t->sn[nd->slot].u, (size_t)nd->sn_rows);
            TAKE(t->sn[nd->slot].v, (size_t)nd->sn_cols);
        }
    }
    if (reuse && max_rc) {
        float *dw_sn = NULL;
        TAKE(dw_sn, max_rc);
        if (base)
            for (int i = 0; i < net->n_sn; i++) t->sn[i].dw_sn = dw_sn;
    }
    TAKE(t->scratch, 2 * (size_t)maxc);
#undef TAKE
    if (base) /* views share their source's memory */
        for (int v = 1; v < net->n_vals; v++) {
            int s = net->vals[v].storage;
            if (s != v) {
                t->val[v] = t->val[s];
                t->grad[v] = t->grad[s];
            }
        }
    return off;
}

size_t ebmc_tape_plan_bytes(const ebmc_net_t *net, int max_batch, bool with_grad) {
    return tape_layout(net, max_batch, with_grad, nn_grad_reuse, NULL, NULL) * sizeof(float);
}

/* Workspace the net's convolutions need at batch B (planned once per tape). */
static size_t net_workspace(const ebmc_net_t *net, int B) {
    size_t ws = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const nn_node *nd = &net->nodes[i];
        if (nd->kind != N_CONV && nd->kind != N_CONVT && !nd->sn) continue;
        if (nd->kind == N_CONV || nd->kind == N_CONVT) {
            ebmc_conv_desc d = nd->cd;
            d.n = B;
            for (int k = 0; k < 3; k++) {
                ebmc_op op = (ebmc_op)(EBMC_OP_CONV2D_FWD + k + (nd->kind == N_CONVT ? 3 : 0));
                size_t w = ebmc_workspace_size(net->ctx, op, &d);
                if (w > ws) ws = w;
            }
        }
        if (nd->sn) {
            ebmc_sn_desc sd = {nd->sn_rows, nd->sn_cols, 1, 1e-12f};
            size_t w = ebmc_workspace_size(net->ctx, EBMC_OP_SN_POWER, &sd);
            if (w > ws) ws = w;
        }
    }
    return ws;
}

/* The checks and host side common to ebmc_tape_create and ebmc_tape_create_shared. */
static ebmc_status tape_new(ebmc_net_t *net, int max_batch, bool with_grad, ebmc_tape_t **out) {
    *out = NULL;
    if (!net->finalized) {
        nn_fail(net, "tape for a net that is not finalized");
        return EBMC_E_INVALID;
    }
    if (max_batch < 1) {
        snprintf(net->err, sizeof net->err, "%s: tape batch %d must be >= 1", net->name, max_batch);
        return EBMC_E_INVALID;
    }
    ebmc_tape_t *t = ebmc_xcalloc(1, sizeof *t, "tape");
    t->net = net;
    t->max_batch = max_batch;
    t->with_grad = with_grad;
    t->val = ebmc_xcalloc(net->n_vals, sizeof *t->val, "tape");
    t->grad = ebmc_xcalloc(net->n_vals, sizeof *t->grad, "tape");
    t->bn = ebmc_xcalloc(net->n_bn + 1, sizeof *t->bn, "tape");
    t->sn = ebmc_xcalloc(net->n_sn + 1, sizeof *t->sn, "tape");
    t->written = ebmc_xcalloc(net->n_vals, sizeof *t->written, "tape");
    *out = t;
    return EBMC_OK;
}

ebmc_status ebmc_tape_create(ebmc_net_t *net, int max_batch, bool with_grad, ebmc_tape_t **out) {
    ebmc_tape_t *t;
    ebmc_status s = tape_new(net, max_batch, with_grad, &t);
    if (s) return s;
    bool reuse = nn_grad_reuse;
    size_t n = tape_layout(net, max_batch, with_grad, reuse, NULL, NULL);
    t->mem = ebmc_xcalloc(1, sizeof *t->mem, "tape");
    t->mem->ctx = net->ctx;
    t->mem->refs = 1;
    t->mem->bytes = n * sizeof(float);
    s = ebmc_alloc(net->ctx, (void **)&t->mem->ptr, n * sizeof(float));
    if (!s) s = ebmc_ctx_reserve_workspace(net->ctx, net_workspace(net, max_batch));
    if (s) {
        snprintf(net->err, sizeof net->err, "%s: planning a tape for batch %d (%.1f MiB): %s",
                 net->name, max_batch, n * 4.0 / 1048576.0, ebmc_ctx_error(net->ctx));
        ebmc_tape_free(t);
        return s;
    }
    tape_layout(net, max_batch, with_grad, reuse, t, t->mem->ptr);
    *out = t;
    return EBMC_OK;
}

ebmc_status ebmc_tape_create_shared(ebmc_net_t *net, int max_batch, bool with_grad,
                                    ebmc_tape_t *base, ebmc_tape_t **out) {
    *out = NULL;
    if (!base || base->net != net) {
        snprintf(net->err, sizeof net->err, "%s: a shared tape needs a base tape of the same net%s%s",
                 net->name, base ? ", not of " : " (NULL base)", base ? base->net->name : "");
        return EBMC_E_INVALID;
    }
    if (max_batch > base->max_batch) {
        snprintf(net->err, sizeof net->err, "%s: a shared tape for batch %d on a base planned for %d",
                 net->name, max_batch, base->max_batch);
        return EBMC_E_INVALID;
    }
    if (with_grad && !base->with_grad) {
        snprintf(net->err, sizeof net->err, "%s: a shared tape with gradients on a base without them",
                 net->name);
        return EBMC_E_INVALID;
    }
    bool reuse = nn_grad_reuse;
    size_t n = tape_layout(net, max_batch, with_grad, reuse, NULL, NULL);
    if (n * sizeof(float) > base->mem->bytes) { /* e.g. the reuse switch turned off in between */
        snprintf(net->err, sizeof net->err, "%s: a shared tape needs %zu bytes, its base has %zu",
                 net->name, n * sizeof(float), base->mem->bytes);
        return EBMC_E_INVALID;
    }
    ebmc_tape_t *t;
    ebmc_status s = tape_new(net, max_batch, with_grad, &t);
    if (s) return s;
    t->mem = base->mem;
    t->mem->refs++;
    t->shares = true;
    tape_layout(net, max_batch, with_grad, reuse, t, t->mem->ptr);
    *out = t;
    return EBMC_OK;
}

void ebmc_tape_free(ebmc_tape_t *t) {
    if (!t) return;
    if (t->mem && --t->mem->refs == 0) {
        if (t->mem->ptr) ebmc_free(t->mem->ctx, t->mem->ptr);
        free(t->mem);
    }
    free(t->val);
    free(t->grad);
    free(t->bn);
    free(t->sn);
    free(t->written);
    free(t);
}

size_t ebmc_tape_bytes(const ebmc_tape_t *t) { return t->mem ? t->mem->bytes : 0; }
bool ebmc_tape_shares(const ebmc_tape_t *t) { return t->shares; }

int ebmc_tape_batch(const ebmc_tape_t *t) { return t->n; }
float *ebmc_tape_value(ebmc_tape_t *t, int v) { return t->val[v]; }
float *ebmc_tape_output(ebmc_tape_t *t, int i) { return t->val[t->net->outputs[i]]; }

/* ------------------------------------------------------------------ forward */

#define TRY(call)                                                                               \
    do {                                                                                        \
        ebmc_status s_ = (call);                                                                \
        if (s_ != EBMC_OK) return s_;                                                           \
    } while (0)

static float *P(ebmc_net_t *net, int t) { return t < 0 ? NULL : net->tensors[t].pub.data; }
static float *G(ebmc_net_t *net, int t) { return t < 0 ? NULL : net->tensors[t].pub.grad; }

static ebmc_status copy_dev(ebmc_ctx_t *ctx, float *dst, const float *src, size_t n) {
    ebmc_axpby_desc d = {.count = n, .a = 1.0f, .b = 0.0f};
    return ebmc_axpby(ctx, &d, src, dst);
}

/* W/sigma after this pass's power iterations; u, v as used, kept in the tape for backward */
static ebmc_status sn_forward(ebmc_net_t *net, ebmc_tape_t *t, const nn_node *nd) {
    tape_sn *s = &t->sn[nd->slot];
    ebmc_sn_desc d = {nd->sn_rows, nd->sn_cols, net->sn_iters, 1e-12f};
    TRY(ebmc_sn_power(net->ctx, &d, P(net, nd->t_w), P(net, nd->t_u), P(net, nd->t_v), s->sigma,
                      s->w_sn));
    TRY(copy_dev(net->ctx, s->u, P(net, nd->t_u), (size_t)nd->sn_rows));
    return copy_dev(net->ctx, s->v, P(net, nd->t_v), (size_t)nd->sn_cols);
}

static ebmc_status net_forward(ebmc_net_t *net, ebmc_tape_t *t, int n, const float *x);

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
                TRY(sn_forward(net, t, nd));
                w = t->sn[nd->slot].w_sn;
            }
            if (nd->kind == N_CONV) TRY(ebmc_conv2d_fwd(ctx, &d, xin, w, y));
            else TRY(ebmc_convt2d_fwd(ctx, &d, xin, w, y));
            if (nd->bias) {
                ebmc_t4_desc b = {n, vo.c, vo.h, vo.w};
                TRY(ebmc_bias_fwd(ctx, &b, P(net, nd->t_b), y));
            }
            break;
        }
        case N_LINEAR: {
            ebmc_linear_desc d = {n, nd->lin_in, nd->lin_out};
            const float *w = P(net, nd->t_w);
            if (nd->sn) {
                TRY(sn_forward(net, t, nd));
                w = t->sn[nd->slot].w_sn;
            }
            TRY(ebmc_linear_fwd(ctx, &d, xin, w, P(net, nd->t_b), y));
            break;
        }
        case N_ACT: {
            ebmc_act_desc d = {nd->act, nd->slope, cnt};
            TRY(ebmc_act_fwd(ctx, &d, xin, y));
            break;
        }
        case N_BN: {
            ebmc_bn_desc d = {n, vo.c, vo.h, vo.w, nd->bn_eps, nd->bn_momentum};
            TRY(ebmc_bn_fwd(ctx, &d, xin, P(net, nd->t_w), P(net, nd->t_b), y,
                            t->bn[nd->slot].mean, t->bn[nd->slot].invstd, P(net, nd->t_rm),
                            P(net, nd->t_rv)));
            break;
        }
        case N_UPSAMPLE: {
            nn_val vi = net->vals[nd->in0];
            ebmc_upsample_desc d = {n, vi.c, vi.h, vi.w, nd->up};
            TRY(ebmc_upsample_fwd(ctx, &d, xin, y));
            break;
        }
        case N_AVGPOOL2: {
            nn_val vi = net->vals[nd->in0];
            ebmc_t4_desc d = {n, vi.c, vi.h, vi.w};
            TRY(ebmc_avgpool2_fwd(ctx, &d, xin, y));
            break;
        }
        case N_GPOOL: {
            nn_val vi = net->vals[nd->in0];
            ebmc_gpool_desc d = {n, vi.c, vi.h, vi.w, nd->gp};
            TRY(ebmc_gpool_fwd(ctx, &d, xin, y));
            break;
        }
        case N_ADD: {
            ebmc_axpby_desc d = {cnt, 1.0f, 0.0f};
            TRY(ebmc_axpby(ctx, &d, xin, y));
            d.b = 1.0f;
            TRY(ebmc_axpby(ctx, &d, t->val[nd->in1], y));
            break;
        }
        case N_SCALE: {
            ebmc_axpby_desc d = {cnt, nd->scale, 0.0f};
            TRY(ebmc_axpby(ctx, &d, xin, y));
            break;
        }
        case N_RESHAPE: break; /* a view */
        }
    }
    if (net->n_bn) net->bn_batches++;
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
        TRY(ebmc_axpby(ctx, &d, dy[i], g));
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
                    TRY(ebmc_bias_bwd(ctx, &b, g, G(net, nd->t_b), 1.0f));
                }
                float *dw = nd->sn ? t->sn[nd->slot].dw_sn : G(net, nd->t_w);
                float bw = nd->sn ? 0.0f : 1.0f;
                if (tr) TRY(ebmc_convt2d_bwd_filter(ctx, &d, xin, g, dw, bw));
                else TRY(ebmc_conv2d_bwd_filter(ctx, &d, xin, g, dw, bw));
                if (nd->sn) {
                    tape_sn *s = &t->sn[nd->slot];
                    ebmc_sn_desc sd = {nd->sn_rows, nd->sn_cols, 0, 1e-12f};
                    TRY(ebmc_sn_bwd(ctx, &sd, P(net, nd->t_w), s->u, s->v, s->sigma, s->dw_sn,
                                    G(net, nd->t_w), 1.0f));
                }
            }
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            if (gx) {
                if (tr) TRY(ebmc_convt2d_bwd_data(ctx, &d, g, w, gx, beta));
                else TRY(ebmc_conv2d_bwd_data(ctx, &d, g, w, gx, beta));
            }
            break;
        }
        case N_LINEAR: {
            ebmc_linear_desc d = {n, nd->lin_in, nd->lin_out};
            const float *w = nd->sn ? t->sn[nd->slot].w_sn : P(net, nd->t_w);
            if (full) {
                if (nd->bias) {
                    ebmc_t4_desc b = {n, nd->lin_out, 1, 1};
                    TRY(ebmc_bias_bwd(ctx, &b, g, G(net, nd->t_b), 1.0f));
                }
                float *dw = nd->sn ? t->sn[nd->slot].dw_sn : G(net, nd->t_w);
                TRY(ebmc_linear_bwd_filter(ctx, &d, xin, g, dw, NULL, nd->sn ? 0.0f : 1.0f));
                if (nd->sn) {
                    tape_sn *s = &t->sn[nd->slot];
                    ebmc_sn_desc sd = {nd->sn_rows, nd->sn_cols, 0, 1e-12f};
                    TRY(ebmc_sn_bwd(ctx, &sd, P(net, nd->t_w), s->u, s->v, s->sigma, s->dw_sn,
                                    G(net, nd->t_w), 1.0f));
                }
            }
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            if (gx) TRY(ebmc_linear_bwd_data(ctx, &d, g, w, gx, beta));
            break;
        }
        case N_ACT: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_act_desc d = {nd->act, nd->slope, cnt};
            if (gx) TRY(ebmc_act_bwd(ctx, &d, xin, t->val[nd->out], g, gx, beta));
            break;
        }
        case N_BN: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_bn_desc d = {n, vo.c, vo.h, vo.w, nd->bn_eps, nd->bn_momentum};
            bool learn_g = net->tensors[nd->t_w].trainable;
            float *dg = (full && learn_g) ? G(net, nd->t_w) : t->scratch;
            float *db = full ? G(net, nd->t_b) : t->scratch + vo.c;
            if (gx || full) {
                /* the op always writes dx: without a target (the net input, no dx asked
                 * for) it goes to the input's gradient buffer, which nobody reads */
                float *dxt = gx ? gx : t->grad[nd->in0];
                if (full && !learn_g) { /* gamma fixed: its gradient goes to scratch, beta's not */
                    TRY(ebmc_bn_bwd(ctx, &d, xin, g, P(net, nd->t_w), t->bn[nd->slot].mean,
                                    t->bn[nd->slot].invstd, dxt, dg, t->scratch + vo.c,
                                    gx ? beta : 0.0f, 0.0f));
                    ebmc_axpby_desc acc = {(size_t)vo.c, 1.0f, 1.0f};
                    TRY(ebmc_axpby(ctx, &acc, t->scratch + vo.c, db));
                    break;
                }
                TRY(ebmc_bn_bwd(ctx, &d, xin, g, P(net, nd->t_w), t->bn[nd->slot].mean,
                                t->bn[nd->slot].invstd, dxt, dg, db, gx ? beta : 0.0f,
                                full ? 1.0f : 0.0f));
            }
            break;
        }
        case N_UPSAMPLE: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_upsample_desc d = {n, vi.c, vi.h, vi.w, nd->up};
            if (gx) TRY(ebmc_upsample_bwd(ctx, &d, g, gx, beta));
            break;
        }
        case N_AVGPOOL2: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_t4_desc d = {n, vi.c, vi.h, vi.w};
            if (gx) TRY(ebmc_avgpool2_bwd(ctx, &d, g, gx, beta));
            break;
        }
        case N_GPOOL: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_gpool_desc d = {n, vi.c, vi.h, vi.w, nd->gp};
            if (gx) TRY(ebmc_gpool_bwd(ctx, &d, g, gx, beta));
            break;
        }
        case N_ADD: {
            for (int k = 0; k < 2; k++) {
                int in = k ? nd->in1 : nd->in0;
                float *gx = grad_target(t, in, dx, dx_beta, &beta);
                ebmc_axpby_desc d = {cnt, 1.0f, beta};
                if (gx) TRY(ebmc_axpby(ctx, &d, g, gx));
            }
            break;
        }
        case N_SCALE: {
            float *gx = grad_target(t, nd->in0, dx, dx_beta, &beta);
            ebmc_axpby_desc d = {cnt, nd->scale, beta};
            if (gx) TRY(ebmc_axpby(ctx, &d, g, gx));
            break;
        }
        }
    }
    /* dx requested but the input does not reach any output with a gradient: it is zero */
    if (dx && !t->written[0]) {
        size_t cnt = (size_t)n * ebmc_net_value_count(net, 0);
        if (dx_beta == 0.0f) {
            ebmc_fill_desc f = {cnt, 0.0f};
            TRY(ebmc_fill(ctx, &f, dx));
        } else if (dx_beta != 1.0f) {
            ebmc_axpby_desc d = {cnt, dx_beta, 0.0f};
            TRY(ebmc_axpby(ctx, &d, dx, dx));
        }
    }
    return EBMC_OK;
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
