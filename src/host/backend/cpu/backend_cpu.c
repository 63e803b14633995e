/* The CPU backend: C, float32 tensors; convolutions and linear layers on OpenBLAS's SGEMM
 * (gemm.c), everything else clear loops, OpenMP across images, channels or elements (never a
 * reduction split between threads, so results do not depend on OMP_NUM_THREADS for the same
 * GEMM partition). The GEMM-backed ops (convolutions, linear layers) are in conv_gemm.c. The reference every CUDA op is checked against, and itself checked against
 * finite differences and PyTorch (tests/). Statistics (BatchNorm moments, pools, reductions,
 * spectral-norm products) accumulate in double. */
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/gemm.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ebmc/philox.h"
#include "ebmc/comm.h"


/* ---- memory ---- */

static ebmc_status cpu_init(ebmc_ctx_t *ctx) {
    cpu_blas_init();
    return EBMC_OK;
}
static void cpu_fini(ebmc_ctx_t *ctx) { cpu_dnnl_fini(ctx); }

static ebmc_status cpu_alloc(ebmc_ctx_t *ctx, void **ptr, size_t bytes) {
    size_t rounded = (bytes + 63) & ~(size_t)63;
    *ptr = aligned_alloc(64, rounded ? rounded : 64);
    if (!*ptr)
        return ebmc_ctx_seterr(ctx, EBMC_E_NOMEM, "cpu: out of host memory allocating %zu bytes",
                               bytes);
    return EBMC_OK;
}

static void cpu_free(ebmc_ctx_t *ctx, void *ptr) { free(ptr); }

static ebmc_status cpu_copy(ebmc_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                            ebmc_copy_kind kind) {
    memmove(dst, src, bytes);
    return EBMC_OK;
}

static ebmc_status cpu_sync(ebmc_ctx_t *ctx) { return EBMC_OK; }


/* ---- bias ---- */

static ebmc_status cpu_bias_fwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *b, float *y) {
    size_t hw = (size_t)d->h * d->w;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)d->n * d->c * hw > PAR_ELEMS)
    for (int n = 0; n < d->n; n++)
        for (int c = 0; c < d->c; c++) {
            float *p = y + ((size_t)n * d->c + c) * hw;
            for (size_t i = 0; i < hw; i++) p[i] += b[c];
        }
    return EBMC_OK;
}

static ebmc_status cpu_bias_bwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *dy,
                                float *db, float beta) {
    size_t hw = (size_t)d->h * d->w;
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * hw > PAR_ELEMS)
    for (int c = 0; c < d->c; c++) { /* one thread sums one channel, in order */
        double s = 0;
        for (int n = 0; n < d->n; n++) {
            const float *p = dy + ((size_t)n * d->c + c) * hw;
            for (size_t i = 0; i < hw; i++) s += p[i];
        }
        db[c] = blend((float)s, beta, db[c]);
    }
    return EBMC_OK;
}

/* ---- activations ----
 * act_fwd_range/act_bwd_range are CPU_CLONES (selects and products only: the same bits on every
 * version). The elements are split between the threads in contiguous, 16-aligned ranges. */
/* one loop per kind (the switch outside: each loop vectorises); both sides of a select are
 * computed first: gcc does not speculate a product that may trap */
