/* The checked entry points of the op table: every descriptor and pointer is validated here, once,
 * for every backend; then supports() is asked; then the backend runs the op. */
#include "backend/ctx_internal.h"
#include <limits.h>
#include <math.h>
#include <string.h>

#define EBMC_MAX_KERNEL 8   /* kernel sizes 1..8 (1, 3, 4, 5 are what the recipes use) */
#define EBMC_MAX_STRIDE 4
#define EBMC_MAX_ELEMS ((size_t)INT_MAX) /* per tensor: kernels index with 32-bit ints */

/* nn.c computes EBMC_OP_CONV2D_FWD + k (+ 3 for the transposed ones), test_ops_cuda.c takes the
 * ops up to LINEAR_BWD_FILTER as the matrix products: the first entries of EBMC_OPS stay so. */
_Static_assert(EBMC_OP_CONV2D_FWD == 0 && EBMC_OP_CONV2D_BWD_DATA == 1 &&
                   EBMC_OP_CONV2D_BWD_FILTER == 2 && EBMC_OP_CONVT2D_FWD == 3 &&
                   EBMC_OP_CONVT2D_BWD_DATA == 4 && EBMC_OP_CONVT2D_BWD_FILTER == 5 &&
                   EBMC_OP_LINEAR_FWD == 6 && EBMC_OP_LINEAR_BWD_DATA == 7 &&
                   EBMC_OP_LINEAR_BWD_FILTER == 8,
               "the convolution and linear ops open EBMC_OPS, in this order");

#define OP_NAME_(OP, id, ...) [EBMC_OP_##OP] = #id,
static const char *const op_names[EBMC_OP_COUNT] = {EBMC_OPS(OP_NAME_)};
#undef OP_NAME_

const char *ebmc_op_name(ebmc_op op) {
    return (op >= 0 && op < EBMC_OP_COUNT && op_names[op]) ? op_names[op] : "unknown_op";
}

/* ---- descriptor helpers ---- */

ebmc_conv_desc ebmc_conv_desc_make(int n, int c_in, int h, int w, int c_out, int k, int s, int p) {
    ebmc_conv_desc d = {.n = n, .c_in = c_in, .h = h, .w = w, .c_out = c_out, .kh = k, .kw = k,
                        .stride_h = s, .stride_w = s, .pad_t = p, .pad_b = p, .pad_l = p,
                        .pad_r = p};
    return d;
}

ebmc_conv_desc ebmc_convt_desc_make(int n, int c_in, int h, int w, int c_out, int k, int s, int p,
                                    int op) {
    ebmc_conv_desc d = ebmc_conv_desc_make(n, c_in, h, w, c_out, k, s, p);
    d.out_pad_h = d.out_pad_w = op;
    d.transposed = 1;
    return d;
}

/* TF: conv out = ceil(in/s), total pad = max((out-1)*s + k - in, 0); the transposed conv is the
 * adjoint of the 'SAME' conv from its output (in*s) back to its input, so the same formula runs
 * with in and out swapped; extra pixel at the end. */
static void tf_same_pad(int in, int k, int s, int transposed, int *lo, int *hi) {
    int big = transposed ? in * s : in;
    int small = transposed ? in : (in + s - 1) / s;
    int total = (small - 1) * s + k - big;
    if (total < 0) total = 0;
    *lo = total / 2;
    *hi = total - total / 2;
}

ebmc_conv_desc ebmc_conv_desc_same_tf(int n, int c_in, int h, int w, int c_out, int k, int s,
                                      int transposed) {
    ebmc_conv_desc d = ebmc_conv_desc_make(n, c_in, h, w, c_out, k, s, 0);
    tf_same_pad(h, k, s, transposed, &d.pad_t, &d.pad_b);
    tf_same_pad(w, k, s, transposed, &d.pad_l, &d.pad_r);
    d.transposed = transposed ? 1 : 0;
    if (transposed) {
        /* Ho = (H-1)s - pt - pb + k + op must equal H*s */
        d.out_pad_h = h * s - ((h - 1) * s - d.pad_t - d.pad_b + k);
        d.out_pad_w = w * s - ((w - 1) * s - d.pad_l - d.pad_r + k);
    }
    return d;
}

