/* Sampler kernels: the fused Langevin update, Philox noise (normal/uniform), reparameterisation,
 * the latent chain's scaled residual, the step counter, the replay buffer and the diagonal
 * Gaussian NLL. Each mirrors its CPU reference in src/host/backend_cpu.c value for value:
 *
 * - Counters. A thread owns group q (elements 4q..4q+3) of chain ch and draws its four values with
 *   one ebmc_philox_*4(seed, q, chain0 + ch, step, stream) call, exactly the CPU's counter; the replay
 *   buffer's per-chain decisions use group 0xFFFFFFFF as the CPU does. The step is read from
 *   rng.step_base on the device (NULL reads as 0), never baked in at launch.
 * - Rounding. nvcc contracts a*b + c into one FMA by default; the CPU reference (x86-64, no FMA)
 *   rounds every product and sum. The update formulas therefore use __fmul_rn/__fadd_rn/
 *   __fsub_rn/__fdiv_rn, which are never contracted, in the CPU's evaluation order, so that the
 *   same inputs give the same float results. What can still differ: the device's double
 *   log/sin/cos (1-2 ulp of double) inside Box-Muller, which changes a float normal only when it
 *   lies within ~2^-29 relative of a rounding boundary; expf (reparam, up to 2 ulp) and double
 *   exp (gauss_nll) against glibc; and the order of gauss_nll's double row sum.
 * - NaN. Clip and clamp use the CPU's comparisons (not fminf/fmaxf), so NaNs propagate alike.
 * - Determinism. No atomics; every output element is written by one thread, the NLL row sum by a
 *   fixed tree over a fixed block size. */
#include "sampler.h"
#include "backend/cuda_check.h"
#include "ebmc/philox.h"

#define SAMPLER_BLOCK 256   /* threads per block of the per-group kernels */
#define SAMPLER_MAX_GX (65535u * 16u) /* grid-stride beyond this many blocks in x */
#define SAMPLER_MAX_GY 65535u  /* chains per grid row; kernels stride beyond */
#define NLL_BLOCK 128       /* gauss_nll: one block per row; fixed: the sum order depends on it */
#define REPLAY_GROUP 0xFFFFFFFFu /* the replay decisions' element group, as backend_cpu.c */

/* Launch geometry of the per-(group, chain) kernels: x over groups of 4 elements, y over chains.
 * Any geometry gives the same values (the counter does not depend on it). */
typedef struct {
    dim3 grid, block;
} chain_launch;

static chain_launch chain_geometry(int n_chains, size_t groups) {
    chain_launch l;
    /* short chains (latent vectors) get a smaller block rather than idle threads */
    const size_t b = groups >= SAMPLER_BLOCK ? SAMPLER_BLOCK : CEIL_DIV(groups, (size_t)32) * 32;
    size_t gx = CEIL_DIV(groups, b);
    if (gx > SAMPLER_MAX_GX) gx = SAMPLER_MAX_GX;
    const unsigned gy = (unsigned)n_chains > SAMPLER_MAX_GY ? SAMPLER_MAX_GY : (unsigned)n_chains;
    l.block = dim3((unsigned)b, 1, 1);
    l.grid = dim3((unsigned)gx, gy, 1);
    return l;
}

#define FOR_EACH_CHAIN(ch, n_chains)                                                            \
    for (int ch = (int)blockIdx.y; ch < (n_chains); ch += (int)gridDim.y)
#define FOR_EACH_GROUP(q, groups)                                                               \
    for (size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x; q < (groups);                \
         q += (size_t)gridDim.x * blockDim.x)

static __device__ __forceinline__ uint32_t key_step(const ebmc_rng_key &k) {
    return (k.step_base ? *k.step_base : 0u) + k.step_offset; /* uint32 wrap, as the CPU */
}

/* ---- Langevin ---- */

/* x, g (n_chains, E): the fused update of backend_cpu.c's cpu_langevin. Each element is read
 * (g, then x) and written by one thread, so x == g would be harmless; partial overlap is not. */
