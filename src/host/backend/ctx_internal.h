/* defines: struct ebmc_ctx (private to backends), ebmc_ctx_seterr, ebmc_ctx_workspace,
 * ebmc_op_in_table */
#ifndef EBMC_CTX_INTERNAL_H
#define EBMC_CTX_INTERNAL_H

#include "ebmc/backend.h"
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ebmc_ctx {
    ebmc_backend_kind kind;
    const ebmc_backend_ops *ops;
    ebmc_ctx_opts opts;
    char err[1024];             /* last error message */
    void *workspace;            /* backend memory, ws_bytes long */
    size_t ws_bytes;
    bool ws_frozen;             /* after planning: never grow, fail instead */
    void *priv;                 /* backend-owned state (CUDA: stream, handles, plan cache) */
    struct ebmc_comm *comm;     /* the ranks of a data-parallel run (NULL: none; ebmc/comm.h) */
    uint32_t chain0;            /* global index of this rank's chain 0 (added to rng.chain0) */
    uint32_t chain_rank;        /* a rank's index: an op on n chains draws global chains
                                   chain0 + chain_rank * n + i (ebmc_ctx_chain_base) */
    void *nccl;                 /* CUDA: the NCCL communicator and its event (cuda/nccl.c) */
};

/* Formats the message into ctx->err and returns `status` (so: return ebmc_ctx_seterr(...)). */
ebmc_status ebmc_ctx_seterr(ebmc_ctx_t *ctx, ebmc_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A workspace of at least `bytes` for the op running now: grows it while not frozen. */
ebmc_status ebmc_ctx_workspace(ebmc_ctx_t *ctx, size_t bytes, void **ws);

/* Whether the table has an entry for op (its slot is not NULL); false for an unknown op. */
bool ebmc_op_in_table(const ebmc_backend_ops *ops, ebmc_op op);

/* The CUDA part of ebmc_print_build_info (context.c prints the rest): cuda/device.c, or
 * cuda/backend_cuda_none.c in a build without CUDA. */
void ebmc_cuda_print_build_info(FILE *f);

/* The CUDA backend's profiler window (src/host/backend/cuda/profiler.c; CUDA builds only): the
 * profiler_start / profiler_stop entries of ebmc_cuda_ops. */
ebmc_status ebmc_cuda_profiler_start(ebmc_ctx_t *ctx);
ebmc_status ebmc_cuda_profiler_stop(ebmc_ctx_t *ctx);

/* The NCCL part of the context's communicator (src/host/backend/cuda/nccl.c; nccl_none.c in a
 * build without CUDA or NCCL, where init fails with a clear message). */
ebmc_status ebmc_cuda_nccl_init(ebmc_ctx_t *ctx, struct ebmc_comm *comm, char *err, size_t errlen);
ebmc_status ebmc_cuda_nccl_mean(ebmc_ctx_t *ctx, float *dev, size_t count);
void ebmc_cuda_nccl_free(ebmc_ctx_t *ctx);
void ebmc_nccl_print_build_info(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
