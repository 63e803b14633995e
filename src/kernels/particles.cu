/* Kernels of the particle-dynamics ops, mirroring src/host/backend/cpu/particle_ops.c: the
 * element-wise parts one thread per element (double sigmoid / exp, as the CPU), the parameter
 * gradients (sums over rows) and the base energy (a sum over columns) one block per output with
 * a fixed-order double tree, so results are deterministic. No atomics. */
#include "particles.h"
#include "backend/cuda_check.h"
#include "ebmc/nvtx.h"

#define PT_BLOCK 256
#define RED_BLOCK 128 /* one block per reduced output; the sum order depends on it */

static __device__ double dsigm(double v) { return 1.0 / (1.0 + exp(-v)); }

/* fixed-order double sum over the block (blockDim.x == RED_BLOCK), returned to every thread.
 * Safe to call repeatedly (gbase_dparam calls it twice): the leading barrier keeps this call's
 * writes of part[] behind every thread's read of part[0] in the previous call. */
static __device__ double block_dsum(double v) {
    __shared__ double part[RED_BLOCK];
    __syncthreads();
    part[threadIdx.x] = v;
    __syncthreads();
    for (int o = RED_BLOCK / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) part[threadIdx.x] += part[threadIdx.x + o];
        __syncthreads();
    }
    return part[0];
}

static __global__ void pswish_fwd_kernel(ebmc_pswish_desc d, const float *x, const float *b, float *y) {
    size_t total = (size_t)d.n * d.c * d.hw;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)((i / d.hw) % d.c);
        y[i] = (float)(x[i] * dsigm((double)b[c] * x[i]));
    }
}

static __global__ void pswish_dx_kernel(ebmc_pswish_desc d, const float *x, const float *b, const float *dy,
                                        float *dx, float beta) {
    size_t total = (size_t)d.n * d.c * d.hw;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int c = (int)((i / d.hw) % d.c);
        double xv = x[i], s = dsigm((double)b[c] * xv);
        float v = (float)(dy[i] * (s + b[c] * xv * (s * (1.0 - s))));
        dx[i] = beta == 0.0f ? v : v + beta * dx[i];
    }
}

static __global__ void pswish_db_kernel(ebmc_pswish_desc d, const float *x, const float *b, const float *dy,
                                        float *db, float beta) {
    int c = blockIdx.x;
    size_t per = (size_t)d.n * d.hw;
    double acc = 0;
    for (size_t k = threadIdx.x; k < per; k += RED_BLOCK) {
        size_t n = k / d.hw, i = (n * d.c + c) * d.hw + k % d.hw;
        double xv = x[i], s = dsigm((double)b[c] * xv);
        acc += (double)dy[i] * xv * xv * (s * (1.0 - s));
    }
    acc = block_dsum(acc);
    if (threadIdx.x == 0) db[c] = beta == 0.0f ? (float)acc : (float)acc + beta * db[c];
}

static unsigned grid_for(size_t total) {
    size_t g = (total + PT_BLOCK - 1) / PT_BLOCK;
    return (unsigned)(g < 65535u * 16u ? (g ? g : 1) : 65535u * 16u);
}