static __global__ void langevin_kernel(ebmc_langevin_desc d, float *x, const float *g,
                                       size_t groups, uint32_t chain0) {
    const size_t E = d.chain_elems;
    uint32_t step = 0;
    if (d.noise != EBMC_NOISE_OFF) {
        step = key_step(d.rng);
        if (d.noise == EBMC_NOISE_NEXT) step += 1u; /* the next step's noise */
    }
    FOR_EACH_CHAIN(ch, d.n_chains) {
        FOR_EACH_GROUP(q, groups) {
            float xi[4] = {0.f, 0.f, 0.f, 0.f};
            if (d.noise != EBMC_NOISE_OFF)
                ebmc_philox_normal4(d.rng.seed, (uint32_t)q, (uint32_t)ch + chain0, step, d.rng.stream, xi);
            const size_t e0 = 4 * q, base = (size_t)ch * E;
#pragma unroll
            for (int l = 0; l < 4; l++) {
                if (e0 + (size_t)l >= E) break;
                const size_t i = base + e0 + (size_t)l;
                float gr = g[i];
                if (d.clip > 0.f) gr = gr > d.clip ? d.clip : (gr < -d.clip ? -d.clip : gr);
                const float xv = x[i];
                /* (x - a*g) - b*x, every operation rounded: the CPU's order */
                float v = __fsub_rn(__fsub_rn(xv, __fmul_rn(d.a, gr)), __fmul_rn(d.b, xv));
                if (d.noise == EBMC_NOISE_AFTER) v = __fadd_rn(v, __fmul_rn(d.c, xi[l]));
                if (d.clamp) v = v < d.lo ? d.lo : (v > d.hi ? d.hi : v);
                if (d.noise == EBMC_NOISE_NEXT) v = __fadd_rn(v, __fmul_rn(d.c, xi[l]));
                x[i] = v;
            }
        }
    }
}

