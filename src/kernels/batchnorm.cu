/* BatchNorm2d/1d in training mode: batch statistics per channel with one block per channel and
 * a fixed reduction tree (deterministic, no atomics). */
#include "batchnorm.h"
#include "block_reduce.cuh"
#include "backend/cuda_check.h"

#define BN_BLOCK 512

/* element k (0 <= k < N*HW) of channel ch in (N,C,HW) */
static __device__ __forceinline__ size_t bn_index(size_t k, size_t hw, int c, int ch) {
    return ((k / hw) * (size_t)c + (size_t)ch) * hw + k % hw;
}

/* grid (C): statistics, then normalisation of channel blockIdx.x */
static __global__ void bn_fwd_kernel(const float *x, const float *__restrict__ gamma,
                                     const float *__restrict__ beta, float *y,
                                     float *__restrict__ save_mean,
                                     float *__restrict__ save_invstd,
                                     float *__restrict__ running_mean,
                                     float *__restrict__ running_var, int n, int c, size_t hw,
                                     float eps, float momentum) {
    const int ch = blockIdx.x;
    const size_t m = (size_t)n * hw;
    float acc = 0.f;
    for (size_t k = threadIdx.x; k < m; k += blockDim.x) acc += x[bn_index(k, hw, c, ch)];
    const float mean = block_sum(acc) / (float)m;
    acc = 0.f;
    for (size_t k = threadIdx.x; k < m; k += blockDim.x) {
        const float d = x[bn_index(k, hw, c, ch)] - mean;
        acc += d * d;
    }
    const float var = block_sum(acc) / (float)m; /* biased */
    const float invstd = 1.f / sqrtf(var + eps);
    if (threadIdx.x == 0) {
        if (save_mean) save_mean[ch] = mean;
        if (save_invstd) save_invstd[ch] = invstd;
        if (running_mean) running_mean[ch] = (1.f - momentum) * running_mean[ch] + momentum * mean;
        if (running_var) {
            const float unbiased = m > 1 ? var * ((float)m / (float)(m - 1)) : var;
            running_var[ch] = (1.f - momentum) * running_var[ch] + momentum * unbiased;
        }
    }
    const float g = gamma ? gamma[ch] : 1.f, b = beta ? beta[ch] : 0.f;
    /* in place (y == x) is safe: every read of this channel happened before block_sum's
     * barriers, and each element is read and written by the same thread here */
    for (size_t k = threadIdx.x; k < m; k += blockDim.x) {
        const size_t i = bn_index(k, hw, c, ch);
        y[i] = (x[i] - mean) * invstd * g + b;
    }
}

/* grid (C): dbeta, dgamma of channel blockIdx.x, then dx */
static __global__ void bn_bwd_kernel(const float *__restrict__ x, const float *dy,
                                     const float *__restrict__ gamma,
                                     const float *__restrict__ save_mean,
                                     const float *__restrict__ save_invstd, float *dx,
                                     float *__restrict__ dgamma, float *__restrict__ dbeta,
                                     int n, int c, size_t hw, float beta_dx, float beta_param) {
    const int ch = blockIdx.x;
    const size_t m = (size_t)n * hw;
    const float mean = save_mean[ch], invstd = save_invstd[ch];
    float sdy = 0.f, sdyx = 0.f;
    for (size_t k = threadIdx.x; k < m; k += blockDim.x) {
        const size_t i = bn_index(k, hw, c, ch);
        const float d = dy[i];
        sdy += d;
        sdyx += d * ((x[i] - mean) * invstd);
    }
    sdy = block_sum(sdy);   /* dbeta  */
    sdyx = block_sum(sdyx); /* dgamma */
    if (threadIdx.x == 0) {
        if (dbeta) dbeta[ch] = beta_param != 0.f ? sdy + beta_param * dbeta[ch] : sdy;
        if (dgamma) dgamma[ch] = beta_param != 0.f ? sdyx + beta_param * dgamma[ch] : sdyx;
    }
    if (!dx) return;
    const float g = gamma ? gamma[ch] : 1.f;
    const float scale = g * invstd;
    const float mdy = sdy / (float)m, mdyx = sdyx / (float)m;
    /* dx == dy would be safe too: each element is read and written by the same thread */
    for (size_t k = threadIdx.x; k < m; k += blockDim.x) {
        const size_t i = bn_index(k, hw, c, ch);
        const float xhat = (x[i] - mean) * invstd;
        float v = scale * (dy[i] - mdy - xhat * mdyx);
        if (beta_dx != 0.f) v += beta_dx * dx[i];
        dx[i] = v;
    }
}

void batchnorm_forward_train(const float *x, const float *gamma, const float *beta, float *y,
                             float *save_mean, float *save_invstd, float *running_mean,
                             float *running_var, int n, int c, int h, int w, float eps,
                             float momentum, cudaStream_t s) {
    const size_t hw = (size_t)h * (size_t)w;
    if (c <= 0 || n <= 0 || hw == 0) return;
    EBMC_NVTX_PUSH(__func__);
    bn_fwd_kernel<<<c, BN_BLOCK, 0, s>>>(x, gamma, beta, y, save_mean, save_invstd, running_mean,
                                         running_var, n, c, hw, eps, momentum);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void batchnorm_backward(const float *x, const float *dy, const float *gamma,
                        const float *save_mean, const float *save_invstd, float *dx,
                        float *dgamma, float *dbeta, int n, int c, int h, int w, float beta_dx,
                        float beta_param, cudaStream_t s) {
    const size_t hw = (size_t)h * (size_t)w;
    if (c <= 0 || n <= 0 || hw == 0) return;
    EBMC_NVTX_PUSH(__func__);
    bn_bwd_kernel<<<c, BN_BLOCK, 0, s>>>(x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta,
                                         n, c, hw, beta_dx, beta_param);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}
