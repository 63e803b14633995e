/* defines: ebmc_philox4x32_10, ebmc_philox_normal4, ebmc_philox_uniform4 — the counter-based
 * random numbers of every sampler, identical on the CPU and in CUDA kernels.
 *
 * This header defines inline functions on purpose (the one exception to the no-definitions-in-
 * headers rule): the same code must compile into the host reference and into device kernels so
 * that a GPU chain can be replayed on the CPU. Philox4x32-10 is Salmon et al.'s generator (the
 * one behind cuRAND's Philox4_32_10); normals come from Box-Muller in double, rounded to float, so
 * host and device agree to the last bit except where their libm's log/sin/cos round a double
 * differently (an error of 1 ulp of double, invisible after rounding to float in all but rare
 * cases).
 *
 * Counter layout used by the samplers (a value depends only on these, never on thread layout):
 *   key     = seed (64 bits)
 *   counter = (element / 4 within the chain, chain, step, stream)
 * and the four outputs of one call serve elements 4g .. 4g+3 of the chain. */
#ifndef EBMC_PHILOX_H
#define EBMC_PHILOX_H

#include <stdint.h>
#include <math.h>

#ifdef __CUDACC__
#define EBMC_HD __host__ __device__ __forceinline__
#else
#define EBMC_HD static inline
#endif

typedef struct {
    uint32_t v[4];
} ebmc_u32x4;

EBMC_HD uint32_t ebmc_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox4x32 with 10 rounds: counter c, key k. */
EBMC_HD ebmc_u32x4 ebmc_philox4x32_10(ebmc_u32x4 c, uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = ebmc_mulhilo32(0xD2511F53u, c.v[0], &hi0);
        uint32_t lo1 = ebmc_mulhilo32(0xCD9E8D57u, c.v[2], &hi1);
        ebmc_u32x4 n;
        n.v[0] = hi1 ^ c.v[1] ^ k0;
        n.v[1] = lo1;
        n.v[2] = hi0 ^ c.v[3] ^ k1;
        n.v[3] = lo0;
        c = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

/* Uniform in (0, 1): (x + 0.5) * 2^-32, never 0 or 1. */
EBMC_HD double ebmc_u32_to_unit(uint32_t x) { return ((double)x + 0.5) * 2.3283064365386963e-10; }

/* Four normals from counter (group, chain, step, stream) and seed. */
EBMC_HD void ebmc_philox_normal4(uint64_t seed, uint32_t group, uint32_t chain, uint32_t step,
                                 uint32_t stream, float out[4]) {
    ebmc_u32x4 c = {{group, chain, step, stream}};
    ebmc_u32x4 r = ebmc_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    for (int i = 0; i < 2; i++) {
        double u1 = ebmc_u32_to_unit(r.v[2 * i]), u2 = ebmc_u32_to_unit(r.v[2 * i + 1]);
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        out[2 * i] = (float)(rad * cos(th));
        out[2 * i + 1] = (float)(rad * sin(th));
    }
}

/* Four uniforms in (0, 1) from the same counter layout. */
EBMC_HD void ebmc_philox_uniform4(uint64_t seed, uint32_t group, uint32_t chain, uint32_t step,
                                  uint32_t stream, float out[4]) {
    ebmc_u32x4 c = {{group, chain, step, stream}};
    ebmc_u32x4 r = ebmc_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    for (int i = 0; i < 4; i++) out[i] = (float)ebmc_u32_to_unit(r.v[i]);
}

/* Dropout's keep flags of four elements from the same counter layout: keep[i] = (u_i >= p) with
 * u_i = (k_i + 0.5) 2^-32 in double (ebmc_dropout_desc). */
EBMC_HD void ebmc_philox_keep4(uint64_t seed, uint32_t group, uint32_t chain, uint32_t step,
                               uint32_t stream, double p, int keep[4]) {
    ebmc_u32x4 c = {{group, chain, step, stream}};
    ebmc_u32x4 r = ebmc_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    for (int i = 0; i < 4; i++) keep[i] = ebmc_u32_to_unit(r.v[i]) >= p;
}

#endif