void particles_pswish_fwd(const ebmc_pswish_desc *d, const float *x, const float *b, float *y, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    pswish_fwd_kernel<<<grid_for((size_t)d->n * d->c * d->hw), PT_BLOCK, 0, s>>>(*d, x, b, y);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void particles_pswish_bwd(const ebmc_pswish_desc *d, const float *x, const float *b, const float *dy, float *dx,
                          float *db, float beta_dx, float beta_param, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    if (db) { /* before dx: dx may alias dy */
        pswish_db_kernel<<<(unsigned)d->c, RED_BLOCK, 0, s>>>(*d, x, b, dy, db, beta_param);
        CUDA_CHECK(cudaGetLastError());
    }
    if (dx) {
        pswish_dx_kernel<<<grid_for((size_t)d->n * d->c * d->hw), PT_BLOCK, 0, s>>>(*d, x, b, dy, dx, beta_dx);
        CUDA_CHECK(cudaGetLastError());
    }
    EBMC_NVTX_POP();
}

#define HALF_LOG_2PI 0.91893853320467274178

static __global__ void gbase_fwd_kernel(ebmc_gbase_desc d, const float *x, const float *mu, const float *ls,
                                        float *y) {
    int r = blockIdx.x;
    double acc = 0;
    for (int j = threadIdx.x; j < d.cols; j += RED_BLOCK) {
        double z = ((double)x[(size_t)r * d.cols + j] - mu[j]) * exp(-(double)ls[j]);
        acc += 0.5 * z * z + ls[j] + HALF_LOG_2PI;
    }
    acc = block_dsum(acc);
    if (threadIdx.x == 0) y[r] = (float)acc;
}

static __global__ void gbase_dx_kernel(ebmc_gbase_desc d, const float *x, const float *mu, const float *ls,
                                       const float *dy, float *dx, float beta) {
    size_t total = (size_t)d.rows * d.cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int j = (int)(i % d.cols);
        double u = ((double)x[i] - mu[j]) * exp(-2.0 * ls[j]);
        float v = (float)(dy[i / d.cols] * u);
        dx[i] = beta == 0.0f ? v : v + beta * dx[i];
    }
}

/* one block per column: dmu_j and dlogstd_j, sums over the rows */
static __global__ void gbase_dparam_kernel(ebmc_gbase_desc d, const float *x, const float *mu, const float *ls,
                                           const float *dy, float *dmu, float *dls, float beta) {
    int j = blockIdx.x;
    double iv = exp(-2.0 * ls[j]), am = 0, al = 0;
    for (int r = threadIdx.x; r < d.rows; r += RED_BLOCK) {
        double e = (double)x[(size_t)r * d.cols + j] - mu[j], u = e * iv;
        am -= (double)dy[r] * u;
        al += (double)dy[r] * (1.0 - u * e);
    }
    am = block_dsum(am);
    if (threadIdx.x == 0) dmu[j] = beta == 0.0f ? (float)am : (float)am + beta * dmu[j];
    al = block_dsum(al);
    if (threadIdx.x == 0) dls[j] = beta == 0.0f ? (float)al : (float)al + beta * dls[j];
}

void particles_gbase_fwd(const ebmc_gbase_desc *d, const float *x, const float *mu, const float *logstd, float *y,
                         cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    gbase_fwd_kernel<<<(unsigned)d->rows, RED_BLOCK, 0, s>>>(*d, x, mu, logstd, y);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void particles_gbase_bwd(const ebmc_gbase_desc *d, const float *x, const float *mu, const float *logstd,
                         const float *dy, float *dx, float *dmu, float *dlogstd, float beta_dx, float beta_param,
                         cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    if (dmu) {
        gbase_dparam_kernel<<<(unsigned)d->cols, RED_BLOCK, 0, s>>>(*d, x, mu, logstd, dy, dmu, dlogstd, beta_param);
        CUDA_CHECK(cudaGetLastError());
    }
    if (dx) {
        gbase_dx_kernel<<<grid_for((size_t)d->rows * d->cols), PT_BLOCK, 0, s>>>(*d, x, mu, logstd, dy, dx, beta_dx);
        CUDA_CHECK(cudaGetLastError());
    }
    EBMC_NVTX_POP();
}

/* one thread per element of the copied rows; rows out of range are skipped, as the CPU */
static __global__ void rows_copy_kernel(ebmc_rows_desc d, const float *x, const int32_t *src, const int32_t *dst,
                                        float *y) {
    size_t total = (size_t)d.n * d.row_elems;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(k / d.row_elems);
        int sr = src ? src[i] : i, tr = dst ? dst[i] : i;
        if (sr < 0 || sr >= d.x_rows || tr < 0 || tr >= d.y_rows) continue;
        size_t e = k % d.row_elems;
        y[(size_t)tr * d.row_elems + e] = x[(size_t)sr * d.row_elems + e];
    }
}

void particles_rows_copy(const ebmc_rows_desc *d, const float *x, const int32_t *src, const int32_t *dst, float *y,
                         cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    rows_copy_kernel<<<grid_for((size_t)d->n * d->row_elems), PT_BLOCK, 0, s>>>(*d, x, src, dst, y);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}
