/* The CUDA backend's particle-dynamics ops (cuda_<id> of EBMC_OPS): thin wrappers over the
 * launchers of src/kernels/particles.cu on the context's stream. */
#include "backend/cuda/cuda_internal.h"
#include "particles.h"

ebmc_status cuda_pswish_fwd(ebmc_ctx_t *ctx, const ebmc_pswish_desc *d, const float *x, const float *b, float *y) {
    particles_pswish_fwd(d, x, b, y, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_pswish_bwd(ebmc_ctx_t *ctx, const ebmc_pswish_desc *d, const float *x, const float *b,
                            const float *dy, float *dx, float *db, float beta_dx, float beta_param) {
    particles_pswish_bwd(d, x, b, dy, dx, db, beta_dx, beta_param, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_gbase_fwd(ebmc_ctx_t *ctx, const ebmc_gbase_desc *d, const float *x, const float *mu,
                           const float *logstd, float *y) {
    particles_gbase_fwd(d, x, mu, logstd, y, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_gbase_bwd(ebmc_ctx_t *ctx, const ebmc_gbase_desc *d, const float *x, const float *mu,
                           const float *logstd, const float *dy, float *dx, float *dmu, float *dlogstd,
                           float beta_dx, float beta_param) {
    particles_gbase_bwd(d, x, mu, logstd, dy, dx, dmu, dlogstd, beta_dx, beta_param, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_rows_copy(ebmc_ctx_t *ctx, const ebmc_rows_desc *d, const float *x, const int32_t *src,
                           const int32_t *dst, float *y) {
    particles_rows_copy(d, x, src, dst, y, cpriv(ctx)->stream);
    return EBMC_OK;
}