CPU_CLONES static void act_fwd_range(ebmc_act_kind kind, float a, const float * x,
                                     float * y, size_t lo, size_t hi) {
    switch (kind) {
    case EBMC_ACT_IDENTITY: if (y != x) memmove(y + lo, x + lo, (hi - lo) * sizeof(float)); break;
    case EBMC_ACT_RELU: for (size_t i = lo; i < hi; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f; break;
    case EBMC_ACT_LRELU:
        for (size_t i = lo; i < hi; i++) { const float v = x[i]; const float s = a * v; y[i] = v > 0.0f ? v : s; }
        break;
    case EBMC_ACT_TANH: for (size_t i = lo; i < hi; i++) y[i] = tanhf(x[i]); break;
    case EBMC_ACT_SILU: for (size_t i = lo; i < hi; i++) y[i] = x[i] / (1.0f + expf(-x[i])); break;
    }
}

/* dx = g + beta*dx (dx not read when beta == 0) */
#define ACT_BWD(expr)                                                                              \
    if (beta == 0.0f) { for (size_t i = lo; i < hi; i++) dx[i] = (expr); }                         \
    else { for (size_t i = lo; i < hi; i++) dx[i] = (expr) + beta * dx[i]; }
CPU_CLONES static void act_bwd_range(ebmc_act_kind kind, float a, const float * x,
                                     const float * y, const float * dy,
                                     float * dx, float beta, size_t lo, size_t hi) {
    switch (kind) {
    case EBMC_ACT_IDENTITY: ACT_BWD(dy[i]) break;
    case EBMC_ACT_RELU: ACT_BWD(x[i] > 0.0f ? dy[i] : 0.0f) break;
    case EBMC_ACT_LRELU:
        if (beta == 0.0f) {
            for (size_t i = lo; i < hi; i++) { const float g = dy[i]; const float s = a * g; dx[i] = x[i] > 0.0f ? g : s; }
        } else {
            for (size_t i = lo; i < hi; i++) {
                const float g = dy[i]; const float s = a * g; const float o = beta * dx[i];
                dx[i] = (x[i] > 0.0f ? g : s) + o;
            }
        }
        break;
    case EBMC_ACT_TANH: ACT_BWD(dy[i] * (1.0f - y[i] * y[i])) break;
    case EBMC_ACT_SILU:
        ACT_BWD(dy[i] * (1.0f / (1.0f + expf(-x[i]))) * (1.0f + x[i] * (1.0f - 1.0f / (1.0f + expf(-x[i])))))
        break;
    }
}
#undef ACT_BWD

/* body(lo, hi) on contiguous ranges of [0, n): one per thread (16-aligned bounds) when n is large */
#define SPLIT_RANGE(n, body)                                                                       \
    do {                                                                                           \
        if ((n) > PAR_ELEMS) {                                                                     \
            _Pragma("omp parallel") {                                                              \
                size_t T_ = (size_t)cpu_team_size(), t_ = (size_t)cpu_thread_num();               \
                size_t blocks_ = ((n) + 15) / 16;                                                  \
                size_t lo = blocks_ * t_ / T_ * 16, hi = blocks_ * (t_ + 1) / T_ * 16;             \
                if (hi > (n)) hi = (n);                                                            \
                if (lo < hi) { body; }                                                             \
            }                                                                                      \
        } else {                                                                                   \
            size_t lo = 0, hi = (n);                                                               \
            body;                                                                                  \
        }                                                                                          \
    } while (0)

static ebmc_status cpu_act_fwd(ebmc_ctx_t *ctx, const ebmc_act_desc *d, const float *x, float *y) {
    if (d->kind == EBMC_ACT_IDENTITY && x == y) return EBMC_OK;
    if (d->kind == EBMC_ACT_IDENTITY) { memmove(y, x, d->count * sizeof(float)); return EBMC_OK; }
    SPLIT_RANGE(d->count, act_fwd_range(d->kind, d->slope, x, y, lo, hi));
    return EBMC_OK;
}

static ebmc_status cpu_act_bwd(ebmc_ctx_t *ctx, const ebmc_act_desc *d, const float *x,
                               const float *y, const float *dy, float *dx, float beta) {
    SPLIT_RANGE(d->count, act_bwd_range(d->kind, d->slope, x, y, dy, dx, beta, lo, hi));
    return EBMC_OK;
}

/* ---- BatchNorm, batch statistics ---- */

static ebmc_status cpu_bn_fwd(ebmc_ctx_t *ctx, const ebmc_bn_desc *d, const float *x,
                              const float *gamma, const float *beta, float *y, float *save_mean,
                              float *save_invstd, float *running_mean, float *running_var) {
    size_t hw = (size_t)d->h * d->w, m = (size_t)d->n * hw;
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * d->h * d->w > PAR_ELEMS)
    for (int c = 0; c < d->c; c++) {
        double s = 0;
        for (int n = 0; n < d->n; n++) {
            const float *p = x + ((size_t)n * d->c + c) * hw;
            for (size_t i = 0; i < hw; i++) s += p[i];
        }
        double mean = s / (double)m, ss = 0;
        for (int n = 0; n < d->n; n++) {
            const float *p = x + ((size_t)n * d->c + c) * hw;
            for (size_t i = 0; i < hw; i++) {
                double t = p[i] - mean;
                ss += t * t;
            }
        }
        double var = ss / (double)m;
        double invstd = 1.0 / sqrt(var + d->eps);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        if (running_mean) {
            running_mean[c] = (float)((1.0 - d->momentum) * running_mean[c] + d->momentum * mean);
            running_var[c] = (float)((1.0 - d->momentum) * running_var[c] +
                                     d->momentum * ss / (double)(m - 1));
        }
        float sc = (float)(gamma[c] * invstd), sh = (float)(beta[c] - mean * gamma[c] * invstd);
        for (int n = 0; n < d->n; n++) {
            const float *p = x + ((size_t)n * d->c + c) * hw;
            float *q = y + ((size_t)n * d->c + c) * hw;
            for (size_t i = 0; i < hw; i++) q[i] = p[i] * sc + sh;
        }
    }
    return EBMC_OK;
}

static ebmc_status cpu_bn_bwd(ebmc_ctx_t *ctx, const ebmc_bn_desc *d, const float *x,
                              const float *dy, const float *gamma, const float *save_mean,
                              const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                              float beta_dx, float beta_param) {
    size_t hw = (size_t)d->h * d->w, m = (size_t)d->n * hw;
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * d->h * d->w > PAR_ELEMS)
    for (int c = 0; c < d->c; c++) {
        double mean = save_mean[c], invstd = save_invstd[c], sdy = 0, sdyx = 0;
        for (int n = 0; n < d->n; n++) {
            const float *p = x + ((size_t)n * d->c + c) * hw;
            const float *g = dy + ((size_t)n * d->c + c) * hw;
            for (size_t i = 0; i < hw; i++) {
                sdy += g[i];
                sdyx += g[i] * (p[i] - mean) * invstd;
            }
        }
        double k = gamma[c] * invstd, a = sdy / (double)m, b = sdyx / (double)m;
        for (int n = 0; n < d->n; n++) {
            const float *p = x + ((size_t)n * d->c + c) * hw;
            const float *g = dy + ((size_t)n * d->c + c) * hw;
            float *q = dx + ((size_t)n * d->c + c) * hw;
            for (size_t i = 0; i < hw; i++) {
                double xhat = (p[i] - mean) * invstd;
                q[i] = blend((float)(k * (g[i] - a - xhat * b)), beta_dx, q[i]);
            }
        }
        dgamma[c] = blend((float)sdyx, beta_param, dgamma[c]);
        dbeta[c] = blend((float)sdy, beta_param, dbeta[c]);
    }
    return EBMC_OK;
}