int ebmc_conv_out_hw(const ebmc_conv_desc *d, int *ho, int *wo) {
    long h, w;
    if (d->transposed) {
        h = (long)(d->h - 1) * d->stride_h - d->pad_t - d->pad_b + d->kh + d->out_pad_h;
        w = (long)(d->w - 1) * d->stride_w - d->pad_l - d->pad_r + d->kw + d->out_pad_w;
    } else {
        long ph = (long)d->h + d->pad_t + d->pad_b - d->kh, pw = (long)d->w + d->pad_l + d->pad_r - d->kw;
        if (ph < 0 || pw < 0 || d->stride_h < 1 || d->stride_w < 1) return -1;
        h = ph / d->stride_h + 1;
        w = pw / d->stride_w + 1;
    }
    if (h < 1 || w < 1 || h > INT_MAX || w > INT_MAX) return -1;
    *ho = (int)h;
    *wo = (int)w;
    return 0;
}

size_t ebmc_conv_x_count(const ebmc_conv_desc *d) {
    return (size_t)d->n * d->c_in * d->h * d->w;
}
size_t ebmc_conv_w_count(const ebmc_conv_desc *d) {
    return (size_t)d->c_out * d->c_in * d->kh * d->kw;
}
size_t ebmc_conv_y_count(const ebmc_conv_desc *d) {
    int ho = 0, wo = 0;
    if (ebmc_conv_out_hw(d, &ho, &wo)) return 0;
    return (size_t)d->n * d->c_out * ho * wo;
}

/* ---- validation ---- */

#define BAD(...) ebmc_ctx_seterr(ctx, EBMC_E_INVALID, __VA_ARGS__)

static bool elems_ok(long a, long b, long c, long d) {
    if (a < 1 || b < 1 || c < 1 || d < 1) return false;
    double n = (double)a * b * c * d;
    return n <= (double)EBMC_MAX_ELEMS;
}

static ebmc_status check_t4(ebmc_ctx_t *ctx, const char *op, int n, int c, int h, int w) {
    if (!elems_ok(n, c, h, w))
        return BAD("%s: bad shape (N,C,H,W)=(%d,%d,%d,%d): each must be >= 1 and the tensor "
                   "at most 2^31-1 elements", op, n, c, h, w);
    return EBMC_OK;
}

static ebmc_status check_ebmc_conv_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                        const ebmc_conv_desc *d) {
    bool want_t = op == EBMC_OP_CONVT2D_FWD || op == EBMC_OP_CONVT2D_BWD_DATA ||
                  op == EBMC_OP_CONVT2D_BWD_FILTER;
    if ((d->transposed != 0) != want_t)
        return BAD("%s: descriptor is for a %s convolution", nm,
                   d->transposed ? "transposed" : "regular");
    ebmc_status s = check_t4(ctx, nm, d->n, d->c_in, d->h, d->w);
    if (s) return s;
    if (d->c_out < 1) return BAD("%s: c_out=%d must be >= 1", nm, d->c_out);
    if (d->kh < 1 || d->kw < 1) return BAD("%s: kernel %dx%d must be >= 1", nm, d->kh, d->kw);
    if (d->kh > EBMC_MAX_KERNEL || d->kw > EBMC_MAX_KERNEL)
        return ebmc_ctx_seterr(ctx, EBMC_E_UNSUPPORTED,
                               "%s: kernel %dx%d is not supported (sizes 1..%d)", nm, d->kh,
                               d->kw, EBMC_MAX_KERNEL);
    if (d->stride_h < 1 || d->stride_w < 1) return BAD("%s: stride %dx%d must be >= 1", nm, d->stride_h, d->stride_w);
    if (d->stride_h > EBMC_MAX_STRIDE || d->stride_w > EBMC_MAX_STRIDE)
        return ebmc_ctx_seterr(ctx, EBMC_E_UNSUPPORTED,
                               "%s: stride %dx%d is not supported (1..%d)", nm, d->stride_h,
                               d->stride_w, EBMC_MAX_STRIDE);
    if (d->pad_t < 0 || d->pad_b < 0 || d->pad_l < 0 || d->pad_r < 0)
        return BAD("%s: negative padding (t,b,l,r)=(%d,%d,%d,%d)", nm, d->pad_t, d->pad_b, d->pad_l, d->pad_r);
    if (d->pad_t >= d->kh || d->pad_b >= d->kh || d->pad_l >= d->kw || d->pad_r >= d->kw)
        return BAD("%s: padding (t,b,l,r)=(%d,%d,%d,%d) must be smaller than the kernel %dx%d",
                   nm, d->pad_t, d->pad_b, d->pad_l, d->pad_r, d->kh, d->kw);
    if (!want_t && (d->out_pad_h || d->out_pad_w))
        return BAD("%s: output padding is only for transposed convolutions", nm);
    if (d->out_pad_h < 0 || d->out_pad_w < 0 || (want_t && (d->out_pad_h >= d->stride_h || d->out_pad_w >= d->stride_w)))
        return BAD("%s: output padding %dx%d must be >= 0 and smaller than the stride %dx%d", nm,
                   d->out_pad_h, d->out_pad_w, d->stride_h, d->stride_w);
    int ho, wo;
    if (ebmc_conv_out_hw(d, &ho, &wo))
        return BAD("%s: kernel %dx%d (stride %d, pads t%d b%d l%d r%d) does not fit the %dx%d "
                   "input: no output pixel", nm, d->kh, d->kw, d->stride_h, d->pad_t, d->pad_b,
                   d->pad_l, d->pad_r, d->h, d->w);
    if (!elems_ok(d->n, d->c_out, ho, wo) || !elems_ok(d->c_out, d->c_in, d->kh, d->kw))
        return BAD("%s: output or weight larger than 2^31-1 elements", nm);
    return EBMC_OK;
}

