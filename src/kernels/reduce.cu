/* Row reductions (sum, sum of squares) with a fixed summation tree: one block per row, or for
 * long rows a fixed number of chunks per row summed again in a second pass. */
#include "reduce.h"
#include "block_reduce.cuh"
#include "backend/cuda_check.h"

#define RED_SPLIT_MIN ((size_t)1 << 17) /* rows at least this long are split in chunks */
#define RED_CHUNK ((size_t)1 << 15)     /* ... of about this many elements */
#define RED_MAX_CHUNKS 256

template <int SQ>
static __device__ __forceinline__ float red_f(float a) {
    return SQ ? a * a : a;
}

/* grid (rows): out[r] = sum_c f(x[r,c]) + beta*out[r] */
template <int SQ>
static __global__ void reduce_rows_kernel(const float *__restrict__ x, float *__restrict__ out,
                                          size_t cols, float beta) {
    const float *p = x + (size_t)blockIdx.x * cols;
    float acc = 0.f;
    for (size_t k = threadIdx.x; k < cols; k += blockDim.x) acc += red_f<SQ>(p[k]);
    const float sum = block_sum(acc);
    if (threadIdx.x == 0) {
        const size_t r = blockIdx.x;
        out[r] = beta != 0.f ? sum + beta * out[r] : sum;
    }
}

/* grid (rows, chunks): part[r*chunks + k] = sum of f over chunk k of row r */
template <int SQ>
static __global__ void reduce_chunks_kernel(const float *__restrict__ x, float *__restrict__ part,
                                            size_t cols, size_t chunk) {
    const size_t r = blockIdx.x, k = blockIdx.y;
    const size_t b = k * chunk, e = b + chunk < cols ? b + chunk : cols;
    const float *p = x + r * cols;
    float acc = 0.f;
    for (size_t i = b + threadIdx.x; i < e; i += blockDim.x) acc += red_f<SQ>(p[i]);
    const float sum = block_sum(acc);
    if (threadIdx.x == 0) part[r * gridDim.y + k] = sum;
}

/* grid (rows): out[r] = sum_k part[r*chunks + k] + beta*out[r] */
static __global__ void reduce_parts_kernel(const float *__restrict__ part, float *__restrict__ out,
                                           int chunks, float beta) {
    const size_t r = blockIdx.x;
    float acc = 0.f;
    for (int k = threadIdx.x; k < chunks; k += blockDim.x) acc += part[r * chunks + k];
    const float sum = block_sum(acc);
    if (threadIdx.x == 0) out[r] = beta != 0.f ? sum + beta * out[r] : sum;
}

static int reduce_chunks(size_t cols) {
    if (cols < RED_SPLIT_MIN) return 1;
    size_t k = CEIL_DIV(cols, RED_CHUNK);
    return (int)(k > RED_MAX_CHUNKS ? RED_MAX_CHUNKS : k);
}

size_t reduce_rows_scratch_floats(int rows, size_t cols) {
    const int k = reduce_chunks(cols);
    return k > 1 ? (size_t)rows * (size_t)k : 0;
}

void reduce_rows(ebmc_reduce_mode mode, const float *x, float *out, int rows, size_t cols,
                 float beta, float *scratch, cudaStream_t s) {
    if (rows <= 0) return;
    EBMC_NVTX_PUSH(__func__);
    const int sq = mode == EBMC_REDUCE_SUMSQ;
    const int chunks = reduce_chunks(cols);
    if (chunks == 1) {
        /* the block size depends on cols only, so the result is reproducible */
        const int block = cols >= 4096 ? 256 : (cols >= 256 ? 128 : 32);
        if (sq)
            reduce_rows_kernel<1><<<rows, block, 0, s>>>(x, out, cols, beta);
        else
            reduce_rows_kernel<0><<<rows, block, 0, s>>>(x, out, cols, beta);
        CUDA_CHECK(cudaGetLastError());
    } else {
        EBMC_ASSERT(scratch != NULL);
        const size_t chunk = CEIL_DIV(cols, (size_t)chunks);
        const dim3 grid((unsigned)rows, (unsigned)chunks);
        if (sq)
            reduce_chunks_kernel<1><<<grid, 256, 0, s>>>(x, scratch, cols, chunk);
        else
            reduce_chunks_kernel<0><<<grid, 256, 0, s>>>(x, scratch, cols, chunk);
        CUDA_CHECK(cudaGetLastError());
        reduce_parts_kernel<<<rows, 256, 0, s>>>(scratch, out, chunks, beta);
        CUDA_CHECK(cudaGetLastError());
    }
    EBMC_NVTX_POP();
}
