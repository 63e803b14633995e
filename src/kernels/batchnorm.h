/* defines: batchnorm_forward_train, batchnorm_backward -- BatchNorm in batch-statistics mode. */
#ifndef EBMC_KERNELS_BATCHNORM_H
#define EBMC_KERNELS_BATCHNORM_H

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x, y (N,C,H,W) (y == x allowed); gamma, beta (C) nullable (then 1 and 0).
 * Per channel over M = N*H*W values: mean, biased var (two passes), invstd = 1/sqrt(var+eps);
 * y = (x-mean)*invstd*gamma + beta. save_mean, save_invstd (C) written when non-NULL.
 * running_mean/running_var (C), when non-NULL: r = (1-momentum)*r + momentum*batch, with the
 * unbiased variance var*M/(M-1) (M == 1: the biased one) for running_var, as PyTorch.
 * Deterministic: one block per channel, fixed summation tree. */
void batchnorm_forward_train(const float *x, const float *gamma, const float *beta, float *y,
                             float *save_mean, float *save_invstd, float *running_mean,
                             float *running_var, int n, int c, int h, int w, float eps,
                             float momentum, cudaStream_t s);
/* x, dy, dx (N,C,H,W); gamma (C) nullable (1); save_mean, save_invstd (C) from the forward.
 * With xhat = (x-mean)*invstd: dbeta = sum dy, dgamma = sum dy*xhat (per channel),
 * dx = gamma*invstd*(dy - dbeta/M - xhat*dgamma/M).
 * dx = computed + beta_dx*dx; dgamma, dbeta = computed + beta_param*old. Any of dx, dgamma,
 * dbeta may be NULL (not computed). A beta of 0 means the old value is not read. */
void batchnorm_backward(const float *x, const float *dy, const float *gamma,
                        const float *save_mean, const float *save_invstd, float *dx,
                        float *dgamma, float *dbeta, int n, int c, int h, int w, float beta_dx,
                        float beta_param, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