static ebmc_status check_ebmc_linear_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                          const ebmc_linear_desc *d) {
    if (!elems_ok(d->n, d->in, 1, 1) || !elems_ok(d->n, d->out, 1, 1) || !elems_ok(d->in, d->out, 1, 1))
        return BAD("%s: bad shape n=%d in=%d out=%d", nm, d->n, d->in, d->out);
    return EBMC_OK;
}

static ebmc_status check_ebmc_t4_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                      const ebmc_t4_desc *d) {
    ebmc_status s = check_t4(ctx, nm, d->n, d->c, d->h, d->w);
    if (s) return s;
    if ((op == EBMC_OP_AVGPOOL2_FWD || op == EBMC_OP_AVGPOOL2_BWD) && (d->h < 2 || d->w < 2))
        return BAD("%s: a 2x2 pool needs H,W >= 2, got %dx%d", nm, d->h, d->w);
    return EBMC_OK;
}

static ebmc_status check_ebmc_act_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                       const ebmc_act_desc *d) {
    if (d->kind < EBMC_ACT_IDENTITY || d->kind > EBMC_ACT_SILU)
        return BAD("%s: unknown activation %d", nm, (int)d->kind);
    if (!isfinite(d->slope)) return BAD("%s: slope is not finite", nm);
    return EBMC_OK;
}

static ebmc_status check_ebmc_bn_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                      const ebmc_bn_desc *d) {
    ebmc_status s = check_t4(ctx, nm, d->n, d->c, d->h, d->w);
    if (s) return s;
    if ((long)d->n * d->h * d->w < 2)
        return BAD("%s: batch statistics need more than one value per channel (N*H*W=%ld)",
                   nm, (long)d->n * d->h * d->w);
    if (!(d->eps > 0) || !(d->momentum >= 0 && d->momentum <= 1))
        return BAD("%s: eps=%g must be > 0 and momentum=%g in [0,1]", nm, d->eps, d->momentum);
    return EBMC_OK;
}

static ebmc_status check_ebmc_sn_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                      const ebmc_sn_desc *d) {
    if (!elems_ok(d->rows, d->cols, 1, 1)) return BAD("%s: bad matrix %dx%d", nm, d->rows, d->cols);
    if (d->n_power_iter < 0 || !(d->eps > 0))
        return BAD("%s: n_power_iter=%d must be >= 0 and eps=%g > 0", nm, d->n_power_iter, d->eps);
    return EBMC_OK;
}

static ebmc_status check_ebmc_upsample_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                            const ebmc_upsample_desc *d) {
    ebmc_status s = check_t4(ctx, nm, d->n, d->c, 2 * d->h, 2 * d->w);
    if (s) return s;
    if (d->mode != EBMC_UPSAMPLE_BILINEAR_AC && d->mode != EBMC_UPSAMPLE_NEAREST)
        return BAD("%s: unknown mode %d", nm, (int)d->mode);
    return EBMC_OK;
}

