/* defines: adam_update -- torch.optim.Adam step (L2 weight decay) on the device. */
#ifndef EBMC_KERNELS_ADAM_H
#define EBMC_KERNELS_ADAM_H

#include <cuda_runtime.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One Adam step over count parameters, in place on param, m, v (grad is not changed):
 *   g = grad + wd*param; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
 *   param -= step_size * m / (sqrt(v)/bc2_sqrt + eps)
 * with step_size = lr/(1-b1^t) and bc2_sqrt = sqrt(1-b2^t) computed by the caller (host,
 * double), as torch.optim.Adam (foreach=False, capturable=False). */
void adam_update(float *param, const float *grad, float *m, float *v, size_t count, float beta1,
                 float beta2, float eps, float weight_decay, float step_size, float bc2_sqrt,
                 cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
