/* The CPU backend's GEMM-backed ops: the six convolutions (im2col/col2im + OpenBLAS SGEMM on
 * chunks of the batch) and the three linear ones. Declared in backend/cpu/cpu_internal.h for the
 * op table in backend_cpu.c. */
#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/gemm.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- convolutions: one geometry, im2col + GEMM on a chunk of the batch ----
 * A transposed convolution is the adjoint of a convolution, so all six ops run on the three
 * convolution cores below with the roles of input and output swapped.
 *
 * The batch goes in chunks of nb images (chunk_of: at least CHUNK_COLS GEMM columns, so late
 * layers with few output pixels still make one large GEMM; nb depends on the shapes only, never
 * on the thread count). The chunk's columns sit side by side: col (Cin*KH*KW, nb*Ho*Wo) and,
 * for the output / gradient, t (Cout, nb*Ho*Wo). The weight gradient is one GEMM over the
 * chunk's nb*Ho*Wo columns, chunks added in order: the same sums whatever OMP_NUM_THREADS is.
 * Workspace: (Cin*KH*KW + Cout) * nb*Ho*Wo floats, reported by cpu_workspace_size, so the nn
 * tape reserves it at set-up and no call allocates. */

static conv_geom geom_of(const ebmc_conv_desc *d) {
    int ho = 0, wo = 0;
    ebmc_conv_out_hw(d, &ho, &wo);
    conv_geom g = {.n = d->n, .kh = d->kh, .kw = d->kw, .sh = d->stride_h, .sw = d->stride_w,
                   .pt = d->pad_t, .pl = d->pad_l};
    if (!d->transposed) {
        g.cin = d->c_in; g.h = d->h; g.w = d->w;
        g.cout = d->c_out; g.ho = ho; g.wo = wo;
    } else { /* the convolution whose adjoint this is: (N,Cout_t,Ho,Wo) -> (N,Cin_t,H,W) */
        g.cin = d->c_out; g.h = ho; g.w = wo;
        g.cout = d->c_in; g.ho = d->h; g.wo = d->w;
    }
    return g;
}

/* GEMM columns a chunk aims at, and the most col floats it may take (64 MiB) */
enum { CHUNK_COLS = 1024, CHUNK_MAX_COL_FLOATS = 16 << 20 };

static int chunk_of(const conv_geom *g) {
    size_t P = (size_t)g->ho * g->wo, K = (size_t)g->cin * g->kh * g->kw;
    if (P == 0 || g->n <= 1) return 1;
    size_t nb = (CHUNK_COLS + P - 1) / P;
    while (nb > 1 && K * nb * P > CHUNK_MAX_COL_FLOATS) nb--;
    return (int)(nb < (size_t)g->n ? nb : (size_t)g->n);
}

/* one chunk's workspace: col and t */
static size_t chunk_ws_floats(const conv_geom *g) {
    size_t cols = (size_t)chunk_of(g) * g->ho * g->wo;
    return ((size_t)g->cin * g->kh * g->kw + g->cout) * cols;
}

/* Chunks side by side: when a chunk's GEMM is too small for cpu_sgemm to split (below its
 * PAR_MACS, it runs on one thread) and the batch makes several chunks, the forward and data-
 * gradient cores give each thread whole chunks, each with its own col and t. Every chunk's
 * arithmetic is the same on any thread, so the results do not depend on the thread count. The
 * filter gradient adds the chunks in order and stays on one chunk at a time. With 8-channel
 * convolutions at 32x32 (the quick start's nets) each chunk is one image and 0.6M multiply-adds:
 * without this, the whole convolution ran on one thread. */
enum { CHUNK_PAR_MIN_MACS = 1 << 20, CHUNK_GEMM_SPLIT_MACS = 1 << 22 };

static int chunk_threads(const conv_geom *g) {
#ifdef _OPENMP
    int NB = chunk_of(g), chunks = (g->n + NB - 1) / NB;
    double per = (double)g->cout * NB * g->ho * g->wo * g->cin * g->kh * g->kw;
    if (chunks < 2 || per > CHUNK_GEMM_SPLIT_MACS || per * chunks < CHUNK_PAR_MIN_MACS || omp_in_parallel())
        return 1;
    int t = omp_get_max_threads();
    return t < chunks ? t : chunks;
#else
    (void)g;
    return 1;
#endif
}

