/* defines: cuda_jz_logw, cuda_jz_stats, cuda_jz_resample, cuda_gmm_eval,
 * cuda_gmm_pgrad -- the CUDA backend's entries for the weighted-walker ops and the Gaussian
 * mixture (kernels in src/kernels/jarzynski.cu, CPU reference cpu/jarzynski_cpu.c). Each
 * launches on the context's stream and never synchronises (capturable in a CUDA graph). */
#include "backend/cuda/cuda_internal.h"
#include "jarzynski.h"

ebmc_status cuda_jz_logw(ebmc_ctx_t *ctx, const ebmc_jz_logw_desc *d, const float *x, const float *x_new,
                         const float *u_old, const float *g_old, const float *u_new, const float *g_new,
                         double *logw) {
    jz_logw_launch(d, x, x_new, u_old, g_old, u_new, g_new, logw, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_jz_stats(ebmc_ctx_t *ctx, const ebmc_jz_stats_desc *d, const double *logw, double *stats,
                          float *w) {
    jz_stats_launch(d, logw, stats, w, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_jz_resample(ebmc_ctx_t *ctx, const ebmc_jz_resample_desc *d, double *logw, double *stats,
                             double *cdf, int32_t *idx) {
    jz_resample_launch(d, logw, stats, cdf, idx, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_gmm_eval(ebmc_ctx_t *ctx, const ebmc_gmm_desc *d, const float *x, const float *means,
                          const float *z, float *u, float *grad, float *resp) {
    gmm_eval_launch(d, x, means, z, u, grad, resp, cpriv(ctx)->stream);
    return EBMC_OK;
}

ebmc_status cuda_gmm_pgrad(ebmc_ctx_t *ctx, const ebmc_gmm_desc *d, const float *x, const float *means,
                           const float *resp, const float *w, float *gmeans, float *gz) {
    gmm_pgrad_launch(d, x, means, resp, w, gmeans, gz, cpriv(ctx)->stream);
    return EBMC_OK;
}
