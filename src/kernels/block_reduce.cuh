/* defines: warp_sum, block_sum — deterministic (fixed-order) sums over a warp and a block,
 * shared by the kernels that reduce (BatchNorm, bias gradients, reductions, spectral norm).
 * Device-only inline code in a header on purpose, like include/ebmc/philox.h: each .cu is its
 * own translation unit (no relocatable device code), so the helpers must be compiled into each. */
#ifndef EBMC_BLOCK_REDUCE_CUH
#define EBMC_BLOCK_REDUCE_CUH

static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v; /* valid in lane 0 */
}

/* The sum of v over the block (blockDim.x a multiple of 32), returned to every thread.
 * Safe to call repeatedly. Fixed order: deterministic. */
static __device__ float block_sum(float v) {
    __shared__ float part[32];
    __shared__ float total;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* a previous call's readers are done with part/total */
    if (lane == 0) part[wid] = v;
    __syncthreads();
    if (wid == 0) {
        float t = lane < nw ? part[lane] : 0.f;
        t = warp_sum(t);
        if (lane == 0) total = t;
    }
    __syncthreads();
    return total;
}

#endif