static ebmc_status check_ebmc_gpool_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                         const ebmc_gpool_desc *d) {
    ebmc_status s = check_t4(ctx, nm, d->n, d->c, d->h, d->w);
    if (s) return s;
    if (d->mode != EBMC_GPOOL_AVG && d->mode != EBMC_GPOOL_SUM)
        return BAD("%s: unknown mode %d", nm, (int)d->mode);
    return EBMC_OK;
}

static ebmc_status check_ebmc_axpby_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                         const ebmc_axpby_desc *d) {
    if (!isfinite(d->a) || !isfinite(d->b)) return BAD("%s: a, b must be finite", nm);
    return EBMC_OK;
}

static ebmc_status check_ebmc_fill_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                        const ebmc_fill_desc *d) {
    return EBMC_OK;
}

static ebmc_status check_ebmc_reduce_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                          const ebmc_reduce_desc *d) {
    if (d->rows < 1 || d->cols < 1 || (double)d->rows * d->cols > (double)EBMC_MAX_ELEMS * 4)
        return BAD("%s: bad shape rows=%d cols=%zu", nm, d->rows, d->cols);
    if (d->mode != EBMC_REDUCE_SUM && d->mode != EBMC_REDUCE_SUMSQ)
        return BAD("%s: unknown mode %d", nm, (int)d->mode);
    return EBMC_OK;
}

static ebmc_status check_ebmc_adam_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                        const ebmc_adam_desc *d) {
    if (d->step < 1) return BAD("%s: step=%ld must be >= 1", nm, d->step);
    if (!(d->lr >= 0) || !(d->beta1 >= 0 && d->beta1 < 1) || !(d->beta2 >= 0 && d->beta2 < 1) ||
        !(d->eps > 0) || !(d->weight_decay >= 0) || !(d->clip_std >= 0 && d->clip_std < 1e30) ||
        !(d->clip_floor >= 0 && d->clip_floor < 1e30))
        return BAD("%s: need lr >= 0, 0 <= beta1, beta2 < 1, eps > 0, weight_decay >= 0, finite clip_std, "
                   "clip_floor >= 0 (got lr=%g betas=(%g,%g) eps=%g wd=%g clip %g, %g)", nm, d->lr, d->beta1,
                   d->beta2, d->eps, d->weight_decay, d->clip_std, d->clip_floor);
    return EBMC_OK;
}

/* n_chains x chain_elems samples, at most 2^31-1 of them */
static ebmc_status check_chains(ebmc_ctx_t *ctx, const char *nm, int n_chains, size_t chain_elems) {
    if (n_chains < 1 || chain_elems < 1 || (double)n_chains * chain_elems > (double)EBMC_MAX_ELEMS)
        return BAD("%s: bad shape n_chains=%d chain_elems=%zu", nm, n_chains, chain_elems);
    return EBMC_OK;
}

static ebmc_status check_ebmc_langevin_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                            const ebmc_langevin_desc *d) {
    ebmc_status s = check_chains(ctx, nm, d->n_chains, d->chain_elems);
    if (s) return s;
    if (!isfinite(d->a) || !isfinite(d->b) || !isfinite(d->c) || !(d->clip >= 0) || !isfinite(d->clip))
        return BAD("%s: a=%g b=%g c=%g must be finite and clip=%g >= 0", nm, d->a, d->b, d->c, d->clip);
    if (d->clamp && !(d->lo < d->hi)) return BAD("%s: clamp range [%g, %g] is empty", nm, d->lo, d->hi);
    if (d->noise < EBMC_NOISE_OFF || d->noise > EBMC_NOISE_NEXT) return BAD("%s: unknown noise mode %d", nm, (int)d->noise);
    return EBMC_OK;
}

