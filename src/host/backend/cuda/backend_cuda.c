/* CUDA backend: the op table (ebmc_cuda_ops) over cuDNN (convolutions: conv_cudnn.c), cuBLAS
 * (linear) and the kernels of src/kernels/; the context's init/fini, memory and workspace. Graph
 * capture is graph.c, device and build information device.c, the profiler window profiler.c;
 * cuda_internal.h is what they share.
 *
 * State lives in ctx->priv (cuda_priv): the device ordinal, one non-blocking stream, the cuDNN
 * and cuBLAS handles bound to it (cuBLAS with a fixed workspace), the convolution plan cache and
 * the graph-capture state. Nothing global.
 *
 * Samplers (Langevin, rng, reparam, replay, gauss_nll, the step counter) are the kernels of
 * src/kernels/sampler.cu, value for value the CPU reference's. Graphs: graph_begin/graph_end
 * capture the context's stream (cudaStreamCaptureModeThreadLocal); during a capture the memory
 * calls (alloc, free, host<->device copy, sync) and workspace growth refuse with a message and
 * make graph_end fail (graph.c). */
#include "backend/cuda/cuda_internal.h"
#include "ebmc/comm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "adam.h"
#include "batchnorm.h"
#include "elementwise.h"
#include "pool.h"
#include "reduce.h"
#include "sampler.h"
#include "spectral.h"
#include "chanscale.h"
#include "upsample.h"

/* ---------------------------------------------------------------------------------------- */
/* init / fini / memory                                                                     */

/* Releases a fully initialised priv (fini); init's own failure path tears down softly. */
static void cuda_release(cuda_priv *p) {
    if (!p) return;
    cuda_graphs_release(p); /* an open capture, deferred frees, graphs, retired workspaces */
    cuda_conv_plans_release(p);
    if (p->cublas) CUBLAS_CHECK(cublasDestroy(p->cublas));
    if (p->cublas_ws) CUDA_CHECK(cudaFree(p->cublas_ws));
    if (p->cudnn) CUDNN_CHECK(cudnnDestroy(p->cudnn));
    if (p->stream) CUDA_CHECK(cudaStreamDestroy(p->stream));
    free(p);
}

/* Failures here are returned (EBMC_E_DEVICE + message), never fatal: AUTO falls back to the
 * CPU on a machine whose driver or libraries are broken. */
