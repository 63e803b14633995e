/* Element-wise kernels: bias, activations (ReLU, LeakyReLU, tanh, SiLU), axpby, fill.
 * One thread per element with grid-stride loops (counts are size_t). No float atomics. */
#include "elementwise.h"
#include "block_reduce.cuh"
#include "backend/cuda_check.h"

#define EW_BLOCK 256

static unsigned ew_grid(size_t count) {
    size_t g = CEIL_DIV(count, (size_t)EW_BLOCK);
    if (g > 65535u * 16u) g = 65535u * 16u; /* the kernels stride beyond this */
    return (unsigned)g;
}

#define GRID_STRIDE_LOOP(i, count)                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (count);                 \
         i += (size_t)gridDim.x * blockDim.x)

/* ---- deterministic block sum (blockDim.x a multiple of 32, at most 1024) ---- */

/* ---- bias ---- */

/* y (N,C,HW): y[i] += b[(i / hw) % c] */
static __global__ void bias_fwd_kernel(const float *__restrict__ b, float *__restrict__ y,
                                       size_t count, int c, size_t hw) {
    GRID_STRIDE_LOOP(i, count) y[i] += b[(i / hw) % (size_t)c];
}

/* one block per channel: db[ch] = beta*db[ch] + sum_{n,hw} dy[n,ch,hw] */
static __global__ void bias_bwd_kernel(const float *__restrict__ dy, float *__restrict__ db,
                                       int n, int c, size_t hw, float beta) {
    const int ch = blockIdx.x;
    const size_t m = (size_t)n * hw;
    float acc = 0.f;
    for (size_t k = threadIdx.x; k < m; k += blockDim.x) {
        const size_t in = k / hw, j = k % hw;
        acc += dy[(in * (size_t)c + (size_t)ch) * hw + j];
    }
    const float sum = block_sum(acc);
    if (threadIdx.x == 0) db[ch] = beta != 0.f ? sum + beta * db[ch] : sum;
}