/* ---- spectral norm ---- */

static void normalize_into(const double *a, int n, double eps, float *out) {
    double s = 0;
    for (int i = 0; i < n; i++) s += a[i] * a[i];
    double nrm = sqrt(s);
    if (nrm < eps) nrm = eps;
    for (int i = 0; i < n; i++) out[i] = (float)(a[i] / nrm);
}

static ebmc_status cpu_sn_power(ebmc_ctx_t *ctx, const ebmc_sn_desc *d, const float *w, float *u,
                                float *v, float *sigma, float *w_sn) {
    int R = d->rows, C = d->cols;
    void *ws;
    ebmc_status s = ebmc_ctx_workspace(ctx, (size_t)(R > C ? R : C) * sizeof(double), &ws);
    if (s) return s;
    double *t = ws;
    for (int it = 0; it < d->n_power_iter; it++) {
        for (int j = 0; j < C; j++) t[j] = 0;
        for (int i = 0; i < R; i++) { /* t = W^T u */
            const float *wi = w + (size_t)i * C;
            for (int j = 0; j < C; j++) t[j] += (double)wi[j] * u[i];
        }
        normalize_into(t, C, d->eps, v);
        for (int i = 0; i < R; i++) { /* t = W v */
            const float *wi = w + (size_t)i * C;
            double a = 0;
            for (int j = 0; j < C; j++) a += (double)wi[j] * v[j];
            t[i] = a;
        }
        normalize_into(t, R, d->eps, u);
    }
    double sg = 0;
    for (int i = 0; i < R; i++) {
        const float *wi = w + (size_t)i * C;
        double a = 0;
        for (int j = 0; j < C; j++) a += (double)wi[j] * v[j];
        sg += a * u[i];
    }
    if (d->lower_bound) { /* the divisor max(sigma + 1e-6, 1), as float */
        float lb = (float)sg + 1e-6f;
        sg = lb > 1.0f ? lb : 1.0f;
    }
    sigma[0] = (float)sg;
    float sgf = (float)sg;
    for (size_t i = 0; i < (size_t)R * C; i++) w_sn[i] = w[i] / sgf;
    return EBMC_OK;
}

static ebmc_status cpu_sn_bwd(ebmc_ctx_t *ctx, const ebmc_sn_desc *d, const float *w,
                              const float *u, const float *v, const float *sigma,
                              const float *dw_sn, float *dw, float beta) {
    size_t n = (size_t)d->rows * d->cols;
    double dot = 0, sg = sigma[0];
    for (size_t i = 0; i < n; i++) dot += (double)dw_sn[i] * w[i];
    double c = d->lower_bound && sigma[0] == 1.0f ? 0.0 : dot / (sg * sg); /* W_sn = W: no sigma term */
    for (int i = 0; i < d->rows; i++)
        for (int j = 0; j < d->cols; j++) {
            size_t k = (size_t)i * d->cols + j;
            dw[k] = blend((float)(dw_sn[k] / sg - c * u[i] * v[j]), beta, dw[k]);
        }
    return EBMC_OK;
}

/* ---- upsampling x2 ---- */

/* align_corners=True source coordinate of output index o (of 2n) into n inputs */
static inline void ac_src(int o, int n, int *i0, int *i1, float *l1) {
    float scale = n > 1 ? (float)(n - 1) / (float)(2 * n - 1) : 0.0f;
    float src = scale * (float)o;
    int a = (int)src;
    if (a > n - 1) a = n - 1;
    *i0 = a;
    *i1 = a + (a < n - 1 ? 1 : 0);
    *l1 = src - (float)a;
}

/* ac_src of every output row or column, computed once per call (the same values, so the same
 * bits as computing them per pixel); sizes above UP_TAB compute them per pixel */
enum { UP_TAB = 1024 };
typedef struct {
    int i0, i1;
    float l1;
} ac_entry;

static bool ac_table(ac_entry *t, int n_out, int n) {
    if (n_out > UP_TAB) return false;
    for (int o = 0; o < n_out; o++) ac_src(o, n, &t[o].i0, &t[o].i1, &t[o].l1);
    return true;
}

static inline void ac_get(const ac_entry *t, bool tab, int o, int n, int *i0, int *i1, float *l1) {
    if (tab) {
        *i0 = t[o].i0, *i1 = t[o].i1, *l1 = t[o].l1;
    } else {
        ac_src(o, n, i0, i1, l1);
    }
}

/* Bilinear x2 is separable: the horizontal pass interpolates each input row into hb (H rows of Wo,
 * gathers), the vertical pass combines two of those rows per output row (contiguous: vectorises).
 * The forward keeps the per-pixel formula's operations and their order,
 *   (1-lh) * ((1-lw) x[h0,w0] + lw x[h0,w1]) + lh * ((1-lw) x[h1,w0] + lw x[h1,w1]),
 * so the same bits; the backward is its adjoint in the same two passes (vertical, then horizontal),
 * a different summation order from the per-pixel scatter. Planes larger than UP_SEP floats of hb
 * take the per-pixel loops. */
