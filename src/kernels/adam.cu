/* Adam with L2 weight decay, one thread per parameter (see adam.h for the exact update). */
#include "adam.h"
#include "backend/cuda_check.h"

#define ADAM_BLOCK 256

/* param, grad, m, v (count) */
static __global__ void adam_kernel(float *__restrict__ param, const float *__restrict__ grad,
                                   float *__restrict__ m, float *__restrict__ v, size_t count,
                                   float b1, float omb1, float b2, float omb2, float eps, float wd,
                                   float step_size, float bc2_sqrt, float ck, float cf, float bc2) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        const float p = param[i];
        float g = grad[i];
        if (wd != 0.f) g += wd * p;
        if (ck > 0.f) { /* the CPU's float operations, uncontracted */
            const float bound = __fadd_rn(__fmul_rn(ck, sqrtf(__fdiv_rn(v[i], bc2))), cf);
            g = g > bound ? bound : (g < -bound ? -bound : g);
        }
        /* PyTorch's order: m*b1 + (1-b1)*g, v*b2 + ((1-b2)*g)*g */
        const float mi = m[i] * b1 + omb1 * g;
        const float vi = v[i] * b2 + omb2 * g * g;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        param[i] = p - step_size * (mi / denom);
    }
}

void adam_update(float *param, const float *grad, float *m, float *v, size_t count, float b1,
                 float omb1, float b2, float omb2, float eps, float weight_decay, float step_size,
                 float bc2_sqrt, float clip_std, float clip_floor, float bc2, cudaStream_t s) {
    if (count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    size_t grid = CEIL_DIV(count, (size_t)ADAM_BLOCK);
    if (grid > 65535u * 16u) grid = 65535u * 16u; /* grid-stride beyond this */
    adam_kernel<<<(unsigned)grid, ADAM_BLOCK, 0, s>>>(param, grad, m, v, count, b1, omb1, b2, omb2,
                                                      eps, weight_decay, step_size, bc2_sqrt, clip_std,
                                                      clip_floor, bc2);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}
