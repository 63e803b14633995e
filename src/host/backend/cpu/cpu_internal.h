/* defines: the CPU backend's private pieces shared by backend_cpu.c (the op table and the
 * element-wise, normalisation, pooling and sampler ops) and conv_gemm.c (convolutions and linear
 * layers on SGEMM): the parallel-region threshold, beta blending, and the GEMM-backed ops. */
#ifndef EBMC_BACKEND_CPU_INTERNAL_H
#define EBMC_BACKEND_CPU_INTERNAL_H

#include "backend/ctx_internal.h"
#include <string.h>

#pragma GCC visibility push(hidden)

/* Loops over fewer elements than this run on one thread: a parallel region must carry enough
 * work (~0.1 ms) to pay for waking the team, and far more when the cores are shared with other
 * processes, where a region waits for its slowest, descheduled thread. */
enum { PAR_ELEMS = 1 << 18 };

/* out = v + beta*out without reading out when beta == 0 */
static inline float blend(float v, float beta, float old) { return beta == 0.0f ? v : v + beta * old; }

static inline void scale_or_zero(float *p, size_t n, float beta) {
    if (beta == 0.0f)
        memset(p, 0, n * sizeof(float));
    else if (beta != 1.0f)
        for (size_t i = 0; i < n; i++) p[i] *= beta;
}

/* conv_gemm.c: the workspace a convolution op needs (im2col columns and output chunk) */
size_t cpu_conv_workspace_bytes(const ebmc_conv_desc *d);
ebmc_status cpu_conv2d_fwd(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x, const float *w, float *y);
ebmc_status cpu_conv2d_bwd_data(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *dy, const float *w, float *dx, float beta);
ebmc_status cpu_conv2d_bwd_filter(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x, const float *dy, float *dw, float beta);
ebmc_status cpu_convt2d_fwd(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x, const float *w, float *y);
ebmc_status cpu_convt2d_bwd_data(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *dy, const float *w, float *dx, float beta);
ebmc_status cpu_convt2d_bwd_filter(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x, const float *dy, float *dw, float beta);
ebmc_status cpu_linear_fwd(ebmc_ctx_t *ctx, const ebmc_linear_desc *d, const float *x, const float *w, const float *b, float *y);
ebmc_status cpu_linear_bwd_data(ebmc_ctx_t *ctx, const ebmc_linear_desc *d, const float *dy, const float *w, float *dx, float beta);
ebmc_status cpu_linear_bwd_filter(ebmc_ctx_t *ctx, const ebmc_linear_desc *d, const float *x, const float *dy, float *dw, float *db, float beta);

/* cpu_eval_ops.c: Inception-v3's inference layers */
ebmc_status cpu_pool2d_fwd(ebmc_ctx_t *ctx, const ebmc_pool_desc *d, const float *x, float *y);
ebmc_status cpu_resize_fwd(ebmc_ctx_t *ctx, const ebmc_resize_desc *d, const float *x, float *y);
ebmc_status cpu_chan_copy(ebmc_ctx_t *ctx, const ebmc_chan_copy_desc *d, const float *x, float *y);

#pragma GCC visibility pop

#endif
