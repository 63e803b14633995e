/* defines: the CPU backend's private pieces shared by backend_cpu.c (the op table and the
 * element-wise, normalisation, pooling and sampler ops) and conv_gemm.c (convolutions and linear
 * layers on SGEMM): the parallel-region threshold, beta blending, and the GEMM-backed ops. */
#ifndef EBMC_BACKEND_CPU_INTERNAL_H
#define EBMC_BACKEND_CPU_INTERNAL_H

#include "backend/ctx_internal.h"
#include <string.h>

#ifdef _OPENMP
#include <omp.h> /* before the pragma: the OpenMP runtime's symbols are not ours */
#endif
#pragma GCC visibility push(hidden)

/* Loops over fewer elements than this run on one thread: a parallel region must carry enough
 * work (~0.1 ms) to pay for waking the team, and far more when the cores are shared with other
 * processes, where a region waits for its slowest, descheduled thread. */
enum { PAR_ELEMS = 1 << 18 };
/* Loops that draw Philox normals (a 10-round counter hash and a Box-Muller per 4 elements, ~40x the
 * work of an element-wise op) split from this many elements: a Langevin update of 16 CIFAR-sized
 * chains (49k elements) was serial. Each element's noise is keyed by (chain, element, step), so
 * the values do not depend on the split. */
enum { PAR_RNG_ELEMS = 1 << 13 };

/* Hot loops run on the widest vector unit the CPU has: a CPU_CLONES function is compiled for
 * AVX-512, AVX2 and the baseline ISA, and the dynamic loader picks one (GCC target_clones, an
 * ifunc). Neither target enables FMA, so no product-sum is contracted: every version gives the
 * same bits as long as its loops only copy, select, or do element-wise arithmetic (no reductions,
 * which gcc does not reorder without -ffast-math anyway). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CPU_CLONES
#endif

/* the calling thread's number in its OpenMP team, and the team's size (0 and 1 without OpenMP) */
#ifdef _OPENMP
static inline int cpu_thread_num(void) { return omp_get_thread_num(); }
static inline int cpu_team_size(void) { return omp_get_num_threads(); }
#else
static inline int cpu_thread_num(void) { return 0; }
static inline int cpu_team_size(void) { return 1; }
#endif

/* out = v + beta*out without reading out when beta == 0 */
static inline float blend(float v, float beta, float old) { return beta == 0.0f ? v : v + beta * old; }

static inline void scale_or_zero(float *p, size_t n, float beta) {
    if (beta == 0.0f)
        memset(p, 0, n * sizeof(float));
    else if (beta != 1.0f)
        for (size_t i = 0; i < n; i++) p[i] *= beta;
}

/* A convolution's geometry (conv_gemm.c's cores; a transposed convolution runs as the
 * convolution whose adjoint it is) */
typedef struct {
    int n, cin, h, w;   /* conv input (N,Cin,H,W) */
    int cout, kh, kw;   /* weight (Cout,Cin,KH,KW) */
    int sh, sw, pt, pl; /* stride, top/left pad (bottom/right implied by ho, wo) */
    int ho, wo;         /* conv output (N,Cout,Ho,Wo) */
} conv_geom;

/* conv_dnnl.c: the convolutions oneDNN runs (when built with it): cpu_dnnl_conv returns false
 * for one it does not take (then the GEMM path runs); kind 0 fwd, 1 bwd data, 2 bwd filter */
size_t cpu_dnnl_ws_bytes(const conv_geom *g);
bool cpu_dnnl_conv(ebmc_ctx_t *ctx, const conv_geom *g, int kind, const float *in1, const float *in2,
                   float *out, float beta, ebmc_status *st);
void cpu_dnnl_fini(ebmc_ctx_t *ctx);
/* makes (and caches) the primitives of one convolution ahead of its first call */
void cpu_dnnl_prepare(ebmc_ctx_t *ctx, const conv_geom *g, int kind);

