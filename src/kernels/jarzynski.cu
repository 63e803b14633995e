/* Weighted-walker kernels (specs/particles.md "What a GPU trainer must implement", J1-J3) and the
 * Gaussian-mixture energy of the 50-D experiment. Each mirrors src/host/backend/cpu/
 * jarzynski_cpu.c: the same formulas in double; only the order of the double sums differs (a
 * fixed tree here, sequential there), so results agree to ~1e-15 relative, and resampling
 * ancestors agree exactly unless a uniform falls within that of a CDF boundary.
 *   logw:     one block per walker (grid-stride), four double partial sums reduced in the block
 *   stats:    one block: max, then sum e^(A-m) and e^(2(A-m)), then the weights
 *   resample: one block decides and builds the CDF (chunked scan in double), then one thread
 *             per ancestor binary-searches it and zeroes the log-weight; all reads of the trigger
 *             happen on the device, so the step can be captured in a CUDA graph
   (the walkers' rows follow their ancestors through ROWS_COPY, particles.cu)
 *   gmm:      one thread per point (eval); one block per parameter, reducing over points (pgrad) */
#include "jarzynski.h"
#include "backend/cuda_check.h"
#include "ebmc/philox.h"

#define JZ_BLOCK 128      /* logw, pgrad: threads per block (fixed: the sum order depends on it) */
#define JZ_ONE 1024       /* stats, resample: the single block */
#define JZ_MAX_GRID 65535u

/* sum of v over the block (blockDim.x a multiple of 32, at most 1024), to every thread */
static __device__ double block_sum_d(double v) {
    __shared__ double part[32];
    __shared__ double total;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    __syncthreads();
    if (lane == 0) part[wid] = v;
    __syncthreads();
    if (wid == 0) {
        double t = lane < nw ? part[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) t += __shfl_down_sync(0xffffffffu, t, o);
        if (lane == 0) total = t;
    }
    __syncthreads();
    return total;
}

static __device__ double block_max_d(double v) {
    __shared__ double part[32];
    __shared__ double total;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_down_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0) part[wid] = v;
    __syncthreads();
    if (wid == 0) {
        double t = lane < nw ? part[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) t = fmax(t, __shfl_down_sync(0xffffffffu, t, o));
        if (lane == 0) total = t;
    }
    __syncthreads();
    return total;
}

/* ---- J1: the log-weight increment ---- */

static __global__ void logw_kernel(ebmc_jz_logw_desc d, const float *x, const float *xn, const float *u_old,
                                   const float *g_old, const float *u_new, const float *g_new, double *logw) {
    const double s2 = d.sigma * d.sigma, c1 = d.h / s2, c2 = d.h * d.h / (2.0 * s2);
    for (int i = blockIdx.x; i < d.n; i += gridDim.x) {
        const size_t o = (size_t)i * d.elems;
        double dold = 0, gold = 0, dnew = 0, gnew = 0;
        for (size_t e = threadIdx.x; e < d.elems; e += blockDim.x) {
            const double dx = (double)xn[o + e] - x[o + e], go = g_old[o + e], gn = g_new[o + e];
            dold += dx * go;
            gold += go * go;
            dnew -= dx * gn;
            gnew += gn * gn;
        }
        dold = block_sum_d(dold);
        gold = block_sum_d(gold);
        dnew = block_sum_d(dnew);
        gnew = block_sum_d(gnew);
        if (threadIdx.x == 0)
            logw[i] += (double)u_old[i] - (double)u_new[i] + (c1 * dold + c2 * gold) - (c1 * dnew + c2 * gnew);
    }
}

static __global__ void ediff_kernel(int n, const float *u_old, const float *u_new, double *logw) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) logw[i] += (double)u_old[i] - (double)u_new[i];
}

