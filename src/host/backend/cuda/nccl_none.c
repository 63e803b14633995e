/* The NCCL part of the context's communicator in a build without CUDA or without NCCL: a CUDA
 * context cannot join a multi-rank run (the message says how to get one that can). */
#include "backend/ctx_internal.h"

ebmc_status ebmc_cuda_nccl_init(ebmc_ctx_t *ctx, struct ebmc_comm *comm, char *err, size_t errlen) {
    snprintf(err, errlen, "data-parallel ranks on the CUDA backend need NCCL, and this ebmc was built without it "
             "(HINT: install NCCL (libnccl-dev) and rebuild, or run.backend=cpu)");
    return EBMC_E_UNSUPPORTED;
}

ebmc_status ebmc_cuda_nccl_mean(ebmc_ctx_t *ctx, float *dev, size_t count) {
    return ebmc_ctx_seterr(ctx, EBMC_E_UNSUPPORTED, "no NCCL in this build");
}

void ebmc_cuda_nccl_free(ebmc_ctx_t *ctx) { (void)ctx; }
void ebmc_nccl_print_build_info(FILE *f) { fprintf(f, "NCCL: not built\n"); }
