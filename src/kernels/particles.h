/* defines: particles_pswish_fwd, particles_pswish_bwd, particles_gbase_fwd, particles_gbase_bwd,
 * particles_rows_copy -- the CUDA kernels of the particle-dynamics ops (include/ebmc/backend.h:
 * parametric Swish, Gaussian base energy, row gather/scatter), all on stream s. */
#ifndef EBMC_KERNELS_PARTICLES_H
#define EBMC_KERNELS_PARTICLES_H

#include "ebmc/backend.h"
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

void particles_pswish_fwd(const ebmc_pswish_desc *d, const float *x, const float *b, float *y, cudaStream_t s);
void particles_pswish_bwd(const ebmc_pswish_desc *d, const float *x, const float *b, const float *dy, float *dx,
                          float *db, float beta_dx, float beta_param, cudaStream_t s);
void particles_gbase_fwd(const ebmc_gbase_desc *d, const float *x, const float *mu, const float *logstd, float *y,
                         cudaStream_t s);
void particles_gbase_bwd(const ebmc_gbase_desc *d, const float *x, const float *mu, const float *logstd,
                         const float *dy, float *dx, float *dmu, float *dlogstd, float beta_dx, float beta_param,
                         cudaStream_t s);
void particles_rows_copy(const ebmc_rows_desc *d, const float *x, const int32_t *src, const int32_t *dst, float *y,
                         cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