static ebmc_status cuda_init(ebmc_ctx_t *ctx) {
    const int dev = ctx->opts.device;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "no usable CUDA device: cudaGetDeviceCount: %s",
                               cudaGetErrorString(e));
    }
    if (count <= 0) return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "no CUDA device found");
    if (dev < 0 || dev >= count)
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE,
                               "CUDA device %d requested, but %d device(s) found (0..%d)", dev,
                               count, count - 1);
    const size_t cv = cudnnGetVersion();
    if (cv / 10000 != CUDNN_MAJOR)
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE,
                               "cuDNN %zu.%zu found at run time, but ebmc was built against %d.x",
                               cv / 10000, (cv % 10000) / 100, CUDNN_MAJOR);

    cuda_priv *p = calloc(1, sizeof *p);
    if (!p) return ebmc_ctx_seterr(ctx, EBMC_E_NOMEM, "CUDA context: out of host memory");
    p->device = dev;
    ebmc_status st = EBMC_E_DEVICE;
    cudnnStatus_t ds;
    cublasStatus_t bs;

    if ((e = cudaSetDevice(dev)) != cudaSuccess) {
        ebmc_ctx_seterr(ctx, st, "cudaSetDevice(%d): %s", dev, cudaGetErrorString(e));
        goto fail;
    }
    ebmc_fail_set_device(dev);
    if ((e = cudaStreamCreateWithFlags(&p->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        p->stream = NULL;
        ebmc_ctx_seterr(ctx, st, "cudaStreamCreateWithFlags on device %d: %s", dev,
                        cudaGetErrorString(e));
        goto fail;
    }
    if ((ds = cudnnCreate(&p->cudnn)) != CUDNN_STATUS_SUCCESS) {
        p->cudnn = NULL;
        ebmc_ctx_seterr(ctx, st, "cudnnCreate on device %d: %s", dev, cudnnGetErrorString(ds));
        goto fail;
    }
    if ((ds = cudnnSetStream(p->cudnn, p->stream)) != CUDNN_STATUS_SUCCESS) {
        ebmc_ctx_seterr(ctx, st, "cudnnSetStream: %s", cudnnGetErrorString(ds));
        goto fail;
    }
    if ((bs = cublasCreate(&p->cublas)) != CUBLAS_STATUS_SUCCESS) {
        p->cublas = NULL;
        ebmc_ctx_seterr(ctx, st, "cublasCreate on device %d: %s", dev, cublasGetStatusString(bs));
        goto fail;
    }
    if ((bs = cublasSetStream(p->cublas, p->stream)) != CUBLAS_STATUS_SUCCESS) {
        ebmc_ctx_seterr(ctx, st, "cublasSetStream: %s", cublasGetStatusString(bs));
        goto fail;
    }
    /* FP32 and TF32_CONV (PyTorch's default: matmuls strict): default math never lowers FP32
     * GEMMs to TF32; TF32: allow tensor cores. */
    const cublasMath_t mm = ctx->opts.precision == EBMC_PREC_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                  : CUBLAS_DEFAULT_MATH;
    if ((bs = cublasSetMathMode(p->cublas, mm)) != CUBLAS_STATUS_SUCCESS) {
        ebmc_ctx_seterr(ctx, st, "cublasSetMathMode: %s", cublasGetStatusString(bs));
        goto fail;
    }
    /* A fixed cuBLAS workspace, so that no GEMM allocates its own (in a captured graph that would
     * be an allocation inside the loop). Sizes as the cuBLAS documentation recommends: 32 MiB on
     * Hopper and newer, 4 MiB before. Set after cublasSetStream, which resets it. */
    {
        struct cudaDeviceProp prop;
        if ((e = cudaGetDeviceProperties(&prop, dev)) != cudaSuccess) {
            ebmc_ctx_seterr(ctx, st, "cudaGetDeviceProperties(%d): %s", dev,
                            cudaGetErrorString(e));
            goto fail;
        }
        p->cublas_ws_bytes = (size_t)(prop.major >= 9 ? 32 : 4) << 20;
        if ((e = cudaMalloc(&p->cublas_ws, p->cublas_ws_bytes)) != cudaSuccess) {
            p->cublas_ws = NULL;
            ebmc_ctx_seterr(ctx, e == cudaErrorMemoryAllocation ? EBMC_E_NOMEM : st,
                            "cudaMalloc of the %zu MiB cuBLAS workspace on device %d: %s",
                            p->cublas_ws_bytes >> 20, dev, cudaGetErrorString(e));
            st = e == cudaErrorMemoryAllocation ? EBMC_E_NOMEM : st;
            goto fail;
        }
        if ((bs = cublasSetWorkspace(p->cublas, p->cublas_ws, p->cublas_ws_bytes)) !=
            CUBLAS_STATUS_SUCCESS) {
            ebmc_ctx_seterr(ctx, st, "cublasSetWorkspace: %s", cublasGetStatusString(bs));
            goto fail;
        }
    }
    ctx->priv = p;
    return EBMC_OK;

fail:
    (void)cudaGetLastError();
    /* tear down without the fatal CHECK macros: the device may be the thing that is broken */
    if (p->cublas) (void)cublasDestroy(p->cublas);
    if (p->cublas_ws) (void)cudaFree(p->cublas_ws);
    if (p->cudnn) (void)cudnnDestroy(p->cudnn);
    if (p->stream) (void)cudaStreamDestroy(p->stream);
    free(p);
    (void)cudaGetLastError();
    return st;
}

static void cuda_fini(ebmc_ctx_t *ctx) {
    cuda_priv *p = cpriv(ctx);
    if (!p) return;
    cuda_bind(ctx);
    cuda_release(p);
    ctx->priv = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* memory: the calls that graph capture refuses (graph.c)                                   */

static ebmc_status cuda_alloc(ebmc_ctx_t *ctx, void **ptr, size_t bytes) {
    *ptr = NULL;
    if (bytes == 0) return EBMC_OK;
    cuda_bind(ctx);
    if (cuda_stream_capturing(cpriv(ctx)))
        return cuda_capture_refuse(ctx, EBMC_E_INVALID,
                                   "allocation of %zu bytes inside a graph capture (between "
                                   "ebmc_graph_begin and ebmc_graph_end): cudaMalloc may "
                                   "synchronise the device and is not part of the graph; allocate "
                                   "before capturing", bytes);
    cudaError_t e = cudaMalloc(ptr, bytes);
    if (e != cudaSuccess) {
        *ptr = NULL;
        (void)cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        return ebmc_ctx_seterr(ctx,
                               e == cudaErrorMemoryAllocation ? EBMC_E_NOMEM : EBMC_E_DEVICE,
                               "cudaMalloc(%zu bytes = %.1f MiB) on device %d: %s", bytes,
                               (double)bytes / (1024.0 * 1024.0), ctx->opts.device,
                               cudaGetErrorString(e));
    }
    return EBMC_OK;
}

/* Work queued on the context's stream may still use ptr (the workspace grows this way while
 * ops are in flight): wait for the stream first. cudaFree synchronises too, but a documented
 * wait on our own stream does not depend on that. Works without priv (after fini). */
static void cuda_free(ebmc_ctx_t *ctx, void *ptr) {
    if (!ptr) return;
    cuda_priv *p = ctx ? cpriv(ctx) : NULL;
    cuda_bind(ctx);
    if (cuda_stream_capturing(p)) {
        /* captured work may use ptr: release it after the capture, and fail the capture (a
         * graph whose memory is freed while it exists would be a dangling graph) */
        cuda_defer_free(p, ptr, false);
        (void)cuda_capture_refuse(ctx, EBMC_E_INVALID,
                                  "ebmc_free inside a graph capture (between ebmc_graph_begin "
                                  "and ebmc_graph_end): cudaFree synchronises the device; the "
                                  "memory is released after the capture ends");
        return;
    }
    /* the workspace growing (or the context being freed) while instantiated graphs live: they
     * may have captured its address, so it is kept until the last graph is freed */
    if (p && cuda_graphs_retain_workspace(ctx, ptr)) return;
    if (p && p->stream) CUDA_CHECK(cudaStreamSynchronize(p->stream));
    CUDA_CHECK(cudaFree(ptr));
}

static ebmc_status cuda_copy(ebmc_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                             ebmc_copy_kind kind) {
    if (bytes == 0) return EBMC_OK;
    cuda_priv *p = cpriv(ctx);
    cuda_bind(ctx);
    if (kind != EBMC_COPY_D2D && cuda_stream_capturing(p)) /* D2D is asynchronous: it is captured */
        return cuda_capture_refuse(ctx, EBMC_E_INVALID,
                                   "copy of %zu bytes %s inside a graph capture (between "
                                   "ebmc_graph_begin and ebmc_graph_end): a copy between host and "
                                   "device synchronises with the host; copy before or after the "
                                   "captured loop", bytes,
                                   kind == EBMC_COPY_H2D ? "host to device" : "device to host");
    enum cudaMemcpyKind k = kind == EBMC_COPY_H2D   ? cudaMemcpyHostToDevice
                            : kind == EBMC_COPY_D2H ? cudaMemcpyDeviceToHost
                                                    : cudaMemcpyDeviceToDevice;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, k, p->stream);
    if (e == cudaErrorInvalidValue) { /* wrong pointer kind or range: the caller's mistake */
        (void)cudaGetLastError();
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "copy of %zu bytes (%s): %s", bytes,
                               kind == EBMC_COPY_H2D   ? "host to device"
                               : kind == EBMC_COPY_D2H ? "device to host"
                                                       : "device to device",
                               cudaGetErrorString(e));
    }
    CUDA_CHECK(e);
    /* host buffers are safe to reuse (H2D) or read (D2H) on return */
    if (kind != EBMC_COPY_D2D) CUDA_CHECK(cudaStreamSynchronize(p->stream));
    return EBMC_OK;
}

