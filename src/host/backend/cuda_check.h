/* defines: CUDA_CHECK, CUDNN_CHECK, CUBLAS_CHECK, CURAND_CHECK, EBMC_NVTX_PUSH/POP
 * One check family, one noreturn sink (ebmc_fail): statement, error, function, file:line, device.
 * Usable from C host code and from .cu files. */
#ifndef EBMC_CUDA_CHECK_H
#define EBMC_CUDA_CHECK_H

#include "ebmc/common.h"
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif
const char *ebmc_cublas_status_str(int status);
const char *ebmc_curand_status_str(int status);
#ifdef __cplusplus
}
#endif

/* EBMC_CHECK_GEN with the device sink: fatal, except inside a graph capture on this thread,
 * where the first failure is recorded for graph_end to report (ebmc_fail_device, common.h). */
#define EBMC_DEVICE_CHECK_GEN(T, call, ok, str)                                                 \
    do {                                                                                        \
        T r_ = (call);                                                                          \
        if (r_ != (ok)) ebmc_fail_device(#call, str(r_), __func__, __FILE__, __LINE__);         \
    } while (0)
#define CUDA_CHECK(c) EBMC_DEVICE_CHECK_GEN(cudaError_t, c, cudaSuccess, cudaGetErrorString)
#define CUDNN_CHECK(c)                                                                          \
    EBMC_DEVICE_CHECK_GEN(cudnnStatus_t, c, CUDNN_STATUS_SUCCESS, cudnnGetErrorString)
#define CUBLAS_CHECK(c) EBMC_DEVICE_CHECK_GEN(int, (int)(c), 0, ebmc_cublas_status_str)
#define CURAND_CHECK(c) EBMC_DEVICE_CHECK_GEN(int, (int)(c), 0, ebmc_curand_status_str)

#include <nvtx3/nvToolsExt.h>
#define EBMC_NVTX_PUSH(name) nvtxRangePushA(name)
#define EBMC_NVTX_POP() nvtxRangePop()

#endif
