/* CUDA backend: the op table (ebmc_cuda_ops) over cuDNN (convolutions, legacy API), cuBLAS
 * (linear) and the kernels of src/kernels/. Also ebmc_cuda_device_count, ebmc_print_build_info
 * and the cuBLAS/cuRAND status strings used by cuda_check.h.
 *
 * State lives in ctx->priv (cuda_priv): the device ordinal, one non-blocking stream, the cuDNN
 * and cuBLAS handles bound to it (cuBLAS with a fixed workspace), the convolution plan cache and
 * the graph-capture state. Nothing global.
 *
 * Samplers (Langevin, rng, reparam, replay, gauss_nll, the step counter) are the kernels of
 * src/kernels/sampler.cu, value for value the CPU reference's. Graphs: graph_begin/graph_end
 * capture the context's stream (cudaStreamCaptureModeThreadLocal); during a capture the memory
 * calls (alloc, free, host<->device copy, sync) and workspace growth refuse with a message and
 * make graph_end fail (see "capture guards" and "graphs" below).
 *
 * Convolutions. Every conv/transposed-conv op is run as one cuDNN call on a convolution "P":
 *   conv2d fwd / bwd-data / bwd-filter     -> P = the descriptor's convolution,
 *                                             cudnnConvolutionForward / BackwardData / Filter
 *   convt2d fwd      -> BackwardData of P   with P the convolution whose adjoint the transposed
 *   convt2d bwd-data -> Forward of P        conv is: input (N,Cout,Ho,Wo), weight (Cin,Cout,KH,KW)
 *   convt2d bwd-filt -> BackwardFilter of P read as a conv weight (K=Cin, C=Cout), output
 *                       (input = dy,        (N,Cin,H,W), pads top pad_t, bottom pad_b-out_pad_h,
 *                        grad-out = x)      left pad_l, right pad_r-out_pad_w.
 * cuDNN pads symmetrically and not negatively, so P's pads (t,b,l,r) are split into a symmetric
 * part ph = max(0, min(t,b)) that cuDNN applies and an explicit remainder (t-ph top, b-ph bottom;
 * a negative remainder crops) applied by pad2d_copy into the workspace: forward/bwd-filter pad
 * the input before the call, bwd-data computes the gradient of the padded input in the
 * workspace and crops it back (adding beta*dx). Symmetric non-negative pads take the native path
 * with no copy. A plan (descriptors, algorithm, workspace bytes, the geometry above) is built
 * once per (op, descriptor, precision, determinism) and cached in priv. */
#include "backend/ctx_internal.h"
#include "backend/cuda_check.h"
#include "ebmc/backend.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <curand.h>
#include <library_types.h>

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "adam.h"
#include "batchnorm.h"
#include "elementwise.h"
#include "pad.h"
#include "pool.h"
#include "reduce.h"
#include "sampler.h"
#include "spectral.h"
#include "upsample.h"

/* cuDNN algorithms asking for more workspace than this are skipped (a faster algorithm is not
 * worth a gigabyte of device memory on every plan). */
#define CONV_MAX_ALGO_WS ((size_t)1 << 30)
/* workspace sub-buffers start on 256-byte boundaries (cudaMalloc's alignment) */
#define WS_ALIGN(b) (((b) + (size_t)255) & ~(size_t)255)
#define PERF_MAX 16

/* ---------------------------------------------------------------------------------------- */
/* state                                                                                    */

typedef enum { CONV_FWD = 0, CONV_BWD_DATA = 1, CONV_BWD_FILTER = 2 } conv_kind;

typedef struct {
    int op;                     /* ebmc_op */
    ebmc_conv_desc d;           /* compared field by field (conv_key_eq) */
    int precision;              /* ebmc_precision */
    int deterministic;
} conv_key;

typedef struct {
    conv_key key;
    conv_kind kind;             /* the cuDNN call */
    /* P: input (n,c,h,w), filter (k,c,kh,kw), stride (sh,sw), output (n,k,ho,wo). cuDNN sees
     * the input as (n,c,hp,wp) = X shifted down/right by (off_top,off_left), zero-filled or
     * cropped, with symmetric pads (ph,pw). */
    int n, c, h, w, k, kh, kw, sh, sw;
    int hp, wp, off_top, off_left, ph, pw, ho, wo;
    bool explicit_pad;          /* (hp,wp,off_top,off_left) != (h,w,0,0): pad2d_copy needed */
    size_t pad_bytes;           /* the (n,c,hp,wp) buffer in the workspace; 0 if native */
    size_t algo_bytes;          /* cuDNN workspace of algo */
    int algo;                   /* cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
    cudnnMathType_t math;       /* set on cd; FP32: always CUDNN_FMA_MATH */
    cudnnTensorDescriptor_t xd; /* (n,c,hp,wp) */
    cudnnTensorDescriptor_t yd; /* (n,k,ho,wo) */
    cudnnFilterDescriptor_t wd; /* (k,c,kh,kw) */
    cudnnConvolutionDescriptor_t cd;
} conv_plan;

/* An instantiated graph (graph_end hands out `exec`) and the graph it came from. */
typedef struct {
    cudaGraphExec_t exec;
    cudaGraph_t graph;
} graph_entry;

/* Something released while a capture was running, released after it ends. */
typedef struct {
    void *ptr;                  /* device memory, or a graph_entry's exec when is_graph */
    bool is_graph;
} deferred_free;

typedef struct {
    int device;
    cudaStream_t stream;        /* non-blocking; every op of the context runs on it */
    cudnnHandle_t cudnn;        /* bound to stream */
    cublasHandle_t cublas;      /* bound to stream, with the fixed workspace below */
    void *cublas_ws;            /* cuBLAS workspace (so GEMMs never allocate, also in graphs) */
    size_t cublas_ws_bytes;
    conv_plan **plans;          /* plan cache, n_plans entries, linear search */
    int n_plans, cap_plans;
    /* graph capture (see "graphs" below) */
    bool capturing;             /* between graph_begin and graph_end */
    char capture_err[512];      /* the first call that broke the running capture ("" if none) */
    deferred_free *deferred;    /* frees asked for during the capture */
    int n_deferred, cap_deferred;
    graph_entry *graphs;        /* live instantiated graphs */
    int n_graphs, cap_graphs;
    void **retired;             /* old workspaces kept while graphs that may use them live */
    int n_retired, cap_retired;
} cuda_priv;

static cuda_priv *cpriv(const ebmc_ctx_t *ctx) { return (cuda_priv *)ctx->priv; }

/* ---------------------------------------------------------------------------------------- */
/* status strings, device count, build info                                                 */

const char *ebmc_cublas_status_str(int status) {
    return cublasGetStatusString((cublasStatus_t)status);
}

const char *ebmc_curand_status_str(int status) {
    switch ((curandStatus_t)status) {
    case CURAND_STATUS_SUCCESS: return "CURAND_STATUS_SUCCESS";
    case CURAND_STATUS_VERSION_MISMATCH: return "CURAND_STATUS_VERSION_MISMATCH";
    case CURAND_STATUS_NOT_INITIALIZED: return "CURAND_STATUS_NOT_INITIALIZED";
    case CURAND_STATUS_ALLOCATION_FAILED: return "CURAND_STATUS_ALLOCATION_FAILED";
    case CURAND_STATUS_TYPE_ERROR: return "CURAND_STATUS_TYPE_ERROR";
    case CURAND_STATUS_OUT_OF_RANGE: return "CURAND_STATUS_OUT_OF_RANGE";
    case CURAND_STATUS_LENGTH_NOT_MULTIPLE: return "CURAND_STATUS_LENGTH_NOT_MULTIPLE";
    case CURAND_STATUS_DOUBLE_PRECISION_REQUIRED: return "CURAND_STATUS_DOUBLE_PRECISION_REQUIRED";
    case CURAND_STATUS_LAUNCH_FAILURE: return "CURAND_STATUS_LAUNCH_FAILURE";
    case CURAND_STATUS_PREEXISTING_FAILURE: return "CURAND_STATUS_PREEXISTING_FAILURE";
    case CURAND_STATUS_INITIALIZATION_FAILED: return "CURAND_STATUS_INITIALIZATION_FAILED";
    case CURAND_STATUS_ARCH_MISMATCH: return "CURAND_STATUS_ARCH_MISMATCH";
    case CURAND_STATUS_INTERNAL_ERROR: return "CURAND_STATUS_INTERNAL_ERROR";
    default: break;
    }
    return "unknown cuRAND status";
}