static ebmc_status cuda_sync(ebmc_ctx_t *ctx) {
    cuda_bind(ctx);
    if (cuda_stream_capturing(cpriv(ctx)))
        return cuda_capture_refuse(ctx, EBMC_E_INVALID,
                                   "ebmc_sync inside a graph capture (between ebmc_graph_begin "
                                   "and ebmc_graph_end): the captured stream cannot synchronise "
                                   "with the host; synchronise after ebmc_graph_end or after the "
                                   "launch");
    CUDA_CHECK(cudaStreamSynchronize(cpriv(ctx)->stream));
    return EBMC_OK;
}

ebmc_status cuda_get_workspace(ebmc_ctx_t *ctx, size_t bytes, void **ws) {
    *ws = NULL;
    if (bytes == 0) return EBMC_OK;
    if (bytes > ctx->ws_bytes && cuda_stream_capturing(cpriv(ctx)))
        return cuda_capture_refuse(ctx, EBMC_E_WORKSPACE,
                                   "an op needs %zu bytes of workspace but %zu are reserved, "
                                   "inside a graph capture: growing the workspace would allocate "
                                   "and synchronise; reserve it before capturing "
                                   "(ebmc_tape_create does for a net's batch, else "
                                   "ebmc_ctx_reserve_workspace)",
                                   bytes, ctx->ws_bytes);
    return ebmc_ctx_workspace(ctx, bytes, ws);
}

