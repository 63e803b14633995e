/* The learned per-channel scale y = x * s[c] (IGEBM residual blocks): forward, input gradient and
 * scale gradient. Grid-stride loops; the scale gradient is a per-channel block sum (no atomics). */
#include "chanscale.h"
#include "block_reduce.cuh"
#include "backend/cuda_check.h"

#define CS_BLOCK 256

static unsigned cs_grid(size_t count) {
    size_t g = CEIL_DIV(count, (size_t)CS_BLOCK);
    if (g > 65535u * 16u) g = 65535u * 16u;
    return (unsigned)g;
}

static __global__ void cs_fwd_kernel(const float *__restrict__ x, const float *__restrict__ sc, float *y,
                                     size_t count, int c, size_t hw) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x)
        y[i] = x[i] * sc[(i / hw) % (size_t)c];
}

static __global__ void cs_bwd_dx_kernel(const float *__restrict__ sc, const float *__restrict__ dy, float *dx,
                                        size_t count, int c, size_t hw, float beta) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
        const float g = dy[i] * sc[(i / hw) % (size_t)c];
        dx[i] = beta != 0.f ? g + beta * dx[i] : g;
    }
}

/* one block per channel: ds[ch] = beta*ds[ch] + sum_{n,hw} dy*x */
static __global__ void cs_bwd_ds_kernel(const float *__restrict__ x, const float *__restrict__ dy,
                                        float *__restrict__ ds, int n, int c, size_t hw, float beta) {
    const int ch = blockIdx.x;
    const size_t m = (size_t)n * hw;
    float acc = 0.f;
    for (size_t k = threadIdx.x; k < m; k += blockDim.x) {
        const size_t i = ((k / hw) * (size_t)c + (size_t)ch) * hw + k % hw;
        acc += dy[i] * x[i];
    }
    const float sum = block_sum(acc);
    if (threadIdx.x == 0) ds[ch] = beta != 0.f ? sum + beta * ds[ch] : sum;
}

void chan_scale_forward(const float *x, const float *sc, float *y, int n, int c, size_t hw, cudaStream_t s) {
    const size_t count = (size_t)n * (size_t)c * hw;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    cs_fwd_kernel<<<cs_grid(count), CS_BLOCK, 0, s>>>(x, sc, y, count, c, hw);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void chan_scale_backward(const float *x, const float *sc, const float *dy, float *dx, float *ds, int n, int c,
                         size_t hw, float beta_dx, float beta_s, cudaStream_t s) {
    const size_t count = (size_t)n * (size_t)c * hw;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    if (ds) {
        const size_t m = (size_t)n * hw;
        const int block = m >= 4096 ? 512 : (m >= 256 ? 256 : 64);
        cs_bwd_ds_kernel<<<c, block, 0, s>>>(x, dy, ds, n, c, hw, beta_s);
        CUDA_CHECK(cudaGetLastError());
    }
    if (dx) {
        cs_bwd_dx_kernel<<<cs_grid(count), CS_BLOCK, 0, s>>>(sc, dy, dx, count, c, hw, beta_dx);
        CUDA_CHECK(cudaGetLastError());
    }
    EBMC_NVTX_POP();
}
