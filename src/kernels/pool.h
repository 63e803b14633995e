/* defines: avgpool2_forward, avgpool2_backward (2x2 average pool, stride 2, floor),
 * gpool_forward, gpool_backward (global average / sum pool) -- CUDA launchers on stream s. */
#ifndef EBMC_KERNELS_POOL_H
#define EBMC_KERNELS_POOL_H

#include "ebmc/backend.h"
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x (N,C,H,W) -> y (N,C,H/2,W/2), as avg_pool2d(2): an odd last row/column is dropped. */
void avgpool2_forward(const float *x, float *y, int n, int c, int h, int w, cudaStream_t s);
/* dx (N,C,H,W) = dy/4 spread over each 2x2 window (0 on a dropped row/column) + beta*dx. */
void avgpool2_backward(const float *dy, float *dx, int n, int c, int h, int w, float beta,
                       cudaStream_t s);
/* x (N,C,H,W) -> y (N,C): sum over H*W, divided by H*W for EBMC_GPOOL_AVG. Deterministic. */
void gpool_forward(ebmc_gpool_mode mode, const float *x, float *y, int n, int c, int h, int w,
                   cudaStream_t s);
/* dx (N,C,H,W) = dy[n,c] (/ H*W for AVG) + beta*dx. */
void gpool_backward(ebmc_gpool_mode mode, const float *dy, float *dx, int n, int c, int h, int w,
                    float beta, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