/* ---------------------------------------------------------------------------------------- */
/* linear (cuBLAS, column-major: a row-major (r,c) matrix is a column-major (c,r) one)      */

/* y (N,OUT) = x (N,IN) W^T (+ b):  y^T (OUT,N) = op_T(W^T (IN,OUT)) x^T (IN,N) */
ebmc_status cuda_linear_fwd(ebmc_ctx_t *ctx, const ebmc_linear_desc *d, const float *x,
                            const float *w, const float *b, float *y) {
    cuda_priv *p = cpriv(ctx);
    const float one = 1.f, zero = 0.f;
    EBMC_NVTX_PUSH(__func__);
    CUBLAS_CHECK(cublasSgemm(p->cublas, CUBLAS_OP_T, CUBLAS_OP_N, d->out, d->n, d->in, &one, w,
                             d->in, x, d->in, &zero, y, d->out));
    if (b) bias_forward(b, y, d->n, d->out, 1, p->stream);
    EBMC_NVTX_POP();
    return EBMC_OK;
}

/* dx (N,IN) = dy (N,OUT) W (OUT,IN) + beta dx:  dx^T (IN,N) = W^T (IN,OUT) dy^T (OUT,N) */
ebmc_status cuda_linear_bwd_data(ebmc_ctx_t *ctx, const ebmc_linear_desc *d,
                                 const float *dy, const float *w, float *dx, float beta) {
    cuda_priv *p = cpriv(ctx);
    const float one = 1.f;
    EBMC_NVTX_PUSH(__func__);
    CUBLAS_CHECK(cublasSgemm(p->cublas, CUBLAS_OP_N, CUBLAS_OP_N, d->in, d->n, d->out, &one, w,
                             d->in, dy, d->out, &beta, dx, d->in));
    EBMC_NVTX_POP();
    return EBMC_OK;
}

/* dW (OUT,IN) = dy^T (OUT,N) x (N,IN) + beta dW:  dW^T (IN,OUT) = x^T (IN,N) op_T(dy^T (OUT,N));
 * db (OUT) = column sums of dy + beta db (deterministic, bias_backward with HW = 1) */