static ebmc_status check_ebmc_rng_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                       const ebmc_rng_desc *d) {
    ebmc_status s = check_chains(ctx, nm, d->n_chains, d->chain_elems);
    if (s) return s;
    if (d->dist != EBMC_RNG_NORMAL && d->dist != EBMC_RNG_UNIFORM) return BAD("%s: unknown distribution %d", nm, (int)d->dist);
    if (!isfinite(d->p0) || !isfinite(d->p1) || (d->dist == EBMC_RNG_UNIFORM && !(d->p0 < d->p1)) ||
        (d->dist == EBMC_RNG_NORMAL && d->p1 < 0))
        return BAD("%s: bad parameters (%g, %g)", nm, d->p0, d->p1);
    return EBMC_OK;
}

static ebmc_status check_ebmc_reparam_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                           const ebmc_reparam_desc *d) {
    ebmc_status s = check_chains(ctx, nm, d->n_chains, d->chain_elems);
    if (s) return s;
    if (!isfinite(d->k)) return BAD("%s: k must be finite", nm);
    return EBMC_OK;
}

static ebmc_status check_ebmc_scaled_diff_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                               const ebmc_scaled_diff_desc *d) {
    if (!isfinite(d->alpha) || !isfinite(d->beta)) return BAD("%s: alpha, beta must be finite", nm);
    return EBMC_OK;
}

static ebmc_status check_ebmc_counter_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                           const ebmc_counter_desc *d) {
    return EBMC_OK;
}

static ebmc_status check_ebmc_replay_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                          const ebmc_replay_desc *d) {
    if (d->n_chains < 1 || d->chain_elems < 1 || d->capacity < 1 ||
        (double)d->capacity * d->chain_elems > 1e12 || (double)d->n_chains * d->chain_elems > (double)EBMC_MAX_ELEMS)
        return BAD("%s: bad shape n_chains=%d chain_elems=%zu capacity=%d", nm, d->n_chains, d->chain_elems, d->capacity);
    if (d->count < 0 || d->count > d->capacity || d->head < 0 || d->head >= d->capacity)
        return BAD("%s: count=%d and head=%d must lie in the capacity %d", nm, d->count, d->head, d->capacity);
    if (op == EBMC_OP_REPLAY_PUSH && d->n_chains > d->capacity)
        return BAD("%s: pushing %d entries into a buffer of %d", nm, d->n_chains, d->capacity);
    if (!(d->lo < d->hi) || !(d->p_reuse >= 0 && d->p_reuse <= 1))
        return BAD("%s: need lo < hi and 0 <= p_reuse <= 1 (got [%g, %g], %g)", nm, d->lo, d->hi, d->p_reuse);
    return EBMC_OK;
}

static ebmc_status check_ebmc_gauss_nll_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                             const ebmc_gauss_nll_desc *d) {
    if (d->rows < 1 || d->cols < 1 || (double)d->rows * d->cols > (double)EBMC_MAX_ELEMS)
        return BAD("%s: bad shape rows=%d cols=%zu", nm, d->rows, d->cols);
    if (!(d->eps >= 0) || !isfinite(d->scale) || !isfinite(d->beta))
        return BAD("%s: eps=%g must be >= 0, scale and beta finite", nm, d->eps);
    return EBMC_OK;
}

static ebmc_status check_ebmc_gauss_kl_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                            const ebmc_gauss_kl_desc *d) {
    if (d->rows < 1 || d->cols < 1 || (double)d->rows * d->cols > (double)EBMC_MAX_ELEMS)
        return BAD("%s: bad shape rows=%d cols=%zu", nm, d->rows, d->cols);
    if (!(d->k > 0) || !isfinite(d->k) || !isfinite(d->weight) || !isfinite(d->scale) || !isfinite(d->beta))
        return BAD("%s: k=%g must be > 0, weight, scale and beta finite", nm, d->k);
    return EBMC_OK;
}

static ebmc_status check_ebmc_jz_logw_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                           const ebmc_jz_logw_desc *d) {
    if (d->mode != EBMC_JZ_ULA && d->mode != EBMC_JZ_EDIFF) return BAD("%s: unknown mode %d", nm, (int)d->mode);
    if (d->mode == EBMC_JZ_EDIFF) return d->n >= 1 ? EBMC_OK : BAD("%s: n=%d walkers must be >= 1", nm, d->n);
    ebmc_status s = check_chains(ctx, nm, d->n, d->elems);
    if (s) return s;
    if (!(d->h > 0) || !isfinite(d->h) || !(d->sigma > 0) || !isfinite(d->sigma))
        return BAD("%s: step h=%g and noise sigma=%g must be finite and > 0", nm, d->h, d->sigma);
    return EBMC_OK;
}

