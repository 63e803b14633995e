/* defines: cuda_priv (the CUDA backend's per-context state) and what the files of
 * src/host/backend/cuda/ share:
 *   backend_cuda.c  the op table, init/fini, memory, the workspace, the non-convolution ops
 *   conv_cudnn.c    cuDNN convolution plans, their cache, the six convolution ops
 *   graph.c         CUDA-graph capture: the capture guards, graph begin/end/launch/free
 *   device.c        status strings, device count, the CUDA part of the build info
 * Private to the backend; its declarations are hidden from the library's exported symbols. */
#ifndef EBMC_CUDA_INTERNAL_H
#define EBMC_CUDA_INTERNAL_H

#include "backend/ctx_internal.h"
#include "backend/cuda_check.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#pragma GCC visibility push(hidden)

typedef struct conv_plan conv_plan;       /* conv_cudnn.c */
typedef struct graph_entry graph_entry;   /* graph.c */
typedef struct deferred_free deferred_free; /* graph.c */

typedef struct {
    int device;
    cudaStream_t stream;        /* non-blocking; every op of the context runs on it */
    cudnnHandle_t cudnn;        /* bound to stream */
    cublasHandle_t cublas;      /* bound to stream, with the fixed workspace below */
    void *cublas_ws;            /* cuBLAS workspace (so GEMMs never allocate, also in graphs) */
    size_t cublas_ws_bytes;
    conv_plan **plans;          /* plan cache, n_plans entries, linear search */
    int n_plans, cap_plans;
    /* graph capture (graph.c) */
    bool capturing;             /* between graph_begin and graph_end */
    char capture_err[512];      /* the first call that broke the running capture ("" if none) */
    deferred_free *deferred;    /* frees asked for during the capture */
    int n_deferred, cap_deferred;
    graph_entry *graphs;        /* live instantiated graphs */
    int n_graphs, cap_graphs;
    void **retired;             /* old workspaces kept while graphs that may use them live */
    int n_retired, cap_retired;
} cuda_priv;

static inline cuda_priv *cpriv(const ebmc_ctx_t *ctx) { return (cuda_priv *)ctx->priv; }

/* Makes the context's device the calling thread's current device (CUDA's current device is per
 * thread, and cudaSetDevice ran only in init, on the thread that created the context): every
 * entry of the op table calls it first, so a context on device >= 1 can be used from any thread.
 * cudaGetDevice reads a thread-local value; cudaSetDevice runs only when the device differs. */
static inline void cuda_bind(const ebmc_ctx_t *ctx) {
    const cuda_priv *p = ctx ? cpriv(ctx) : NULL;
    if (!p) return;
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != p->device) {
        (void)cudaGetLastError();
        CUDA_CHECK(cudaSetDevice(p->device));
    }
    ebmc_fail_set_device(p->device); /* the fatal sink names this thread's device */
}

/* ---- backend_cuda.c ---- */

/* A workspace of `bytes` (NULL when 0). Growing it allocates and synchronises: refused during a
 * capture (the workspace must be planned before: ebmc_tape_create reserves a net's). */
ebmc_status cuda_get_workspace(ebmc_ctx_t *ctx, size_t bytes, void **ws);

/* ---- graph.c: capture guards ---- */

/* True while the context's stream is being captured (cudaStreamIsCapturing: active, or already
 * invalidated by an illegal call), or graph_begin's own flag says so. */
bool cuda_stream_capturing(const cuda_priv *p);
/* Sets the context's error, remembers the first such error of the running capture, returns st. */
ebmc_status cuda_capture_refuse(ebmc_ctx_t *ctx, ebmc_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Remembers something freed during a capture (device memory, or a graph's exec when is_graph),
 * to release once the capture has ended. */
void cuda_defer_free(cuda_priv *p, void *ptr, bool is_graph);
/* ptr is the context's workspace, freed (it grows, or the context goes) while instantiated
 * graphs live that may have captured its address: keeps it until the last graph is freed and
 * returns true; else false. */
bool cuda_graphs_retain_workspace(ebmc_ctx_t *ctx, void *ptr);
/* fini: ends a capture left open, waits for the stream, releases what was deferred, every
 * graph and the retired workspaces. */
void cuda_graphs_release(cuda_priv *p);

ebmc_status cuda_graph_begin(ebmc_ctx_t *ctx);
ebmc_status cuda_graph_end(ebmc_ctx_t *ctx, void **graph);
ebmc_status cuda_graph_launch(ebmc_ctx_t *ctx, void *graph);
void cuda_graph_free(ebmc_ctx_t *ctx, void *graph);

/* ---- conv_cudnn.c ---- */

bool cuda_op_is_conv(ebmc_op op);
/* Plans (and caches) the convolution: false when cuDNN cannot run it. */
bool cuda_conv_supports(const ebmc_ctx_t *ctx, ebmc_op op, const ebmc_conv_desc *d);
/* The workspace its plan needs (pad buffer and cuDNN's); 0 when it cannot be planned. */
size_t cuda_conv_workspace_size(const ebmc_ctx_t *ctx, ebmc_op op, const ebmc_conv_desc *d);
/* fini: destroys every cached plan. */
void cuda_conv_plans_release(cuda_priv *p);

/* ---- the ops: cuda_<id> for every op of EBMC_OPS (the six convolutions in conv_cudnn.c, the
 * rest in backend_cuda.c); the table in backend_cuda.c points at them ---- */

#define CUDA_OP_DECL_(OP, id, wrapper, desc, params, ...)                                         \
    ebmc_status cuda_##id(ebmc_ctx_t *ctx, const desc *d, EBMC_UNPAREN params);
EBMC_OPS(CUDA_OP_DECL_)
#undef CUDA_OP_DECL_

#pragma GCC visibility pop

#endif