ebmc_status cuda_linear_bwd_filter(ebmc_ctx_t *ctx, const ebmc_linear_desc *d,
                                   const float *x, const float *dy, float *dw, float *db,
                                   float beta) {
    cuda_priv *p = cpriv(ctx);
    const float one = 1.f;
    EBMC_NVTX_PUSH(__func__);
    if (dw)
        CUBLAS_CHECK(cublasSgemm(p->cublas, CUBLAS_OP_N, CUBLAS_OP_T, d->in, d->out, d->n, &one, x,
                                 d->in, dy, d->out, &beta, dw, d->in));
    if (db) bias_backward(dy, db, d->n, d->out, 1, beta, p->stream);
    EBMC_NVTX_POP();
    return EBMC_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* element-wise, normalisation, resampling, reductions, optimiser                           */

ebmc_status cuda_bias_fwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *b,
                          float *y) {
    bias_forward(b, y, d->n, d->c, (size_t)d->h * (size_t)d->w, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_bias_bwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *dy,
                          float *db, float beta) {
    bias_backward(dy, db, d->n, d->c, (size_t)d->h * (size_t)d->w, beta, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_chan_scale_fwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *x, const float *sc,
                                float *y) {
    chan_scale_forward(x, sc, y, d->n, d->c, (size_t)d->h * (size_t)d->w, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_chan_scale_bwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *x, const float *sc,
                                const float *dy, float *dx, float *ds, float beta_dx, float beta_s) {
    chan_scale_backward(x, sc, dy, dx, ds, d->n, d->c, (size_t)d->h * (size_t)d->w, beta_dx, beta_s,
                        cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_act_fwd(ebmc_ctx_t *ctx, const ebmc_act_desc *d, const float *x,
                         float *y) {
    activation_forward(d->kind, d->slope, x, y, d->count, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_act_bwd(ebmc_ctx_t *ctx, const ebmc_act_desc *d, const float *x,
                         const float *y, const float *dy, float *dx, float beta) {
    activation_backward(d->kind, d->slope, x, y, dy, dx, d->count, beta, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_bn_fwd(ebmc_ctx_t *ctx, const ebmc_bn_desc *d, const float *x,
                        const float *gamma, const float *beta, float *y, float *save_mean,
                        float *save_invstd, float *running_mean, float *running_var) {
    batchnorm_forward_train(x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var,
                            d->n, d->c, d->h, d->w, d->eps, d->momentum, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_bn_bwd(ebmc_ctx_t *ctx, const ebmc_bn_desc *d, const float *x,
                        const float *dy, const float *gamma, const float *save_mean,
                        const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                        float beta_dx, float beta_param) {
    batchnorm_backward(x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, d->n, d->c, d->h,
                       d->w, beta_dx, beta_param, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_sn_power(ebmc_ctx_t *ctx, const ebmc_sn_desc *d, const float *w, float *u,
                          float *v, float *sigma, float *w_sn) {
    void *ws = NULL;
    ebmc_status st = cuda_get_workspace(
        ctx, spectral_power_scratch_floats(d->rows, d->cols) * sizeof(float), &ws);
    if (st != EBMC_OK) return st;
    spectral_power_iteration(w, u, v, sigma, w_sn, d->rows, d->cols, d->n_power_iter, d->eps,
                             d->lower_bound, (float *)ws, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_sn_bwd(ebmc_ctx_t *ctx, const ebmc_sn_desc *d, const float *w,
                        const float *u, const float *v, const float *sigma,
                        const float *dw_sn, float *dw, float beta) {
    void *ws = NULL;
    ebmc_status st = cuda_get_workspace(
        ctx, spectral_backward_scratch_floats(d->rows, d->cols) * sizeof(float), &ws);
    if (st != EBMC_OK) return st;
    spectral_backward(w, u, v, sigma, dw_sn, dw, d->rows, d->cols, beta, d->lower_bound,
                      (float *)ws, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_upsample_fwd(ebmc_ctx_t *ctx, const ebmc_upsample_desc *d, const float *x,
                              float *y) {
    if (d->mode == EBMC_UPSAMPLE_NEAREST)
        upsample_forward_nearest2x(x, y, d->n, d->c, d->h, d->w, cpriv(ctx)->stream);
    else
        upsample_forward_bilinear2x(x, y, d->n, d->c, d->h, d->w, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_upsample_bwd(ebmc_ctx_t *ctx, const ebmc_upsample_desc *d,
                              const float *dy, float *dx, float beta) {
    if (d->mode == EBMC_UPSAMPLE_NEAREST)
        upsample_backward_nearest2x(dy, dx, d->n, d->c, d->h, d->w, beta, cpriv(ctx)->stream);
    else
        upsample_backward_bilinear2x(dy, dx, d->n, d->c, d->h, d->w, beta, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_avgpool2_fwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *x,
                              float *y) {
    avgpool2_forward(x, y, d->n, d->c, d->h, d->w, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_avgpool2_bwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *dy,
                              float *dx, float beta) {
    avgpool2_backward(dy, dx, d->n, d->c, d->h, d->w, beta, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_gpool_fwd(ebmc_ctx_t *ctx, const ebmc_gpool_desc *d, const float *x,
                           float *y) {
    gpool_forward(d->mode, x, y, d->n, d->c, d->h, d->w, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_gpool_bwd(ebmc_ctx_t *ctx, const ebmc_gpool_desc *d, const float *dy,
                           float *dx, float beta) {
    gpool_backward(d->mode, dy, dx, d->n, d->c, d->h, d->w, beta, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_axpby(ebmc_ctx_t *ctx, const ebmc_axpby_desc *d, const float *x,
                       float *y) {
    axpby_apply(d->a, x, d->b, y, d->count, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_fill(ebmc_ctx_t *ctx, const ebmc_fill_desc *d, float *y) {
    fill_apply(d->value, y, d->count, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_reduce(ebmc_ctx_t *ctx, const ebmc_reduce_desc *d, const float *x,
                        float *out) {
    void *ws = NULL;
    ebmc_status st =
        cuda_get_workspace(ctx, reduce_rows_scratch_floats(d->rows, d->cols) * sizeof(float), &ws);
    if (st != EBMC_OK) return st;
    reduce_rows(d->mode, x, out, d->rows, d->cols, d->beta, (float *)ws, cpriv(ctx)->stream);
    return EBMC_OK;
}

/* Hyper-parameters arrive in double (Python floats in torch.optim.Adam); the constants are
 * rounded to float as PyTorch's kernels receive them: b1, 1 - b1, b2, 1 - b2 each from the
 * double, and the bias corrections from the step in double. */
ebmc_status cuda_adam(ebmc_ctx_t *ctx, const ebmc_adam_desc *d, float *param,
                      const float *grad, float *m, float *v) {
    const double t = (double)d->step;
    const double bc1 = 1.0 - pow(d->beta1, t);
    const double bc2 = 1.0 - pow(d->beta2, t);
    const float step_size = (float)(d->lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    adam_update(param, grad, m, v, d->count, (float)d->beta1, (float)(1.0 - d->beta1),
                (float)d->beta2, (float)(1.0 - d->beta2), (float)d->eps, (float)d->weight_decay,
                step_size, bc2_sqrt, (float)d->clip_std, (float)d->clip_floor, (float)bc2, cpriv(ctx)->stream);
    return EBMC_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* samplers (src/kernels/sampler.cu): same values as backend_cpu.c, noise step read on device */

ebmc_status cuda_langevin(ebmc_ctx_t *ctx, const ebmc_langevin_desc *d, float *x,
                          const float *g) {
    sampler_langevin_step(d, x, g, ebmc_ctx_chain_base(ctx, d->n_chains), cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_rng(ebmc_ctx_t *ctx, const ebmc_rng_desc *d, float *y) {
    sampler_rng_fill(d, y, ebmc_ctx_chain_base(ctx, d->n_chains), cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_dropout(ebmc_ctx_t *ctx, const ebmc_dropout_desc *d, const float *x, float *y) {
    sampler_dropout(d, x, y, ebmc_ctx_chain_base(ctx, d->rows), cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_reparam(ebmc_ctx_t *ctx, const ebmc_reparam_desc *d, const float *mu,
                         const float *s, float *z) {
    sampler_reparam_sample(d, mu, s, z, ebmc_ctx_chain_base(ctx, d->n_chains), cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_scaled_diff(ebmc_ctx_t *ctx, const ebmc_scaled_diff_desc *d,
                             const float *a, const float *b, float *out) {
    sampler_scaled_diff(d, a, b, out, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_counter_add(ebmc_ctx_t *ctx, const ebmc_counter_desc *d,
                             uint32_t *counter) {
    sampler_counter_add(d->delta, counter, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_replay_sample(ebmc_ctx_t *ctx, const ebmc_replay_desc *d,
                               const void *buffer, float *x) {
    sampler_replay_sample(d, buffer, x, ebmc_ctx_chain_base(ctx, d->n_chains), cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_replay_push(ebmc_ctx_t *ctx, const ebmc_replay_desc *d, void *buffer,
                             const float *x) {
    sampler_replay_push(d, buffer, x, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_gauss_nll(ebmc_ctx_t *ctx, const ebmc_gauss_nll_desc *d, const float *z,
                           const float *mu, const float *s, float *loss, float *dmu,
                           float *ds) {
    sampler_gauss_nll(d, z, mu, s, loss, dmu, ds, cpriv(ctx)->stream);
    return EBMC_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* supports / workspace_size                                                                */

/* The wrappers validate descriptors before asking; convolutions are also planned here (cached),
 * so a shape cuDNN cannot run is reported as unsupported instead of failing later. Any other op
 * is supported when the table has an entry for it. */
static bool cuda_supports(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    if (!cpriv(ctx) || !desc) return false;
    cuda_bind(ctx); /* planning calls cuDNN on the context's handle */
    if (cuda_op_is_conv(op)) return cuda_conv_supports(ctx, op, desc);
    return ebmc_op_in_table(&ebmc_cuda_ops, op);
}

static size_t cuda_workspace_size(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    if (!cpriv(ctx) || !desc) return 0;
    cuda_bind(ctx);
    if (cuda_op_is_conv(op)) return cuda_conv_workspace_size(ctx, op, desc);
    switch (op) {
    case EBMC_OP_REDUCE: {
        const ebmc_reduce_desc *d = desc;
        return reduce_rows_scratch_floats(d->rows, d->cols) * sizeof(float);
    }
    case EBMC_OP_SN_POWER: {
        const ebmc_sn_desc *d = desc;
        return spectral_power_scratch_floats(d->rows, d->cols) * sizeof(float);
    }
    case EBMC_OP_SN_BWD: {
        const ebmc_sn_desc *d = desc;
        return spectral_backward_scratch_floats(d->rows, d->cols) * sizeof(float);
    }
    default: return 0;
    }
}

ebmc_status cuda_gauss_kl(ebmc_ctx_t *ctx, const ebmc_gauss_kl_desc *d, const float *mu,
                          const float *s, const float *eps, const float *dz, float *loss,
                          float *dmu, float *ds) {
    sampler_gauss_kl(d, mu, s, eps, dz, loss, dmu, ds, cpriv(ctx)->stream);
    return EBMC_OK;
}

/* ---------------------------------------------------------------------------------------- */

/* Every op of EBMC_OPS points at bound_<id>: the context's device made current (cuda_bind),
 * then its cuda_<id>. */
#define CUDA_BOUND_(OP, id, wrapper, desc, params, args, ...)                                      \
    static ebmc_status bound_##id(ebmc_ctx_t *ctx, const desc *d, EBMC_UNPAREN params) {        \
        cuda_bind(ctx);                                                                         \
        return cuda_##id(ctx, d, EBMC_UNPAREN args);                                            \
    }
EBMC_OPS(CUDA_BOUND_)
#undef CUDA_BOUND_

#define CUDA_ENTRY_(OP, id, ...) .id = bound_##id,
const ebmc_backend_ops ebmc_cuda_ops = {
    .name = "cuda",
    .init = cuda_init,
    .fini = cuda_fini,
    .supports = cuda_supports,
    .workspace_size = cuda_workspace_size,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .copy = cuda_copy,
    .sync = cuda_sync,
    EBMC_OPS(CUDA_ENTRY_)
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .profiler_start = ebmc_cuda_profiler_start,
    .profiler_stop = ebmc_cuda_profiler_stop,
};
#undef CUDA_ENTRY_
