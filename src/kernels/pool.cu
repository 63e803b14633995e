/* 2x2 average pooling (floor) and global average / sum pooling, forward and backward.
 * Backwards are gathers (one thread per input element): no atomics, deterministic. */
#include "pool.h"
#include "backend/cuda_check.h"

#define POOL_BLOCK 256

static unsigned pool_grid(size_t count) {
    size_t g = CEIL_DIV(count, (size_t)POOL_BLOCK);
    if (g > 65535u * 16u) g = 65535u * 16u; /* grid-stride beyond this */
    return (unsigned)g;
}

#define GRID_STRIDE_LOOP(i, count)                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (count);                 \
         i += (size_t)gridDim.x * blockDim.x)

/* y (NC,Ho,Wo) = mean of the 2x2 window of x (NC,H,W) at (2i, 2j) */
static __global__ void avgpool2_fwd_kernel(const float *__restrict__ x, float *__restrict__ y,
                                           size_t count, int h, int w, int ho, int wo) {
    GRID_STRIDE_LOOP(i, count) {
        const int oj = (int)(i % (size_t)wo);
        const size_t t = i / (size_t)wo;
        const int oi = (int)(t % (size_t)ho);
        const size_t plane = t / (size_t)ho;
        const float *p = x + (plane * (size_t)h + 2 * (size_t)oi) * (size_t)w + 2 * (size_t)oj;
        /* summed in PyTorch's window order, then divided by the window size */
        y[i] = (((p[0] + p[1]) + p[w]) + p[w + 1]) / 4.f;
    }
}

/* dx (NC,H,W): dy[i/2, j/2]/4 inside the pooled area, 0 on a dropped last row/column */
static __global__ void avgpool2_bwd_kernel(const float *__restrict__ dy, float *__restrict__ dx,
                                           size_t count, int h, int w, int ho, int wo,
                                           float beta) {
    GRID_STRIDE_LOOP(i, count) {
        const int j = (int)(i % (size_t)w);
        const size_t t = i / (size_t)w;
        const int r = (int)(t % (size_t)h);
        const size_t plane = t / (size_t)h;
        const int oi = r >> 1, oj = j >> 1;
        float g = 0.f;
        if (oi < ho && oj < wo) g = dy[(plane * (size_t)ho + (size_t)oi) * (size_t)wo + oj] / 4.f;
        if (beta != 0.f) g += beta * dx[i];
        dx[i] = g;
    }
}

/* One warp per (n,c) row of HW elements: y[row] = sum (/ HW for avg). */
static __global__ void gpool_fwd_kernel(const float *__restrict__ x, float *__restrict__ y,
                                        size_t rows, size_t hw, int avg) {
    const size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= rows) return; /* the whole warp leaves together */
    const float *p = x + row * hw;
    float acc = 0.f;
    for (size_t k = lane; k < hw; k += 32) acc += p[k];
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o);
    if (lane == 0) y[row] = avg ? acc / (float)hw : acc;
}

/* dx (NC,HW) = dy[row] (/ HW for avg) + beta*dx */
static __global__ void gpool_bwd_kernel(const float *__restrict__ dy, float *__restrict__ dx,
                                        size_t count, size_t hw, int avg, float beta) {
    GRID_STRIDE_LOOP(i, count) {
        const float d = dy[i / hw];
        float g = avg ? d / (float)hw : d;
        if (beta != 0.f) g += beta * dx[i];
        dx[i] = g;
    }
}

void avgpool2_forward(const float *x, float *y, int n, int c, int h, int w, cudaStream_t s) {
    const int ho = h / 2, wo = w / 2;
    const size_t count = (size_t)n * (size_t)c * (size_t)ho * (size_t)wo;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    avgpool2_fwd_kernel<<<pool_grid(count), POOL_BLOCK, 0, s>>>(x, y, count, h, w, ho, wo);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void avgpool2_backward(const float *dy, float *dx, int n, int c, int h, int w, float beta,
                       cudaStream_t s) {
    const size_t count = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    avgpool2_bwd_kernel<<<pool_grid(count), POOL_BLOCK, 0, s>>>(dy, dx, count, h, w, h / 2,
                                                                 w / 2, beta);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void gpool_forward(ebmc_gpool_mode mode, const float *x, float *y, int n, int c, int h, int w,
                   cudaStream_t s) {
    const size_t rows = (size_t)n * (size_t)c, hw = (size_t)h * (size_t)w;
    if (rows == 0 || hw == 0) return;
    EBMC_NVTX_PUSH(__func__);
    const int warps = POOL_BLOCK / 32;
    gpool_fwd_kernel<<<(unsigned)CEIL_DIV(rows, (size_t)warps), POOL_BLOCK, 0, s>>>(
        x, y, rows, hw, mode == EBMC_GPOOL_AVG);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void gpool_backward(ebmc_gpool_mode mode, const float *dy, float *dx, int n, int c, int h, int w,
                    float beta, cudaStream_t s) {
    const size_t hw = (size_t)h * (size_t)w, count = (size_t)n * (size_t)c * hw;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    gpool_bwd_kernel<<<pool_grid(count), POOL_BLOCK, 0, s>>>(dy, dx, count, hw,
                                                             mode == EBMC_GPOOL_AVG, beta);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}
