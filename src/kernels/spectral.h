/* defines: spectral_power_iteration, spectral_backward and their scratch sizes -- spectral
 * normalisation (torch.nn.utils.spectral_norm, training mode) entirely on the device. */
#ifndef EBMC_KERNELS_SPECTRAL_H
#define EBMC_KERNELS_SPECTRAL_H

#include <cuda_runtime.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Floats of scratch each launcher needs. */
size_t spectral_power_scratch_floats(int rows, int cols);
size_t spectral_backward_scratch_floats(int rows, int cols);

/* W (rows,cols) row-major; u (rows), v (cols) persistent, updated in place:
 *   n_iter times { v = W^T u / max(||W^T u||, eps); u = W v / max(||W v||, eps) }
 *   sigma[0] = u . (W v);  w_sn = W / sigma  (w_sn nullable)
 * lower_bound (IGEBM): sigma[0] = max(u . (W v) + 1e-6, 1), the divisor used.
 * sigma stays on the device; nothing synchronises with the host. All sums in a fixed order
 * (deterministic), in fp32 without tensor cores whatever the context's precision.
 * scratch: spectral_power_scratch_floats(rows, cols) floats. */
void spectral_power_iteration(const float *w, float *u, float *v, float *sigma, float *w_sn,
                              int rows, int cols, int n_iter, float eps, int lower_bound,
                              float *scratch, cudaStream_t s);
/* dW = dW_sn/sigma - (sum(dW_sn .* W)/sigma^2) u v^T + beta*dW  (u, v, sigma constants; sigma a
 * device scalar). beta == 0: dW is not read. lower_bound with sigma[0] == 1: dW = dW_sn (+ beta
 * dW). scratch: spectral_backward_scratch_floats(). */
void spectral_backward(const float *w, const float *u, const float *v, const float *sigma,
                       const float *dw_sn, float *dw, int rows, int cols, float beta,
                       int lower_bound, float *scratch, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