enum { UP_SEP = 8192 };

static void up_fwd_plane_sep(const float *xp, float *yp, int H, int W, const ac_entry *th,
                             const ac_entry *tw, float *hb) {
    int Ho = 2 * H, Wo = 2 * W;
    for (int r = 0; r < H; r++) {
        const float *xr = xp + (size_t)r * W;
        float *o = hb + (size_t)r * Wo;
        for (int ow = 0; ow < Wo; ow++) {
            float lw = tw[ow].l1;
            o[ow] = (1.0f - lw) * xr[tw[ow].i0] + lw * xr[tw[ow].i1];
        }
    }
    for (int oh = 0; oh < Ho; oh++) {
        const float *a = hb + (size_t)th[oh].i0 * Wo, *b = hb + (size_t)th[oh].i1 * Wo;
        const float lh = th[oh].l1, kh = 1.0f - lh;
        float *o = yp + (size_t)oh * Wo;
        for (int ow = 0; ow < Wo; ow++) o[ow] = kh * a[ow] + lh * b[ow];
    }
}

static void up_bwd_plane_sep(const float *yp, float *xp, int H, int W, const ac_entry *th,
                             const ac_entry *tw, float *hb) {
    int Ho = 2 * H, Wo = 2 * W;
    memset(hb, 0, (size_t)H * Wo * sizeof(float));
    for (int oh = 0; oh < Ho; oh++) {
        float *a = hb + (size_t)th[oh].i0 * Wo, *b = hb + (size_t)th[oh].i1 * Wo;
        const float lh = th[oh].l1, kh = 1.0f - lh;
        const float *g = yp + (size_t)oh * Wo;
        for (int ow = 0; ow < Wo; ow++) a[ow] += kh * g[ow];
        for (int ow = 0; ow < Wo; ow++) b[ow] += lh * g[ow];
    }
    for (int r = 0; r < H; r++) {
        const float *v = hb + (size_t)r * Wo;
        float *xr = xp + (size_t)r * W;
        for (int ow = 0; ow < Wo; ow++) {
            float lw = tw[ow].l1;
            xr[tw[ow].i0] += (1.0f - lw) * v[ow];
            xr[tw[ow].i1] += lw * v[ow];
        }
    }
}

static ebmc_status cpu_upsample_fwd(ebmc_ctx_t *ctx, const ebmc_upsample_desc *d, const float *x,
                                    float *y) {
    int H = d->h, W = d->w, Ho = 2 * H, Wo = 2 * W;
    ac_entry th[UP_TAB], tw[UP_TAB];
    bool tab = d->mode != EBMC_UPSAMPLE_NEAREST && ac_table(th, Ho, H) && ac_table(tw, Wo, W);
    bool sep = tab && (size_t)H * Wo <= UP_SEP;
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * d->h * d->w > PAR_ELEMS)
    for (long nc = 0; nc < (long)d->n * d->c; nc++) {
        const float *xp = x + (size_t)nc * H * W;
        float *yp = y + (size_t)nc * Ho * Wo;
        if (sep) {
            float hb[UP_SEP];
            up_fwd_plane_sep(xp, yp, H, W, th, tw, hb);
            continue;
        }
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                float v;
                if (d->mode == EBMC_UPSAMPLE_NEAREST) {
                    v = xp[(size_t)(oh / 2) * W + ow / 2];
                } else {
                    int h0, h1, w0, w1;
                    float lh, lw;
                    ac_get(th, tab, oh, H, &h0, &h1, &lh);
                    ac_get(tw, tab, ow, W, &w0, &w1, &lw);
                    v = (1.0f - lh) * ((1.0f - lw) * xp[(size_t)h0 * W + w0] + lw * xp[(size_t)h0 * W + w1]) +
                        lh * ((1.0f - lw) * xp[(size_t)h1 * W + w0] + lw * xp[(size_t)h1 * W + w1]);
                }
                yp[(size_t)oh * Wo + ow] = v;
            }
    }
    return EBMC_OK;
}

static ebmc_status cpu_upsample_bwd(ebmc_ctx_t *ctx, const ebmc_upsample_desc *d, const float *dy,
                                    float *dx, float beta) {
    int H = d->h, W = d->w, Ho = 2 * H, Wo = 2 * W;
    ac_entry th[UP_TAB], tw[UP_TAB];
    bool tab = d->mode != EBMC_UPSAMPLE_NEAREST && ac_table(th, Ho, H) && ac_table(tw, Wo, W);
    bool sep = tab && (size_t)H * Wo <= UP_SEP;
    scale_or_zero(dx, (size_t)d->n * d->c * H * W, beta);
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * d->h * d->w > PAR_ELEMS)
    for (long nc = 0; nc < (long)d->n * d->c; nc++) {
        float *xp = dx + (size_t)nc * H * W;
        const float *yp = dy + (size_t)nc * Ho * Wo;
        if (sep) {
            float hb[UP_SEP];
            up_bwd_plane_sep(yp, xp, H, W, th, tw, hb);
            continue;
        }
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                float g = yp[(size_t)oh * Wo + ow];
                if (d->mode == EBMC_UPSAMPLE_NEAREST) {
                    xp[(size_t)(oh / 2) * W + ow / 2] += g;
                } else {
                    int h0, h1, w0, w1;
                    float lh, lw;
                    ac_get(th, tab, oh, H, &h0, &h1, &lh);
                    ac_get(tw, tab, ow, W, &w0, &w1, &lw);
                    xp[(size_t)h0 * W + w0] += (1.0f - lh) * (1.0f - lw) * g;
                    xp[(size_t)h0 * W + w1] += (1.0f - lh) * lw * g;
                    xp[(size_t)h1 * W + w0] += lh * (1.0f - lw) * g;
                    xp[(size_t)h1 * W + w1] += lh * lw * g;
                }
            }
    }
    return EBMC_OK;
}