static ebmc_status check_ebmc_jz_stats_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                            const ebmc_jz_stats_desc *d) {
    if (d->n < 1) return BAD("%s: n=%d walkers must be >= 1", nm, d->n);
    if (!isfinite(d->w_scale)) return BAD("%s: w_scale must be finite", nm);
    return EBMC_OK;
}

static ebmc_status check_ebmc_jz_resample_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                               const ebmc_jz_resample_desc *d) {
    if (d->n < 1) return BAD("%s: n=%d walkers must be >= 1", nm, d->n);
    if (d->scheme != EBMC_RESAMPLE_SYSTEMATIC && d->scheme != EBMC_RESAMPLE_MULTINOMIAL)
        return BAD("%s: unknown scheme %d", nm, (int)d->scheme);
    if (!(d->threshold >= 0)) return BAD("%s: threshold %g must be >= 0", nm, d->threshold);
    return EBMC_OK;
}

static ebmc_status check_ebmc_gmm_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm, const ebmc_gmm_desc *d) {
    if (d->n < 1 || d->dim < 1 || d->k < 1 || (double)d->n * d->dim > (double)EBMC_MAX_ELEMS ||
        (double)d->n * d->k > (double)EBMC_MAX_ELEMS || d->k > 64 || (double)d->k * d->dim > EBMC_GMM_MAX_KD)
        return BAD("%s: bad shape n=%d dim=%d k=%d (k <= 64, k*dim <= %d)", nm, d->n, d->dim, d->k,
                   (int)EBMC_GMM_MAX_KD);
    if (!isfinite(d->scale) || !isfinite(d->beta)) return BAD("%s: scale and beta must be finite", nm);
    return EBMC_OK;
}

static ebmc_status check_ebmc_pswish_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                          const ebmc_pswish_desc *d) {
    if (d->n < 1 || d->c < 1 || d->hw < 1 || (double)d->n * d->c * d->hw > (double)EBMC_MAX_ELEMS)
        return BAD("%s: bad shape n=%d c=%d hw=%zu", nm, d->n, d->c, d->hw);
    return EBMC_OK;
}

static ebmc_status check_ebmc_gbase_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                         const ebmc_gbase_desc *d) {
    if (d->rows < 1 || d->cols < 1 || (double)d->rows * d->cols > (double)EBMC_MAX_ELEMS)
        return BAD("%s: bad shape rows=%d cols=%d", nm, d->rows, d->cols);
    return EBMC_OK;
}

static ebmc_status check_ebmc_rows_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                        const ebmc_rows_desc *d) {
    if (d->n < 0 || d->row_elems < 1 || d->x_rows < 1 || d->y_rows < 1 ||
        (double)d->x_rows * d->row_elems > (double)EBMC_MAX_ELEMS ||
        (double)d->y_rows * d->row_elems > (double)EBMC_MAX_ELEMS)
        return BAD("%s: bad shape n=%d row_elems=%zu x_rows=%d y_rows=%d", nm, d->n, d->row_elems,
                   d->x_rows, d->y_rows);
    return EBMC_OK;
}

static ebmc_status check_ebmc_pool_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                        const ebmc_pool_desc *d) {
    ebmc_status s = check_t4(ctx, nm, d->n, d->c, d->h, d->w);
    if (s) return s;
    if (d->mode != EBMC_POOL_MAX && d->mode != EBMC_POOL_AVG) return BAD("%s: unknown mode %d", nm, (int)d->mode);
    if (d->k < 1 || d->stride < 1 || d->pad < 0 || d->pad > d->k / 2)
        return BAD("%s: kernel %d, stride %d, pad %d: need k, stride >= 1 and 0 <= pad <= k/2", nm, d->k,
                   d->stride, d->pad);
    if (d->h + 2 * d->pad < d->k || d->w + 2 * d->pad < d->k)
        return BAD("%s: a %dx%d window does not fit the %dx%d input (pad %d)", nm, d->k, d->k, d->h, d->w, d->pad);
    return EBMC_OK;
}