/* conv_gemm.c: the workspace a convolution op needs (im2col columns and output chunk) */
size_t cpu_conv_workspace_bytes(ebmc_ctx_t *ctx, ebmc_op op, const ebmc_conv_desc *d);
ebmc_status cpu_conv2d_fwd(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x, const float *w, float *y);
ebmc_status cpu_conv2d_bwd_data(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *dy, const float *w, float *dx, float beta);
ebmc_status cpu_conv2d_bwd_filter(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x, const float *dy, float *dw, float beta);
ebmc_status cpu_convt2d_fwd(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x, const float *w, float *y);
ebmc_status cpu_convt2d_bwd_data(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *dy, const float *w, float *dx, float beta);
ebmc_status cpu_convt2d_bwd_filter(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x, const float *dy, float *dw, float beta);
ebmc_status cpu_linear_fwd(ebmc_ctx_t *ctx, const ebmc_linear_desc *d, const float *x, const float *w, const float *b, float *y);
ebmc_status cpu_linear_bwd_data(ebmc_ctx_t *ctx, const ebmc_linear_desc *d, const float *dy, const float *w, float *dx, float beta);
ebmc_status cpu_linear_bwd_filter(ebmc_ctx_t *ctx, const ebmc_linear_desc *d, const float *x, const float *dy, float *dw, float *db, float beta);

/* jarzynski_cpu.c: the weighted-walker ops and the Gaussian-mixture energy */
ebmc_status cpu_jz_logw(ebmc_ctx_t *ctx, const ebmc_jz_logw_desc *d, const float *x, const float *x_new, const float *u_old, const float *g_old, const float *u_new, const float *g_new, double *logw);
ebmc_status cpu_jz_stats(ebmc_ctx_t *ctx, const ebmc_jz_stats_desc *d, const double *logw, double *stats, float *w);
ebmc_status cpu_jz_resample(ebmc_ctx_t *ctx, const ebmc_jz_resample_desc *d, double *logw, double *stats, double *cdf, int32_t *idx);
ebmc_status cpu_gmm_eval(ebmc_ctx_t *ctx, const ebmc_gmm_desc *d, const float *x, const float *means, const float *z, float *u, float *grad, float *resp);
ebmc_status cpu_gmm_pgrad(ebmc_ctx_t *ctx, const ebmc_gmm_desc *d, const float *x, const float *means, const float *resp, const float *w, float *gmeans, float *gz);
/* particle_ops.c: the particle-dynamics ops */
ebmc_status cpu_pswish_fwd(ebmc_ctx_t *ctx, const ebmc_pswish_desc *d, const float *x, const float *b, float *y);
ebmc_status cpu_pswish_bwd(ebmc_ctx_t *ctx, const ebmc_pswish_desc *d, const float *x, const float *b, const float *dy, float *dx, float *db, float beta_dx, float beta_param);
ebmc_status cpu_gbase_fwd(ebmc_ctx_t *ctx, const ebmc_gbase_desc *d, const float *x, const float *mu, const float *logstd, float *y);
ebmc_status cpu_gbase_bwd(ebmc_ctx_t *ctx, const ebmc_gbase_desc *d, const float *x, const float *mu, const float *logstd, const float *dy, float *dx, float *dmu, float *dlogstd, float beta_dx, float beta_param);
ebmc_status cpu_rows_copy(ebmc_ctx_t *ctx, const ebmc_rows_desc *d, const float *x, const int32_t *src, const int32_t *dst, float *y);
/* cpu_eval_ops.c: Inception-v3's inference layers */
ebmc_status cpu_pool2d_fwd(ebmc_ctx_t *ctx, const ebmc_pool_desc *d, const float *x, float *y);
ebmc_status cpu_resize_fwd(ebmc_ctx_t *ctx, const ebmc_resize_desc *d, const float *x, float *y);
ebmc_status cpu_chan_copy(ebmc_ctx_t *ctx, const ebmc_chan_copy_desc *d, const float *x, float *y);

#pragma GCC visibility pop

#endif