/* ---- pooling ---- */

static ebmc_status cpu_avgpool2_fwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *x,
                                    float *y) {
    int H = d->h, W = d->w, Ho = H / 2, Wo = W / 2;
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * H * W > PAR_ELEMS)
    for (long nc = 0; nc < (long)d->n * d->c; nc++) {
        const float *xp = x + (size_t)nc * H * W;
        float *yp = y + (size_t)nc * Ho * Wo;
        for (int i = 0; i < Ho; i++)
            for (int j = 0; j < Wo; j++) {
                const float *a = xp + (size_t)(2 * i) * W + 2 * j;
                yp[(size_t)i * Wo + j] = 0.25f * ((a[0] + a[1]) + (a[W] + a[W + 1]));
            }
    }
    return EBMC_OK;
}

static ebmc_status cpu_avgpool2_bwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *dy,
                                    float *dx, float beta) {
    int H = d->h, W = d->w, Ho = H / 2, Wo = W / 2;
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * H * W > PAR_ELEMS)
    for (long nc = 0; nc < (long)d->n * d->c; nc++) {
        float *xp = dx + (size_t)nc * H * W;
        const float *yp = dy + (size_t)nc * Ho * Wo;
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++) {
                int i = h / 2, j = w / 2;
                float g = (i < Ho && j < Wo) ? 0.25f * yp[(size_t)i * Wo + j] : 0.0f;
                xp[(size_t)h * W + w] = blend(g, beta, xp[(size_t)h * W + w]);
            }
    }
    return EBMC_OK;
}

static ebmc_status cpu_gpool_fwd(ebmc_ctx_t *ctx, const ebmc_gpool_desc *d, const float *x,
                                 float *y) {
    size_t hw = (size_t)d->h * d->w;
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * hw > PAR_ELEMS)
    for (long nc = 0; nc < (long)d->n * d->c; nc++) {
        double s = 0;
        const float *p = x + (size_t)nc * hw;
        for (size_t i = 0; i < hw; i++) s += p[i];
        y[nc] = (float)(d->mode == EBMC_GPOOL_AVG ? s / (double)hw : s);
    }
    return EBMC_OK;
}

static ebmc_status cpu_gpool_bwd(ebmc_ctx_t *ctx, const ebmc_gpool_desc *d, const float *dy,
                                 float *dx, float beta) {
    size_t hw = (size_t)d->h * d->w;
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->c * hw > PAR_ELEMS)
    for (long nc = 0; nc < (long)d->n * d->c; nc++) {
        float g = d->mode == EBMC_GPOOL_AVG ? dy[nc] / (float)hw : dy[nc];
        float *p = dx + (size_t)nc * hw;
        for (size_t i = 0; i < hw; i++) p[i] = blend(g, beta, p[i]);
    }
    return EBMC_OK;
}

/* ---- element-wise, reductions, Adam ---- */

static ebmc_status cpu_axpby(ebmc_ctx_t *ctx, const ebmc_axpby_desc *d, const float *x, float *y) {
#pragma omp parallel for schedule(static) if (d->count > PAR_ELEMS)
    for (size_t i = 0; i < d->count; i++) y[i] = blend(d->a * x[i], d->b, y[i]);
    return EBMC_OK;
}

static ebmc_status cpu_fill(ebmc_ctx_t *ctx, const ebmc_fill_desc *d, float *y) {
#pragma omp parallel for schedule(static) if (d->count > PAR_ELEMS)
    for (size_t i = 0; i < d->count; i++) y[i] = d->value;
    return EBMC_OK;
}

static ebmc_status cpu_reduce(ebmc_ctx_t *ctx, const ebmc_reduce_desc *d, const float *x,
                              float *out) {
#pragma omp parallel for schedule(static) if (d->rows > 1 && (size_t)d->rows * d->cols > PAR_ELEMS)
    for (int r = 0; r < d->rows; r++) { /* one thread sums one row, in order */
        const float *p = x + (size_t)r * d->cols;
        double s = 0;
        if (d->mode == EBMC_REDUCE_SUMSQ)
            for (size_t i = 0; i < d->cols; i++) s += (double)p[i] * p[i];
        else
            for (size_t i = 0; i < d->cols; i++) s += p[i];
        out[r] = blend((float)s, d->beta, out[r]);
    }
    return EBMC_OK;
}

