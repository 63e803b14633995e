/* Spectral normalisation: power iteration, sigma, W/sigma and the backward, with small
 * deterministic kernels (own mat-vec kernels rather than cuBLAS gemv, so that no TF32 math mode
 * and no library-chosen summation order reaches sigma). */
#include "spectral.h"
#include "block_reduce.cuh"
#include "backend/cuda_check.h"

#define SN_BLOCK 256
#define SN_NORM_BLOCK 1024
#define SN_MAX_PARTS 256

/* out (cols) = W^T a, W (rows,cols), a (rows): one thread per column, rows summed in order
 * (coalesced: neighbouring threads read neighbouring columns). */
static __global__ void sn_wt_vec_kernel(const float *__restrict__ w, const float *__restrict__ a,
                                        float *__restrict__ out, int rows, int cols) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols) return;
    float acc = 0.f;
    for (int r = 0; r < rows; r++) acc += w[(size_t)r * cols + j] * a[r];
    out[j] = acc;
}

/* out (rows) = W a, W (rows,cols), a (cols): one warp per row */
static __global__ void sn_w_vec_kernel(const float *__restrict__ w, const float *__restrict__ a,
                                       float *__restrict__ out, int rows, int cols) {
    const int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return; /* the whole warp leaves together */
    const float *p = w + (size_t)r * cols;
    float acc = 0.f;
    for (int j = lane; j < cols; j += 32) acc += p[j] * a[j];
    acc = warp_sum(acc);
    if (lane == 0) out[r] = acc;
}

/* single block: x (n) /= max(||x||_2, eps) */
static __global__ void sn_normalize_kernel(float *x, int n, float eps) {
    float acc = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += x[i] * x[i];
    const float nrm = sqrtf(block_sum(acc));
    const float d = fmaxf(nrm, eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) x[i] = x[i] / d;
}

/* single block: sigma[0] = u . wv, both (rows) */
static __global__ void sn_sigma_kernel(const float *__restrict__ u, const float *__restrict__ wv,
                                       float *__restrict__ sigma, int rows, int lower_bound) {
    float acc = 0.f;
    for (int i = threadIdx.x; i < rows; i += blockDim.x) acc += u[i] * wv[i];
    float s = block_sum(acc);
    if (lower_bound) s = fmaxf(s + 1e-6f, 1.0f); /* the divisor max(sigma + 1e-6, 1) */
    if (threadIdx.x == 0) sigma[0] = s;
}

/* w_sn = w / sigma[0] over count elements */
static __global__ void sn_scale_kernel(const float *__restrict__ w, const float *__restrict__ sigma,
                                       float *__restrict__ w_sn, size_t count) {
    const float sg = sigma[0];
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        w_sn[i] = w[i] / sg;
}

/* grid (parts): part[b] = sum over a fixed strided subset of dW_sn .* W */
static __global__ void sn_dot_parts_kernel(const float *__restrict__ a, const float *__restrict__ b,
                                           float *__restrict__ part, size_t count) {
    float acc = 0.f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        acc += a[i] * b[i];
    const float s = block_sum(acc);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

/* single block: out[0] = sum of part (nparts), in order */
static __global__ void sn_sum_parts_kernel(const float *__restrict__ part, float *__restrict__ out,
                                           int nparts) {
    float acc = 0.f;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += part[i];
    const float s = block_sum(acc);
    if (threadIdx.x == 0) out[0] = s;
}

/* dw (rows,cols) = dw_sn/sigma - (dot/sigma^2) u v^T + beta*dw */
static __global__ void sn_bwd_kernel(const float *__restrict__ dw_sn, const float *__restrict__ u,
                                     const float *__restrict__ v, const float *__restrict__ sigma,
                                     const float *__restrict__ dot, float *__restrict__ dw,
                                     size_t count, int cols, float beta, int lower_bound) {
    const float sg = sigma[0];
    const float coef = lower_bound && sg == 1.0f ? 0.0f : dot[0] / (sg * sg); /* W_sn = W */
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / (size_t)cols, j = i % (size_t)cols;
        float g = dw_sn[i] / sg - coef * (u[r] * v[j]);
        if (beta != 0.f) g += beta * dw[i];
        dw[i] = g;
    }
}

