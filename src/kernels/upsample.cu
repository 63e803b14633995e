/* x2 upsampling: bilinear with align_corners=True (PyTorch's arithmetic, in float) and nearest,
 * forward and backward. Backwards gather over the outputs that touch each input element. */
#include "upsample.h"
#include "backend/cuda_check.h"

#define UP_BLOCK 256

static unsigned up_grid(size_t count) {
    size_t g = CEIL_DIV(count, (size_t)UP_BLOCK);
    if (g > 65535u * 16u) g = 65535u * 16u; /* grid-stride beyond this */
    return (unsigned)g;
}

#define GRID_STRIDE_LOOP(i, count)                                                              \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (count);                 \
         i += (size_t)gridDim.x * blockDim.x)

/* align_corners=True scale, as PyTorch's area_pixel_compute_scale in float:
 * (in - 1) / (out - 1) with out = 2*in (>= 2, so never a division by zero). */
static float ac_scale(int in) { return (float)(in - 1) / (float)(2 * in - 1); }

/* Source taps of output index o along one dimension (PyTorch upsample_bilinear2d):
 * i0 = floor(scale*o), i1 = i0 + (i0 < in-1), weights (1-l1) on i0 and l1 on i1. */
static __device__ __forceinline__ void bilinear_taps(int o, int in, float scale, int *i0, int *i1,
                                                     float *l1) {
    const float r = scale * (float)o;
    int i = (int)r; /* r >= 0: truncation is floor */
    if (i > in - 1) i = in - 1; /* never taken in exact arithmetic; guards rounding */
    *i0 = i;
    *i1 = i + (i < in - 1 ? 1 : 0);
    *l1 = r - (float)i;
}

/* y (NC,2H,2W) from x (NC,H,W) */
static __global__ void bilinear_fwd_kernel(const float *__restrict__ x, float *__restrict__ y,
                                           size_t count, int h, int w, float sh, float sw) {
    const int ho = 2 * h, wo = 2 * w;
    GRID_STRIDE_LOOP(i, count) {
        const int ox = (int)(i % (size_t)wo);
        const size_t t = i / (size_t)wo;
        const int oy = (int)(t % (size_t)ho);
        const size_t plane = t / (size_t)ho;
        int y0, y1, x0, x1;
        float ly, lx;
        bilinear_taps(oy, h, sh, &y0, &y1, &ly);
        bilinear_taps(ox, w, sw, &x0, &x1, &lx);
        const float hy = 1.f - ly, hx = 1.f - lx;
        const float *p = x + plane * (size_t)h * (size_t)w;
        y[i] = hy * (hx * p[(size_t)y0 * w + x0] + lx * p[(size_t)y0 * w + x1]) +
               ly * (hx * p[(size_t)y1 * w + x0] + lx * p[(size_t)y1 * w + x1]);
    }
}

/* The range [lo, hi] of outputs o (along one dimension of size 2*in) that may touch input
 * index i. A tap of o touches i only if floor(scale*o) is i-1 or i, i.e. scale*o in [i-1, i+1),
 * i.e. o in [(i-1)/scale, (i+1)/scale) with 1/scale = (2in-1)/(in-1) <= 3 (in >= 2): at most 7
 * outputs. The range adds one index of margin on each side against float rounding; every
 * candidate is re-checked with the forward's own arithmetic (bilinear_tap_weight), so the set
 * used is exactly the forward's. in == 1: both outputs read index 0. */
static __device__ __forceinline__ void bilinear_gather_range(int i, int in, int *lo, int *hi) {
    const int out = 2 * in;
    *lo = 0;
    *hi = out - 1;
    if (in > 1) {
        const long long num = 2LL * in - 1, den = in - 1;
        const long long l = ((long long)(i - 1) * num) / den - 1; /* C division truncates: */
        const long long u = ((long long)(i + 1) * num) / den + 1; /* the margin covers it  */
        if (l > 0) *lo = (int)l;
        if (u < out - 1) *hi = (int)u;
    }
}

/* The weight of input index i in output o's interpolation (0 if o does not read i): (1-l1) if
 * i is o's first tap, l1 if its second, both if they coincide (the last index). */
static __device__ __forceinline__ bool bilinear_tap_weight(int o, int i, int in, float scale,
                                                           float *wgt) {
    int i0, i1;
    float l1;
    bilinear_taps(o, in, scale, &i0, &i1, &l1);
    if (i0 != i && i1 != i) return false;
    float w = 0.f;
    if (i0 == i) w += 1.f - l1;
    if (i1 == i) w += l1;
    *wgt = w;
    return true;
}