static size_t conv_ws_floats(const conv_geom *g) { return chunk_ws_floats(g) * (size_t)chunk_threads(g); }

/* the output columns [lo, hi) whose input column ow*s - p + k lies inside 0..w-1 */
static inline void valid_range(int wo, int s, int p, int k, int w, int *lo, int *hi) {
    int a = p - k, l = a > 0 ? (a + s - 1) / s : 0;   /* first ow with ow*s >= p-k */
    int b = w - 1 + p - k, u = b >= 0 ? b / s + 1 : 0; /* past the last ow with ow*s <= w-1+p-k */
    *lo = l < wo ? l : wo;
    *hi = u < wo ? u : wo;
    if (*hi < *lo) *hi = *lo;
}

/* col rows (Cin*KH*KW), row stride ld; image i of the chunk at column i*Ho*Wo: im2col of the nb
 * images x (nb,Cin,H,W) */
static void im2col(const conv_geom *g, int nb, const float *x, float *col, size_t ld) {
    int rows = g->cin * g->kh * g->kw, P = g->ho * g->wo;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)rows * nb * P > PAR_ELEMS)
    for (int i = 0; i < nb; i++)
        for (int r = 0; r < rows; r++) {
            int c = r / (g->kh * g->kw), ki = r / g->kw % g->kh, kj = r % g->kw;
            const float *xc = x + ((size_t)i * g->cin + c) * g->h * g->w;
            float *row = col + (size_t)r * ld + (size_t)i * P;
            int lo, hi;
            valid_range(g->wo, g->sw, g->pl, kj, g->w, &lo, &hi);
            for (int oh = 0; oh < g->ho; oh++) {
                int ih = oh * g->sh - g->pt + ki;
                float *o = row + (size_t)oh * g->wo;
                if (ih < 0 || ih >= g->h) {
                    memset(o, 0, (size_t)g->wo * sizeof(float));
                    continue;
                }
                const float *xr = xc + (size_t)ih * g->w - g->pl + kj;
                for (int ow = 0; ow < lo; ow++) o[ow] = 0.0f;
                if (g->sw == 1) memcpy(o + lo, xr + lo, (size_t)(hi - lo) * sizeof(float));
                else
                    for (int ow = lo; ow < hi; ow++) o[ow] = xr[(size_t)ow * g->sw];
                for (int ow = hi; ow < g->wo; ow++) o[ow] = 0.0f;
            }
        }
}

/* dx (nb,Cin,H,W) += col2im(col), col laid out as im2col's */
static void col2im_add(const conv_geom *g, int nb, const float *col, size_t ld, float *dx) {
    int P = g->ho * g->wo;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)g->cin * g->kh * g->kw * nb * P > PAR_ELEMS)
    for (int i = 0; i < nb; i++)
        for (int c = 0; c < g->cin; c++) { /* one thread owns one channel plane: no races */
            float *dxc = dx + ((size_t)i * g->cin + c) * g->h * g->w;
            for (int ki = 0; ki < g->kh; ki++)
                for (int kj = 0; kj < g->kw; kj++) {
                    const float *row = col + (size_t)((c * g->kh + ki) * g->kw + kj) * ld + (size_t)i * P;
                    int lo, hi;
                    valid_range(g->wo, g->sw, g->pl, kj, g->w, &lo, &hi);
                    for (int oh = 0; oh < g->ho; oh++) {
                        int ih = oh * g->sh - g->pt + ki;
                        if (ih < 0 || ih >= g->h) continue;
                        const float *r = row + (size_t)oh * g->wo;
                        float *xr = dxc + (size_t)ih * g->w - g->pl + kj;
                        if (g->sw == 1) /* contiguous: vectorises */
                            for (int ow = lo; ow < hi; ow++) xr[ow] += r[ow];
                        else
                            for (int ow = lo; ow < hi; ow++) xr[(size_t)ow * g->sw] += r[ow];
                    }
                }
        }
}