static unsigned sn_grid(size_t count) {
    size_t g = CEIL_DIV(count, (size_t)SN_BLOCK);
    if (g > 65535u * 16u) g = 65535u * 16u;
    return (unsigned)g;
}

/* partial sums for the backward's dot product: a function of the size only (reproducible) */
static int sn_parts(size_t count) {
    size_t p = CEIL_DIV(count, (size_t)SN_BLOCK * 16);
    if (p < 1) p = 1;
    return (int)(p > SN_MAX_PARTS ? SN_MAX_PARTS : p);
}

size_t spectral_power_scratch_floats(int rows, int cols) {
    (void)cols;
    return (size_t)rows; /* W v for sigma */
}

size_t spectral_backward_scratch_floats(int rows, int cols) {
    return (size_t)sn_parts((size_t)rows * (size_t)cols) + 1; /* partial sums, then the dot */
}

void spectral_power_iteration(const float *w, float *u, float *v, float *sigma, float *w_sn,
                              int rows, int cols, int n_iter, float eps, int lower_bound,
                              float *scratch, cudaStream_t s) {
    if (rows <= 0 || cols <= 0) return;
    EBMC_NVTX_PUSH(__func__);
    const unsigned gcols = (unsigned)CEIL_DIV(cols, SN_BLOCK);
    const unsigned grows = (unsigned)CEIL_DIV(rows, SN_BLOCK / 32);
    for (int it = 0; it < n_iter; it++) {
        /* v = normalize(W^T u): u is only read, v only written, then scaled in place */
        sn_wt_vec_kernel<<<gcols, SN_BLOCK, 0, s>>>(w, u, v, rows, cols);
        CUDA_CHECK(cudaGetLastError());
        sn_normalize_kernel<<<1, SN_NORM_BLOCK, 0, s>>>(v, cols, eps);
        CUDA_CHECK(cudaGetLastError());
        /* u = normalize(W v) */
        sn_w_vec_kernel<<<grows, SN_BLOCK, 0, s>>>(w, v, u, rows, cols);
        CUDA_CHECK(cudaGetLastError());
        sn_normalize_kernel<<<1, SN_NORM_BLOCK, 0, s>>>(u, rows, eps);
        CUDA_CHECK(cudaGetLastError());
    }
    /* sigma = u . (W v) */
    float *wv = scratch; /* (rows) */
    sn_w_vec_kernel<<<grows, SN_BLOCK, 0, s>>>(w, v, wv, rows, cols);
    CUDA_CHECK(cudaGetLastError());
    sn_sigma_kernel<<<1, SN_NORM_BLOCK, 0, s>>>(u, wv, sigma, rows, lower_bound);
    CUDA_CHECK(cudaGetLastError());
    if (w_sn) {
        const size_t count = (size_t)rows * (size_t)cols;
        sn_scale_kernel<<<sn_grid(count), SN_BLOCK, 0, s>>>(w, sigma, w_sn, count);
        CUDA_CHECK(cudaGetLastError());
    }
    EBMC_NVTX_POP();
}

void spectral_backward(const float *w, const float *u, const float *v, const float *sigma,
                       const float *dw_sn, float *dw, int rows, int cols, float beta,
                       int lower_bound, float *scratch, cudaStream_t s) {
    const size_t count = (size_t)rows * (size_t)cols;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    const int parts = sn_parts(count);
    float *part = scratch, *dot = scratch + parts;
    sn_dot_parts_kernel<<<parts, SN_BLOCK, 0, s>>>(dw_sn, w, part, count);
    CUDA_CHECK(cudaGetLastError());
    sn_sum_parts_kernel<<<1, SN_BLOCK, 0, s>>>(part, dot, parts);
    CUDA_CHECK(cudaGetLastError());
    sn_bwd_kernel<<<sn_grid(count), SN_BLOCK, 0, s>>>(dw_sn, u, v, sigma, dot, dw, count, cols,
                                                      beta, lower_bound);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}
