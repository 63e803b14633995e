/* defines: adam_update -- torch.optim.Adam step (L2 weight decay) on the device. */
#ifndef EBMC_KERNELS_ADAM_H
#define EBMC_KERNELS_ADAM_H

#include <cuda_runtime.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One Adam step over count parameters, in place on param, m, v (grad is not changed):
 *   g = grad + wd*param; m = m*b1 + omb1*g; v = v*b2 + omb2*g*g;
 *   param -= step_size * m / (sqrt(v)/bc2_sqrt + eps)
 * with b1 = (float)beta1, omb1 = (float)(1 - beta1) (and b2, omb2), step_size = lr/(1-b1^t) and
 * bc2_sqrt = sqrt(1-b2^t) computed by the caller in double from the double hyper-parameters, as
 * torch.optim.Adam (foreach=False, capturable=False) hands them to its float kernels. */
/* clip_std > 0: g first clipped to +-(clip_std sqrtf(v_old / bc2) + clip_floor), bc2 = 1 - b2^t
 * (IGEBM's clipped Adam, ebmc_adam_desc). */
void adam_update(float *param, const float *grad, float *m, float *v, size_t count, float b1,
                 float omb1, float b2, float omb2, float eps, float weight_decay, float step_size,
                 float bc2_sqrt, float clip_std, float clip_floor, float bc2, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
