/* defines: chan_scale_forward, chan_scale_backward -- a learned per-channel scale y = x * s[c]
 * (IGEBM's residual-block scale `g`), forward and backward, on the device. */
#ifndef EBMC_KERNELS_CHANSCALE_H
#define EBMC_KERNELS_CHANSCALE_H

#include <cuda_runtime.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y (N,C,HW) = x * s[c] (y == x allowed) */
void chan_scale_forward(const float *x, const float *sc, float *y, int n, int c, size_t hw, cudaStream_t s);
/* dx = beta_dx*dx + dy * s[c] (dx nullable); ds[c] = beta_s*ds[c] + sum_{n,hw} dy*x (ds
 * nullable); a beta of 0 does not read the old values. One block per channel for ds, in a fixed
 * order (deterministic). */
void chan_scale_backward(const float *x, const float *sc, const float *dy, float *dx, float *ds, int n, int c,
                         size_t hw, float beta_dx, float beta_s, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