/* dx (NC,H,W) = sum over the outputs touching it of weight_y*weight_x*dy (NC,2H,2W) + beta*dx,
 * summed row by row in a fixed order (no local arrays: the x taps are recomputed per row) */
static __global__ void bilinear_bwd_kernel(const float *__restrict__ dy, float *__restrict__ dx,
                                           size_t count, int h, int w, float sh, float sw,
                                           float beta) {
    const int wo = 2 * w;
    GRID_STRIDE_LOOP(i, count) {
        const int ix = (int)(i % (size_t)w);
        const size_t t = i / (size_t)w;
        const int iy = (int)(t % (size_t)h);
        const size_t plane = t / (size_t)h;
        int ylo, yhi, xlo, xhi;
        bilinear_gather_range(iy, h, &ylo, &yhi);
        bilinear_gather_range(ix, w, &xlo, &xhi);
        const float *p = dy + plane * (size_t)(2 * h) * (size_t)wo;
        float acc = 0.f;
        for (int oy = ylo; oy <= yhi; oy++) {
            float wy;
            if (!bilinear_tap_weight(oy, iy, h, sh, &wy)) continue;
            const float *row = p + (size_t)oy * wo;
            float racc = 0.f;
            for (int ox = xlo; ox <= xhi; ox++) {
                float wx;
                if (bilinear_tap_weight(ox, ix, w, sw, &wx)) racc += wx * row[ox];
            }
            acc += wy * racc;
        }
        if (beta != 0.f) acc += beta * dx[i];
        dx[i] = acc;
    }
}

/* y (NC,2H,2W) = x[oy/2, ox/2] */
static __global__ void nearest_fwd_kernel(const float *__restrict__ x, float *__restrict__ y,
                                          size_t count, int h, int w) {
    const int ho = 2 * h, wo = 2 * w;
    GRID_STRIDE_LOOP(i, count) {
        const int ox = (int)(i % (size_t)wo);
        const size_t t = i / (size_t)wo;
        const int oy = (int)(t % (size_t)ho);
        const size_t plane = t / (size_t)ho;
        y[i] = x[(plane * (size_t)h + (size_t)(oy >> 1)) * (size_t)w + (ox >> 1)];
    }
}

/* dx (NC,H,W) = sum of the 2x2 block of dy (NC,2H,2W) + beta*dx */
static __global__ void nearest_bwd_kernel(const float *__restrict__ dy, float *__restrict__ dx,
                                          size_t count, int h, int w, float beta) {
    const size_t wo = 2 * (size_t)w;
    GRID_STRIDE_LOOP(i, count) {
        const int ix = (int)(i % (size_t)w);
        const size_t t = i / (size_t)w;
        const int iy = (int)(t % (size_t)h);
        const size_t plane = t / (size_t)h;
        const float *p = dy + (plane * 2 * (size_t)h + 2 * (size_t)iy) * wo + 2 * (size_t)ix;
        float acc = ((p[0] + p[1]) + p[wo]) + p[wo + 1];
        if (beta != 0.f) acc += beta * dx[i];
        dx[i] = acc;
    }
}

void upsample_forward_bilinear2x(const float *x, float *y, int n, int c, int h, int w,
                                 cudaStream_t s) {
    const size_t count = (size_t)n * (size_t)c * 4 * (size_t)h * (size_t)w;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    bilinear_fwd_kernel<<<up_grid(count), UP_BLOCK, 0, s>>>(x, y, count, h, w, ac_scale(h),
                                                            ac_scale(w));
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void upsample_backward_bilinear2x(const float *dy, float *dx, int n, int c, int h, int w,
                                  float beta, cudaStream_t s) {
    const size_t count = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    bilinear_bwd_kernel<<<up_grid(count), UP_BLOCK, 0, s>>>(dy, dx, count, h, w, ac_scale(h),
                                                            ac_scale(w), beta);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void upsample_forward_nearest2x(const float *x, float *y, int n, int c, int h, int w,
                                cudaStream_t s) {
    const size_t count = (size_t)n * (size_t)c * 4 * (size_t)h * (size_t)w;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    nearest_fwd_kernel<<<up_grid(count), UP_BLOCK, 0, s>>>(x, y, count, h, w);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

void upsample_backward_nearest2x(const float *dy, float *dx, int n, int c, int h, int w,
                                 float beta, cudaStream_t s) {
    const size_t count = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    nearest_bwd_kernel<<<up_grid(count), UP_BLOCK, 0, s>>>(dy, dx, count, h, w, beta);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}
