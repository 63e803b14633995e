/* The CUDA backend's profiler capture window (ebmc_backend_ops.profiler_start/stop):
 * cudaProfilerStart/Stop bracket what `nsys profile --capture-range=cudaProfilerApi` and
 * `ncu --profile-from-start off` record. Kept apart from backend_cuda.c, which only points its op
 * table at these two functions. */
#include "backend/ctx_internal.h"
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

static ebmc_status profiler_toggle(ebmc_ctx_t *ctx, bool start) {
    cudaError_t e = cudaSetDevice(ctx->opts.device);
    if (e == cudaSuccess) e = start ? cudaProfilerStart() : cudaProfilerStop();
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "%s: %s",
                               start ? "cudaProfilerStart" : "cudaProfilerStop",
                               cudaGetErrorString(e));
    }
    return EBMC_OK;
}

ebmc_status ebmc_cuda_profiler_start(ebmc_ctx_t *ctx) { return profiler_toggle(ctx, true); }
ebmc_status ebmc_cuda_profiler_stop(ebmc_ctx_t *ctx) { return profiler_toggle(ctx, false); }
