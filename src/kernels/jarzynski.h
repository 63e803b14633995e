/* defines: jz_logw_launch, jz_stats_launch, jz_resample_launch,
 * gmm_eval_launch, gmm_pgrad_launch -- the weighted-walker ops of the CUDA backend
 * (include/ebmc/backend.h, "Jarzynski-weighted walkers"), all on stream s, with no host
 * synchronisation (so a weighted chain can be captured as one CUDA graph). The CPU reference is
 * src/host/backend/cpu/jarzynski_cpu.c; sums are in double in a fixed order (deterministic). */
#ifndef EBMC_KERNELS_JARZYNSKI_H
#define EBMC_KERNELS_JARZYNSKI_H

#include "ebmc/backend.h"
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

void jz_logw_launch(const ebmc_jz_logw_desc *d, const float *x, const float *x_new, const float *u_old,
                    const float *g_old, const float *u_new, const float *g_new, double *logw, cudaStream_t s);
void jz_stats_launch(const ebmc_jz_stats_desc *d, const double *logw, double *stats, float *w, cudaStream_t s);
void jz_resample_launch(const ebmc_jz_resample_desc *d, double *logw, double *stats, double *cdf, int32_t *idx,
                        cudaStream_t s);
void gmm_eval_launch(const ebmc_gmm_desc *d, const float *x, const float *means, const float *z, float *u,
                     float *grad, float *resp, cudaStream_t s);
void gmm_pgrad_launch(const ebmc_gmm_desc *d, const float *x, const float *means, const float *resp,
                      const float *w, float *gmeans, float *gz, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