int ebmc_cuda_device_count(void) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* do not leave the error for a later check to find */
        return 0;
    }
    return n > 0 ? n : 0;
}

static void print_cuda_version(FILE *f, const char *what, int v) {
    /* CUDA encodes 1000*major + 10*minor */
    if (v <= 0)
        fprintf(f, "%s: none\n", what);
    else
        fprintf(f, "%s: %d.%d\n", what, v / 1000, (v % 1000) / 10);
}

void ebmc_print_build_info(FILE *f) {
    fprintf(f, "ebmc %s\n", EBMC_VERSION_STRING);
#if defined(__clang__)
    fprintf(f, "C compiler: clang %s\n", __clang_version__);
#elif defined(__GNUC__)
    fprintf(f, "C compiler: gcc %s\n", __VERSION__);
#else
    fprintf(f, "C compiler: unknown\n");
#endif
#ifdef _OPENMP
    fprintf(f, "OpenMP: %d (max threads %d)\n", _OPENMP, omp_get_max_threads());
#else
    fprintf(f, "OpenMP: not built\n");
#endif
    fprintf(f, "CUDA backend: built\n");
    print_cuda_version(f, "CUDA runtime (built against)", CUDART_VERSION);
    int rt = 0, drv = 0;
    if (cudaRuntimeGetVersion(&rt) != cudaSuccess) rt = 0;
    print_cuda_version(f, "CUDA runtime (found)", rt);
    if (cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0;
    print_cuda_version(f, "CUDA driver (supports up to)", drv);
    (void)cudaGetLastError();

    const size_t cv = cudnnGetVersion(); /* 10000*major + 100*minor + patch since cuDNN 9 */
    fprintf(f, "cuDNN: built against %d.%d.%d, found %zu.%zu.%zu\n", CUDNN_MAJOR, CUDNN_MINOR,
            CUDNN_PATCHLEVEL, cv / 10000, (cv % 10000) / 100, cv % 100);
    int bmaj = 0, bmin = 0, bpat = 0;
    if (cublasGetProperty(MAJOR_VERSION, &bmaj) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(MINOR_VERSION, &bmin) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(PATCH_LEVEL, &bpat) == CUBLAS_STATUS_SUCCESS)
        fprintf(f, "cuBLAS: %d.%d.%d\n", bmaj, bmin, bpat);
    else
        fprintf(f, "cuBLAS: version unavailable\n");
    int rv = 0;
    if (curandGetVersion(&rv) == CURAND_STATUS_SUCCESS)
        fprintf(f, "cuRAND: %d (%d.%d.%d)\n", rv, rv / 1000, (rv % 1000) / 100, rv % 100);
    else
        fprintf(f, "cuRAND: version unavailable\n");

    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        count = 0;
    }
    char first[256] = "";
    for (int i = 0; i < count; i++) {
        struct cudaDeviceProp prop;
        cudaError_t pe = cudaGetDeviceProperties(&prop, i);
        if (pe != cudaSuccess) {
            (void)cudaGetLastError();
            fprintf(f, "device %d: properties unavailable (%s)\n", i, cudaGetErrorString(pe));
            continue;
        }
        fprintf(f, "device %d: %s, compute capability %d.%d, %.1f GiB, %d SMs\n", i, prop.name,
                prop.major, prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
                prop.multiProcessorCount);
        if (i == 0) snprintf(first, sizeof first, "%s", prop.name);
    }
    if (count > 0)
        fprintf(f, "backend: cuda (device 0: %s)\n", first);
    else if (e != cudaSuccess)
        fprintf(f, "backend: cpu (no CUDA device: %s)\n", cudaGetErrorString(e));
    else
        fprintf(f, "backend: cpu (no CUDA device: cudaGetDeviceCount found none)\n");
}

/* ---------------------------------------------------------------------------------------- */
/* init / fini / memory                                                                     */

static void conv_plan_destroy(conv_plan *pl) {
    if (!pl) return;
    /* destroy calls on valid descriptors cannot fail short of a corrupted cuDNN; checked anyway */
    if (pl->xd) CUDNN_CHECK(cudnnDestroyTensorDescriptor(pl->xd));
    if (pl->yd) CUDNN_CHECK(cudnnDestroyTensorDescriptor(pl->yd));
    if (pl->wd) CUDNN_CHECK(cudnnDestroyFilterDescriptor(pl->wd));
    if (pl->cd) CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(pl->cd));
    free(pl);
}

/* Index of the live graph whose exec is `exec`, or -1. */
static int graph_find(const cuda_priv *p, const void *exec) {
    for (int i = 0; i < p->n_graphs; i++)
        if ((const void *)p->graphs[i].exec == exec) return i;
    return -1;
}

/* Destroys live graph i (the stream must not be running it: callers synchronise first). With
 * the last graph gone, the workspaces retired while graphs lived are released too. */
static void graph_destroy_at(cuda_priv *p, int i) {
    CUDA_CHECK(cudaGraphExecDestroy(p->graphs[i].exec));
    CUDA_CHECK(cudaGraphDestroy(p->graphs[i].graph));
    p->graphs[i] = p->graphs[--p->n_graphs];
    if (p->n_graphs == 0) {
        for (int k = 0; k < p->n_retired; k++) CUDA_CHECK(cudaFree(p->retired[k]));
        p->n_retired = 0;
    }
}

/* Remembers something freed during a capture, to release once it has ended. */
static void defer_free(cuda_priv *p, void *ptr, bool is_graph) {
    if (p->n_deferred == p->cap_deferred) {
        const int cap = p->cap_deferred ? 2 * p->cap_deferred : 8;
        deferred_free *nd = realloc(p->deferred, (size_t)cap * sizeof *nd);
        if (!nd) ebmc_fail("realloc", "out of host memory", __func__, __FILE__, __LINE__);
        p->deferred = nd;
        p->cap_deferred = cap;
    }
    p->deferred[p->n_deferred++] = (deferred_free){ptr, is_graph};
}

/* Releases what was freed during a capture; the capture has ended and the stream is idle. */
static void deferred_flush(cuda_priv *p) {
    for (int i = 0; i < p->n_deferred; i++) {
        if (p->deferred[i].is_graph) {
            const int g = graph_find(p, p->deferred[i].ptr);
            if (g >= 0) graph_destroy_at(p, g);
        } else {
            CUDA_CHECK(cudaFree(p->deferred[i].ptr));
        }
    }
    p->n_deferred = 0;
}

/* Releases a fully initialised priv (fini); init's own failure path tears down softly. */
static void cuda_release(cuda_priv *p) {
    if (!p) return;
    if (p->capturing) { /* a capture left open: end it (the stream cannot sync while capturing) */
        cudaGraph_t g = NULL;
        if (cudaStreamEndCapture(p->stream, &g) == cudaSuccess && g) (void)cudaGraphDestroy(g);
        (void)cudaGetLastError();
        p->capturing = false;
    }
    if (p->stream) CUDA_CHECK(cudaStreamSynchronize(p->stream));
    deferred_flush(p);
    free(p->deferred);
    while (p->n_graphs > 0) graph_destroy_at(p, p->n_graphs - 1); /* and the retired workspaces */
    free(p->graphs);
    free(p->retired);
    for (int i = 0; i < p->n_plans; i++) conv_plan_destroy(p->plans[i]);
    free(p->plans);
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
    /* FP32: default math never lowers FP32 GEMMs to TF32; TF32: allow tensor cores. */
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
    cuda_release(p);
    ctx->priv = NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* capture guards                                                                           */
/* Between graph_begin and graph_end nothing may allocate or synchronise with the host: such a
 * call would either be refused by CUDA (and invalidate the capture) or, worse, run now instead
 * of in the graph. The memory calls below detect a capture on the context's stream and refuse,
 * with a message; the first refusal is remembered and makes graph_end fail with it, so a caller
 * that ignores the status still cannot get a graph with a hole in it. */

/* True while the context's stream is being captured (cudaStreamIsCapturing: active, or already
 * invalidated by an illegal call), or graph_begin's own flag says so. */
static bool stream_capturing(const cuda_priv *p) {
    if (!p || !p->stream) return false;
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(p->stream, &cs) != cudaSuccess) {
        (void)cudaGetLastError();
        return p->capturing;
    }
    return cs != cudaStreamCaptureStatusNone || p->capturing;
}