void bias_forward(const float *b, float *y, int n, int c, size_t hw, cudaStream_t s) {
    const size_t count = (size_t)n * (size_t)c * hw;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    bias_fwd_kernel<<<ew_grid(count), EW_BLOCK, 0, s>>>(b, y, count, c, hw);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void bias_backward(const float *dy, float *db, int n, int c, size_t hw, float beta,
                   cudaStream_t s) {
    if (c <= 0) return;
    EBMC_NVTX_PUSH(__func__);
    const size_t m = (size_t)n * hw;
    const int block = m >= 4096 ? 512 : (m >= 256 ? 256 : 64);
    bias_bwd_kernel<<<c, block, 0, s>>>(dy, db, n, c, hw, beta);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- activations ---- */

template <int KIND>
static __device__ __forceinline__ float act_f(float x, float slope) {
    if (KIND == EBMC_ACT_RELU) return x > 0.f ? x : 0.f;
    if (KIND == EBMC_ACT_LRELU) return x > 0.f ? x : x * slope;
    if (KIND == EBMC_ACT_TANH) return tanhf(x);
    if (KIND == EBMC_ACT_SILU) return x / (1.f + expf(-x));
    return x; /* identity */
}

/* f'(.)*dy; tanh takes y = tanh(x), the others x */
template <int KIND>
static __device__ __forceinline__ float act_df(float x, float y, float dy, float slope) {
    if (KIND == EBMC_ACT_RELU) return x > 0.f ? dy : 0.f;
    if (KIND == EBMC_ACT_LRELU) return x > 0.f ? dy : dy * slope;
    if (KIND == EBMC_ACT_TANH) return dy * (1.f - y * y);
    if (KIND == EBMC_ACT_SILU) {
        const float sg = 1.f / (1.f + expf(-x));
        return dy * sg * (1.f + x * (1.f - sg));
    }
    return dy; /* identity */
}

/* x, y (count); x == y allowed, so no __restrict__ */
template <int KIND>
static __global__ void act_fwd_kernel(const float *x, float *y, size_t count, float slope) {
    GRID_STRIDE_LOOP(i, count) y[i] = act_f<KIND>(x[i], slope);
}

/* dx, dy (count); dx == dy allowed. x or y may be NULL when KIND does not read it. */
template <int KIND>
static __global__ void act_bwd_kernel(const float *x, const float *y, const float *dy, float *dx,
                                      size_t count, float slope, float beta) {
    GRID_STRIDE_LOOP(i, count) {
        const float xv = KIND == EBMC_ACT_TANH || KIND == EBMC_ACT_IDENTITY ? 0.f : x[i];
        const float yv = KIND == EBMC_ACT_TANH ? y[i] : 0.f;
        float g = act_df<KIND>(xv, yv, dy[i], slope);
        if (beta != 0.f) g += beta * dx[i];
        dx[i] = g;
    }
}

void activation_forward(ebmc_act_kind kind, float slope, const float *x, float *y, size_t count,
                        cudaStream_t s) {
    if (count == 0) return;
    if (kind == EBMC_ACT_IDENTITY && x == y) return;
    EBMC_NVTX_PUSH(__func__);
    const unsigned g = ew_grid(count);
    switch (kind) {
    case EBMC_ACT_RELU:
        act_fwd_kernel<EBMC_ACT_RELU><<<g, EW_BLOCK, 0, s>>>(x, y, count, slope);
        break;
    case EBMC_ACT_LRELU:
        act_fwd_kernel<EBMC_ACT_LRELU><<<g, EW_BLOCK, 0, s>>>(x, y, count, slope);
        break;
    case EBMC_ACT_TANH:
        act_fwd_kernel<EBMC_ACT_TANH><<<g, EW_BLOCK, 0, s>>>(x, y, count, slope);
        break;
    case EBMC_ACT_SILU:
        act_fwd_kernel<EBMC_ACT_SILU><<<g, EW_BLOCK, 0, s>>>(x, y, count, slope);
        break;
    default: act_fwd_kernel<EBMC_ACT_IDENTITY><<<g, EW_BLOCK, 0, s>>>(x, y, count, slope); break;
    }
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void activation_backward(ebmc_act_kind kind, float slope, const float *x, const float *y,
                         const float *dy, float *dx, size_t count, float beta, cudaStream_t s) {
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    const unsigned g = ew_grid(count);
    switch (kind) {
    case EBMC_ACT_RELU:
        act_bwd_kernel<EBMC_ACT_RELU><<<g, EW_BLOCK, 0, s>>>(x, y, dy, dx, count, slope, beta);
        break;
    case EBMC_ACT_LRELU:
        act_bwd_kernel<EBMC_ACT_LRELU><<<g, EW_BLOCK, 0, s>>>(x, y, dy, dx, count, slope, beta);
        break;
    case EBMC_ACT_TANH:
        act_bwd_kernel<EBMC_ACT_TANH><<<g, EW_BLOCK, 0, s>>>(x, y, dy, dx, count, slope, beta);
        break;
    case EBMC_ACT_SILU:
        act_bwd_kernel<EBMC_ACT_SILU><<<g, EW_BLOCK, 0, s>>>(x, y, dy, dx, count, slope, beta);
        break;
    default:
        act_bwd_kernel<EBMC_ACT_IDENTITY><<<g, EW_BLOCK, 0, s>>>(x, y, dy, dx, count, slope, beta);
        break;
    }
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- axpby, fill ---- */

/* y = a*x + b*y; x == y allowed */
static __global__ void axpby_kernel(float a, const float *x, float b, float *y, size_t count) {
    GRID_STRIDE_LOOP(i, count) {
        float v = a * x[i];
        if (b != 0.f) v += b * y[i];
        y[i] = v;
    }
}

static __global__ void fill_kernel(float value, float *__restrict__ y, size_t count) {
    GRID_STRIDE_LOOP(i, count) y[i] = value;
}

void axpby_apply(float a, const float *x, float b, float *y, size_t count, cudaStream_t s) {
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    axpby_kernel<<<ew_grid(count), EW_BLOCK, 0, s>>>(a, x, b, y, count);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void fill_apply(float value, float *y, size_t count, cudaStream_t s) {
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    fill_kernel<<<ew_grid(count), EW_BLOCK, 0, s>>>(value, y, count);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}