/* t (C, nb*P) <-> a (nb,C,P): gather (to_t) or y = t + beta*y (scatter) */
static void chunk_gather(const float *a, float *t, int nb, int C, int P) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)nb * C * P > PAR_ELEMS)
    for (int c = 0; c < C; c++)
        for (int i = 0; i < nb; i++)
            memcpy(t + ((size_t)c * nb + i) * P, a + ((size_t)i * C + c) * P, (size_t)P * sizeof(float));
}

static void chunk_scatter(const float *t, float *a, int nb, int C, int P, float beta) {
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)nb * C * P > PAR_ELEMS)
    for (int i = 0; i < nb; i++)
        for (int c = 0; c < C; c++) {
            const float *s = t + ((size_t)c * nb + i) * P;
            float *o = a + ((size_t)i * C + c) * P;
            if (beta == 0.0f) memcpy(o, s, (size_t)P * sizeof(float));
            else
                for (int p = 0; p < P; p++) o[p] = s[p] + beta * o[p];
        }
}

static ebmc_status conv_ws(ebmc_ctx_t *ctx, const conv_geom *g, float **col, float **t) {
    ebmc_status s = ebmc_ctx_workspace(ctx, conv_ws_floats(g) * sizeof(float), (void **)col);
    *t = *col + (size_t)g->cin * g->kh * g->kw * chunk_of(g) * g->ho * g->wo;
    return s;
}

/* thread `th`'s col and t in a workspace of chunk_threads(g) chunk slices */
static void chunk_slice(const conv_geom *g, float *ws, int th, float **col, float **t) {
    *col = ws + chunk_ws_floats(g) * (size_t)th;
    *t = *col + (size_t)g->cin * g->kh * g->kw * chunk_of(g) * g->ho * g->wo;
}

/* A kernel that covers the whole unpadded input (one output pixel: the short-run EBM's last 4x4
 * layer) makes the convolution a linear layer on the flattened input, x (N, K) with K = Cin*H*W in
 * the kernel's own (c, kh, kw) order: one GEMM, no im2col (whose rows would be one element long). */
static bool whole_input(const conv_geom *g) {
    return g->ho == 1 && g->wo == 1 && g->kh == g->h && g->kw == g->w && g->pt == 0 && g->pl == 0;
}

/* y (N,Cout,Ho,Wo) = conv(x (N,Cin,H,W), w) + beta*y */
static ebmc_status conv_core_fwd(ebmc_ctx_t *ctx, const conv_geom *g, const float *x,
                                 const float *w, float *y, float beta) {
    float *col, *t;
    ebmc_status s;
    int K = g->cin * g->kh * g->kw;
    if (whole_input(g)) { /* y (N, Cout) = x (N, K) w^T + beta*y */
        cpu_sgemm(false, true, g->n, g->cout, K, 1.0f, x, K, w, K, beta, y, g->cout);
        return EBMC_OK;
    }
    if (cpu_dnnl_conv(ctx, g, 0, x, w, y, beta, &s)) return s;
    s = conv_ws(ctx, g, &col, &t);
    if (s) return s;
    int P = g->ho * g->wo, NB = chunk_of(g), T = chunk_threads(g);
    float *ws = col;
#pragma omp parallel for num_threads(T) schedule(static) firstprivate(col, t) if (T > 1)
    for (int n0 = 0; n0 < g->n; n0 += NB) {
        if (T > 1) chunk_slice(g, ws, cpu_thread_num(), &col, &t);
        int nb = g->n - n0 < NB ? g->n - n0 : NB, cols = nb * P;
        im2col(g, nb, x + (size_t)n0 * g->cin * g->h * g->w, col, (size_t)cols);
        float *yn = y + (size_t)n0 * g->cout * P;
        if (nb == 1) {
            cpu_sgemm(false, false, g->cout, P, K, 1.0f, w, K, col, P, beta, yn, P);
        } else {
            cpu_sgemm(false, false, g->cout, cols, K, 1.0f, w, K, col, cols, 0.0f, t, cols);
            chunk_scatter(t, yn, nb, g->cout, P, beta);
        }
    }
    return EBMC_OK;
}

