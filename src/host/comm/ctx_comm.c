/* The context's communicator: the gradient mean every optimiser step takes (MPI on the CPU
 * backend, NCCL on CUDA) and the chain offset of a rank's random draws. */
#include "ebmc/comm.h"
#include "backend/ctx_internal.h"

ebmc_status ebmc_ctx_set_comm(ebmc_ctx_t *ctx, ebmc_comm_t *comm, char *err, size_t errlen) {
    ctx->comm = comm;
    if (!comm || ebmc_comm_size(comm) < 2 || ctx->kind != EBMC_BACKEND_CUDA) return EBMC_OK;
    return ebmc_cuda_nccl_init(ctx, comm, err, errlen);
}

ebmc_comm_t *ebmc_ctx_comm(const ebmc_ctx_t *ctx) { return ctx->comm; }

ebmc_status ebmc_ctx_grad_mean(ebmc_ctx_t *ctx, float *dev, size_t count) {
    int n = ctx->comm ? ebmc_comm_size(ctx->comm) : 1;
    if (n < 2 || count == 0) return EBMC_OK;
    if (ctx->kind == EBMC_BACKEND_CUDA) return ebmc_cuda_nccl_mean(ctx, dev, count);
    /* CPU backend memory is host memory: MPI sums it in place; then the mean (exact for N a
     * power of two, one rounding otherwise) */
    EBMC_TRY(ebmc_comm_host_sum_f32(ctx->comm, dev, count, "gradient all-reduce"));
    ebmc_axpby_desc d = {count, 1.0f / (float)n, 0.0f};
    return ebmc_axpby(ctx, &d, dev, dev);
}

void ebmc_ctx_set_chain_offset(ebmc_ctx_t *ctx, uint32_t offset) { ctx->chain0 = offset; }
uint32_t ebmc_ctx_chain_offset(const ebmc_ctx_t *ctx) { return ctx->chain0; }
void ebmc_ctx_set_chain_rank(ebmc_ctx_t *ctx, uint32_t rank) { ctx->chain_rank = rank; }
uint32_t ebmc_ctx_chain_base(const ebmc_ctx_t *ctx, int n_chains) {
    return ctx->chain0 + ctx->chain_rank * (uint32_t)n_chains;
}
