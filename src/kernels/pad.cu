/* Explicit zero-pad / crop copy for convolutions cuDNN cannot pad itself (see pad.h). */
#include "pad.h"
#include "backend/cuda_check.h"

#include <stdint.h>

/* dst (NC,Hd,Wd) <- shifted src (NC,Hs,Ws), zero outside; one thread per dst element,
 * grid-stride. */
static __global__ void pad2d_kernel(const float *__restrict__ src, float *__restrict__ dst,
                                    size_t total, int hs, int ws, int hd, int wd,
                                    int off_top, int off_left, float beta) {
    const size_t step = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += step) {
        const int j = (int)(i % (size_t)wd);
        const size_t t = i / (size_t)wd;
        const int r = (int)(t % (size_t)hd);
        const size_t plane = t / (size_t)hd;
        const int si = r - off_top, sj = j - off_left;
        float v = 0.f;
        if (si >= 0 && si < hs && sj >= 0 && sj < ws)
            v = src[(plane * (size_t)hs + (size_t)si) * (size_t)ws + (size_t)sj];
        if (beta != 0.f) v += beta * dst[i];
        dst[i] = v;
    }
}

void pad2d_copy(const float *src, int nc, int hs, int ws, float *dst, int hd, int wd,
                int off_top, int off_left, float beta, cudaStream_t s) {
    const size_t total = (size_t)nc * (size_t)hd * (size_t)wd;
    if (total == 0) return;
    EBMC_NVTX_PUSH(__func__);
    const int block = 256;
    size_t grid = CEIL_DIV(total, (size_t)block);
    if (grid > 65535u * 16u) grid = 65535u * 16u; /* grid-stride beyond this */
    pad2d_kernel<<<(unsigned)grid, block, 0, s>>>(src, dst, total, hs, ws, hd, wd, off_top,
                                                  off_left, beta);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}
