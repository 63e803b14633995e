/* CUDA-graph capture for the CUDA backend: graph_begin/graph_end capture the context's stream,
 * graph_launch replays, graph_free releases; and the capture guards that the memory calls, the
 * workspace and convolution planning consult.
 *
 * Mode: cudaStreamCaptureModeThreadLocal. In it CUDA refuses "potentially unsafe" calls
 * (cudaMalloc, synchronous copies, cudaStreamSynchronize, ...) made by the capturing thread and
 * invalidates the capture, so a host synchronisation in the captured loop cannot silently
 * produce a graph without it: graph_end then fails. Global mode would refuse the same calls in
 * every other thread of the process too, while any capture runs, making an unrelated thread
 * (a data loader, another context's evaluation) fail for reasons it cannot know; Relaxed would
 * refuse nothing. One context is driven by one thread, so the capturing thread is the one to
 * police.
 *
 * Capture guards. Between graph_begin and graph_end nothing may allocate or synchronise with the
 * host: such a call would either be refused by CUDA (and invalidate the capture) or, worse, run
 * now instead of in the graph. On top of CUDA's check, ebmc's own memory calls (backend_cuda.c)
 * detect a capture on the context's stream (cuda_stream_capturing) and refuse first, with a
 * message naming the call (cuda_capture_refuse); the first refusal is remembered and makes
 * graph_end fail with it even when CUDA itself saw nothing wrong (a refused ebmc_copy never
 * reached CUDA), so a caller that ignores the status still cannot get a graph with a hole in it.
 *
 * Failed CUDA calls during a capture. The CUDA check family's sink (ebmc_fail_device) is fatal
 * everywhere except on the capturing thread between graph_begin and graph_end: nothing has run
 * on the device there, so a failed cuDNN/cuBLAS call or kernel launch is recorded (the first one)
 * instead of killing the process, graph_end ends the capture, discards it and returns
 * EBMC_E_DEVICE with that call's message, and the caller can run the same work eagerly (where a
 * real error is then fatal, with its own message). ebmc_chain_run does.
 *
 * graph_end returns the cudaGraphExec_t as the opaque handle; the cudaGraph_t it was
 * instantiated from is kept beside it (priv->graphs) and freed with it. */
#include "backend/cuda/cuda_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* An instantiated graph (graph_end hands out `exec`) and the graph it came from. */
struct graph_entry {
    cudaGraphExec_t exec;
    cudaGraph_t graph;
};

/* Something released while a capture was running, released after it ends. */
struct deferred_free {
    void *ptr;                  /* device memory, or a graph_entry's exec when is_graph */
    bool is_graph;
};

bool cuda_stream_capturing(const cuda_priv *p) {
    if (!p || !p->stream) return false;
    enum cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(p->stream, &cs) != cudaSuccess) {
        (void)cudaGetLastError();
        return p->capturing;
    }
    return cs != cudaStreamCaptureStatusNone || p->capturing;
}

ebmc_status cuda_capture_refuse(ebmc_ctx_t *ctx, ebmc_status st, const char *fmt, ...) {
    cuda_priv *p = cpriv(ctx);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p && !p->capture_err[0]) snprintf(p->capture_err, sizeof p->capture_err, "%s", msg);
    return ebmc_ctx_seterr(ctx, st, "%s", msg);
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

void cuda_defer_free(cuda_priv *p, void *ptr, bool is_graph) {
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

/* Memory that cuda_free is asked to release: the workspace, while graphs that may have captured
 * its address live (a replay would write to freed memory), is kept until the last graph is
 * freed (graph_destroy_at). */
bool cuda_graphs_retain_workspace(ebmc_ctx_t *ctx, void *ptr) {
    cuda_priv *p = cpriv(ctx);
    if (!p || p->n_graphs == 0 || ptr != ctx->workspace) return false;
    if (p->n_retired == p->cap_retired) {
        const int cap = p->cap_retired ? 2 * p->cap_retired : 4;
        void **nr = realloc(p->retired, (size_t)cap * sizeof *nr);
        if (!nr) ebmc_fail("realloc", "out of host memory", __func__, __FILE__, __LINE__);
        p->retired = nr;
        p->cap_retired = cap;
    }
    p->retired[p->n_retired++] = ptr;
    return true;
}

void cuda_graphs_release(cuda_priv *p) {
    if (p->capturing) { /* a capture left open: end it (the stream cannot sync while capturing) */
        (void)ebmc_fail_defer_end(NULL, 0);
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
}

ebmc_status cuda_graph_begin(ebmc_ctx_t *ctx) {
    cuda_priv *p = cpriv(ctx);
    cuda_bind(ctx);
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
    ebmc_fail_defer_begin(); /* until graph_end: a failed CUDA call is recorded, not fatal */
    return EBMC_OK;
}

ebmc_status cuda_graph_end(ebmc_ctx_t *ctx, void **graph) {
    cuda_priv *p = cpriv(ctx);
    cuda_bind(ctx);
    *graph = NULL;
    if (!p->capturing)
        return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "graph_end without graph_begin");
    char failed_call[512]; /* a CUDA call that failed during the capture (recorded, not fatal) */
    const bool call_failed = ebmc_fail_defer_end(failed_call, sizeof failed_call);
    cudaGraph_t g = NULL;
    const cudaError_t e = cudaStreamEndCapture(p->stream, &g); /* leaves capture mode always */
    p->capturing = false;
    (void)cudaGetLastError(); /* an invalidated capture is reported below, not left sticky */
    if (p->n_deferred) { /* what was freed during the capture, now that the stream may sync */
        CUDA_CHECK(cudaStreamSynchronize(p->stream));
        deferred_flush(p);
    }
    if (call_failed || p->capture_err[0] || e != cudaSuccess || !g) {
        if (g) CUDA_CHECK(cudaGraphDestroy(g));
        if (call_failed)
            return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE,
                                   "graph capture failed: a CUDA call failed during the capture: "
                                   "%s", failed_call);
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

ebmc_status cuda_graph_launch(ebmc_ctx_t *ctx, void *graph) {
    cuda_priv *p = cpriv(ctx);
    cuda_bind(ctx);
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

void cuda_graph_free(ebmc_ctx_t *ctx, void *graph) {
    cuda_priv *p = cpriv(ctx);
    if (!p || !graph) return;
    cuda_bind(ctx);
    const int i = graph_find(p, graph);
    if (i < 0) return; /* not ours, or already freed */
    if (p->capturing) { /* no synchronisation now: destroyed when the capture ends */
        cuda_defer_free(p, graph, true);
        return;
    }
    CUDA_CHECK(cudaStreamSynchronize(p->stream)); /* a launch of it may still be running */
    graph_destroy_at(p, i);
}
