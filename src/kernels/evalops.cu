/* Inception-v3's inference layers on the GPU: k x k pooling with padding, bilinear resize
 * (align_corners=False) and channel concatenation. One thread per output element; the same
 * arithmetic, in the same order, as the CPU reference (src/host/backend/cpu/cpu_eval_ops.c). */
#include "evalops.h"
#include "backend/cuda_check.h"

#define EVAL_BLOCK 256

static unsigned eval_grid(size_t count) {
    size_t g = CEIL_DIV(count, (size_t)EVAL_BLOCK);
    if (g > 65535u * 16u) g = 65535u * 16u; /* grid-stride beyond this */
    return (unsigned)g;
}

#define GRID_STRIDE_LOOP(i, count)                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (count);                 \
         i += (size_t)gridDim.x * blockDim.x)

static __global__ void pool2d_kernel(const float *__restrict__ x, float *__restrict__ y, size_t count,
                                     ebmc_pool_desc d, int ho, int wo) {
    GRID_STRIDE_LOOP(i, count) {
        const int oj = (int)(i % (size_t)wo);
        const size_t t = i / (size_t)wo;
        const int oi = (int)(t % (size_t)ho);
        const float *xp = x + (t / (size_t)ho) * (size_t)d.h * d.w;
        int h0 = oi * d.stride - d.pad, w0 = oj * d.stride - d.pad;
        int hs = max(h0, 0), ws = max(w0, 0), he = min(h0 + d.k, d.h), we = min(w0 + d.k, d.w);
        float r;
        if (d.mode == EBMC_POOL_MAX) {
            r = -INFINITY;
            for (int a = hs; a < he; a++)
                for (int b = ws; b < we; b++) {
                    float v = xp[(size_t)a * d.w + b];
                    if (v > r || isnan(v)) r = v;
                }
        } else {
            float s = 0.f;
            for (int a = hs; a < he; a++)
                for (int b = ws; b < we; b++) s += xp[(size_t)a * d.w + b];
            int div = d.count_include_pad ? d.k * d.k : (he - hs) * (we - ws);
            r = s / (float)div;
        }
        y[i] = r;
    }
}

void pool2d_forward(const ebmc_pool_desc *d, const float *x, float *y, cudaStream_t s) {
    int ho = (d->h + 2 * d->pad - d->k) / d->stride + 1, wo = (d->w + 2 * d->pad - d->k) / d->stride + 1;
    size_t count = (size_t)d->n * d->c * ho * wo;
    pool2d_kernel<<<eval_grid(count), EVAL_BLOCK, 0, s>>>(x, y, count, *d, ho, wo);
    CUDA_CHECK(cudaGetLastError());
}

static __device__ void src_index(int o, int in, int out, bool tf1, int *i0, int *step, float *l1) {
    float scale = __fdiv_rn((float)in, (float)out);
    float src = tf1 ? __fmul_rn(scale, (float)o) : __fsub_rn(__fmul_rn(scale, __fadd_rn((float)o, 0.5f)), 0.5f);
    if (src < 0.f) src = 0.f;
    if (src > (float)(in - 1)) src = (float)(in - 1);
    *i0 = (int)src;
    *step = *i0 < in - 1 ? 1 : 0;
    *l1 = src - (float)*i0;
}

static __global__ void resize_kernel(const float *__restrict__ x, float *__restrict__ y, size_t count,
                                     ebmc_resize_desc d) {
    GRID_STRIDE_LOOP(i, count) {
        const int j = (int)(i % (size_t)d.wo);
        const size_t t = i / (size_t)d.wo;
        const int r = (int)(t % (size_t)d.ho);
        const float *xp = x + (t / (size_t)d.ho) * (size_t)d.h * d.w;
        int h0, hs, w0, ws;
        float lh, lw;
        src_index(r, d.h, d.ho, d.tf1, &h0, &hs, &lh);
        src_index(j, d.w, d.wo, d.tf1, &w0, &ws, &lw);
        const float *p = xp + (size_t)h0 * d.w + w0;
        size_t dn = (size_t)hs * d.w;
        /* __fmul_rn/__fadd_rn: no contraction into FMA, so the CPU's rounding is reproduced */
        float top = __fadd_rn(__fmul_rn(1.f - lw, p[0]), __fmul_rn(lw, p[ws]));
        float bot = __fadd_rn(__fmul_rn(1.f - lw, p[dn]), __fmul_rn(lw, p[dn + ws]));
        y[i] = __fadd_rn(__fmul_rn(1.f - lh, top), __fmul_rn(lh, bot));
    }
}

void resize_bilinear_forward(const ebmc_resize_desc *d, const float *x, float *y, cudaStream_t s) {
    size_t count = (size_t)d->n * d->c * d->ho * d->wo;
    resize_kernel<<<eval_grid(count), EVAL_BLOCK, 0, s>>>(x, y, count, *d);
    CUDA_CHECK(cudaGetLastError());
}

static __global__ void chan_copy_kernel(const float *__restrict__ x, float *__restrict__ y, size_t count,
                                        ebmc_chan_copy_desc d) {
    GRID_STRIDE_LOOP(i, count) {
        const size_t part = (size_t)d.c * d.hw, n = i / part;
        y[(n * d.c_total + d.c_off) * d.hw + (i - n * part)] = x[i];
    }
}

void chan_copy_forward(const ebmc_chan_copy_desc *d, const float *x, float *y, cudaStream_t s) {
    size_t count = (size_t)d->n * d->c * d->hw;
    chan_copy_kernel<<<eval_grid(count), EVAL_BLOCK, 0, s>>>(x, y, count, *d);
    CUDA_CHECK(cudaGetLastError());
}