static ebmc_status cpu_adam(ebmc_ctx_t *ctx, const ebmc_adam_desc *d, float *param,
                            const float *grad, float *m, float *v) {
    /* the float constants PyTorch's kernels get from Python's doubles (see ebmc_adam_desc) */
    double bc1 = 1.0 - pow(d->beta1, (double)d->step);
    double bc2 = 1.0 - pow(d->beta2, (double)d->step);
    float step_size = (float)(d->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float b1 = (float)d->beta1, omb1 = (float)(1.0 - d->beta1);
    float b2 = (float)d->beta2, omb2 = (float)(1.0 - d->beta2);
    float wd = (float)d->weight_decay, eps = (float)d->eps;
    float ck = (float)d->clip_std, cf = (float)d->clip_floor, bc2f = (float)bc2;
#pragma omp parallel for schedule(static) if (d->count > PAR_ELEMS)
    for (size_t i = 0; i < d->count; i++) {
        float g = grad[i];
        if (wd != 0.0f) g = g + wd * param[i];
        if (ck > 0.0f) { /* IGEBM's clip by the old second moment (ebmc_adam_desc) */
            float bound = ck * sqrtf(v[i] / bc2f) + cf;
            g = g > bound ? bound : (g < -bound ? -bound : g);
        }
        m[i] = m[i] * b1 + omb1 * g;
        v[i] = v[i] * b2 + omb2 * g * g;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        param[i] = param[i] - step_size * (m[i] / denom);
    }
    return EBMC_OK;
}

/* ---- samplers ---- */

static uint32_t step_of(const ebmc_rng_key *k) {
    return (k->step_base ? *k->step_base : 0u) + k->step_offset;
}

/* normal noise of element e of (global) chain `chain` at `step` */
static inline float normal_at(const ebmc_rng_key *k, uint32_t step, uint32_t chain, size_t e) {
    float r[4];
    ebmc_philox_normal4(k->seed, (uint32_t)(e / 4), chain, step, k->stream, r);
    return r[e % 4];
}

static ebmc_status cpu_langevin(ebmc_ctx_t *ctx, const ebmc_langevin_desc *d, float *x,
                                const float *g) {
    uint32_t step = step_of(&d->rng);
    const uint32_t c0 = ebmc_ctx_chain_base(ctx, d->n_chains); /* global chain 0 (comm.h) */
    size_t E = d->chain_elems;
#pragma omp parallel for schedule(static) if ((size_t)d->n_chains * d->chain_elems > PAR_RNG_ELEMS)
    for (int ch = 0; ch < d->n_chains; ch++) {
        float *xc = x + (size_t)ch * E;
        const float *gc = g + (size_t)ch * E;
        for (size_t g4 = 0; g4 < E; g4 += 4) {
            float xi[4] = {0, 0, 0, 0};
            if (d->noise == EBMC_NOISE_AFTER)
                ebmc_philox_normal4(d->rng.seed, (uint32_t)(g4 / 4), (uint32_t)ch + c0, step, d->rng.stream, xi);
            else if (d->noise == EBMC_NOISE_NEXT)
                ebmc_philox_normal4(d->rng.seed, (uint32_t)(g4 / 4), (uint32_t)ch + c0, step + 1, d->rng.stream, xi);
            for (size_t l = 0; l < 4 && g4 + l < E; l++) {
                size_t i = g4 + l;
                float gr = gc[i];
                if (d->clip > 0) gr = gr > d->clip ? d->clip : (gr < -d->clip ? -d->clip : gr);
                float v = xc[i] - d->a * gr - d->b * xc[i];
                if (d->noise == EBMC_NOISE_AFTER) v += d->c * xi[l];
                if (d->clamp) v = v < d->lo ? d->lo : (v > d->hi ? d->hi : v);
                if (d->noise == EBMC_NOISE_NEXT) v += d->c * xi[l];
                xc[i] = v;
            }
        }
    }
    return EBMC_OK;
}

static ebmc_status cpu_rng(ebmc_ctx_t *ctx, const ebmc_rng_desc *d, float *y) {
    uint32_t step = step_of(&d->rng);
    const uint32_t c0 = ebmc_ctx_chain_base(ctx, d->n_chains); /* global chain 0 (comm.h) */
    size_t E = d->chain_elems;
#pragma omp parallel for schedule(static) if ((size_t)d->n_chains * d->chain_elems > PAR_RNG_ELEMS)
    for (int ch = 0; ch < d->n_chains; ch++) {
        float *yc = y + (size_t)ch * E;
        for (size_t g4 = 0; g4 < E; g4 += 4) {
            float r[4];
            if (d->dist == EBMC_RNG_NORMAL)
                ebmc_philox_normal4(d->rng.seed, (uint32_t)(g4 / 4), (uint32_t)ch + c0, step, d->rng.stream, r);
            else
                ebmc_philox_uniform4(d->rng.seed, (uint32_t)(g4 / 4), (uint32_t)ch + c0, step, d->rng.stream, r);
            for (size_t l = 0; l < 4 && g4 + l < E; l++) {
                float v = d->dist == EBMC_RNG_NORMAL ? d->p0 + d->p1 * r[l]
                                                      : d->p0 + (d->p1 - d->p0) * r[l];
                yc[g4 + l] = d->accumulate ? yc[g4 + l] + v : v;
            }
        }
    }
    return EBMC_OK;
}

static ebmc_status cpu_reparam(ebmc_ctx_t *ctx, const ebmc_reparam_desc *d, const float *mu,
                               const float *s, float *z) {
    uint32_t step = step_of(&d->rng);
    const uint32_t c0 = ebmc_ctx_chain_base(ctx, d->n_chains); /* global chain 0 (comm.h) */
    size_t E = d->chain_elems;
    for (int ch = 0; ch < d->n_chains; ch++)
        for (size_t e = 0; e < E; e++) {
            size_t i = (size_t)ch * E + e;
            z[i] = mu[i] + expf(d->k * s[i]) * normal_at(&d->rng, step, (uint32_t)ch + c0, e);
        }
    return EBMC_OK;
}

static ebmc_status cpu_scaled_diff(ebmc_ctx_t *ctx, const ebmc_scaled_diff_desc *d,
                                   const float *a, const float *b, float *out) {
#pragma omp parallel for schedule(static) if (d->count > PAR_ELEMS)
    for (size_t i = 0; i < d->count; i++) out[i] = blend(d->alpha * (a[i] - b[i]), d->beta, out[i]);
    return EBMC_OK;
}

/* y = beta y + (x / (1 - p)) keep, keep in {0, 1} from ebmc_philox_keep4 (ebmc_dropout_desc) */
static ebmc_status cpu_dropout(ebmc_ctx_t *ctx, const ebmc_dropout_desc *d, const float *x, float *y) {
    uint32_t step = step_of(&d->rng);
    const uint32_t c0 = ebmc_ctx_chain_base(ctx, d->rows); /* global chain 0 (comm.h) */
    const size_t E = d->row_elems;
    const float keep_p = (float)(1.0 - (double)d->p);
#pragma omp parallel for schedule(static) if ((size_t)d->rows * E > PAR_ELEMS)
    for (int r = 0; r < d->rows; r++) {
        const float *xr = x + (size_t)r * E;
        float *yr = y + (size_t)r * E;
        for (size_t g4 = 0; g4 < E; g4 += 4) {
            int keep[4];
            ebmc_philox_keep4(d->rng.seed, d->group_off + (uint32_t)(g4 / 4), (uint32_t)r + c0, step, d->rng.stream,
                              (double)d->p, keep);
            for (size_t l = 0; l < 4 && g4 + l < E; l++) {
                float v = (xr[g4 + l] / keep_p) * (float)keep[l]; /* TF's order; NaN stays NaN */
                yr[g4 + l] = blend(v, d->beta, yr[g4 + l]);
            }
        }
    }
    return EBMC_OK;
}

static ebmc_status cpu_counter_add(ebmc_ctx_t *ctx, const ebmc_counter_desc *d, uint32_t *c) {
    *c += d->delta;
    return EBMC_OK;
}

/* chain-level decisions use the element group 0xFFFFFFFF: lane 0 reuse?, lane 1 which entry */
#define REPLAY_GROUP 0xFFFFFFFFu

static ebmc_status cpu_replay_sample(ebmc_ctx_t *ctx, const ebmc_replay_desc *d,
                                     const void *buffer, float *x) {
    uint32_t step = step_of(&d->rng);
    const uint32_t c0 = ebmc_ctx_chain_base(ctx, d->n_chains); /* global chain 0 (comm.h) */
    size_t E = d->chain_elems;
    float span = d->hi - d->lo;
    for (int ch = 0; ch < d->n_chains; ch++) {
        float u[4];
        ebmc_philox_uniform4(d->rng.seed, REPLAY_GROUP, (uint32_t)ch + c0, step, d->rng.stream, u);
        bool reuse = d->count > 0 && u[0] < d->p_reuse;
        int j = (int)(u[1] * (float)d->count);
        if (j >= d->count) j = d->count - 1;
        float *xc = x + (size_t)ch * E;
        for (size_t g4 = 0; g4 < E; g4 += 4) {
            float r[4];
            ebmc_philox_uniform4(d->rng.seed, (uint32_t)(g4 / 4), (uint32_t)ch + c0, step, d->rng.stream, r);
            for (size_t l = 0; l < 4 && g4 + l < E; l++) {
                size_t e = g4 + l;
                float v;
                if (!reuse) v = d->lo + span * r[l];
                else if (d->u8) v = d->lo + ((float)((const uint8_t *)buffer)[(size_t)j * E + e] + r[l]) * (span / 256.0f);
                else v = ((const float *)buffer)[(size_t)j * E + e];
                xc[e] = v;
            }
        }
    }
    return EBMC_OK;
}

static ebmc_status cpu_replay_push(ebmc_ctx_t *ctx, const ebmc_replay_desc *d, void *buffer,
                                   const float *x) {
    size_t E = d->chain_elems;
    for (int ch = 0; ch < d->n_chains; ch++) {
        size_t slot = (size_t)((d->head + ch) % d->capacity);
        const float *xc = x + (size_t)ch * E;
        for (size_t e = 0; e < E; e++) {
            if (d->u8) {
                float q = floorf((xc[e] - d->lo) / (d->hi - d->lo) * (d->push_levels > 0 ? d->push_levels : 256.0f));
                q = q < 0 ? 0 : (q > 255 ? 255 : q);
                ((uint8_t *)buffer)[slot * E + e] = (uint8_t)q;
            } else {
                ((float *)buffer)[slot * E + e] = xc[e];
            }
        }
    }
    return EBMC_OK;
}

static ebmc_status cpu_gauss_nll(ebmc_ctx_t *ctx, const ebmc_gauss_nll_desc *d, const float *z,
                                 const float *mu, const float *s, float *loss, float *dmu,
                                 float *ds) {
    for (int r = 0; r < d->rows; r++) {
        double l = 0;
        for (size_t j = 0; j < d->cols; j++) {
            size_t i = (size_t)r * d->cols + j;
            double e = exp((double)s[i]), den = d->eps + e, dz = (double)z[i] - mu[i];
            l += 0.5 * s[i] + 0.5 * dz * dz / den;
            float gm = (float)(d->scale * (-dz / den));
            float gs = (float)(d->scale * (0.5 - 0.5 * dz * dz * e / (den * den)));
            dmu[i] = blend(gm, d->beta, dmu[i]);
            ds[i] = blend(gs, d->beta, ds[i]);
        }
        if (loss) loss[r] = (float)l;
    }
    return EBMC_OK;
}

/* ---- learned per-channel scale (IGEBM) ---- */

static ebmc_status cpu_chan_scale_fwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *x, const float *s,
                                      float *y) {
    size_t hw = (size_t)d->h * d->w;
    for (size_t i = 0, n = (size_t)d->n * d->c * hw; i < n; i++) y[i] = x[i] * s[(i / hw) % (size_t)d->c];
    return EBMC_OK;
}