/* Sets the context's error, remembers the first such error of the running capture, returns st. */
static ebmc_status capture_refuse(ebmc_ctx_t *ctx, ebmc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ebmc_status capture_refuse(ebmc_ctx_t *ctx, ebmc_status st, const char *fmt, ...) {
    cuda_priv *p = cpriv(ctx);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p && !p->capture_err[0]) snprintf(p->capture_err, sizeof p->capture_err, "%s", msg);
    return ebmc_ctx_seterr(ctx, st, "%s", msg);
}

static ebmc_status cuda_alloc(ebmc_ctx_t *ctx, void **ptr, size_t bytes) {
    *ptr = NULL;
    if (bytes == 0) return EBMC_OK;
    if (stream_capturing(cpriv(ctx)))
        return capture_refuse(ctx, EBMC_E_INVALID,
                              "allocation of %zu bytes inside a graph capture (between "
                              "ebmc_graph_begin and ebmc_graph_end): cudaMalloc may synchronise "
                              "the device and is not part of the graph; allocate before capturing",
                              bytes);
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
    if (stream_capturing(p)) {
        /* captured work may use ptr: release it after the capture, and fail the capture (a
         * graph whose memory is freed while it exists would be a dangling graph) */
        defer_free(p, ptr, false);
        (void)capture_refuse(ctx, EBMC_E_INVALID,
                             "ebmc_free inside a graph capture (between ebmc_graph_begin and "
                             "ebmc_graph_end): cudaFree synchronises the device; the memory is "
                             "released after the capture ends");
        return;
    }
    if (p && p->n_graphs > 0 && ptr == ctx->workspace) {
        /* the workspace is growing (or the context is being freed) while instantiated graphs
         * live: they may have captured its address, so a replay would write to freed memory.
         * Keep it until the last graph is freed (graph_destroy_at). */
        if (p->n_retired == p->cap_retired) {
            const int cap = p->cap_retired ? 2 * p->cap_retired : 4;
            void **nr = realloc(p->retired, (size_t)cap * sizeof *nr);
            if (!nr) ebmc_fail("realloc", "out of host memory", __func__, __FILE__, __LINE__);
            p->retired = nr;
            p->cap_retired = cap;
        }
        p->retired[p->n_retired++] = ptr;
        return;
    }
    if (p && p->stream) CUDA_CHECK(cudaStreamSynchronize(p->stream));
    CUDA_CHECK(cudaFree(ptr));
}

