/* defines: upsample_forward_bilinear2x, upsample_backward_bilinear2x (align_corners=True),
 * upsample_forward_nearest2x, upsample_backward_nearest2x -- CUDA launchers on stream s. */
#ifndef EBMC_KERNELS_UPSAMPLE_H
#define EBMC_KERNELS_UPSAMPLE_H

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* (N,C,H,W) -> (N,C,2H,2W), as F.interpolate(scale_factor=2, mode='bilinear',
 * align_corners=True). */
void upsample_forward_bilinear2x(const float *x, float *y, int n, int c, int h, int w,
                                 cudaStream_t s);
/* dx (N,C,H,W) = adjoint of the above applied to dy (N,C,2H,2W) + beta*dx; a gather over the
 * output pixels that touch each input pixel (deterministic, no atomics). */
void upsample_backward_bilinear2x(const float *dy, float *dx, int n, int c, int h, int w,
                                  float beta, cudaStream_t s);
/* (N,C,H,W) -> (N,C,2H,2W), nearest (each pixel repeated 2x2). */
void upsample_forward_nearest2x(const float *x, float *y, int n, int c, int h, int w,
                                cudaStream_t s);
/* dx (N,C,H,W) = sum of dy over each 2x2 block + beta*dx. */
void upsample_backward_nearest2x(const float *dy, float *dx, int n, int c, int h, int w,
                                 float beta, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
