/* The CUDA backend's entries for Inception-v3's inference layers (pool2d, bilinear resize,
 * channel copy): the kernels of src/kernels/evalops.cu on the context's stream. */
#include "backend/cuda/cuda_internal.h"
#include "evalops.h"

ebmc_status cuda_pool2d_fwd(ebmc_ctx_t *ctx, const ebmc_pool_desc *d, const float *x, float *y) {
    pool2d_forward(d, x, y, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_resize_fwd(ebmc_ctx_t *ctx, const ebmc_resize_desc *d, const float *x, float *y) {
    resize_bilinear_forward(d, x, y, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_chan_copy(ebmc_ctx_t *ctx, const ebmc_chan_copy_desc *d, const float *x, float *y) {
    chan_copy_forward(d, x, y, cpriv(ctx)->stream);
    return EBMC_OK;
}
