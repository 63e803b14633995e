/* defines: pad2d_copy -- explicit zero-pad / crop of (N,C,H,W) planes, used by the CUDA backend
 * when a convolution's padding is not what cuDNN accepts (asymmetric or negative pads). */
#ifndef EBMC_KERNELS_PAD_H
#define EBMC_KERNELS_PAD_H

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dst (NC,Hd,Wd), src (NC,Hs,Ws), nc = N*C planes; with (a, b) = (i-off_top, j-off_left):
 *   dst[p,i,j] = (0 <= a < Hs && 0 <= b < Ws ? src[p,a,b] : 0) + beta*dst[p,i,j]
 * Positive offsets pad (zeros on top/left), negative offsets crop. beta == 0: dst is not read.
 * src and dst must not overlap. */
void pad2d_copy(const float *src, int nc, int hs, int ws, float *dst, int hd, int wd,
                int off_top, int off_left, float beta, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
