/* defines: bias_forward, bias_backward, activation_forward, activation_backward, axpby_apply,
 * fill_apply -- element-wise kernels of the CUDA backend (all float32, all on stream s). */
#ifndef EBMC_KERNELS_ELEMENTWISE_H
#define EBMC_KERNELS_ELEMENTWISE_H

#include "ebmc/backend.h"
#include <cuda_runtime.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y (N,C,HW) += b (C), in place. */
void bias_forward(const float *b, float *y, int n, int c, size_t hw, cudaStream_t s);
/* db (C) = beta*db + sum over n, hw of dy (N,C,HW); deterministic (one block per channel).
 * beta == 0: db is not read. */
void bias_backward(const float *dy, float *db, int n, int c, size_t hw, float beta,
                   cudaStream_t s);
/* y = f(x) over count elements (y == x allowed). */
void activation_forward(ebmc_act_kind kind, float slope, const float *x, float *y, size_t count,
                        cudaStream_t s);
/* dx = f'(.)*dy + beta*dx: tanh reads y (the forward's output), the others x (its input);
 * the one not needed may be NULL. dx == dy allowed. beta == 0: dx is not read. */
void activation_backward(ebmc_act_kind kind, float slope, const float *x, const float *y,
                         const float *dy, float *dx, size_t count, float beta, cudaStream_t s);
/* y = a*x + b*y (b == 0: y is not read; x == y allowed). */
void axpby_apply(float a, const float *x, float b, float *y, size_t count, cudaStream_t s);
/* y = value over count elements. */
void fill_apply(float value, float *y, size_t count, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
