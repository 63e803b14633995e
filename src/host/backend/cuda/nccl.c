/* The CUDA backend's gradient all-reduce: one NCCL communicator per context (ncclCommInitRank
 * with its unique id broadcast from rank 0 over MPI), the mean of a device buffer on the
 * context's stream (ncclAvg). The communicator is non-blocking (ncclConfig_t.blocking = 0) so
 * that its set-up and every all-reduce can be polled against run.comm_timeout: a rank that died
 * leaves NCCL waiting forever, so past the deadline the communicator is aborted and the job ends
 * with a message, as the MPI collectives do. Every NCCL status is checked. */
#include "backend/cuda/cuda_internal.h"
#include "ebmc/comm.h"
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "ebmc needs NCCL >= 2.14 (non-blocking communicators, ncclAvg)"
#endif

#define NCCL_CHECK(c) EBMC_DEVICE_CHECK_GEN(ncclResult_t, c, ncclSuccess, ncclGetErrorString)

typedef struct {
    ncclComm_t comm;
    cudaEvent_t done;  /* recorded after each all-reduce: polled, never waited on blindly */
    ebmc_comm_t *world;
} nccl_state;

static _Noreturn void nccl_timeout(nccl_state *s, const char *what, double waited) {
    fprintf(stderr, "\nebmc: rank %d of %d: %s: no answer from the other ranks for %.0f s (a rank died or hangs); "
            "aborting the job (HINT: run.comm_timeout sets the limit)\n", ebmc_comm_rank(s->world),
            ebmc_comm_size(s->world), what, waited);
    (void)ncclCommAbort(s->comm); /* releases NCCL's kernels and proxy threads; its status is moot */
    ebmc_comm_abort(s->world, 1);
}

/* Polls a non-blocking communicator until its pending call settles; its final status. */
static ncclResult_t settle(nccl_state *s, const char *what) {
    double t0 = ebmc_now_s();
    struct timespec nap = {0, 100000};
    for (;;) {
        ncclResult_t st = ncclInProgress;
        ncclResult_t r = ncclCommGetAsyncError(s->comm, &st);
        if (r != ncclSuccess) return r;
        if (st != ncclInProgress) return st;
        if (ebmc_now_s() - t0 > ebmc_comm_timeout(s->world)) nccl_timeout(s, what, ebmc_now_s() - t0);
        nanosleep(&nap, NULL);
    }
}

ebmc_status ebmc_cuda_nccl_init(ebmc_ctx_t *ctx, struct ebmc_comm *world, char *err, size_t errlen) {
    cuda_bind(ctx);
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (ebmc_comm_rank(world) == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    EBMC_TRY(ebmc_comm_bcast(world, &id, sizeof id, "NCCL unique id"));
    nccl_state *s = ebmc_xcalloc(1, sizeof *s, "nccl");
    s->world = world;
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&s->comm, ebmc_comm_size(world), id, ebmc_comm_rank(world), &cfg);
    if (r == ncclInProgress || r == ncclSuccess) r = settle(s, "NCCL communicator set-up");
    if (r != ncclSuccess) {
        snprintf(err, errlen, "NCCL communicator of rank %d of %d on device %d: %s (%s)", ebmc_comm_rank(world),
                 ebmc_comm_size(world), cpriv(ctx)->device, ncclGetErrorString(r), ncclGetLastError(s->comm));
        if (s->comm) (void)ncclCommAbort(s->comm);
        free(s);
        return EBMC_E_DEVICE;
    }
    CUDA_CHECK(cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming));
    ctx->nccl = s;
    return EBMC_OK;
}

ebmc_status ebmc_cuda_nccl_mean(ebmc_ctx_t *ctx, float *dev, size_t count) {
    nccl_state *s = ctx->nccl;
    if (!s) return ebmc_ctx_seterr(ctx, EBMC_E_INVALID, "gradient all-reduce: the context has no NCCL communicator");
    cuda_bind(ctx);
    cudaStream_t st = cpriv(ctx)->stream;
    ncclResult_t r = ncclAllReduce(dev, dev, count, ncclFloat, ncclAvg, s->comm, st);
    if (r == ncclInProgress) r = settle(s, "gradient all-reduce (enqueue)");
    if (r != ncclSuccess)
        return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "ncclAllReduce of %zu floats: %s (%s)", count,
                               ncclGetErrorString(r), ncclGetLastError(s->comm));
    CUDA_CHECK(cudaEventRecord(s->done, st));
    double t0 = ebmc_now_s();
    struct timespec nap = {0, 50000};
    for (;;) {
        cudaError_t q = cudaEventQuery(s->done);
        if (q == cudaSuccess) return EBMC_OK;
        if (q != cudaErrorNotReady) CUDA_CHECK(q);
        ncclResult_t as = ncclSuccess;
        NCCL_CHECK(ncclCommGetAsyncError(s->comm, &as));
        if (as != ncclSuccess && as != ncclInProgress)
            return ebmc_ctx_seterr(ctx, EBMC_E_DEVICE, "ncclAllReduce of %zu floats: %s (%s)", count,
                                   ncclGetErrorString(as), ncclGetLastError(s->comm));
        if (ebmc_now_s() - t0 > ebmc_comm_timeout(s->world))
            nccl_timeout(s, "gradient all-reduce (NCCL)", ebmc_now_s() - t0);
        nanosleep(&nap, NULL);
    }
}

void ebmc_cuda_nccl_free(ebmc_ctx_t *ctx) {
    nccl_state *s = ctx->nccl;
    if (!s) return;
    cuda_bind(ctx);
    ncclResult_t r = ncclCommFinalize(s->comm); /* flushes pending work; non-blocking: settle */
    if (r == ncclInProgress || r == ncclSuccess) r = settle(s, "NCCL communicator finalize");
    NCCL_CHECK(r);
    NCCL_CHECK(ncclCommDestroy(s->comm));
    CUDA_CHECK(cudaEventDestroy(s->done));
    free(s);
    ctx->nccl = NULL;
}

void ebmc_nccl_print_build_info(FILE *f) {
    int v = 0;
    if (ncclGetVersion(&v) != ncclSuccess) v = 0;
    fprintf(f, "NCCL: built against %d.%d.%d, found %d.%d.%d\n", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH, v / 10000,
            (v % 10000) / 100, v % 100);
}