static ebmc_status cpu_chan_scale_bwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *x, const float *s,
                                      const float *dy, float *dx, float *ds, float beta_dx, float beta_s) {
    size_t hw = (size_t)d->h * d->w;
    for (int ch = 0; ds && ch < d->c; ch++) {
        double acc = 0;
        for (int n = 0; n < d->n; n++) {
            const size_t base = ((size_t)n * d->c + ch) * hw;
            for (size_t j = 0; j < hw; j++) acc += (double)dy[base + j] * x[base + j];
        }
        ds[ch] = blend((float)acc, beta_s, ds[ch]);
    }
    for (size_t i = 0, n = (size_t)d->n * d->c * hw; dx && i < n; i++)
        dx[i] = blend(dy[i] * s[(i / hw) % (size_t)d->c], beta_dx, dx[i]);
    return EBMC_OK;
}

/* element-wise in double, the row sum in order (the CUDA kernel sums in a fixed tree) */
static ebmc_status cpu_gauss_kl(ebmc_ctx_t *ctx, const ebmc_gauss_kl_desc *d, const float *mu,
                                const float *s, const float *eps, const float *dz, float *loss,
                                float *dmu, float *ds) {
    const double k = d->k, w = d->weight, scale = d->scale;
    for (int r = 0; r < d->rows; r++) {
        double l = 0;
        for (size_t j = 0; j < d->cols; j++) {
            size_t i = (size_t)r * d->cols + j;
            double m = mu[i], ks = k * s[i], e1 = exp(ks), e2 = exp(2.0 * ks);
            l += 0.5 * (m * m + e2 - 1.0 - 2.0 * ks);
            double gm = w * m, gs = w * k * (e2 - 1.0);
            if (dz) {
                gm += dz[i];
                gs += k * (double)dz[i] * eps[i] * e1;
            }
            dmu[i] = blend((float)(scale * gm), d->beta, dmu[i]);
            ds[i] = blend((float)(scale * gs), d->beta, ds[i]);
        }
        if (loss) loss[r] = (float)l;
    }
    return EBMC_OK;
}