extern "C" void jz_logw_launch(const ebmc_jz_logw_desc *d, const float *x, const float *x_new, const float *u_old,
                               const float *g_old, const float *u_new, const float *g_new, double *logw,
                               cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    if (d->mode == EBMC_JZ_EDIFF) {
        ediff_kernel<<<CEIL_DIV(d->n, 256), 256, 0, s>>>(d->n, u_old, u_new, logw);
    } else {
        const unsigned g = (unsigned)d->n < JZ_MAX_GRID ? (unsigned)d->n : JZ_MAX_GRID;
        logw_kernel<<<g, JZ_BLOCK, 0, s>>>(*d, x, x_new, u_old, g_old, u_new, g_new, logw);
    }
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- J2: log-sum-exp, ESS, normalised weights ---- */

static __global__ void stats_kernel(int n, float w_scale, const double *logw, double *stats, float *w) {
    double m = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmax(m, logw[i]);
    m = block_max_d(m);
    double s1 = 0, s2 = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const double e = exp(logw[i] - m);
        s1 += e;
        s2 += e * e;
    }
    s1 = block_sum_d(s1);
    s2 = block_sum_d(s2);
    if (threadIdx.x == 0) {
        stats[0] = m;
        stats[1] = s1;
        stats[2] = s2;
        stats[3] = m + log(s1 / n);
        stats[4] = s1 * s1 / s2;
    }
    if (w)
        for (int i = threadIdx.x; i < n; i += blockDim.x) w[i] = (float)((double)w_scale * exp(logw[i] - m) / s1);
}

extern "C" void jz_stats_launch(const ebmc_jz_stats_desc *d, const double *logw, double *stats, float *w,
                                cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    stats_kernel<<<1, JZ_ONE, 0, s>>>(d->n, d->w_scale, logw, stats, w);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- J3: resampling ---- */

/* One block: the trigger, the inclusive CDF of e^(A-m) (each thread a contiguous chunk, then
 * the chunk offsets), and the bookkeeping of stats. */
static __global__ void cdf_kernel(int n, double threshold, const double *logw, double *stats, double *cdf) {
    __shared__ double off[JZ_ONE];
    if (!(stats[4] < threshold * n)) {
        __syncthreads();
        if (threadIdx.x == 0) stats[7] = 0;
        return;
    }
    const double m = stats[0];
    const int chunk = (n + blockDim.x - 1) / blockDim.x;
    const int lo = threadIdx.x * chunk, hi = lo + chunk < n ? lo + chunk : n;
    double acc = 0;
    for (int i = lo; i < hi; i++) cdf[i] = acc += exp(logw[i] - m);
    off[threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double run = 0;
        for (int t = 0; t < (int)blockDim.x; t++) {
            const double c = off[t];
            off[t] = run;
            run += c;
        }
    }
    __syncthreads();
    for (int i = lo; i < hi; i++) cdf[i] += off[threadIdx.x];
    __syncthreads();
    if (threadIdx.x == 0) {
        stats[5] += stats[3];
        stats[6] += 1;
        stats[7] = 1;
        stats[0] = 0, stats[1] = n, stats[2] = n, stats[3] = 0, stats[4] = n;
    }
}

static __device__ double resample_uniform(ebmc_rng_key k, uint32_t step, uint32_t j) {
    ebmc_u32x4 c = {{j / 4, 0xFFFFFFFEu, step, k.stream}};
    ebmc_u32x4 r = ebmc_philox4x32_10(c, (uint32_t)k.seed, (uint32_t)(k.seed >> 32));
    return ebmc_u32_to_unit(r.v[j % 4]);
}

static __global__ void ancestor_kernel(ebmc_jz_resample_desc d, double *logw, const double *stats,
                                       const double *cdf, int32_t *idx) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= d.n) return;
    if (stats[7] == 0) {
        idx[j] = j;
        return;
    }
    const uint32_t step = (d.rng.step_base ? *d.rng.step_base : 0u) + d.rng.step_offset;
    const double u = d.scheme == EBMC_RESAMPLE_SYSTEMATIC ? (resample_uniform(d.rng, step, 0) + j) / d.n
                                                          : resample_uniform(d.rng, step, (uint32_t)j);
    const double t = u * cdf[d.n - 1];
    int lo = 0, hi = d.n - 1;
    while (lo < hi) {
        const int mid = lo + (hi - lo) / 2;
        if (cdf[mid] > t) hi = mid;
        else lo = mid + 1;
    }
    idx[j] = lo;
    logw[j] = 0;
}