/* dx (N,Cin,H,W) = beta*dx + conv^T(dy (N,Cout,Ho,Wo), w) */
static ebmc_status conv_core_bwd_data(ebmc_ctx_t *ctx, const conv_geom *g, const float *dy,
                                      const float *w, float *dx, float beta) {
    float *col, *t;
    ebmc_status s;
    int K = g->cin * g->kh * g->kw;
    if (whole_input(g)) { /* dx (N, K) = dy (N, Cout) w + beta*dx */
        cpu_sgemm(false, false, g->n, K, g->cout, 1.0f, dy, g->cout, w, K, beta, dx, K);
        return EBMC_OK;
    }
    if (cpu_dnnl_conv(ctx, g, 1, dy, w, dx, beta, &s)) return s;
    s = conv_ws(ctx, g, &col, &t);
    if (s) return s;
    int P = g->ho * g->wo, NB = chunk_of(g), T = chunk_threads(g);
    float *ws = col;
    scale_or_zero(dx, (size_t)g->n * g->cin * g->h * g->w, beta);
#pragma omp parallel for num_threads(T) schedule(static) firstprivate(col, t) if (T > 1)
    for (int n0 = 0; n0 < g->n; n0 += NB) {
        if (T > 1) chunk_slice(g, ws, cpu_thread_num(), &col, &t);
        int nb = g->n - n0 < NB ? g->n - n0 : NB, cols = nb * P;
        const float *dyn = dy + (size_t)n0 * g->cout * P;
        if (nb > 1) {
            chunk_gather(dyn, t, nb, g->cout, P);
            dyn = t;
        }
        cpu_sgemm(true, false, K, cols, g->cout, 1.0f, w, K, dyn, cols, 0.0f, col, cols);
        col2im_add(g, nb, col, (size_t)cols, dx + (size_t)n0 * g->cin * g->h * g->w);
    }
    return EBMC_OK;
}

/* dw (Cout,Cin,KH,KW) = beta*dw + sum_n dy_n * im2col(x_n)^T */
static ebmc_status conv_core_bwd_filter(ebmc_ctx_t *ctx, const conv_geom *g, const float *x,
                                        const float *dy, float *dw, float beta) {
    float *col, *t;
    ebmc_status s;
    int K = g->cin * g->kh * g->kw;
    if (whole_input(g)) { /* dw (Cout, K) = dy^T (Cout, N) x (N, K) + beta*dw */
        cpu_sgemm(true, false, g->cout, K, g->n, 1.0f, dy, g->cout, x, K, beta, dw, K);
        return EBMC_OK;
    }
    if (cpu_dnnl_conv(ctx, g, 2, x, dy, dw, beta, &s)) return s;
    s = conv_ws(ctx, g, &col, &t);
    if (s) return s;
    int P = g->ho * g->wo, NB = chunk_of(g);
    if (g->n == 0) scale_or_zero(dw, (size_t)g->cout * K, beta);
    for (int n0 = 0; n0 < g->n; n0 += NB) {
        int nb = g->n - n0 < NB ? g->n - n0 : NB, cols = nb * P;
        im2col(g, nb, x + (size_t)n0 * g->cin * g->h * g->w, col, (size_t)cols);
        const float *dyn = dy + (size_t)n0 * g->cout * P;
        if (nb > 1) {
            chunk_gather(dyn, t, nb, g->cout, P);
            dyn = t;
        }
        cpu_sgemm(false, true, g->cout, K, cols, 1.0f, dyn, cols, col, cols, n0 == 0 ? beta : 1.0f,
                  dw, K);
    }
    return EBMC_OK;
}

