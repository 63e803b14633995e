/* defines: pool2d_forward (k x k max / average pool with padding), resize_bilinear_forward
 * (F.interpolate bilinear, align_corners=False) and chan_copy_forward (one part of a channel
 * concatenation) -- CUDA launchers on stream s for Inception-v3's inference layers. */
#ifndef EBMC_KERNELS_EVALOPS_H
#define EBMC_KERNELS_EVALOPS_H

#include "ebmc/backend.h"
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

void pool2d_forward(const ebmc_pool_desc *d, const float *x, float *y, cudaStream_t s);
void resize_bilinear_forward(const ebmc_resize_desc *d, const float *x, float *y, cudaStream_t s);
void chan_copy_forward(const ebmc_chan_copy_desc *d, const float *x, float *y, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