/* ---- table ---- */

static bool cpu_supports(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    return ebmc_op_in_table(&ebmc_cpu_ops, op); /* every op; descriptors are validated by the caller */
}

static size_t cpu_workspace_size(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    switch (op) {
    case EBMC_OP_CONV2D_FWD: case EBMC_OP_CONV2D_BWD_DATA: case EBMC_OP_CONV2D_BWD_FILTER:
    case EBMC_OP_CONVT2D_FWD: case EBMC_OP_CONVT2D_BWD_DATA: case EBMC_OP_CONVT2D_BWD_FILTER:
        /* the context's primitive cache is filled here, ahead of the loop (a cache: the
         * context is otherwise unchanged, so the const is only cast away for it) */
        return cpu_conv_workspace_bytes((ebmc_ctx_t *)ctx, op, desc);
    case EBMC_OP_SN_POWER: {
        const ebmc_sn_desc *d = desc;
        return (size_t)(d->rows > d->cols ? d->rows : d->cols) * sizeof(double);
    }
    default: return 0;
    }
}

const ebmc_backend_ops ebmc_cpu_ops = {
    .name = "cpu",
    .init = cpu_init,
    .fini = cpu_fini,
    .supports = cpu_supports,
    .workspace_size = cpu_workspace_size,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy = cpu_copy,
    .sync = cpu_sync,
#define CPU_ENTRY_(OP, id, ...) .id = cpu_##id,
    EBMC_OPS(CPU_ENTRY_) /* every op: cpu_<id> above */
#undef CPU_ENTRY_
    /* no graphs: the CPU runs chains eagerly */
};