ebmc_status cpu_conv2d_fwd(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x,
                                  const float *w, float *y) {
    conv_geom g = geom_of(d);
    return conv_core_fwd(ctx, &g, x, w, y, 0.0f);
}
ebmc_status cpu_conv2d_bwd_data(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *dy,
                                       const float *w, float *dx, float beta) {
    conv_geom g = geom_of(d);
    return conv_core_bwd_data(ctx, &g, dy, w, dx, beta);
}
ebmc_status cpu_conv2d_bwd_filter(ebmc_ctx_t *ctx, const ebmc_conv_desc *d,
                                         const float *x, const float *dy, float *dw, float beta) {
    conv_geom g = geom_of(d);
    return conv_core_bwd_filter(ctx, &g, x, dy, dw, beta);
}
ebmc_status cpu_convt2d_fwd(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x,
                                   const float *w, float *y) {
    conv_geom g = geom_of(d);
    return conv_core_bwd_data(ctx, &g, x, w, y, 0.0f);
}
ebmc_status cpu_convt2d_bwd_data(ebmc_ctx_t *ctx, const ebmc_conv_desc *d,
                                        const float *dy, const float *w, float *dx, float beta) {
    conv_geom g = geom_of(d);
    return conv_core_fwd(ctx, &g, dy, w, dx, beta);
}
ebmc_status cpu_convt2d_bwd_filter(ebmc_ctx_t *ctx, const ebmc_conv_desc *d,
                                          const float *x, const float *dy, float *dw,
                                          float beta) {
    conv_geom g = geom_of(d);
    return conv_core_bwd_filter(ctx, &g, dy, x, dw, beta);
}

/* ---- linear ---- */

ebmc_status cpu_linear_fwd(ebmc_ctx_t *ctx, const ebmc_linear_desc *d, const float *x,
                                  const float *w, const float *b, float *y) {
    cpu_sgemm(false, true, d->n, d->out, d->in, 1.0f, x, d->in, w, d->in, 0.0f, y, d->out);
    if (b)
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->out > PAR_ELEMS)
        for (int i = 0; i < d->n; i++)
            for (int j = 0; j < d->out; j++) y[(size_t)i * d->out + j] += b[j];
    return EBMC_OK;
}

ebmc_status cpu_linear_bwd_data(ebmc_ctx_t *ctx, const ebmc_linear_desc *d,
                                       const float *dy, const float *w, float *dx, float beta) {
    cpu_sgemm(false, false, d->n, d->in, d->out, 1.0f, dy, d->out, w, d->in, beta, dx, d->in);
    return EBMC_OK;
}

ebmc_status cpu_linear_bwd_filter(ebmc_ctx_t *ctx, const ebmc_linear_desc *d,
                                         const float *x, const float *dy, float *dw, float *db,
                                         float beta) {
    cpu_sgemm(true, false, d->out, d->in, d->n, 1.0f, dy, d->out, x, d->in, beta, dw, d->in);
    if (db)
#pragma omp parallel for schedule(static) if ((size_t)d->n * d->out > PAR_ELEMS)
        for (int j = 0; j < d->out; j++) {
            double s = 0;
            for (int i = 0; i < d->n; i++) s += dy[(size_t)i * d->out + j];
            db[j] = blend((float)s, beta, db[j]);
        }
    return EBMC_OK;
}

size_t cpu_conv_workspace_bytes(ebmc_ctx_t *ctx, ebmc_op op, const ebmc_conv_desc *d) {
    conv_geom g = geom_of(d);
    /* the oneDNN primitives of this op at this batch, made now (a tape plans before its loop):
     * conv fwd / data / filter are kinds 0 / 1 / 2; a transposed conv's fwd runs as kind 1, its
     * data gradient as kind 0 */
    static const int kind_of[6] = {0, 1, 2, 1, 0, 2};
    int i = (int)op - (int)EBMC_OP_CONV2D_FWD;
    if (ctx && i >= 0 && i < 6) cpu_dnnl_prepare(ctx, &g, kind_of[i]);
    size_t gemm = conv_ws_floats(&g) * sizeof(float), dn = cpu_dnnl_ws_bytes(&g);
    return gemm > dn ? gemm : dn; /* oneDNN may decline at run time: room for both paths */
}
