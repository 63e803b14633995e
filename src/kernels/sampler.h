/* defines: sampler_langevin_step, sampler_rng_fill, sampler_reparam_sample, sampler_scaled_diff,
 * sampler_counter_add, sampler_replay_sample, sampler_replay_push, sampler_gauss_nll,
 * sampler_dropout -- the
 * sampler ops of the CUDA backend (include/ebmc/backend.h, "samplers"), all on stream s.
 *
 * Every random number comes from include/ebmc/philox.h with the CPU backend's counter layout
 * (element/4 within the chain, chain, step, stream), step = *rng.step_base + rng.step_offset read
 * on the device, so a CUDA graph replay that advanced the counter draws new noise, and the CPU
 * reproduces the GPU's noise. The element-wise arithmetic is written with explicitly rounded
 * operations (__fmul_rn, __fadd_rn, ...) in the CPU reference's order, so that nvcc does not
 * contract it into FMAs: given the same inputs and noise, the results are the CPU's bit for bit
 * (up to the device's expf/exp/log/sin/cos, see sampler.cu). Deterministic: no atomics. */
#ifndef EBMC_KERNELS_SAMPLER_H
#define EBMC_KERNELS_SAMPLER_H

#include "ebmc/backend.h"
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* x (n_chains, chain_elems) <- clamp(x - a clip(g) - b x [+ c xi]) [+ c xi_next]: one fused
 * kernel, one thread per group of 4 elements of a chain (its 4 normals are one Philox call).
 * The random launchers take chain0: the global index of chain 0 (a data-parallel rank's offset,
 * ebmc_ctx_set_chain_offset), added to the chain index of every Philox counter. */
void sampler_langevin_step(const ebmc_langevin_desc *d, float *x, const float *g, uint32_t chain0,
                           cudaStream_t s);
/* y (n_chains, chain_elems) = or += p0 + p1 N(0,1) / U(p0, p1). */
void sampler_rng_fill(const ebmc_rng_desc *d, float *y, uint32_t chain0, cudaStream_t s);
/* z = mu + expf(k s) N(0,1), all (n_chains, chain_elems). */
void sampler_reparam_sample(const ebmc_reparam_desc *d, const float *mu, const float *sv, float *z,
                            uint32_t chain0, cudaStream_t s);
/* out = alpha (a - b) + beta out over count elements (beta == 0: out is not read). */
void sampler_scaled_diff(const ebmc_scaled_diff_desc *d, const float *a, const float *b, float *out,
                         cudaStream_t s);
/* *counter += delta (one thread: the replayable step counter). */
void sampler_counter_add(uint32_t delta, uint32_t *counter, cudaStream_t s);
/* x (n_chains, chain_elems) from the replay buffer (float32 or uint8 entries) or U(lo, hi). */
void sampler_replay_sample(const ebmc_replay_desc *d, const void *buffer, float *x, uint32_t chain0,
                           cudaStream_t s);
/* buffer slots (head + i) % capacity <- x (n_chains, chain_elems). */
void sampler_replay_push(const ebmc_replay_desc *d, void *buffer, const float *x, cudaStream_t s);
/* Diagonal Gaussian NLL of (rows, cols): loss (rows, nullable) from a fixed-order block sum in
 * double; dmu, ds element-wise (times scale, + beta * old). */
void sampler_gauss_nll(const ebmc_gauss_nll_desc *d, const float *z, const float *mu,
                       const float *sv, float *loss, float *dmu, float *ds, cudaStream_t s);
/* A VAE's KL(q || N(0,I)) per row and its gradients, with the reparameterisation backward when
 * eps and dz are given (include/ebmc/backend.h, ebmc_gauss_kl_desc). */
void sampler_gauss_kl(const ebmc_gauss_kl_desc *d, const float *mu, const float *sv,
                      const float *eps, const float *dz, float *loss, float *dmu, float *ds,
                      cudaStream_t s);

/* y = beta y + (x / (1 - p)) keep over (rows, row_elems), keep from ebmc_philox_keep4 with the
 * CPU's counter (ebmc_dropout_desc); x == y allowed. */
void sampler_dropout(const ebmc_dropout_desc *d, const float *x, float *y, uint32_t chain0, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