static ebmc_status check_ebmc_resize_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                          const ebmc_resize_desc *d) {
    ebmc_status s = check_t4(ctx, nm, d->n, d->c, d->h, d->w);
    return s ? s : check_t4(ctx, nm, d->n, d->c, d->ho, d->wo);
}

static ebmc_status check_ebmc_dropout_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                           const ebmc_dropout_desc *d) {
    ebmc_status s = check_chains(ctx, nm, d->rows, d->row_elems);
    if (s) return s;
    if (!(d->p >= 0.0f && d->p < 1.0f) || !isfinite(d->beta))
        return BAD("%s: need 0 <= p < 1 and a finite beta (got p=%g beta=%g)", nm, d->p, d->beta);
    if ((uint64_t)d->group_off + (d->row_elems + 3) / 4 > UINT32_MAX)
        return BAD("%s: groups %u + %zu overflow the Philox counter", nm, d->group_off, (d->row_elems + 3) / 4);
    return EBMC_OK;
}

static ebmc_status check_ebmc_chan_copy_desc(ebmc_ctx_t *ctx, ebmc_op op, const char *nm,
                                             const ebmc_chan_copy_desc *d) {
    ebmc_status s = check_t4(ctx, nm, d->n, d->c_total, d->hw, 1);
    if (s) return s;
    if (d->c < 1 || d->c_off < 0 || d->c_off + d->c > d->c_total)
        return BAD("%s: channels [%d, %d) do not lie in 0..%d", nm, d->c_off, d->c_off + d->c, d->c_total);
    return EBMC_OK;
}

/* Every op is validated by the check of its descriptor type (the desc column of EBMC_OPS). */
static ebmc_status check_desc(ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    if (!ctx) return EBMC_E_INVALID;
    if (op < 0 || op >= EBMC_OP_COUNT) return BAD("unknown op %d", (int)op);
    const char *nm = ebmc_op_name(op);
    if (!desc) return BAD("%s: NULL descriptor", nm);
    switch (op) {
#define CHECK_OP_(OP, id, wrapper, desc_t, ...)                                                  \
    case EBMC_OP_##OP: return check_##desc_t(ctx, op, nm, desc);
        EBMC_OPS(CHECK_OP_)
#undef CHECK_OP_
    case EBMC_OP_COUNT: break;
    }
    return BAD("unknown op %d", (int)op);
}

bool ebmc_supports(const ebmc_ctx_t *cctx, ebmc_op op, const void *desc) {
    ebmc_ctx_t *ctx = (ebmc_ctx_t *)cctx; /* only the error buffer is written */
    if (check_desc(ctx, op, desc) != EBMC_OK) return false;
    return ctx->ops->supports && ctx->ops->supports(ctx, op, desc);
}

size_t ebmc_workspace_size(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    if (!ebmc_supports(ctx, op, desc) || !ctx->ops->workspace_size) return 0;
    return ctx->ops->workspace_size(ctx, op, desc);
}

static ebmc_status op_check(ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    ebmc_status s = check_desc(ctx, op, desc);
    if (s) return s;
    if (!ctx->ops->supports || !ctx->ops->supports(ctx, op, desc))
        return ebmc_ctx_seterr(ctx, EBMC_E_UNSUPPORTED, "%s: not supported by the %s backend",
                               ebmc_op_name(op), ctx->ops->name);
    return EBMC_OK;
}

ebmc_status ebmc_alloc(ebmc_ctx_t *ctx, void **ptr, size_t bytes) {
    if (!ctx || !ptr) return EBMC_E_INVALID;
    *ptr = NULL;
    return ctx->ops->alloc(ctx, ptr, bytes ? bytes : 1);
}

void ebmc_free(ebmc_ctx_t *ctx, void *ptr) {
    if (ctx && ptr) ctx->ops->free(ctx, ptr);
}

ebmc_status ebmc_copy(ebmc_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                      ebmc_copy_kind kind) {
    if (!ctx) return EBMC_E_INVALID;
    if (bytes == 0) return EBMC_OK;
    if (!dst || !src) return BAD("copy: NULL pointer");
    if (kind != EBMC_COPY_H2D && kind != EBMC_COPY_D2H && kind != EBMC_COPY_D2D)
        return BAD("copy: unknown kind %d", (int)kind);
    return ctx->ops->copy(ctx, dst, src, bytes, kind);
}