void sampler_langevin_step(const ebmc_langevin_desc *d, float *x, const float *g, uint32_t chain0,
                           cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    const size_t groups = CEIL_DIV(d->chain_elems, (size_t)4);
    const chain_launch l = chain_geometry(d->n_chains, groups);
    langevin_kernel<<<l.grid, l.block, 0, s>>>(*d, x, g, groups, chain0);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- noise fill ---- */

/* y (n_chains, E) = or += p0 + p1*n (normal) / p0 + (p1 - p0)*u (uniform) */
static __global__ void rng_kernel(ebmc_rng_desc d, float *y, size_t groups, uint32_t chain0) {
    const size_t E = d.chain_elems;
    const uint32_t step = key_step(d.rng);
    const bool normal = d.dist == EBMC_RNG_NORMAL;
    const float scale = normal ? d.p1 : __fsub_rn(d.p1, d.p0);
    FOR_EACH_CHAIN(ch, d.n_chains) {
        FOR_EACH_GROUP(q, groups) {
            float r[4];
            if (normal)
                ebmc_philox_normal4(d.rng.seed, (uint32_t)q, (uint32_t)ch + chain0, step, d.rng.stream, r);
            else
                ebmc_philox_uniform4(d.rng.seed, (uint32_t)q, (uint32_t)ch + chain0, step, d.rng.stream, r);
            const size_t e0 = 4 * q, base = (size_t)ch * E;
#pragma unroll
            for (int l = 0; l < 4; l++) {
                if (e0 + (size_t)l >= E) break;
                const size_t i = base + e0 + (size_t)l;
                const float v = __fadd_rn(d.p0, __fmul_rn(scale, r[l]));
                y[i] = d.accumulate ? __fadd_rn(y[i], v) : v;
            }
        }
    }
}

void sampler_rng_fill(const ebmc_rng_desc *d, float *y, uint32_t chain0, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    const size_t groups = CEIL_DIV(d->chain_elems, (size_t)4);
    const chain_launch l = chain_geometry(d->n_chains, groups);
    rng_kernel<<<l.grid, l.block, 0, s>>>(*d, y, groups, chain0);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- dropout ---- */

/* y (rows, E) = beta y + (x / keep_p) keep: backend_cpu.c's cpu_dropout, one thread per group */
static __global__ void dropout_kernel(ebmc_dropout_desc d, const float *x, float *y, size_t groups,
                                      uint32_t chain0) {
    const size_t E = d.row_elems;
    const uint32_t step = key_step(d.rng);
    const float keep_p = (float)(1.0 - (double)d.p);
    FOR_EACH_CHAIN(r, d.rows) {
        FOR_EACH_GROUP(q, groups) {
            int keep[4];
            ebmc_philox_keep4(d.rng.seed, d.group_off + (uint32_t)q, (uint32_t)r + chain0, step, d.rng.stream,
                              (double)d.p, keep);
            const size_t e0 = 4 * q, base = (size_t)r * E;
#pragma unroll
            for (int l = 0; l < 4; l++) {
                if (e0 + (size_t)l >= E) break;
                const size_t i = base + e0 + (size_t)l;
                const float v = __fmul_rn(__fdiv_rn(x[i], keep_p), (float)keep[l]);
                y[i] = d.beta == 0.f ? v : __fadd_rn(v, __fmul_rn(d.beta, y[i]));
            }
        }
    }
}

void sampler_dropout(const ebmc_dropout_desc *d, const float *x, float *y, uint32_t chain0, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    const size_t groups = CEIL_DIV(d->row_elems, (size_t)4);
    const chain_launch l = chain_geometry(d->rows, groups);
    dropout_kernel<<<l.grid, l.block, 0, s>>>(*d, x, y, groups, chain0);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- reparameterisation ---- */

/* z = mu + expf(k*s) * n, all (n_chains, E) */
static __global__ void reparam_kernel(ebmc_reparam_desc d, const float *mu, const float *sv,
                                      float *z, size_t groups, uint32_t chain0) {
    const size_t E = d.chain_elems;
    const uint32_t step = key_step(d.rng);
    FOR_EACH_CHAIN(ch, d.n_chains) {
        FOR_EACH_GROUP(q, groups) {
            float r[4];
            ebmc_philox_normal4(d.rng.seed, (uint32_t)q, (uint32_t)ch + chain0, step, d.rng.stream, r);
            const size_t e0 = 4 * q, base = (size_t)ch * E;
#pragma unroll
            for (int l = 0; l < 4; l++) {
                if (e0 + (size_t)l >= E) break;
                const size_t i = base + e0 + (size_t)l;
                const float sd = expf(__fmul_rn(d.k, sv[i]));
                z[i] = __fadd_rn(mu[i], __fmul_rn(sd, r[l]));
            }
        }
    }
}

void sampler_reparam_sample(const ebmc_reparam_desc *d, const float *mu, const float *sv, float *z,
                            uint32_t chain0, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    const size_t groups = CEIL_DIV(d->chain_elems, (size_t)4);
    const chain_launch l = chain_geometry(d->n_chains, groups);
    reparam_kernel<<<l.grid, l.block, 0, s>>>(*d, mu, sv, z, groups, chain0);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- scaled difference ---- */

/* out = alpha*(a - b) (+ beta*out); out may alias a or b (each element read before written) */
static __global__ void scaled_diff_kernel(const float *a, const float *b, float *out, size_t count,
                                          float alpha, float beta) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        const float v = __fmul_rn(alpha, __fsub_rn(a[i], b[i]));
        out[i] = beta == 0.f ? v : __fadd_rn(v, __fmul_rn(beta, out[i]));
    }
}

void sampler_scaled_diff(const ebmc_scaled_diff_desc *d, const float *a, const float *b, float *out,
                         cudaStream_t s) {
    if (d->count == 0) return;
    EBMC_NVTX_PUSH(__func__);
    size_t grid = CEIL_DIV(d->count, (size_t)SAMPLER_BLOCK);
    if (grid > SAMPLER_MAX_GX) grid = SAMPLER_MAX_GX;
    scaled_diff_kernel<<<(unsigned)grid, SAMPLER_BLOCK, 0, s>>>(a, b, out, d->count, d->alpha,
                                                                d->beta);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- step counter ---- */

static __global__ void counter_add_kernel(uint32_t *c, uint32_t delta) { *c += delta; }

void sampler_counter_add(uint32_t delta, uint32_t *counter, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    counter_add_kernel<<<1, 1, 0, s>>>(counter, delta);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- replay buffer ---- */

/* x (n_chains, E): chain ch reuses entry j (float32 or uint8 with U(0,1) dequantisation) with
 * probability p_reuse, else U(lo, hi). Every thread of a chain derives the chain's decision
 * from the same Philox call (group REPLAY_GROUP), so no cross-thread communication is needed. */
static __global__ void replay_sample_kernel(ebmc_replay_desc d, const void *buffer, float *x,
                                            size_t groups, uint32_t chain0) {
    const size_t E = d.chain_elems;
    const uint32_t step = key_step(d.rng);
    const float span = __fsub_rn(d.hi, d.lo);
    const float qstep = __fdiv_rn(span, 256.0f);
    FOR_EACH_CHAIN(ch, d.n_chains) {
        float u[4];
        ebmc_philox_uniform4(d.rng.seed, REPLAY_GROUP, (uint32_t)ch + chain0, step, d.rng.stream, u);
        const bool reuse = d.count > 0 && u[0] < d.p_reuse;
        int j = (int)__fmul_rn(u[1], (float)d.count);
        if (j >= d.count) j = d.count - 1;
        FOR_EACH_GROUP(q, groups) {
            float r[4] = {0.f, 0.f, 0.f, 0.f};
            if (!reuse || d.u8)
                ebmc_philox_uniform4(d.rng.seed, (uint32_t)q, (uint32_t)ch + chain0, step, d.rng.stream, r);
            const size_t e0 = 4 * q;
#pragma unroll
            for (int l = 0; l < 4; l++) {
                const size_t e = e0 + (size_t)l;
                if (e >= E) break;
                float v;
                if (!reuse) {
                    v = __fadd_rn(d.lo, __fmul_rn(span, r[l]));
                } else if (d.u8) {
                    const uint8_t qv = ((const uint8_t *)buffer)[(size_t)j * E + e];
                    v = __fadd_rn(d.lo, __fmul_rn(__fadd_rn((float)qv, r[l]), qstep));
                } else {
                    v = ((const float *)buffer)[(size_t)j * E + e];
                }
                x[(size_t)ch * E + e] = v;
            }
        }
    }
}

void sampler_replay_sample(const ebmc_replay_desc *d, const void *buffer, float *x, uint32_t chain0,
                           cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    const size_t groups = CEIL_DIV(d->chain_elems, (size_t)4);
    const chain_launch l = chain_geometry(d->n_chains, groups);
    replay_sample_kernel<<<l.grid, l.block, 0, s>>>(*d, buffer, x, groups, chain0);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* buffer slot (head + ch) % capacity, element e <- x[ch, e]; uint8: floor((x-lo)/(hi-lo)*256)
 * clipped to 0..255 */
static __global__ void replay_push_kernel(ebmc_replay_desc d, void *buffer, const float *x,
                                          size_t total) {
    const size_t E = d.chain_elems;
    const float span = __fsub_rn(d.hi, d.lo);
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t ch = i / E, e = i - ch * E;
        const size_t slot = ((size_t)d.head + ch) % (size_t)d.capacity;
        if (d.u8) {
            const float levels = d.push_levels > 0.f ? d.push_levels : 256.0f;
            float q = floorf(__fmul_rn(__fdiv_rn(__fsub_rn(x[i], d.lo), span), levels));
            q = q < 0.f ? 0.f : (q > 255.f ? 255.f : q);
            ((uint8_t *)buffer)[slot * E + e] = (uint8_t)q;
        } else {
            ((float *)buffer)[slot * E + e] = x[i];
        }
    }
}

void sampler_replay_push(const ebmc_replay_desc *d, void *buffer, const float *x, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    const size_t total = (size_t)d->n_chains * d->chain_elems;
    size_t grid = CEIL_DIV(total, (size_t)SAMPLER_BLOCK);
    if (grid > SAMPLER_MAX_GX) grid = SAMPLER_MAX_GX;
    replay_push_kernel<<<(unsigned)grid, SAMPLER_BLOCK, 0, s>>>(*d, buffer, x, total);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- diagonal Gaussian NLL ---- */

/* One block of NLL_BLOCK threads per row r of (rows, cols). Element-wise in double as the CPU:
 *   e = exp(s), den = eps + e, dz = z - mu
 *   L_r = sum_j 0.5 s + 0.5 dz^2/den                  (fixed tree over the block, in double)
 *   dmu = scale (-dz/den) [+ beta dmu],  ds = scale (0.5 - 0.5 dz^2 e/den^2) [+ beta ds] */
static __global__ void gauss_nll_kernel(ebmc_gauss_nll_desc d, const float *z, const float *mu,
                                        const float *sv, float *loss, float *dmu, float *ds) {
    __shared__ double part[NLL_BLOCK];
    const size_t r = blockIdx.x, cols = d.cols;
    const double eps = (double)d.eps, scale = (double)d.scale;
    double acc = 0.0;
    for (size_t j = threadIdx.x; j < cols; j += NLL_BLOCK) {
        const size_t i = r * cols + j;
        const double sj = (double)sv[i];
        const double e = exp(sj), den = eps + e, dz = (double)z[i] - (double)mu[i];
        const double t = __dmul_rn(__dmul_rn(0.5, dz), dz);   /* 0.5 dz dz, as the CPU */
        acc = __dadd_rn(acc, __dadd_rn(__dmul_rn(0.5, sj), __ddiv_rn(t, den)));
        const float gm = (float)__dmul_rn(scale, __ddiv_rn(-dz, den));
        const float gs = (float)__dmul_rn(
            scale, __dsub_rn(0.5, __ddiv_rn(__dmul_rn(t, e), __dmul_rn(den, den))));
        dmu[i] = d.beta == 0.f ? gm : __fadd_rn(gm, __fmul_rn(d.beta, dmu[i]));
        ds[i] = d.beta == 0.f ? gs : __fadd_rn(gs, __fmul_rn(d.beta, ds[i]));
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int w = NLL_BLOCK / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0 && loss) loss[r] = (float)part[0];
}

void sampler_gauss_nll(const ebmc_gauss_nll_desc *d, const float *z, const float *mu,
                       const float *sv, float *loss, float *dmu, float *ds, cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    /* rows <= INT_MAX (validated) fits gridDim.x (2^31 - 1) */
    gauss_nll_kernel<<<(unsigned)d->rows, NLL_BLOCK, 0, s>>>(*d, z, mu, sv, loss, dmu, ds);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}

/* ---- a VAE's KL term and reparameterisation backward (ebmc_gauss_kl_desc) ---- */

/* One block of NLL_BLOCK threads per row, in double as the CPU:
 *   L_r = sum_j 0.5 (mu^2 + e^{2ks} - 1 - 2ks)                    (fixed tree over the block)
 *   dmu = scale (w mu [+ dz]),  ds = scale (w k (e^{2ks} - 1) [+ k dz eps e^{ks}]) [+ beta old] */
static __global__ void gauss_kl_kernel(ebmc_gauss_kl_desc d, const float *mu, const float *sv,
                                       const float *eps, const float *dz, float *loss, float *dmu,
                                       float *ds) {
    __shared__ double part[NLL_BLOCK];
    const size_t r = blockIdx.x, cols = d.cols;
    const double k = (double)d.k, w = (double)d.weight, scale = (double)d.scale;
    double acc = 0.0;
    for (size_t j = threadIdx.x; j < cols; j += NLL_BLOCK) {
        const size_t i = r * cols + j;
        const double m = (double)mu[i], ks = __dmul_rn(k, (double)sv[i]);
        const double e1 = exp(ks), e2 = exp(__dmul_rn(2.0, ks));
        const double t = __dsub_rn(__dsub_rn(__dadd_rn(__dmul_rn(m, m), e2), 1.0), __dmul_rn(2.0, ks));
        acc = __dadd_rn(acc, __dmul_rn(0.5, t));
        double gm = __dmul_rn(w, m), gs = __dmul_rn(__dmul_rn(w, k), __dsub_rn(e2, 1.0));
        if (dz) {
            gm = __dadd_rn(gm, (double)dz[i]);
            gs = __dadd_rn(gs, __dmul_rn(__dmul_rn(__dmul_rn(k, (double)dz[i]), (double)eps[i]), e1));
        }
        const float fm = (float)__dmul_rn(scale, gm), fs = (float)__dmul_rn(scale, gs);
        dmu[i] = d.beta == 0.f ? fm : __fadd_rn(fm, __fmul_rn(d.beta, dmu[i]));
        ds[i] = d.beta == 0.f ? fs : __fadd_rn(fs, __fmul_rn(d.beta, ds[i]));
    }
    part[threadIdx.x] = acc;
    __syncthreads();
    for (int wd = NLL_BLOCK / 2; wd > 0; wd >>= 1) {
        if ((int)threadIdx.x < wd) part[threadIdx.x] += part[threadIdx.x + wd];
        __syncthreads();
    }
    if (threadIdx.x == 0 && loss) loss[r] = (float)part[0];
}

void sampler_gauss_kl(const ebmc_gauss_kl_desc *d, const float *mu, const float *sv,
                      const float *eps, const float *dz, float *loss, float *dmu, float *ds,
                      cudaStream_t s) {
    EBMC_NVTX_PUSH(__func__);
    gauss_kl_kernel<<<(unsigned)d->rows, NLL_BLOCK, 0, s>>>(*d, mu, sv, eps, dz, loss, dmu, ds);
    CUDA_CHECK(cudaGetLastError());
    EBMC_NVTX_POP();
}