static ebmc_status cuda_copy(ebmc_ctx_t *ctx, void *dst, const void *src, size_t bytes,
                             ebmc_copy_kind kind) {
    if (bytes == 0) return EBMC_OK;
    cuda_priv *p = cpriv(ctx);
    if (kind != EBMC_COPY_D2D && stream_capturing(p)) /* D2D is asynchronous: it is captured */
        return capture_refuse(ctx, EBMC_E_INVALID,
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
    if (stream_capturing(cpriv(ctx)))
        return capture_refuse(ctx, EBMC_E_INVALID,
                              "ebmc_sync inside a graph capture (between ebmc_graph_begin and "
                              "ebmc_graph_end): the captured stream cannot synchronise with the "
                              "host; synchronise after ebmc_graph_end or after the launch");
    CUDA_CHECK(cudaStreamSynchronize(cpriv(ctx)->stream));
    return EBMC_OK;
}

/* A workspace of `bytes` (NULL when 0). Growing it allocates and synchronises: refused during a
 * capture (the workspace must be planned before: ebmc_tape_create reserves a net's). */
static ebmc_status get_workspace(ebmc_ctx_t *ctx, size_t bytes, void **ws) {
    *ws = NULL;
    if (bytes == 0) return EBMC_OK;
    if (bytes > ctx->ws_bytes && stream_capturing(cpriv(ctx)))
        return capture_refuse(ctx, EBMC_E_WORKSPACE,
                              "an op needs %zu bytes of workspace but %zu are reserved, inside a "
                              "graph capture: growing the workspace would allocate and "
                              "synchronise; reserve it before capturing (ebmc_tape_create does "
                              "for a net's batch, else ebmc_ctx_reserve_workspace)",
                              bytes, ctx->ws_bytes);
    return ebmc_ctx_workspace(ctx, bytes, ws);
}

/* ---------------------------------------------------------------------------------------- */
/* convolution plans                                                                        */

static bool op_is_convt(ebmc_op op) {
    return op == EBMC_OP_CONVT2D_FWD || op == EBMC_OP_CONVT2D_BWD_DATA ||
           op == EBMC_OP_CONVT2D_BWD_FILTER;
}

static bool op_is_conv(ebmc_op op) {
    return op == EBMC_OP_CONV2D_FWD || op == EBMC_OP_CONV2D_BWD_DATA ||
           op == EBMC_OP_CONV2D_BWD_FILTER || op_is_convt(op);
}

static bool conv_key_eq(const conv_key *a, const conv_key *b) {
    const ebmc_conv_desc *x = &a->d, *y = &b->d;
    return a->op == b->op && a->precision == b->precision &&
           a->deterministic == b->deterministic && x->n == y->n && x->c_in == y->c_in &&
           x->h == y->h && x->w == y->w && x->c_out == y->c_out && x->kh == y->kh &&
           x->kw == y->kw && x->stride_h == y->stride_h && x->stride_w == y->stride_w &&
           x->pad_t == y->pad_t && x->pad_b == y->pad_b && x->pad_l == y->pad_l &&
           x->pad_r == y->pad_r && x->out_pad_h == y->out_pad_h && x->out_pad_w == y->out_pad_w &&
           x->transposed == y->transposed && x->has_bias == y->has_bias;
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* Fills the geometry of pl (everything but the cuDNN objects) from (op, d). */
static ebmc_status conv_geometry(ebmc_op op, const ebmc_conv_desc *d, conv_plan *pl, char *err,
                                 size_t errlen) {
    int t, b, l, r;
    if (d->n < 1 || d->c_in < 1 || d->c_out < 1 || d->h < 1 || d->w < 1 || d->kh < 1 ||
        d->kw < 1 || d->stride_h < 1 || d->stride_w < 1) {
        snprintf(err, errlen, "non-positive size in the descriptor");
        return EBMC_E_INVALID;
    }
    if (!op_is_convt(op)) {
        pl->n = d->n, pl->c = d->c_in, pl->h = d->h, pl->w = d->w, pl->k = d->c_out;
        t = d->pad_t, b = d->pad_b, l = d->pad_l, r = d->pad_r;
    } else {
        /* P's input is the transposed conv's output (N,Cout,Ho,Wo) */
        const long long ho = (long long)(d->h - 1) * d->stride_h - d->pad_t - d->pad_b + d->kh +
                             d->out_pad_h;
        const long long wo = (long long)(d->w - 1) * d->stride_w - d->pad_l - d->pad_r + d->kw +
                             d->out_pad_w;
        if (ho < 1 || wo < 1 || ho > INT_MAX || wo > INT_MAX) {
            snprintf(err, errlen, "transposed convolution output %lldx%lld is empty or too large",
                     ho, wo);
            return EBMC_E_INVALID;
        }
        pl->n = d->n, pl->c = d->c_out, pl->h = (int)ho, pl->w = (int)wo, pl->k = d->c_in;
        t = d->pad_t, b = d->pad_b - d->out_pad_h, l = d->pad_l, r = d->pad_r - d->out_pad_w;
    }
    pl->kind = (op == EBMC_OP_CONV2D_FWD || op == EBMC_OP_CONVT2D_BWD_DATA) ? CONV_FWD
               : (op == EBMC_OP_CONV2D_BWD_DATA || op == EBMC_OP_CONVT2D_FWD) ? CONV_BWD_DATA
                                                                               : CONV_BWD_FILTER;
    pl->kh = d->kh, pl->kw = d->kw, pl->sh = d->stride_h, pl->sw = d->stride_w;
    pl->ph = imax(0, imin(t, b));
    pl->pw = imax(0, imin(l, r));
    pl->off_top = t - pl->ph;
    pl->off_left = l - pl->pw;
    const long long hp = (long long)pl->h + (t - pl->ph) + (b - pl->ph);
    const long long wp = (long long)pl->w + (l - pl->pw) + (r - pl->pw);
    if (hp < 1 || wp < 1 || hp > INT_MAX || wp > INT_MAX) {
        snprintf(err, errlen, "padded input %lldx%lld is empty or too large", hp, wp);
        return EBMC_E_INVALID;
    }
    pl->hp = (int)hp, pl->wp = (int)wp;
    if (hp + 2LL * pl->ph < pl->kh || wp + 2LL * pl->pw < pl->kw) {
        snprintf(err, errlen, "kernel %dx%d larger than the padded input %lldx%lld", pl->kh,
                 pl->kw, hp + 2LL * pl->ph, wp + 2LL * pl->pw);
        return EBMC_E_INVALID;
    }
    pl->ho = (int)((hp + 2LL * pl->ph - pl->kh) / pl->sh + 1);
    pl->wo = (int)((wp + 2LL * pl->pw - pl->kw) / pl->sw + 1);
    if (op_is_convt(op) && (pl->ho != d->h || pl->wo != d->w)) {
        /* cannot happen for a valid descriptor (the division above is exact); a guard */
        snprintf(err, errlen,
                 "transposed convolution geometry: equivalent convolution gives %dx%d, not %dx%d",
                 pl->ho, pl->wo, d->h, d->w);
        return EBMC_E_INVALID;
    }
    pl->explicit_pad =
        pl->hp != pl->h || pl->wp != pl->w || pl->off_top != 0 || pl->off_left != 0;
    /* legacy cuDNN tensors hold fewer than 2^31 elements */
    const double xs = (double)pl->n * pl->c * pl->hp * pl->wp;
    const double ys = (double)pl->n * pl->k * pl->ho * pl->wo;
    const double ws = (double)pl->k * pl->c * pl->kh * pl->kw;
    const double xs0 = (double)pl->n * pl->c * pl->h * pl->w;
    if (xs > INT_MAX || ys > INT_MAX || ws > INT_MAX || xs0 > INT_MAX) {
        snprintf(err, errlen, "tensor of 2^31 elements or more (cuDNN's legacy API limit)");
        return EBMC_E_UNSUPPORTED;
    }
    pl->pad_bytes = pl->explicit_pad ? (size_t)xs * sizeof(float) : 0;
    return EBMC_OK;
}

static bool math_ok(cudnnMathType_t m, ebmc_precision prec) {
    if (prec == EBMC_PREC_FP32) return m == CUDNN_FMA_MATH; /* never TF32 tensor cores */
    return m != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;    /* never down-convert to fp16 */
}

#define PLAN_TRY(call)                                                                          \
    do {                                                                                        \
        cudnnStatus_t s_ = (call);                                                              \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                                       \
            snprintf(err, errlen, "%s: %s", #call, cudnnGetErrorString(s_));                    \
            return EBMC_E_UNSUPPORTED;                                                          \
        }                                                                                       \
    } while (0)

/* Picks the algorithm: the first heuristic result (cuDNN's v7 heuristics, fastest first) that
 * succeeded, is deterministic when asked, has an acceptable math type and a workspace within
 * CONV_MAX_ALGO_WS; else the first of a short list of classic deterministic algorithms that
 * cuDNN accepts for this problem. Sets pl->algo, pl->math (also on cd), pl->algo_bytes. */
static ebmc_status conv_choose_algo(cudnnHandle_t h, conv_plan *pl, ebmc_precision prec, bool det,
                                    char *err, size_t errlen) {
    const cudnnMathType_t base = prec == EBMC_PREC_FP32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
    int req = 0, got = 0;
    size_t ws = 0;
    switch (pl->kind) {
    case CONV_FWD: {
        cudnnConvolutionFwdAlgoPerf_t perf[PERF_MAX];
        PLAN_TRY(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &req));
        req = imax(1, imin(req, PERF_MAX));
        PLAN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(h, pl->xd, pl->wd, pl->cd, pl->yd, req,
                                                        &got, perf));
        for (int i = 0; i < got; i++) {
            if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
            if (det && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
            if (!math_ok(perf[i].mathType, prec) || perf[i].memory > CONV_MAX_ALGO_WS) continue;
            PLAN_TRY(cudnnSetConvolutionMathType(pl->cd, perf[i].mathType));
            if (cudnnGetConvolutionForwardWorkspaceSize(h, pl->xd, pl->wd, pl->cd, pl->yd,
                                                        perf[i].algo, &ws) != CUDNN_STATUS_SUCCESS)
                continue;
            pl->algo = (int)perf[i].algo, pl->math = perf[i].mathType, pl->algo_bytes = ws;
            return EBMC_OK;
        }
        static const cudnnConvolutionFwdAlgo_t fallback[] = {
            CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM,
            CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM};
        PLAN_TRY(cudnnSetConvolutionMathType(pl->cd, base));
        for (size_t i = 0; i < sizeof fallback / sizeof fallback[0]; i++) {
            if (cudnnGetConvolutionForwardWorkspaceSize(h, pl->xd, pl->wd, pl->cd, pl->yd,
                                                        fallback[i], &ws) != CUDNN_STATUS_SUCCESS)
                continue;
            pl->algo = (int)fallback[i], pl->math = base, pl->algo_bytes = ws;
            return EBMC_OK;
        }
        break;
    }
    case CONV_BWD_DATA: {
        cudnnConvolutionBwdDataAlgoPerf_t perf[PERF_MAX];
        PLAN_TRY(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &req));
        req = imax(1, imin(req, PERF_MAX));
        PLAN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, pl->wd, pl->yd, pl->cd, pl->xd,
                                                             req, &got, perf));
        for (int i = 0; i < got; i++) {
            if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
            if (det && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
            if (!math_ok(perf[i].mathType, prec) || perf[i].memory > CONV_MAX_ALGO_WS) continue;
            PLAN_TRY(cudnnSetConvolutionMathType(pl->cd, perf[i].mathType));
            if (cudnnGetConvolutionBackwardDataWorkspaceSize(h, pl->wd, pl->yd, pl->cd, pl->xd,
                                                             perf[i].algo,
                                                             &ws) != CUDNN_STATUS_SUCCESS)
                continue;
            pl->algo = (int)perf[i].algo, pl->math = perf[i].mathType, pl->algo_bytes = ws;
            return EBMC_OK;
        }
        PLAN_TRY(cudnnSetConvolutionMathType(pl->cd, base));
        if (cudnnGetConvolutionBackwardDataWorkspaceSize(h, pl->wd, pl->yd, pl->cd, pl->xd,
                                                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                                                         &ws) == CUDNN_STATUS_SUCCESS) {
            pl->algo = (int)CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, pl->math = base;
            pl->algo_bytes = ws;
            return EBMC_OK;
        }
        break;
    }
    case CONV_BWD_FILTER: {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[PERF_MAX];
        PLAN_TRY(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &req));
        req = imax(1, imin(req, PERF_MAX));
        PLAN_TRY(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, pl->xd, pl->yd, pl->cd, pl->wd,
                                                               req, &got, perf));
        for (int i = 0; i < got; i++) {
            if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
            if (det && perf[i].determinism != CUDNN_DETERMINISTIC) continue;
            if (!math_ok(perf[i].mathType, prec) || perf[i].memory > CONV_MAX_ALGO_WS) continue;
            PLAN_TRY(cudnnSetConvolutionMathType(pl->cd, perf[i].mathType));
            if (cudnnGetConvolutionBackwardFilterWorkspaceSize(h, pl->xd, pl->yd, pl->cd, pl->wd,
                                                               perf[i].algo,
                                                               &ws) != CUDNN_STATUS_SUCCESS)
                continue;
            pl->algo = (int)perf[i].algo, pl->math = perf[i].mathType, pl->algo_bytes = ws;
            return EBMC_OK;
        }
        PLAN_TRY(cudnnSetConvolutionMathType(pl->cd, base));
        if (cudnnGetConvolutionBackwardFilterWorkspaceSize(h, pl->xd, pl->yd, pl->cd, pl->wd,
                                                           CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
                                                           &ws) == CUDNN_STATUS_SUCCESS) {
            pl->algo = (int)CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, pl->math = base;
            pl->algo_bytes = ws;
            return EBMC_OK;
        }
        break;
    }
    }
    snprintf(err, errlen, "cuDNN offers no %s%s algorithm for this shape",
             det ? "deterministic " : "", prec == EBMC_PREC_FP32 ? "FP32 (FMA math)" : "FP32/TF32");
    return EBMC_E_UNSUPPORTED;
}