extern "C" void jz_resample_launch(const ebmc_jz_resample_desc *d, double *logw, double *stats, double *cdf,
                                   int32_t *idx, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    cdf_kernel<<<1, JZ_ONE, 0, s>>>(d->n, d->threshold, logw, stats, cdf);
    CUDA_CHECK(cudaGetLastError());
    ancestor_kernel<<<CEIL_DIV(d->n, 256), 256, 0, s>>>(*d, logw, stats, cdf, idx);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- the Gaussian mixture ---- */

static __global__ void gmm_eval_kernel(ebmc_gmm_desc d, const float *x, const float *a, const float *z, float *u,
                                       float *grad, float *resp) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= d.n) return;
    double lr[64];
    const float *xi = x + (size_t)i * d.dim;
    double mx = -INFINITY;
    for (int k = 0; k < d.k; k++) {
        double q = 0;
        for (int j = 0; j < d.dim; j++) {
            const double t = (double)xi[j] - a[(size_t)k * d.dim + j];
            q += t * t;
        }
        lr[k] = -0.5 * q - z[k];
        mx = fmax(mx, lr[k]);
    }
    double sum = 0;
    for (int k = 0; k < d.k; k++) sum += exp(lr[k] - mx);
    const double lse = mx + log(sum);
    for (int k = 0; k < d.k; k++) lr[k] = exp(lr[k] - lse);
    if (u) u[i] = (float)-lse;
    if (resp)
        for (int k = 0; k < d.k; k++) resp[(size_t)i * d.k + k] = (float)lr[k];
    if (grad)
        for (int j = 0; j < d.dim; j++) {
            double g = xi[j];
            for (int k = 0; k < d.k; k++) g -= lr[k] * a[(size_t)k * d.dim + j];
            grad[(size_t)i * d.dim + j] = (float)g;
        }
}

extern "C" void gmm_eval_launch(const ebmc_gmm_desc *d, const float *x, const float *means, const float *z,
                                float *u, float *grad, float *resp, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    gmm_eval_kernel<<<CEIL_DIV(d->n, 128), 128, 0, s>>>(*d, x, means, z, u, grad, resp);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* block b = k*(dim+1) + j: j < dim gives gmeans[k, j], j == dim gives gz[k] */
static __global__ void gmm_pgrad_kernel(ebmc_gmm_desc d, const float *x, const float *a, const float *resp,
                                        const float *w, float *gmeans, float *gz) {
    const int k = blockIdx.x / (d.dim + 1), j = blockIdx.x % (d.dim + 1);
    double sz = 0, sx = 0;
    for (int i = threadIdx.x; i < d.n; i += blockDim.x) {
        const double wr = (double)(w ? w[i] : 1.0f) * resp[(size_t)i * d.k + k];
        sz += wr;
        if (j < d.dim) sx += wr * x[(size_t)i * d.dim + j];
    }
    sz = block_sum_d(sz);
    sx = block_sum_d(sx);
    if (threadIdx.x != 0) return;
    if (j < d.dim) {
        const size_t o = (size_t)k * d.dim + j;
        const float v = (float)(d.scale * (sz * a[o] - sx));
        gmeans[o] = d.beta == 0.0f ? v : v + d.beta * gmeans[o];
    } else {
        const float v = (float)(d.scale * sz);
        gz[k] = d.beta == 0.0f ? v : v + d.beta * gz[k];
    }
}

extern "C" void gmm_pgrad_launch(const ebmc_gmm_desc *d, const float *x, const float *means, const float *resp,
                                 const float *w, float *gmeans, float *gz, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    gmm_pgrad_kernel<<<(unsigned)(d->k * (d->dim + 1)), JZ_BLOCK, 0, s>>>(*d, x, means, resp, w, gmeans, gz);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}