ebmc_status ebmc_sync(ebmc_ctx_t *ctx) {
    if (!ctx) return EBMC_E_INVALID;
    return ctx->ops->sync(ctx);
}

/* The checked wrappers, one per op of EBMC_OPS: an empty call (noop_if) returns at once; else
 * validate the descriptor, ask supports(), check the required pointers, then dispatch. */
#define WRAPPER_(OP, id, wrapper, desc_t, params, args, required, noop_if)                         \
    ebmc_status wrapper(ebmc_ctx_t *ctx, const desc_t *d, EBMC_UNPAREN params) {                \
        if (d && (noop_if)) return EBMC_OK;                                                    \
        if (!ctx) return EBMC_E_INVALID;                                                       \
        ebmc_status s_ = op_check(ctx, EBMC_OP_##OP, d);                                       \
        if (s_) return s_;                                                                     \
        if (!(required))                                                                       \
            return BAD("%s: NULL tensor pointer (required: %s)", ebmc_op_name(EBMC_OP_##OP),   \
                       #required);                                                             \
        if (!ctx->ops->id)                                                                     \
            return ebmc_ctx_seterr(ctx, EBMC_E_UNSUPPORTED, "%s: not implemented by the %s "   \
                                   "backend", ebmc_op_name(EBMC_OP_##OP), ctx->ops->name);     \
        ctx->err[0] = 0;                                                                       \
        return ctx->ops->id(ctx, d, EBMC_UNPAREN args);                                        \
    }
EBMC_OPS(WRAPPER_)
#undef WRAPPER_

bool ebmc_op_in_table(const ebmc_backend_ops *ops, ebmc_op op) {
    switch (op) {
#define IN_TABLE_(OP, id, ...)                                                                     \
    case EBMC_OP_##OP: return ops->id != NULL;
        EBMC_OPS(IN_TABLE_)
#undef IN_TABLE_
    case EBMC_OP_COUNT: break;
    }
    return false;
}

bool ebmc_graph_supported(const ebmc_ctx_t *ctx) {
    return ctx && ctx->ops->graph_begin && ctx->ops->graph_end && ctx->ops->graph_launch;
}
ebmc_status ebmc_graph_begin(ebmc_ctx_t *ctx) {
    if (!ebmc_graph_supported(ctx))
        return ebmc_ctx_seterr(ctx, EBMC_E_UNSUPPORTED, "graphs are not supported by the %s backend",
                               ctx->ops->name);
    return ctx->ops->graph_begin(ctx);
}
ebmc_status ebmc_graph_end(ebmc_ctx_t *ctx, void **graph) {
    if (!ebmc_graph_supported(ctx) || !graph) return EBMC_E_UNSUPPORTED;
    return ctx->ops->graph_end(ctx, graph);
}
ebmc_status ebmc_graph_launch(ebmc_ctx_t *ctx, void *graph) {
    if (!ebmc_graph_supported(ctx) || !graph) return EBMC_E_UNSUPPORTED;
    return ctx->ops->graph_launch(ctx, graph);
}
void ebmc_graph_free(ebmc_ctx_t *ctx, void *graph) {
    if (ctx && graph && ctx->ops->graph_free) ctx->ops->graph_free(ctx, graph);
}

bool ebmc_profiler_supported(const ebmc_ctx_t *ctx) {
    return ctx && ctx->ops->profiler_start && ctx->ops->profiler_stop;
}

static ebmc_status profiler_call(ebmc_ctx_t *ctx, bool start) {
    if (!ctx) return EBMC_E_INVALID;
    if (!ebmc_profiler_supported(ctx))
        return ebmc_ctx_seterr(ctx, EBMC_E_UNSUPPORTED,
                               "the %s backend has no profiler capture window (cudaProfilerStart/"
                               "Stop); a profiler attached now records the whole run",
                               ctx->ops->name);
    ebmc_status s = ebmc_sync(ctx);
    if (s != EBMC_OK) return s;
    return start ? ctx->ops->profiler_start(ctx) : ctx->ops->profiler_stop(ctx);
}

ebmc_status ebmc_profiler_start(ebmc_ctx_t *ctx) { return profiler_call(ctx, true); }
ebmc_status ebmc_profiler_stop(ebmc_ctx_t *ctx) { return profiler_call(ctx, false); }