/* Creates the cuDNN objects of a plan whose geometry is filled, and chooses its algorithm.
 * Failures are returned (planning runs inside supports()); pl keeps what was created so that
 * conv_plan_destroy releases it. */
static ebmc_status conv_plan_build(cudnnHandle_t h, conv_plan *pl, ebmc_precision prec, bool det,
                                   char *err, size_t errlen) {
    PLAN_TRY(cudnnCreateTensorDescriptor(&pl->xd));
    PLAN_TRY(cudnnCreateTensorDescriptor(&pl->yd));
    PLAN_TRY(cudnnCreateFilterDescriptor(&pl->wd));
    PLAN_TRY(cudnnCreateConvolutionDescriptor(&pl->cd));
    PLAN_TRY(cudnnSetTensor4dDescriptor(pl->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, pl->n, pl->c,
                                        pl->hp, pl->wp));
    PLAN_TRY(cudnnSetFilter4dDescriptor(pl->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, pl->k, pl->c,
                                        pl->kh, pl->kw));
    PLAN_TRY(cudnnSetConvolution2dDescriptor(pl->cd, pl->ph, pl->pw, pl->sh, pl->sw, 1, 1,
                                             CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    PLAN_TRY(cudnnSetConvolutionMathType(
        pl->cd, prec == EBMC_PREC_FP32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
    int on = 0, oc = 0, oh = 0, ow = 0;
    PLAN_TRY(cudnnGetConvolution2dForwardOutputDim(pl->cd, pl->xd, pl->wd, &on, &oc, &oh, &ow));
    if (on != pl->n || oc != pl->k || oh != pl->ho || ow != pl->wo) {
        snprintf(err, errlen, "cuDNN output (%d,%d,%d,%d) differs from the expected (%d,%d,%d,%d)",
                 on, oc, oh, ow, pl->n, pl->k, pl->ho, pl->wo);
        return EBMC_E_INVALID;
    }
    PLAN_TRY(cudnnSetTensor4dDescriptor(pl->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, pl->n, pl->k,
                                        pl->ho, pl->wo));
    return conv_choose_algo(h, pl, prec, det, err, errlen);
}

/* The cached plan of (op, d) under the context's precision and determinism; built on first use.
 * Takes priv and opts (not the context) so that the const supports()/workspace_size() can plan. */
static ebmc_status conv_plan_get(cuda_priv *p, const ebmc_ctx_opts *o, ebmc_op op,
                                 const ebmc_conv_desc *d, const conv_plan **out, char *err,
                                 size_t errlen) {
    conv_key key;
    memset(&key, 0, sizeof key);
    key.op = (int)op;
    key.d = *d;
    key.precision = (int)o->precision;
    key.deterministic = o->deterministic ? 1 : 0;
    for (int i = 0; i < p->n_plans; i++)
        if (conv_key_eq(&p->plans[i]->key, &key)) {
            *out = p->plans[i];
            return EBMC_OK;
        }
    if (d->transposed != (op_is_convt(op) ? 1 : 0)) {
        snprintf(err, errlen, "descriptor has transposed=%d for %s", d->transposed,
                 ebmc_op_name(op));
        return EBMC_E_INVALID;
    }
    conv_plan *pl = calloc(1, sizeof *pl);
    if (!pl) {
        snprintf(err, errlen, "out of host memory for a convolution plan");
        return EBMC_E_NOMEM;
    }
    pl->key = key;
    ebmc_status st = conv_geometry(op, d, pl, err, errlen);
    if (st == EBMC_OK) {
        /* A shape first seen inside a graph capture (e.g. a chain run on fewer chains than its
         * tape was planned for) is planned here, during the capture. cuDNN's heuristic queries
         * run on the host and enqueue nothing on the stream, but are not documented as
         * capture-safe: this thread's capture mode is relaxed around them, so that an internal
         * "potentially unsafe" call cannot invalidate the capture. (Its workspace must still fit:
         * get_workspace refuses to grow during a capture.) */
        const bool relax = stream_capturing(p);
        enum cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
        if (relax) CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
        st = conv_plan_build(p->cudnn, pl, o->precision, o->deterministic, err, errlen);
        if (relax) CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode)); /* restores it */
    }
    if (st == EBMC_OK && p->n_plans == p->cap_plans) {
        const int cap = p->cap_plans ? 2 * p->cap_plans : 16;
        conv_plan **np = realloc(p->plans, (size_t)cap * sizeof *np);
        if (!np) {
            snprintf(err, errlen, "out of host memory for the plan cache");
            st = EBMC_E_NOMEM;
        } else {
            p->plans = np;
            p->cap_plans = cap;
        }
    }
    if (st != EBMC_OK) {
        conv_plan_destroy(pl);
        return st;
    }
    p->plans[p->n_plans++] = pl;
    *out = pl;
    return EBMC_OK;
}

static size_t conv_plan_ws(const conv_plan *pl) {
    return (pl->explicit_pad ? WS_ALIGN(pl->pad_bytes) : 0) + pl->algo_bytes;
}

/* Runs P's cuDNN call:
 *   CONV_FWD:        a = X (n,c,h,w),  b = W (k,c,kh,kw),  out = Y (n,k,ho,wo)   = conv + beta*out
 *   CONV_BWD_DATA:   a = dY (n,k,ho,wo), b = W,            out = dX (n,c,h,w)    = adj + beta*out
 *   CONV_BWD_FILTER: a = X,            b = dY,             out = dW (k,c,kh,kw)  = corr + beta*out
 * beta == 0 never reads out (cuDNN documents that it does not read the output then). */
static ebmc_status conv_exec(ebmc_ctx_t *ctx, ebmc_op op, const ebmc_conv_desc *d, const float *a,
                             const float *b, float *out, float beta) {
    cuda_priv *p = cpriv(ctx);
    const conv_plan *pl = NULL;
    char err[512];
    ebmc_status st = conv_plan_get(p, &ctx->opts, op, d, &pl, err, sizeof err);
    if (st != EBMC_OK) return ebmc_ctx_seterr(ctx, st, "%s: %s", ebmc_op_name(op), err);
    void *ws = NULL;
    st = get_workspace(ctx, conv_plan_ws(pl), &ws);
    if (st != EBMC_OK) return st;
    float *xp = pl->explicit_pad ? (float *)ws : NULL; /* (n,c,hp,wp) */
    void *algo_ws = pl->algo_bytes ? (char *)ws + (pl->explicit_pad ? WS_ALIGN(pl->pad_bytes) : 0)
                                   : NULL;
    const int nc = pl->n * pl->c;
    const float one = 1.f, zero = 0.f;
    EBMC_NVTX_PUSH(ebmc_op_name(op));
    switch (pl->kind) {
    case CONV_FWD: {
        const float *x = a;
        if (pl->explicit_pad) {
            pad2d_copy(a, nc, pl->h, pl->w, xp, pl->hp, pl->wp, pl->off_top, pl->off_left,
                       0.f, p->stream);
            x = xp;
        }
        CUDNN_CHECK(cudnnConvolutionForward(p->cudnn, &one, pl->xd, x, pl->wd, b, pl->cd,
                                            (cudnnConvolutionFwdAlgo_t)pl->algo, algo_ws,
                                            pl->algo_bytes, &beta, pl->yd, out));
        break;
    }
    case CONV_BWD_DATA:
        if (pl->explicit_pad) {
            CUDNN_CHECK(cudnnConvolutionBackwardData(p->cudnn, &one, pl->wd, b, pl->yd, a, pl->cd,
                                                     (cudnnConvolutionBwdDataAlgo_t)pl->algo,
                                                     algo_ws, pl->algo_bytes, &zero, pl->xd, xp));
            /* crop (or zero-extend) the padded input's gradient back:
             * dX[i,j] = dXp[i+off_top, j+off_left] + beta*dX[i,j] */
            pad2d_copy(xp, nc, pl->hp, pl->wp, out, pl->h, pl->w, -pl->off_top, -pl->off_left,
                       beta, p->stream);
        } else {
            CUDNN_CHECK(cudnnConvolutionBackwardData(p->cudnn, &one, pl->wd, b, pl->yd, a, pl->cd,
                                                     (cudnnConvolutionBwdDataAlgo_t)pl->algo,
                                                     algo_ws, pl->algo_bytes, &beta, pl->xd, out));
        }
        break;
    case CONV_BWD_FILTER: {
        const float *x = a;
        if (pl->explicit_pad) {
            pad2d_copy(a, nc, pl->h, pl->w, xp, pl->hp, pl->wp, pl->off_top, pl->off_left,
                       0.f, p->stream);
            x = xp;
        }
        CUDNN_CHECK(cudnnConvolutionBackwardFilter(p->cudnn, &one, pl->xd, x, pl->yd, b, pl->cd,
                                                   (cudnnConvolutionBwdFilterAlgo_t)pl->algo,
                                                   algo_ws, pl->algo_bytes, &beta, pl->wd, out));
        break;
    }
    }
    EBMC_NVTX_POP();
    return EBMC_OK;
}

/* conv2d: P is the descriptor's convolution */
static ebmc_status cuda_conv2d_fwd(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x,
                                   const float *w, float *y) {
    return conv_exec(ctx, EBMC_OP_CONV2D_FWD, d, x, w, y, 0.f);
}
static ebmc_status cuda_conv2d_bwd_data(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *dy,
                                        const float *w, float *dx, float beta) {
    return conv_exec(ctx, EBMC_OP_CONV2D_BWD_DATA, d, dy, w, dx, beta);
}
static ebmc_status cuda_conv2d_bwd_filter(ebmc_ctx_t *ctx, const ebmc_conv_desc *d,
                                          const float *x, const float *dy, float *dw, float beta) {
    return conv_exec(ctx, EBMC_OP_CONV2D_BWD_FILTER, d, x, dy, dw, beta);
}
/* transposed: x (N,Cin,H,W) is P's output side, y (N,Cout,Ho,Wo) P's input side */
static ebmc_status cuda_convt2d_fwd(ebmc_ctx_t *ctx, const ebmc_conv_desc *d, const float *x,
                                    const float *w, float *y) {
    return conv_exec(ctx, EBMC_OP_CONVT2D_FWD, d, x, w, y, 0.f); /* P bwd-data, dY = x */
}
static ebmc_status cuda_convt2d_bwd_data(ebmc_ctx_t *ctx, const ebmc_conv_desc *d,
                                         const float *dy, const float *w, float *dx, float beta) {
    return conv_exec(ctx, EBMC_OP_CONVT2D_BWD_DATA, d, dy, w, dx, beta); /* P fwd, X = dy */
}
static ebmc_status cuda_convt2d_bwd_filter(ebmc_ctx_t *ctx, const ebmc_conv_desc *d,
                                           const float *x, const float *dy, float *dw,
                                           float beta) {
    /* P bwd-filter with P's input = dy and P's output gradient = x */
    return conv_exec(ctx, EBMC_OP_CONVT2D_BWD_FILTER, d, dy, x, dw, beta);
}

/* ---------------------------------------------------------------------------------------- */
/* linear (cuBLAS, column-major: a row-major (r,c) matrix is a column-major (c,r) one)      */

/* y (N,OUT) = x (N,IN) W^T (+ b):  y^T (OUT,N) = op_T(W^T (IN,OUT)) x^T (IN,N) */
static ebmc_status cuda_linear_fwd(ebmc_ctx_t *ctx, const ebmc_linear_desc *d, const float *x,
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
static ebmc_status cuda_linear_bwd_data(ebmc_ctx_t *ctx, const ebmc_linear_desc *d,
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
static ebmc_status cuda_linear_bwd_filter(ebmc_ctx_t *ctx, const ebmc_linear_desc *d,
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

static ebmc_status cuda_bias_fwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *b,
                                 float *y) {
    bias_forward(b, y, d->n, d->c, (size_t)d->h * (size_t)d->w, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_bias_bwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *dy,
                                 float *db, float beta) {
    bias_backward(dy, db, d->n, d->c, (size_t)d->h * (size_t)d->w, beta, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_act_fwd(ebmc_ctx_t *ctx, const ebmc_act_desc *d, const float *x,
                                float *y) {
    activation_forward(d->kind, d->slope, x, y, d->count, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_act_bwd(ebmc_ctx_t *ctx, const ebmc_act_desc *d, const float *x,
                                const float *y, const float *dy, float *dx, float beta) {
    activation_backward(d->kind, d->slope, x, y, dy, dx, d->count, beta, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_bn_fwd(ebmc_ctx_t *ctx, const ebmc_bn_desc *d, const float *x,
                               const float *gamma, const float *beta, float *y, float *save_mean,
                               float *save_invstd, float *running_mean, float *running_var) {
    batchnorm_forward_train(x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var,
                            d->n, d->c, d->h, d->w, d->eps, d->momentum, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_bn_bwd(ebmc_ctx_t *ctx, const ebmc_bn_desc *d, const float *x,
                               const float *dy, const float *gamma, const float *save_mean,
                               const float *save_invstd, float *dx, float *dgamma, float *dbeta,
                               float beta_dx, float beta_param) {
    batchnorm_backward(x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, d->n, d->c, d->h,
                       d->w, beta_dx, beta_param, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_sn_power(ebmc_ctx_t *ctx, const ebmc_sn_desc *d, const float *w, float *u,
                                 float *v, float *sigma, float *w_sn) {
    void *ws = NULL;
    ebmc_status st =
        get_workspace(ctx, spectral_power_scratch_floats(d->rows, d->cols) * sizeof(float), &ws);
    if (st != EBMC_OK) return st;
    spectral_power_iteration(w, u, v, sigma, w_sn, d->rows, d->cols, d->n_power_iter, d->eps,
                             (float *)ws, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_sn_bwd(ebmc_ctx_t *ctx, const ebmc_sn_desc *d, const float *w,
                               const float *u, const float *v, const float *sigma,
                               const float *dw_sn, float *dw, float beta) {
    void *ws = NULL;
    ebmc_status st = get_workspace(
        ctx, spectral_backward_scratch_floats(d->rows, d->cols) * sizeof(float), &ws);
    if (st != EBMC_OK) return st;
    spectral_backward(w, u, v, sigma, dw_sn, dw, d->rows, d->cols, beta, (float *)ws,
                      cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_upsample_fwd(ebmc_ctx_t *ctx, const ebmc_upsample_desc *d, const float *x,
                                     float *y) {
    if (d->mode == EBMC_UPSAMPLE_NEAREST)
        upsample_forward_nearest2x(x, y, d->n, d->c, d->h, d->w, cpriv(ctx)->stream);
    else
        upsample_forward_bilinear2x(x, y, d->n, d->c, d->h, d->w, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_upsample_bwd(ebmc_ctx_t *ctx, const ebmc_upsample_desc *d,
                                     const float *dy, float *dx, float beta) {
    if (d->mode == EBMC_UPSAMPLE_NEAREST)
        upsample_backward_nearest2x(dy, dx, d->n, d->c, d->h, d->w, beta, cpriv(ctx)->stream);
    else
        upsample_backward_bilinear2x(dy, dx, d->n, d->c, d->h, d->w, beta, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_avgpool2_fwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *x,
                                     float *y) {
    avgpool2_forward(x, y, d->n, d->c, d->h, d->w, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_avgpool2_bwd(ebmc_ctx_t *ctx, const ebmc_t4_desc *d, const float *dy,
                                     float *dx, float beta) {
    avgpool2_backward(dy, dx, d->n, d->c, d->h, d->w, beta, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_gpool_fwd(ebmc_ctx_t *ctx, const ebmc_gpool_desc *d, const float *x,
                                  float *y) {
    gpool_forward(d->mode, x, y, d->n, d->c, d->h, d->w, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_gpool_bwd(ebmc_ctx_t *ctx, const ebmc_gpool_desc *d, const float *dy,
                                  float *dx, float beta) {
    gpool_backward(d->mode, dy, dx, d->n, d->c, d->h, d->w, beta, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_axpby(ebmc_ctx_t *ctx, const ebmc_axpby_desc *d, const float *x,
                              float *y) {
    axpby_apply(d->a, x, d->b, y, d->count, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_fill(ebmc_ctx_t *ctx, const ebmc_fill_desc *d, float *y) {
    fill_apply(d->value, y, d->count, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_reduce(ebmc_ctx_t *ctx, const ebmc_reduce_desc *d, const float *x,
                               float *out) {
    void *ws = NULL;
    ebmc_status st =
        get_workspace(ctx, reduce_rows_scratch_floats(d->rows, d->cols) * sizeof(float), &ws);
    if (st != EBMC_OK) return st;
    reduce_rows(d->mode, x, out, d->rows, d->cols, d->beta, (float *)ws, cpriv(ctx)->stream);
    return EBMC_OK;
}

/* Hyper-parameters arrive in double (Python floats in torch.optim.Adam); the constants are
 * rounded to float as PyTorch's kernels receive them: b1, 1 - b1, b2, 1 - b2 each from the
 * double, and the bias corrections from the step in double. */
static ebmc_status cuda_adam(ebmc_ctx_t *ctx, const ebmc_adam_desc *d, float *param,
                             const float *grad, float *m, float *v) {
    const double t = (double)d->step;
    const double bc1 = 1.0 - pow(d->beta1, t);
    const double bc2 = 1.0 - pow(d->beta2, t);
    const float step_size = (float)(d->lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    adam_update(param, grad, m, v, d->count, (float)d->beta1, (float)(1.0 - d->beta1),
                (float)d->beta2, (float)(1.0 - d->beta2), (float)d->eps, (float)d->weight_decay,
                step_size, bc2_sqrt, cpriv(ctx)->stream);
    return EBMC_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* samplers (src/kernels/sampler.cu): same values as backend_cpu.c, noise step read on device */

static ebmc_status cuda_langevin(ebmc_ctx_t *ctx, const ebmc_langevin_desc *d, float *x,
                                 const float *g) {
    sampler_langevin_step(d, x, g, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_rng(ebmc_ctx_t *ctx, const ebmc_rng_desc *d, float *y) {
    sampler_rng_fill(d, y, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_reparam(ebmc_ctx_t *ctx, const ebmc_reparam_desc *d, const float *mu,
                                const float *s, float *z) {
    sampler_reparam_sample(d, mu, s, z, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_scaled_diff(ebmc_ctx_t *ctx, const ebmc_scaled_diff_desc *d,
                                    const float *a, const float *b, float *out) {
    sampler_scaled_diff(d, a, b, out, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_counter_add(ebmc_ctx_t *ctx, const ebmc_counter_desc *d,
                                    uint32_t *counter) {
    sampler_counter_add(d->delta, counter, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_replay_sample(ebmc_ctx_t *ctx, const ebmc_replay_desc *d,
                                      const void *buffer, float *x) {
    sampler_replay_sample(d, buffer, x, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_replay_push(ebmc_ctx_t *ctx, const ebmc_replay_desc *d, void *buffer,
                                    const float *x) {
    sampler_replay_push(d, buffer, x, cpriv(ctx)->stream);
    return EBMC_OK;
}

static ebmc_status cuda_gauss_nll(ebmc_ctx_t *ctx, const ebmc_gauss_nll_desc *d, const float *z,
                                  const float *mu, const float *s, float *loss, float *dmu,
                                  float *ds) {
    sampler_gauss_nll(d, z, mu, s, loss, dmu, ds, cpriv(ctx)->stream);
    return EBMC_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* graphs: stream capture of an op sequence, replayed with one launch                       */
/*
 * Mode: cudaStreamCaptureModeThreadLocal. In it CUDA refuses "potentially unsafe" calls
 * (cudaMalloc, synchronous copies, cudaStreamSynchronize, ...) made by the capturing thread and
 * invalidates the capture, so a host synchronisation in the captured loop cannot silently
 * produce a graph without it: graph_end then fails. Global mode would refuse the same calls in
 * every other thread of the process too, while any capture runs, making an unrelated thread
 * (a data loader, another context's evaluation) fail for reasons it cannot know; Relaxed would
 * refuse nothing. One context is driven by one thread, so the capturing thread is the one to
 * police. On top of CUDA's check, ebmc's own memory calls refuse first with a message naming
 * the call (capture_refuse), and the first refusal makes graph_end fail even when CUDA itself
 * saw nothing wrong (a refused ebmc_copy never reached CUDA).
 *
 * graph_end returns the cudaGraphExec_t as the opaque handle; the cudaGraph_t it was
 * instantiated from is kept beside it (priv->graphs) and freed with it. */

static ebmc_status cuda_graph_begin(ebmc_ctx_t *ctx) {
    cuda_priv *p = cpriv(ctx);
    if (p->capturing)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID,
                               "graph_begin: a graph capture is already running on this "
                               "context (call ebmc_graph_end first)");
    cudaError_t e = cudaStreamBeginCapture(p->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "cudaStreamBeginCapture: %s",
                               cudaGetErrorString(e));
    }
    p->capturing = true;
    p->capture_err[0] = 0;
    return EBMC_OK;
}

static ebmc_status cuda_graph_end(ebmc_ctx_t *ctx, void **graph) {
    cuda_priv *p = cpriv(ctx);
    *graph = NULL;
    if (!p->capturing)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "graph_end without graph_begin");
    cudaGraph_t g = NULL;
    const cudaError_t e = cudaStreamEndCapture(p->stream, &g); /* leaves capture mode always */
    p->capturing = false;
    (void)cudaGetLastError(); /* an invalidated capture is reported below, not left sticky */
    if (p->n_deferred) { /* what was freed during the capture, now that the stream may sync */
        CUDA_CHECK(cudaStreamSynchronize(p->stream));
        deferred_flush(p);
    }
    if (p->capture_err[0] || e != cudaSuccess || !g) {
        if (g) CUDA_CHECK(cudaGraphDestroy(g));
        if (p->capture_err[0])
            return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE,
                                   "graph capture failed: something in the captured loop "
                                   "synchronised with the host or allocated: %s",
                                   p->capture_err);
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE,
                               "graph capture failed: cudaStreamEndCapture: %s (%s): something in "
                               "the captured loop synchronised with the host or made a call that "
                               "is illegal during stream capture (run the loop eagerly to find it)",
                               cudaGetErrorName(e), cudaGetErrorString(e));
    }
    cudaGraphExec_t exec = NULL;
    const cudaError_t ie = cudaGraphInstantiate(&exec, g, 0);
    if (ie != cudaSuccess) {
        (void)cudaGetLastError();
        CUDA_CHECK(cudaGraphDestroy(g));
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "cudaGraphInstantiate: %s",
                               cudaGetErrorString(ie));
    }
    if (p->n_graphs == p->cap_graphs) {
        const int cap = p->cap_graphs ? 2 * p->cap_graphs : 8;
        graph_entry *ng = realloc(p->graphs, (size_t)cap * sizeof *ng);
        if (!ng) {
            CUDA_CHECK(cudaGraphExecDestroy(exec));
            CUDA_CHECK(cudaGraphDestroy(g));
            return ebmc_ctx_seterr(ctx, EBMC_E_NOMEM, "graph_end: out of host memory");
        }
        p->graphs = ng;
        p->cap_graphs = cap;
    }
    p->graphs[p->n_graphs++] = (graph_entry){exec, g};
    *graph = (void *)exec;
    return EBMC_OK;
}

static ebmc_status cuda_graph_launch(ebmc_ctx_t *ctx, void *graph) {
    cuda_priv *p = cpriv(ctx);
    if (graph_find(p, graph) < 0)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "graph_launch: %p is not a live graph of "
                               "this context", graph);
    if (p->capturing)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID,
                               "graph_launch inside a graph capture is not supported");
    const cudaError_t e = cudaGraphLaunch((cudaGraphExec_t)graph, p->stream);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "cudaGraphLaunch: %s", cudaGetErrorString(e));
    }
    return EBMC_OK;
}

static void cuda_graph_free(ebmc_ctx_t *ctx, void *graph) {
    cuda_priv *p = cpriv(ctx);
    if (!p || !graph) return;
    const int i = graph_find(p, graph);
    if (i < 0) return; /* not ours, or already freed */
    if (p->capturing) { /* no synchronisation now: destroyed when the capture ends */
        defer_free(p, graph, true);
        return;
    }
    CUDA_CHECK(cudaStreamSynchronize(p->stream)); /* a launch of it may still be running */
    graph_destroy_at(p, i);
}

/* ---------------------------------------------------------------------------------------- */
/* supports / workspace_size                                                                */

/* The wrappers validate descriptors before asking; convolutions are also planned here (cached),
 * so a shape cuDNN cannot run is reported as unsupported instead of failing later. Ops are
 * listed one by one: an op added to the table later is unsupported until implemented here. */
static bool cuda_supports(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    cuda_priv *p = cpriv(ctx);
    if (!p || !desc) return false;
    switch (op) {
    case EBMC_OP_CONV2D_FWD:
    case EBMC_OP_CONV2D_BWD_DATA:
    case EBMC_OP_CONV2D_BWD_FILTER:
    case EBMC_OP_CONVT2D_FWD:
    case EBMC_OP_CONVT2D_BWD_DATA:
    case EBMC_OP_CONVT2D_BWD_FILTER: {
        const conv_plan *pl = NULL;
        char err[512];
        return conv_plan_get(p, &ctx->opts, op, (const ebmc_conv_desc *)desc, &pl, err,
                             sizeof err) == EBMC_OK;
    }
    case EBMC_OP_LINEAR_FWD:
    case EBMC_OP_LINEAR_BWD_DATA:
    case EBMC_OP_LINEAR_BWD_FILTER:
    case EBMC_OP_BIAS_FWD:
    case EBMC_OP_BIAS_BWD:
    case EBMC_OP_ACT_FWD:
    case EBMC_OP_ACT_BWD:
    case EBMC_OP_BN_FWD:
    case EBMC_OP_BN_BWD:
    case EBMC_OP_SN_POWER:
    case EBMC_OP_SN_BWD:
    case EBMC_OP_UPSAMPLE_FWD:
    case EBMC_OP_UPSAMPLE_BWD:
    case EBMC_OP_AVGPOOL2_FWD:
    case EBMC_OP_AVGPOOL2_BWD:
    case EBMC_OP_GPOOL_FWD:
    case EBMC_OP_GPOOL_BWD:
    case EBMC_OP_AXPBY:
    case EBMC_OP_FILL:
    case EBMC_OP_REDUCE:
    case EBMC_OP_ADAM:
    case EBMC_OP_LANGEVIN:
    case EBMC_OP_RNG:
    case EBMC_OP_REPARAM:
    case EBMC_OP_SCALED_DIFF:
    case EBMC_OP_COUNTER_ADD:
    case EBMC_OP_REPLAY_SAMPLE:
    case EBMC_OP_REPLAY_PUSH:
    case EBMC_OP_GAUSS_NLL: return true;
    default: return false; /* not implemented on CUDA yet: the table entry is NULL */
    }
}

static size_t cuda_workspace_size(const ebmc_ctx_t *ctx, ebmc_op op, const void *desc) {
    cuda_priv *p = cpriv(ctx);
    if (!p || !desc) return 0;
    if (op_is_conv(op)) {
        const conv_plan *pl = NULL;
        char err[512];
        if (conv_plan_get(p, &ctx->opts, op, (const ebmc_conv_desc *)desc, &pl, err,
                          sizeof err) != EBMC_OK)
            return 0;
        return conv_plan_ws(pl);
    }
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

/* ---------------------------------------------------------------------------------------- */

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
    .conv2d_fwd = cuda_conv2d_fwd,
    .conv2d_bwd_data = cuda_conv2d_bwd_data,
    .conv2d_bwd_filter = cuda_conv2d_bwd_filter,
    .convt2d_fwd = cuda_convt2d_fwd,
    .convt2d_bwd_data = cuda_convt2d_bwd_data,
    .convt2d_bwd_filter = cuda_convt2d_bwd_filter,
    .linear_fwd = cuda_linear_fwd,
    .linear_bwd_data = cuda_linear_bwd_data,
    .linear_bwd_filter = cuda_linear_bwd_filter,
    .bias_fwd = cuda_bias_fwd,
    .bias_bwd = cuda_bias_bwd,
    .act_fwd = cuda_act_fwd,
    .act_bwd = cuda_act_bwd,
    .bn_fwd = cuda_bn_fwd,
    .bn_bwd = cuda_bn_bwd,
    .sn_power = cuda_sn_power,
    .sn_bwd = cuda_sn_bwd,
    .upsample_fwd = cuda_upsample_fwd,
    .upsample_bwd = cuda_upsample_bwd,
    .avgpool2_fwd = cuda_avgpool2_fwd,
    .avgpool2_bwd = cuda_avgpool2_bwd,
    .gpool_fwd = cuda_gpool_fwd,
    .gpool_bwd = cuda_gpool_bwd,
    .axpby = cuda_axpby,
    .fill = cuda_fill,
    .reduce = cuda_reduce,
    .adam = cuda_adam,
    .langevin = cuda_langevin,
    .rng = cuda_rng,
    .reparam = cuda_reparam,
    .scaled_diff = cuda_scaled_diff,
    .counter_add = cuda_counter_add,
    .replay_sample = cuda_replay_sample,
    .replay_push = cuda_replay_push,
    .gauss_nll = cuda_gauss_nll,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_launch = cuda_graph_launch,
    .graph_free = cuda_graph_free,
    .profiler_start = ebmc_cuda_profiler_start,
    .profiler_stop = ebmc_cuda_profiler_stop,
};
